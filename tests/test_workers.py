"""CPU-simulator copies in worker processes: the same rollouts as in-process, one-line errors on crashes,
no orphans when the parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from marlkit import MarlkitError, make_env
from marlkit.keys import ALIVE
from marlkit.training.rollout import RolloutCollector

HERE = Path(__file__).parent
# Uneven slices (7 copies, capacity 4: 4 + 3), auto-resets mid-rollout, agents leaving, action masks,
# discrete and continuous actions, N=1 through Gymnasium.
CASES = [
    ("mpe/simple_spread_v3", {"max_cycles": 6, "continuous_actions": True}),
    ("mpe/simple_adversary_v3", {"max_cycles": 5}),
    ("mamujoco/HalfCheetah-2x3", {"max_episode_steps": 7}),
    ("gym/CartPole-v1", {}),
    ("helper_envs:MaskedEnv", {}),
    ("helper_envs:Leaving", {}),
]


def _rollout(name: str, kwargs: dict, workers: int, steps: int = 25, reseed: bool = False):
    env = make_env(name, num_envs=7, seed=3, workers=workers, **kwargs)
    try:
        collector = RolloutCollector(env, env.rand_action, steps)
        collector.reset()
        first, _ = collector.collect()
        if reseed:  # a checkpoint starts new episodes from a new seed: the workers must follow
            env.reset(seed=11)
            collector.reset()
        second, _ = collector.collect()
        return first, second
    finally:
        env.close()


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_workers_give_the_in_process_rollouts_exactly(name, kwargs):
    in_process = _rollout(name, kwargs, workers=0, reseed=True)
    for workers in (1, 2):
        for ours, ref in zip(_rollout(name, kwargs, workers, reseed=True), in_process, strict=True):
            assert set(ours.keys(True, True)) == set(ref.keys(True, True))
            assert (ours == ref).all(), f"{name} with {workers} workers differs from in-process"
    if name == "helper_envs:Leaving":  # the case exists to cover agents leaving: check that it does
        assert not bool(in_process[0]["agent"][ALIVE].all())


def test_more_workers_than_copies_is_one_per_copy():
    env = make_env("gym/CartPole-v1", num_envs=3, workers=5)
    try:
        assert env.workers == 2  # and the parent steps the third copy
        env.step(env.rand_action(env.reset()))
    finally:
        env.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_a_copy_names_the_copy(workers):
    env = make_env("helper_envs:Fragile", num_envs=4, workers=workers)
    try:
        td = env.rand_action(env.reset())
        start = time.monotonic()
        with pytest.raises(MarlkitError) as err:
            env.step(td)
        assert str(err.value) == (
            "env copy 3 of 'helper_envs:Fragile' failed in step: ValueError: simulated simulator bug"
        )
        assert time.monotonic() - start < 10
    finally:
        env.close()


def test_a_dead_worker_is_one_error_and_no_hang():
    env = make_env("mpe/simple_spread_v3", num_envs=6, workers=2)
    td = env.reset()
    os.kill(env._copies.vec.processes[1].pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(MarlkitError, match=r"env worker 1 \(copies 4-5 of 'mpe/simple_spread_v3'\) died"):
        env.step(env.rand_action(td))
    assert time.monotonic() - start < 10
    env.close()
    assert all(not p.is_alive() for p in env._copies.vec.processes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_orphans_after_the_parent_is_killed():
    script = textwrap.dedent(
        """
        import time
        from marlkit import make_env
        env = make_env("mpe/simple_spread_v3", num_envs=4, workers=2)
        env.reset()
        print(*[p.pid for p in env._copies.vec.processes], flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=HERE)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "env workers outlived their killed parent"


def test_bad_worker_counts_fail_in_one_line():
    with pytest.raises(MarlkitError, match=r"^workers must be an integer >= 0"):
        make_env("gym/CartPole-v1", workers=-1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead, waiting for a reaper that is gone


def test_training_with_workers_writes_the_same_metrics(tmp_path):
    from marlkit.training.experiment import Experiment, build_config

    csv = {}
    for workers in (0, 2):
        overrides = {
            "experiment.frames": 1200,
            "experiment.num_envs": 6,
            "experiment.eval_every": 600,
            "experiment.eval_episodes": 2,
            "experiment.checkpoint_every": 600,
            "experiment.progress": False,
            "experiment.tensorboard": False,
            "experiment.env_workers": workers,
            "algo.rollout_steps": 100,
            "env.max_cycles": 25,
        }
        config = build_config("mappo", "mpe/simple_spread_v3", overrides)
        torch.manual_seed(0)
        Experiment(config, tmp_path / str(workers)).run()
        csv[workers] = (tmp_path / str(workers) / "metrics.csv").read_text()
    assert csv[0] == csv[2]


def test_auto_workers_follow_the_runs_share_of_the_cores():
    from marlkit.training.config import AUTO_WORKERS_MIN_COPIES, ExperimentConfig

    many = ExperimentConfig(num_envs=2 * AUTO_WORKERS_MIN_COPIES)
    assert many.env_worker_count(threads=2) == 1  # the run steps a slice on the other core
    assert many.env_worker_count(threads=1) == 0  # a sweep gave this run one core: stay in-process
    assert ExperimentConfig(num_envs=16).env_worker_count(threads=2) == 0  # too few copies to pay off
    assert ExperimentConfig(num_envs=16, env_workers=3).env_worker_count(threads=1) == 3  # asked for


def test_bad_env_workers_option_fails_in_one_line():
    from marlkit.training.experiment import build_config

    with pytest.raises(MarlkitError, match=r"^experiment.env_workers must be >= 0, or -1 for auto, got -2$"):
        build_config("mappo", "mpe/simple_spread_v3", {"experiment.env_workers": -2})


def test_ctrl_c_with_workers_checkpoints_and_leaves_no_process(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group: the workers ignore it, the run finishes its
    iteration, checkpoints, closes its workers and exits with 130."""
    run = tmp_path / "run"
    overrides = {
        "experiment.frames": 200_000,
        "experiment.num_envs": 4,
        "experiment.env_workers": 2,
        "experiment.eval_every": 0,
        "experiment.eval_episodes": 2,
        "experiment.eval_max_steps": 50,
        "experiment.checkpoint_every": 400,
        "experiment.progress": False,
        "algo.rollout_steps": 100,
    }
    args = [sys.executable, "-m", "marlkit.cli", "train", "mappo", "mpe/simple_spread_v3", "--out", str(run)]
    args += [f"{k}={v}" for k, v in overrides.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("ckpt-*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert '"interrupted": true' in out
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(proc.pid), "a worker outlived the interrupted run"


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
