"""The one training loop every algorithm runs through: collect -> update -> log -> evaluate -> checkpoint.

A run directory holds ``config.json`` (the full resolved config: the run can be re-created from it),
``metrics.csv`` (one row per iteration), ``summary.json`` and ``checkpoints/final.pt``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from marlkit.adapters import make_env
from marlkit.adapters.base import MultiAgentEnv
from marlkit.algorithms import algorithm
from marlkit.config import option, require, to_dict, with_overrides
from marlkit.errors import MarlkitError
from marlkit.keys import DONE, REWARD
from marlkit.rollout import RolloutCollector


@dataclass(frozen=True)
class ExperimentConfig:
    frames: int = option(100_000, "environment frames to train for (one frame = one step of one env copy)")
    seed: int = option(0, "seed of every random source (torch, numpy, python, envs)")
    num_envs: int = option(16, "env copies stepped together for training")
    device: str = option("cpu", "torch device of envs and networks")
    eval_every: int = option(20_000, "frames between deterministic evaluations (0: only at the end)")
    eval_episodes: int = option(16, "episodes per evaluation, one per evaluation env copy")
    eval_max_steps: int = option(10_000, "step cap of one evaluation")
    progress: bool = option(True, "show a progress bar")
    torch_threads: int = option(0, "torch intra-op threads (0: torch's default)")

    def validate(self) -> None:
        require(self.frames > 0, f"experiment.frames must be > 0, got {self.frames}")
        require(self.num_envs >= 1, f"experiment.num_envs must be >= 1, got {self.num_envs}")
        require(self.eval_every >= 0, f"experiment.eval_every must be >= 0, got {self.eval_every}")
        require(self.eval_episodes >= 1, f"experiment.eval_episodes must be >= 1, got {self.eval_episodes}")


@dataclass(frozen=True)
class RunConfig:
    algo_name: str
    env_name: str
    experiment: ExperimentConfig
    algo: Any
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "algo_name": self.algo_name,
            "env_name": self.env_name,
            "experiment": to_dict(self.experiment),
            "algo": to_dict(self.algo),
            "env": dict(self.env_kwargs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        return build_config(
            data["algo_name"],
            data["env_name"],
            {
                **{f"experiment.{k}": v for k, v in data["experiment"].items()},
                **{f"algo.{k}": v for k, v in data["algo"].items()},
                **{f"env.{k}": v for k, v in data["env"].items()},
            },
        )


SECTIONS = ("algo", "env", "experiment")


def build_config(algo_name: str, env_name: str, overrides: dict[str, Any]) -> RunConfig:
    """Resolve ``algo.*``, ``env.*`` and ``experiment.*`` overrides on top of the algorithm's preset."""
    spec = algorithm(algo_name)
    by_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        section, dot, name = key.partition(".")
        if not dot or section not in SECTIONS:
            home = (
                "experiment"
                if key in to_dict(ExperimentConfig())
                else "algo"
                if key in to_dict(spec.config())
                else "env"
            )
            raise MarlkitError(
                f"override '{key}' needs a section prefix ({', '.join(s + '.' for s in SECTIONS)}); "
                f"did you mean '{home}.{key}'?"
            )
        by_section[section][name] = value
    algo_cfg = with_overrides(spec.config(), {**spec.preset, **by_section["algo"]}, "algo")
    exp_cfg = with_overrides(ExperimentConfig(), by_section["experiment"], "experiment")
    return RunConfig(algo_name, env_name, exp_cfg, algo_cfg, by_section["env"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


@torch.no_grad()
def evaluate(learner: Any, env: MultiAgentEnv, seed: int, max_steps: int) -> dict[str, float]:
    """Deterministic actions; the first episode of every env copy counts. Returns per-group means."""
    td = env.reset(seed=seed)
    returns = {g: torch.zeros(env.num_envs, s.n_agents, device=env.device) for g, s in env.groups.items()}
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(max_steps):
        out = env.step(learner.act(td, deterministic=True))
        for g in returns:
            returns[g] += out[g][REWARD] * (~finished).unsqueeze(-1)
        finished |= out[DONE]
        td = out
        if bool(finished.all()):
            break
    result = {f"eval_return_{g}": float(r[finished].mean()) for g, r in returns.items()}
    agent_returns = torch.cat([r[finished] for r in returns.values()], dim=-1)
    result["eval_return_mean"] = float(agent_returns.mean())
    result["eval_return_team"] = float(agent_returns.sum(-1).mean())
    result["eval_episodes"] = int(finished.sum())
    return result


class Experiment:
    """Train one algorithm on one env; everything is built (and validated) before anything is written."""

    def __init__(self, config: RunConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out = Path(out_dir)
        exp = config.experiment
        if exp.torch_threads:
            torch.set_num_threads(exp.torch_threads)
        seed_everything(exp.seed)
        spec = algorithm(config.algo_name)
        self.env = make_env(config.env_name, exp.num_envs, exp.device, exp.seed, **config.env_kwargs)
        self.eval_env = make_env(config.env_name, exp.eval_episodes, exp.device, exp.seed + 10_000, **config.env_kwargs)
        self.learner = spec.learner(config.algo, self.env.groups, self.env.state_dim, seed=exp.seed).to(exp.device)
        self.collector = RolloutCollector(self.env, self.learner.act, config.algo.rollout_steps)
        self.frames = 0
        self.rows: list[dict[str, Any]] = []
        self._columns: list[str] = []
        self._rows_written = 0

    def run(self) -> dict[str, Any]:
        exp = self.config.experiment
        if self.out.exists() and any(self.out.iterdir()):
            raise MarlkitError(f"run directory {self.out} is not empty; choose another --out")
        atomic_write_text(self.out / "config.json", json.dumps(self.config.to_json(), indent=2))
        start = time.perf_counter()
        next_eval = exp.eval_every or exp.frames
        bar = tqdm(
            total=exp.frames,
            unit="frame",
            disable=not exp.progress,
            dynamic_ncols=True,
            desc=f"{self.config.algo_name} {self.config.env_name}",
        )
        last_eval = float("nan")
        self.collector.reset(exp.seed)
        while self.frames < exp.frames:
            batch, stats = self.collector.collect()
            self.frames += batch.numel()
            metrics = self.learner.update(batch)
            wall = time.perf_counter() - start
            row: dict[str, Any] = {
                "frames": self.frames,
                "wall_s": round(wall, 3),
                "fps": round(self.frames / wall, 1),
                "episodes": stats.episodes,
                "return_mean": stats.mean_return(),
            }
            row.update({f"return_{g}": stats.group_return(g) for g in self.env.groups})
            row.update(metrics)
            if self.frames >= next_eval or self.frames >= exp.frames:
                row.update(evaluate(self.learner, self.eval_env, exp.seed + 10_000, exp.eval_max_steps))
                last_eval = row["eval_return_mean"]
                next_eval += exp.eval_every or exp.frames
            self.rows.append(row)
            self._write_metrics()
            bar.update(batch.numel())
            bar.set_postfix(fps=f"{row['fps']:.0f}", ret=f"{row['return_mean']:.3f}", eval=f"{last_eval:.3f}")
        bar.close()
        self.save_checkpoint(self.out / "checkpoints" / "final.pt")
        summary = {
            "frames": self.frames,
            "wall_s": self.rows[-1]["wall_s"],
            "final_eval_return_mean": last_eval,
            "final_eval_return_team": self.rows[-1].get("eval_return_team"),
            "algo": self.config.algo_name,
            "env": self.config.env_name,
            "seed": exp.seed,
        }
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _write_metrics(self) -> None:
        """Append the newest row; rewrite the file (atomically) only when a new column appears.
        Rewriting every iteration is quadratic in the run length (off-policy runs log thousands of rows)."""
        columns = list(self._columns)
        for row in self.rows[self._rows_written :]:
            columns += [k for k in row if k not in columns]
        path = self.out / "metrics.csv"
        if columns != self._columns or not path.exists():
            self._columns = columns
            atomic_write_text(path, _csv_text(columns, self.rows, header=True))
        else:
            with path.open("a") as f:
                f.write(_csv_text(columns, self.rows[self._rows_written :], header=False))
        self._rows_written = len(self.rows)

    def save_checkpoint(self, path: Path) -> None:
        state = {"learner": self.learner.state_dict(), "frames": self.frames, "config": self.config.to_json()}
        atomic_write_bytes(path, lambda f: torch.save(state, f))


def _csv_text(columns: list[str], rows: list[dict[str, Any]], header: bool) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Checkpoints hold tensors and plain data only: loading one never executes code."""
    return torch.load(path, map_location="cpu", weights_only=True)
