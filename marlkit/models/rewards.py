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

from typing import Any

from marlkit.adapters.facts import RewardFn
from marlkit.adapters.families import FAMILIES, task_facts
from marlkit.core.errors import MarlkitError


def known_reward(env_name: str, scenario: Any, agent_order: list[str]) -> RewardFn:
    """The task's reward function over joint observations whose agents come in ``agent_order``; a
    one-line error names the tasks that have one."""
    builder = task_facts(env_name).reward
    if builder is None or scenario is None:
        known = [f"{n}/{t}" for n, f in FAMILIES.items() for t, facts in f.tasks.items() if facts.reward is not None]
        raise MarlkitError(
            f"marlkit knows no reward function for '{env_name}'; use algo.reward=learned (known: {', '.join(known)})"
        )
    return builder(scenario, agent_order)
