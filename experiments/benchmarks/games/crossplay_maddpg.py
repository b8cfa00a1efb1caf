"""MADDPG against DDPG in cross-play (Lowe et al. 2017, Figure 3 / Table 2), on simple_adversary and simple_tag.

The paper trains MADDPG and DDPG on each competitive task and then lets a MADDPG team play a DDPG
team on the other side, and the reverse: MADDPG teams do better against the same opponents, on both
sides. Here each algorithm trains on all groups of the task (continuous actions, marlkit's presets:
``maddpg`` is centralized critics Q_i(s, a_1..a_N), ``ddpg`` local critics Q_i(o_i, a_i)), 3 seeds,
with ``marlkit compare``. Then every run's policy of each side plays every run's policies of the
other side (``marlkit.analysis.games.crossplay``, ``--episodes`` deterministic episodes per match).

For each side and each opponent algorithm, the table gives the side's return when MADDPG plays it
and when DDPG plays it, against the same opponent runs (per row run: its mean over the opponent
runs, excluding itself), and the difference MADDPG - DDPG with a 95% bootstrap CI (resampling the row
runs of each algorithm). Higher is better for the side playing. simple_adversary: the adversary is
paid minus its distance to the goal, the good agents their distance margin over the adversary;
simple_tag: predators (``adversary``) +10 per catch each, the prey -10 per catch and a boundary penalty.

    python experiments/benchmarks/games/crossplay_maddpg.py            # trains (resumable), updates docs/benchmarks.md
    python experiments/benchmarks/games/crossplay_maddpg.py --quick    # smoke run, JSON only
    python experiments/benchmarks/games/crossplay_maddpg.py --tasks mpe/simple_tag_v3 --gamma 0.95 \
        --out runs/bench/maddpg-crossplay-gamma095               # the paper's discount
    python experiments/benchmarks/games/crossplay_maddpg.py --set algo.share_critic=false \
        --label "separate critics" --out runs/bench/maddpg-crossplay-separate   # a critic per agent, both
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _report import write_section

from marlkit.analysis.games import crossplay

warnings.filterwarnings("ignore")
TASKS = ("mpe/simple_adversary_v3", "mpe/simple_tag_v3")
ALGOS = ("maddpg", "ddpg")


def diff_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, samples: int = 10_000) -> tuple[float, float]:
    """95% bootstrap CI of mean(a) - mean(b), resampling each group."""
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, len(a), (samples, len(a)))].mean(1)
    db = b[rng.integers(0, len(b), (samples, len(b)))].mean(1)
    low, high = np.percentile(da - db, [2.5, 97.5])
    return float(low), float(high)


def analyse(result: dict) -> list[dict]:
    runs = [Path(r) for r in result["runs"]]
    algo_of = [json.loads((r / "config.json").read_text())["algo_name"] for r in runs]
    rows = []
    for side, matrix in result["matrix"].items():
        m = np.array(matrix)
        for opponent in ALGOS:
            cols = [j for j, a in enumerate(algo_of) if a == opponent]
            per_row = {
                algo: np.array([np.mean([m[i, j] for j in cols if j != i]) for i, a in enumerate(algo_of) if a == algo])
                for algo in ALGOS
            }
            low, high = diff_ci(per_row["maddpg"], per_row["ddpg"])
            rows.append(
                {
                    "side": side,
                    "opponent": opponent,
                    "maddpg": round(float(per_row["maddpg"].mean()), 3),
                    "ddpg": round(float(per_row["ddpg"].mean()), 3),
                    "maddpg_minus_ddpg": round(float(per_row["maddpg"].mean() - per_row["ddpg"].mean()), 3),
                    "ci": [round(low, 3), round(high, 3)],
                    "per_run": {a: [round(float(x), 3) for x in v] for a, v in per_row.items()},
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=150_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=64, help="episodes per cross-play match")
    parser.add_argument("--out", default="runs/bench/maddpg-crossplay")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--gamma", type=float, help="discount of both algorithms (default: their presets')")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="options of both algorithms (algo.share_critic=false); name the section with --label",
    )
    parser.add_argument("--label", default="", help="the section's name suffix and title tail for --set runs")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (one torch thread each)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.set and not args.label:
        parser.error("--set needs --label: the section of these runs must not replace the presets' section")
    if args.quick:
        args.frames, args.seeds, args.episodes, args.out = 2_000, "0,1", 4, "/tmp/marlkit-crossplay-quick"
    start = time.perf_counter()
    sweep = [
        sys.executable, "-m", "marlkit.cli", "compare", "--algos", ",".join(ALGOS), "--envs", args.tasks,
        "--seeds", args.seeds, "--frames", str(args.frames), "--out", args.out, "--jobs", str(args.jobs),
        "env.continuous_actions=true", "experiment.progress=false", "experiment.torch_threads=1",
    ] + ([f"algo.gamma={args.gamma}"] if args.gamma else []) + args.set  # fmt: skip
    subprocess.run(sweep, check=True, capture_output=True)  # finished runs are kept: a rerun resumes
    torch.set_num_threads(2)
    results = {"frames": args.frames, "seeds": args.seeds, "episodes": args.episodes, "options": args.set,
               "tasks": {}}  # fmt: skip
    for task in args.tasks.split(","):
        runs = sorted(
            p.parent for p in Path(args.out).rglob("config.json") if json.loads(p.read_text())["env_name"] == task
        )
        cross = crossplay(runs, episodes=args.episodes)
        results["tasks"][task] = {"rows": analyse(cross), "matrix": cross["matrix"], "runs": cross["runs"]}
    results["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results))
    if args.quick:
        return
    lines = [
        f"MADDPG and DDPG each trained on all groups (continuous actions), {args.frames} frames, seeds {args.seeds}"
        f"{f', discount {args.gamma}' if args.gamma else ''}"
        f"{', options `' + ' '.join(args.set) + '` on both' if args.set else ''}; "
        f"then every run's side against every other run's opponents, {args.episodes} deterministic episodes per "
        "match. Return of the side named (higher is better for it), mean over the row algorithm's runs of each "
        "run's mean over the opponent runs; difference MADDPG - DDPG with a 95% bootstrap CI over row runs.",
        "",
        "| task | side | opponents | MADDPG plays the side | DDPG plays the side | MADDPG - DDPG [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for task, data in results["tasks"].items():
        for r in data["rows"]:
            lines.append(
                f"| {task} | {r['side']} | {r['opponent']} | {r['maddpg']:.3f} | {r['ddpg']:.3f} | "
                f"{r['maddpg_minus_ddpg']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] |"
            )
    lines += ["", f"Wall-clock of the cross-play evaluation (training excluded when resumed): {results['wall_s']} s."]
    suffix = f"_gamma{args.gamma:g}".replace(".", "") if args.gamma else ""
    suffix += f"_{args.label}".replace(" ", "_") if args.label else ""
    title = "MADDPG vs DDPG cross-play (issue 16)" + (f", discount {args.gamma:g}" if args.gamma else "")
    title += f", {args.label}" if args.label else ""
    write_section("crossplay_maddpg" + suffix, title, "\n".join(lines), results)


if __name__ == "__main__":
    main()
