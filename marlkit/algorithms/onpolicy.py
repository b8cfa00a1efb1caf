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
* ``step_rule``: ``trust_region`` (marlkit.blocks.trust_region) or ``clip`` (PPO's clipped objective).

With one agent the three trust-region variants run the same computations and give identical
parameters when the critic inputs coincide (tests/test_onpolicy.py).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.onpolicy_actors import OnPolicyActorSteps
from marlkit.algorithms.onpolicy_config import OnPolicyConfig
from marlkit.algorithms.onpolicy_critics import OnPolicyCritics
from marlkit.algorithms.onpolicy_data import GroupBatch, explained_variance, masked_mean
from marlkit.core.errors import MarlkitError
from marlkit.core.options import validate
from marlkit.core.specs import Box
from marlkit.keys import (
    ACTION,
    ACTION_MASK,
    ALIVE,
    CRITIC_STATE,
    OBS,
    PRE_SQUASH,
    RECURRENT_STATE,
    RECURRENT_STATE_OUT,
    STATE,
)
from marlkit.learner import EnvInfo, Learner
from marlkit.networks.normalizers import RunningNorm
from marlkit.networks.policies import GroupPolicy, Memory
from marlkit.networks.recurrent import entering_state, resets_before


class OnPolicy(OnPolicyCritics, OnPolicyActorSteps, Learner):
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
                    cfg.std == "state",
                    cfg.actor_out_gain,
                    cfg.std_max if cfg.std == "bounded" else 0.0,
                )
                for g, s in groups.items()
            }
        )
        # Groups whose Gaussian actions are tanh-squashed into their bounds (algo.squash; discrete ones never).
        self.squashed = {g for g, s in groups.items() if cfg.squash and isinstance(s.action, Box)}
        for g in self.squashed:
            box = typing.cast(Box, groups[g].action)
            if not box.bounded:
                raise MarlkitError(f"algo.squash needs finite action bounds; group '{g}' has {box.low} to {box.high}")
        self.critics = nn.ModuleDict({g: self._make_critic(s, state_dim) for g, s in groups.items()})
        self.obs_norms = nn.ModuleDict({g: RunningNorm(s.obs_shape) for g, s in groups.items()} if cfg.obs_norm else {})
        self.state_norm = RunningNorm((state_dim,)) if cfg.obs_norm and cfg.critic == "central" else None
        self.value_norms = nn.ModuleDict({g: RunningNorm(()) for g in groups} if cfg.value_norm else {})
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps)
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

    @property
    def acting_reads_state(self) -> bool:
        # A recurrent central critic steps on the state while acting.
        return self.cfg.critic_network == "gru" and self.cfg.critic == "central"

    def _policy(self, g: str) -> GroupPolicy:
        return typing.cast(GroupPolicy, self.policies[g])

    # ----------------------------------------------------------------- inputs
    def actor_input(self, g: str, obs: torch.Tensor) -> torch.Tensor:
        return self._norm(self.obs_norms, g)(obs) if g in self.obs_norms else obs

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
            action = policy.mode(dist) if deterministic else policy.sample(dist)
            if g in self.squashed:  # the env gets tanh(u) in its bounds; the update needs u
                low, high = typing.cast(Box, self.groups[g].action).bounds(action.device)
                group[PRE_SQUASH] = action
                action = low + (torch.tanh(action) + 1) * (high - low) / 2
            group[ACTION] = action
        return td

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
            # Squashed: ratios and KLs of tanh(u) equal those of u (an invertible map; the Jacobian cancels).
            action = samples(group[PRE_SQUASH] if g in self.squashed else group[ACTION])
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

    # ----------------------------------------------------------- clip steps

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

    # ---------------------------------------------------------------- critic
