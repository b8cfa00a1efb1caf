"""Runs' results as the report reads them: each run's evaluation curve and wall-clock (:class:`Run`),
grouped per task with the task's initial and best returns (:class:`TaskSummary`), and the label a run
is reported under."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marlkit.algorithms.registry import algorithm
from marlkit.core.errors import MarlkitError


@dataclass
class Run:
    path: Path
    algo: str
    env: str
    seed: int
    finished: bool
    frames: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    wall_at: dict[int, float] = field(default_factory=dict)

    @property
    def final(self) -> float:
        return self.returns[-1] if self.returns else math.nan


def run_label(config: dict) -> str:
    """The algorithm a run is reported under: its name, or what its algorithm's ``label`` hook makes of
    its config (a teams run: ``adversary=maddpg,agent=ddpg``)."""
    try:
        spec = algorithm(config["algo_name"])
    except MarlkitError:  # an algorithm this process cannot import: its name
        return config["algo_name"]
    return spec.label(config["algo"]) if spec.label is not None else config["algo_name"]


def csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def load_runs(root: str | Path, measure: str = "eval_return_mean") -> list[Run]:
    runs = []
    for config_path in sorted(Path(root).rglob("config.json")):
        run_dir = config_path.parent
        config = json.loads(config_path.read_text())
        if "algo_name" not in config:
            continue
        run = Run(
            run_dir,
            run_label(config),
            config["env_name"],
            int(config["experiment"]["seed"]),
            (run_dir / "summary.json").exists(),
        )
        for row in csv_rows(run_dir / "metrics.csv"):
            if row.get(measure):
                run.frames.append(int(row["frames"]))
                run.returns.append(float(row[measure]))
        run.wall_at = {int(r["frames"]): float(r["wall_s"]) for r in csv_rows(run_dir / "timing.csv")}
        if run.returns:
            runs.append(run)
    if not runs:
        raise MarlkitError(f"no run directories with evaluations under {root}")
    return runs


@dataclass
class TaskSummary:
    env: str
    initial: float
    best: float
    target: float
    by_algo: dict[str, list[Run]]


def summarize(runs: list[Run], fraction: float) -> list[TaskSummary]:
    tasks: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        tasks.setdefault(run.env, {}).setdefault(run.algo, []).append(run)
    out = []
    for env, by_algo in sorted(tasks.items()):
        initial = float(np.mean([r.returns[0] for rs in by_algo.values() for r in rs]))
        best = max(float(np.mean([r.final for r in rs])) for rs in by_algo.values())
        out.append(
            TaskSummary(env, initial, best, initial + fraction * (best - initial), dict(sorted(by_algo.items())))
        )
    return out


def time_to(run: Run, target: float, improving: bool) -> tuple[int | None, float | None]:
    if not improving:
        return None, None
    for frames, value in zip(run.frames, run.returns, strict=True):
        if value >= target:
            return frames, run.wall_at.get(frames)
    return None, None


def normalized(run: Run, task: TaskSummary) -> float:
    span = task.best - task.initial
    return (run.final - task.initial) / span if abs(span) > 1e-12 else 0.0


def file_slug(name: str) -> str:
    """A name usable in a file name: letters, digits, - and _ kept, the rest _."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
