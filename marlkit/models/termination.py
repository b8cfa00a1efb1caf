"""Known termination functions of tasks, for model rollouts: ``fn(obs, action, next_obs) -> bool [B]``.

They read the joint observation vector (for a Gymnasium task, its observation) and restate the
task's own termination rule, so that a model rollout ends where the real episode would (MBPO and
PETS otherwise keep collecting reward past a fall). Tasks that never terminate map to
:func:`marlkit.adapters.families.never`; tasks not listed there get the world model's learned termination head.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tensordict import TensorDictBase

from marlkit.adapters.facts import TerminationFn
from marlkit.adapters.families import task_facts
from marlkit.keys import TERMINATED


def episode_terminated(rows: TensorDictBase, groups: Iterable[str]) -> torch.Tensor:
    """``[B]``: the joint episode ended (every agent of every group terminated) in rows ``[B]``."""
    return torch.stack([rows[g][TERMINATED].flatten(1).all(-1) for g in groups], -1).all(-1)


def known_termination(env_name: str) -> TerminationFn | None:
    """The task's termination function, or None when marlkit does not know it."""
    return task_facts(env_name).termination


def model_termination(mode: str, env_name: str, model_sees_observations: bool) -> tuple[TerminationFn | None, bool]:
    """``(known termination function or None, whether the model needs a learned termination head)``
    for ``mode`` auto (the known function where there is one), learned, or none (episodes never end
    inside the model). Known functions read observations, so a model over another state learns."""
    if mode == "none":
        return None, False
    known = known_termination(env_name) if model_sees_observations and mode == "auto" else None
    return known, known is None
