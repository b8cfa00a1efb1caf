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
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.errors import MarlkitError
from marlkit.groups import GroupModule, JointActions, central_input, central_input_dim, mlp
from marlkit.keys import (
    ACTION,
    ACTION_MASK,
    ALIVE,
    DONE,
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
from marlkit.nets import EnsembleMLP, clip_grad_norm_per_member_
from marlkit.options import KeyFn, option, require, require_at_least, validate
from marlkit.policies import (
    ActorMode,
    Memory,
    categorical_head,
    gumbel_head,
    masked_log_probs,
    squashed_gaussian_head,
)
from marlkit.recurrent import GRUNet, entering_state, reach, resets_before, unroll
from marlkit.replay import ReplayBuffer, ReplayOptions
from marlkit.schedules import UpdateSchedule, linear
from marlkit.specs import Box, Discrete, GroupSpec


@dataclass(frozen=True)
class OffPolicyConfig(ReplayOptions):
    actor: Literal["deterministic", "squashed_gaussian"] = option("deterministic", "DDPG-style or SAC actor")
    critic: Literal["local", "central"] = option("central", "Q_i(o_i, a_i) or Q_i(global input, all actions)")
    central_input: Literal["state", "observations"] = option("state", "global input of central critics")
    others_actions: Literal["buffer", "current"] = option("buffer", "other agents' actions in an actor loss")
    share_actor: bool = option(False, "one actor network per group instead of one per agent")
    share_critic: bool = option(True, "one critic network per group (with agent id) instead of one per agent")
    n_critics: int = option(1, "Q networks per agent; 2 takes the min (twin critics)")
    target_noise: float = option(0.0, "target policy smoothing noise std (normalized actions; TD3: 0.2)")
    target_noise_clip: float = option(0.5, "clip of the target smoothing noise")
    policy_delay: int = option(1, "critic steps per actor and target step (TD3: 2)")
    buffer_size: int = option(1_000_000, "replay capacity in transitions (env copies x steps)")
    batch_size: int = option(256, "transitions per gradient step")
    tau: float = option(0.005, "Polyak factor: target <- tau * online + (1 - tau) * target")
    actor_lr: float = option(3e-4, "actor Adam learning rate")
    critic_lr: float = option(3e-4, "critic Adam learning rate")
    max_grad_norm: float = option(0.0, "per-agent gradient-norm clip of actors and critics (0 = off)")
    alpha: float = option(0.2, "SAC: initial (or fixed) temperature")
    auto_alpha: bool = option(True, "SAC: learn the temperature towards the entropy target per agent")
    target_entropy_per_dim: float = option(-1.0, "SAC: entropy target per action dimension (-1: the usual -|A|)")
    alpha_lr: float = option(3e-4, "SAC: temperature Adam learning rate")
    target_entropy_fraction: float = option(0.98, "discrete SAC: entropy target as a fraction of log |A|")
    exploration: Literal["gaussian", "ou"] = option("gaussian", "deterministic actors: exploration noise")
    noise_std: float = option(0.1, "deterministic actors: initial noise std (normalized actions)")
    noise_std_final: float = option(0.1, "deterministic actors: noise std after noise_decay_frames")
    noise_decay_frames: int = option(0, "frames of linear noise decay (0: constant)")
    ou_theta: float = option(0.15, "Ornstein-Uhlenbeck mean reversion")
    logits_reg: float = option(1e-3, "discrete deterministic actors: weight of mean(logits^2)")
    hidden: tuple[int, ...] = option((256, 256), "hidden layer sizes of actors and critics (gru: actor encoder)")
    activation: str = option("relu", "activation of actors and critics")
    network: Literal["mlp", "gru"] = option("mlp", "actor network: feed-forward, or an MLP encoder followed by a GRU")
    gru_hidden: int = option(64, "gru: units of the actors' GRU")
    chunk_len: int = option(10, "gru: replayed sequence length (rows of the buffer); it divides rollout_steps")
    burn_in: int = option(0, "gru: leading steps of each sequence that only warm the state up (no loss)")
    initial_state: Literal["stored", "zero"] = option(
        "stored", "gru: replayed sequences start from the state stored at collection, or from zeros"
    )

    def validate(self, key: KeyFn) -> None:
        self.validate_replay(key)
        require_at_least(self, ("n_critics", "policy_delay", "buffer_size", "batch_size", "gru_hidden", "chunk_len"),
                         1, key)  # fmt: skip
        if self.network == "gru":
            require(
                self.rollout_steps % self.chunk_len == 0,
                f"{key('chunk_len')}={self.chunk_len} must divide {key('rollout_steps')}={self.rollout_steps}",
            )
            require(
                0 <= self.burn_in < self.chunk_len,
                f"{key('burn_in')} must be in [0, {key('chunk_len')}={self.chunk_len}), got {self.burn_in}",
            )
            require(
                self.batch_size >= self.chunk_len,
                f"{key('batch_size')}={self.batch_size} must hold at least one sequence of "
                f"{key('chunk_len')}={self.chunk_len} steps",
            )
            require(
                not self.prioritized,
                f"{key('prioritized')} is not supported with {key('network')}=gru (replay rows are sequences); "
                f"set {key('prioritized')}=false",
            )
        require(0 < self.tau <= 1, f"algo.tau must be in (0, 1], got {self.tau}")
        require(self.alpha > 0, f"algo.alpha must be > 0, got {self.alpha}")
        require_at_least(
            self,
            ("target_noise", "target_noise_clip", "noise_std", "noise_std_final", "noise_decay_frames",
             "max_grad_norm", "logits_reg", "burn_in"),
            0,
            key,
        )  # fmt: skip
        require(0 <= self.ou_theta <= 1, f"{key('ou_theta')} must be in [0, 1], got {self.ou_theta}")
        require(
            0 <= self.target_entropy_fraction <= 1,
            f"{key('target_entropy_fraction')} must be in [0, 1], got {self.target_entropy_fraction}",
        )


def polyak_(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target``, in place, for all tensors in one fused call."""
    torch._foreach_lerp_(target, online, tau)


def td_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    gamma: float,
    alpha: torch.Tensor | None = None,
    next_logp: torch.Tensor | None = None,
) -> torch.Tensor:
    """``r + gamma (1 - terminated) V(s')`` with the soft value ``V = Q - alpha log pi`` when ``alpha`` is
    given. Truncation does not appear: a time limit still bootstraps from the reached state."""
    if alpha is None:
        value = q_next
    else:
        assert next_logp is not None, "a soft target needs log pi(a'|s')"
        value = q_next - alpha * next_logp
    return reward + gamma * (1 - terminated.float()) * value


@dataclass
class ReplayBatch:
    """A sampled batch, unpacked per group (actions normalized / one-hot), with the critics' global inputs."""

    data: dict[str, dict[str, torch.Tensor]]
    base: torch.Tensor
    next_base: torch.Tensor
    joint: torch.Tensor
    index: torch.Tensor
    weights: torch.Tensor | None
    # Recurrent actors: the sampled sequences' shape [sequences, chunk_len] (the rows above are these,
    # flattened) and each group's stored first-step states and resets.
    sequences: tuple[int, int] | None = None
    memory: dict[str, Memory] | None = None


class OffPolicy(Learner):
    Config: ClassVar[type] = OffPolicyConfig
    replays: ClassVar[bool] = True

    def __init__(self, cfg: OffPolicyConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__()
        validate(cfg, "algo.")
        self.cfg, self.groups, self.state_dim = cfg, dict(env.groups), env.state_dim
        groups = self.groups
        self.sac = cfg.actor == "squashed_gaussian"
        for g, s in groups.items():
            if isinstance(s.action, Box) and not all(map(math.isfinite, (*s.action.low, *s.action.high))):
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

        self.recurrent = cfg.network == "gru"
        # SAC's Gaussian needs a mean and a log-std per dimension; logits are one number per action.
        self.out_dims = {g: (2 if self.sac and isinstance(s.action, Box) else 1) * self.joint.widths[g]
                         for g, s in groups.items()}  # fmt: skip

        def actor_net(spec: GroupSpec) -> Callable[[], nn.Module]:
            out_dim = self.out_dims[spec.name]
            if self.recurrent:
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
        # A recurrent learner's rows are sequences of chunk_len steps; capacity and batches still count steps.
        self.seq_len = cfg.chunk_len if self.recurrent else 1
        self.replay = ReplayBuffer(cfg.buffer_size // self.seq_len, None, seed, cfg.prioritized, cfg.priority_alpha,
                                   cfg.priority_beta, item_dims=int(self.recurrent))  # fmt: skip
        self.schedule = UpdateSchedule(cfg.warmup_frames, cfg.updates_per_frame)
        self.grad_steps = 0
        self._ou: dict[str, torch.Tensor] = {}

    @property
    def steps_per_collection(self) -> int:
        return self.cfg.rollout_steps

    # ------------------------------------------------------------ networks
    def _make_critic(self, g: str, s: GroupSpec) -> EnsembleMLP:
        cfg = self.cfg
        if cfg.critic == "local":
            in_dim = s.obs_dim + self.joint.widths[g]
        else:
            joint = central_input_dim(self.groups, self.state_dim, cfg.central_input, with_actions=True)
            in_dim = joint + (s.n_agents if self._agent_id(g) else 0)
        members = cfg.n_critics * (1 if cfg.share_critic else s.n_agents)
        return EnsembleMLP(members, in_dim, 1, cfg.hidden, cfg.activation)

    def _agent_id(self, g: str) -> bool:
        # A shared central critic sees the same input for every agent: a one-hot id tells them apart.
        return self.cfg.critic == "central" and self.cfg.share_critic and self.groups[g].n_agents > 1

    def q_values(self, critics: nn.ModuleDict, g: str, x: torch.Tensor) -> torch.Tensor:
        """Critic inputs ``[B, n_agents, D]`` -> Q values ``[n_critics, B, n_agents]`` in one batched call."""
        b, n, d = x.shape
        nq = self.cfg.n_critics
        net = critics[g]
        if self.cfg.share_critic:
            return net(x.reshape(1, b * n, d).expand(nq, b * n, d)).view(nq, b, n)
        per_agent = x.transpose(0, 1).unsqueeze(0).expand(nq, n, b, d).reshape(nq * n, b, d)
        return net(per_agent).view(nq, n, b).transpose(1, 2)

    def critic_input(self, g: str, obs: torch.Tensor, base: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        """``actions``: the group's own ``[B, n, a]`` (local critic) or joint ``[B, n, joint.dim]``
        (central critic, one row per agent so that each agent may see a different joint action)."""
        if self.cfg.critic == "local":
            return torch.cat([obs.flatten(2), actions], dim=-1)
        assert base is not None
        b, n = actions.shape[:2]
        parts = [base.unsqueeze(1).expand(b, n, base.shape[-1]), actions]
        if self._agent_id(g):
            parts.append(torch.eye(n, device=base.device).expand(b, n, n))
        return torch.cat(parts, dim=-1)

    # -------------------------------------------------------------- policies
    def policy(
        self,
        actors: nn.ModuleDict,
        g: str,
        obs: torch.Tensor,
        mask: torch.Tensor | None,
        mode: ActorMode,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalized actions ``[..., n, a]`` (one-hot for discrete) and log pi ``[..., n]`` (SAC; the raw
        logits for discrete actors; else None).

        ``mode``: ``sample`` (differentiable: reparameterized / straight-through), ``mean`` (deterministic),
        ``explore`` (behaviour: SAC sample, Gumbel sample, or deterministic plus noise added by ``act``).
        ``out``: the actor's raw output where it was computed already (recurrent actors)."""
        if out is None:
            out = actors[g](obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape)))
        if isinstance(self.groups[g].action, Discrete):
            if self.sac:
                return categorical_head(out, mask, mode)
            return gumbel_head(out, mask, mode)
        if not self.sac:
            return torch.tanh(out), None
        return squashed_gaussian_head(out, mode, self._log_scale(g))

    def soft_discrete(self, g: str) -> bool:
        """Discrete SAC: expectations over this group's actions are exact sums, not samples."""
        return self.sac and isinstance(self.groups[g].action, Discrete)

    def distribution(
        self,
        actors: nn.ModuleDict,
        g: str,
        obs: torch.Tensor,
        mask: torch.Tensor | None,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A discrete group's ``pi(. | o_i)`` and ``log pi(. | o_i)``, ``[..., n, n_actions]`` each; illegal
        actions get probability 0."""
        if out is None:
            out = actors[g](obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape)))
        logp = masked_log_probs(out, mask)
        return logp.exp(), logp

    def actor_outputs(self, actors: nn.ModuleDict, g: str, batch: ReplayBatch, reached: bool) -> torch.Tensor | None:
        """Recurrent actors: raw outputs at every sampled step's observation (``reached``: at the observation
        the step reached, from the state after it), unrolled over the sequences from their stored
        first-step states; the first ``burn_in`` steps only warm the state up, without gradient. None
        for feed-forward actors, which :meth:`policy` runs on the observations."""
        if batch.memory is None or batch.sequences is None:
            return None
        spec, memory, d = self.groups[g], batch.memory[g], batch.data[g]
        net, out_dim, burn = actors[g], self.out_dims[g], self.cfg.burn_in
        sequences = batch.sequences

        def inputs(key: str) -> torch.Tensor:
            x = d[key].flatten(start_dim=d[key].dim() - len(spec.obs_shape))
            return x.view(*sequences, *x.shape[1:])

        out, states = unroll(net, inputs("obs"), memory.h0, memory.resets, out_dim, burn)
        if reached:
            out = reach(net, inputs("next_obs"), states, out_dim)
        return out.flatten(0, 1)

    def q_all_actions(
        self, critics: nn.ModuleDict, g: str, obs: torch.Tensor, base: torch.Tensor, behaviour: torch.Tensor
    ) -> torch.Tensor:
        """``Q_i`` with agent i's own action set to each of its group's actions in turn, the other agents'
        actions from the joint ``behaviour [B, dim]`` (central critics): ``[n_critics, B, n, n_actions]``,
        all actions in one batched critic call."""
        spec = self.groups[g]
        assert isinstance(spec.action, Discrete)
        k, b, n = spec.action.n, obs.shape[0], spec.n_agents
        own = torch.eye(k, device=obs.device).view(k, 1, 1, k).expand(k, b, n, k)
        rows_obs = obs.unsqueeze(0).expand(k, *obs.shape).flatten(0, 1)
        if self.cfg.critic == "local":
            x = self.critic_input(g, rows_obs, None, own.flatten(0, 1))
        else:
            zeros = {h: own.new_zeros(k, b, t.n_agents, self.joint.widths[h]) for h, t in self.groups.items()}
            fresh = self.joint.pack({**zeros, g: own})
            others = behaviour.unsqueeze(0).expand(k, *behaviour.shape).flatten(0, 1)
            joint = self.joint.with_agent(g, others, fresh.flatten(0, 1))
            x = self.critic_input(g, rows_obs, base.unsqueeze(0).expand(k, *base.shape).flatten(0, 1), joint)
        q = self.q_values(critics, g, x)
        return q.view(q.shape[0], k, b, n).permute(0, 2, 3, 1)

    @staticmethod
    def soft_value(q_all: torch.Tensor, probs: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """``sum_a pi(a) (min_j Q_j(a) - alpha log pi(a))`` per agent, ``[B, n]`` (``alpha [n]``); illegal
        actions weigh 0."""
        return (probs * (q_all.min(0).values - alpha.unsqueeze(-1) * logp)).sum(-1)

    def target_entropy(self, g: str) -> float:
        action = self.groups[g].action
        if isinstance(action, Discrete):
            return self.cfg.target_entropy_fraction * math.log(action.n)
        return self.cfg.target_entropy_per_dim * self.joint.widths[g]

    def _log_scale(self, g: str) -> torch.Tensor:
        low, high = self.joint.bounds(g)
        return torch.log((high - low) / 2)

    def noise_std(self) -> float:
        cfg = self.cfg
        if cfg.noise_decay_frames <= 0:
            return cfg.noise_std
        return linear(self.schedule.frames, 0, cfg.noise_decay_frames, cfg.noise_std, cfg.noise_std_final)

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for g, spec in self.groups.items():
            group = td[g]
            mask = group.get(ACTION_MASK, None) if spec.has_action_mask else None
            out = self._recurrent_step(g, group) if self.recurrent else None
            if not deterministic and self.schedule.warming_up:
                group[ACTION] = spec.random_action(group.batch_size[:-1], None, group.device, mask)
                continue
            action, _ = self.policy(self.actors, g, group[OBS], mask, "mean" if deterministic else "explore", out)
            if not deterministic and isinstance(spec.action, Box) and not self.sac:
                action = (action + self._exploration_noise(g, td, action)).clamp(-1, 1)
            group[ACTION] = self.joint.env(g, action)
        return td

    def _recurrent_step(self, g: str, group: TensorDictBase) -> torch.Tensor:
        """One GRU step of group ``g``'s actors: writes the state entering the step (zeros after a reset,
        zeroed for agents that are not alive) and the state it produced, returns the raw output. It runs
        during the warm-up too, so that every stored step has its state."""
        obs = group[OBS]
        x = obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape))
        h = entering_state(group, RECURRENT_STATE, self.cfg.gru_hidden)
        y = self.actors[g](torch.cat([x, h], -1))
        group[RECURRENT_STATE], group[RECURRENT_STATE_OUT] = h, y[..., self.out_dims[g] :]
        return y[..., : self.out_dims[g]]

    def _exploration_noise(self, g: str, td: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        white = torch.randn_like(action) * self.noise_std()
        if self.cfg.exploration == "gaussian":
            return white
        state = self._ou.get(g)
        if state is None or state.shape != action.shape:
            state = torch.zeros_like(action)
        if DONE in td.keys():  # a new episode starts where the previous step ended one
            state = state * (~td[DONE]).view(-1, *([1] * (action.dim() - 1)))
        self._ou[g] = state = state - self.cfg.ou_theta * state + white
        return state

    # ----------------------------------------------------------------- update
    REPLAY_GROUP_KEYS = (OBS, ACTION, ACTION_MASK, ALIVE, REWARD, TERMINATED, TRUNCATED)

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        self.store(batch)
        return self.learn(batch.numel(), batch.shape[0])

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
        if not self.recurrent:
            self.replay.extend(batch.select(*keys))
        else:
            # Rows are consecutive chunks of each env copy's steps; DONE marks the resets inside them.
            chunks = batch.select(*keys, DONE)
            copies, steps = chunks.shape
            self.replay.extend(chunks.reshape(copies * (steps // self.seq_len), self.seq_len))
        self.schedule.record(batch.numel())

    def learn(self, new_frames: int, copies: int) -> dict[str, float]:
        """The gradient steps the schedule owes for ``new_frames`` from ``copies`` env copies (none during warm-up)."""
        if self.schedule.warming_up or len(self.replay) == 0:
            return {"replay_size": float(len(self.replay))}
        steps = self.schedule.due(new_frames, copies)
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(steps):
            metrics.update(self.gradient_step())
        out = {k: float(v) for k, v in metrics.items()}
        out.update(replay_size=float(len(self.replay)), grad_steps=float(self.grad_steps))
        if self.sac:
            out.update({f"alpha_{g}": float(a.detach().exp().mean()) for g, a in self.log_alpha.items()})
        if not self.sac and any(isinstance(s.action, Box) for s in self.groups.values()):
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

    def _critic_in(self, g: str, obs: torch.Tensor, base: torch.Tensor, own: torch.Tensor, joint: torch.Tensor):
        if self.cfg.critic == "local":
            return self.critic_input(g, obs, None, own)
        n = self.groups[g].n_agents
        return self.critic_input(g, obs, base, joint.unsqueeze(1).expand(-1, n, -1) if joint.dim() == 2 else joint)

    def sample_rows(self) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor | None]:
        """The rows of one gradient step: ``batch_size`` replay rows, their indices and importance
        weights (None: uniform). Subclasses that mix in other data (MBPO) override this."""
        return self.replay.sample(self.cfg.batch_size // self.seq_len)

    def sample(self) -> ReplayBatch:
        rows, index, weights = self.sample_rows()
        if not self.recurrent:
            data, base, next_base = self._unpack(rows)
            joint = self.joint.pack({g: d["action"] for g, d in data.items()})
            return ReplayBatch(data, base, next_base, joint, index, weights)
        # Sequences [S, L]: the stored first-step states and the resets before each step (the previous
        # step ended an episode, or the agent is not alive), then every step as a row of its own.
        zero = self.cfg.initial_state == "zero"
        memory = {
            g: Memory(
                torch.zeros_like(rows[g, RECURRENT_STATE][:, 0]) if zero else rows[g, RECURRENT_STATE][:, 0],
                resets_before(rows, g),
            )
            for g in self.groups
        }
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
    def training_state(self, include_replay: bool = True) -> dict[str, object]:
        """Everything besides ``state_dict()`` that an exact resume needs (the replay buffer optionally)."""
        state: dict[str, object] = {
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "frames": self.schedule.frames,
            "grad_steps": self.grad_steps,
            "update_credit": self.schedule.credit,
            "ou": dict(self._ou),
        }
        if include_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def load_training_state(self, state: Mapping) -> None:
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.grad_steps = int(state["grad_steps"])
        self.schedule.credit = float(state["update_credit"])
        self.load_acting_state(state)
        if "replay" in state:
            self.replay.load_state_dict(state["replay"], device=self.joint.device)

    def acting_state(self) -> dict[str, object]:
        """Frames seen (warm-up and the noise decay) and the OU noise states."""
        return {"frames": self.schedule.frames, "ou": dict(self._ou)}

    def load_acting_state(self, state: Mapping) -> None:
        self.schedule.frames = int(state["frames"])
        self._ou = dict(state["ou"])

    def _clip(self, params, per_member: bool) -> None:
        if self.cfg.max_grad_norm <= 0:
            return
        if per_member:
            clip_grad_norm_per_member_(params, self.cfg.max_grad_norm)
        else:
            nn.utils.clip_grad_norm_(list(params), self.cfg.max_grad_norm)
