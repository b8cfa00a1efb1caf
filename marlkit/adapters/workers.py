"""CPU-simulator copies stepped in worker processes, on Gymnasium's ``AsyncVectorEnv``.

Each worker holds a contiguous slice of the copies as one :class:`CopyBlock`, the code the in-process
path runs, and the parent steps the first slice itself meanwhile, so rollouts are identical for the same
seed whatever the worker count. A slice is one Gymnasium env whose action and output are Dict spaces of
fixed-size arrays; ``AsyncVectorEnv`` (with ``shared_memory=True``) sends the actions through its pipes
and returns the outputs in shared memory.
Its reset/auto-reset bookkeeping stays unused: episodes end and restart inside the block.

Shutdown: a worker ignores Ctrl-C (the run decides when to stop, then closes the env) and dies with its
parent, SIGKILL included (``PR_SET_PDEATHSIG`` on Linux; elsewhere its pipe to the parent closes). A
worker that raises, or dies, ends the run with one error naming the copy, or the worker and its copies.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from pettingzoo import ParallelEnv

from marlkit.adapters.copies import CopyBlock, Layout
from marlkit.core.errors import MarlkitError
from marlkit.core.interrupts import die_with_parent
from marlkit.core.specs import Discrete


class WorkerPool:
    """``num_envs`` copies in ``workers + 1`` contiguous slices: the parent steps the first slice itself
    while ``workers`` processes step the others, so W workers keep W + 1 cores busy (the parent would
    otherwise wait idle, and on 2 cores a third process only competes for them)."""

    def __init__(
        self, build: Callable[[], ParallelEnv], layout: Layout, num_envs: int, workers: int, first: ParallelEnv
    ) -> None:
        self.layout = layout
        self.num_envs = num_envs
        self.n_local = -(-num_envs // (workers + 1))
        self.local = CopyBlock([first] + [build() for _ in range(self.n_local - 1)], 0, layout)
        self.capacity = -(-(num_envs - self.n_local) // workers)
        self.slices = [(k, min(self.capacity, num_envs - k)) for k in range(self.n_local, num_envs, self.capacity)]
        self._bool = {k for k, v in layout.arrays(1, step=True).items() if v.dtype == bool}
        context = "fork" if sys.platform.startswith("linux") else "spawn"  # fork: start in ms, no pickling
        fns = [partial(SliceEnv, build, layout, off, n, self.capacity, os.getpid()) for off, n in self.slices]
        self.vec = AsyncVectorEnv(
            fns, shared_memory=True, copy=False, context=context, daemon=True, autoreset_mode=AutoresetMode.DISABLED
        )
        self._actions = {
            g: np.zeros((len(self.slices) * self.capacity, *x.shape[1:]), x.dtype)
            for g, x in _zero_actions(layout, 1).items()
        }

    def reset(self, base_seed: int) -> dict[str, np.ndarray]:
        self._wait(lambda: self.vec.reset_async(options={"base_seed": base_seed}))
        local = self._local(lambda: self.local.reset(base_seed))
        self._wait(self.vec.reset_wait)
        return self._join(local)

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batched = {}
        for g, a in actions.items():
            self._actions[g][: self.num_envs - self.n_local] = a[self.n_local :]
            batched[g] = self._actions[g].reshape(len(self.slices), self.capacity, *a.shape[1:])
        self._wait(lambda: self.vec.step_async(batched))
        local = self._local(lambda: self.local.step({g: a[: self.n_local] for g, a in actions.items()}))
        self._wait(self.vec.step_wait)
        return self._join(local)

    def _local(self, call: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        try:
            return call()
        except MarlkitError:
            self.close(terminate=True)  # the workers' half of the step is still in flight
            raise

    def _join(self, local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The parent's rows, then the workers' rows copied out of shared memory (the next step
        overwrites it)."""
        out = {}
        rows = self.num_envs - self.n_local
        for key, shared in self.vec.observations.items():  # type: ignore[attr-defined]
            if key in local:
                theirs = shared.reshape(-1, *shared.shape[2:])[:rows]
                out[key] = np.concatenate([local[key], theirs.astype(bool) if key in self._bool else theirs])
        return out

    def _wait(self, call: Callable[[], Any]) -> None:
        try:
            with warnings.catch_warnings():  # the error comes back as ours: no second report by Gymnasium
                warnings.simplefilter("ignore")
                call()
        except MarlkitError:
            self.close(terminate=True)
            raise
        except (EOFError, OSError) as err:
            deadline = time.monotonic() + 1.0  # a worker that just died may not be reaped yet
            while all(p.exitcode is None for p in self.vec.processes) and time.monotonic() < deadline:
                time.sleep(0.01)
            dead = [(k, p) for k, p in enumerate(self.vec.processes) if p.exitcode is not None]
            self.close(terminate=True)
            if not dead:
                raise MarlkitError(f"env workers of '{self.layout.name}' stopped answering: {err!r}") from err
            k, proc = dead[0]
            first, n = self.slices[k]
            raise MarlkitError(
                f"env worker {k} (copies {first}-{first + n - 1} of '{self.layout.name}') died with exit code "
                f"{proc.exitcode}; run with experiment.env_workers=0 to step the copies in-process and see the error"
            ) from err

    def render(self, env_index: int) -> object:
        if env_index < self.n_local:
            return self.local.render(env_index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = self.vec.call("render_copy", env_index)
        return frames[(env_index - self.n_local) // self.capacity]

    def close(self, terminate: bool = False) -> None:
        if self.vec.closed:
            return
        with warnings.catch_warnings():  # "close while waiting for a step": the step failed, we know
            warnings.simplefilter("ignore")
            try:
                self.vec.close(terminate=terminate)
            except (EOFError, OSError):
                self.vec.close(terminate=True)
        self.local.close()


class SliceEnv(gym.Env):
    """One worker's copies as one Gymnasium env. Outputs have ``capacity`` rows; a last slice with fewer
    copies leaves its extra rows zero. The copies are built at the first reset, in the worker: the probe
    instance AsyncVectorEnv makes in the parent stays cheap."""

    def __init__(
        self, build: Callable[[], ParallelEnv], layout: Layout, offset: int, count: int, capacity: int, parent: int
    ) -> None:
        self.observation_space = spaces.Dict({k: _box(v) for k, v in layout.arrays(capacity, step=True).items()})
        self.action_space = spaces.Dict({g: _box(v) for g, v in _zero_actions(layout, capacity).items()})
        self._build, self._layout = build, layout
        self._offset, self._count, self._capacity, self._parent = offset, count, capacity, parent
        self._block: CopyBlock | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if self._block is None:
            if os.getpid() != self._parent:
                die_with_parent(self._parent)
            self._block = CopyBlock([self._build() for _ in range(self._count)], self._offset, self._layout)
        assert options is not None
        return self._full(self._block.reset(options["base_seed"]), step=False), {}

    def step(self, action: dict[str, np.ndarray]) -> tuple[dict, float, bool, bool, dict]:
        assert self._block is not None
        return self._full(self._block.step(action), step=True), 0.0, False, False, {}

    def _full(self, part: dict[str, np.ndarray], step: bool) -> dict[str, np.ndarray]:
        """Every output key with ``capacity`` rows, as the shared memory holds them: a reset has no
        step-only entries, and a last slice may have fewer copies (the parent ignores the extra rows)."""
        if step and self._count == self._capacity:
            return part
        out = self._layout.arrays(self._capacity, step=True)
        for k, v in part.items():
            out[k][: self._count] = v
        return out

    def render_copy(self, env_index: int) -> object:
        i = env_index - self._offset
        return self._block.render(i) if self._block is not None and 0 <= i < self._count else None

    def close(self) -> None:
        if self._block is not None:
            self._block.close()


def _zero_actions(layout: Layout, n: int) -> dict[str, np.ndarray]:
    out = {}
    for g, s in layout.groups.items():
        if isinstance(s.action, Discrete):
            out[g] = np.zeros((n, s.n_agents), np.int64)
        else:
            out[g] = np.zeros((n, s.n_agents, s.action.dim), np.float32)
    return out


def _box(like: np.ndarray) -> spaces.Box:
    """Shared memory holds no bool arrays (no ctypes code for them): flags travel as uint8."""
    dtype = np.uint8 if like.dtype == bool else like.dtype
    low, high = (0, 1) if dtype == np.uint8 else (-np.inf, np.inf)
    if np.issubdtype(dtype, np.integer) and dtype != np.uint8:
        low, high = 0, np.iinfo(dtype).max
    return spaces.Box(low, high, like.shape, dtype)
