"""What a careless or hostile user cannot do to a run directory or a sweep: two writers, duplicated
sweep entries, orphaned or unstoppable workers, corrupted checkpoints for eval, leftover temporary
files and invalid numbers. Every wait here is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from marlkit import MarlkitError
from marlkit.analysis.sweep import compare
from marlkit.cli import main
from marlkit.training.config import build_config
from marlkit.training.evaluation import evaluate_run
from marlkit.training.experiment import Experiment
from marlkit.training.runs import read_run_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SMALL = {
    "env.n_agents": 2,
    "env.max_steps": 30,
    "experiment.num_envs": 4,
    "experiment.eval_episodes": 2,
    "experiment.progress": False,
    "experiment.tensorboard": False,
    "algo.rollout_steps": 25,
    "algo.hidden": [16, 16],
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "marlkit.cli", *args]


def overrides_args(overrides: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


def wait_for(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        assert proc is None or proc.poll() is None, "the process ended too early"
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """Live descendants of ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def left_after(pids: set[int], seconds: float) -> list[int]:
    """Those of ``pids`` still alive after waiting up to ``seconds`` for them to exit."""
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# ------------------------------------------------------------------ 1. one writer per run directory
def test_second_writer_fails_at_once_naming_the_holder_and_stale_locks_do_not_block(tmp_path):
    run = tmp_path / "run"
    long_run = {**SMALL, "experiment.frames": 400_000, "experiment.checkpoint_every": 400}
    proc = subprocess.Popen(
        cli("train", "itrpo", "vmas/navigation", "--out", str(run), *overrides_args(long_run)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any((run / "checkpoints").glob("ckpt-*.pt")), 120, proc)
        # A second writer through the API (a resume of the live run): refused before writing anything.
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(MarlkitError, match=rf"in use by pid {proc.pid} on "):
            Experiment(build_config("itrpo", "vmas/navigation", long_run), run).run(resume=True)
        # A second `marlkit resume` of the live run: one line, exit 2.
        second = subprocess.run(cli("resume", str(run)), env=ENV, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip().count("\n") == 0 and f"in use by pid {proc.pid}" in second.stderr
        assert sorted(p.name for p in run.iterdir()) == before
    finally:
        proc.kill()
        proc.wait(timeout=30)
    from marlkit.core.rundir import exclusive

    # The killed holder left its lock file behind; the kernel dropped its lock, so nothing is blocked.
    assert f"pid {proc.pid}" in (run / ".lock").read_text()
    with exclusive(run):
        assert f"pid {os.getpid()}" in (run / ".lock").read_text()


def test_two_runs_started_together_on_one_directory_one_wins(tmp_path):
    # Both are built first, then started at the same instant: both would pass an emptiness check.
    run = tmp_path / "run"
    experiments = [
        Experiment(
            build_config("itrpo", "vmas/navigation", {**SMALL, "experiment.frames": 2_000, "experiment.seed": s}), run
        )
        for s in (0, 1)
    ]
    barrier, outcomes = threading.Barrier(2), ["", ""]

    def start(i: int) -> None:
        barrier.wait()
        try:
            experiments[i].run()
            outcomes[i] = "finished"
        except MarlkitError as err:
            outcomes[i] = str(err)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert sorted(o == "finished" for o in outcomes) == [False, True], outcomes
    loser = next(o for o in outcomes if o != "finished")
    # The winner may hold the lock before it has written its pid into it: "in use by another process".
    assert "is in use by" in loser or "is not empty" in loser
    rows = (run / "metrics.csv").read_text().splitlines()
    frames = [r.split(",")[0] for r in rows[1:]]
    assert len(frames) == len(set(frames)), "no duplicated rows"
    assert all(r.count(",") == rows[0].count(",") for r in rows)


# ------------------------------------------------------------------ 2. duplicated sweep entries
@pytest.mark.parametrize(
    ("algos", "seeds", "message"),
    [(["itrpo"], [0, 0], "seed 0 more than once"), (["itrpo", "itrpo"], [0], "algorithm itrpo more than once")],
)
def test_compare_refuses_duplicates_before_anything_starts(tmp_path, algos, seeds, message):
    out = tmp_path / "sweep"
    with pytest.raises(MarlkitError, match=message):
        compare(algos, ["vmas/navigation"], seeds, out, frames=200, overrides=SMALL, jobs=2, progress=False)
    assert not out.exists()


# ------------------------------------------------------------------ 3 + 4. orphans and Ctrl-C
def sweep_args(out: Path, frames: int) -> list[str]:
    small = {k: v for k, v in SMALL.items() if k != "experiment.progress"}
    return cli(
        "compare",
        "--algos",
        "itrpo,matrpo",
        "--envs",
        "vmas/navigation",
        "--seeds",
        "0,1",
        "--frames",
        str(frames),
        "--jobs",
        "2",
        "--out",
        str(out),
        *overrides_args({**small, "experiment.eval_every": 2_000, "experiment.checkpoint_every": 400}),
    )


@pytest.mark.slow
@linux_only
def test_workers_die_with_a_sigkilled_sweep(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(sweep_args(out, 400_000), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(out.rglob("ckpt-*.pt"))) >= 2, 180, proc)
        workers = children(proc.pid)
        assert workers
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not left_after(workers, 20), "orphaned workers"
    # Their run directories are free again: a re-run takes them over instead of sharing them.
    from marlkit.core.rundir import exclusive

    for lock in out.rglob(".lock"):
        with exclusive(lock.parent):
            pass


@pytest.mark.slow
@linux_only
def test_ctrl_c_stops_a_sweep_and_leaves_no_partial_run_marked_done(tmp_path):
    out = tmp_path / "sweep"
    # A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler: the sweep must get Ctrl-C as a terminal gives it, however the test suite was launched.
    proc = subprocess.Popen(
        sweep_args(out, 400_000),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: len(list(out.rglob("ckpt-*.pt"))) >= 2, 180, proc)
        workers = children(proc.pid)
        start = time.time()
        os.kill(proc.pid, signal.SIGINT)  # the parent alone, as `kill -INT` does
        stdout, stderr = proc.communicate(timeout=120)
    finally:  # a sweep that ignored the Ctrl-C must not outlive the test (its workers die with it)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.time() - start < 60, "the sweep stopped promptly"
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] and summary["report"] is None and summary["unfinished"] == 4
    assert not (out / "report.md").exists()
    assert not list(out.rglob("summary.json")), "no interrupted run marked finished"
    assert len(list(out.rglob("ckpt-*.pt"))) >= 2, "the running runs checkpointed"
    # The pool's workers are joined before exit; multiprocessing's resource tracker leaves on its own
    # once the sweep's end of its pipe closes, which can take a moment on a loaded host.
    assert not left_after(workers, 20), "orphaned workers"


# ------------------------------------------------------------------ 5. eval on corrupted checkpoints
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    overrides = {**SMALL, "experiment.frames": 800, "experiment.eval_every": 400, "experiment.checkpoint_every": 400}
    Experiment(build_config("itrpo", "vmas/navigation", overrides), run).run()
    return run


def test_eval_falls_back_from_a_corrupted_final_checkpoint(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    final = run / "checkpoints" / "final.pt"
    final.write_bytes(final.read_bytes()[:1000])
    result = evaluate_run(run, episodes=2)
    assert result["checkpoint"].startswith("ckpt-")
    assert "checkpoint final.pt is unusable" in capsys.readouterr().err


def test_eval_on_a_corrupted_best_checkpoint_is_one_line(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", str(run), "--checkpoint", "best", "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("marlkit: error: no usable best checkpoint") and "Traceback" not in "".join(err)


# ------------------------------------------------------------------ 6. temporary files of killed writes
def test_leftover_temporary_files_are_removed_on_the_next_start(finished_run, tmp_path):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    leftovers = [run / "checkpoints" / ".ckpt-800.pt.k2j4h1", run / ".metrics.csv.x8a1"]
    for path in leftovers:
        path.write_bytes(b"\0" * 1000)
    (run / ".notes").write_text("a user's own dotfile is not a temporary file")
    (run / "summary.json").unlink()
    (run / "checkpoints" / "final.pt").unlink()
    Experiment(read_run_config(run), run).run(resume=True)
    assert not any(p.exists() for p in leftovers)
    assert (run / ".notes").exists()


# ------------------------------------------------------------------ 7. invalid numbers fail before any write
@pytest.mark.parametrize(
    ("key", "value"),
    [("algo.actor_lr", float("nan")), ("algo.critic_lr", float("inf")), ("algo.gamma", float("nan"))],
)
def test_non_finite_algorithm_values_fail_validation(key, value):
    with pytest.raises(MarlkitError, match=rf"{key} must be a finite number"):
        build_config("mappo", "vmas/navigation", {key: value})


def test_nan_in_a_config_file_fails_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("algo:\n  actor_lr: .nan\n")
    assert main(["train", "mappo", "vmas/navigation", "--config", "c.yaml", "--out", "run"]) == 2
    assert "algo.actor_lr must be a finite number" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# ------------------------------------------------------------------ a disk that fills up mid-run
def test_disk_full_mid_run_is_one_line_and_the_run_resumes_after(tmp_path, monkeypatch, capsys):
    import errno

    import marlkit.core.checkpoint as checkpoint

    run = tmp_path / "run"
    overrides = {**SMALL, "experiment.frames": 1_600, "experiment.checkpoint_every": 400, "experiment.eval_every": 800}
    real, calls = checkpoint.atomic_write_bytes, []

    def full_disk(path, write):
        calls.append(path.name)
        if path.name.startswith("ckpt-") and sum(c.startswith("ckpt-") for c in calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full_disk)
    with pytest.raises(MarlkitError, match=r"cannot write .*ckpt-0+800\.pt: No space left on device") as err:
        Experiment(build_config("itrpo", "vmas/navigation", overrides), run).run()
    assert "\n" not in str(err.value)
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", real)  # space freed
    summary = Experiment(read_run_config(run), run).run(resume=True)
    assert summary["frames"] == 1_600 and (run / "summary.json").exists()
