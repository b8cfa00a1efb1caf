"""Checks that a run stays on its device: where tensors live and how often the host waits for the GPU.

Used by the CUDA tests (``tests/test_cuda.py``) and the GPU benchmark (``experiments/benchmarks/speed/gpu.py``).
On CUDA, PyTorch can warn at every operation that synchronises the host with the device
(``torch.cuda.set_sync_debug_mode``); :func:`count_syncs` counts those warnings by the source file
that triggered them, so a sync inside marlkit is told apart from one inside the simulator.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

# The host synchronisations marlkit makes on purpose. Per env step: VMAS resets finished env copies
# by index, so its adapter asks ``done.any()`` first; every adapter checks the env's outputs for NaN
# and inf with one sync for all tensors (``env.check_finite = False`` turns it off). Per collection:
# the episode statistics (count, length sum, and the returns of each group) reach the host once.
DOCUMENTED_SYNCS_PER_STEP = {"marlkit/adapters/vmas.py": 1, "marlkit/adapters/base.py": 1}
DOCUMENTED_SYNCS_PER_COLLECTION = {"marlkit/training/rollout.py": 3}


def off_device(module: nn.Module, device: torch.device | str) -> list[str]:
    """Names of the module's parameters and buffers that are not on ``device``."""
    device = torch.device(device)
    return [
        name
        for name, t in (*module.named_parameters(), *module.named_buffers())
        if t.device.type != device.type or (device.index is not None and t.device.index != device.index)
    ]


def _source(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("marlkit", "vmas", "tensordict", "torch"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[i:])
    return filename


@contextlib.contextmanager
def count_syncs() -> Iterator[Counter[str]]:
    """Count host-device synchronisations inside the block, keyed by ``source file:line``.

    Empty on a machine without CUDA (nothing to synchronise with)."""
    counts: Counter[str] = Counter()
    if not torch.cuda.is_available():
        yield counts
        return
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    for w in caught:
        if "synchroniz" in str(w.message):
            counts[f"{_source(w.filename)}:{w.lineno}"] += 1


def syncs_by_file(counts: Counter[str]) -> dict[str, int]:
    """Sum :func:`count_syncs`'s counts over the lines of each file."""
    files: Counter[str] = Counter()
    for where, n in counts.items():
        files[where.rsplit(":", 1)[0]] += n
    return dict(files)


def undocumented_marlkit_syncs(counts: Counter[str], steps: int, collections: int = 1) -> dict[str, int]:
    """marlkit files that synchronised more often than the documented allowances, with their counts."""
    extra = {}
    for file, n in syncs_by_file(counts).items():
        allowed = (
            DOCUMENTED_SYNCS_PER_STEP.get(file, 0) * steps + DOCUMENTED_SYNCS_PER_COLLECTION.get(file, 0) * collections
        )
        if file.startswith("marlkit/") and n > allowed:
            extra[file] = n
    return extra
