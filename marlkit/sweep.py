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
import traceback
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from marlkit.config import RunConfig, build_config
from marlkit.errors import MarlkitError

# The default comparison: `marlkit compare` with no arguments (about 5 minutes on 2 CPU cores).
DEFAULT_ALGOS = ("itrpo", "matrpo", "hatrpo")
DEFAULT_ENVS = ("vmas/navigation",)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_FRAMES = 120_000
DEFAULT_OVERRIDES: dict[str, Any] = {
    "env.n_agents": 3,
    "env.max_steps": 100,
    "experiment.num_envs": 20,
    "experiment.eval_every": 12_000,
    "algo.trust_region.max_kl": 0.02,
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
    jobs = []
    for env in envs:
        for algo in algos:
            for seed in seeds:
                run_overrides = {**overrides, "experiment.seed": seed, "experiment.progress": False}
                if frames is not None:
                    run_overrides["experiment.frames"] = frames
                config = build_config(algo, env, run_overrides)
                jobs.append(Job(config, out / slug(env) / slug(algo) / f"seed{seed}"))
    _check_buildable(jobs)
    return jobs


def _check_buildable(jobs: list[Job]) -> None:
    """Build every distinct env (one copy) and learner once, so that a bad env name, env kwarg or an
    algorithm that cannot run on an env fails before the sweep writes or starts anything."""
    from marlkit.adapters import make_env
    from marlkit.algorithms import algorithm

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


def run_job(config_json: dict[str, Any], run_dir: str, threads: int) -> dict[str, Any]:
    """One run in a worker: fresh, resumed from its checkpoints, or skipped if it finished."""
    import torch

    from marlkit.experiment import Experiment

    torch.set_num_threads(threads)
    path = Path(run_dir)
    if (path / "summary.json").exists():
        return {**json.loads((path / "summary.json").read_text()), "status": "skipped"}
    config = RunConfig.from_json(config_json)
    resumable = any((path / "checkpoints").glob("ckpt-*.pt"))
    if path.exists() and not resumable:
        shutil.rmtree(path)  # started but never checkpointed: nothing to keep
    (path / "error.txt").unlink(missing_ok=True)
    summary = Experiment(config, path).run(resume=resumable)
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
    out = Path(out)
    grid = plan(algos, envs, seeds, out, frames, dict(overrides or {}))
    cores = os.cpu_count() or 1
    workers = max(1, min(jobs or cores, len(grid)))
    threads = max(1, cores // workers)  # jobs x threads never oversubscribes the cores
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    bar = tqdm(total=len(grid), unit="run", disable=not progress, desc="compare")
    if backend == "ray":
        _run_ray(grid, threads, address, results, failed, bar)
    else:
        _run_local(grid, workers, threads, results, failed, bar)
    bar.close()
    report = None
    if any(status.get("status") for status in results.values()):
        from marlkit.report import write_report

        report = str(write_report(out))
    return {"runs": results, "failed": failed, "report": report, "out": str(out)}


def _postfix(bar: Any, running: int, failed: dict[str, str]) -> None:
    bar.set_postfix(running=running, failed=len(failed))


def _run_local(
    grid: list[Job], workers: int, threads: int, results: dict[str, Any], failed: dict[str, str], bar: Any
) -> None:
    if workers == 1:
        for job in grid:
            _postfix(bar, 1, failed)
            try:
                results[str(job.run_dir)] = run_job(job.config.to_json(), str(job.run_dir), threads)
            except Exception as err:
                failed[str(job.run_dir)] = _record_failure(job, err)
            bar.update(1)
        return
    # spawn: workers start clean (no inherited torch threads or VMAS state from this process).
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future, Job] = {
            pool.submit(run_job, job.config.to_json(), str(job.run_dir), threads): job for job in grid
        }
        while pending:
            _postfix(bar, min(workers, len(pending)), failed)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    results[str(job.run_dir)] = future.result()
                except Exception as err:
                    failed[str(job.run_dir)] = _record_failure(job, err)
                bar.update(1)
        _postfix(bar, 0, failed)


def _run_ray(
    grid: list[Job], threads: int, address: str | None, results: dict[str, Any], failed: dict[str, str], bar: Any
) -> None:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise MarlkitError("the ray backend needs Ray: pip install 'marlkit[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(run_job)
    pending = {remote.remote(job.config.to_json(), str(job.run_dir), threads): job for job in grid}
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
