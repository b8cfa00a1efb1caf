"""PettingZoo ``ParallelEnv`` (and AEC, converted), MPE via ``mpe2``, MaMuJoCo, and Gymnasium as N=1.

``num_envs`` independent copies are stepped one after another, in-process (``workers=0``), or split into
``workers + 1`` contiguous slices, one stepped by the parent and the others by worker processes at the same
time (:mod:`marlkit.adapters.workers`); both run the same :class:`CopyBlock` code. Copy ``i`` is seeded
with ``seed + i`` at the first reset and then keeps its own random stream, so the same seed gives the same
rollout, whatever the worker count.

Global state: the env's ``state()`` where it implements one (MPE, MaMuJoCo), else the concatenation
of all agents' observations (``env.state_source`` says which).

Agents that leave mid-episode get ``alive=False`` and zero observation and reward from then on; the
copy resets once no agent is left (or all of them terminated or were truncated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from tensordict import TensorDict

from marlkit.adapters.base import MultiAgentEnv, StateSource
from marlkit.adapters.copies import DONE_KEY, NEXT_STATE_KEY, STATE_KEY, Copies, CopyBlock, Layout
from marlkit.adapters.workers import WorkerPool
from marlkit.core.errors import MarlkitError
from marlkit.core.specs import GroupSpec, action_space_from_gym, check_group_map, default_group_map

EnvFactory = Callable[[], Any]


class PettingZooEnv(MultiAgentEnv):
    def __init__(
        self,
        factory: EnvFactory,
        num_envs: int,
        device: torch.device,
        seed: int,
        *,
        name: str,
        group_map: Mapping[str, Sequence[str]] | None = None,
        pad_observations: bool = False,
        workers: int = 0,
    ) -> None:
        def build() -> ParallelEnv:
            try:
                return _as_parallel(factory(), name)
            except TypeError as err:
                raise MarlkitError(f"bad env kwargs for '{name}': {err}") from None

        first = build()
        agents = list(first.possible_agents)
        members = check_group_map(group_map, agents) if group_map else default_group_map(agents)
        specs = {g: _group_spec(g, m, first, pad_observations) for g, m in members.items()}
        obs_shapes = {a: _obs_shape(first, a) for a in agents}
        first.reset(seed=seed)
        state_source: StateSource
        try:
            state_dim = int(np.asarray(first.state()).size)
            state_source = "env"
        except (NotImplementedError, AttributeError):
            state_dim = sum(s.n_agents * s.obs_dim for s in specs.values())
            state_source = "observations"
        super().__init__(name, num_envs, torch.device(device), specs, state_dim, state_source, seed)
        self.layout = Layout(
            name,
            dict(specs),
            {a: (g, j) for g, m in members.items() for j, a in enumerate(m)},
            {g: isinstance(first.observation_space(m[0]), spaces.Dict) for g, m in members.items()},
            state_source,
            state_dim,
            {
                a: None if obs_shapes[a] == specs[g].obs_shape else tuple(slice(0, d) for d in obs_shapes[a])
                for g, m in members.items()
                for a in m
            },
        )
        self.workers = min(workers, num_envs - 1)  # the parent steps a slice too
        self._copies: Copies
        if self.workers:
            self._copies = WorkerPool(build, self.layout, num_envs, self.workers, first)
        else:
            self._copies = CopyBlock([first] + [build() for _ in range(num_envs - 1)], 0, self.layout)

    def _tensors(self, arrays: Mapping[str, np.ndarray], kind: str) -> dict[str, torch.Tensor]:
        keys = {g: f"{kind}/{g}" for g in self.groups}
        return {g: torch.from_numpy(arrays[k]).to(self.device) for g, k in keys.items() if k in arrays}

    def _reset(self, seed: int | None) -> TensorDict:
        out = self._copies.reset(self.seed if seed is None else seed)
        state = torch.from_numpy(out[STATE_KEY]).to(self.device)
        return self._pack(self._tensors(out, "obs"), self._tensors(out, "alive"), state, self._tensors(out, "mask"))

    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        out = self._copies.step({g: a.cpu().numpy() for g, a in actions.items()})
        return self._pack(
            self._tensors(out, "obs"),
            self._tensors(out, "alive"),
            torch.from_numpy(out[STATE_KEY]).to(self.device),
            self._tensors(out, "mask"),
            reward=self._tensors(out, "reward"),
            terminated=self._tensors(out, "terminated"),
            truncated=self._tensors(out, "truncated"),
            next_obs=self._tensors(out, "next_obs"),
            next_action_mask=self._tensors(out, "next_mask"),
            next_state=torch.from_numpy(out[NEXT_STATE_KEY]).to(self.device),
            done=torch.from_numpy(out[DONE_KEY]).to(self.device),
        )

    def render(self, env_index: int = 0) -> object:
        return self._copies.render(env_index)

    def close(self) -> None:
        self._copies.close()


# ------------------------------------------------------------------- helpers
def _as_parallel(env: Any, name: str) -> ParallelEnv:
    if isinstance(env, AECEnv):
        from pettingzoo.utils.conversions import aec_to_parallel

        env = aec_to_parallel(env)
    if not isinstance(env, ParallelEnv):
        raise MarlkitError(
            f"env '{name}' factory returned {type(env).__name__}; expected a PettingZoo ParallelEnv or AECEnv"
        )
    return env


def _obs_space(env: ParallelEnv, agent: str) -> spaces.Box:
    sp = env.observation_space(agent)
    if isinstance(sp, spaces.Dict):
        if "observation" not in sp.spaces:
            raise MarlkitError(f"agent '{agent}' has a Dict observation without an 'observation' entry: {sp}")
        sp = sp["observation"]
    if not isinstance(sp, spaces.Box):
        raise MarlkitError(f"agent '{agent}' has observation space {sp}; marlkit needs Box observations")
    return sp


def _obs_shape(env: ParallelEnv, agent: str) -> tuple[int, ...]:
    return tuple(int(d) for d in _obs_space(env, agent).shape)


def _group_spec(group: str, members: Sequence[str], env: ParallelEnv, pad: bool) -> GroupSpec:
    """The group's spec. With ``pad``, observations of different sizes (but one rank) are zero-padded at
    the end of each dimension to the largest size, as SuperSuit's ``pad_observations_v0`` does, but
    written straight into the copy's row instead of through a wrapper on every step."""
    shapes = {a: _obs_shape(env, a) for a in members}
    has_mask = any(
        isinstance(sp, spaces.Dict) and "action_mask" in sp.spaces for sp in map(env.observation_space, members)
    )
    obs_shape = shapes[members[0]]
    if len(set(shapes.values())) > 1:
        if not pad or len({len(s) for s in shapes.values()}) > 1:
            hint = "" if pad else " or pass pad_observations=True to zero-pad them"
            raise MarlkitError(
                f"agents of group '{group}' have different observation shapes {shapes}; "
                f"split them with group_map={{...}}{hint}"
            )
        obs_shape = tuple(max(dims) for dims in zip(*shapes.values(), strict=True))
    action = action_space_from_gym(group, members, [env.action_space(a) for a in members])
    return GroupSpec(group, tuple(members), obs_shape, action, has_mask)


class GymAsParallel(ParallelEnv):
    """A Gymnasium env as a one-agent ParallelEnv: single-agent tasks are the N=1 case, not a second path."""

    def __init__(self, env: gym.Env, agent: str = "agent_0") -> None:
        self.env = env
        self.possible_agents = [agent]
        self.agents: list[str] = []
        self.metadata = dict(env.metadata)
        self.render_mode = env.render_mode
        self._agent = agent

    def observation_space(self, agent: str) -> spaces.Space:
        return self.env.observation_space

    def action_space(self, agent: str) -> spaces.Space:
        return self.env.action_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.agents = [self._agent]
        return {self._agent: obs}, {self._agent: info}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        a = self._agent
        obs, rew, term, trunc, info = self.env.step(actions[a])
        if term or trunc:
            self.agents = []
        return {a: obs}, {a: float(rew)}, {a: bool(term)}, {a: bool(trunc)}, {a: info}

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()
