"""Known termination functions of tasks, for model rollouts: ``fn(obs, action, next_obs) -> bool [B]``.

They read the joint observation vector (for a Gymnasium task, its observation) and restate the
task's own termination rule, so that a model rollout ends where the real episode would (MBPO and
PETS otherwise keep collecting reward past a fall). Tasks that never terminate map to
:func:`never`; tasks not listed here get the world model's learned termination head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from tensordict import TensorDictBase

from marlkit.keys import TERMINATED

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def episode_terminated(rows: TensorDictBase, groups: Iterable[str]) -> torch.Tensor:
    """``[B]``: the joint episode ended (every agent of every group terminated) in rows ``[B]``."""
    return torch.stack([rows[g][TERMINATED].flatten(1).all(-1) for g in groups], -1).all(-1)


def never(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def _unfinite(next_obs: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(next_obs).all(-1)


def inverted_pendulum(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [cart position, pole angle, velocities]; the episode ends when |angle| > 0.2.
    return _unfinite(next_obs) | (next_obs[..., 1].abs() > 0.2)


def hopper(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, angle, joint angles, velocities]; healthy: |state[1:]| < 100, z > 0.7, |angle| < 0.2.
    healthy = (next_obs[..., 1:].abs() < 100).all(-1) & (next_obs[..., 0] > 0.7) & (next_obs[..., 1].abs() < 0.2)
    return _unfinite(next_obs) | ~healthy


def walker2d(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, angle, ...]; healthy: 0.8 < z < 2.0 and |angle| < 1.
    z, angle = next_obs[..., 0], next_obs[..., 1]
    return _unfinite(next_obs) | ~((z > 0.8) & (z < 2.0) & (angle.abs() < 1.0))


def ant(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, ...] (x and y excluded); healthy: 0.2 <= z <= 1.0.
    z = next_obs[..., 0]
    return _unfinite(next_obs) | ~((z >= 0.2) & (z <= 1.0))


def mountain_car(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [position, velocity]; the goal is position >= 0.45 with velocity >= 0.
    return (next_obs[..., 0] >= 0.45) & (next_obs[..., 1] >= 0)


KNOWN: dict[str, TerminationFn] = {
    "gym/Pendulum-v1": never,
    "gym/MountainCarContinuous-v0": mountain_car,
    **{f"gym/InvertedPendulum-v{v}": inverted_pendulum for v in (4, 5)},
    **{f"gym/Hopper-v{v}": hopper for v in (4, 5)},
    **{f"gym/Walker2d-v{v}": walker2d for v in (4, 5)},
    **{f"gym/Ant-v{v}": ant for v in (4, 5)},
    **{f"gym/{task}-v{v}": never for task in ("HalfCheetah", "Swimmer", "Reacher") for v in (4, 5)},
}


def known_termination(env_name: str) -> TerminationFn | None:
    """The task's termination function, or None when marlkit does not know it."""
    return KNOWN.get(env_name)


def model_termination(mode: str, env_name: str, model_sees_observations: bool) -> tuple[TerminationFn | None, bool]:
    """``(known termination function or None, whether the model needs a learned termination head)``
    for ``mode`` auto (the known function where there is one), learned, or none (episodes never end
    inside the model). Known functions read observations, so a model over another state learns."""
    if mode == "none":
        return None, False
    known = known_termination(env_name) if model_sees_observations and mode == "auto" else None
    return known, known is None
