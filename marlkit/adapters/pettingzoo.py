"""PettingZoo ``ParallelEnv`` (and AEC, converted), MPE via ``mpe2``, MaMuJoCo, and Gymnasium as N=1.

``num_envs`` independent copies are stepped in-process (see docs/benchmarks.md for why not in
worker processes). Copy ``i`` is seeded with ``seed + i`` at the first reset and then keeps its own
random stream, so the same seed gives the same rollout.

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
from marlkit.errors import MarlkitError
from marlkit.specs import Discrete, GroupSpec, action_space_from_gym, check_group_map, default_group_map

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
    ) -> None:
        try:
            self._copies: list[ParallelEnv] = [_as_parallel(factory(), name, pad_observations) for _ in range(num_envs)]
        except TypeError as err:
            raise MarlkitError(f"bad env kwargs for '{name}': {err}") from None
        first = self._copies[0]
        agents = list(first.possible_agents)
        members = check_group_map(group_map, agents) if group_map else default_group_map(agents)
        specs = {g: _group_spec(g, m, first, pad_observations) for g, m in members.items()}
        # (group, index within group) of every agent, in the env's agent order.
        self._slot = {a: (g, j) for g, m in members.items() for j, a in enumerate(m)}
        self._dict_obs = {g: isinstance(first.observation_space(m[0]), spaces.Dict) for g, m in members.items()}
        first.reset(seed=seed)
        state_source: StateSource
        try:
            state_dim = int(np.asarray(first.state()).size)
            state_source = "env"
        except (NotImplementedError, AttributeError):
            state_dim = sum(s.n_agents * s.obs_dim for s in specs.values())
            state_source = "observations"
        super().__init__(name, num_envs, torch.device(device), specs, state_dim, state_source, seed)

    # -------------------------------------------------------------- buffers
    def _zeros(self) -> dict[str, Any]:
        n = self.num_envs
        buf: dict[str, Any] = {"obs": {}, "alive": {}, "mask": {}, "state": np.zeros((n, self.state_dim), np.float32)}
        for g, s in self.groups.items():
            buf["obs"][g] = np.zeros((n, s.n_agents, *s.obs_shape), np.float32)
            buf["alive"][g] = np.zeros((n, s.n_agents), bool)
            if s.has_action_mask:
                assert isinstance(s.action, Discrete)
                buf["mask"][g] = np.ones((n, s.n_agents, s.action.n), bool)
        return buf

    def _write_obs(
        self, buf: dict[str, Any], i: int, env: ParallelEnv, obs: Mapping[str, Any], present: Sequence[str]
    ) -> None:
        for a in present:
            g, j = self._slot[a]
            value = obs[a]
            if self._dict_obs[g]:
                if self.groups[g].has_action_mask:
                    buf["mask"][g][i, j] = np.asarray(value["action_mask"], bool)
                value = value["observation"]
            buf["obs"][g][i, j] = value
            buf["alive"][g][i, j] = True
        self._write_state(buf, i, env)

    def _write_state(self, buf: dict[str, Any], i: int, env: ParallelEnv) -> None:
        if self.state_source == "env":
            buf["state"][i] = np.asarray(env.state(), np.float32).reshape(-1)
        else:
            buf["state"][i] = np.concatenate([buf["obs"][g][i].reshape(-1) for g in self.groups])

    def _clear_row(self, buf: dict[str, Any], i: int, agent: str | None = None) -> None:
        """Forget copy ``i``'s observations (of one agent, or of all when ``agent`` is None)."""
        for g in self.groups:
            if agent is not None and self._slot[agent][0] != g:
                continue
            index = (i, self._slot[agent][1]) if agent is not None else i
            buf["obs"][g][index] = 0
            buf["alive"][g][index] = False
            if g in buf["mask"]:
                buf["mask"][g][index] = True

    def _tensors(self, arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {g: torch.from_numpy(x).to(self.device) for g, x in arrays.items()}

    def _to_td_parts(self, buf: dict[str, Any]) -> tuple[dict, dict, torch.Tensor, dict]:
        state = torch.from_numpy(buf["state"]).to(self.device)
        return self._tensors(buf["obs"]), self._tensors(buf["alive"]), state, self._tensors(buf["mask"])

    # ---------------------------------------------------------------- hooks
    def _reset(self, seed: int | None) -> TensorDict:
        base = self.seed if seed is None else seed
        buf = self._zeros()
        for i, env in enumerate(self._copies):
            obs, _ = env.reset(seed=base + i)
            self._write_obs(buf, i, env, obs, list(env.agents))
        obs_t, alive_t, state_t, mask_t = self._to_td_parts(buf)
        return self._pack(obs_t, alive_t, state_t, mask_t)

    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        np_actions = {g: a.cpu().numpy() for g, a in actions.items()}
        n = self.num_envs
        reward = {g: np.zeros((n, s.n_agents), np.float32) for g, s in self.groups.items()}
        terminated = {g: np.ones((n, s.n_agents), bool) for g, s in self.groups.items()}
        truncated = {g: np.zeros((n, s.n_agents), bool) for g, s in self.groups.items()}
        done = np.zeros(n, bool)
        nxt = self._zeros()
        resets: list[tuple[int, Mapping[str, Any]]] = []
        left: list[tuple[int, str]] = []
        for i, env in enumerate(self._copies):
            acting = list(env.agents)
            obs, rew, term, trunc, _ = env.step({a: self._np_action(a, np_actions, i) for a in acting})
            for a in acting:
                g, j = self._slot[a]
                reward[g][i, j] = rew.get(a, 0.0)
                terminated[g][i, j] = term.get(a, False)
                truncated[g][i, j] = trunc.get(a, False)
            self._write_obs(nxt, i, env, obs, [a for a in acting if a in obs])
            if not env.agents or all(term.get(a, False) or trunc.get(a, False) for a in acting):
                done[i] = True
                resets.append((i, env.reset()[0]))
            else:
                left += [(i, a) for a in acting if a not in env.agents]
        # The observation to act on next equals the one reached, except for copies that reset and
        # agents that left: patch those rows only (this halves the state() calls per step).
        after = {k: ({g: x.copy() for g, x in v.items()} if isinstance(v, dict) else v.copy()) for k, v in nxt.items()}
        for i, a in left:
            self._clear_row(after, i, a)
        for i in {i for i, _ in left}:
            self._write_state(after, i, self._copies[i])
        for i, obs in resets:
            self._clear_row(after, i)
            self._write_obs(after, i, self._copies[i], obs, list(self._copies[i].agents))
        next_obs, _, next_state, _ = self._to_td_parts(nxt)
        obs_t, alive_t, state_t, mask_t = self._to_td_parts(after)

        return self._pack(
            obs_t,
            alive_t,
            state_t,
            mask_t,
            reward=self._tensors(reward),
            terminated=self._tensors(terminated),
            truncated=self._tensors(truncated),
            next_obs=next_obs,
            next_state=next_state,
            done=torch.from_numpy(done).to(self.device),
        )

    def _np_action(self, agent: str, np_actions: Mapping[str, np.ndarray], i: int) -> Any:
        g, j = self._slot[agent]
        value = np_actions[g][i, j]
        return int(value) if self.groups[g].is_discrete else value

    def render(self, env_index: int = 0) -> object:
        return self._copies[env_index].render()

    def close(self) -> None:
        for env in self._copies:
            env.close()


# ------------------------------------------------------------------- helpers
def _as_parallel(env: Any, name: str, pad: bool) -> ParallelEnv:
    if isinstance(env, AECEnv):
        from pettingzoo.utils.conversions import aec_to_parallel

        env = aec_to_parallel(env)
    if not isinstance(env, ParallelEnv):
        raise MarlkitError(
            f"env '{name}' factory returned {type(env).__name__}; expected a PettingZoo ParallelEnv or AECEnv"
        )
    if pad:
        import supersuit

        env = supersuit.pad_observations_v0(env)
    return env


def _group_spec(group: str, members: Sequence[str], env: ParallelEnv, padded: bool) -> GroupSpec:
    obs_spaces = {a: env.observation_space(a) for a in members}
    has_mask = False
    flat_spaces = {}
    for a, sp in obs_spaces.items():
        if isinstance(sp, spaces.Dict):
            if "observation" not in sp.spaces:
                raise MarlkitError(f"agent '{a}' has a Dict observation without an 'observation' entry: {sp}")
            has_mask = "action_mask" in sp.spaces
            sp = sp["observation"]
        if not isinstance(sp, spaces.Box):
            raise MarlkitError(f"agent '{a}' has observation space {sp}; marlkit needs Box observations")
        flat_spaces[a] = sp
    shapes = {a: tuple(int(d) for d in sp.shape) for a, sp in flat_spaces.items()}
    if len(set(shapes.values())) > 1:
        hint = "" if padded else " or pass pad_observations=True to zero-pad them (SuperSuit)"
        raise MarlkitError(
            f"agents of group '{group}' have different observation shapes {shapes}; "
            f"split them with group_map={{...}}{hint}"
        )
    action = action_space_from_gym(group, members, [env.action_space(a) for a in members])
    return GroupSpec(group, tuple(members), shapes[members[0]], action, has_mask)


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
