"""Known reward functions of tasks, for model rollouts: ``fn(obs, action, next_obs) -> [B, R]``.

A world model learns the reward from data, and it fails where the reward is driven by rare events.
On vmas/navigation the -1 collision penalties are under 1% of the transitions, yet their variance is
9-14 times that of the shaping term. The learned rewards of two MAMBPO runs had a relative squared
error of 0.86 and 0.89 on the runs' own replay buffers. Navigation's reward function applied to the
same models' predicted observations has 0.30 and 0.36 (its shaping term alone: 0.004; the rest is
collisions the model mispredicts). MBPO's ``algo.reward=known`` uses such a function where marlkit
has one.

Functions read the joint observation vector (every agent's observation, in group order) and return
one reward per agent. They restate the task's reward from its live scenario object, so that
scenario options (shaping factor, penalties, radii) are read, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from marlkit.errors import MarlkitError

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def vmas_navigation(scenario: Any, agent_order: list[str]) -> RewardFn:
    """VMAS navigation: progress towards the goal (every agent's, summed, when ``shared_rew``), a
    final reward once all agents are on their goals, and a penalty for each agent touched."""
    agents = scenario.world.agents
    n = len(agents)
    if agent_order != [a.name for a in agents]:
        raise MarlkitError(
            "the known vmas/navigation reward needs the agents in scenario order; use algo.reward=learned"
        )
    radius, goal_radius = agents[0].shape.radius, agents[0].goal.shape.radius
    if any(a.shape.radius != radius or a.goal.shape.radius != goal_radius for a in agents):
        raise MarlkitError("the known vmas/navigation reward needs equal agent and goal radii; use algo.reward=learned")
    # Observation: position, velocity, position minus goal (each agent's goal with observe_all_goals), lidar.
    goal_at = [4 + 2 * (i if scenario.observe_all_goals else 0) for i in range(n)]
    goal_cols = torch.tensor([[c, c + 1] for c in goal_at])  # [n, 2]
    # VMAS penalizes a pair whose spheres overlap. It also penalizes gaps up to min_collision_distance,
    # but only in batches where the pair overlaps in some other env copy (World.collides looks at the
    # whole batch), which no function of one transition can know.
    contact = 2 * radius
    others = ~torch.eye(n, dtype=torch.bool)
    rows = torch.arange(n).unsqueeze(1)

    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        before, after = obs.view(len(obs), n, -1), next_obs.view(len(next_obs), n, -1)
        at = (rows.to(obs.device), goal_cols.to(obs.device))  # no-ops on CPU; tiny copies on a GPU
        to_goal_before = before[:, at[0], at[1]].norm(dim=-1)  # [B, n]
        to_goal_after = after[:, at[0], at[1]].norm(dim=-1)
        progress = (to_goal_before - to_goal_after) * scenario.pos_shaping_factor
        total = progress.sum(-1, keepdim=True).expand(-1, n) if scenario.shared_rew else progress
        total = total + scenario.final_reward * (to_goal_after < goal_radius).all(-1, keepdim=True)
        if scenario.collisions:
            pos = after[..., :2]
            gap = (pos.unsqueeze(2) - pos.unsqueeze(1)).norm(dim=-1)  # [B, n, n]
            touched = ((gap <= contact) & others.to(gap.device)).sum(-1)
            total = total + scenario.agent_collision_penalty * touched
        return total

    return reward


# task name -> builder from the env's scenario object
KNOWN: dict[str, Callable[[Any, list[str]], RewardFn]] = {"vmas/navigation": vmas_navigation}


def known_reward(env_name: str, scenario: Any, agent_order: list[str]) -> RewardFn:
    """The task's reward function over joint observations whose agents come in ``agent_order``; a
    one-line error names the tasks that have one."""
    if env_name not in KNOWN or scenario is None:
        raise MarlkitError(
            f"marlkit knows no reward function for '{env_name}'; use algo.reward=learned "
            f"(known: {', '.join(sorted(KNOWN))})"
        )
    return KNOWN[env_name](scenario, agent_order)
