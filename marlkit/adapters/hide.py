"""Partial observability for any task: remove entries from every agent's observation (``env.hide=[...]``).

The classic case is Pendulum-v1 without its angular velocity (``gym/Pendulum-v1`` with ``hide=[2]``):
a feed-forward policy then sees an angle but not where the pendulum is going. Indices are positions in
each agent's flat observation and apply to every group. The global ``state`` is left whole, so that
centralized critics still see everything during training (for a single-agent Gymnasium task the state
is the full observation: use a local critic there to keep the critic partially observed too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from tensordict import TensorDict

from marlkit.adapters.base import MultiAgentEnv
from marlkit.core.errors import MarlkitError
from marlkit.keys import NEXT, OBS


class HiddenObservations(MultiAgentEnv):
    """``env`` with observation entries ``hide`` removed from every group."""

    def __init__(self, env: MultiAgentEnv, hide: Sequence[int]) -> None:
        hidden = sorted({int(i) for i in hide})
        groups, self._keep = {}, {}
        for g, spec in env.groups.items():
            if len(spec.obs_shape) != 1:
                raise MarlkitError(f"hide needs flat observations; group '{g}' has shape {spec.obs_shape}")
            dim = spec.obs_shape[0]
            if not hidden or hidden[0] < 0 or hidden[-1] >= dim:
                raise MarlkitError(f"hide={list(hide)}: indices must be in 0..{dim - 1} for group '{g}'")
            keep = [i for i in range(dim) if i not in hidden]
            if not keep:
                raise MarlkitError(f"hide={list(hide)} removes every observation entry of group '{g}'")
            self._keep[g] = torch.tensor(keep, device=env.device)
            groups[g] = dataclasses.replace(spec, obs_shape=(len(keep),))
        super().__init__(env.name, env.num_envs, env.device, groups, env.state_dim, env.state_source, env.seed)
        self.inner = env
        self.scenario = env.scenario
        self.hidden = tuple(hidden)

    def _filtered(self, td: TensorDict) -> TensorDict:
        for g, keep in self._keep.items():
            td[g].set(OBS, td[g][OBS].index_select(-1, keep))
            if NEXT in td.keys():
                td[NEXT, g].set(OBS, td[NEXT, g, OBS].index_select(-1, keep))
        return td

    def _reset(self, seed: int | None) -> TensorDict:
        return self._filtered(self.inner.reset(seed))

    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        return self._filtered(self.inner._step(actions))

    def render(self, env_index: int = 0) -> object:
        return self.inner.render(env_index)

    def close(self) -> None:
        self.inner.close()
