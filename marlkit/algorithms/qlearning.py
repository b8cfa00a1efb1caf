"""Value-based learning on one updater: DQN (N=1), IQL, VDN and QMIX.

Every agent has a utility ``Q_i(o_i, .)`` over its discrete actions (one network per group with an
optional one-hot agent id, or one per agent, stacked). The ``mixer`` switch picks the variant:

* ``none``: each agent learns its own Q-function from its own reward (DQN with one agent, IQL with many);
* ``vdn``: ``Q_tot = sum_i Q_i`` is trained on one team reward (Sunehag et al. 2018);
* ``qmix``: ``Q_tot = f_s(Q_1, ..., Q_N)`` with a mixing network whose weights come from hypernetworks on
  the global state, made non-negative so that ``dQ_tot / dQ_i >= 0`` and the greedy joint action is
  every agent's own greedy action (Rashid et al. 2018).

Acting is decentralized and epsilon-greedy over legal actions. Targets use ``n_step`` returns (cut at
termination, bootstrapped through truncation, :func:`marlkit.blocks.returns.n_step_returns`), double Q
(the online network picks ``a'``, the target network evaluates it) or a plain max, and always the
*next* step's action mask. The n-step windows are formed when a collection is stored, so replay rows
are ordinary transitions with their return, discount and bootstrap observation.

Team reward (VDN/QMIX): ``shared`` requires every living agent of every group to get the same reward
and fails in one line where they differ; ``sum`` and ``mean`` combine per-agent rewards (EPyMARL sums).
``auto`` is ``shared`` for one group; several groups (teams in a game, say) must state the rule.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from torch import nn

from marlkit.algorithms.mixers import QMixer
from marlkit.algorithms.replay_learner import ReplayLearner, polyak_
from marlkit.blocks.replay import ReplayOptions
from marlkit.blocks.returns import n_step_returns
from marlkit.blocks.schedules import linear
from marlkit.core.errors import MarlkitError
from marlkit.core.options import KeyFn, option, require, require_at_least, validate
from marlkit.core.specs import Discrete
from marlkit.keys import (
    ACTION,
    ACTION_MASK,
    ALIVE,
    DONE,
    N_STEP_DISCOUNT,
    N_STEP_RETURN,
    NEXT,
    OBS,
    RECURRENT_STATE,
    REWARD,
    STATE,
    TERMINATED,
    TRUNCATED,
)
from marlkit.learner import EnvInfo
from marlkit.networks.groups import GroupModule, mlp
from marlkit.networks.normalizers import RunningNorm
from marlkit.networks.policies import Memory
from marlkit.networks.recurrent import GRUNet, reach, unroll

MIXER_NAMES = {"none": "DQN/IQL", "vdn": "VDN", "qmix": "QMIX"}


@dataclass(frozen=True)
class QLearningConfig(ReplayOptions):
    mixer: Literal["none", "vdn", "qmix"] = option(
        "none", "independent Q_i (DQN / IQL), their sum (VDN) or a monotone state-conditioned mixer (QMIX)"
    )
    team_reward: Literal["auto", "shared", "sum", "mean"] = option(
        "auto", "vdn/qmix: the team reward: shared (equal per-agent rewards), sum or mean; auto: shared in one group"
    )
    share_q: bool = option(True, "one Q network per group instead of one per agent")
    agent_id: bool = option(True, "shared Q networks: append a one-hot agent id to each agent's input")
    dueling: bool = option(False, "dueling head: Q = V + A - mean(A)")
    double_q: bool = option(True, "double Q: the online network picks a', the target network evaluates it")
    n_step: int = option(1, "n-step returns (cut at termination, bootstrapped through truncation)")
    target_update: Literal["hard", "polyak"] = option("hard", "copy the target every target_period steps, or Polyak")
    target_period: int = option(200, "hard target updates: gradient steps between copies")
    tau: float = option(0.005, "Polyak target updates: target <- tau * online + (1 - tau) * target")
    eps_start: float = option(1.0, "epsilon-greedy: initial exploration probability")
    eps_final: float = option(0.05, "epsilon-greedy: exploration probability after eps_decay_frames")
    eps_decay_frames: int = option(
        50_000, "frames of linear epsilon decay after warm-up (0: eps_final from the end of warm-up)"
    )
    td_loss: Literal["mse", "huber"] = option("mse", "loss on the TD error")
    reward_norm: bool = option(False, "divide rewards by their running standard deviation (sparse, small rewards)")
    reward_center: bool = option(
        False,
        "reward_norm: also subtract the running mean (EPyMARL's standardise_rewards; changes the task where "
        "episodes terminate; n_step 1)",
    )
    time_limit_terminal: bool = option(
        False, "treat the time limit as the task's end: no bootstrap from the last state (EPyMARL's gym wrapper)"
    )
    buffer_size: int = option(100_000, "replay capacity in transitions (env copies x steps)")
    batch_size: int = option(128, "transitions per gradient step")
    lr: float = option(5e-4, "Adam learning rate of the agents' networks and the mixer")
    max_grad_norm: float = option(10.0, "gradient-norm clip over all learned parameters (0 = off)")
    mixer_embed: int = option(32, "qmix: width of the mixing network's hidden layer")
    hypernet_hidden: int = option(64, "qmix: hidden width of the hypernetworks that make the mixing weights")
    state_norm: bool = option(
        False, "qmix: the hypernetworks read the state normalized by its running mean and std (raw grid coordinates)"
    )
    hidden: tuple[int, ...] = option((64, 64), "hidden layer sizes of the agents' Q networks (gru: the encoder)")
    activation: str = option("relu", "activation of the agents' Q networks")
    network: Literal["mlp", "gru"] = option("mlp", "agent networks: feed-forward, or an MLP encoder followed by a GRU")
    gru_hidden: int = option(64, "gru: units of the agents' GRU")
    chunk_len: int = option(10, "gru: replayed sequence length (rows of the buffer); it divides rollout_steps")

    def validate(self, key: KeyFn) -> None:
        self.validate_replay(key)
        require(
            not self.reward_center or (self.reward_norm and self.n_step == 1),
            f"{key('reward_center')} shifts each reward by the running mean: it needs {key('reward_norm')}=true "
            f"and {key('n_step')}=1",
        )
        require(
            not self.state_norm or self.mixer == "qmix",
            f"{key('state_norm')} normalizes the state QMIX's mixer reads; {key('mixer')}={self.mixer} reads none",
        )
        positive = ("n_step", "target_period", "buffer_size", "batch_size", "mixer_embed", "hypernet_hidden",
                    "gru_hidden", "chunk_len")  # fmt: skip
        require_at_least(self, positive, 1, key)
        if self.network == "gru":
            require(
                self.rollout_steps % self.chunk_len == 0,
                f"{key('chunk_len')}={self.chunk_len} must divide {key('rollout_steps')}={self.rollout_steps}",
            )
            require(
                self.batch_size >= self.chunk_len,
                f"{key('batch_size')}={self.batch_size} must hold at least one sequence of "
                f"{key('chunk_len')}={self.chunk_len} steps",
            )
            require(
                self.n_step == 1, f"{key('n_step')}={self.n_step} is not supported with {key('network')}=gru; set 1"
            )
            require(
                not self.prioritized,
                f"{key('prioritized')} is not supported with {key('network')}=gru (replay rows are sequences); "
                f"set {key('prioritized')}=false",
            )
        require_at_least(self, ("eps_decay_frames", "max_grad_norm"), 0, key)
        require(0 < self.tau <= 1, f"algo.tau must be in (0, 1], got {self.tau}")
        for name in ("eps_start", "eps_final"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"{key(name)} must be in [0, 1], got {value}")


def legal(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Q values with illegal actions at -inf (a row with no legal action is left as it is)."""
    if mask is None:
        return q
    mask = mask | ~mask.any(-1, keepdim=True)
    return q.masked_fill(~mask, float("-inf"))


class QLearning(ReplayLearner):
    Config: ClassVar[type] = QLearningConfig
    cfg: QLearningConfig

    def __init__(self, cfg: QLearningConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__(cfg, env)
        validate(cfg, "algo.")
        for g, s in self.groups.items():
            if not isinstance(s.action, Discrete):
                raise MarlkitError(
                    f"{MIXER_NAMES[cfg.mixer]} needs discrete actions, but group '{g}' has continuous ones; "
                    "use maddpg/matd3/masac or an on-policy algorithm"
                )
        self.team = cfg.mixer != "none"
        if self.team and cfg.team_reward == "auto" and len(self.groups) > 1:
            raise MarlkitError(
                f"{MIXER_NAMES[cfg.mixer]} makes one team of groups {list(self.groups)}, which needs a stated team "
                "reward; set algo.team_reward=sum, mean, or shared (every agent gets the same reward)"
            )
        self.n_total = sum(s.n_agents for s in self.groups.values())
        nets = {g: GroupModule(self._q_net(g), s.n_agents, cfg.share_q) for g, s in self.groups.items()}
        self.q = nn.ModuleDict(nets)
        self.mixer = (
            QMixer(self.n_total, self.state_dim, cfg.mixer_embed, cfg.hypernet_hidden) if cfg.mixer == "qmix" else None
        )
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer)
        if self.target_mixer is not None:
            self.target_mixer.requires_grad_(False)
        self.opt = torch.optim.Adam(self._online_params(), lr=cfg.lr)
        self.init_replay(cfg.buffer_size, seed, cfg.network == "gru", cfg.chunk_len)
        # EPyMARL's standardise_rewards without its mean shift: a constant added to every reward changes
        # which policy is optimal where episodes terminate, a common scale does not. Returns are linear in
        # the rewards, so stored n-step returns are scaled by the current statistics when sampled.
        self.reward_stats = RunningNorm(()) if cfg.reward_norm else None
        # QMIX on raw states (LBF: grid coordinates up to 7) drifts; its buffers go with the mixer's weights.
        self.state_stats = RunningNorm((self.state_dim,)) if cfg.state_norm else None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def _online_params(self) -> list[nn.Parameter]:
        return [*self.q.parameters(), *(self.mixer.parameters() if self.mixer is not None else [])]

    def _target_params(self) -> list[torch.Tensor]:
        return [*self.target_q.parameters(), *(self.target_mixer.parameters() if self.target_mixer is not None else [])]

    # ------------------------------------------------------------ networks
    def _ids(self, g: str) -> bool:
        return self.cfg.share_q and self.cfg.agent_id and self.groups[g].n_agents > 1

    def _q_net(self, g: str):
        s, cfg = self.groups[g], self.cfg
        assert isinstance(s.action, Discrete)
        in_dim = s.obs_dim + (s.n_agents if self._ids(g) else 0)
        out_dim = self._out_dim(g)
        if cfg.network == "gru":
            return lambda: GRUNet(in_dim, out_dim, cfg.hidden, cfg.gru_hidden, cfg.activation)
        return lambda: mlp(in_dim, out_dim, cfg.hidden, cfg.activation)

    def _out_dim(self, g: str) -> int:
        action = self.groups[g].action
        assert isinstance(action, Discrete)
        return action.n + (1 if self.cfg.dueling else 0)

    def _inputs(self, g: str, obs: torch.Tensor) -> torch.Tensor:
        s = self.groups[g]
        x = obs.flatten(start_dim=obs.dim() - len(s.obs_shape))
        if self._ids(g):
            x = torch.cat([x, torch.eye(s.n_agents, device=x.device).expand(*x.shape[:-1], s.n_agents)], -1)
        return x

    def _head(self, out: torch.Tensor) -> torch.Tensor:
        if not self.cfg.dueling:
            return out
        value, advantage = out[..., :1], out[..., 1:]
        return value + advantage - advantage.mean(-1, keepdim=True)

    def agent_q(self, nets: nn.ModuleDict, g: str, obs: torch.Tensor) -> torch.Tensor:
        """Observations ``[..., n, *obs_shape]`` -> utilities ``[..., n, n_actions]`` in one batched call."""
        return self._head(nets[g](self._inputs(g, obs)))

    def sequence_q(
        self, nets: nn.ModuleDict, g: str, rows: TensorDictBase, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrent agents on sampled sequences ``rows [S, L]``: utilities at every step's observation and
        at the observation it reached (from the state after the step, no reset), ``[S * L, n, n_actions]``
        each, unrolled from the stored first-step states."""
        out_dim = self._out_dim(g)
        out, states = unroll(nets[g], self._inputs(g, rows[g, OBS]), memory.h0, memory.resets, out_dim)
        reached = reach(nets[g], self._inputs(g, rows[NEXT, g, OBS]), states, out_dim)
        return self._head(out).flatten(0, 1), self._head(reached).flatten(0, 1)

    def mix(self, mixer: QMixer | None, q: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """The agents' chosen utilities ``[B, N]`` (all groups, env order) -> ``Q_tot [B]``."""
        if mixer is None:
            return q.sum(-1)
        assert state is not None, "QMIX's mixer needs the state"
        return mixer(q, self.state_stats(state) if self.state_stats is not None else state)

    def epsilon(self) -> float:
        if self.schedule.warming_up:
            return 1.0
        cfg = self.cfg
        return linear(self.schedule.frames, cfg.warmup_frames, cfg.warmup_frames + cfg.eps_decay_frames,
                      cfg.eps_start, cfg.eps_final)  # fmt: skip

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        eps = 0.0 if deterministic else self.epsilon()
        for g, spec in self.groups.items():
            group = td[g]
            mask = group.get(ACTION_MASK, None) if spec.has_action_mask else None
            if self.recurrent:
                q = self._head(self.recurrent_step(self.q[g], self._inputs(g, group[OBS]), group, self._out_dim(g)))
            else:
                q = self.agent_q(self.q, g, group[OBS])
            greedy = legal(q, mask).argmax(-1)
            if eps > 0:
                uniform = spec.random_action(group.batch_size[:-1], None, greedy.device, mask)
                explore = torch.rand(greedy.shape, device=greedy.device) < eps
                greedy = torch.where(explore, uniform, greedy)
            group[ACTION] = greedy
        return td

    # ----------------------------------------------------------------- update
    def schedule_metrics(self, learning: bool) -> dict[str, float]:
        return {"epsilon": self.epsilon()}

    def team_reward(self, batch: TensorDictBase) -> torch.Tensor:
        """One reward per env step ``[E, T]`` from every group's per-agent rewards (see the module doc)."""
        reward = torch.cat([batch[g][REWARD] for g in self.groups], -1)
        if self.cfg.team_reward == "sum":
            return reward.sum(-1)
        if self.cfg.team_reward == "mean":
            return reward.mean(-1)
        alive = torch.cat([batch[g][ALIVE] for g in self.groups], -1)
        shared = (reward * alive).sum(-1) / alive.sum(-1).clamp_min(1)
        if bool((((reward - shared.unsqueeze(-1)).abs() > 1e-6) & alive).any()):
            raise MarlkitError(
                f"{MIXER_NAMES[self.cfg.mixer]} trains on one team reward, but the agents' rewards differ; "
                "set algo.team_reward=sum or algo.team_reward=mean"
            )
        return shared

    def store(self, batch: TensorDictBase) -> None:
        """Form the n-step windows of a ``[E, T]`` collection and append them to the replay buffer."""
        cfg = self.cfg
        done = batch[DONE]
        if cfg.time_limit_terminal:
            terminated = {g: batch[g][TERMINATED] | batch[g][TRUNCATED] for g in self.groups}
        else:
            terminated = {g: batch[g][TERMINATED] for g in self.groups}
        if self.team:
            # The team's episode ends together: it terminates when all its agents have.
            team_term = torch.cat(list(terminated.values()), -1).all(-1)
            team_reward = self.team_reward(batch)
            ret, discount, last = n_step_returns(team_reward, team_term, done | team_term, cfg.gamma,
                                                 cfg.n_step)  # fmt: skip
            if self.reward_stats is not None:
                self.reward_stats.update(team_reward)
        # The state feeds QMIX's hypernetworks only: IQL and VDN rows go without it.
        rows: dict[str, object] = {STATE: batch[STATE]} if self.mixer is not None else {}
        if self.state_stats is not None:
            self.state_stats.update(batch[STATE])
        reached: dict[str, object] = {}
        for g in self.groups:
            group = batch[g]
            if self.team:
                agent_last = last.unsqueeze(-1).expand(*last.shape, self.groups[g].n_agents)
            else:
                ended = terminated[g] | group[TRUNCATED] | done.unsqueeze(-1)
                g_ret, g_discount, agent_last = n_step_returns(group[REWARD], terminated[g], ended, cfg.gamma,
                                                               cfg.n_step)  # fmt: skip
            own = {k: group[k] for k in (OBS, ACTION, ACTION_MASK, ALIVE, RECURRENT_STATE) if k in group.keys()}
            if not self.team:
                own.update({N_STEP_RETURN: g_ret, N_STEP_DISCOUNT: g_discount})
                if self.reward_stats is not None:
                    self.reward_stats.update(group[REWARD], group[ALIVE])
            rows[g] = own
            nxt = batch[NEXT, g]
            reached[g] = {k: _at(nxt[k], agent_last) for k in (OBS, ACTION_MASK) if k in nxt.keys()}
        if self.team:
            rows.update({N_STEP_RETURN: ret, N_STEP_DISCOUNT: discount})
        if self.mixer is not None:
            reached[STATE] = _at(batch[NEXT, STATE], last)
        rows[NEXT] = reached
        stored = TensorDict(rows, batch_size=batch.shape)
        if self.recurrent:  # DONE marks the resets inside the replayed sequences
            stored[DONE] = done
        self.keep(stored)

    @torch.no_grad()
    def next_values(
        self, g: str, rows: TensorDictBase, reached: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``Q'(o', a')`` per agent ``[B, n]``: ``a'`` legal under the next step's mask, picked by the online
        network (double Q) or by the target network (a max). ``reached``: the target's and the online
        network's utilities at o' where they were computed already (recurrent agents)."""
        obs, mask = rows[NEXT, g, OBS], rows.get((NEXT, g, ACTION_MASK), None)
        target_q = self.agent_q(self.target_q, g, obs) if reached is None else reached[0]
        target = legal(target_q, mask)
        if not self.cfg.double_q:
            return target.max(-1).values
        online_q = self.agent_q(self.q, g, obs) if reached is None else reached[1]
        pick = legal(online_q, mask).argmax(-1, keepdim=True)
        return target.gather(-1, pick).squeeze(-1)

    def _sample(self) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor | None, dict[str, Memory] | None]:
        """Replay rows (flattened steps), their indices and weights, and for recurrent agents each group's
        stored first-step states and resets of the sampled sequences ``[S, L]``."""
        rows, index, weights = self.sample_sequences()
        return rows, index, weights, self.memory(rows) if self.recurrent else None

    def gradient_step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        sequences, index, weights, memory = self._sample()
        rows = sequences.reshape(-1)
        self.grad_steps += 1
        scale = 1.0 if self.reward_stats is None else (self.reward_stats.var + 1e-8).rsqrt().float()
        # reward_center (n_step 1): the stored return is one reward, shifted by the current mean.
        shift = self.reward_stats.mean.float() if cfg.reward_center and self.reward_stats is not None else 0.0
        chosen, following, alive, targets = [], [], [], []
        for g in self.groups:
            reached = None
            if memory is None:
                q = self.agent_q(self.q, g, rows[g, OBS])
            else:
                q, online_next = self.sequence_q(self.q, g, sequences, memory[g])
                with torch.no_grad():
                    reached = (self.sequence_q(self.target_q, g, sequences, memory[g])[1], online_next.detach())
            chosen.append(q.gather(-1, rows[g, ACTION].unsqueeze(-1)).squeeze(-1))
            following.append(self.next_values(g, rows, reached))
            alive.append(rows[g, ALIVE].float())
            if not self.team:
                targets.append(scale * (rows[g, N_STEP_RETURN] - shift) + rows[g, N_STEP_DISCOUNT] * following[-1])
        live = torch.cat(alive, -1)
        if self.team:
            q_tot = self.mix(self.mixer, torch.cat(chosen, -1) * live, rows.get(STATE, None))
            with torch.no_grad():
                next_tot = self.mix(self.target_mixer, torch.cat(following, -1) * live, rows.get((NEXT, STATE), None))
            error = q_tot - (scale * (rows[N_STEP_RETURN] - shift) + rows[N_STEP_DISCOUNT] * next_tot)
            per_row, count = self._loss(error), torch.ones_like(error)
            priority = error.detach().abs()
        else:
            error = (torch.cat(chosen, -1) - torch.cat(targets, -1)) * live
            per_row, count = (self._loss(error) * live).sum(-1), live.sum(-1)
            priority = error.detach().abs().sum(-1) / count.clamp_min(1)
        if weights is not None:
            per_row = per_row * weights
            self.replay.update_priorities(index, priority)
        loss = per_row.sum() / count.sum().clamp_min(1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self._online_params(), cfg.max_grad_norm)
        self.opt.step()
        if cfg.target_update == "polyak":
            polyak_(self._target_params(), [p.detach() for p in self._online_params()], cfg.tau)
        elif self.grad_steps % cfg.target_period == 0:
            torch._foreach_copy_(self._target_params(), [p.detach() for p in self._online_params()])
        return {"td_loss": loss.detach(), "q_taken": torch.cat(chosen, -1).detach().mean()}

    def _loss(self, error: torch.Tensor) -> torch.Tensor:
        if self.cfg.td_loss == "huber":
            return F.huber_loss(error, torch.zeros_like(error), reduction="none")
        return error.pow(2)


def _at(x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """``x [E, T, *rest]`` at the time steps ``last [E, T, *lead]`` (``lead`` a prefix of ``rest``)."""
    index = last.reshape(*last.shape, *([1] * (x.dim() - last.dim()))).expand_as(x)
    return x.gather(1, index)
