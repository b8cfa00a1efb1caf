"""DQN (N=1) on gym/CartPole-v1 against Stable-Baselines3 2.9.2 DQN with the same hyperparameters, same run.

Both use rl-baselines3-zoo's CartPole-v1 DQN config: 256x256 ReLU, lr 2.3e-3, batch 64, buffer 100k,
1000 random steps, 128 gradient steps after every 256 env steps, the target network copied once per
training burst, epsilon to 0.04 over the first 8k steps, Huber loss, gradient clip 10, no double Q, one
env. Both are evaluated greedily (16 episodes) every 5k steps; for each seed the two run back to back.
Needs ``pip install stable-baselines3==2.9.2`` (the ``bench`` extra).

    python experiments/benchmarks/peers/dqn_vs_sb3.py [--seeds 0 1 2] [--frames 50000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent / "peer_drivers"))

import torch
from _report import write_section
from sb3_pendulum import evaluate

from marlkit.training.experiment import Experiment, build_config

EVERY = 5_000
SOLVED = 475.0
OVERRIDES = {
    "experiment.num_envs": 1,
    "experiment.eval_every": EVERY,
    "experiment.eval_episodes": 16,
    "experiment.progress": False,
    "algo.rollout_steps": 256,
    "algo.updates_per_frame": 0.5,
    "algo.warmup_frames": 1_000,
    "algo.eps_decay_frames": 7_000,
    "algo.eps_final": 0.04,
    "algo.lr": 2.3e-3,
    "algo.batch_size": 64,
    "algo.buffer_size": 100_000,
    "algo.hidden": [256, 256],
    "algo.target_period": 128,
    "algo.td_loss": "huber",
    "algo.double_q": False,
    "algo.max_grad_norm": 10.0,
}


def run_marlkit(seed: int, frames: int) -> tuple[list[float], float]:
    cfg = build_config("dqn", "gym/CartPole-v1", {**OVERRIDES, "experiment.frames": frames, "experiment.seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        summary = Experiment(cfg, Path(tmp) / "run").run()
        with open(Path(tmp) / "run" / "metrics.csv") as f:
            curve = [float(r["eval_return_mean"]) for r in csv.DictReader(f) if r.get("eval_return_mean")]
    return curve[1:], summary["wall_s"]  # without the untrained evaluation at frame 0


def run_sb3(seed: int, frames: int) -> tuple[list[float], float]:
    import gymnasium as gym
    from stable_baselines3 import DQN

    model = DQN(
        "MlpPolicy", gym.make("CartPole-v1"), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1_000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=8_000 / frames, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
        seed=seed, verbose=0,
    )  # fmt: skip
    curve, wall = [], 0.0
    for _ in range(frames // EVERY):
        start = time.perf_counter()
        model.learn(EVERY, reset_num_timesteps=False)
        wall += time.perf_counter() - start
        curve.append(evaluate(model, seed, 16, "CartPole-v1"))
    return curve, wall


def summarize(curve: list[float]) -> dict:
    hit = next((i for i, v in enumerate(curve) if v >= SOLVED), None)
    return {"final": curve[-1], "best": max(curve), "frames_to_475": None if hit is None else (hit + 1) * EVERY,
            "evals_at_or_above_475": sum(v >= SOLVED for v in curve), "curve": curve}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=50_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        ours, ours_wall = run_marlkit(seed, args.frames)
        ref, ref_wall = run_sb3(seed, args.frames)
        runs.append({"seed": seed, "marlkit": summarize(ours), "sb3": summarize(ref),
                     "marlkit_wall_s": ours_wall, "sb3_wall_s": ref_wall})  # fmt: skip
        print(json.dumps(runs[-1]), flush=True)
    rows = [
        "| | final eval, per seed | best eval, per seed | steps to the first eval >= 475, per seed | evals >= 475 "
        "(of " + str(args.frames // EVERY) + "), per seed | wall-clock median (s) |",
        "|---|---|---|---|---|---|",
    ]
    for who, label in (("marlkit", "marlkit `dqn`"), ("sb3", "SB3 2.9.2 `DQN`")):
        per = [r[who] for r in runs]
        final = ", ".join(f"{p['final']:.0f}" for p in per)
        best = ", ".join(f"{p['best']:.0f}" for p in per)
        first = ", ".join(str(p["frames_to_475"] or "never") for p in per)
        count = ", ".join(str(p["evals_at_or_above_475"]) for p in per)
        wall = statistics.median(r[who + "_wall_s"] for r in runs)
        rows.append(f"| {label} | {final} | {best} | {first} | {count} | {wall:.0f} |")
    results = {"frames": args.frames, "runs": runs}
    print(json.dumps(results, indent=1))
    body = (
        "Same hyperparameters for both (rl-baselines3-zoo's CartPole-v1 DQN config, see the script). Greedy "
        f"evaluation, 16 episodes every {EVERY} steps; wall-clock counts training only for SB3 and training plus "
        "evaluations for marlkit.\n\n"
        + "\n".join(rows)
        + f"\n\nmarlkit overrides: `{' '.join(f'{k}={json.dumps(v)}' for k, v in OVERRIDES.items())}`"
    )
    write_section("dqn_vs_sb3", f"DQN (N=1) on gym/CartPole-v1, {args.frames // 1000}k steps, against SB3", body,
                  results)  # fmt: skip


if __name__ == "__main__":
    main()
