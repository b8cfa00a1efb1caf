"""What marlkit knows of a task beyond its simulator (:class:`TaskFacts`); each env family's record
(:mod:`marlkit.adapters.families`) holds its tasks' facts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(obs, action, next_obs) -> [B, n_agents]`` over joint observation vectors."""
TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(obs, action, next_obs) -> bool [B]``: the episode terminated (not truncated)."""


@dataclass(frozen=True)
class TaskFacts:
    """What marlkit knows of one task beyond its simulator."""

    game: bool = False
    """Competitive or mixed: the mean over all agents means little, so reports add per-side tables and
    cross-play."""
    decisive: bool = False
    """The side with the higher episode return wins: evaluations give win, draw and loss rates."""
    reward: Callable[[Any, list[str]], RewardFn] | None = None
    """``builder(scenario object, agent order)`` of the task's reward function (MBPO's ``reward=known``)."""
    termination: TerminationFn | None = None
    """The task's termination rule over observations (model rollouts end where real episodes would)."""
