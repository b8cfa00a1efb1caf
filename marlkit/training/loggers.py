"""Metric sinks: the run directory's CSV files, TensorBoard (on by default) and Weights & Biases (opt-in).

TensorBoard and W&B receive every numeric column of every row, keyed by frames. A missing optional
package fails when the experiment is built (before anything is written), never in the middle of a run.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from marlkit.core.checkpoint import atomic_write_text
from marlkit.core.errors import MarlkitError
from marlkit.training.config import RunConfig


class MetricFiles:
    """CSV files, one row per entry of their row lists, which the loop appends to; columns grow as
    new keys appear (e.g. the first evaluation)."""

    def __init__(self, out: Path, files: dict[str, list[dict[str, Any]]]) -> None:
        self.out = out
        self.files = files
        self._written: dict[str, tuple[int, list[str]]] = {name: (0, []) for name in files}

    def append(self) -> None:
        """Write the rows added since the last call."""
        for name, rows in self.files.items():
            written, columns = self._written[name]
            new_columns = list(columns)
            for row in rows[written:]:
                new_columns += [k for k in row if k not in new_columns]
            path = self.out / name
            if new_columns != columns or not path.exists():
                # A new column rewrites the file; otherwise append: rewriting every iteration would be
                # quadratic in the run length.
                atomic_write_text(path, _csv_text(new_columns, rows, header=True))
            else:
                with path.open("a") as f:
                    f.write(_csv_text(new_columns, rows[written:], header=False))
            self._written[name] = (len(rows), new_columns)

    def rewrite(self) -> None:
        """Write the files anew from the rows (after a resume restored them)."""
        self._written = {name: (0, []) for name in self.files}
        for name in self.files:
            (self.out / name).unlink(missing_ok=True)
        if any(self.files.values()):
            self.append()


def _csv_text(columns: list[str], rows: list[dict[str, Any]], header: bool) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class Loggers:
    def __init__(self, out: Path, tensorboard: bool, wandb_module: Any, wandb_kwargs: dict[str, Any]) -> None:
        self.out = out
        self.tensorboard = tensorboard
        self.wandb_module = wandb_module
        self.wandb_kwargs = wandb_kwargs
        self._tb: Any = None
        self._wandb_run: Any = None

    def open(self, purge_step: int | None = None) -> None:
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # On resume, events past the checkpoint are dropped so curves are not drawn twice.
            self._tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=purge_step)
        if self.wandb_module is not None:
            self._wandb_run = self.wandb_module.init(**self.wandb_kwargs, dir=str(self.out), resume="allow")

    def log(self, row: dict[str, Any], step: int) -> None:
        scalars = {k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "frames"}
        if self._tb is not None:
            for key, value in scalars.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._wandb_run is not None:
            self._wandb_run.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None


def make_loggers(config: RunConfig, out: Path) -> Loggers:
    exp = config.experiment
    wandb_module = None
    if exp.wandb:
        try:
            import wandb  # type: ignore[import-not-found]
        except ImportError:
            raise MarlkitError("experiment.wandb=true needs the wandb package: pip install wandb") from None
        wandb_module = wandb
    if exp.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise MarlkitError(
                "experiment.tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
    name = f"{config.algo_name}-{config.env_name}-s{exp.seed}"
    wandb_kwargs = {"project": exp.wandb_project, "name": name, "id": None, "config": config.to_json()}
    return Loggers(out, exp.tensorboard, wandb_module, wandb_kwargs)
