"""Runs inside the BenchMARL venv (experiments/benchmarks/peers/peers.py makes it): one BenchMARL 1.5.2 run on
vmas/navigation with BenchMARL's default configs, then a deterministic evaluation; prints one JSON line.

    .peers/benchmarl/bin/python benchmarl_navigation.py ALGO FRAMES SEED
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

import torch
from benchmarl.algorithms import MaddpgConfig, MappoConfig, MasacConfig
from benchmarl.environments import VmasTask
from benchmarl.experiment import Experiment, ExperimentConfig
from benchmarl.models.mlp import MlpConfig
from torchrl.envs.utils import ExplorationType, set_exploration_type

ALGOS = {"mappo": MappoConfig, "maddpg": MaddpgConfig, "masac": MasacConfig}
EVAL_EPISODES = 16


def main() -> None:
    algo, frames, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else torch.get_num_threads())
    task = VmasTask.NAVIGATION.get_from_yaml()
    task.config.update({"n_agents": 3, "max_steps": 100, "shared_rew": True})  # marlkit's navigation runs
    config = ExperimentConfig.get_from_yaml()
    with tempfile.TemporaryDirectory() as tmp:
        config.max_n_frames = frames
        config.loggers = []
        config.create_json = False
        config.render = False
        config.evaluation = False
        config.checkpoint_at_end = False
        config.save_folder = tmp
        experiment = Experiment(
            task=task,
            algorithm_config=ALGOS[algo].get_from_yaml(),
            model_config=MlpConfig.get_from_yaml(),
            critic_model_config=MlpConfig.get_from_yaml(),
            seed=seed,
            config=config,
        )
        start = time.perf_counter()
        experiment.run()
        wall = time.perf_counter() - start
        env = task.get_env_fun(num_envs=EVAL_EPISODES, continuous_actions=True, seed=10_000 + seed, device="cpu")()
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(100, policy=experiment.policy, break_when_any_done=False, auto_cast_to_device=True)
        episode_return, window_return = first_episode_return(rollout)
    print(
        json.dumps(
            {
                "framework": "BenchMARL 1.5.2",
                "algo": algo,
                "eval_return": episode_return,
                "eval_return_window": window_return,
                "wall_s": wall,
            }
        )
    )


def first_episode_return(rollout: Any) -> tuple[float, float]:
    """The per-agent mean return of each env's FIRST episode, as marlkit evaluates, and the sum over the
    whole window. ``rollout(..., break_when_any_done=False)`` resets an env whose episode ended and goes
    on, and a VMAS navigation episode ends when every agent is on its goal: summing the window counts a
    good policy's later episodes too (the earlier drivers did, and so overstated BenchMARL's returns)."""
    reward = rollout["next", "agents", "reward"]  # [envs, T, agents, 1]
    done = rollout["next", "done"].float()  # [envs, T, 1]
    live = ((done.cumsum(1) - done) == 0).float().unsqueeze(-2)  # no episode end before step t
    return (reward * live).sum(1).mean().item(), reward.sum(1).mean().item()


if __name__ == "__main__":
    main()
