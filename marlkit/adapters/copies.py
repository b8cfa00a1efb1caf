"""The copies of a CPU simulator and where each agent's data goes: :class:`Layout` and :class:`CopyBlock`,
the stepping code that the in-process PettingZoo env (:mod:`marlkit.adapters.pettingzoo`) and each env
worker process (:mod:`marlkit.adapters.workers`) run alike, so that both give the same rollouts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pettingzoo import ParallelEnv

from marlkit.adapters.base import StateSource
from marlkit.core.errors import MarlkitError, first_line
from marlkit.core.specs import Discrete, GroupSpec


@dataclass(frozen=True)
class Layout:
    """Where each agent's data goes: what the stepping code needs, in-process or in a worker process."""

    name: str
    groups: dict[str, GroupSpec]
    slot: dict[str, tuple[str, int]]  # agent -> (group, index within the group)
    dict_obs: dict[str, bool]
    state_source: StateSource
    state_dim: int
    # agent -> where its observation goes in its group's (zero-)padded row; None where it fills the row
    obs_region: dict[str, tuple[slice, ...] | None]

    def arrays(self, n: int, step: bool) -> dict[str, np.ndarray]:
        """Zeroed output arrays for ``n`` copies, by flat key: what a reset (or a step) writes."""
        out: dict[str, np.ndarray] = {STATE_KEY: np.zeros((n, self.state_dim), np.float32)}
        for g, s in self.groups.items():
            out[f"obs/{g}"] = np.zeros((n, s.n_agents, *s.obs_shape), np.float32)
            out[f"alive/{g}"] = np.zeros((n, s.n_agents), bool)
            if s.has_action_mask:
                assert isinstance(s.action, Discrete)
                out[f"mask/{g}"] = np.ones((n, s.n_agents, s.action.n), bool)
            if step:
                out[f"next_obs/{g}"] = np.zeros((n, s.n_agents, *s.obs_shape), np.float32)
                if s.has_action_mask:  # the mask at the reached observation, for off-policy targets
                    out[f"next_mask/{g}"] = np.ones_like(out[f"mask/{g}"])
                out[f"reward/{g}"] = np.zeros((n, s.n_agents), np.float32)
                out[f"terminated/{g}"] = np.ones((n, s.n_agents), bool)
                out[f"truncated/{g}"] = np.zeros((n, s.n_agents), bool)
        if step:
            out[NEXT_STATE_KEY] = np.zeros((n, self.state_dim), np.float32)
            out[DONE_KEY] = np.zeros(n, bool)
        return out


STATE_KEY, NEXT_STATE_KEY, DONE_KEY = "state", "next_state", "done"


class Copies(Protocol):
    """What steps the copies: a :class:`CopyBlock` in-process, or a ``workers.WorkerPool`` of them."""

    def reset(self, base_seed: int) -> dict[str, np.ndarray]: ...
    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
    def render(self, env_index: int) -> object: ...
    def close(self) -> None: ...


class CopyBlock:
    """Copies ``offset ... offset + len(envs) - 1`` of one scenario, stepped one after another into numpy
    arrays. The in-process env holds one block of all copies; each env worker process holds one slice."""

    def __init__(self, envs: Sequence[ParallelEnv], offset: int, layout: Layout) -> None:
        self.envs = list(envs)
        self.offset = offset
        self.layout = layout

    def reset(self, base_seed: int) -> dict[str, np.ndarray]:
        out = self.layout.arrays(len(self.envs), step=False)
        for i, env in enumerate(self.envs):
            obs, _ = self._call(i, "reset", env.reset, seed=base_seed + self.offset + i)
            self._write_obs(out, i, env, obs, list(env.agents))
        return out

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step of every copy; copies whose episode ended are reset (``done``). ``next_obs`` and
        ``next_state`` are what the step reached; ``obs``, ``alive``, ``mask`` and ``state`` are what to act
        on next: equal, except for copies that reset and agents that left."""
        lay = self.layout
        out = lay.arrays(len(self.envs), step=True)
        resets: list[tuple[int, Mapping[str, Any]]] = []
        left: list[tuple[int, str]] = []
        for i, env in enumerate(self.envs):
            acting = list(env.agents)
            step_actions = {a: self._action(a, actions, i) for a in acting}
            obs, rew, term, trunc, _ = self._call(i, "step", env.step, step_actions)
            for a in acting:
                g, j = lay.slot[a]
                out[f"reward/{g}"][i, j] = rew.get(a, 0.0)
                out[f"terminated/{g}"][i, j] = term.get(a, False)
                out[f"truncated/{g}"][i, j] = trunc.get(a, False)
            self._write_obs(out, i, env, obs, [a for a in acting if a in obs])
            if not env.agents or all(term.get(a, False) or trunc.get(a, False) for a in acting):
                out[DONE_KEY][i] = True
                resets.append((i, self._call(i, "reset", env.reset)[0]))
            else:
                left += [(i, a) for a in acting if a not in env.agents]
        for g, spec in lay.groups.items():
            out[f"next_obs/{g}"][:] = out[f"obs/{g}"]
            if spec.has_action_mask:
                out[f"next_mask/{g}"][:] = out[f"mask/{g}"]
        out[NEXT_STATE_KEY][:] = out[STATE_KEY]
        # Patch the rows that differ only (this halves the state() calls per step).
        for i, a in left:
            self._clear_row(out, i, a)
        for i in {i for i, _ in left}:
            self._write_state(out, i, self.envs[i])
        for i, obs in resets:
            self._clear_row(out, i)
            self._write_obs(out, i, self.envs[i], obs, list(self.envs[i].agents))
        return out

    def _call(self, i: int, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # one line naming the copy, whatever the simulator raised
            raise MarlkitError(
                f"env copy {self.offset + i} of '{self.layout.name}' failed in {what}: {type(err).__name__}: "
                f"{first_line(err)}"
            ) from err

    def _write_obs(
        self, out: dict[str, np.ndarray], i: int, env: ParallelEnv, obs: Mapping[str, Any], present: Sequence[str]
    ) -> None:
        lay = self.layout
        for a in present:
            g, j = lay.slot[a]
            value = obs[a]
            if lay.dict_obs[g]:
                if lay.groups[g].has_action_mask:
                    out[f"mask/{g}"][i, j] = np.asarray(value["action_mask"], bool)
                value = value["observation"]
            region = lay.obs_region[a]
            if region is None:
                out[f"obs/{g}"][i, j] = value
            else:
                out[f"obs/{g}"][i, j][region] = value
            out[f"alive/{g}"][i, j] = True
        self._write_state(out, i, env)

    def _write_state(self, out: dict[str, np.ndarray], i: int, env: ParallelEnv) -> None:
        if self.layout.state_source == "env":
            out[STATE_KEY][i] = np.asarray(env.state(), np.float32).reshape(-1)
        else:
            out[STATE_KEY][i] = np.concatenate([out[f"obs/{g}"][i].reshape(-1) for g in self.layout.groups])

    def _clear_row(self, out: dict[str, np.ndarray], i: int, agent: str | None = None) -> None:
        """Forget copy ``i``'s observations (of one agent, or of all when ``agent`` is None)."""
        for g in self.layout.groups:
            if agent is not None and self.layout.slot[agent][0] != g:
                continue
            index = (i, self.layout.slot[agent][1]) if agent is not None else i
            out[f"obs/{g}"][index] = 0
            out[f"alive/{g}"][index] = False
            if f"mask/{g}" in out:
                out[f"mask/{g}"][index] = True

    def _action(self, agent: str, actions: Mapping[str, np.ndarray], i: int) -> Any:
        g, j = self.layout.slot[agent]
        value = actions[g][i, j]
        return int(value) if self.layout.groups[g].is_discrete else value

    def render(self, env_index: int) -> object:
        return self.envs[env_index].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()
