"""Value-decomposition mixers: QMIX's monotone mixing network (VDN's mixer is the sum, done in place).

Kept in a module of their own, as EPyMARL keeps its mixers, so that a new mixer is one class here and
one switch in :mod:`marlkit.algorithms.qlearning`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from marlkit.networks.groups import mlp


class QMixer(nn.Module):
    """``Q_tot = w2(s) . elu(W1(s)^T q + b1(s)) + b2(s)`` with ``|W1|`` and ``|w2|``: monotone in every ``q_i``."""

    def __init__(self, n_agents: int, state_dim: int, embed: int, hyper_hidden: int) -> None:
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.w1 = mlp(state_dim, n_agents * embed, (hyper_hidden,), "relu")
        self.b1 = nn.Linear(state_dim, embed)
        self.w2 = mlp(state_dim, embed, (hyper_hidden,), "relu")
        self.b2 = mlp(state_dim, 1, (embed,), "relu")

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``q [B, N]``, ``state [B, S]`` -> ``Q_tot [B]``."""
        w1 = self.w1(state).abs().view(-1, self.n_agents, self.embed)
        hidden = F.elu(torch.bmm(q.unsqueeze(1), w1).squeeze(1) + self.b1(state))
        return (hidden * self.w2(state).abs()).sum(-1) + self.b2(state).squeeze(-1)
