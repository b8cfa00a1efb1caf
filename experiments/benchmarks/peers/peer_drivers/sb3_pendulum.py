"""Runs inside the SB3 venv (experiments/benchmarks/peers/peers.py makes it): SAC (Stable-Baselines3 2.9.2) or
TRPO (sb3-contrib 2.9.2) on Pendulum-v1, then 16 deterministic evaluation episodes; prints one JSON line.

SAC: SB3's defaults with lr 1e-3 (as marlkit's sac_vs_sb3 benchmark). TRPO: rl-baselines3-zoo's
Pendulum-v1 config (2 envs, 1024 steps, gamma 0.9, 20 critic updates, lr 1e-3, gSDE every 4 steps).

    .peers/sb3/bin/python sb3_pendulum.py sac|trpo FRAMES SEED
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def main() -> None:
    algo, frames, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else torch.get_num_threads())
    start = time.perf_counter()
    if algo == "sac":
        from stable_baselines3 import SAC

        model = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=1e-3, seed=seed, verbose=0)
    else:
        from sb3_contrib import TRPO
        from stable_baselines3.common.env_util import make_vec_env

        env = make_vec_env("Pendulum-v1", n_envs=2, seed=seed)
        model = TRPO(
            "MlpPolicy",
            env,
            n_steps=1024,
            gamma=0.9,
            n_critic_updates=20,
            learning_rate=1e-3,
            use_sde=True,
            sde_sample_freq=4,
            seed=seed,
            verbose=0,
        )
    model.learn(total_timesteps=frames)
    wall = time.perf_counter() - start
    name = "Stable-Baselines3 2.9.2" if algo == "sac" else "sb3-contrib 2.9.2"
    print(json.dumps({"framework": name, "algo": algo, "eval_return": evaluate(model, seed), "wall_s": wall}))


def evaluate(model: Any, seed: int, episodes: int = 16, env_id: str = "Pendulum-v1") -> float:
    """Mean return of an SB3 model's deterministic policy (also used by sac_vs_sb3.py and dqn_vs_sb3.py)."""
    returns = []
    env = gym.make(env_id)
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed * 100 + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


if __name__ == "__main__":
    main()
