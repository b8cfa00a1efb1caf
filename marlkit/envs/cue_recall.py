"""Cue recall: a memory task that no feed-forward policy can solve (``make_env("envs/cue_recall")``).

Each agent gets its own cue ``c_i``, one of ``n_cues`` values, shown (one-hot) only during the first
``cue_steps`` steps of an episode; after that its observation is all zeros except the episode clock.
At the last of ``delay + cue_steps`` steps it is paid 1 if its action names its cue, and nothing
otherwise; actions before the last step are free. Observation: ``[one-hot cue or zeros, t / length]``.

Why memory is needed, and provably: at the last step every agent's observation is the same whatever its
cue, so a policy of the current observation alone picks the same action distribution for every cue and
earns ``1 / n_cues`` in expectation (0.25 with the default 4 cues), while a policy that remembers the cue
earns 1. The global ``state()`` holds every cue and the clock, so a centralized critic sees what the
actors must remember (the usual CTDE setting). Episodes end by termination after the answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class CueRecallEnv(ParallelEnv):
    metadata = {"name": "cue_recall_v0", "render_modes": []}

    def __init__(self, n_agents: int = 2, n_cues: int = 4, delay: int = 4, cue_steps: int = 1) -> None:
        for name, value, low in (("n_agents", n_agents, 1), ("n_cues", n_cues, 2), ("delay", delay, 1),
                                 ("cue_steps", cue_steps, 1)):  # fmt: skip
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self.n_cues, self.delay, self.cue_steps = n_cues, delay, cue_steps
        self.length = delay + cue_steps
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._rng = np.random.default_rng()
        self._obs_space = spaces.Box(0.0, 1.0, (n_cues + 1,), np.float32)
        self._act_space = spaces.Discrete(n_cues)
        self.cues = np.zeros(n_agents, np.int64)
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def _observe(self) -> dict[str, np.ndarray]:
        out = {}
        for i, a in enumerate(self.possible_agents):
            obs = np.zeros(self.n_cues + 1, np.float32)
            if self.t < self.cue_steps:
                obs[self.cues[i]] = 1.0
            obs[-1] = self.t / self.length
            out[a] = obs
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.cues = self._rng.integers(self.n_cues, size=len(self.possible_agents))
        self.t = 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        last = self.t >= self.length
        rewards = {a: float(last and int(actions[a]) == int(self.cues[i])) for i, a in enumerate(self.possible_agents)}
        observations = self._observe()
        if last:
            self.agents = []
        return (
            observations,
            rewards,
            {a: last for a in rewards},
            {a: False for a in rewards},
            {a: {} for a in rewards},
        )

    def state(self) -> np.ndarray:
        cues = np.zeros((len(self.possible_agents), self.n_cues), np.float32)
        cues[np.arange(len(self.possible_agents)), self.cues] = 1.0
        return np.concatenate([cues.ravel(), [self.t / self.length]]).astype(np.float32)


def parallel_env(**kwargs: Any) -> CueRecallEnv:
    return CueRecallEnv(**kwargs)
