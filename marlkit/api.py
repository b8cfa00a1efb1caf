"""marlkit from Python: train, compare and report, returning data (the CLI is a thin layer over these).

    import marlkit

    run = marlkit.train("mappo", "vmas/balance", frames=60_000, seed=0, out="runs/balance",
                        algo={"lr": 3e-4}, env={"max_steps": 100})
    run.summary["eval_return_mean"], run.metrics()[-1]
    policy = marlkit.load(run.dir)                       # marlkit.deploy.Policy
    result = marlkit.compare(["mappo", "ippo"], ["vmas/balance"], seeds=range(5), frames=60_000)
    result.report.pairs                                  # every pair's difference, CI, p-values

Overrides are given as keyword arguments: a table per section (``algo={"lr": 3e-4}``,
``experiment={"num_envs": 32}``, ``env={...}``) or dotted keys (``**{"algo.lr": 3e-4}``); the
names and checks are the CLI's (``marlkit train ALGO x --help`` lists every option).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marlkit.analysis import sweep
from marlkit.analysis.report import ReportTables, report_tables, write_report
from marlkit.core.errors import MarlkitError
from marlkit.training.config import RunConfig, build_config, load_config_file
from marlkit.training.experiment import Experiment
from marlkit.training.runs import read_run_config

SECTIONS = ("algo", "env", "experiment")


def overrides_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword overrides -> flat ``section.key`` overrides: a section's table (``algo={"lr": 1e-3}``) is
    spread into dotted keys; dotted keys pass as they are."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise MarlkitError(f"{key}= takes a table of options such as {key}={{'...': ...}}, got {value!r}")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


@dataclass(frozen=True)
class TrainResult:
    """A finished (or interrupted) run."""

    dir: Path
    summary: dict[str, Any]
    config: RunConfig

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))

    def metrics(self) -> list[dict[str, float]]:
        """``metrics.csv`` as rows of numbers (an empty cell: NaN)."""
        with (self.dir / "metrics.csv").open() as f:
            return [{k: float(v) if v != "" else float("nan") for k, v in row.items()} for row in csv.DictReader(f)]


def default_out(algo: str, task: str, seed: int) -> Path:
    return Path(f"runs/{algo}-{task.replace('/', '_').replace(':', '_')}-s{seed}")


def train(
    algo: str | None = None,
    task: str | None = None,
    /,
    *,
    frames: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    config: str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``algo`` on ``task`` into ``out`` (default ``runs/ALGO-TASK-sSEED``), which must be empty or
    absent. ``config``: a YAML/TOML/JSON file (a run's ``config.json`` re-creates that run); the arguments
    win over it. Returns the run's directory, its ``summary.json`` and its config."""
    names, overrides = load_config_file(str(config)) if config is not None else ({}, {})
    algo = algo or names.get("algo_name")
    task = task or names.get("env_name")
    if not algo or not task:
        raise MarlkitError("train needs an algorithm and a task (as arguments or algo_name/env_name in the config)")
    overrides.update(overrides_of(options))
    for value, key in ((frames, "experiment.frames"), (seed, "experiment.seed"), (device, "experiment.device")):
        if value is not None:
            overrides[key] = value
    run_config = build_config(algo, task, overrides)
    run_dir = Path(out) if out is not None else default_out(algo, task, run_config.experiment.seed)
    summary = Experiment(run_config, run_dir).run()
    return TrainResult(run_dir, summary, run_config)


def resume(run_dir: str | Path) -> TrainResult:
    """Continue an interrupted run from its newest good checkpoint; a finished run is returned as it is."""
    run = Path(run_dir)
    config = read_run_config(run)
    if (run / "summary.json").exists():
        return TrainResult(run, json.loads((run / "summary.json").read_text()), config)
    return TrainResult(run, Experiment(config, run).run(resume=True), config)


@dataclass(frozen=True)
class CompareResult:
    """A sweep: each run's status, the failures, and the report (None when interrupted or all failed)."""

    out: Path
    runs: dict[str, Any]
    failed: dict[str, str]
    unfinished: list[str]
    interrupted: bool
    report: ReportTables | None


def compare(
    algos: Sequence[str] = sweep.DEFAULT_ALGOS,
    tasks: Sequence[str] = sweep.DEFAULT_ENVS,
    /,
    seeds: Iterable[int] = sweep.DEFAULT_SEEDS,
    *,
    frames: int | None = None,
    out: str | Path = "runs/compare",
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    **options: Any,
) -> CompareResult:
    """Every algorithm x task x seed (finished runs are skipped, interrupted ones resumed), then the
    report; see ``marlkit compare``. With no arguments but ``out``, the default comparison."""
    seeds = [int(s) for s in seeds]
    default = (tuple(algos), tuple(tasks), frames, options) == (sweep.DEFAULT_ALGOS, sweep.DEFAULT_ENVS, None, {})
    overrides = dict(sweep.DEFAULT_OVERRIDES) if default else overrides_of(options)
    result = sweep.compare(list(algos), list(tasks), seeds, out,
                           sweep.DEFAULT_FRAMES if default else frames, overrides, jobs, backend, address,
                           progress)  # fmt: skip
    tables = report_tables(result["out"]) if result["report"] else None
    return CompareResult(Path(result["out"]), result["runs"], result["failed"], result["unfinished"],
                         result["interrupted"], tables)  # fmt: skip


def report(
    root: str | Path, measure: str = "eval_return_mean", fraction: float = 0.9, crossplay_episodes: int = 32
) -> ReportTables:
    """Write ``ROOT/report.md`` and its figures for every run under ``root``; return its tables as data."""
    write_report(root, measure, fraction, crossplay_episodes)
    return report_tables(root, measure, fraction)
