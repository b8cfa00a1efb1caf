"""The report's section for a game (a competitive or mixed task): each side's final returns, then the
cross-play matrix of every run's side against every run's opponents, averaged per pair of algorithms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from marlkit.analysis.games import crossplay
from marlkit.analysis.results import TaskSummary, csv_rows, file_slug
from marlkit.analysis.stats import bootstrap_ci


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
        figure = f"crossplay_{file_slug(task.env)}_{file_slug(side)}.png"
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
    (root / f"crossplay_{file_slug(task.env)}.json").write_text(json.dumps(result, indent=1))
    return lines


def _final_row(run: Path) -> dict[str, str]:
    rows = [r for r in csv_rows(run / "metrics.csv") if r.get("eval_return_mean")]
    return rows[-1] if rows else {}
