"""``marlkit report DIR``: any set of run directories -> ``report.md`` and PNG figures.

Statistics follow rliable / marl-eval practice, computed here with numpy:

* final return per run = its last deterministic evaluation (``eval_return_mean`` by default: the
  per-agent mean episode return; ``eval_return_team`` sums over agents);
* per algorithm and task: mean over seeds with a 95% percentile-bootstrap CI (10,000 resamples of the
  seeds, fixed RNG seed), and the interquartile mean (IQM: the mean of the middle 50% of runs, as
  ``scipy.stats.trim_mean(x, 0.25)``);
* frames and wall-clock to reach ``initial + fraction * (best - initial)``, where ``initial`` is the
  mean first evaluation of the task over all its runs and ``best`` the best algorithm's mean final return
  (returns may be negative, so a plain fraction of the best return would be meaningless);
* per task, one sentence on significance: two algorithms are called separated when their 95% CIs do
  not overlap (with 3-5 seeds a percentile bootstrap CI is narrow, so this is a screening rule, not a
  formal test); with a single seed of any algorithm nothing is claimed;
* the aggregate across tasks uses the same normalization, ``(final - initial) / (best - initial)``
  (1 = the task's best algorithm), with IQM and a stratified bootstrap CI over runs.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marlkit.errors import MarlkitError

BOOTSTRAP_SAMPLES = 10_000


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


def _csv_rows(path: Path) -> list[dict[str, str]]:
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
            config["algo_name"],
            config["env_name"],
            int(config["experiment"]["seed"]),
            (run_dir / "summary.json").exists(),
        )
        for row in _csv_rows(run_dir / "metrics.csv"):
            if row.get(measure):
                run.frames.append(int(row["frames"]))
                run.returns.append(float(row[measure]))
        run.wall_at = {int(r["frames"]): float(r["wall_s"]) for r in _csv_rows(run_dir / "timing.csv")}
        if run.returns:
            runs.append(run)
    if not runs:
        raise MarlkitError(f"no run directories with evaluations under {root}")
    return runs


def iqm(values: np.ndarray) -> float:
    x = np.sort(np.asarray(values, dtype=float))
    cut = int(0.25 * len(x))
    return float(x[cut : len(x) - cut].mean())


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean over resampled runs."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(BOOTSTRAP_SAMPLES, len(x)))]
    low, high = np.percentile(samples.mean(1), [2.5, 97.5])
    return float(low), float(high)


def stratified_bootstrap_ci(groups: list[np.ndarray], statistic, seed: int = 0) -> tuple[float, float]:
    """Resample runs within each task, then apply ``statistic`` to the pooled sample (rliable)."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(2_000):
        pooled = np.concatenate([g[rng.integers(0, len(g), size=len(g))] for g in groups])
        stats.append(statistic(pooled))
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def significance(finals: dict[str, np.ndarray]) -> str:
    """One sentence: which algorithms' 95% bootstrap CIs of the mean final return are disjoint."""
    if len(finals) < 2:
        return "One algorithm: nothing to compare."
    single = [a for a, x in finals.items() if len(x) < 2]
    if single:
        return (
            f"No significance claimed: {', '.join(single)} ran with one seed, and a CI needs at least two seeds "
            "per algorithm."
        )
    cis = {a: bootstrap_ci(x) for a, x in finals.items()}
    order = sorted(finals, key=lambda a: -float(np.mean(finals[a])))
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    above = [f"{a} > {b}" for a, b in pairs if cis[a][0] > cis[b][1]]
    tied = [f"{a} vs {b}" for a, b in pairs if cis[a][0] <= cis[b][1]]
    if not above:
        return "No significant difference: every pair of 95% CIs overlaps."
    if not tied:
        return f"Significant (non-overlapping 95% CIs) for every pair: {', '.join(above)}."
    return (
        f"Significant (non-overlapping 95% CIs): {', '.join(above)}; not separated (overlapping CIs): "
        f"{', '.join(tied)}."
    )


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


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write_report(root: str | Path, measure: str = "eval_return_mean", fraction: float = 0.9) -> Path:
    """Write ``report.md`` and figures into ``root``; returns the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(root)
    every = load_runs(root, measure)
    # A run without summary.json stopped early (interrupted, killed, failed): its last evaluation is not a
    # final return, so it never enters the tables; it is listed instead.
    runs = [r for r in every if r.finished]
    unfinished = [r for r in every if not r.finished]
    if not runs:
        raise MarlkitError(
            f"no finished runs under {root} ({len(unfinished)} unfinished); resume them first (marlkit resume RUN_DIR, "
            "or the same marlkit compare command)"
        )
    tasks = summarize(runs, fraction)
    lines = [
        "# marlkit report",
        "",
        f"{len(runs)} finished runs under `{root}`; measure `{measure}` (deterministic evaluation). Final = last "
        "evaluation. Mean over seeds with a 95% bootstrap CI; IQM = interquartile mean. Time to target: first "
        f"evaluation at or above initial + {fraction:g} x (best - initial), median over the seeds that reached it.",
        "",
    ]
    if unfinished:
        listed = ", ".join(f"`{r.path.relative_to(root)}` ({r.frames[-1]} frames)" for r in unfinished)
        lines += [f"**Unfinished runs, left out of every table and figure:** {listed}.", ""]
    for task in tasks:
        improving = task.best > task.initial
        lines += [
            f"## {task.env}",
            "",
            f"Initial (first evaluation, all runs): {task.initial:.4g}; best algorithm's mean final: {task.best:.4g}; "
            f"target: {task.target:.4g}.",
            "",
            "| algorithm | seeds | final: mean [95% CI] | IQM | frames to target | wall-clock to target (s) | "
            "reached |",
            "|---|---|---|---|---|---|---|",
        ]
        fig, ax = plt.subplots(figsize=(6, 4))
        for algo, algo_runs in task.by_algo.items():
            finals = np.array([r.final for r in algo_runs])
            low, high = bootstrap_ci(finals)
            hits = [time_to(r, task.target, improving) for r in algo_runs]
            reached = [(f, w) for f, w in hits if f is not None]
            frames_txt = f"{int(np.median([f for f, _ in reached]))}" if reached else "-"
            walls = [w for _, w in reached if w is not None]
            wall_txt = f"{np.median(walls):.0f}" if walls else "-"
            lines.append(
                f"| {algo} | {len(algo_runs)} | {finals.mean():.4g} [{low:.4g}, {high:.4g}] | {iqm(finals):.4g} | "
                f"{frames_txt} | {wall_txt} | {len(reached)}/{len(algo_runs)} |"
            )
            _plot_curve(ax, algo, algo_runs)
        ax.set_xlabel("frames")
        ax.set_ylabel(measure)
        ax.set_title(task.env)
        ax.legend()
        fig.tight_layout()
        figure = f"curves_{_slug(task.env)}.png"
        fig.savefig(root / figure, dpi=110)
        plt.close(fig)
        finals_by_algo = {algo: np.array([r.final for r in rs]) for algo, rs in task.by_algo.items()}
        lines += ["", significance(finals_by_algo), "", f"![learning curves]({figure})", ""]
    lines += _aggregate(tasks, root, plt)
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plot_curve(ax, algo: str, runs: list[Run]) -> None:
    common = sorted(set.intersection(*(set(r.frames) for r in runs)))
    if not common:
        return
    values = np.array([[dict(zip(r.frames, r.returns, strict=True))[f] for f in common] for r in runs])
    mean = values.mean(0)
    band = np.array([bootstrap_ci(values[:, j]) for j in range(len(common))])
    (line,) = ax.plot(common, mean, label=f"{algo} (n={len(runs)})")
    ax.fill_between(common, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.2)


def _aggregate(tasks: list[TaskSummary], root: Path, plt) -> list[str]:
    algos = sorted({a for t in tasks for a in t.by_algo})
    lines = [
        "## Aggregate over tasks",
        "",
        "Normalized score per run: (final - initial) / (best - initial) of its task (1 = the task's best "
        "algorithm's mean). IQM and mean over all runs of an algorithm, 95% stratified bootstrap CI.",
        "",
        "| algorithm | tasks | runs | IQM [95% CI] | mean [95% CI] |",
        "|---|---|---|---|---|",
    ]
    points = []
    for algo in algos:
        groups = [np.array([normalized(r, t) for r in t.by_algo[algo]]) for t in tasks if algo in t.by_algo]
        pooled = np.concatenate(groups)
        iqm_ci = stratified_bootstrap_ci(groups, iqm)
        mean_ci = stratified_bootstrap_ci(groups, np.mean)
        lines.append(
            f"| {algo} | {len(groups)} | {len(pooled)} | {iqm(pooled):.3f} [{iqm_ci[0]:.3f}, {iqm_ci[1]:.3f}] | "
            f"{pooled.mean():.3f} [{mean_ci[0]:.3f}, {mean_ci[1]:.3f}] |"
        )
        points.append((algo, iqm(pooled), iqm_ci))
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(points) + 1.2))
    for i, (_algo, value, (low, high)) in enumerate(points):
        ax.errorbar(value, i, xerr=[[value - low], [high - value]], fmt="o", capsize=4)
    ax.set_yticks(range(len(points)), [p[0] for p in points])
    ax.set_xlabel("normalized score, IQM (95% CI)")
    fig.tight_layout()
    fig.savefig(root / "aggregate.png", dpi=110)
    plt.close(fig)
    return [*lines, "", "![aggregate](aggregate.png)"]
