"""The critics of the on-policy family: local V_i(o_i) or central V_i(s) networks, their inputs and
recurrent steps, value targets, value normalization and fitting. A mixin of
:class:`~marlkit.algorithms.onpolicy.OnPolicy`, which owns the networks and the config it reads."""

from __future__ import annotations

import typing
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.onpolicy_config import OnPolicyConfig
from marlkit.algorithms.onpolicy_data import GroupBatch, explained_variance, index_memory, masked_mean
from marlkit.blocks.returns import gae
from marlkit.core.specs import GroupSpec
from marlkit.keys import (
    CRITIC_STATE,
    CRITIC_STATE_OUT,
    NEXT,
    OBS,
    REWARD,
    STATE,
    TERMINATED,
    TRUNCATED,
)
from marlkit.networks.groups import GroupModule, mlp
from marlkit.networks.normalizers import RunningNorm
from marlkit.networks.policies import Memory
from marlkit.networks.recurrent import GRUNet, entering_state, reach, unroll


class StateValues(nn.Module):
    """V_i(s) of every agent i of a group: one MLP over the state whose last layer has one output per
    agent. Its parameter names match a shared GroupModule's, so with one agent it is that same network."""

    def __init__(
        self,
        state_dim: int,
        n_agents: int,
        hidden: tuple[int, ...],
        activation: str,
        layer_norm: bool = False,
        init: str = "default",
    ) -> None:
        super().__init__()
        self.net = mlp(state_dim, n_agents, hidden, activation, layer_norm, init)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """``[..., state_dim]`` -> ``[..., n_agents, 1]``, shaped like a GroupModule's output."""
        return self.net(state).unsqueeze(-1)


class OnPolicyCritics:
    # Owned by OnPolicy:
    cfg: OnPolicyConfig
    groups: dict[str, GroupSpec]
    critics: nn.ModuleDict
    critic_opt: torch.optim.Adam
    state_norm: RunningNorm | None
    value_norms: nn.ModuleDict
    shuffle_rng: torch.Generator
    actor_input: Callable[[str, torch.Tensor], torch.Tensor]
    _memory: Callable[..., Memory]

    def _critic(self, g: str) -> nn.Module:
        return self.critics[g]

    @staticmethod
    def _norm(norms: nn.ModuleDict, g: str) -> RunningNorm:
        return typing.cast(RunningNorm, norms[g])

    def _make_critic(self, spec: GroupSpec, state_dim: int) -> nn.Module:
        cfg = self.cfg
        if cfg.critic_network == "gru":
            in_dim = spec.obs_dim if cfg.critic == "local" else state_dim + self._critic_ids(spec.n_agents)
            return GroupModule(
                lambda: GRUNet(in_dim, 1, cfg.hidden, cfg.gru_hidden, cfg.activation, cfg.layer_norm),
                spec.n_agents,
                cfg.share_critic,
            )
        if self._state_trunk:
            return StateValues(state_dim, spec.n_agents, cfg.hidden, cfg.activation, cfg.layer_norm, cfg.init)
        in_dim = spec.obs_dim if cfg.critic == "local" else state_dim
        make = lambda: mlp(in_dim, 1, cfg.hidden, cfg.activation, cfg.layer_norm, cfg.init)
        return GroupModule(make, spec.n_agents, cfg.share_critic)

    @property
    def _state_trunk(self) -> bool:
        """A central feed-forward critic with shared parameters reads the state once, not once per agent."""
        return self.cfg.critic == "central" and self.cfg.share_critic and self.cfg.critic_network == "mlp"

    def _critic_ids(self, n_agents: int) -> int:
        """Width of the one-hot agent id a shared central GRU critic appends to the state: it tells agents
        with different rewards apart (a feed-forward one has an output per agent instead)."""
        cfg = self.cfg
        return n_agents if cfg.critic == "central" and cfg.share_critic and cfg.critic_network == "gru" else 0

    def critic_input(self, td: TensorDictBase, g: str) -> torch.Tensor:
        if self.cfg.critic == "local":
            return self.actor_input(g, td[g][OBS]).flatten(start_dim=td[g].batch_dims)
        state = td[STATE] if self.state_norm is None else self.state_norm(td[STATE])
        if self._state_trunk:
            return state
        n = self.groups[g].n_agents
        x = state.unsqueeze(-2).expand(*state.shape[:-1], n, state.shape[-1])
        if self._critic_ids(n):
            x = torch.cat([x, torch.eye(n, device=x.device).expand(*state.shape[:-1], n, n)], -1)
        return x

    def value(self, g: str, critic_in: torch.Tensor, memory: Memory | None = None) -> torch.Tensor:
        """V per agent; a recurrent critic takes sequences ``[B, L, ...]`` and their ``memory``."""
        if memory is None:
            return self._critic(g)(critic_in).squeeze(-1)
        return unroll(self._critic(g), critic_in, memory.h0, memory.resets, 1)[0].squeeze(-1)

    def _critic_step(self, td: TensorDictBase, g: str) -> None:
        """Advance a recurrent critic's state by one env step (its value is not needed while collecting):
        training replays the critic from the states stored here, as it does the actor."""
        group = td[g]
        x = self.critic_input(td, g)
        h = entering_state(group, CRITIC_STATE, self.cfg.gru_hidden)
        group[CRITIC_STATE], group[CRITIC_STATE_OUT] = h, self._critic(g)(torch.cat([x, h], -1))[..., 1:]

    @torch.no_grad()
    def value_targets(
        self, batch: TensorDictBase, g: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Group ``g``'s critic input, values, GAE advantages and lambda-returns under the current critic,
        values and returns in reward units (denormalized). Reads the batch only; no statistic moves."""
        critic_in, next_in = self.critic_input(batch, g), self.critic_input(batch[NEXT], g)
        if self.cfg.critic_network == "gru":
            # The whole rollout from its first stored state; V(s'_t) continues the state after step t.
            memory = self._memory(batch, g, CRITIC_STATE, batch.shape[1])
            out, states = unroll(self._critic(g), critic_in, memory.h0, memory.resets, 1)
            value = out.squeeze(-1)
            next_value = reach(self._critic(g), next_in, states, 1).squeeze(-1)
        else:
            value, next_value = self.value(g, critic_in), self.value(g, next_in)
        if g in self.value_norms:  # the critic predicts normalized values
            value_norm = self._norm(self.value_norms, g)
            value, next_value = value_norm.denormalize(value), value_norm.denormalize(next_value)
        group = batch[g]
        terminated, truncated = group[TERMINATED], group[TRUNCATED]
        if self.cfg.time_limit_terminal:
            terminated = terminated | truncated
        advantage, returns = gae(group[REWARD], value, next_value, terminated, truncated, self.cfg.gamma,
                                 self.cfg.gae_lambda)  # fmt: skip
        return critic_in, value, advantage, returns

    @torch.no_grad()
    def _critic_fit(self, data: dict[str, GroupBatch], before: dict[str, float]) -> dict[str, float]:
        """Per critic: explained variance of its value targets before and after this update, and the
        targets' scale (reward units), so ``metrics.csv`` shows whether a critic learns anything."""
        out = {}
        for g, d in data.items():
            after = self.value(g, d.critic_in, d.critic_memory)
            out[f"{g}/critic_ev_before"] = before[g]
            out[f"{g}/critic_ev"] = explained_variance(after, d.target, d.alive)
            out[f"{g}/value_target_std"] = d.target_std
        return out

    def critic_error(self, value: torch.Tensor, target: torch.Tensor, old: torch.Tensor | None) -> torch.Tensor:
        """The per-entry critic loss: squared error or Huber, and with ``value_clip`` the larger of the
        losses of the value and of the value clipped to within ``value_clip`` of ``old`` (its value at
        collection), as MAPPO and HARL do."""
        cfg = self.cfg

        def loss(v: torch.Tensor) -> torch.Tensor:
            if cfg.critic_loss == "huber":
                return F.huber_loss(v, target, reduction="none", delta=cfg.huber_delta)
            return (v - target).pow(2)

        if cfg.value_clip <= 0 or old is None:
            return loss(value)
        clipped = old + (value - old).clamp(-cfg.value_clip, cfg.value_clip)
        return torch.maximum(loss(value), loss(clipped))

    def _update_critics(self, data: dict[str, GroupBatch]) -> dict[str, float]:
        n = next(iter(data.values())).alive.shape[0]
        losses = []
        for _ in range(self.cfg.critic_epochs):
            perm = torch.randperm(n, generator=self.shuffle_rng)
            for idx in perm.chunk(self.cfg.critic_minibatches):
                idx = idx.to(next(iter(data.values())).alive.device)
                loss = torch.stack(
                    [
                        masked_mean(
                            self.critic_error(
                                self.value(g, d.critic_in[idx], index_memory(d.critic_memory, idx)),
                                d.target[idx],
                                None if d.value is None else d.value[idx],
                            ),
                            d.alive[idx],
                        )
                        for g, d in data.items()
                    ]
                ).sum()
                self.critic_opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.critics.parameters(), self.cfg.critic_max_grad_norm)
                self.critic_opt.step()
                losses.append(float(loss.detach()))
        return {"critic_loss": sum(losses) / len(losses)}
