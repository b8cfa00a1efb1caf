"""Joint sum: agents whose actions add up, so each agent's best move depends on the others' moves
(``make_env("envs/joint_sum")``).

Each step a target ``y`` is drawn uniformly from [-1, 1] and shown to every agent. Each of
``n_agents`` agents outputs one number ``a_i`` in [-1, 1]; the shared reward is ``-(sum_i a_i - y)^2``
(``scale * (sum_i a_i - y)`` is the error). Observation of every agent: ``[y]`` (the global state
is the same). Episodes last ``max_steps`` steps; the targets are independent, so this is a
contextual team game with a continuum of optima (any split of ``y`` across the agents).

Why it is a candidate for the default comparison: every agent's policy gradient says "move the sum
towards y", and agents that step at once (ITRPO, MATRPO) each take a full trust-region step in that
direction, so the sum moves about ``n_agents`` times too far and oscillates around ``y``. In a
sequential update (HATRPO), agent i_m's surrogate is weighted by the factor M of the agents already
updated, so it sees the error that is left after their steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class JointSumEnv(ParallelEnv):
    metadata = {"name": "joint_sum_v0", "render_modes": []}

    def __init__(self, n_agents: int = 4, max_steps: int = 25) -> None:
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.n_agents = n_agents
        self.max_steps = max_steps
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._rng = np.random.default_rng()
        self._space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.target = 0.0
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._space

    def action_space(self, agent: str) -> spaces.Box:
        return self._space

    def _draw(self) -> dict[str, np.ndarray]:
        self.target = float(self._rng.uniform(-1.0, 1.0))
        return {a: np.array([self.target], np.float32) for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._draw(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        total = sum(float(np.clip(np.asarray(actions[a]).reshape(-1)[0], -1.0, 1.0)) for a in self.agents)
        shared = -((total - self.target) ** 2)
        self.t += 1
        truncate = self.t >= self.max_steps
        rewards = {a: shared for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: truncate for a in self.agents}
        infos: dict[str, dict] = {a: {} for a in self.agents}
        observations = self._draw()
        if truncate:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return np.array([self.target], np.float32)


def parallel_env(**kwargs: Any) -> JointSumEnv:
    return JointSumEnv(**kwargs)
