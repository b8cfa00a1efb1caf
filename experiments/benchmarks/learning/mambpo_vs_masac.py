"""Multi-agent MBPO against MASAC on vmas/navigation: env frames each needs to reach MASAC's return
at 60k frames (target: MAMBPO needs <= 1/3 of them).

MASAC runs with the off-policy navigation benchmark's config (``offpolicy_learning.py navigation``);
MAMBPO adds a joint world model over all agents' observations and actions on top of the same config.
Runs go to ``runs/bench/mambpo_navigation`` and finished ones are skipped.

    python experiments/benchmarks/learning/mambpo_vs_masac.py [--seeds 0 1 2] [--mambpo-frames 20000]
    python experiments/benchmarks/learning/mambpo_vs_masac.py --only mambpo --seeds 1   # one worker, no docs
    python experiments/benchmarks/learning/mambpo_vs_masac.py --only mambpo_known_reward --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _learning import ROOT, run_dir, run_one
from _report import write_section
from offpolicy_learning import PRESETS

MASAC = {**PRESETS["navigation"], "frames": 60_000}
MODEL = {
    "algo.updates_per_frame": 0.5,
    "algo.real_ratio": 0.5,
    "algo.retrain_every": 2_000,
    "algo.rollouts_per_frame": 5,
    "algo.model_refreshes": 4,
    "experiment.eval_every": 2_000,
}
# The control: MASAC with MAMBPO's frames, evaluations and gradient steps per frame, without a model.
# It separates what the model's data buys from what the 10x higher update ratio alone buys.
CONTROL_KEYS = ("algo.updates_per_frame", "experiment.eval_every")


RUNS = (
    "masac",
    "mambpo",
    "mambpo_known_reward",
    "mambpo_beta_nll",
    "mambpo_beta_nll_known_reward",
    "masac_same_updates",
)


def eval_curve(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.csv") as f:
        return [(int(r["frames"]), float(r["eval_return_mean"])) for r in csv.DictReader(f) if r["eval_return_mean"]]


def first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((frames for frames, value in curve if frames > 0 and value >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mambpo-seeds", type=int, nargs="+", help="MAMBPO's seeds if not --seeds")
    parser.add_argument("--control-seeds", type=int, nargs="*", help="no-model control seeds (default: MAMBPO's)")
    parser.add_argument("--mambpo-frames", type=int, default=20_000)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--only", choices=RUNS, help="run one row's seeds, write no docs")
    args = parser.parse_args()
    out = Path(args.out)
    short = {"frames": args.mambpo_frames}
    mambpo = {**MASAC, **short, "overrides": {**MASAC["overrides"], **MODEL}}
    # The same MAMBPO with synthetic rewards from navigation's known reward function (marlkit.models.rewards):
    # it separates what the learned reward costs from what the rest of the model does.
    known = {**mambpo, "overrides": {**mambpo["overrides"], "algo.reward": "known"}}
    # beta-NLL (0.5): plain NLL left the velocity change unfit (marlkit.models.world_model.gaussian_nll).
    beta = {**mambpo, "overrides": {**mambpo["overrides"], "algo.model.nll_beta": 0.5}}
    beta_known = {**known, "overrides": {**known["overrides"], "algo.model.nll_beta": 0.5}}
    control = {**MASAC, **short, "overrides": {**MASAC["overrides"], **{k: MODEL[k] for k in CONTROL_KEYS}}}
    # row name -> (registry algo, preset, run directory under --out)
    plan = {
        "masac": ("masac", MASAC, "mambpo_navigation"),
        "mambpo": ("mambpo", mambpo, "mambpo_navigation"),
        "mambpo_known_reward": ("mambpo", known, "mambpo_navigation_known_reward"),
        "mambpo_beta_nll": ("mambpo", beta, "mambpo_navigation_beta_nll"),
        "mambpo_beta_nll_known_reward": ("mambpo", beta_known, "mambpo_navigation_beta_nll_known_reward"),
        "masac_same_updates": ("masac", control, "mambpo_navigation_control"),
    }
    if args.only:  # parallel workers: run, then aggregate with a plain call that skips finished runs
        algo, preset, name = plan[args.only]
        for seed in args.seeds:
            run_one(preset, name, algo, seed, out)
        return
    finals = [run_one(MASAC, "mambpo_navigation", "masac", s, out)["final_eval_return_mean"] for s in args.seeds]
    target = statistics.median(finals)
    rows = {}
    seeds = {"masac": args.seeds, "mambpo": args.mambpo_seeds or args.seeds}
    model_rows = [row for row, (algo, _, _) in plan.items() if algo == "mambpo"]
    for row in model_rows:
        seeds[row] = seeds["mambpo"]
    seeds["masac_same_updates"] = args.control_seeds if args.control_seeds is not None else seeds["mambpo"]
    for row, (algo, preset, name) in plan.items():
        runs = []
        for seed in seeds[row]:
            summary = run_one(preset, name, algo, seed, out)
            curve = eval_curve(run_dir(out, name, preset, algo, seed))
            runs.append(
                {
                    "seed": seed,
                    "final": summary["final_eval_return_mean"],
                    "frames_to_target": first_reaching(curve, target),
                    "wall_s": summary["wall_s"],
                    "curve": curve,
                }
            )
            print(json.dumps({"row": row, **{k: v for k, v in runs[-1].items() if k != "curve"}}), flush=True)
        rows[row] = runs
    met = {
        row: all(r["frames_to_target"] is not None and r["frames_to_target"] <= MASAC["frames"] / 3 for r in rows[row])
        for row in model_rows
    }
    results = {"target": target, "masac_frames": MASAC["frames"], "mambpo_frames": args.mambpo_frames, "runs": rows}
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    table = [
        "| run | frames | final eval median [min, max] | per seed | frames to reach the target, per seed "
        "| wall-clock per seed (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row, runs in rows.items():
        frames = MASAC["frames"] if row == "masac" else args.mambpo_frames
        finals = [r["final"] for r in runs]
        spread = f"{statistics.median(finals):.2f} [{min(finals):.2f}, {max(finals):.2f}]" if runs else "-"
        per_seed = ", ".join(f"{r['final']:.2f}" for r in runs)
        hits = ", ".join(str(r["frames_to_target"]) if r["frames_to_target"] else "not reached" for r in runs)
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in runs)
        table.append(f"| {row} | {frames:,} | {spread} | {per_seed} | {hits} | {walls} |")
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in MODEL.items())
    control_overrides = " ".join(f"{k}={json.dumps(MODEL[k])}" for k in CONTROL_KEYS)
    body = (
        f"Target return: MASAC's median final eval return at 60k frames over seeds {args.seeds}: **{target:.2f}**. "
        f"MAMBPO seeds: {seeds['mambpo']}. Target for MAMBPO: reach it within {MASAC['frames'] // 3:,} "
        "frames (1/3). MAMBPO runs the MASAC config "
        f"of the off-policy navigation benchmark plus `{overrides}` (model: 7 members, 5 elites, 4 x 200 SiLU, "
        "learned termination head, one-step rollouts). `mambpo_known_reward` is the same with `algo.reward=known`: "
        "synthetic rewards come from navigation's reward function applied to the model's predicted observations "
        "(`marlkit/models/rewards.py`) instead of the model's reward outputs. The `mambpo_beta_nll` rows train the "
        "model with beta-NLL (`algo.model.nll_beta=0.5`) instead of the Gaussian NLL. `masac_same_updates` is the "
        "control: MASAC with "
        f"MAMBPO's frames and `{control_overrides}`, no model (seeds {seeds['masac_same_updates']}). "
        "Evaluations (16 episodes, mean over agents): MASAC every 6k frames, the others every 2k.\n\n"
        + "\n".join(table)
        + "\n\n"
        + "; ".join(f"{row}: target {'met' if ok else 'not met'}" for row, ok in met.items())
        + "."
    )
    write_section("model_based_mambpo_navigation", "Multi-agent MBPO vs MASAC on vmas/navigation", body, results)


if __name__ == "__main__":
    main()
