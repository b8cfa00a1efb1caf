"""``marlkit report DIR``: any set of run directories -> ``report.md`` and PNG figures.

Every claim follows the statistics protocol of :mod:`marlkit.analysis.stats`:

* final return per run = its last deterministic evaluation (``eval_return_mean`` by default: the
  per-agent mean episode return; ``eval_return_team`` sums over agents);
* per algorithm and task: mean over seeds with a 95% Student-t CI (honest at 3 seeds, where a
  percentile bootstrap of the mean is about [min, max]), and the interquartile mean (IQM: the mean of
  the middle 50% of runs, as ``scipy.stats.trim_mean(x, 0.25)``);
* frames and wall-clock to reach ``initial + fraction * (best - initial)``, where ``initial`` is the
  mean first evaluation of the task over all its runs and ``best`` the best algorithm's mean final return
  (returns may be negative, so a plain fraction of the best return would be meaningless);
* per task, every pair of algorithms: the difference of means with a 95% CI of the difference, a
  permutation test, Holm's correction over the task's pairs, and the minimum detectable effect where
  nothing is claimed; one sentence states what the protocol finds (``stats.verdict``);
* the aggregate across tasks uses the same normalization, ``(final - initial) / (best - initial)``
  (1 = the task's best algorithm): IQM, mean and optimality gap with stratified bootstrap CIs, the
  probability of improvement of every pair with its CI, and performance profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marlkit.adapters import task_facts
from marlkit.analysis import stats
from marlkit.analysis.report_games import game_section
from marlkit.analysis.results import Run, TaskSummary, file_slug, load_runs, normalized, summarize, time_to
from marlkit.analysis.stats import bootstrap_ci, iqm, t_ci
from marlkit.core.errors import MarlkitError


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
        "evaluation. Mean over seeds with a 95% Student-t CI; IQM = interquartile mean. Time to target: first "
        f"evaluation at or above initial + {fraction:g} x (best - initial), median over the seeds that reached it. "
        "Differences: the statistics protocol of `marlkit.analysis.stats` (CI of the difference, permutation test, "
        "Holm over each task's pairs, 5%); a difference is called real only where it says so.",
        "",
    ]
    if unfinished:
        listed = ", ".join(f"`{r.path.relative_to(root)}` ({r.frames[-1]} frames)" for r in unfinished)
        lines += [f"**Unfinished runs, left out of every table and figure:** {listed}.", ""]
    for task in tasks:
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
            row = algo_row(task, algo, algo_runs)
            frames_txt = f"{int(row['frames_to_target'])}" if row["frames_to_target"] is not None else "-"
            wall_txt = f"{row['wall_s_to_target']:.0f}" if row["wall_s_to_target"] is not None else "-"
            lines.append(
                f"| {algo} | {row['seeds']} | {row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}] | "
                f"{row['iqm']:.4g} | {frames_txt} | {wall_txt} | {row['reached']}/{row['seeds']} |"
            )
            _plot_curve(ax, algo, algo_runs)
        ax.set_xlabel("frames")
        ax.set_ylabel(measure)
        ax.set_title(task.env)
        ax.legend()
        fig.tight_layout()
        figure = f"curves_{file_slug(task.env)}.png"
        fig.savefig(root / figure, dpi=110)
        plt.close(fig)
        finals_by_algo = {algo: np.array([r.final for r in rs]) for algo, rs in task.by_algo.items()}
        verdict = stats.verdict(finals_by_algo)
        lines += ["", *pairs_table(finals_by_algo), verdict, "", f"![learning curves]({figure})", ""]
        if task_facts(task.env).game or any("=" in algo for algo in task.by_algo):
            lines += game_section(task, root, plt, crossplay_episodes)
    lines += _aggregate(tasks, root, plt)
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def algo_row(task: TaskSummary, algo: str, runs: list[Run]) -> dict[str, Any]:
    """One algorithm's numbers on one task: seeds, mean final return with its 95% t-CI, IQM, and the median
    frames and wall-clock to the task's target over the seeds that reached it (None where none did)."""
    finals = np.array([r.final for r in runs])
    low, high = t_ci(finals)
    hits = [time_to(r, task.target, task.best > task.initial) for r in runs]
    reached = [(f, w) for f, w in hits if f is not None]
    walls = [w for _, w in reached if w is not None]
    return {
        "task": task.env,
        "algorithm": algo,
        "seeds": len(runs),
        "mean": float(finals.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "iqm": float(iqm(finals)),
        "finals": finals.tolist(),
        "frames_to_target": int(np.median([f for f, _ in reached])) if reached else None,
        "wall_s_to_target": float(np.median(walls)) if walls else None,
        "reached": len(reached),
    }


@dataclass(frozen=True)
class ReportTables:
    """What ``report.md`` says, as data: a row per algorithm and task (:func:`algo_row`), a row per pair
    of algorithms on a task (the statistics protocol's :class:`marlkit.analysis.stats.Pair`), and each task's
    one-sentence verdict."""

    path: Path
    measure: str
    algorithms: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    verdicts: dict[str, str]


def report_tables(root: str | Path, measure: str = "eval_return_mean", fraction: float = 0.9) -> ReportTables:
    """The report's tables for the finished runs under ``root`` (``report.md`` itself: :func:`write_report`)."""
    runs = [r for r in load_runs(root, measure) if r.finished]
    if not runs:
        raise MarlkitError(f"no finished runs under {root}")
    rows, pairs, verdicts = [], [], {}
    for task in summarize(runs, fraction):
        rows += [algo_row(task, algo, algo_runs) for algo, algo_runs in task.by_algo.items()]
        finals = {algo: np.array([r.final for r in rs]) for algo, rs in task.by_algo.items()}
        for p in stats.compare_task(finals):
            pairs.append({"task": task.env, "a": p.a, "b": p.b, "difference": p.diff, "ci_low": p.ci[0],
                          "ci_high": p.ci[1], "p": p.p, "p_holm": p.p_holm, "claimed": p.significant,
                          "detectable": p.detectable()})  # fmt: skip
        verdicts[task.env] = stats.verdict(finals)
    return ReportTables(Path(root) / "report.md", measure, rows, pairs, verdicts)


def _plot_curve(ax, algo: str, runs: list[Run]) -> None:
    common = sorted(set.intersection(*(set(r.frames) for r in runs)))
    if not common:
        return
    values = np.array([[dict(zip(r.frames, r.returns, strict=True))[f] for f in common] for r in runs])
    mean = values.mean(0)
    band = np.array([bootstrap_ci(values[:, j]) for j in range(len(common))])
    (line,) = ax.plot(common, mean, label=f"{algo} (n={len(runs)})")
    ax.fill_between(common, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.2)


def pairs_table(finals: dict[str, np.ndarray]) -> list[str]:
    """Every pair of algorithms on a task: difference, its CI, p-values, and what could be detected."""
    pairs = stats.compare_task(finals)
    if not pairs:
        return []
    lines = [
        "| pair | difference of means [95% CI] | p (permutation) | p (Holm) | claimed | detectable at 80% power |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        lines.append(
            f"| {p.a} − {p.b} | {p.diff:+.4g} [{p.ci[0]:+.4g}, {p.ci[1]:+.4g}] | {p.p:.3g} | {p.p_holm:.3g} | "
            f"{'yes' if p.significant else 'no'} | {p.detectable():.3g} |"
        )
    return [*lines, ""]


def _aggregate(tasks: list[TaskSummary], root: Path, plt) -> list[str]:
    algos = sorted({a for t in tasks for a in t.by_algo})
    lines = [
        "## Aggregate over tasks",
        "",
        "Normalized score per run: (final - initial) / (best - initial) of its task (1 = the task's best "
        "algorithm's mean). IQM, mean and optimality gap (mean shortfall below 1) over all runs of an "
        "algorithm, with 95% stratified bootstrap CIs (runs resampled within each task; rliable's definitions).",
        "",
        "| algorithm | tasks | runs | IQM [95% CI] | mean [95% CI] | optimality gap [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    scores = {
        algo: {t.env: np.array([normalized(r, t) for r in t.by_algo[algo]]) for t in tasks if algo in t.by_algo}
        for algo in algos
    }
    points = []
    for algo in algos:
        groups = list(scores[algo].values())
        pooled = np.concatenate(groups)
        cis = {
            name: stats.stratified_bootstrap([groups], lambda g, f=f: f(np.concatenate(g)))
            for name, f in (("iqm", iqm), ("mean", np.mean), ("gap", stats.optimality_gap))
        }
        lines.append(
            f"| {algo} | {len(groups)} | {len(pooled)} | "
            f"{iqm(pooled):.3f} [{cis['iqm'][0]:.3f}, {cis['iqm'][1]:.3f}] | "
            f"{pooled.mean():.3f} [{cis['mean'][0]:.3f}, {cis['mean'][1]:.3f}] | "
            f"{stats.optimality_gap(pooled):.3f} [{cis['gap'][0]:.3f}, {cis['gap'][1]:.3f}] |"
        )
        points.append((algo, iqm(pooled), cis["iqm"]))
    lines += _improvement(scores)
    fig, (ax, prof) = plt.subplots(1, 2, figsize=(11, 0.6 * len(points) + 2.2))
    for i, (_algo, value, (low, high)) in enumerate(points):
        ax.errorbar(value, i, xerr=[[value - low], [high - value]], fmt="o", capsize=4)
    ax.set_yticks(range(len(points)), [p[0] for p in points])
    ax.set_xlabel("normalized score, IQM (95% CI)")
    taus = np.linspace(-0.5, 1.5, 81)
    for algo in algos:
        prof.plot(taus, stats.performance_profile(np.concatenate(list(scores[algo].values())), taus), label=algo)
    prof.set_xlabel("normalized score threshold τ")
    prof.set_ylabel("fraction of runs with score > τ")
    prof.set_title("performance profiles")
    prof.legend()
    fig.tight_layout()
    fig.savefig(root / "aggregate.png", dpi=110)
    plt.close(fig)
    return [*lines, "", "![aggregate: IQM and performance profiles](aggregate.png)"]


def _improvement(scores: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Probability of improvement P(X > Y) over the tasks both ran, with stratified bootstrap CIs."""
    algos = list(scores)
    rows = []
    for x in algos:
        for y in algos:
            common = [t for t in scores[x] if t in scores[y]]
            if x == y or not common:
                continue
            a, b = [scores[x][t] for t in common], [scores[y][t] for t in common]
            low, high = stats.stratified_bootstrap([a, b], stats.improvement)
            rows.append(f"| {x} | {y} | {len(common)} | {stats.improvement(a, b):.2f} [{low:.2f}, {high:.2f}] |")
    if not rows:
        return []
    return [
        "",
        "Probability of improvement P(X > Y): the chance that a run of X scores above a run of Y on the same "
        "task (ties count half), averaged over the tasks both ran, with a 95% stratified bootstrap CI. A CI "
        "that holds 0.5 leaves the order open.",
        "",
        "| X | Y | tasks | P(X > Y) [95% CI] |",
        "|---|---|---|---|",
        *rows,
    ]
