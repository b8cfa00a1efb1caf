"""The default comparison (`marlkit compare` with no arguments) on two disjoint seed sets: does its verdict
replicate, and do the compared algorithms' critics fit (issue 33, item 4)?

Runs the default comparison exactly as `marlkit compare` does (its algorithms, task, frames, overrides and
jobs), once with its seeds and once with the seeds shifted by 100, and reports for each: every pair's
difference with its CI and Holm-corrected permutation p (the report's protocol), the verdict sentence, each
algorithm's final return, and its critics' fit at the end (``GROUP/critic_ev``: explained variance of the
value targets after the last update, mean over groups and seeds). Wall-clock of each set is measured here;
the README's fresh-venv time comes from main_command.py.

    python experiments/benchmarks/learning/headline.py [--out runs/bench/headline]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _learning import critic_fit
from _report import write_section

import marlkit
from marlkit.analysis import sweep

ROOT = Path(__file__).resolve().parents[3]
SHIFT = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "headline"))
    parser.add_argument(
        "--seeds", type=int, default=len(sweep.DEFAULT_SEEDS), help="how many seeds (default: compare's)"
    )
    args = parser.parse_args()
    base = list(range(args.seeds))
    sets = {"seeds": base, f"seeds + {SHIFT}": [s + SHIFT for s in base]}
    results: dict = {"algos": list(sweep.DEFAULT_ALGOS), "envs": list(sweep.DEFAULT_ENVS),
                     "frames": sweep.DEFAULT_FRAMES, "overrides": sweep.DEFAULT_OVERRIDES, "sets": {}}  # fmt: skip
    lines = []
    for name, seeds in sets.items():
        out = Path(args.out) / f"seeds{seeds[0]}-{seeds[-1]}"
        start = time.perf_counter()
        # The default comparison with these seeds (compare treats it as the default: no algos, tasks or options).
        run = marlkit.compare(seeds=seeds, out=out, progress=False)
        wall = time.perf_counter() - start
        assert run.report is not None and not run.failed, run.failed
        tables = run.report
        env = sweep.DEFAULT_ENVS[0]
        fits = {a: float(np.mean([critic_fit(out / sweep.slug(env) / a / f"seed{s}") for s in seeds]))
                for a in sweep.DEFAULT_ALGOS}  # fmt: skip
        finals = {row["algorithm"]: row for row in tables.algorithms}
        results["sets"][name] = {"seeds": seeds, "wall_s": wall, "verdict": tables.verdicts[env],
                                 "pairs": tables.pairs, "critic_ev": fits,
                                 "finals": {a: finals[a]["finals"] for a in finals}}  # fmt: skip
        # The runs' own wall-clock (a rerun of this script skips finished runs, so its own time says nothing).
        runs_wall = sum(json.loads((out / sweep.slug(env) / a / f"seed{s}" / "summary.json").read_text())["wall_s"]
                        for a in sweep.DEFAULT_ALGOS for s in seeds)  # fmt: skip
        results["sets"][name]["runs_wall_s"] = runs_wall
        lines += [f"### {name} ({', '.join(map(str, seeds))}): the runs' wall-clock sums to {runs_wall:.0f} s "
                  "(two at a time)", "",
                  "| algorithm | final return: mean [95% CI] | per seed | critic EV at the end |",
                  "|---|---|---|---|"]  # fmt: skip
        for algo in sweep.DEFAULT_ALGOS:
            row = finals[algo]
            values = ", ".join(f"{v:.1f}" for v in row["finals"])
            lines.append(f"| {algo} | {row['mean']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}] | {values} | "
                         f"{fits[algo]:.2f} |")  # fmt: skip
        lines += ["", "| pair | difference [95% CI] | p (Holm) | claimed |", "|---|---|---|---|"]
        for p in tables.pairs:
            lines.append(f"| {p['a']} − {p['b']} | {p['difference']:+.1f} [{p['ci_low']:+.1f}, {p['ci_high']:+.1f}] "
                         f"| {p['p_holm']:.3g} | {'yes' if p['claimed'] else 'no'} |")  # fmt: skip
        lines += ["", f"Verdict: {tables.verdicts[env]}", ""]
    verdicts = [s["verdict"] for s in results["sets"].values()]
    claims = [{f"{p['a']} > {p['b']}" if p["difference"] > 0 else f"{p['b']} > {p['a']}" for p in s["pairs"]
               if p["claimed"]} for s in results["sets"].values()]  # fmt: skip
    both, once = claims[0] & claims[1], claims[0] ^ claims[1]
    results.update(replicates=claims[0] == claims[1], claimed_on_both=sorted(both), claimed_on_one=sorted(once))
    body = (
        f"The default comparison ({', '.join(sweep.DEFAULT_ALGOS)} on {', '.join(sweep.DEFAULT_ENVS)}, "
        f"{sweep.DEFAULT_FRAMES:,} frames, overrides `{json.dumps(sweep.DEFAULT_OVERRIDES)}`) at {args.seeds} seeds, "
        f"on seeds 0-{args.seeds - 1} and on the same shifted by {SHIFT}. Claimed on both sets: "
        f"**{', '.join(sorted(both)) or 'nothing'}**; claimed on one set only: {', '.join(sorted(once)) or 'nothing'}."
        "\n\n" + "\n".join(lines)
    )
    print(json.dumps({"verdicts": verdicts, "claimed_on_both": sorted(both), "claimed_on_one": sorted(once),
                      "critic_ev": {n: s["critic_ev"] for n, s in results["sets"].items()}}, indent=1))  # fmt: skip
    title = f"The default comparison on two disjoint seed sets, {args.seeds} seeds"
    write_section(f"headline_{args.seeds}seeds", title, body, results)


if __name__ == "__main__":
    main()
