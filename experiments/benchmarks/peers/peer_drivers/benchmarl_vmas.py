"""Runs inside the BenchMARL venv (experiments/benchmarks/peers/peers.py --setup makes it): one BenchMARL
1.5.2 run of ALGO on a VMAS task with BenchMARL's own default configs (experiment, algorithm, MLP
models), then a deterministic evaluation of 16 episodes; prints one JSON line.

    .peers/benchmarl/bin/python benchmarl_vmas.py ALGO TASK FRAMES SEED THREADS [OVERRIDES_JSON]
    .peers/benchmarl/bin/python benchmarl_vmas.py --task-config TASK   # the task's kwargs as one JSON line

TASK ``navigation`` uses the kwargs of marlkit's navigation runs (3 agents, 100 steps, shared reward);
other tasks BenchMARL's task yaml. OVERRIDES_JSON (optional) sets fields of the experiment, algorithm
and model configs: ``{"experiment": {...}, "algorithm": {...}, "model": {...}}`` (matched runs).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

import torch
from benchmarl.algorithms import IppoConfig, MaddpgConfig, MappoConfig, MasacConfig
from benchmarl.environments import VmasTask
from benchmarl.experiment import Experiment, ExperimentConfig
from benchmarl.models.mlp import MlpConfig
from torchrl.envs.utils import ExplorationType, set_exploration_type

ALGOS = {"mappo": MappoConfig, "ippo": IppoConfig, "maddpg": MaddpgConfig, "masac": MasacConfig}
TASK_KWARGS = {"navigation": {"n_agents": 3, "max_steps": 100, "shared_rew": True}}
EVAL_EPISODES = 16


def load_task(task_name: str) -> Any:
    """BenchMARL's task from its yaml, with this driver's kwargs for it."""
    task = getattr(VmasTask, task_name.upper()).get_from_yaml()
    task.config.update(TASK_KWARGS.get(task_name, {}))
    return task


def main() -> None:
    if sys.argv[1] == "--task-config":
        print(json.dumps(dict(load_task(sys.argv[2]).config)))
        return
    algo, task_name = sys.argv[1], sys.argv[2]
    frames, seed, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    overrides = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    torch.set_num_threads(threads)
    task = load_task(task_name)
    config = ExperimentConfig.get_from_yaml()
    algorithm = ALGOS[algo].get_from_yaml()
    model, critic = MlpConfig.get_from_yaml(), MlpConfig.get_from_yaml()
    for target, values in ((config, overrides.get("experiment", {})), (algorithm, overrides.get("algorithm", {})),
                           (model, overrides.get("model", {})), (critic, overrides.get("model", {}))):  # fmt: skip
        for key, value in values.items():
            if not hasattr(target, key):
                raise SystemExit(f"{type(target).__name__} has no field {key}")
            setattr(target, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        config.max_n_frames = frames
        config.loggers = []
        config.create_json = False
        config.render = False
        config.evaluation = False
        config.checkpoint_at_end = False
        config.save_folder = tmp
        experiment = Experiment(task=task, algorithm_config=algorithm, model_config=model,
                                critic_model_config=critic, seed=seed, config=config)  # fmt: skip
        start = time.perf_counter()
        experiment.run()
        wall = time.perf_counter() - start
        max_steps = int(task.config.get("max_steps", 100))
        env = task.get_env_fun(num_envs=EVAL_EPISODES, continuous_actions=True, seed=10_000 + seed, device="cpu")()
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(max_steps, policy=experiment.policy, break_when_any_done=False,
                                  auto_cast_to_device=True)  # fmt: skip
        episode_return, window_return = first_episode_return(rollout)
    names = ("on_policy_collected_frames_per_batch", "on_policy_n_envs_per_worker", "on_policy_n_minibatch_iters",
             "on_policy_minibatch_size", "off_policy_collected_frames_per_batch", "off_policy_n_envs_per_worker",
             "off_policy_n_optimizer_steps", "off_policy_train_batch_size", "off_policy_memory_size",
             "off_policy_init_random_frames", "lr", "adam_eps", "gamma", "polyak_tau", "exploration_eps_init",
             "exploration_eps_end", "clip_grad_norm", "clip_grad_val")  # fmt: skip
    plain = {k: v for k, v in vars(algorithm).items() if isinstance(v, int | float | bool | str)}
    settings = {"experiment": {k: getattr(config, k, None) for k in names}, "algorithm": plain,
                "model": {"num_cells": model.num_cells}}  # fmt: skip
    result = {"framework": "BenchMARL 1.5.2", "algo": algo, "task": task_name, "eval_return": episode_return,
              "eval_return_window": window_return, "wall_s": wall, "settings": settings,
              "task_config": dict(task.config)}  # fmt: skip
    print(json.dumps(result))


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
