"""The on-policy family on one updater: ITRPO, MATRPO, HATRPO (trust region) and IPPO, MAPPO, HAPPO (clip).

Two switches pick the variant, plus the step rule:

* ``critic``: ``local`` V_i(o_i) or ``central`` V_i(s): with ``share_critic`` one trunk over the
  global state with one output per agent (agents' values differ when their rewards do, and the
  state is not copied per agent), otherwise one network per agent, stacked;
* ``schedule``: ``simultaneous`` (every agent steps on the plain advantage, all agents of a group in one
  batched solve) or ``sequential`` (HATRPO/HAPPO: agents step one after another, in a fresh random
  permutation each iteration, or in env order with ``agent_order=fixed``; agent i_m maximises
  mean[r_{i_m} * M * A] where M is the product of new/old ratios of the agents already updated,
  recomputed on the full batch after each agent's step);
* ``step_rule``: ``trust_region`` (marlkit.trust_region) or ``clip`` (PPO's clipped objective).

With one agent the three trust-region variants run the same computations and give identical
parameters when the critic inputs coincide (tests/test_onpolicy.py).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torch import nn

from marlkit.groups import GroupModule, mlp
from marlkit.keys import (
    ACTION,
    ACTION_MASK,
    ALIVE,
    CRITIC_STATE,
    CRITIC_STATE_OUT,
    NEXT,
    OBS,
    RECURRENT_STATE,
    RECURRENT_STATE_OUT,
    REWARD,
    STATE,
    TERMINATED,
    TRUNCATED,
)
from marlkit.learner import EnvInfo, Learner
from marlkit.normalizers import RunningNorm
from marlkit.options import KeyFn, nested, option, require, require_at_least, validate
from marlkit.policies import GroupPolicy, Memory
from marlkit.recurrent import GRUNet, entering_state, reach, resets_before, unroll
from marlkit.returns import gae
from marlkit.specs import GroupSpec
from marlkit.trust_region import StepResult, TrustRegionConfig, trust_region_step


@dataclass(frozen=True)
class OnPolicyConfig:
    # config.json files written before configs were nested (format 1) named these keys flat.
    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        k: f"trust_region.{k}"
        for k in ("max_kl", "cg_iters", "cg_damping", "backtrack_coef", "backtrack_iters", "accept_ratio")
    }

    critic: Literal["local", "central"] = option("local", "local V_i(o_i) or centralized V_i(s) critic")
    schedule: Literal["simultaneous", "sequential"] = option(
        "simultaneous", "agents step together, or in a random order"
    )
    step_rule: Literal["trust_region", "clip"] = option("trust_region", "TRPO step or PPO clipped objective")
    share_actor: bool = option(False, "one policy network per group instead of one per agent")
    share_critic: bool = option(True, "one critic network per group instead of one per agent")
    agent_order: Literal["random", "fixed"] = option(
        "random", "sequential schedule: a fresh random permutation every iteration, or env order every time"
    )
    allow_shared_sequential: bool = option(False, "opt in to a sequential schedule with shared actors (inexact M)")
    rollout_steps: int = option(100, "steps per env copy collected per iteration")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE lambda")
    adv_norm: Literal["global", "agent", "none"] = option("global", "advantage normalization scope")
    factor_clip: float = option(0.0, "sequential schedule: clip M to [1/c, c] when c > 1 (0 = never)")
    trust_region: TrustRegionConfig = nested(TrustRegionConfig, "the trust-region step (step_rule=trust_region)")
    clip_eps: float = option(0.2, "clip: ratio clipping epsilon")
    actor_lr: float = option(5e-4, "clip: actor Adam learning rate")
    actor_epochs: int = option(10, "clip: epochs over the batch")
    actor_minibatches: int = option(4, "clip: minibatches per epoch")
    entropy_coef: float = option(0.0, "clip: entropy bonus coefficient")
    max_grad_norm: float = option(0.5, "clip: actor gradient-norm clip")
    critic_lr: float = option(1e-3, "critic Adam learning rate")
    critic_epochs: int = option(5, "critic epochs over the batch")
    critic_minibatches: int = option(1, "critic minibatches per epoch")
    critic_max_grad_norm: float = option(10.0, "critic gradient-norm clip")
    value_norm: bool = option(False, "normalize critic targets with running statistics")
    critic_loss: Literal["mse", "huber"] = option("mse", "critic loss on the value error (HARL/MAPPO: huber)")
    huber_delta: float = option(10.0, "huber: the error beyond which the loss grows linearly (HARL/MAPPO: 10)")
    value_clip: float = option(
        0.0, "clip each value to within this of its value at collection, the worse loss counts (0: off; MAPPO: 0.2)"
    )
    obs_norm: bool = option(False, "normalize observations (and state) with running statistics")
    hidden: tuple[int, ...] = option((64, 64), "hidden layer sizes of actors and critics (gru: the actor's encoder)")
    network: Literal["mlp", "gru"] = option("mlp", "actor network: feed-forward, or an MLP encoder followed by a GRU")
    critic_network: Literal["mlp", "gru"] = option("mlp", "critic network: feed-forward, or an MLP encoder and a GRU")
    gru_hidden: int = option(64, "gru: units of each GRU (its hidden state per env copy and agent)")
    chunk_len: int = option(0, "gru: length of the training sequences, dividing rollout_steps (0 = whole rollouts)")
    activation: str = option("tanh", "activation of actors and critics")
    layer_norm: bool = option(False, "LayerNorm on the input and after each hidden layer of actors and critics (HARL)")
    init: Literal["default", "orthogonal"] = option(
        "default", "weights of actors and critics: PyTorch's init, or orthogonal with the activation's gain (HARL)"
    )
    init_log_std: float = option(0.0, "initial log standard deviation of Gaussian policies")

    def validate(self, key: KeyFn) -> None:
        positive = (
            "rollout_steps",
            "actor_epochs",
            "actor_minibatches",
            "critic_epochs",
            "critic_minibatches",
        )
        require_at_least(self, positive, 1, key)
        require(0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1, "algo.gamma must be in (0, 1], gae_lambda in [0, 1]")
        for name in ("clip_eps", "max_grad_norm", "critic_max_grad_norm", "huber_delta"):  # 0 would freeze them
            require(getattr(self, name) > 0, f"{key(name)} must be > 0, got {getattr(self, name)}")
        require_at_least(self, ("entropy_coef", "factor_clip", "value_clip"), 0, key)
        require(self.gru_hidden >= 1, f"{key('gru_hidden')} must be positive, got {self.gru_hidden}")
        require(
            (not self.layer_norm and self.init == "default") or (self.network, self.critic_network) == ("mlp", "mlp"),
            f"{key('layer_norm')} and {key('init')} apply to feed-forward networks; "
            f"{key('network')} and {key('critic_network')} must be mlp",
        )
        require(
            self.critic_network == "mlp" or self.network == "gru",
            f"{key('critic_network')}=gru trains on sequences, which a feed-forward actor does not collect; "
            f"set {key('network')}=gru too",
        )
        require(
            0 <= self.chunk_len <= self.rollout_steps,
            f"{key('chunk_len')} must be in [0, {key('rollout_steps')}={self.rollout_steps}] "
            f"(0 = whole rollouts), got {self.chunk_len}",
        )
        require(
            self.chunk_len == 0 or self.rollout_steps % self.chunk_len == 0,
            f"{key('chunk_len')}={self.chunk_len} must divide {key('rollout_steps')}={self.rollout_steps}",
        )
        require(
            self.schedule == "simultaneous" or not self.share_actor or self.allow_shared_sequential,
            "a sequential schedule (HATRPO/HAPPO) needs separate actor parameters: set algo.share_actor=false, "
            "or algo.allow_shared_sequential=true for the inexact shared variant",
        )


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


class OnPolicy(Learner):
    Config = OnPolicyConfig

    def __init__(self, cfg: OnPolicyConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__()
        validate(cfg, "algo.")
        self.cfg = cfg
        self.groups = groups = dict(env.groups)
        state_dim = env.state_dim
        self.policies = nn.ModuleDict(
            {
                g: GroupPolicy(
                    s,
                    cfg.hidden,
                    cfg.activation,
                    cfg.share_actor,
                    cfg.init_log_std,
                    cfg.gru_hidden if cfg.network == "gru" else 0,
                    cfg.layer_norm,
                    cfg.init,
                )
                for g, s in groups.items()
            }
        )
        self.critics = nn.ModuleDict({g: self._make_critic(s, state_dim) for g, s in groups.items()})
        self.obs_norms = nn.ModuleDict({g: RunningNorm(s.obs_shape) for g, s in groups.items()} if cfg.obs_norm else {})
        self.state_norm = RunningNorm((state_dim,)) if cfg.obs_norm and cfg.critic == "central" else None
        self.value_norms = nn.ModuleDict({g: RunningNorm(()) for g in groups} if cfg.value_norm else {})
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr, eps=1e-5)
        # Clip updates optimize a copy of a group's parameter rows ([K, P], one per agent) with a persistent
        # Adam per copy: per group when simultaneous, per agent when sequential (a shared Adam over stacked
        # parameters would move the other agents through its momentum). One code path for both schedules,
        # so with one agent PPO and HAPPO compute the same numbers.
        self.actor_rows = nn.ParameterDict()
        self.actor_opts: dict[str, torch.optim.Adam] = {}
        self.order_rng = torch.Generator().manual_seed(seed)
        self.shuffle_rng = torch.Generator().manual_seed(seed + 1)
        self.agent_ids = [(g, i) for g, s in groups.items() for i in range(s.n_agents)]
        self.last_order: list[str] = []

    @property
    def steps_per_collection(self) -> int:
        return self.cfg.rollout_steps

    def _policy(self, g: str) -> GroupPolicy:
        return typing.cast(GroupPolicy, self.policies[g])

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
                lambda: GRUNet(in_dim, 1, cfg.hidden, cfg.gru_hidden, cfg.activation), spec.n_agents, cfg.share_critic
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

    # ----------------------------------------------------------------- inputs
    def actor_input(self, g: str, obs: torch.Tensor) -> torch.Tensor:
        return self._norm(self.obs_norms, g)(obs) if g in self.obs_norms else obs

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

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for g in self.groups:
            policy = self._policy(g)
            group = td[g]
            mask = group.get(ACTION_MASK, None) if self.groups[g].has_action_mask else None
            obs = self.actor_input(g, group[OBS])
            if policy.memory:
                # The collector carries the state between steps (zeroed where an episode starts); it is
                # absent on the first step after a reset. Agents that are not alive start afresh.
                h = entering_state(group, RECURRENT_STATE, policy.memory)
                dist, h_out = policy.step(obs, h, mask)
                group[RECURRENT_STATE], group[RECURRENT_STATE_OUT] = h, h_out
            else:
                dist = policy.dist(obs, mask)
            if self.cfg.critic_network == "gru" and not deterministic:  # evaluation needs no values
                self._critic_step(td, g)
            group[ACTION] = policy.mode(dist) if deterministic else policy.sample(dist)
        return td

    def _critic_step(self, td: TensorDictBase, g: str) -> None:
        """Advance a recurrent critic's state by one env step (its value is not needed while collecting):
        training replays the critic from the states stored here, as it does the actor."""
        group = td[g]
        x = self.critic_input(td, g)
        h = entering_state(group, CRITIC_STATE, self.cfg.gru_hidden)
        group[CRITIC_STATE], group[CRITIC_STATE_OUT] = h, self._critic(g)(torch.cat([x, h], -1))[..., 1:]

    @staticmethod
    def _index(memory: Memory | None, idx: torch.Tensor) -> Memory | None:
        return None if memory is None else memory.index(idx)

    # ----------------------------------------------------------------- update
    def update(self, batch: TensorDictBase) -> dict[str, float]:
        data = self._prepare(batch)
        metrics = (
            self._update_actors_sequential(data)
            if self.cfg.schedule == "sequential"
            else self._update_actors_simultaneous(data)
        )
        before = {g: explained_variance(d.value, d.target, d.alive) for g, d in data.items() if d.value is not None}
        metrics.update(self._update_critics(data))
        metrics.update(self._critic_fit(data, before))
        for g in self.obs_norms:
            self._norm(self.obs_norms, g).update(batch[g][OBS], batch[g][ALIVE])
        if self.state_norm is not None:
            self.state_norm.update(batch[STATE])
        return metrics

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
        advantage, returns = gae(
            group[REWARD], value, next_value, group[TERMINATED], group[TRUNCATED], self.cfg.gamma, self.cfg.gae_lambda
        )
        return critic_in, value, advantage, returns

    @torch.no_grad()
    def _prepare(self, batch: TensorDictBase) -> dict[str, GroupBatch]:
        data: dict[str, GroupBatch] = {}
        for g in self.groups:
            policy = self._policy(g)
            group = batch[g]
            critic_in, value, advantage, returns = self.value_targets(batch, g)
            alive = group[ALIVE]
            target_std = float(masked_mean((returns - masked_mean(returns, alive)).pow(2), alive).sqrt())
            value_norm = self._norm(self.value_norms, g) if g in self.value_norms else None
            if value_norm is not None:
                value_norm.update(returns, group[ALIVE])
                returns = value_norm.normalize(returns, clip=False)
                value = value_norm.normalize(value, clip=False)
            memory = self._memory(batch, g, RECURRENT_STATE) if policy.memory else None
            critic_memory = self._memory(batch, g, CRITIC_STATE) if self.cfg.critic_network == "gru" else None
            samples = self._sequences if policy.memory else lambda x: x.flatten(0, 1)
            obs = samples(self.actor_input(g, group[OBS]))
            mask = samples(group[ACTION_MASK]) if self.groups[g].has_action_mask else None
            action = samples(group[ACTION])
            old_dist = policy.dist(obs, mask, memory=memory)
            data[g] = GroupBatch(
                obs,
                action,
                mask,
                samples(group[ALIVE]),
                samples(critic_in),
                samples(advantage),
                samples(returns),
                old_dist,
                policy.log_prob(old_dist, action),
                memory,
                critic_memory,
                samples(value),
                target_std,
            )
        self._normalize_advantages(data)
        return data

    def _sequences(self, x: torch.Tensor) -> torch.Tensor:
        """``[num_envs, T, ...]`` -> ``[num_envs * T / L, L, ...]``: consecutive chunks of length L."""
        length = self.cfg.chunk_len or x.shape[1]
        return x.reshape(x.shape[0] * (x.shape[1] // length), length, *x.shape[2:])

    def _memory(self, batch: TensorDictBase, g: str, key: str, length: int | None = None) -> Memory:
        """Each chunk's stored first-step state (``key``: the actor's or the critic's), and the resets
        before every step: the env copy was reset after the previous step, or the agent is not alive (as
        :meth:`act` did). ``length``: the chunk length (default: ``chunk_len``, or whole rollouts)."""
        length = length or self.cfg.chunk_len or batch.shape[1]
        resets = resets_before(batch, g)
        h0 = batch[g, key][:, ::length]
        chunks = resets.reshape(resets.shape[0] * (resets.shape[1] // length), length, *resets.shape[2:])
        return Memory(h0.flatten(0, 1), chunks)

    def _normalize_advantages(self, data: dict[str, GroupBatch]) -> None:
        if self.cfg.adv_norm == "none":
            return
        if self.cfg.adv_norm == "agent":
            for d in data.values():
                dims = tuple(range(d.lead))
                mean = masked_mean(d.advantage, d.alive, dims)
                std = masked_mean((d.advantage - mean).pow(2), d.alive, dims).sqrt()
                d.advantage = (d.advantage - mean) / (std + 1e-8)
            return
        adv = torch.cat([d.advantage[d.alive] for d in data.values()])
        mean, std = adv.mean(), adv.std(unbiased=False)
        for d in data.values():
            d.advantage = (d.advantage - mean) / (std + 1e-8)

    # ------------------------------------------------------ trust-region steps
    def _solve(self, g: str, d: GroupBatch, weight: torch.Tensor | None, agent: int | None) -> StepResult:
        """A trust-region step for group ``g`` (all agents batched) or for one ``agent`` of it."""
        policy = self._policy(g)
        net = policy.net
        # Separate parameters solve one problem per agent (reduce over samples); shared, one problem.
        b = d if agent is None else d.agent(agent)
        dims = tuple(range(b.lead + (agent is None and net.share_params)))
        obs, mask, action, alive, adv = b.obs, b.mask, b.action, b.alive, b.advantage
        old_dist, old_lp = b.old_dist, b.old_log_prob
        theta0 = net.flat_params(agent)
        if weight is not None:
            adv = adv * weight

        def per_problem(x: torch.Tensor) -> torch.Tensor:
            return masked_mean(x, alive, dims).reshape(-1)

        def dist_at(theta: torch.Tensor) -> torch.Tensor:
            return policy.dist(obs, mask, net.unflatten(theta), agent, b.memory)

        def surrogate(theta: torch.Tensor) -> torch.Tensor:
            ratio = torch.exp(policy.log_prob(dist_at(theta), action) - old_lp)
            return per_problem(ratio * adv)

        def kl(theta: torch.Tensor) -> torch.Tensor:
            return per_problem(policy.kl(old_dist, dist_at(theta)))

        result = trust_region_step(theta0, surrogate, kl, self.cfg.trust_region)
        net.set_flat_params(result.theta, agent)
        return result

    def _update_actors_simultaneous(self, data: dict[str, GroupBatch]) -> dict[str, float]:
        if self.cfg.step_rule == "clip":
            rows = {g: self._actor_row(g, self._policy(g).net.flat_params()) for g in data}
            clip_metrics = self._clip_epochs(
                list(rows),
                lambda idx: torch.stack(
                    [self._clip_loss(g, d, idx, params=self._policy(g).net.unflatten(rows[g])) for g, d in data.items()]
                ).sum(),
                data,
            )
            for g, row in rows.items():
                self._policy(g).net.set_flat_params(row.detach())
            return clip_metrics
        metrics: dict[str, float] = {}
        for g, d in data.items():
            metrics.update(self._solve(g, d, None, None).metrics(f"{g}/"))
        return metrics

    def _update_actors_sequential(self, data: dict[str, GroupBatch]) -> dict[str, float]:
        n = len(self.agent_ids)
        order = torch.randperm(n, generator=self.order_rng).tolist() if self.cfg.agent_order == "random" else range(n)
        self.last_order = [f"{self.agent_ids[k][0]}_{self.agent_ids[k][1]}" for k in order]
        any_d = next(iter(data.values()))
        factor = torch.ones(any_d.alive.shape[: any_d.lead], device=any_d.alive.device)
        results: dict[str, list[dict[str, float]]] = {}
        for k in order:
            g, i = self.agent_ids[k]
            d = data[g]
            if self.cfg.step_rule == "trust_region":
                results.setdefault(g, []).append(self._solve(g, d, factor, i).metrics(f"{g}/"))
            else:
                results.setdefault(g, []).append(self._clip_agent(g, i, d, factor))
            with torch.no_grad():
                policy, a = self._policy(g), d.agent(i)
                new_lp = policy.log_prob(policy.dist(a.obs, a.mask, agent=i, memory=a.memory), a.action)
                ratio = torch.where(a.alive, torch.exp(new_lp - a.old_log_prob), 1.0)
                factor = factor * ratio
                if self.cfg.factor_clip > 1:
                    factor = factor.clamp(1 / self.cfg.factor_clip, self.cfg.factor_clip)
        metrics = {key: sum(r[key] for r in rs) / len(rs) for rs in results.values() for key in rs[0]}
        self.last_factor = factor
        metrics["factor_mean"] = float(factor.mean())
        metrics["factor_max"] = float(factor.max())
        return metrics

    # ----------------------------------------------------------- clip steps
    def _clip_loss(
        self,
        g: str,
        d: GroupBatch,
        idx: torch.Tensor,
        agent: int | None = None,
        weight: torch.Tensor | None = None,
        params: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        policy = self._policy(g)
        b = d if agent is None else d.agent(agent)
        mask = None if b.mask is None else b.mask[idx]
        dist = policy.dist(b.obs[idx], mask, params, agent, self._index(b.memory, idx))
        ratio = torch.exp(policy.log_prob(dist, b.action[idx]) - b.old_log_prob[idx])
        adv = b.advantage[idx] * (1.0 if weight is None else weight[idx])
        clipped = torch.min(ratio * adv, ratio.clamp(1 - self.cfg.clip_eps, 1 + self.cfg.clip_eps) * adv)
        alive = b.alive[idx]
        return -masked_mean(clipped, alive) - self.cfg.entropy_coef * masked_mean(policy.entropy(dist), alive)

    # ------------------------------------------------------------- checkpoints
    def training_state(self, include_replay: bool = True) -> dict[str, object]:
        """Everything besides ``state_dict()`` that an exact resume needs: optimizers and generators."""
        return {
            "critic_opt": self.critic_opt.state_dict(),
            "actor_rows": {k: p.detach().clone() for k, p in self.actor_rows.items()},
            "actor_opts": {k: o.state_dict() for k, o in self.actor_opts.items()},
            "order_rng": self.order_rng.get_state(),
            "shuffle_rng": self.shuffle_rng.get_state(),
        }

    def load_training_state(self, state: Mapping) -> None:
        """Call before ``load_state_dict``: it creates the lazily made optimizer rows the weights refer to."""
        self.critic_opt.load_state_dict(state["critic_opt"])
        device = next(self.parameters()).device  # checkpoints load onto the CPU
        for key, rows in state["actor_rows"].items():
            self._actor_row(key, rows.to(device))
            self.actor_opts[key].load_state_dict(state["actor_opts"][key])
        self.order_rng.set_state(state["order_rng"])
        self.shuffle_rng.set_state(state["shuffle_rng"])

    def _actor_row(self, key: str, current: torch.Tensor) -> nn.Parameter:
        """The optimizer's copy of some parameter rows of group ``g``, refreshed from ``current``."""
        if key not in self.actor_rows:
            self.actor_rows[key] = nn.Parameter(current.clone())
            self.actor_opts[key] = torch.optim.Adam([self.actor_rows[key]], lr=self.cfg.actor_lr, eps=1e-5)
        row = self.actor_rows[key]
        with torch.no_grad():
            row.copy_(current)
        return typing.cast(nn.Parameter, row)

    def _clip_epochs(
        self, keys: list[str], loss_fn: Callable[[torch.Tensor], torch.Tensor], data: Mapping[str, GroupBatch]
    ) -> dict[str, float]:
        n = next(iter(data.values())).alive.shape[0]
        device = next(iter(data.values())).alive.device
        losses = []
        for _ in range(self.cfg.actor_epochs):
            perm = torch.randperm(n, generator=self.shuffle_rng)
            for idx in perm.chunk(self.cfg.actor_minibatches):
                loss = loss_fn(idx.to(device))
                for key in keys:
                    self.actor_opts[key].zero_grad()
                loss.backward()
                for key in keys:
                    grad = self.actor_rows[key].grad
                    assert grad is not None
                    # Each agent's row is clipped to its own norm: agents do not share a clip factor.
                    norms = grad.norm(dim=1, keepdim=True)
                    grad.mul_((self.cfg.max_grad_norm / (norms + 1e-6)).clamp(max=1.0))
                    self.actor_opts[key].step()
                losses.append(float(loss.detach()))
        return {"actor_loss": sum(losses) / len(losses)}

    def _clip_agent(self, g: str, i: int, d: GroupBatch, weight: torch.Tensor) -> dict[str, float]:
        net = self._policy(g).net
        key = f"{g}__{i}" if not net.share_params else f"{g}__shared"
        row = self._actor_row(key, net.flat_params(i))
        metrics = self._clip_epochs(
            [key], lambda idx: self._clip_loss(g, d, idx, i, weight, net.unflatten(row)), {g: d}
        )
        net.set_flat_params(row.detach(), i)
        return {f"{g}/{k}": v for k, v in metrics.items()}

    # ---------------------------------------------------------------- critic
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
                                self.value(g, d.critic_in[idx], self._index(d.critic_memory, idx)),
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
