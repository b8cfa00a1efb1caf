"""Duel: a symmetric zero-sum game for self-play (``make_env("envs/duel")``).

Two players, ``red_0`` and ``blue_0`` (groups ``red`` and ``blue``), move at once. Each starts with
``hp`` hit points and no ammunition, and each step picks one of three actions:

* 0 reload: one more round (at most ``max_ammo``);
* 1 shoot: spends a round, and hits unless the other player blocks (shooting without a round does nothing);
* 2 block: stops this step's shot.

A hit costs one hit point. A player at 0 wins nothing: the other gets +1 and it gets -1; both at 0
on the same step, or ``max_steps`` reached, is a draw (0 each). So returns are zero-sum and decide
the game, and the winner is the side with the higher return.

Observations are each player's own view, ``[own hp, own ammo, other hp, other ammo] / their maxima``
and the time left as a fraction, so one policy plays either side (self-play). A uniformly random
player wastes shots and reloads under fire; good play reloads when the other has nothing to shoot
and blocks when it does, mixing its moves where the other could read them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

RELOAD, SHOOT, BLOCK = 0, 1, 2
GAME = True  # competitive: reports give per-side results and cross-play
DECISIVE = True  # the side with the higher return wins: evaluations give win rates


class DuelEnv(ParallelEnv):
    metadata = {"name": "duel_v0", "render_modes": []}

    def __init__(self, hp: int = 3, max_ammo: int = 3, max_steps: int = 30) -> None:
        for name, value in (("hp", hp), ("max_ammo", max_ammo), ("max_steps", max_steps)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.hp_max, self.ammo_max, self.max_steps = hp, max_ammo, max_steps
        self.possible_agents = ["red_0", "blue_0"]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (5,), np.float32)
        self._action_space = spaces.Discrete(3)
        self.hp = {a: hp for a in self.possible_agents}
        self.ammo = {a: 0 for a in self.possible_agents}
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    def _other(self, agent: str) -> str:
        return self.possible_agents[1 - self.possible_agents.index(agent)]

    def _observe(self) -> dict[str, np.ndarray]:
        left = 1.0 - self.t / self.max_steps
        return {
            a: np.array(
                [
                    self.hp[a] / self.hp_max,
                    self.ammo[a] / self.ammo_max,
                    self.hp[self._other(a)] / self.hp_max,
                    self.ammo[self._other(a)] / self.ammo_max,
                    left,
                ],
                np.float32,
            )
            for a in self.possible_agents
        }

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self.hp = {a: self.hp_max for a in self.agents}
        self.ammo = {a: 0 for a in self.agents}
        self.t = 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        moves = {a: int(np.asarray(actions[a]).reshape(-1)[0]) for a in self.agents}
        fired = {a: moves[a] == SHOOT and self.ammo[a] > 0 for a in self.agents}
        for a in self.agents:
            if fired[a]:
                self.ammo[a] -= 1
            elif moves[a] == RELOAD:
                self.ammo[a] = min(self.ammo[a] + 1, self.ammo_max)
        for a in self.agents:
            if fired[self._other(a)] and moves[a] != BLOCK:
                self.hp[a] -= 1
        self.t += 1
        down = {a: self.hp[a] <= 0 for a in self.agents}
        over = any(down.values())
        rewards = {a: 0.0 for a in self.agents}
        if over and not all(down.values()):
            for a in self.agents:
                rewards[a] = -1.0 if down[a] else 1.0
        truncate = not over and self.t >= self.max_steps
        observations = self._observe()
        terminations = {a: over for a in self.agents}
        truncations = {a: truncate for a in self.agents}
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if over or truncate:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return self._observe()["red_0"]


def parallel_env(**kwargs: Any) -> DuelEnv:
    return DuelEnv(**kwargs)
