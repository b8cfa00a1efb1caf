"""Small PettingZoo envs for tests, loaded through ``module.path:Attr`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from vmas.simulator.scenario import BaseScenario


class NanRewardEnv(ParallelEnv):
    """One agent; the reward becomes NaN at step ``nan_at``."""

    metadata = {"name": "nan_reward_v0"}

    def __init__(self, nan_at: int = 2, nan_in: str = "reward") -> None:
        self.possible_agents = ["agent_0"]
        self.agents: list[str] = []
        self.nan_at = nan_at
        self.nan_in = nan_in

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (2,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents = ["agent_0"]
        self.t = 0
        return {"agent_0": np.zeros(2, np.float32)}, {"agent_0": {}}

    def step(self, actions):
        self.t += 1
        bad = self.t >= self.nan_at
        reward = float("nan") if bad and self.nan_in == "reward" else 0.0
        obs = {"agent_0": np.full(2, np.nan if bad and self.nan_in == "obs" else 0.0, np.float32)}
        return obs, {"agent_0": reward}, {"agent_0": False}, {"agent_0": False}, {"agent_0": {}}


class MaskedEnv(ParallelEnv):
    """Two agents with Dict observations carrying an ``action_mask`` (only action t % 3 allowed)."""

    metadata = {"name": "masked_v0"}

    def __init__(self) -> None:
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []

    def observation_space(self, agent):
        return spaces.Dict({"observation": spaces.Box(0, 10, (1,), np.float32), "action_mask": spaces.MultiBinary(3)})

    def action_space(self, agent):
        return spaces.Discrete(3)

    def _obs(self):
        mask = np.zeros(3, np.int8)
        mask[self.t % 3] = 1
        return {a: {"observation": np.array([self.t], np.float32), "action_mask": mask} for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        legal = {a: float(actions[a] == self.t % 3) for a in self.agents}
        self.t += 1
        trunc = self.t >= 5
        obs = self._obs()
        out = (
            obs,
            legal,
            {a: False for a in self.agents},
            {a: trunc for a in self.agents},
            {a: {} for a in self.agents},
        )
        if trunc:
            self.agents = []
        return out


class PointMass(ParallelEnv):
    """One agent on a line: x' = x + 0.2 a, a in [-1, 1], reward -x'^2, x0 ~ U(-2, 2), 20-step episodes.

    Random actions score about -27 per episode; steering straight to 0 about -4."""

    metadata = {"name": "point_mass_v0"}

    def __init__(self, max_steps: int = 20) -> None:
        self.possible_agents = ["agent_0"]
        self.agents: list[str] = []
        self.max_steps = max_steps
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = ["agent_0"]
        self.t = 0
        self.x = float(self.rng.uniform(-2, 2))
        return {"agent_0": np.array([self.x], np.float32)}, {"agent_0": {}}

    def step(self, actions):
        self.t += 1
        self.x += 0.2 * float(np.clip(actions["agent_0"][0], -1, 1))
        done = self.t >= self.max_steps
        obs = {"agent_0": np.array([self.x], np.float32)}
        if done:
            self.agents = []
        return obs, {"agent_0": -(self.x**2)}, {"agent_0": False}, {"agent_0": done}, {"agent_0": {}}


class Clock(ParallelEnv):
    """One agent whose observation is the number of steps taken so far (never reset), so every
    transition of a copy is unique: stored data shows at once whether rows were overwritten."""

    metadata = {"name": "clock_v0"}

    def __init__(self, max_steps: int = 10_000) -> None:
        self.possible_agents = ["agent_0"]
        self.agents: list[str] = []
        self.max_steps = max_steps
        self.clock = 0

    def observation_space(self, agent):
        return spaces.Box(0, np.inf, (1,), np.float32)

    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents = ["agent_0"]
        return {"agent_0": np.array([self.clock], np.float32)}, {"agent_0": {}}

    def step(self, actions):
        self.clock += 1
        done = self.clock % self.max_steps == 0
        obs = {"agent_0": np.array([self.clock], np.float32)}
        if done:
            self.agents = []
        return obs, {"agent_0": 0.0}, {"agent_0": False}, {"agent_0": done}, {"agent_0": {}}


class BrokenScenario(BaseScenario):
    """A user VMAS scenario whose make_world raises (bad-input tests)."""

    def make_world(self, batch_dim, device, **kwargs):
        raise ValueError("the arena file is missing")

    def reset_world_at(self, env_index=None):
        pass

    def observation(self, agent):
        raise NotImplementedError

    def reward(self, agent):
        raise NotImplementedError


def broken_factory(**kwargs):
    """A user PettingZoo factory whose constructor raises (bad-input tests)."""
    raise RuntimeError("license server unreachable")


class Leaving(ParallelEnv):
    """Two agents with seeded random observations; ``agent_1`` terminates (leaves) after 1 to 3 steps,
    ``agent_0`` is truncated after 6: rows of agents that left must stay masked."""

    metadata = {"name": "leaving_v0"}

    def __init__(self) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (2,), np.float32)

    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _obs(self):
        return {a: self.rng.uniform(-1, 1, 2).astype(np.float32) for a in self.agents}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t, self.leave_at = 0, int(self.rng.integers(1, 4))
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        acting = list(self.agents)
        term = {a: a == "agent_1" and self.t >= self.leave_at for a in acting}
        trunc = {a: self.t >= 6 for a in acting}
        reward = {a: float(np.asarray(actions[a]).sum()) for a in acting}
        obs = self._obs()
        self.agents = [a for a in acting if not (term[a] or trunc[a])]
        return obs, reward, term, trunc, {a: {} for a in acting}


class Fragile(ParallelEnv):
    """One agent; the copy reset with seed ``fail_seed`` raises in its first step (a simulator bug)."""

    metadata = {"name": "fragile_v0"}

    def __init__(self, fail_seed: int = 3) -> None:
        self.possible_agents = ["agent_0"]
        self.agents: list[str] = []
        self.fail_seed = fail_seed
        self.failing = False

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (1,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.failing = self.failing or seed == self.fail_seed
        self.agents = ["agent_0"]
        return {"agent_0": np.zeros(1, np.float32)}, {"agent_0": {}}

    def step(self, actions):
        if self.failing:
            raise ValueError("simulated simulator bug")
        return {"agent_0": np.zeros(1, np.float32)}, {"agent_0": 0.0}, {"agent_0": False}, {"agent_0": False}, {}


class SignalGame(ParallelEnv):
    """Two agents see the same random signal k in {0, 1, 2} (one-hot) each step; the shared reward is 1 when
    both play k, 0.2 when one of them does, else 0. Five steps per episode (a time limit).

    Uniformly random play scores about 1.0 per episode, the optimum 5.0: a cooperative task small enough
    for a value-based learning test."""

    metadata = {"name": "signal_game_v0"}

    def __init__(self, max_steps: int = 5) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.max_steps = max_steps
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, (3,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(3)

    def _obs(self):
        self.signal = int(self.rng.integers(3))
        one_hot = np.eye(3, dtype=np.float32)[self.signal]
        return {a: one_hot for a in self.agents}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        hits = sum(int(actions[a]) == self.signal for a in self.agents)
        reward = {2: 1.0, 1: 0.2, 0: 0.0}[hits]
        done = self.t >= self.max_steps
        agents = list(self.agents)
        obs = self._obs()
        if done:
            self.agents = []
        return (
            obs,
            {a: reward for a in agents},
            {a: False for a in agents},
            {a: done for a in agents},
            {a: {} for a in agents},
        )
