"""Scout & carriers: a heterogeneous cooperative PettingZoo ParallelEnv written for marlkit.

``make_env("envs/scout_carrier")``. Agents live on the plane [-1, 1]^2:

* ``scout_0``: discrete actions (0 stay, 1 +x, 2 -x, 3 +y, 4 -y); sees its position, the target
  relative to itself and the carriers' mean position relative to itself (6 numbers).
* ``carrier_0..carrier_{n-1}``: continuous 2-D velocity in [-1, 1]; see their own position and the
  scout relative to themselves (4 numbers). Only the scout knows where the target is.

Shared dense reward: the decrease of the carriers' summed distance to the target, plus 1 for each
carrier that arrives. A carrier that arrives within ``radius`` of the target *terminates* and
leaves the episode (the rest play on); the episode ends when every carrier has arrived (the scout
terminates then too) or is truncated after ``max_steps``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class ScoutCarrierEnv(ParallelEnv):
    metadata = {"name": "scout_carrier_v0", "render_modes": []}

    def __init__(self, n_carriers: int = 2, max_steps: int = 50, radius: float = 0.15, speed: float = 0.1) -> None:
        if n_carriers < 1:
            raise ValueError(f"n_carriers must be >= 1, got {n_carriers}")
        self.n_carriers = n_carriers
        self.max_steps = max_steps
        self.radius = radius
        self.speed = speed
        self.carriers = [f"carrier_{i}" for i in range(n_carriers)]
        self.possible_agents = ["scout_0", *self.carriers]
        self.agents: list[str] = []
        self._rng = np.random.default_rng()

    @functools.cache  # noqa: B019 - PettingZoo requires the same space object every call
    def observation_space(self, agent: str) -> spaces.Space:
        size = 6 if agent == "scout_0" else 4
        return spaces.Box(-4.0, 4.0, shape=(size,), dtype=np.float32)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        if agent == "scout_0":
            return spaces.Discrete(5)
        return spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def _observe(self, agent: str) -> np.ndarray:
        if agent == "scout_0":
            carriers = np.mean([self.pos[c] for c in self.carriers], axis=0)
            parts = [self.pos[agent], self.target - self.pos[agent], carriers - self.pos[agent]]
        else:
            parts = [self.pos[agent], self.pos["scout_0"] - self.pos[agent]]
        return np.concatenate(parts).astype(np.float32)

    def _carrier_distance(self) -> float:
        return float(sum(np.linalg.norm(self.pos[c] - self.target) for c in self.carriers if c in self.agents))

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.pos = {a: self._rng.uniform(-1, 1, size=2) for a in self.agents}
        self.target = self._rng.uniform(-1, 1, size=2)
        self.t = 0
        self.potential = self._carrier_distance()
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        moves = {1: (1, 0), 2: (-1, 0), 3: (0, 1), 4: (0, -1)}
        for a in self.agents:
            if a == "scout_0":
                delta = np.array(moves.get(int(actions[a]), (0, 0)), dtype=float)
            else:
                delta = np.clip(np.asarray(actions[a], dtype=float), -1, 1)
            self.pos[a] = np.clip(self.pos[a] + self.speed * delta, -1, 1)
        self.t += 1
        arrived = [
            c for c in self.carriers if c in self.agents and np.linalg.norm(self.pos[c] - self.target) < self.radius
        ]
        remaining = [a for a in self.agents if a not in arrived]
        potential = float(sum(np.linalg.norm(self.pos[c] - self.target) for c in remaining if c != "scout_0"))
        shared = (self.potential - potential) + len(arrived)
        self.potential = potential
        all_arrived = remaining == ["scout_0"]
        truncate = self.t >= self.max_steps and not all_arrived
        observations = {a: self._observe(a) for a in self.agents}
        rewards = {a: shared for a in self.agents}
        terminations = {a: a in arrived or all_arrived for a in self.agents}
        truncations = {a: truncate for a in self.agents}
        infos: dict[str, dict] = {a: {} for a in self.agents}
        self.agents = [] if (all_arrived or truncate) else remaining
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        parts = [self.pos[a] for a in self.possible_agents] + [self.target]
        return np.concatenate(parts).astype(np.float32)


def parallel_env(**kwargs: Any) -> ScoutCarrierEnv:
    return ScoutCarrierEnv(**kwargs)
