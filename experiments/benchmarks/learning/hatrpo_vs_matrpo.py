"""HATRPO against MATRPO where the HATRPO paper claims its advantage (issue 33): MaMuJoCo with one joint per
agent, where the agents' updates interact most, under the statistics protocol with enough seeds to decide.

The configs are the MaMuJoCo presets of ``onpolicy_learning.py`` (``halfcheetah6x1``, ``hopper3x1``) at a
smaller budget, so that 8-10 seeds per algorithm fit: the earlier 3-seed, 1M-step runs could not separate
anything. HATRPO and MATRPO differ only in the actor step: MATRPO updates every agent's trust-region step
from the same advantages, HATRPO updates the agents one after another in a random order, each on the
advantages reweighted by the ratios of the agents updated before it (the factor M).

Measured per run: the final checkpoint's mean return over 20 deterministic episodes (MaMuJoCo gives every
agent the robot's reward, so this is the robot's episode return), the mean over the periodic evaluations
(5 episodes each, every 50k steps: how fast it learns), the central critic's explained variance at the end,
and the wall-clock. Each run writes ``results/<task>_<algo>_<frames/1000>k_s<seed>.json``; a rerun skips
existing files, so seeds add up across sessions. One torch thread per run: two invocations with disjoint
seeds use the 2 cores.

    python experiments/benchmarks/learning/hatrpo_vs_matrpo.py halfcheetah6x1 --seeds 0 2 4 --frames 300000
    python experiments/benchmarks/learning/hatrpo_vs_matrpo.py halfcheetah6x1 --frames 300000 --report
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))

import numpy as np
import torch
from _report import write_section
from _sides import improvement_ci, run_marlkit
from onpolicy_learning import PRESETS

from marlkit.analysis.stats import improvement, t_ci, verdict
from marlkit.training.evaluation import evaluate_run

RESULTS = Path(__file__).parent / "results"
ALGOS = ("hatrpo", "matrpo")
FINAL_EPISODES = 20
EVAL_EVERY = 50_000


def result_path(task: str, algo: str, frames: int, seed: int) -> Path:
    return RESULTS / f"{task}_{algo}_{frames // 1000}k_s{seed}.json"


def measure(run_dir: Path, summary: dict) -> dict:
    """The final checkpoint's 20-episode return, the periodic evaluations and the last critic EV."""
    final = evaluate_run(run_dir, FINAL_EPISODES, "last")
    group = next(v for v in final.values() if isinstance(v, dict))
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    points = [(int(r["frames"]), float(r["eval_return_mean"])) for r in rows if r.get("eval_return_mean")]
    ev = [float(v) for k, v in rows[-1].items() if k.endswith("/critic_ev") and v]
    return {"eval_return": group["mean"], "eval_return_std": group["std"], "eval_points": [t for t, _ in points],
            "eval_returns": [v for _, v in points], "eval_mean_over_points": float(np.mean([v for _, v in points])),
            "critic_ev": ev[0] if ev else None}  # fmt: skip


def overrides(task: str) -> dict:
    """The preset's overrides with this benchmark's evaluation schedule."""
    return {**PRESETS[task]["overrides"], "experiment.eval_every": EVAL_EVERY}


def run(task: str, algo: str, frames: int, seed: int) -> dict:
    options = {**overrides(task), "experiment.progress": False, "experiment.tensorboard": False,
               "experiment.frames": frames, "experiment.seed": seed}  # fmt: skip
    return run_marlkit(algo, PRESETS[task]["env"], options, measure=measure)


def write_report(task: str, frames: int) -> None:
    runs = {a: sorted((json.loads(p.read_text()) for p in RESULTS.glob(f"{task}_{a}_{frames // 1000}k_s*.json")),
                      key=lambda r: r["seed"]) for a in ALGOS}  # fmt: skip
    finals = {a: np.array([r["eval_return"] for r in rs]) for a, rs in runs.items()}
    rows = ["| algorithm | runs | final return, mean [95% t-CI] | per seed (seed: return) | mean over evaluations "
            "| central critic EV at the end, median | wall-clock median (s) |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for a, rs in runs.items():
        low, high = t_ci(finals[a])
        per = ", ".join(f"{r['seed']}: {r['eval_return']:.0f}" for r in rs)
        speed = np.mean([r["eval_mean_over_points"] for r in rs])
        ev = np.median([r["critic_ev"] for r in rs])
        rows.append(f"| {a} | {len(rs)} | {finals[a].mean():.0f} [{low:.0f}, {high:.0f}] | {per} | {speed:.0f} | "
                    f"{ev:.2f} | {np.median([r['wall_s'] for r in rs]):.0f} |")  # fmt: skip
    sentence = verdict(finals)
    p_improve = improvement([finals["hatrpo"]], [finals["matrpo"]])
    low, high = improvement_ci(finals["hatrpo"], finals["matrpo"])
    over = verdict({a: [r["eval_mean_over_points"] for r in rs] for a, rs in runs.items()})
    preset = PRESETS[task]
    body = (
        f"HATRPO against MATRPO on {preset['env']} at {frames:,} steps per run, the `{task}` preset of "
        "`onpolicy_learning.py` (its overrides below) with evaluations every 50k steps. Final return: the final "
        f"checkpoint over {FINAL_EPISODES} deterministic episodes (the robot's episode return). One torch thread "
        "per run, two runs at a time on the 2 cores.\n\n"
        f"Overrides: `{' '.join(f'{k}={json.dumps(v)}' for k, v in overrides(task).items())}`.\n\n"
        + "\n".join(rows)
        + f"\n\n**Final return, the protocol:** {sentence} Probability of improvement P(hatrpo > matrpo) = "
        f"{p_improve:.2f} [{low:.2f}, {high:.2f}] (bootstrap over runs).\n\n"
        f"**Mean over the periodic evaluations (learning speed):** {over}\n"
    )
    results = {"task": task, "env": preset["env"], "frames": frames, "verdict": sentence, "p_improvement": p_improve,
               "p_improvement_ci": [low, high], "verdict_over_evaluations": over, "runs": runs}  # fmt: skip
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    write_section(f"hatrpo_vs_matrpo_{task}", f"HATRPO against MATRPO on {preset['env']} (one joint per agent), "
                  f"{frames // 1000}k steps, the statistics protocol", body, results)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("halfcheetah6x1", "hopper3x1"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--report", action="store_true", help="only write the report from the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    for seed in [] if args.report else args.seeds:
        for algo in ALGOS:  # the two algorithms back to back per seed, under the same machine load
            path = result_path(args.task, algo, args.frames, seed)
            if not path.exists():
                result = {**run(args.task, algo, args.frames, seed), "seed": seed}
                path.write_text(json.dumps(result, indent=1))
                print(json.dumps({k: result[k] for k in ("algo", "seed", "eval_return", "critic_ev", "wall_s")}),
                      flush=True)  # fmt: skip
    write_report(args.task, args.frames)


if __name__ == "__main__":
    main()
