"""One run directory, one writer.

A process that trains into a run directory holds an exclusive ``flock`` on ``RUN/.lock`` for as long as
it writes there, and records its PID and host in the file so that a refused second writer can name the
holder. The kernel drops the lock when its holder exits, however it exits (SIGKILL included), so a lock
file left by a dead process never blocks anyone: stale locks need no detection by PID. (``flock`` is
per host: two machines writing one directory over NFS are not protected.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from marlkit.core.errors import MarlkitError

LOCK_NAME = ".lock"
# atomic_write_bytes's temporary files: ".<target name>.<random>" beside a .json, .csv or .pt target
PARTIAL_WRITE = re.compile(r"^\.[\w.-]+\.(json|csv|pt)\.[a-z0-9_]+$")
_local = threading.local()  # per thread: run directories held -> nesting depth


def _held() -> dict[Path, int]:
    if not hasattr(_local, "held"):
        _local.held = {}
    return _local.held


def prepare(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents), or fail with one line saying why it cannot be one."""
    if run_dir.exists() and not run_dir.is_dir():
        raise MarlkitError(f"run directory {run_dir} is an existing file; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MarlkitError(f"cannot create run directory {run_dir}: {err.strerror or err}") from None


@contextlib.contextmanager
def exclusive(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock inside the block; a second writer fails at once, naming the holder.

    Re-entrant within one thread (a sweep worker locks a run directory, clears it, then trains in it);
    another thread of the same process is a second writer like any other."""
    run_dir = Path(run_dir)
    prepare(run_dir)
    key, held = run_dir.resolve(), _held()
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise MarlkitError(f"cannot write to run directory {run_dir}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise MarlkitError(
            f"run directory {run_dir} is in use by {holder}; wait for it to finish, or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        held[key] = 1
        yield
    finally:
        held.pop(key, None)
        os.close(fd)  # releases the lock; the file stays (deleting it would race with a new holder)


def holds(run_dir: str | Path) -> bool:
    """Whether this thread holds ``run_dir``'s lock."""
    return Path(run_dir).resolve() in _held()


def contents(run_dir: Path) -> list[Path]:
    """What a run directory holds, apart from its lock file."""
    return [p for p in run_dir.iterdir() if p.name != LOCK_NAME] if run_dir.is_dir() else []


def remove_partial_writes(run_dir: Path) -> list[Path]:
    """Delete the temporary files of writes that never finished (a SIGKILL between writing a temporary
    file and renaming it leaves one behind). Only call while holding the lock: a live writer's
    temporary files look the same."""
    assert holds(run_dir), "remove_partial_writes needs the run directory's lock"
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if PARTIAL_WRITE.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
