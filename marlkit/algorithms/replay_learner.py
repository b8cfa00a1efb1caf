"""The base of every learner that keeps a replay buffer (off-policy actor-critics, value-based learners,
MBPO): storing collections, the update schedule and its warm-up, recurrent acting steps, replayed
sequences, and the checkpoint keys they share.

A subclass builds its networks, then calls :meth:`ReplayLearner.init_replay`, and implements
:meth:`store` (lay out a collection's rows, then :meth:`keep` them) and :meth:`gradient_step`. The loop's
``update`` is: store the collection, then take the gradient steps the schedule owes for its frames.

Checkpoints: ``frames`` (the acting state: warm-up and exploration schedules read it), ``grad_steps``,
``update_credit`` (the schedule's fractional steps), every optimizer by the name
:meth:`optimizers` gives it, the subclass's exploration state, and the buffer under ``replay``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.blocks.replay import ReplayBuffer, ReplayOptions
from marlkit.blocks.schedules import UpdateSchedule
from marlkit.core.specs import GroupSpec
from marlkit.keys import OBS, RECURRENT_STATE, RECURRENT_STATE_OUT
from marlkit.learner import EnvInfo, Learner
from marlkit.networks.policies import Memory
from marlkit.networks.recurrent import entering_state, resets_before


def polyak_(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target``, in place, for all tensors in one fused call."""
    torch._foreach_lerp_(target, online, tau)


class ReplayLearner(Learner):
    replays: ClassVar[bool] = True

    cfg: Any
    groups: dict[str, GroupSpec]

    def __init__(self, cfg: ReplayOptions, env: EnvInfo) -> None:
        super().__init__()
        self.cfg, self.groups, self.state_dim = cfg, dict(env.groups), env.state_dim
        self.grad_steps = 0

    def init_replay(self, buffer_size: int, seed: int, recurrent: bool, chunk_len: int) -> None:
        """The buffer and the schedule. A recurrent learner's rows are sequences of ``chunk_len`` steps;
        capacity and batch sizes still count steps."""
        cfg = self.cfg
        self.recurrent = recurrent
        self.seq_len = chunk_len if recurrent else 1
        self.replay = ReplayBuffer(buffer_size // self.seq_len, None, seed, cfg.prioritized, cfg.priority_alpha,
                                   cfg.priority_beta, item_dims=int(recurrent))  # fmt: skip
        self.schedule = UpdateSchedule(cfg.warmup_frames, cfg.updates_per_frame)

    @property
    def steps_per_collection(self) -> int:
        return self.cfg.rollout_steps

    # ------------------------------------------------------------------ hooks
    def store(self, batch: TensorDictBase) -> None:
        """Lay out the rows of a ``[E, T]`` collection and :meth:`keep` them."""
        raise NotImplementedError

    def gradient_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer by its checkpoint key."""
        raise NotImplementedError

    def schedule_metrics(self, learning: bool) -> dict[str, float]:
        """Metrics of the exploration schedules, after the replay counts (``learning``: past the warm-up)."""
        return {}

    def exploration_state(self) -> dict[str, Any]:
        """Exploration state besides the frames seen (e.g. noise processes), part of the acting state."""
        return {}

    def load_exploration_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`exploration_state`."""

    # ------------------------------------------------------------------ storing
    def keep(self, rows: TensorDictBase) -> None:
        """Append a collection's rows ``[E, T]`` (with ``DONE`` where recurrent: it marks the resets inside
        the sequences) and count its frames; recurrent rows become consecutive chunks of each copy's steps."""
        if self.recurrent:
            copies, steps = rows.shape
            rows = rows.reshape(copies * (steps // self.seq_len), self.seq_len)
        self.replay.extend(rows)
        self.schedule.record(rows.numel())

    # ------------------------------------------------------------------ updating
    def update(self, batch: TensorDictBase) -> dict[str, float]:
        self.store(batch)
        return self.learn(batch.numel(), batch.shape[0])

    def learn(self, new_frames: int, copies: int) -> dict[str, float]:
        """The gradient steps the schedule owes for ``new_frames`` from ``copies`` env copies (none during warm-up)."""
        if self.schedule.warming_up or len(self.replay) == 0:
            return {"replay_size": float(len(self.replay)), **self.schedule_metrics(learning=False)}
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(self.schedule.due(new_frames, copies)):
            metrics.update(self.gradient_step())
        out = {k: float(v) for k, v in metrics.items()}
        out.update(replay_size=float(len(self.replay)), grad_steps=float(self.grad_steps))
        out.update(self.schedule_metrics(learning=True))
        return out

    def sample_sequences(self) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor | None]:
        """``batch_size`` steps of replay rows (sequences ``[S, L]`` where recurrent), their indices and
        importance weights (None: uniform)."""
        return self.replay.sample(self.cfg.batch_size // self.seq_len)

    def memory(self, rows: TensorDictBase, zero: bool = False) -> dict[str, Memory]:
        """Per group of sampled sequences ``[S, L]``: the stored first-step states (or zeros) and the resets
        before each step (the previous step ended an episode, or the agent is not alive)."""
        out = {}
        for g in self.groups:
            first = rows[g, RECURRENT_STATE][:, 0]
            out[g] = Memory(torch.zeros_like(first) if zero else first, resets_before(rows, g))
        return out

    # ------------------------------------------------------------------ acting
    def recurrent_step(self, net: nn.Module, x: torch.Tensor, group: TensorDictBase, out_dim: int) -> torch.Tensor:
        """One GRU step of ``net`` on inputs ``x``: writes the state entering the step (zeros after a reset,
        zeroed for agents that are not alive) and the state it produced; returns the raw output. Learners
        run it during the warm-up too, so that every stored step has its state."""
        h = entering_state(group, RECURRENT_STATE, self.cfg.gru_hidden)
        y = net(torch.cat([x, h], -1))
        group[RECURRENT_STATE], group[RECURRENT_STATE_OUT] = h, y[..., out_dim:]
        return y[..., :out_dim]

    def flat_obs(self, g: str, group: TensorDictBase) -> torch.Tensor:
        obs = group[OBS]
        return obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape))

    # ------------------------------------------------------------------ checkpoints
    def training_state(self, include_replay: bool = True) -> dict[str, object]:
        """Everything besides ``state_dict()`` that an exact resume needs (the replay buffer optionally)."""
        state: dict[str, object] = {name: opt.state_dict() for name, opt in self.optimizers().items()}
        state.update(frames=self.schedule.frames, grad_steps=self.grad_steps, update_credit=self.schedule.credit)
        state.update(self.exploration_state())
        if include_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def load_training_state(self, state: Mapping) -> None:
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state[name])
        self.grad_steps = int(state["grad_steps"])
        self.schedule.credit = float(state["update_credit"])
        self.load_acting_state(state)
        if "replay" in state:
            self.replay.load_state_dict(state["replay"], device=next(self.parameters()).device)

    def acting_state(self) -> dict[str, object]:
        """Frames seen (the warm-up and the exploration schedules read them) and the exploration state."""
        return {"frames": self.schedule.frames, **self.exploration_state()}

    def load_acting_state(self, state: Mapping) -> None:
        self.schedule.frames = int(state["frames"])
        self.load_exploration_state(state)
