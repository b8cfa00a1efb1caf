"""SAC (N=1) on gym/Pendulum-v1 at 20k steps against Stable-Baselines3 2.9.2 SAC, in the same run.

Both use the same hyperparameters (SB3's defaults with lr 1e-3: 256x256 ReLU, batch 256, one gradient
step per env step, 100 random steps, tau 0.005, gamma 0.99, automatic temperature). For each seed the
two trainings run back to back, so the wall-clock ratio is measured under the same machine load.
Needs ``pip install stable-baselines3==2.9.2`` (the ``bench`` extra).

    python experiments/benchmarks/peers/sac_vs_sb3.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent / "peer_drivers"))

import gymnasium as gym
import torch
from _report import write_section
from sb3_pendulum import evaluate

from marlkit.training.experiment import Experiment, build_config

FRAMES = 20_000
OVERRIDES = {
    "experiment.num_envs": 1,
    "experiment.eval_every": 0,
    "experiment.progress": False,
    "algo.rollout_steps": 10,
    "algo.actor_lr": 1e-3,
    "algo.critic_lr": 1e-3,
    "algo.alpha_lr": 1e-3,
    "algo.warmup_frames": 100,
}


def run_marlkit(seed: int) -> tuple[float, float]:
    cfg = build_config("sac", "gym/Pendulum-v1", {**OVERRIDES, "experiment.frames": FRAMES, "experiment.seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        summary = Experiment(cfg, Path(tmp) / "run").run()
    return summary["final_eval_return_mean"], summary["wall_s"]


def run_sb3(seed: int) -> tuple[float, float]:
    from stable_baselines3 import SAC

    env = gym.make("Pendulum-v1")
    start = time.perf_counter()
    model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, verbose=0)
    model.learn(total_timesteps=FRAMES)
    wall = time.perf_counter() - start
    return evaluate(model, seed), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    runs = []
    for seed in args.seeds:
        ours, ours_wall = run_marlkit(seed)
        ref, ref_wall = run_sb3(seed)
        runs.append(
            {
                "seed": seed,
                "marlkit_eval": ours,
                "marlkit_wall_s": ours_wall,
                "sb3_eval": ref,
                "sb3_wall_s": ref_wall,
                "wall_ratio": ours_wall / ref_wall,
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    med = lambda k: statistics.median(r[k] for r in runs)
    rng = lambda k: f"[{min(r[k] for r in runs):.3g}, {max(r[k] for r in runs):.3g}]"
    results = {"runs": runs, **{f"median_{k}": med(k) for k in runs[0] if k != "seed"}}
    print(json.dumps(results, indent=1))
    rows = [
        "| | eval return median [min, max] | training wall-clock median (s) [min, max] |",
        "|---|---|---|",
        f"| marlkit `sac` | {med('marlkit_eval'):.1f} {rng('marlkit_eval')} | {med('marlkit_wall_s'):.0f} "
        f"{rng('marlkit_wall_s')} |",
        f"| SB3 2.9.2 `SAC` | {med('sb3_eval'):.1f} {rng('sb3_eval')} | {med('sb3_wall_s'):.0f} {rng('sb3_wall_s')} |",
    ]
    ratios = ", ".join(f"{r['wall_ratio']:.2f}" for r in runs)
    body = (
        "Same hyperparameters for both (SB3 defaults with lr 1e-3); marlkit collects 10 steps then takes 10 gradient "
        "steps, SB3 alternates 1 and 1. Deterministic evaluation, 16 episodes, after training. Target: eval return "
        f">= -200 and wall-clock <= 0.5x SB3's. Measured ratio marlkit / SB3 per seed: "
        f"{ratios} (median {med('wall_ratio'):.2f}).\n\n"
        + "\n".join(rows)
        + f"\n\nOverrides: `{' '.join(f'{k}={v}' for k, v in OVERRIDES.items())}`"
    )
    write_section(
        "sac_vs_sb3", f"SAC (N=1) on gym/Pendulum-v1, {FRAMES // 1000}k steps, against Stable-Baselines3", body, results
    )


if __name__ == "__main__":
    main()
