"""``marlkit report DIR --export marl-eval``: the runs under ``DIR`` in the JSON layout that marl-eval
(Gorsane et al. 2022) and BenchMARL's ``eval_results`` read::

    {environment: {task: {algorithm: {"run_<seed>": {
        "step_<i>": {"step_count": frames, "episode_return": [one value per evaluation episode], ...},
        "absolute_metrics": {"episode_return": [10x the evaluation episodes, of the best policy]}}}}}}

``episode_return`` is each evaluation episode's return averaged over agents (marlkit's
``eval_return_mean``; with a shared reward, every agent's return), ``episode_return_team`` the sum
over agents. Evaluation episodes come from each run's ``episodes.csv``. The absolute metric is
marl-eval's: the run's best policy (``best.pt``, else the last checkpoint) re-evaluated over ten times
the run's evaluation episodes, on seeds no training evaluation used. Only finished runs are exported.
``vmas/navigation`` becomes environment ``vmas``, task ``navigation``; a scenario given by import path
(``pkg.mod:Env``) becomes environment ``custom``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from marlkit.adapters import make_env
from marlkit.analysis.results import load_runs, run_label
from marlkit.core.errors import MarlkitError
from marlkit.training.evaluation import episode_returns, per_episode
from marlkit.training.runs import load_learner, read_run_config

METRIC = "episode_return"
ABSOLUTE_SEED = 987_654  # evaluation seeds apart from training's (seed + 10_000)


def split_env(name: str) -> tuple[str, str]:
    if ":" in name:
        return "custom", name.rsplit(":", 1)[-1]
    family, _, task = name.partition("/")
    return (family, task) if task else ("custom", family)


def episode_steps(run: Path) -> dict[str, dict[str, Any]]:
    """``step_<i>`` entries from ``episodes.csv``, in the order of the evaluations."""
    path = run / "episodes.csv"
    if not path.exists():
        raise MarlkitError(f"{run} has no episodes.csv (written by marlkit from issue 29 on); rerun it to export it")
    by_frames: dict[int, dict[str, list[float]]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            entry = by_frames.setdefault(int(row["frames"]), {METRIC: [], f"{METRIC}_team": []})
            entry[METRIC].append(float(row["return_mean"]))
            entry[f"{METRIC}_team"].append(float(row["return_team"]))
    steps = sorted(by_frames.items())
    return {f"step_{i}": {"step_count": frames, **values} for i, (frames, values) in enumerate(steps)}


def absolute_metrics(run: Path, episodes: int) -> dict[str, list[float]]:
    config = read_run_config(run)
    which = "best" if (run / "checkpoints" / "best.pt").exists() else "last"
    _, learner, _ = load_learner(run, which)
    env = make_env(config.env_name, episodes, "cpu", ABSOLUTE_SEED, **config.env_kwargs)
    means, teams = per_episode(episode_returns(learner, env, ABSOLUTE_SEED, config.experiment.eval_max_steps))
    return {METRIC: means, f"{METRIC}_team": teams}


def export(root: str | Path, absolute: bool = True) -> Path:
    """Write ``root/marl_eval.json`` from the finished runs under ``root``; returns its path."""
    root = Path(root)
    data: dict[str, Any] = {}
    runs = [r for r in load_runs(root) if r.finished]
    if not runs:
        raise MarlkitError(f"no finished runs under {root} to export")
    for run in runs:
        config = json.loads((run.path / "config.json").read_text())
        env, task = split_env(run.env)
        entry = episode_steps(run.path)
        if absolute:
            episodes = 10 * int(config["experiment"]["eval_episodes"])
            entry["absolute_metrics"] = absolute_metrics(run.path, episodes)
        algo = data.setdefault(env, {}).setdefault(task, {}).setdefault(run_label(config), {})
        if f"run_{run.seed}" in algo:
            raise MarlkitError(
                f"two runs of {run_label(config)} on {run.env} with seed {run.seed} under {root}; "
                "export one sweep at a time"
            )
        algo[f"run_{run.seed}"] = entry
    path = root / "marl_eval.json"
    path.write_text(json.dumps(data))
    return path
