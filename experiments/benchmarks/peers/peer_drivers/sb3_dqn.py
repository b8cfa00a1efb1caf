"""Runs inside the SB3 venv (experiments/benchmarks/peers/peers.py --setup makes it): Stable-Baselines3 DQN on
CartPole-v1 with rl-baselines3-zoo's config, in one ``learn()`` call, evaluated greedily every EVERY steps
by a callback whose time is not counted; prints one JSON line (the evaluation curve, training wall-clock).

    .peers/sb3/bin/python sb3_dqn.py FRAMES SEED THREADS EVERY EPISODES
"""

from __future__ import annotations

import json
import sys
import time

import gymnasium as gym
import torch
from sb3_pendulum import evaluate
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback


class Evaluations(BaseCallback):
    """Greedy evaluation every ``every`` steps; the time spent in it is excluded from ``train_s``."""

    def __init__(self, every: int, seed: int, episodes: int) -> None:
        super().__init__()
        self.every, self.seed, self.episodes = every, seed, episodes
        self.curve: list[float] = []
        self.eval_s = 0.0
        self.epsilon: list[float] = []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            start = time.perf_counter()
            self.curve.append(evaluate(self.model, self.seed, self.episodes, "CartPole-v1"))
            self.epsilon.append(float(self.model.exploration_rate))
            self.eval_s += time.perf_counter() - start
        return True


def main() -> None:
    frames, seed, threads, every, episodes = (int(x) for x in sys.argv[1:6])
    torch.set_num_threads(threads)
    # rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1 (its n_timesteps is 5e4: exploration over 8k steps).
    model = DQN(
        "MlpPolicy", gym.make("CartPole-v1"), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1_000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=8_000 / frames, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
        seed=seed, verbose=0,
    )  # fmt: skip
    callback = Evaluations(every, seed, episodes)
    start = time.perf_counter()
    model.learn(total_timesteps=frames, callback=callback)
    train_s = time.perf_counter() - start - callback.eval_s
    print(json.dumps({"curve": callback.curve, "epsilon": callback.epsilon, "train_s": train_s}))


if __name__ == "__main__":
    main()
