"""The off-policy CTDE family on one updater: MADDPG / MATD3 / DDPG / TD3 and SAC / ISAC / MASAC.

Switches pick the variant:

* ``actor``: ``deterministic`` (DDPG-style tanh actor; discrete groups use Gumbel-softmax with
  straight-through and a logits-squared regularizer) or ``squashed_gaussian`` (SAC's tanh-Gaussian
  with a learned or fixed temperature);
* ``critic``: ``local`` Q_i(o_i, a_i) or ``central`` Q_i(global input, all agents' actions), the global
  input being the state or all observations (``central_input``);
* ``n_critics`` 2 with a min (twin), ``target_noise`` (target policy smoothing) and ``policy_delay``:
  all three on is TD3 / MATD3;
* ``others_actions``: in an agent's actor loss, the other agents' actions come from the ``buffer``
  (MADDPG) or from their ``current`` policies (as constants: agent j's actor learns from Q_j only).

Actors see their agent's own observation only. Critics of a group are one batched ensemble
(members = critics x agents, or critics x 1 with shared parameters plus a one-hot agent id).
Actions inside the learner are normalized to [-1, 1]; the env gets them rescaled to its bounds.
Targets bootstrap through truncation and never through termination:
``y_i = r_i + gamma (1 - terminated_i) (min_j Q'_ij(s', a') - alpha_i log pi_i(a'_i | o'_i))``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.offpolicy_actors import ReplayActors, ReplayBatch
from marlkit.algorithms.offpolicy_config import OffPolicyConfig
from marlkit.algorithms.offpolicy_critics import QCritics, td_target
from marlkit.algorithms.replay_learner import ReplayLearner, polyak_
from marlkit.core.errors import MarlkitError
from marlkit.core.options import validate
from marlkit.core.specs import Box, GroupSpec
from marlkit.keys import (
    ACTION,
    ACTION_MASK,
    ALIVE,
    DONE,
    NEXT,
    OBS,
    RECURRENT_STATE,
    REWARD,
    STATE,
    TERMINATED,
    TRUNCATED,
)
from marlkit.learner import EnvInfo
from marlkit.networks.ensemble import clip_grad_norm_per_member_
from marlkit.networks.groups import GroupModule, JointActions, central_input, mlp
from marlkit.networks.recurrent import GRUNet


class OffPolicy(QCritics, ReplayActors, ReplayLearner):
    Config: ClassVar[type] = OffPolicyConfig
    cfg: OffPolicyConfig

    def __init__(self, cfg: OffPolicyConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__(cfg, env)
        validate(cfg, "algo.")
        groups = self.groups
        self.sac = cfg.actor == "squashed_gaussian"
        for g, s in groups.items():
            if isinstance(s.action, Box) and not s.action.bounded:
                raise MarlkitError(f"group '{g}' has unbounded actions; off-policy actors need finite action bounds")
        if not any(s.is_discrete for s in groups.values()):
            defaults = type(cfg)()
            for name in ("target_entropy_fraction", "logits_reg"):
                if getattr(cfg, name) != getattr(defaults, name):
                    raise MarlkitError(
                        f"algo.{name} applies to discrete actions only, but every group of '{env.name}' has "
                        "continuous actions; remove it"
                    )
        self.joint = JointActions(groups)

        recurrent = cfg.network == "gru"
        # SAC's Gaussian needs a mean and a log-std per dimension; logits are one number per action.
        self.out_dims = {g: (2 if self.sac and isinstance(s.action, Box) else 1) * self.joint.widths[g]
                         for g, s in groups.items()}  # fmt: skip

        def actor_net(spec: GroupSpec) -> Callable[[], nn.Module]:
            out_dim = self.out_dims[spec.name]
            if recurrent:
                return lambda: GRUNet(spec.obs_dim, out_dim, cfg.hidden, cfg.gru_hidden, cfg.activation)
            return lambda: mlp(spec.obs_dim, out_dim, cfg.hidden, cfg.activation)

        self.actors = nn.ModuleDict(
            {g: GroupModule(actor_net(s), s.n_agents, cfg.share_actor) for g, s in groups.items()}
        )
        self.critics = nn.ModuleDict({g: self._make_critic(g, s) for g, s in groups.items()})
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.target_actors = None if self.sac else copy.deepcopy(self.actors).requires_grad_(False)
        self.log_alpha = nn.ParameterDict(
            {g: nn.Parameter(torch.full((s.n_agents,), math.log(cfg.alpha))) for g, s in groups.items()}
        )
        self.actor_opt = torch.optim.Adam(self.actors.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam(self.log_alpha.parameters(), lr=cfg.alpha_lr)
        self.init_replay(cfg.buffer_size, seed, recurrent, cfg.chunk_len)
        self._ou: dict[str, torch.Tensor] = {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}

    # ------------------------------------------------------------ networks

    # -------------------------------------------------------------- policies

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for g, spec in self.groups.items():
            group = td[g]
            mask = group.get(ACTION_MASK, None) if spec.has_action_mask else None
            out = None
            if self.recurrent:
                out = self.recurrent_step(self.actors[g], self.flat_obs(g, group), group, self.out_dims[g])
            if not deterministic and self.schedule.warming_up:
                group[ACTION] = spec.random_action(group.batch_size[:-1], None, group.device, mask)
                continue
            action, _ = self.policy(self.actors, g, group[OBS], mask, "mean" if deterministic else "explore", out)
            if not deterministic and isinstance(spec.action, Box) and not self.sac:
                action = (action + self._exploration_noise(g, td, action)).clamp(-1, 1)
            group[ACTION] = self.joint.env(g, action)
        return td

    # ----------------------------------------------------------------- update
    REPLAY_GROUP_KEYS = (OBS, ACTION, ACTION_MASK, ALIVE, REWARD, TERMINATED, TRUNCATED)

    def store(self, batch: TensorDictBase) -> None:
        """Append collected steps to the replay buffer."""
        keys: list = [STATE, (NEXT, STATE)]
        for g in self.groups:
            keys += [(g, k) for k in self.REPLAY_GROUP_KEYS if (g, k) in batch.keys(include_nested=True)]
            keys.append((NEXT, g, OBS))
            if (NEXT, g, ACTION_MASK) in batch.keys(include_nested=True):
                keys.append((NEXT, g, ACTION_MASK))
            if self.recurrent:
                keys.append((g, RECURRENT_STATE))
        self.keep(batch.select(*keys, DONE) if self.recurrent else batch.select(*keys))

    def schedule_metrics(self, learning: bool) -> dict[str, float]:
        out: dict[str, float] = {}
        if learning and self.sac:
            out.update({f"alpha_{g}": float(a.detach().exp().mean()) for g, a in self.log_alpha.items()})
        if learning and not self.sac and any(isinstance(s.action, Box) for s in self.groups.values()):
            out["noise_std"] = self.noise_std()
        return out

    def _unpack(self, rows: TensorDictBase):
        """Per-group tensors of a sampled batch; actions normalized (continuous) or one-hot (discrete)."""
        data = {}
        for g in self.groups:
            group = rows[g]
            data[g] = {
                "obs": group[OBS],
                "action": self.joint.unit(g, group[ACTION]),
                "mask": group.get(ACTION_MASK, None),
                "alive": group[ALIVE].float(),
                "reward": group[REWARD],
                "terminated": group[TERMINATED].float(),
                "next_obs": rows[NEXT, g, OBS],
                # The mask where the next action is drawn: a target must not use an illegal a'.
                "next_mask": rows.get((NEXT, g, ACTION_MASK), None),
            }
        # rows[NEXT] holds the reached state and observations under the same keys.
        source = self.cfg.central_input
        base, next_base = central_input(rows, self.groups, source), central_input(rows[NEXT], self.groups, source)
        return data, base, next_base

    def sample_rows(self) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor | None]:
        """The rows of one gradient step: ``batch_size`` replay rows, their indices and importance
        weights (None: uniform). Subclasses that mix in other data (MBPO) override this."""
        return self.sample_sequences()

    def sample(self) -> ReplayBatch:
        rows, index, weights = self.sample_rows()
        if not self.recurrent:
            data, base, next_base = self._unpack(rows)
            joint = self.joint.pack({g: d["action"] for g, d in data.items()})
            return ReplayBatch(data, base, next_base, joint, index, weights)
        # Sequences [S, L]: their first-step states and resets, then every step as a row of its own.
        memory = self.memory(rows, zero=self.cfg.initial_state == "zero")
        data, base, next_base = self._unpack(rows.reshape(-1))
        if self.cfg.burn_in:  # burn-in steps carry no loss
            counted = (torch.arange(self.seq_len, device=base.device) >= self.cfg.burn_in).repeat(rows.shape[0])
            for d in data.values():
                d["alive"] = d["alive"] * counted.unsqueeze(-1)
        joint = self.joint.pack({g: d["action"] for g, d in data.items()})
        return ReplayBatch(data, base, next_base, joint, index, weights, tuple(rows.shape), memory)  # type: ignore[arg-type]

    @torch.no_grad()
    def targets(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        """Per group ``[B, n_agents]``: r + gamma (1 - terminated) (min_j Q'_j(s', a') [- alpha log pi])."""
        cfg = self.cfg
        next_actions, next_logp, raw = {}, {}, {}
        for g, d in batch.data.items():
            source = self.actors if self.sac else self.target_actors
            raw[g] = self.actor_outputs(source, g, batch, reached=True)  # type: ignore[arg-type]
            a, logp = self.policy(source, g, d["next_obs"], d["next_mask"], "sample", raw[g])  # type: ignore[arg-type]
            if cfg.target_noise > 0 and isinstance(self.groups[g].action, Box):
                noise = torch.randn_like(a) * cfg.target_noise
                a = (a + noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)).clamp(-1, 1)
            next_actions[g], next_logp[g] = a, logp
        next_joint = self.joint.pack(next_actions)
        out = {}
        for g, d in batch.data.items():
            if self.soft_discrete(g):
                # Discrete SAC: the source above was the online actor, whose recurrent outputs are reused.
                probs, logp = self.distribution(self.actors, g, d["next_obs"], d["next_mask"], raw[g])
                q_all = self.q_all_actions(self.target_critics, g, d["next_obs"], batch.next_base, next_joint)
                value = self.soft_value(q_all, probs, logp, self.log_alpha[g].exp())
                out[g] = td_target(d["reward"], d["terminated"], value, cfg.gamma)
                continue
            x = self._critic_in(g, d["next_obs"], batch.next_base, next_actions[g], next_joint)
            q_next = self.q_values(self.target_critics, g, x).min(0).values
            alpha = self.log_alpha[g].exp() if self.sac else None
            out[g] = td_target(d["reward"], d["terminated"], q_next, cfg.gamma, alpha, next_logp[g])
        return out

    def actor_objectives(
        self, batch: ReplayBatch
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Per group ``[B, n_agents]`` objectives to maximize (Q_i, minus alpha_i log pi_i for SAC), the
        fresh log-probs (SAC) and the logits regularizer (discrete deterministic actors)."""
        cfg = self.cfg
        fresh: dict[str, torch.Tensor] = {}
        logps: dict[str, torch.Tensor] = {}
        reg = torch.zeros((), device=batch.base.device)
        raw: dict[str, torch.Tensor | None] = {}
        for g, d in batch.data.items():
            raw[g] = self.actor_outputs(self.actors, g, batch, reached=False)
            fresh[g], extra = self.policy(self.actors, g, d["obs"], d["mask"], "sample", raw[g])
            if self.sac:
                assert extra is not None
                logps[g] = extra
            elif extra is not None:
                reg = reg + cfg.logits_reg * extra.pow(2).mean()
        fresh_joint = self.joint.pack(fresh)
        objectives = {}
        for g, d in batch.data.items():
            if self.soft_discrete(g):
                # Exact expectation over agent i's own action; the others' as below (constants).
                probs, logp = self.distribution(self.actors, g, d["obs"], d["mask"], raw[g])
                others = fresh_joint.detach() if cfg.others_actions == "current" else batch.joint
                q_all = self.q_all_actions(self.critics, g, d["obs"], batch.base, others)
                objectives[g] = self.soft_value(q_all, probs, logp, self.log_alpha[g].exp().detach())
                logps[g] = (probs * logp).sum(-1)  # E[log pi] = -entropy, for the temperature
                continue
            # Agent i's Q sees its own fresh action; the others' come from the buffer (MADDPG) or
            # their current policies, detached: agent j's actor learns from Q_j only, never from
            # another agent's critic (in a competitive game that would teach opponents to help).
            if cfg.critic == "central":
                others = batch.joint if cfg.others_actions == "buffer" else fresh_joint.detach()
                joint = self.joint.with_agent(g, others, fresh_joint)
            else:
                joint = fresh_joint
            q = self.q_values(self.critics, g, self._critic_in(g, d["obs"], batch.base, fresh[g], joint))
            q = q.min(0).values if self.sac else q[0]
            objectives[g] = q - self.log_alpha[g].exp().detach() * logps[g] if self.sac else q
        return objectives, logps, reg

    def gradient_step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        batch = self.sample()
        self.grad_steps += 1
        targets = self.targets(batch)
        critic_loss = torch.zeros((), device=batch.base.device)
        td_error = torch.zeros(batch.base.shape[0], device=batch.base.device)
        for g, d in batch.data.items():
            q = self.q_values(self.critics, g, self._critic_in(g, d["obs"], batch.base, d["action"], batch.joint))
            err = (q - targets[g]) * d["alive"]
            squared = err.pow(2).sum((0, 2))
            if batch.weights is not None:
                squared = squared * batch.weights
            critic_loss = critic_loss + squared.sum() / (cfg.n_critics * d["alive"].sum().clamp_min(1))
            td_error = td_error + err.detach().abs().mean((0, 2))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self._clip(self.critics.parameters(), per_member=True)
        self.critic_opt.step()
        if batch.weights is not None:
            self.replay.update_priorities(batch.index, td_error)
        metrics = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
        if self.grad_steps % cfg.policy_delay:
            return metrics

        objectives, logps, actor_loss = self.actor_objectives(batch)
        for g, d in batch.data.items():
            actor_loss = actor_loss - (objectives[g] * d["alive"]).sum() / d["alive"].sum().clamp_min(1)
        self.actor_opt.zero_grad(set_to_none=True)
        # Only the actors' gradients: the critics' weight gradients are never computed here.
        actor_loss.backward(inputs=list(self.actors.parameters()))
        self._clip(self.actors.parameters(), per_member=not cfg.share_actor)
        self.actor_opt.step()
        metrics["actor_loss"] = actor_loss.detach()

        if self.sac and cfg.auto_alpha:
            alpha_loss = torch.zeros((), device=batch.base.device)
            for g, d in batch.data.items():
                gap = (logps[g].detach() + self.target_entropy(g)) * d["alive"]
                alpha_loss = alpha_loss - (self.log_alpha[g] * gap).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            metrics["entropy"] = -torch.cat([lp.detach().flatten() for lp in logps.values()]).mean()

        polyak_(list(self.target_critics.parameters()), list(self.critics.parameters()), cfg.tau)
        if self.target_actors is not None:
            polyak_(list(self.target_actors.parameters()), list(self.actors.parameters()), cfg.tau)
        return metrics

    # ------------------------------------------------------------- checkpoints
    def exploration_state(self) -> dict[str, object]:
        """The OU noise states (the frames seen, which the base keeps, set the noise decay)."""
        return {"ou": dict(self._ou)}

    def load_exploration_state(self, state: Mapping) -> None:
        self._ou = dict(state["ou"])

    def _clip(self, params, per_member: bool) -> None:
        if self.cfg.max_grad_norm <= 0:
            return
        if per_member:
            clip_grad_norm_per_member_(params, self.cfg.max_grad_norm)
        else:
            nn.utils.clip_grad_norm_(list(params), self.cfg.max_grad_norm)
