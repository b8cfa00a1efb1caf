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


def n_step_returns(
    reward: torch.Tensor, terminated: torch.Tensor, ended: torch.Tensor, gamma: float, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step returns over ``[num_envs, T, ...]`` tensors (time is dim 1), for targets
    ``y_t = R_t + discount_t * V(observation reached by step last_t)``.

    ``ended`` marks the last step of an episode (terminated or truncated). The window of step ``t``
    holds ``k = min(n, steps to its episode's end, T - t)`` steps: ``R_t = sum_{j<k} gamma^j r_{t+j}``,
    ``last_t = t + k - 1``, ``discount_t = gamma^k``, or 0 where the window ends on a termination (a
    time limit still bootstraps from the reached observation). Windows shortened by the end of the
    batch are ordinary shorter n-step returns. Returns ``(R, discount, last)``, ``last`` as int64."""
    steps = reward.shape[1]
    t = torch.arange(steps, device=reward.device).view(1, steps, *([1] * (reward.dim() - 2)))
    ret = torch.zeros_like(reward)
    discount = torch.ones_like(reward)
    last = t.expand_as(reward).clone()
    open_ = torch.ones_like(reward, dtype=torch.bool)
    for j in range(n):  # a loop over the window, not over envs or agents
        index = (t + j).expand_as(reward)
        inside = index < steps
        index = index.clamp(max=steps - 1)
        take = open_ & inside
        ret = ret + torch.where(take, discount * reward.gather(1, index), 0.0)
        last = torch.where(take, index, last)
        discount = torch.where(take, discount * gamma, discount)
        discount = torch.where(take & terminated.gather(1, index), 0.0, discount)
        open_ = take & ~ended.gather(1, index)
    return ret, discount, last
