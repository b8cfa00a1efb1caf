"""Policies: on-policy group policies, and the actor heads of off-policy learners.

On-policy: a diagonal Gaussian (state-independent log-std) or a masked Categorical. A policy maps
observations to *distribution parameters* (``dist``: ``[loc, log_std]`` or logits) and the functions
here work on those tensors, so a learner can keep ``dist_old`` fixed and evaluate ``log_prob``, the
exact ``kl(dist_old, dist_new)`` and ``entropy`` under candidate parameters.

Off-policy actor heads turn a network's raw output into unit-space actions (``[-1, 1]``, one-hot for
discrete): deterministic ``tanh`` (DDPG), Gumbel-softmax with straight-through (discrete MADDPG) and
the tanh-squashed Gaussian of SAC. ``mode`` is ``sample`` (differentiable: reparameterized or
straight-through), ``mean`` (deterministic) or ``explore`` (the behaviour policy's draw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from marlkit.core.specs import Box, GroupSpec
from marlkit.networks.groups import GroupModule, mlp
from marlkit.networks.recurrent import GRUNet, unroll

# Finite, so that masked actions have probability exactly 0 and 0 * log p stays 0 (no NaN).
MASKED_LOGIT = -1e9
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ActorMode = Literal["sample", "mean", "explore"]
OUT_GAIN = 0.01  # the policies' output layer at init: weights x 0.01, bias 0 (HARL's and MAPPO's actor gain)


def std_parameter(act_dim: int, init_log_std: float, std_max: float) -> nn.Parameter:
    """The state-independent std's parameter ``p``: the log-std itself, or with ``std_max > 0`` the logit of
    ``std / std_max`` (HARL's bounded std, ``std_max * sigmoid(p)``), starting at ``exp(init_log_std)``."""
    if std_max > 0:
        fraction = math.exp(init_log_std) / std_max
        if not 0 < fraction < 1:
            raise ValueError(f"init_log_std={init_log_std} gives a std of at least std_max={std_max}")
        init_log_std = math.log(fraction / (1 - fraction))
    return nn.Parameter(torch.full((act_dim,), float(init_log_std)))


def log_std_of(param: torch.Tensor, std_max: float) -> torch.Tensor:
    """The log-std that :func:`std_parameter`'s ``p`` stands for."""
    return param if std_max <= 0 else math.log(std_max) + F.logsigmoid(param)


class GaussianNet(nn.Module):
    """Mean MLP plus a state-independent std; outputs ``[loc, log_std]`` along the last dim. The parameter
    ``log_std`` is the log-std, or with ``std_max > 0`` the logit of ``std / std_max`` (:func:`std_parameter`)."""

    def __init__(
        self,
        in_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        activation: str,
        init_log_std: float,
        layer_norm: bool = False,
        init: str = "default",
        out_gain: float = OUT_GAIN,
        std_max: float = 0.0,
    ):
        super().__init__()
        self.mean = mlp(in_dim, act_dim, hidden, activation, layer_norm, init)
        _shrink_last_layer(self.mean, out_gain)
        self.std_max = std_max
        self.log_std = std_parameter(act_dim, init_log_std, std_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loc = self.mean(x)
        return torch.cat([loc, log_std_of(self.log_std, self.std_max).expand_as(loc)], dim=-1)


class StateStdGaussianNet(nn.Module):
    """One MLP for ``[loc, raw]``; the std is ``MIN_STD + softplus(raw + bias)``, with the bias that makes
    it ``exp(init_log_std)`` where ``raw = 0`` (BenchMARL's NormalParamExtractor, "biased_softplus"; the
    shrunk last layer starts every state there). Outputs ``[loc, log_std]`` like :class:`GaussianNet`."""

    MIN_STD = 0.01

    def __init__(
        self,
        in_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        activation: str,
        init_log_std: float,
        layer_norm: bool = False,
        init: str = "default",
        out_gain: float = OUT_GAIN,
    ):
        super().__init__()
        self.net = mlp(in_dim, 2 * act_dim, hidden, activation, layer_norm, init)
        _shrink_last_layer(self.net, out_gain)
        start = math.exp(init_log_std) - self.MIN_STD
        if start <= 0:
            raise ValueError(f"init_log_std={init_log_std} is below the smallest std {self.MIN_STD}")
        self.bias = start + math.log(-math.expm1(-start))  # softplus(bias) = start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loc, raw = self.net(x).chunk(2, dim=-1)
        return torch.cat([loc, torch.log(self.MIN_STD + F.softplus(raw + self.bias))], dim=-1)


class GRUGaussianNet(nn.Module):
    """The recurrent :class:`GaussianNet`: ``[..., in + hidden]`` -> ``[..., loc, log_std, hidden]``."""

    def __init__(self, core: GRUNet, init_log_std: float, out_gain: float = OUT_GAIN, std_max: float = 0.0) -> None:
        super().__init__()
        self.core = core
        _shrink_last_layer(core.head, out_gain)
        self.std_max = std_max
        self.log_std = std_parameter(core.out_dim, init_log_std, std_max)

    def forward(self, xh: torch.Tensor) -> torch.Tensor:
        y = self.core(xh)
        loc = y[..., : self.core.out_dim]
        log_std = log_std_of(self.log_std, self.std_max).expand_as(loc)
        return torch.cat([loc, log_std, y[..., self.core.out_dim :]], dim=-1)


@dataclass(frozen=True)
class Memory:
    """What a recurrent policy needs to replay stored sequences ``[B, L, ...]``: the hidden state at each
    sequence's first step (``h0 [B, (n_agents,) hidden]``) and the resets before each step
    (``resets [B, L, (n_agents)]``: an episode started, or the agent is not alive)."""

    h0: torch.Tensor
    resets: torch.Tensor

    def agent(self, i: int) -> Memory:
        return Memory(self.h0.select(1, i), self.resets.select(2, i))

    def index(self, idx: torch.Tensor) -> Memory:
        return Memory(self.h0[idx], self.resets[idx])


def _shrink_last_layer(net: nn.Module, gain: float = OUT_GAIN) -> None:
    """Scale the output layer's weights by ``gain`` and zero its bias: near-uniform initial policies explore
    evenly and start with small KL steps. ``gain=1`` leaves the layer as initialized (BenchMARL's actors)."""
    if gain == 1.0:
        return
    last = net[-1] if isinstance(net, nn.Sequential) else net
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.mul_(gain)
        last.bias.zero_()


class GroupPolicy(nn.Module):
    """The policy of one agent group; parameters shared or stacked per agent (see GroupModule).

    With ``memory > 0`` it is recurrent: ``hidden`` is an MLP encoder followed by a GRU of ``memory``
    units, :meth:`step` advances it one env step and :meth:`dist` replays stored sequences from a
    :class:`Memory`."""

    net: GroupModule

    def __init__(
        self,
        spec: GroupSpec,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        share_params: bool = False,
        init_log_std: float = 0.0,
        memory: int = 0,
        layer_norm: bool = False,
        init: str = "default",
        state_std: bool = False,
        out_gain: float = OUT_GAIN,
        std_max: float = 0.0,
    ) -> None:
        """``layer_norm``: see :func:`marlkit.networks.groups.mlp` (a GRU policy's encoder); ``init``: the same
        (feed-forward policies only);
        ``state_std``: the Gaussian's std is an output of the network (:class:`StateStdGaussianNet`);
        ``out_gain``: the output layer's weights are scaled by it and its bias zeroed (1: left as initialized);
        ``std_max > 0``: a state-independent std bounded by it, ``std_max * sigmoid(p)`` (HARL's)."""
        super().__init__()
        self.spec = spec
        self.memory = memory
        self.continuous = isinstance(spec.action, Box)
        self.out_dim = 2 * spec.action.dim if isinstance(spec.action, Box) else spec.action.n
        if isinstance(spec.action, Box):
            act_dim = spec.action.dim

            def make() -> nn.Module:
                if memory:
                    core = GRUNet(spec.obs_dim, act_dim, hidden, memory, activation, layer_norm)
                    return GRUGaussianNet(core, init_log_std, out_gain, std_max)
                if state_std:
                    return StateStdGaussianNet(
                        spec.obs_dim, act_dim, hidden, activation, init_log_std, layer_norm, init, out_gain
                    )
                return GaussianNet(
                    spec.obs_dim, act_dim, hidden, activation, init_log_std, layer_norm, init, out_gain, std_max
                )
        else:
            n = spec.action.n

            def make() -> nn.Module:
                net: nn.Module
                if memory:
                    net = GRUNet(spec.obs_dim, n, hidden, memory, activation, layer_norm)
                    _shrink_last_layer(net.head, out_gain)
                else:
                    net = mlp(spec.obs_dim, n, hidden, activation, layer_norm, init)
                    _shrink_last_layer(net, out_gain)
                return net

        self.net = GroupModule(make, spec.n_agents, share_params)

    # ---------------------------------------------------------------- forward
    def dist(
        self,
        obs: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        params: Mapping[str, torch.Tensor] | None = None,
        agent: int | None = None,
        memory: Memory | None = None,
    ) -> torch.Tensor:
        """Distribution parameters for ``obs [..., n_agents, *obs_shape]`` (or one agent's
        ``[..., *obs_shape]`` when ``agent`` is given). ``params`` are stacked-shaped ``[K, ...]``.
        A recurrent policy takes sequences ``obs [B, L, ...]`` and their ``memory``."""
        x = obs.flatten(start_dim=obs.dim() - len(self.spec.obs_shape))

        def call(inputs: torch.Tensor) -> torch.Tensor:
            if agent is None:
                return self.net(inputs, params)
            return self.net.forward_agent(
                inputs, agent, None if params is None else {k: v[0] for k, v in params.items()}
            )

        if self.memory:
            assert memory is not None, "a recurrent policy replays sequences from their Memory"
            out, _ = unroll(call, x, memory.h0, memory.resets, self.out_dim)
        else:
            out = call(x)
        return self._masked(out, action_mask)

    def step(
        self, obs: torch.Tensor, h: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A recurrent policy's env step: ``(distribution parameters, next hidden state)`` from
        ``obs [..., n_agents, *obs_shape]`` and ``h [..., n_agents, memory]``."""
        x = obs.flatten(start_dim=obs.dim() - len(self.spec.obs_shape))
        y = self.net(torch.cat([x, h], -1))
        return self._masked(y[..., : self.out_dim], action_mask), y[..., self.out_dim :]

    def _masked(self, out: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
        if action_mask is not None and not self.continuous:
            out = out.masked_fill(~action_mask, MASKED_LOGIT)
        return out

    # --------------------------------------------------- distribution maths
    def split(self, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_std = dist.chunk(2, dim=-1)
        return loc, log_std

    def sample(self, dist: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            loc, log_std = self.split(dist)
            return loc + log_std.exp() * torch.randn_like(loc)
        return torch.distributions.Categorical(logits=dist).sample()

    def mode(self, dist: torch.Tensor) -> torch.Tensor:
        return self.split(dist)[0] if self.continuous else dist.argmax(-1)

    def log_prob(self, dist: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of the (unclipped) action, summed over action dimensions: ``[...]``."""
        if self.continuous:
            loc, log_std = self.split(dist)
            z = (action - loc) * torch.exp(-log_std)
            return (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
        return torch.log_softmax(dist, -1).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def kl(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Exact KL(old || new) per sample: Gaussian in closed form, categorical as a sum over actions."""
        if self.continuous:
            loc0, log_std0 = self.split(old)
            loc1, log_std1 = self.split(new)
            var_ratio = torch.exp(2 * (log_std0 - log_std1))
            mean_term = (loc0 - loc1).pow(2) * torch.exp(-2 * log_std1)
            return (log_std1 - log_std0 + 0.5 * (var_ratio + mean_term) - 0.5).sum(-1)
        logp0, logp1 = torch.log_softmax(old, -1), torch.log_softmax(new, -1)
        return (logp0.exp() * (logp0 - logp1)).sum(-1)

    def entropy(self, dist: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            _, log_std = self.split(dist)
            return (log_std + 0.5 + _LOG_SQRT_2PI).sum(-1)
        logp = torch.log_softmax(dist, -1)
        return -(logp.exp() * logp).sum(-1)


# ------------------------------------------------------------ off-policy actor heads
def gumbel_head(
    out: torch.Tensor, mask: torch.Tensor | None, mode: ActorMode
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits -> one-hot actions; also returns the raw logits (for a logits regularizer) except in ``mean``."""
    logits = out if mask is None else out.masked_fill(~mask, MASKED_LOGIT)
    if mode == "mean":
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float(), None
    # The regularizer gets the raw logits: masked ones are -1e9 and would dominate it.
    return F.gumbel_softmax(logits, tau=1.0, hard=True), out


def masked_log_probs(out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``log pi(. )`` of a categorical over logits ``out``; illegal actions get probability 0."""
    return torch.log_softmax(out if mask is None else out.masked_fill(~mask, MASKED_LOGIT), -1)


def categorical_head(
    out: torch.Tensor, mask: torch.Tensor | None, mode: ActorMode
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits -> a one-hot action: the argmax (``mean``) or a sample (not differentiable: discrete SAC's
    losses use the exact expectation over actions instead), with ``log pi`` of the sample."""
    n = out.shape[-1]
    if mode == "mean":
        logits = out if mask is None else out.masked_fill(~mask, MASKED_LOGIT)
        return F.one_hot(logits.argmax(-1), n).float(), None
    logp = masked_log_probs(out, mask)
    index = torch.multinomial(logp.exp().reshape(-1, n), 1).view(out.shape[:-1])
    return F.one_hot(index, n).float(), logp.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def squashed_gaussian_head(
    out: torch.Tensor, mode: ActorMode, log_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``[loc, raw log_std]`` -> ``tanh(u)`` actions and log pi (None in ``mean``); ``log_scale`` is
    ``log((high - low) / 2)``, so that log pi is the density of the env's action."""
    loc, log_std = out.chunk(2, dim=-1)
    if mode == "mean":
        return torch.tanh(loc), None
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
    u = loc + log_std.exp() * torch.randn_like(loc)
    return torch.tanh(u), squashed_log_prob(u, loc, log_std, log_scale)


def squashed_log_prob(u: torch.Tensor, loc: torch.Tensor, log_std: torch.Tensor, log_scale: torch.Tensor):
    """log pi(a) of ``a = low + (tanh(u) + 1) * scale`` with ``u ~ N(loc, std)``, summed over dims.

    The tanh Jacobian uses ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``, evaluated at the
    pre-squash ``u`` (stable for large |u|; no atanh of stored actions)."""
    z = (u - loc) * torch.exp(-log_std)
    gauss = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2 * (math.log(2) - u - F.softplus(-2 * u))
    return (gauss - log_det - log_scale).sum(-1)
