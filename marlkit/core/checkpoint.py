"""Checkpoint files, random states and atomic writes: what makes a run resumable bit for bit.

Checkpoints hold tensors and plain data only and are loaded with ``torch.load(weights_only=True)``,
so loading one never executes code. Every file is written through a temporary file and a rename, so
a reader (or a resume after SIGKILL) never sees half a file.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from marlkit.core.errors import MarlkitError, first_line

CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; run directories are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Checkpoints hold tensors and plain data only: loading one never executes code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def use_first_usable(paths: Sequence[Path], use: Callable[[dict[str, Any]], None], none_usable: str) -> Path:
    """Load each checkpoint in turn and hand it to ``use`` until one works (resume and ``marlkit eval``
    fall back from a truncated or corrupted file alike): each that fails is reported in one line on
    stderr; if none works, ``none_usable`` is the error."""
    for path in paths:
        try:
            use(load_checkpoint(path))
            return path
        except Exception as err:
            print(
                f"marlkit: checkpoint {path.name} is unusable ({first_line(err)}); trying an older one", file=sys.stderr
            )
    raise MarlkitError(none_usable)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """torch, numpy and python RNG states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = typing.cast(tuple, np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
