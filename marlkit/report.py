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
from marlkit.games import GAME_TASKS, crossplay

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


def run_label(config: dict) -> str:
    """The algorithm a run is reported under: its name, or ``adversary=maddpg,agent=ddpg`` for teams."""
    if config["algo_name"] != "teams":
        return config["algo_name"]
    return ",".join(f"{team}={table.get('play')}" for team, table in config["algo"].items())


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
            run_label(config),
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


def write_report(
    root: str | Path, measure: str = "eval_return_mean", fraction: float = 0.9, crossplay_episodes: int = 32
) -> Path:
    """Write ``report.md`` and figures into ``root``; returns the report's path. Games (competitive and
    mixed tasks) get per-side returns and a cross-play matrix (``crossplay_episodes`` per match; 0: none)."""
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
        if task.env in GAME_TASKS or any("=" in algo for algo in task.by_algo):
            lines += game_section(task, root, plt, crossplay_episodes)
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


def game_section(task: TaskSummary, root: Path, plt, episodes: int) -> list[str]:
    """Per-side final returns, then the cross-play matrix: every run's policy of each side against every
    run's policies of the other sides, averaged per pair of algorithms over pairs of distinct runs."""
    runs = [r for rs in task.by_algo.values() for r in rs]
    lines = [
        f"### {task.env}: per side",
        "",
        "In a game the all-agent mean says little; each side's final "
        "evaluation return (its agents' mean), mean over seeds [95% bootstrap CI]:",
        "",
    ]
    finals = {r.path: _final_row(r.path) for r in runs}
    sides = sorted(
        {k[len("eval_return_") :] for row in finals.values() for k in row if k.startswith("eval_return_")}
        - {"mean", "team"}
    )
    lines += ["| algorithm | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    for algo, algo_runs in task.by_algo.items():
        cells = []
        for side in sides:
            x = np.array(
                [
                    float(finals[r.path][f"eval_return_{side}"])
                    for r in algo_runs
                    if finals[r.path].get(f"eval_return_{side}")
                ]
            )
            cells.append(f"{x.mean():.4g} [{bootstrap_ci(x)[0]:.4g}, {bootstrap_ci(x)[1]:.4g}]" if len(x) else "-")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    if episodes < 1 or len(runs) < 2:
        return [*lines, ""]
    result = crossplay([r.path for r in runs], episodes=episodes)
    algos = list(task.by_algo)
    owner = [r.algo for r in runs]
    lines += [
        "",
        f"### {task.env}: cross-play",
        "",
        f"Each side played by one run against the other sides played by another run ({episodes} episodes "
        "per match, deterministic actions). Row: the algorithm playing the side; column: the algorithm "
        "playing its opponents. Mean over pairs of distinct runs [95% bootstrap CI over pairs]; higher is "
        "better for the row.",
        "",
    ]
    for side, matrix in result["matrix"].items():
        m = np.array(matrix)
        table = np.full((len(algos), len(algos)), np.nan)
        lines += [
            f"Return of side `{side}`:",
            "",
            "| row plays " + side + " \\ column plays the rest | " + " | ".join(algos) + " |",
            "|---|" + "---|" * len(algos),
        ]
        for a, row_algo in enumerate(algos):
            cells = []
            for b, col_algo in enumerate(algos):
                x = np.array(
                    [
                        m[i, j]
                        for i in range(len(runs))
                        for j in range(len(runs))
                        if i != j and owner[i] == row_algo and owner[j] == col_algo
                    ]
                )
                if len(x):
                    table[a, b] = x.mean()
                    low, high = bootstrap_ci(x)
                    cells.append(f"{x.mean():.4g} [{low:.4g}, {high:.4g}]")
                else:
                    cells.append("-")
            lines.append(f"| {row_algo} | " + " | ".join(cells) + " |")
        figure = f"crossplay_{_slug(task.env)}_{_slug(side)}.png"
        fig, ax = plt.subplots(figsize=(1.6 * len(algos) + 2.5, 1.2 * len(algos) + 1.5))
        image = ax.imshow(table, cmap="viridis")
        ax.set_xticks(range(len(algos)), algos, rotation=30, ha="right")
        ax.set_yticks(range(len(algos)), algos)
        ax.set_xlabel("plays the other sides")
        ax.set_ylabel(f"plays {side}")
        for a in range(len(algos)):
            for b in range(len(algos)):
                if not np.isnan(table[a, b]):
                    ax.text(b, a, f"{table[a, b]:.3g}", ha="center", va="center", color="w")
        fig.colorbar(image, ax=ax, label=f"return of {side}")
        ax.set_title(f"{task.env}: {side}")
        fig.tight_layout()
        fig.savefig(root / figure, dpi=110)
        plt.close(fig)
        lines += ["", f"![cross-play {side}]({figure})", ""]
    (root / f"crossplay_{_slug(task.env)}.json").write_text(json.dumps(result, indent=1))
    return lines


def _final_row(run: Path) -> dict[str, str]:
    rows = [r for r in _csv_rows(run / "metrics.csv") if r.get("eval_return_mean")]
    return rows[-1] if rows else {}
