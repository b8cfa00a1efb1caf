"""A replay buffer of joint transitions, kept on the env's device.

One row is one time step of one env copy with *every* group's data (observations, actions, rewards,
terminated/truncated flags, alive masks, next observations) and the global state, so a sampled row
is always a consistent joint transition: agents are never mixed across time steps or env copies.

The storage is a preallocated TensorDict ring, allocated on the first ``extend`` from that batch's
layout (on that batch's device unless a device is given) and indexed with one gather per leaf.
TorchRL's ``LazyTensorStorage`` + ``RandomSampler`` does the same job with 8-21% more time per
sample call (``experiments/benchmarks/speed/replay_sampling.py``, docs/benchmarks.md); both are under 5%
of a gradient step. This ring is kept because it is as fast or faster and its checkpoint holds only
the filled rows.

Prioritized sampling (Schaul et al. 2016) draws ``P(i) ~ p_i^alpha`` with ``torch.multinomial`` over
the filled rows (O(size) per draw, fine up to ~1e6 rows) and returns importance weights
``(size * P(i))^-beta`` normalized by their maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from marlkit.core.options import KeyFn, option, require, require_at_least


@dataclass(frozen=True)
class ReplayOptions:
    """Collection, warm-up, update ratio and prioritized sampling: the options every replay-based learner
    (off-policy actor-critics, value-based learners) shares; each adds its own buffer and batch sizes."""

    rollout_steps: int = option(10, "steps per env copy collected between update phases")
    warmup_frames: int = option(1_000, "uniformly random frames before learning starts")
    updates_per_frame: float | None = option(
        None, "gradient steps per collected frame; null: one per vectorized env step (1 / num_envs per frame)"
    )
    prioritized: bool = option(False, "prioritized replay (|TD error| priorities)")
    priority_alpha: float = option(0.6, "prioritized replay exponent alpha")
    priority_beta: float = option(0.4, "prioritized replay importance-weight exponent beta")
    gamma: float = option(0.99, "discount factor")

    def validate_replay(self, key: KeyFn) -> None:
        require_at_least(self, ("rollout_steps",), 1, key)
        require_at_least(self, ("warmup_frames",), 0, key)
        require(
            self.updates_per_frame is None or self.updates_per_frame > 0,
            f"{key('updates_per_frame')} must be > 0 (or null), got {self.updates_per_frame}",
        )
        require(0 < self.gamma <= 1, f"{key('gamma')} must be in (0, 1], got {self.gamma}")
        require_at_least(self, ("priority_alpha", "priority_beta"), 0, key)


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        device: torch.device | str | None = None,
        seed: int = 0,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        item_dims: int = 0,
    ) -> None:
        self.capacity = capacity
        # Trailing batch dims that belong to one row: 1 for rows that are sequences ``[L]``.
        self.item_dims = item_dims
        self.prioritized = prioritized
        self.alpha, self.beta, self.eps = alpha, beta, eps
        self.seed = seed
        self.storage: TensorDictBase | None = None
        self.cursor = 0
        self.size = 0
        self.max_priority = 1.0
        self._place(torch.device(device) if device is not None else torch.device("cpu"))
        # Without an explicit device the buffer follows the first batch it stores (the env's device).
        self._device_fixed = device is not None

    def _place(self, device: torch.device) -> None:
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self.priorities = torch.zeros(self.capacity if self.prioritized else 0, device=device)

    def __len__(self) -> int:
        return self.size

    def extend(self, batch: TensorDictBase) -> None:
        """Append every row of ``batch`` (any batch shape, flattened up to the last ``item_dims`` dims). The
        oldest rows are overwritten."""
        item = batch.shape[batch.batch_dims - self.item_dims :]
        rows = batch.reshape(-1, *item)
        n = rows.shape[0]
        if self.storage is None and not self._device_fixed:
            # The buffer follows the env's device (a TensorDict made without one reports None).
            device = rows.device or next(iter(rows.values(include_nested=True, leaves_only=True))).device
            if device != self.device:
                self._place(device)
        rows = rows.to(self.device)
        if self.storage is None:
            self.storage = rows[0].expand(self.capacity, *item).clone()
        if n > self.capacity:
            rows, n = rows[-self.capacity :], self.capacity
        index = (self.cursor + torch.arange(n, device=self.device)) % self.capacity
        self.storage[index] = rows
        if self.prioritized:
            self.priorities[index] = self.max_priority
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor | None]:
        """``(rows [batch_size], their indices, importance weights or None)``, uniform with replacement."""
        assert self.storage is not None and self.size > 0, "sample() before any extend()"
        if not self.prioritized:
            index = torch.randint(self.size, (batch_size,), generator=self.generator, device=self.device)
            return self.storage[index], index, None
        probs = self.priorities[: self.size].pow(self.alpha)
        probs = probs / probs.sum()
        index = torch.multinomial(probs, batch_size, replacement=True, generator=self.generator)
        weights = (self.size * probs[index]).pow(-self.beta)
        return self.storage[index], index, weights / weights.max()

    @torch.no_grad()
    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        priority = td_error.abs() + self.eps
        self.priorities[index] = priority
        self.max_priority = max(self.max_priority, float(priority.max()))

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The filled rows only (as a plain nested dict of tensors) plus cursor and RNG state."""
        state: dict[str, Any] = {
            "cursor": self.cursor,
            "size": self.size,
            "generator": self.generator.get_state(),
            "max_priority": self.max_priority,
            "priorities": self.priorities[: self.size].clone(),
        }
        if self.storage is not None:
            # A clone: saving a view would serialize the whole preallocated storage.
            state["rows"] = self.storage[: self.size].clone().to_dict()
            state["item_shape"] = list(self.storage.shape[1:])
        return state

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str | None = None) -> None:
        """``device``: where the rows go (the learner's device) unless the buffer was given one."""
        if device is not None and not self._device_fixed:
            self._place(torch.device(device))
        self.cursor, self.size = int(state["cursor"]), int(state["size"])
        self.generator.set_state(state["generator"])
        self.max_priority = float(state["max_priority"])
        if self.prioritized:
            self.priorities.zero_()
            self.priorities[: self.size] = state["priorities"].to(self.device)
        if "rows" in state:
            item = tuple(state.get("item_shape", ()))
            rows = TensorDict.from_dict(state["rows"], batch_size=[self.size, *item], device=self.device)
            self.storage = rows[0].expand(self.capacity, *rows.shape[1:]).clone()
            self.storage[: self.size] = rows
