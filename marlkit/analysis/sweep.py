"""``marlkit compare``: every algorithm x env x seed, locally in worker processes or as Ray tasks.

Layout: ``OUT/<env>/<algo>/seed<k>/`` (ordinary run directories), then ``OUT/report.md``. Every config
is built and validated before anything is written. A run that finished (``summary.json``) is skipped,
one with checkpoints is resumed, so an interrupted sweep continues where it stopped; a failing run is
reported (``error.txt`` in its directory) and does not stop the others.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.analysis.report import write_report
from marlkit.core.errors import MarlkitError
from marlkit.core.interrupts import STOP, die_with_parent
from marlkit.core.rundir import contents, exclusive
from marlkit.training.config import RunConfig, build_config
from marlkit.training.experiment import EvalHook, Experiment

# The default comparison: `marlkit compare` with no arguments.
# Why this task: of the candidates measured (experiments/benchmarks/learning/compare_candidates.py,
# docs/benchmarks.md), the only one where two of the three algorithms' 3-seed CIs were disjoint at a
# few-minute budget. Its three algorithms differ in their critics only: see the overrides below.
DEFAULT_ALGOS = ("itrpo", "matrpo", "hatrpo")
DEFAULT_ENVS = ("envs/private_goals",)
# Eight seeds: at 5 (the fewest at which the statistics protocol can claim anything: 252 splits, smallest p
# 0.008) the comparison claimed ITRPO > HATRPO and > MATRPO on seeds 0-4 and nothing on seeds 100-104; at 8,
# ITRPO > HATRPO is claimed on both seed sets (docs/benchmarks/learning.md, "The default comparison on two
# disjoint seed sets"), in about 4 minutes of runs on 2 cores.
DEFAULT_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)
DEFAULT_FRAMES = 40_000
# The algorithms differ in their critics, so the comparison only means something where critics fit. At
# marlkit's defaults neither fits here (explained variance about 0 after the run's 100 critic steps); with
# HARL's critic practice (value normalization, ReLU, LayerNorm, orthogonal init, Huber loss with value
# clipping, 4 critic minibatches) the centralized critics reach about 0.8. The local critic stays near 0.35:
# by the task's design (envs/private_goals) it cannot see most of the shared reward. docs/benchmarks/learning.md,
# "The default comparison on two disjoint seed sets".
HARL_CRITIC_PRACTICE: dict[str, Any] = {
    "algo.value_norm": True,
    "algo.activation": "relu",
    "algo.layer_norm": True,
    "algo.init": "orthogonal",
    "algo.critic_loss": "huber",
    "algo.value_clip": 0.2,
    "algo.critic_minibatches": 4,
}
DEFAULT_OVERRIDES: dict[str, Any] = {
    "env.max_steps": 100,
    "experiment.num_envs": 20,
    "experiment.eval_every": 4_000,
    "algo.trust_region.max_kl": 0.02,
    **HARL_CRITIC_PRACTICE,
}


@dataclass(frozen=True)
class Job:
    config: RunConfig
    run_dir: Path


def slug(name: str) -> str:
    return name.replace("/", "-").replace(":", "-")


def plan(
    algos: Sequence[str],
    envs: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    frames: int | None,
    overrides: dict[str, Any],
) -> list[Job]:
    """All jobs, validated (unknown algorithms, keys, types and ranges fail here, before any write)."""
    if not algos or not envs or not seeds:
        raise MarlkitError("compare needs at least one algorithm, one env and one seed")
    for what, values in (("algorithm", algos), ("env", envs), ("seed", seeds)):
        repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
        if repeated:
            # Two jobs with one run directory would write it at once (or one would fail on its lock).
            raise MarlkitError(f"compare lists the {what} {', '.join(repeated)} more than once; name each once")
    jobs = []
    for env in envs:
        for algo in algos:
            for seed in seeds:
                run_overrides = {**overrides, "experiment.seed": seed, "experiment.progress": False}
                if frames is not None:
                    run_overrides["experiment.frames"] = frames
                config = build_config(algo, env, run_overrides)
                jobs.append(Job(config, out / slug(env) / slug(algo) / f"seed{seed}"))
    dirs = [job.run_dir for job in jobs]
    clash = next((d for d in dirs if dirs.count(d) > 1), None)
    if clash is not None:
        raise MarlkitError(f"two runs of the sweep would share the run directory {clash}; rename one of them")
    _check_buildable(jobs)
    return jobs


def _check_buildable(jobs: list[Job]) -> None:
    """Build every distinct env (one copy) and learner once, so that a bad env name, env kwarg or an
    algorithm that cannot run on an env fails before the sweep writes or starts anything."""
    envs: dict[str, Any] = {}
    seen: set[str] = set()
    for job in jobs:
        c = job.config
        env_key = json.dumps([c.env_name, c.env_kwargs], sort_keys=True, default=str)
        if env_key not in envs:
            envs[env_key] = make_env(c.env_name, 1, "cpu", 0, **c.env_kwargs)
        learner_key = json.dumps([c.algo_name, c.to_json()["algo"], env_key], sort_keys=True, default=str)
        if learner_key not in seen:
            seen.add(learner_key)
            env = envs[env_key]
            algorithm(c.algo_name).build(c.algo, env, 0)
    for env in envs.values():
        env.close()


def run_job(config_json: dict[str, Any], run_dir: str, threads: int, on_eval: EvalHook | None = None) -> dict[str, Any]:
    """One run in a worker: fresh, resumed from its checkpoints, or skipped if it finished. Its status is
    ``interrupted`` when Ctrl-C (or ``on_eval``, see :class:`Experiment`) stopped it (checkpointed,
    unfinished)."""
    torch.set_num_threads(threads)
    path = Path(run_dir)
    if (path / "summary.json").exists():
        return {**json.loads((path / "summary.json").read_text()), "status": "skipped"}
    config = RunConfig.from_json(config_json)
    with exclusive(path):  # a live writer of this directory (an earlier sweep's run) makes this fail at once
        if STOP.is_set():  # the sweep is stopping: do not start another run
            return {"status": "interrupted", "frames": 0}
        resumable = any((path / "checkpoints").glob("ckpt-*.pt"))
        if not resumable:
            for item in contents(path):  # started but never checkpointed: nothing to keep
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        (path / "error.txt").unlink(missing_ok=True)
        summary = Experiment(config, path, on_eval).run(resume=resumable)
    if summary.get("interrupted"):
        return {**summary, "status": "interrupted"}
    return {**summary, "status": "resumed" if resumable else "done"}


def _record_failure(job: Job, err: BaseException | str) -> str:
    text = err if isinstance(err, str) else "".join(traceback.format_exception(err))
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "error.txt").write_text(text)
    last = text.strip().splitlines()[-1] if text.strip() else "failed"
    return last


def compare(
    algos: Sequence[str] = DEFAULT_ALGOS,
    envs: Sequence[str] = DEFAULT_ENVS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    out: str | Path = "runs/compare",
    frames: int | None = None,
    overrides: dict[str, Any] | None = None,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the grid, then write ``OUT/report.md``. Returns the per-run statuses and the report path."""
    if backend not in ("local", "ray"):
        raise MarlkitError(f"unknown backend '{backend}'; valid: local, ray")
    if jobs is not None and jobs < 1:
        raise MarlkitError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    grid = plan(algos, envs, seeds, out, frames, dict(overrides or {}))
    cores = os.cpu_count() or 1
    workers = max(1, min(jobs or cores, len(grid)))
    threads = max(1, cores // workers)  # jobs x threads never oversubscribes the cores
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    bar = tqdm(total=len(grid), unit="run", disable=not progress, desc="compare")
    if backend == "ray":
        interrupted = _run_ray(grid, threads, address, results, failed, bar)
    else:
        interrupted = _run_local(grid, workers, threads, results, failed, bar)
    bar.close()
    unfinished = [str(job.run_dir) for job in grid if results.get(str(job.run_dir), {}).get("status") not in FINISHED]
    report = None
    if not interrupted and any(r.get("status") in FINISHED for r in results.values()):
        report = str(write_report(out))
    return {
        "runs": results,
        "failed": failed,
        "report": report,
        "out": str(out),
        "interrupted": interrupted,
        "unfinished": unfinished,
    }


FINISHED = ("done", "resumed", "skipped")
# How long a stopping sweep waits for its running runs to finish their iteration and checkpoint.
STOP_GRACE_S = 300.0


def worker_setup(parent: int, stop: Any) -> None:
    """Runs first in every local worker: die with the parent, stop with the sweep.

    On Linux the kernel kills the worker when the parent dies (PR_SET_PDEATHSIG), whatever killed the
    parent; a watcher thread also notices a changed parent PID (other systems), and turns the sweep's
    stop event into :data:`marlkit.core.interrupts.STOP` (the run checkpoints and returns ``interrupted``)."""
    die_with_parent(parent)  # a run's own handler still catches Ctrl-C sent to this worker

    def watch() -> None:
        while os.getppid() == parent:
            if STOP.is_set():  # passed on: only the parent is left to watch
                time.sleep(0.5)
            elif stop.wait(0.5):
                STOP.set()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="marlkit-sweep-watch", daemon=True).start()


def _postfix(bar: Any, running: int, failed: dict[str, str]) -> None:
    bar.set_postfix(running=running, failed=len(failed))


def _run_local(
    grid: list[Job], workers: int, threads: int, results: dict[str, Any], failed: dict[str, str], bar: Any
) -> bool:
    """Run the grid here (one worker) or in spawned worker processes; returns whether Ctrl-C stopped it.

    On Ctrl-C no new run starts, running runs finish their iteration, checkpoint and report
    ``interrupted``; a second Ctrl-C kills the workers at once (their last checkpoints stay usable)."""
    if workers == 1:
        for job in grid:
            _postfix(bar, 1, failed)
            try:
                results[str(job.run_dir)] = run_job(job.config.to_json(), str(job.run_dir), threads)
            except KeyboardInterrupt:  # a second Ctrl-C inside a run
                return True
            except Exception as err:
                failed[str(job.run_dir)] = _record_failure(job, err)
            bar.update(1)
            if results.get(str(job.run_dir), {}).get("status") == "interrupted":
                return True
        return False
    # spawn: workers start clean (no inherited torch threads or VMAS state from this process).
    context = get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=worker_setup, initargs=(os.getpid(), stop)
    )
    pending: dict[Future, Job] = {}
    interrupted = False

    def collect(done: set[Future]) -> None:
        nonlocal interrupted
        for future in done:
            job = pending.pop(future)
            if future.cancelled():
                continue
            try:
                results[str(job.run_dir)] = future.result()
                interrupted |= results[str(job.run_dir)].get("status") == "interrupted"
            except Exception as err:
                failed[str(job.run_dir)] = _record_failure(job, err)
            bar.update(1)

    try:
        pending = {pool.submit(run_job, job.config.to_json(), str(job.run_dir), threads): job for job in grid}
        while pending and not interrupted:
            _postfix(bar, min(workers, len(pending)), failed)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            collect(done)
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        stop.set()
        for future in pending:
            future.cancel()  # queued runs never start
        print(
            "\nmarlkit: stopping the sweep; running runs checkpoint first (Ctrl-C again to kill them)",
            file=sys.stderr,
        )
        try:
            done, _ = wait(pending, timeout=STOP_GRACE_S)
            collect(done)
        except KeyboardInterrupt:
            pass
        if any(not f.done() for f in pending):  # still running after the grace period, or a second Ctrl-C
            for child in active_children():
                child.kill()
    pool.shutdown(wait=True, cancel_futures=True)
    _postfix(bar, 0, failed)
    return interrupted


def _run_ray(
    grid: list[Job], threads: int, address: str | None, results: dict[str, Any], failed: dict[str, str], bar: Any
) -> bool:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise MarlkitError("the ray backend needs Ray: pip install 'marlkit[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(run_job)
    pending = {remote.remote(job.config.to_json(), str(job.run_dir), threads): job for job in grid}
    try:
        while pending:
            _postfix(bar, len(pending), failed)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    results[str(job.run_dir)] = ray.get(ref)
                except Exception as err:
                    failed[str(job.run_dir)] = _record_failure(job, str(err))
                bar.update(1)
    except KeyboardInterrupt:
        for ref in pending:  # Ray interrupts running tasks with KeyboardInterrupt; their checkpoints stay
            ray.cancel(ref)
        return True
    return False
