"""marlkit against EPyMARL on EPyMARL's own task, LBF Foraging-8x8-2p-2f-coop-v3 with 50-step episodes, at
equal env steps (issue 30).

EPyMARL runs from its source at a pinned commit (``.peers/epymarl``, made by ``peers.py --setup``) through
``peer_drivers/epymarl_gymma.py`` with its own config for the algorithm (``src/config/algs/<algo>.yaml``
on top of ``default.yaml``; the common reward, the sum over agents, as its default). marlkit runs twice
per seed, both on the same common reward (``env.team_reward``):

* ``marlkit``: marlkit's defaults for the algorithm;
* ``matched``: EPyMARL's config as marlkit options (EPYMARL_CONFIG below): one env, an update every 50-step
  episode on 32 episodes' worth of transitions (1,600), a 5,000-episode buffer, hard target copies every
  200 updates, epsilon 1 -> 0.05 over 50k steps, Adam 5e-4, clip 10, 64x64 ReLU agents with an id input,
  rewards standardized by their running mean and std, the time limit as terminal. What differs: EPyMARL
  samples whole episodes (marlkit samples transitions) and updates its reward statistics from each
  sampled batch (marlkit from every stored step).
* ``matched-x8``: the same on 8 env copies (MATCHED_X8): the same gradient steps per env step on the same
  batches, with acting and stepping shared by 8 envs; EPyMARL's LBF config runs one env.
* ``matched-x8-norm`` (QMIX only): and the mixer's state normalized (``algo.state_norm``), marlkit's answer
  to the drift of QMIX's mixer on LBF's raw grid coordinates (docs/ablation.md).

Evaluation on both sides: 100 greedy episodes every 50k steps; each run reports its last evaluation, the
mean over its evaluation points and its best point (the EPyMARL paper's two metrics are the mean over
training and the best point of the seed mean). One torch thread per run. Each run writes
``results/lbf_<algo>_<side>_s<seed>.json``; a rerun skips existing files, so runs spread over sessions.

    python experiments/benchmarks/peers/peers.py --setup --git epymarl=PATH   # PATH: a git dir of EPyMARL
    python experiments/benchmarks/peers/epymarl_side_by_side.py --algo qmix --seeds 0 1 2 --frames 500000
    python experiments/benchmarks/peers/epymarl_side_by_side.py --algo qmix --seeds 0 1 2 --report
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _report import write_section
from _sides import load, refuse_stale, report, run_driver, run_marlkit, run_missing

ROOT = Path(__file__).resolve().parents[3]
PYTHON = ROOT / ".peers" / "epymarl" / "bin" / "python"
ENV = "lbf/Foraging-8x8-2p-2f-coop-v3"
KEY = "lbforaging:Foraging-8x8-2p-2f-coop-v3"
TIME_LIMIT = 50
EVAL = {"every": 50_000, "episodes": 100}
COMMON = {"env.team_reward": True, "experiment.eval_every": EVAL["every"], "experiment.eval_episodes": EVAL["episodes"],
          "experiment.progress": False, "experiment.tensorboard": False, "experiment.torch_threads": 1}  # fmt: skip
EPYMARL_CONFIG = {
    "experiment.num_envs": 1,
    "algo.rollout_steps": TIME_LIMIT,
    "algo.batch_size": 32 * TIME_LIMIT,
    "algo.updates_per_frame": 1 / TIME_LIMIT,
    "algo.buffer_size": 5000 * TIME_LIMIT,
    "algo.warmup_frames": 32 * TIME_LIMIT,
    "algo.eps_start": 1.0,
    "algo.eps_final": 0.05,
    "algo.eps_decay_frames": 50_000,
    "algo.target_update": "hard",
    "algo.target_period": 200,
    "algo.lr": 5e-4,
    "algo.max_grad_norm": 10.0,
    "algo.hidden": [64, 64],
    "algo.activation": "relu",
    "algo.agent_id": True,
    "algo.double_q": True,
    "algo.n_step": 1,
    "algo.td_loss": "mse",
    "algo.reward_norm": True,
    "algo.reward_center": True,
    "algo.time_limit_terminal": True,
}
# EPyMARL's mixer reads the raw state (marlkit's default too; stated, so that a side never follows a default).
ALGO_CONFIG = {"qmix": {"algo.mixer_embed": 32, "algo.hypernet_hidden": 64, "algo.state_norm": False}, "vdn": {}}
EPYMARL_EVAL = {"test_interval": EVAL["every"], "test_nepisode": EVAL["episodes"], "log_interval": EVAL["every"],
                "runner_log_interval": EVAL["every"], "learner_log_interval": EVAL["every"]}  # fmt: skip
# EPyMARL's config on 8 env copies: the same updates per env step (one per 50) on the same batches, so the
# per-step cost of acting and stepping is shared by 8 envs.
MATCHED_X8 = {"experiment.num_envs": 8}
LABELS = {"marlkit": "marlkit-{}", "epymarl": "EPyMARL-{}", "matched": "marlkit-{}-matched",
          "matched-x8": "marlkit-{}-matched-x8", "matched-x8-norm": "marlkit-{}-matched-x8-norm"}  # fmt: skip


def eval_points(run_dir: Path, summary: dict) -> dict:
    """Every evaluation of the run (EPyMARL's metrics are over them) and the wall-clock with evaluations,
    as EPyMARL's is measured."""
    with (run_dir / "metrics.csv").open() as f:
        points = [(int(r["frames"]), float(r["eval_return_mean"])) for r in csv.DictReader(f)
                  if r.get("eval_return_mean") not in ("", None)]  # fmt: skip
    returns = [v for _, v in points]
    return {"eval_return": returns[-1], "eval_mean_over_points": float(np.mean(returns)),
            "eval_best_point": max(returns), "eval_points": [t for t, _ in points], "eval_returns": returns,
            "wall_s": summary["wall_s"]}  # fmt: skip


def side_options(algo: str) -> dict[str, dict]:
    """Each marlkit side's options beyond the common ones."""
    matched = {**EPYMARL_CONFIG, **ALGO_CONFIG[algo]}
    sides = {"marlkit": {}, "matched": matched, "matched-x8": {**matched, **MATCHED_X8}}
    if algo == "qmix":
        sides["matched-x8-norm"] = {**sides["matched-x8"], "algo.state_norm": True}
    return sides


def run_ours(algo: str, frames: int, seed: int, side: str) -> dict:
    overrides = {**COMMON, **side_options(algo)[side], "experiment.frames": frames, "experiment.seed": seed}
    return run_marlkit(algo, ENV, overrides, measure=eval_points)


def run_epymarl(algo: str, frames: int, seed: int) -> dict:
    hint = "run `python experiments/benchmarks/peers/peers.py --setup --git epymarl=PATH` first"
    args = [algo, KEY, str(frames), str(seed), str(TIME_LIMIT), json.dumps(EPYMARL_EVAL)]
    return run_driver(PYTHON, "epymarl_gymma.py", args, hint)


def write_report(algo: str, seeds: list[int], frames: int) -> None:
    labels = {side: label.format(algo) for side, label in LABELS.items()}
    runs = load(f"lbf_{algo}", list(LABELS), seeds)
    refuse_stale(f"lbf_{algo}", runs, ENV, side_options(algo))
    lines, results = report(runs, labels, "epymarl")
    metric_rows = ["| side | mean over evaluation points, per seed | best point, per seed |", "|---|---|---|"]
    for side, rs in runs.items():
        over = ", ".join(f"{r['eval_mean_over_points']:.3f}" for r in rs)
        best = ", ".join(f"{r['eval_best_point']:.3f}" for r in rs)
        metric_rows.append(f"| {labels[side]} | {over} | {best} |")
    results = {"env": ENV, "algo": algo, "frames": frames, **results, "runs": runs}
    norm = ("; marlkit-qmix-matched-x8-norm: and the mixer's state normalized (`algo.state_norm`)"
            if "matched-x8-norm" in side_options(algo) else "")  # fmt: skip
    body = (
        f"marlkit-{algo} and EPyMARL-{algo} on {ENV} ({TIME_LIMIT}-step episodes), {frames:,} env steps per run, one "
        "torch thread each, back to back per seed; every agent trains on the common reward (EPyMARL's default, "
        "marlkit's env.team_reward). EPyMARL: its own config for the algorithm at the commit in each result "
        "file's `framework`; marlkit: its defaults; marlkit-matched: EPyMARL's config as marlkit options (the "
        f"script's EPYMARL_CONFIG); marlkit-{algo}-matched-x8: the same on 8 env copies, the same gradient steps per "
        f"env step (MATCHED_X8){norm}. Evaluation: {EVAL['episodes']} greedy episodes every {EVAL['every']:,} steps, "
        "team return; the table compares the last evaluation, wall-clock includes evaluations. Result files: "
        f"`experiments/benchmarks/peers/results/lbf_{algo}_*`.\n\n" + "\n".join(lines) + "\n" + "\n".join(metric_rows)
    )
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    write_section(f"epymarl_lbf_{algo}", f"{algo.upper()} against EPyMARL on LBF Foraging-8x8-2p-2f-coop, "
                  f"{frames // 1000}k steps", body, results)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(ALGO_CONFIG), default="qmix")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=500_000)
    sides_help = "comma-separated of epymarl, matched, matched-x8, matched-x8-norm (qmix), marlkit"
    parser.add_argument("--sides", default="epymarl,matched,marlkit", help=sides_help)
    parser.add_argument("--report", action="store_true", help="only write the report from the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        run_missing(f"lbf_{args.algo}", args.seeds, args.sides.split(","), "epymarl",
                    lambda seed: run_epymarl(args.algo, args.frames, seed),
                    lambda side, seed: run_ours(args.algo, args.frames, seed, side))  # fmt: skip
    write_report(args.algo, args.seeds, args.frames)


if __name__ == "__main__":
    main()
