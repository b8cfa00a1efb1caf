"""Per-group specifications: agent names, observation shape and action space."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from marlkit.core.errors import MarlkitError


@dataclass(frozen=True)
class Box:
    """A continuous action space with per-dimension bounds (may be infinite)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def bounded(self) -> bool:
        """Every bound is finite (actors that squash or scale into the bounds need it)."""
        return all(map(math.isfinite, (*self.low, *self.high)))

    def bounds(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` as float32 tensors on ``device``. Cached per device (read-only: do not modify
        them in place), because a host-to-GPU copy of Python floats synchronises, and random actions
        ask for the bounds at every step."""
        return _bounds(self.low, self.high, torch.device(device))


@functools.cache
def _bounds(low: tuple[float, ...], high: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(low, dtype=torch.float32, device=device),
        torch.tensor(high, dtype=torch.float32, device=device),
    )


def from_unit(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Actions in [-1, 1] (what tanh actors and planners produce) rescaled to ``[low, high]``."""
    return low + (action + 1) * (high - low) / 2


def to_unit(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`from_unit`, clamped to [-1, 1]."""
    return (2 * (action - low) / (high - low) - 1).clamp(-1, 1)


@dataclass(frozen=True)
class Discrete:
    """A categorical action space with ``n`` actions."""

    n: int


ActionSpace = Box | Discrete


@dataclass(frozen=True)
class GroupSpec:
    """What an algorithm needs to know about one agent group."""

    name: str
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    action: ActionSpace
    has_action_mask: bool = False

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def obs_dim(self) -> int:
        size = 1
        for d in self.obs_shape:
            size *= d
        return size

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.action, Discrete)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one agent's action tensor: ``(dim,)`` for Box, ``()`` for Discrete (an index)."""
        return (self.action.dim,) if isinstance(self.action, Box) else ()

    @property
    def action_dtype(self) -> torch.dtype:
        return torch.int64 if self.is_discrete else torch.float32

    def random_action(
        self,
        batch: Sequence[int],
        generator: torch.Generator | None,
        device: torch.device,
        action_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Uniform random actions of shape ``[*batch, n_agents, *action_shape]``.

        Infinite Box bounds fall back to a standard normal; discrete draws respect ``action_mask``.
        """
        shape = (*batch, self.n_agents)
        if isinstance(self.action, Discrete):
            weights = (
                action_mask.float() if action_mask is not None else torch.ones(*shape, self.action.n, device=device)
            )
            flat = torch.multinomial(weights.reshape(-1, self.action.n), 1, generator=generator)
            return flat.reshape(shape)
        low, high = self.action.bounds(device)
        u = torch.rand(*shape, self.action.dim, generator=generator, device=device)
        finite = torch.isfinite(low) & torch.isfinite(high)
        normal = torch.randn(*shape, self.action.dim, generator=generator, device=device)
        return torch.where(finite, low + u * (high - low).nan_to_num(0.0), normal)


_INDEX_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def default_group_map(agent_names: Sequence[str]) -> dict[str, list[str]]:
    """Group agents by the prefix before their last ``_<index>``: ``adversary_0 -> adversary``.

    Names without such a suffix form a group of their own. Order follows ``agent_names``.
    """
    groups: dict[str, list[str]] = {}
    for name in agent_names:
        match = _INDEX_SUFFIX.match(name)
        groups.setdefault(match.group(1) if match else name, []).append(name)
    return groups


def check_group_map(group_map: Mapping[str, Sequence[str]], agent_names: Sequence[str]) -> dict[str, list[str]]:
    """Validate a user group map: every agent exactly once, no unknown agents."""
    seen = [a for members in group_map.values() for a in members]
    unknown = sorted(set(seen) - set(agent_names))
    missing = [a for a in agent_names if a not in seen]
    duplicated = sorted({a for a in seen if seen.count(a) > 1})
    if unknown or missing or duplicated:
        raise MarlkitError(
            f"group_map must name every agent exactly once; unknown: {unknown}, missing: {missing}, "
            f"duplicated: {duplicated}; agents are {list(agent_names)}"
        )
    return {g: list(members) for g, members in group_map.items()}


def action_space_from_gym(group: str, members: Sequence[str], act_spaces: Sequence[object]) -> ActionSpace:
    """The group's action space from its agents' gym/gymnasium spaces (duck-typed: VMAS uses old ``gym``)."""
    first = act_spaces[0]
    if any(type(s) is not type(first) or s != first for s in act_spaces[1:]):
        per_agent = dict(zip(members, act_spaces, strict=True))
        raise MarlkitError(
            f"agents of group '{group}' have different action spaces {per_agent}; split them with group_map={{...}}"
        )
    kind = type(first).__name__
    if kind == "Box":
        low, high = first.low, first.high  # type: ignore[attr-defined]
        return Box(tuple(float(x) for x in low.reshape(-1)), tuple(float(x) for x in high.reshape(-1)))
    if kind == "Discrete" and int(getattr(first, "start", 0)) == 0:
        return Discrete(int(first.n))  # type: ignore[attr-defined]
    raise MarlkitError(
        f"group '{group}' has unsupported action space {first}; marlkit supports Box and "
        "Discrete (start=0) actions (for VMAS pass multidiscrete_actions=False)"
    )
