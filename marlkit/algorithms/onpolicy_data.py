"""What the on-policy updates share: one group's update data (:class:`GroupBatch`) and masked statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from marlkit.networks.policies import Memory


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp_min(1)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1)


def explained_variance(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(target - prediction) / Var(target)`` over the entries where ``mask`` holds: 1 for a critic
    that predicts its targets, 0 for one that predicts their mean, below 0 for worse (nan: constant targets)."""
    m = mask.to(target.dtype)

    def var(x: torch.Tensor) -> torch.Tensor:
        return masked_mean((x - masked_mean(x, m)).pow(2), m)

    spread = var(target)
    return float(1 - var(target - prediction) / spread) if float(spread) > 0 else math.nan


@dataclass
class GroupBatch:
    """One group's update data: leading dim B = num_envs * T, then the agent dim; for a recurrent
    policy, leading dims ``[sequences, chunk_len]`` with the sequences' ``memory``."""

    obs: torch.Tensor
    action: torch.Tensor
    mask: torch.Tensor | None
    alive: torch.Tensor
    critic_in: torch.Tensor
    advantage: torch.Tensor
    target: torch.Tensor
    old_dist: torch.Tensor
    old_log_prob: torch.Tensor
    memory: Memory | None = None
    critic_memory: Memory | None = None
    value: torch.Tensor | None = None
    """The critic's values when the batch was prepared, in the units of ``target``."""
    target_std: float = math.nan
    """The standard deviation of the value targets in reward units (before any value normalization)."""

    @property
    def lead(self) -> int:
        """Number of sample dims before the agent dim."""
        return 1 if self.memory is None else 2

    def agent(self, i: int) -> GroupBatch:
        """Agent ``i``'s slice of the actor's tensors (the agent dim removed); the critic input stays
        the group's (the state alone has no agent dim, and only the group's critic update reads it)."""
        n = self.lead
        return GroupBatch(
            self.obs.select(n, i),
            self.action.select(n, i),
            None if self.mask is None else self.mask.select(n, i),
            self.alive.select(n, i),
            self.critic_in,
            self.advantage.select(n, i),
            self.target.select(n, i),
            self.old_dist.select(n, i),
            self.old_log_prob.select(n, i),
            None if self.memory is None else self.memory.agent(i),
            self.critic_memory,
            None if self.value is None else self.value.select(n, i),
            self.target_std,
        )


def index_memory(memory: Memory | None, idx: torch.Tensor) -> Memory | None:
    """The sequences ``idx`` of a recurrent batch's memory (None for feed-forward networks)."""
    return None if memory is None else memory.index(idx)
