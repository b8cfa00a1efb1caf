"""Generalized advantage estimation with explicit episode ends.

All tensors are ``[num_envs, T, ...]`` (time is dim 1). ``next_value`` is V of the observation each
step reached (the final observation where an episode ended), so:

* ``terminated`` stops bootstrapping: delta_t = r_t - V(s_t);
* ``truncated`` still bootstraps from V(final observation);
* either one cuts the advantage recursion, since step t+1 belongs to another episode.
"""

from __future__ import annotations

import torch


def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(advantage, return)``, with return = advantage + value."""
    not_terminated = (~terminated).to(value.dtype)
    continues = (~(terminated | truncated)).to(value.dtype)
    delta = reward + gamma * not_terminated * next_value - value
    advantage = torch.zeros_like(delta)
    last = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        last = delta[:, t] + gamma * lam * continues[:, t] * last
        advantage[:, t] = last
    return advantage, advantage + value
