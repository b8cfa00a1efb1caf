"""Stopping a training loop cleanly: Ctrl-C, or a request from another thread.

The loop checks :meth:`StopRequest.is_set` after every iteration, then writes a checkpoint and returns
``interrupted``. A second Ctrl-C raises :class:`KeyboardInterrupt` at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

# Set from any thread to stop every run of this process as Ctrl-C does: a sweep's worker sets it when
# the sweep is stopping.
STOP = threading.Event()


class StopRequest:
    """Inside ``with``, SIGINT (main thread only) asks the loop to stop instead of raising."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def is_set(self) -> bool:
        return self.requested or STOP.is_set()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nmarlkit: interrupted; saving a checkpoint after this iteration (Ctrl-C again to abort)", file=sys.stderr
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def die_with_parent(parent: int) -> None:
    """In a child process: ignore Ctrl-C (the parent decides what stops) and die when ``parent`` dies.

    On Linux the kernel sends SIGKILL when the parent dies, whatever killed it (PR_SET_PDEATHSIG); other
    systems rely on the caller's own watch (the parent's pipe closing, or a polling thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
