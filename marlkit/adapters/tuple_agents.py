"""Gymnasium multi-agent envs with Tuple spaces and list-valued rewards (Level-Based Foraging, the
Multi-Robot Warehouse) as PettingZoo ParallelEnvs, so that they go through the same adapter, copies,
workers and auto-reset as every other CPU simulator.

Both envs end an episode with one ``done`` flag and never set ``truncated``: their time limit is
reported as an ending. Each task states what a true termination is (``terminal``); every other ending
is a truncation, which bootstraps.

* LBF (``lbf/<id>``): an episode terminates when all food has been collected; the step limit
  (``max_episode_steps``, 50 on the 8x8 tasks) truncates it.
* RWARE (``rware/<id>``): a warehouse never reaches a terminal state; ``max_steps`` (500) and
  ``max_inactivity_steps`` truncate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from pettingzoo import ParallelEnv


class TupleAgentsAsParallel(ParallelEnv):
    """Agents ``agent_0 .. agent_{N-1}`` of a Gymnasium env with ``Tuple`` observation and action spaces."""

    def __init__(self, env: gym.Env, terminal: Callable[[Any], bool]) -> None:
        obs_space, act_space = env.observation_space, env.action_space
        assert isinstance(obs_space, spaces.Tuple) and isinstance(act_space, spaces.Tuple)
        self.env = env
        self._terminal = terminal
        self.possible_agents = [f"agent_{i}" for i in range(len(obs_space.spaces))]
        self.agents: list[str] = []
        self._obs_spaces = dict(zip(self.possible_agents, obs_space.spaces, strict=True))
        self._act_spaces = dict(zip(self.possible_agents, act_space.spaces, strict=True))
        self.metadata = dict(env.metadata)
        self.render_mode = env.render_mode

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, _ = self.env.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return dict(zip(self.agents, obs, strict=True)), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        agents = self.agents
        obs, rewards, done, truncated, _ = self.env.step(tuple(int(actions[a]) for a in agents))
        terminated = bool(done) and self._terminal(self.env.unwrapped)
        truncated = bool(truncated) or (bool(done) and not terminated)
        if terminated or truncated:
            self.agents = []
        return (
            dict(zip(agents, obs, strict=True)),
            {a: float(r) for a, r in zip(agents, rewards, strict=True)},  # type: ignore[call-overload]
            {a: terminated for a in agents},
            {a: truncated for a in agents},
            {a: {} for a in agents},
        )

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def lbf_terminal(env: Any) -> bool:
    """All food collected (the other ending of LBF is its step limit)."""
    return int(env.field.sum()) == 0


def rware_terminal(env: Any) -> bool:
    """Never: a warehouse episode only ends by its step or inactivity limits."""
    return False


TERMINAL = {"lbf": lbf_terminal, "rware": rware_terminal}
PACKAGES = {"lbf": "lbforaging", "rware": "rware"}
