"""The one environment contract every adapter implements.

``reset()`` returns, and ``step(td)`` consumes and returns, a TensorDict of batch size ``[num_envs]``
laid out as described in :mod:`marlkit.keys`. ``step`` auto-resets every copy whose episode ended:
the returned ``td[group][OBS]`` is the observation to act on next (a fresh one for reset copies),
while ``td[NEXT][group][OBS]`` is the observation the transition actually reached (the final
observation of an ended episode), so that truncated episodes can be bootstrapped.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import NestedKey, TensorDict, TensorDictBase

from marlkit.core.errors import MarlkitError
from marlkit.core.specs import Box, GroupSpec
from marlkit.keys import ACTION, ACTION_MASK, ALIVE, DONE, NEXT, OBS, REWARD, STATE, TERMINATED, TRUNCATED

StateSource = Literal["env", "observations"]


class MultiAgentEnv(abc.ABC):
    """A batch of ``num_envs`` copies of one scenario, seen as agent groups."""

    def __init__(
        self,
        name: str,
        num_envs: int,
        device: torch.device,
        groups: Mapping[str, GroupSpec],
        state_dim: int,
        state_source: StateSource,
        seed: int,
    ) -> None:
        self.name = name
        self.num_envs = num_envs
        self.device = canonical_device(device)
        self.groups: dict[str, GroupSpec] = dict(groups)
        self.state_dim = state_dim
        self.state_source: StateSource = state_source
        self.seed = seed
        # The simulator's scenario object where the backend has one (VMAS): known reward functions
        # of model-based learners read its options.
        self.scenario: Any = None
        # Observation entries removed by env.hide (adapters/hide.py): the observations are then not the
        # task's full ones, which known reward and termination functions read.
        self.hidden: tuple[int, ...] = ()
        self.check_finite = True
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        self._bounds = {
            g: spec.action.bounds(self.device) for g, spec in self.groups.items() if isinstance(spec.action, Box)
        }

    # ----------------------------------------------------------------- public API
    def reset(self, seed: int | None = None) -> TensorDict:
        """Reset every copy. ``seed`` re-seeds the env; by default the construction seed is used once."""
        if seed is not None:
            self.seed = seed
            self._generator.manual_seed(seed)
        td = self._reset(seed)
        self._check(td)
        return td

    def step(self, td: TensorDictBase) -> TensorDict:
        """Apply ``td[group][ACTION]`` for every group and return the next TensorDict."""
        actions = {g: self._checked_action(spec, td) for g, spec in self.groups.items()}
        out = self._step(actions)
        self._check(out)
        return out

    def rand_action(self, td: TensorDictBase) -> TensorDictBase:
        """Write uniformly random (mask-respecting) actions into ``td`` and return it."""
        for g, spec in self.groups.items():
            mask = td[g].get(ACTION_MASK, None) if spec.has_action_mask else None
            td[g][ACTION] = spec.random_action((self.num_envs,), self._generator, self.device, mask)
        return td

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources."""

    def render(self, env_index: int = 0) -> object:
        raise MarlkitError(f"env '{self.name}' cannot render frames")

    @property
    def n_agents(self) -> int:
        return sum(spec.n_agents for spec in self.groups.values())

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {s.n_agents}x{s.obs_shape}->{s.action}" for g, s in self.groups.items())
        return f"{type(self).__name__}({self.name!r}, num_envs={self.num_envs}, device={self.device}, {groups})"

    # ------------------------------------------------------------ adapter hooks
    @abc.abstractmethod
    def _reset(self, seed: int | None) -> TensorDict: ...

    @abc.abstractmethod
    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict: ...

    # ---------------------------------------------------------------- helpers
    def _pack(
        self,
        obs: Mapping[str, torch.Tensor],
        alive: Mapping[str, torch.Tensor],
        state: torch.Tensor,
        action_mask: Mapping[str, torch.Tensor] | None = None,
        *,
        reward: Mapping[str, torch.Tensor] | None = None,
        terminated: Mapping[str, torch.Tensor] | None = None,
        truncated: Mapping[str, torch.Tensor] | None = None,
        next_obs: Mapping[str, torch.Tensor] | None = None,
        next_action_mask: Mapping[str, torch.Tensor] | None = None,
        next_state: torch.Tensor | None = None,
        done: torch.Tensor | None = None,
    ) -> TensorDict:
        """Assemble the standard layout. Step-only entries are given together or not at all.

        Built with ``TensorDict._new_unsafe``: every tensor here is made by the adapter on
        ``self.device`` with the right batch shape, and the checked constructor costs a measurable
        share of a VMAS step (docs/benchmarks.md).
        """
        n = self.num_envs
        new = TensorDict._new_unsafe
        root: dict[str, object] = {STATE: state}
        nxt: dict[str, object] = {}
        for g, spec in self.groups.items():
            entries: dict[str, torch.Tensor] = {OBS: obs[g], ALIVE: alive[g]}
            if action_mask is not None and spec.has_action_mask:
                entries[ACTION_MASK] = action_mask[g]
            if reward is not None:
                assert terminated is not None and truncated is not None and next_obs is not None
                entries[REWARD] = reward[g]
                entries[TERMINATED] = terminated[g]
                entries[TRUNCATED] = truncated[g]
                reached = {OBS: next_obs[g]}
                if next_action_mask is not None and spec.has_action_mask:
                    reached[ACTION_MASK] = next_action_mask[g]
                nxt[g] = new(reached, batch_size=torch.Size([n, spec.n_agents]), device=self.device)
            root[g] = new(entries, batch_size=torch.Size([n, spec.n_agents]), device=self.device)
        if reward is not None:
            assert next_state is not None and done is not None
            nxt[STATE] = next_state
            root[NEXT] = new(nxt, batch_size=torch.Size([n]), device=self.device)
            root[DONE] = done
        return new(root, batch_size=torch.Size([n]), device=self.device)

    def _checked_action(self, spec: GroupSpec, td: TensorDictBase) -> torch.Tensor:
        try:
            action = td[spec.name][ACTION]
        except KeyError:
            raise MarlkitError(
                f"missing action for group '{spec.name}': set td['{spec.name}']['{ACTION}'] "
                f"of shape {[self.num_envs, spec.n_agents, *spec.action_shape]}"
            ) from None
        expected = (self.num_envs, spec.n_agents, *spec.action_shape)
        if isinstance(spec.action, Box):
            ok_dtype = action.is_floating_point()
            kind = "a float tensor"
        else:
            ok_dtype = not action.is_floating_point() and action.dtype != torch.bool
            kind = f"an integer tensor of indices in [0, {spec.action.n})"
        if tuple(action.shape) != expected or not ok_dtype:
            raise MarlkitError(
                f"action for group '{spec.name}' has shape {tuple(action.shape)} and dtype {action.dtype}; "
                f"expected {kind} of shape {expected} = "
                f"[num_envs, n_agents{', action_dim' if spec.action_shape else ''}]"
            )
        if action.device != self.device:
            raise MarlkitError(
                f"action for group '{spec.name}' is on {action.device} but env '{self.name}' runs on {self.device}; "
                "move the policy to the env's device"
            )
        if isinstance(spec.action, Box):
            low, high = self._bounds[spec.name]
            return torch.clamp(action.float(), low, high)
        return action.long()

    def _check(self, td: TensorDict) -> None:
        """Raise on NaN/inf in observations, rewards or state, naming the env and the key."""
        if not self.check_finite:
            return
        # A state built from the observations is checked through them. Where no copy was reset, the
        # observation to act on *is* the observation reached (one tensor): each tensor is scanned once.
        keys: list[NestedKey] = [STATE, (NEXT, STATE)] if self.state_source == "env" else []
        for g in self.groups:
            keys += [(g, OBS), (g, REWARD), (NEXT, g, OBS)]
        present, seen = [], set()
        for k in keys:
            t = td.get(k, None)
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                present.append((k, t))
        # One host sync for all tensors, not one per tensor.
        flags = torch.stack([torch.isfinite(t).all() for _, t in present])
        if not bool(flags.all()):
            bad = present[int((~flags).nonzero()[0])][0]
            raise FloatingPointError(f"env '{self.name}' produced NaN or inf in {bad!r}")


def stack_state(obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Global state built from the agents' observations: their concatenation, group by group."""
    return torch.cat([o.flatten(start_dim=1) for o in obs.values()], dim=-1)


__all__ = ["MultiAgentEnv", "StateSource", "stack_state"]


def canonical_device(device: torch.device | str, available: bool = True) -> torch.device:
    """A device this machine has, with ``cuda`` -> ``cuda:<current>`` (modules moved with ``.to("cuda")``
    report an index, and the device checks compare devices whole). Anything else is a one-line error.
    ``available=False`` checks the name only (a stored config of a GPU run, read on a CPU machine)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise MarlkitError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise MarlkitError(f"device {str(device)!r} is not supported; valid: cpu, cuda, cuda:N")
    if not available or device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise MarlkitError(f"device {str(device)!r} needs CUDA, which this machine lacks; use cpu")
    if device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise MarlkitError(
            f"device {str(device)!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
        )
    return device
