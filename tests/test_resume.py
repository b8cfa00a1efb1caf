"""Exact resume: a run killed with SIGKILL and resumed equals the uninterrupted run (metrics.csv and
final parameters, bit for bit on CPU); corrupted checkpoints fall back to the previous good one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from marlkit.training.experiment import Experiment, RunConfig, build_config, load_checkpoint

pytestmark = pytest.mark.slow  # every test here trains runs twice (and kills one)

HATRPO = {
    "env.n_agents": 2,
    "env.max_steps": 30,
    "experiment.frames": 2_400,
    "experiment.num_envs": 4,
    "experiment.checkpoint_every": 400,
    "experiment.eval_every": 800,
    "experiment.eval_episodes": 2,
    "algo.rollout_steps": 50,
    "algo.hidden": [16, 16],
}
MASAC = {
    "env.n_agents": 2,
    "env.max_steps": 30,
    "experiment.frames": 2_000,
    "experiment.num_envs": 4,
    "experiment.checkpoint_every": 400,
    "experiment.eval_every": 800,
    "experiment.eval_episodes": 2,
    "algo.rollout_steps": 25,
    "algo.warmup_frames": 200,
    "algo.batch_size": 32,
    "algo.updates_per_frame": 0.25,
    "algo.hidden": [16, 16],
}
RUNS = {
    "hatrpo": HATRPO,
    # A recurrent actor: episodes of 30 steps end inside the 50-step rollouts and inside 10-step chunks.
    "hatrpo-gru": {**HATRPO, "algo.hidden": [16], "algo.network": "gru", "algo.gru_hidden": 8, "algo.chunk_len": 10},
    "masac": MASAC,
    # Sequence replay: rows of 5 steps with their stored states, round-tripping through every checkpoint.
    "masac-gru": {**MASAC, "algo.hidden": [16], "algo.network": "gru", "algo.gru_hidden": 8, "algo.chunk_len": 5},
    "mambpo": {
        **MASAC,
        "experiment.frames": 1_600,
        "algo.retrain_every": 200,
        "algo.rollouts_per_frame": 2,
        "algo.rollout_length": [1, 2],
        "algo.rollout_schedule": [0, 1600],
        "algo.model.ensemble_size": 3,
        "algo.model.elites": 2,
        "algo.model.hidden": [16, 16],
        "algo.model.max_epochs": 3,
    },
    "qmix": {
        "env.n_agents": 2,
        "env.max_steps": 30,
        "env.continuous_actions": False,
        "experiment.frames": 1_600,
        "experiment.num_envs": 4,
        "experiment.checkpoint_every": 400,
        "experiment.eval_every": 800,
        "experiment.eval_episodes": 2,
        "algo.rollout_steps": 25,
        "algo.warmup_frames": 200,
        "algo.batch_size": 32,
        "algo.updates_per_frame": 0.25,
        "algo.hidden": [16, 16],
        "algo.team_reward": "sum",
        "algo.n_step": 3,
        "algo.target_period": 7,
    },
    "pets": {
        "env.n_agents": 2,
        "env.max_steps": 30,
        "experiment.frames": 1_200,
        "experiment.num_envs": 4,
        "experiment.checkpoint_every": 400,
        "experiment.eval_every": 400,
        "experiment.eval_episodes": 2,
        "algo.rollout_steps": 25,
        "algo.warmup_frames": 200,
        "algo.retrain_every": 200,
        "algo.model.ensemble_size": 3,
        "algo.model.elites": 2,
        "algo.model.hidden": [16, 16],
        "algo.model.max_epochs": 3,
        "algo.planner.horizon": 4,
        "algo.planner.population": 16,
        "algo.particles": 2,
        "algo.planner.iterations": 2,
    },
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "marlkit.cli", *args]


def train_args(run: str, out: Path) -> list[str]:
    overrides = [f"{k}={json.dumps(v)}" for k, v in RUNS[run].items()]
    algo = run.split("-")[0]
    return cli("train", algo, "vmas/navigation", "--out", str(out), "experiment.progress=false", *overrides)


def final_learner(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "final.pt")["learner"]


# Three teams on simple_crypto: eve learns off-policy (IQL, 10-step slices of the 20-step collection),
# alice on-policy (PPO) with a pool snapshot every 80 frames, and bob plays alice's pool (same specs).
# Eve and alice train on states widened by the other teams' actions (critic_sees=all), whose s' part
# other players act for (their exploration state restored after).
TEAMS = {
    "experiment.frames": 1_120,
    "experiment.num_envs": 4,
    "experiment.checkpoint_every": 240,
    "experiment.eval_every": 480,
    "experiment.eval_episodes": 2,
    "algo.eve.play": "iql",
    "algo.eve.hidden": [16],
    "algo.eve.rollout_steps": 10,
    "algo.eve.warmup_frames": 80,
    "algo.eve.batch_size": 32,
    "algo.eve.critic_sees": "all",
    "algo.alice.play": "ppo",
    "algo.alice.hidden": [16],
    "algo.alice.rollout_steps": 20,
    "algo.alice.snapshot_every": 80,
    "algo.alice.pool_size": 4,
    "algo.alice.critic_sees": "all",
    "algo.bob.play": "pool",
    "algo.bob.opponent": "alice",
}


def run_args(algo: str, out: Path) -> list[str]:
    if algo != "teams":
        return train_args(algo, out)
    overrides = [f"{k}={json.dumps(v)}" for k, v in TEAMS.items()]
    return cli("train", "teams", "mpe/simple_crypto_v3", "--out", str(out), "experiment.progress=false", *overrides)


@pytest.mark.parametrize("algo", ["hatrpo", "hatrpo-gru", "masac", "masac-gru", "mambpo", "qmix", "pets", "teams"])
def test_sigkill_then_resume_equals_uninterrupted_run(algo, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # The two runs side by side, one thread each on the 2 cores: they are independent, and a seeded run's
    # numbers do not depend on its speed.
    reference = subprocess.Popen(run_args(algo, whole), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen(run_args(algo, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list((killed / "checkpoints").glob("ckpt-*.pt"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # somewhere in the middle of the next iterations
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    resumed = subprocess.Popen(cli("resume", str(killed)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for run in (reference, resumed):
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()[-2000:]
    assert (killed / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    a, b = final_learner(whole), final_learner(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    pools = sorted(p.relative_to(whole) for p in whole.glob("pool/*/*.pt"))
    assert pools == sorted(p.relative_to(killed) for p in killed.glob("pool/*/*.pt"))


def test_corrupted_checkpoint_falls_back_to_previous(tmp_path, capsys):
    overrides = {**RUNS["hatrpo"], "experiment.progress": False, "experiment.tensorboard": False}
    config = build_config("hatrpo", "vmas/navigation", overrides)
    run = tmp_path / "run"
    Experiment(config, run).run()
    reference = final_learner(run)
    checkpoints = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    assert len(checkpoints) == 3  # keep_checkpoints: only the newest 3 of 5 remain
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    (run / "summary.json").unlink()
    (run / "checkpoints" / "final.pt").unlink()
    summary = Experiment(RunConfig.from_json(json.loads((run / "config.json").read_text())), run).run(resume=True)
    assert f"checkpoint {newest.name} is unusable" in capsys.readouterr().err
    assert summary["frames"] == overrides["experiment.frames"]
    resumed = final_learner(run)
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    args = [
        *train_args("hatrpo", run)[: -len(RUNS["hatrpo"])],
        # Long enough that the interrupt lands mid-run (it is sent right after the first checkpoint, at
        # 400 frames), short enough that the resume to the end stays cheap.
        *(f"{k}={json.dumps(v)}" for k, v in {**RUNS["hatrpo"], "experiment.frames": 4_800}.items()),
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((run / "checkpoints").glob("ckpt-*.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # interrupted: checkpointed, unfinished
    assert json.loads(out)["interrupted"] is True
    assert "Traceback" not in err
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    frames = int(rows[-1].split(",")[0])
    assert (run / "checkpoints" / f"ckpt-{frames:012d}.pt").exists()  # the state after the last row
    done = subprocess.run(cli("resume", str(run)), env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["frames"] == 4_800


DIE_WHILE_WRITING = """
import os, signal, sys
import marlkit.core.checkpoint as checkpoint
from marlkit.cli import main

real, seen = checkpoint.atomic_write_bytes, []

def dying(path, write):
    if path.name.startswith("ckpt-"):
        seen.append(path)
        if len(seen) == 2:  # the second periodic checkpoint: half its bytes reach the temporary file
            def half(f):
                write(f)
                f.truncate(f.tell() // 2)
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
    return real(path, write)

checkpoint.atomic_write_bytes = dying
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write_then_resume_equals_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # The uninterrupted run beside the one that dies, one thread each (independent, seeded runs).
    reference = subprocess.Popen(
        train_args("hatrpo", whole), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    script = tmp_path / "die_while_writing.py"
    script.write_text(DIE_WHILE_WRITING)
    args = train_args("hatrpo", killed)
    proc = subprocess.run([sys.executable, str(script), *args[3:]], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err.decode()[-2000:]
    leftovers = list((killed / "checkpoints").glob(".ckpt-*"))
    assert leftovers, "the kill left a half-written temporary file"
    subprocess.run(cli("resume", str(killed)), check=True, env=env, capture_output=True, timeout=300)
    assert not any(p.exists() for p in leftovers), "the next start removed it"
    assert (killed / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    a, b = final_learner(whole), final_learner(killed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
