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
import signal
import sys
import tempfile
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from marlkit.adapters import make_env
from marlkit.adapters.base import MultiAgentEnv
from marlkit.algorithms import algorithm
from marlkit.config import SECTIONS, option, require, to_dict, with_overrides
from marlkit.errors import MarlkitError
from marlkit.keys import DONE, REWARD
from marlkit.loggers import make_loggers
from marlkit.rollout import RolloutCollector


@dataclass(frozen=True)
class ExperimentConfig:
    frames: int = option(100_000, "environment frames to train for (one frame = one step of one env copy)")
    seed: int = option(0, "seed of every random source (torch, numpy, python, envs)")
    num_envs: int = option(16, "env copies stepped together for training")
    device: str = option("cpu", "torch device of envs and networks")
    eval_every: int = option(20_000, "frames between deterministic evaluations (0: only at the end)")
    eval_episodes: int = option(16, "episodes per evaluation, one per evaluation env copy")
    eval_max_steps: int = option(10_000, "step cap of one evaluation; episodes cut there count as they stand")
    progress: bool = option(True, "show a progress bar")
    torch_threads: int = option(0, "torch intra-op threads (0: torch's default)")
    checkpoint_every: int = option(0, "frames between checkpoints, each starting new episodes (0: a tenth of the run)")
    keep_checkpoints: int = option(3, "periodic checkpoints kept; older ones are deleted")
    save_replay: bool = option(True, "include the off-policy replay buffer in checkpoints")
    tensorboard: bool = option(True, "write TensorBoard event files to RUN_DIR/tensorboard")
    wandb: bool = option(False, "also log to Weights & Biases (needs `pip install wandb`)")
    wandb_project: str = option("marlkit", "Weights & Biases project name")

    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(self.frames // 10, 1)

    def validate(self) -> None:
        require(self.frames > 0, f"experiment.frames must be > 0, got {self.frames}")
        require(self.num_envs >= 1, f"experiment.num_envs must be >= 1, got {self.num_envs}")
        require(self.eval_every >= 0, f"experiment.eval_every must be >= 0, got {self.eval_every}")
        require(self.eval_episodes >= 1, f"experiment.eval_episodes must be >= 1, got {self.eval_episodes}")
        require(self.checkpoint_every >= 0, f"experiment.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        require(self.keep_checkpoints >= 1, f"experiment.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        require(self.eval_max_steps >= 1, f"experiment.eval_max_steps must be >= 1, got {self.eval_max_steps}")
        require(self.torch_threads >= 0, f"experiment.torch_threads must be >= 0, got {self.torch_threads}")


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


def read_run_config(run: Path) -> RunConfig:
    """The config a run directory was made with (its ``config.json``)."""
    path = run / "config.json"
    if not path.exists():
        raise MarlkitError(f"{run} is not a run directory (no config.json)")
    return RunConfig.from_json(json.loads(path.read_text()))


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
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; run directories are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


@torch.no_grad()
def episode_returns(
    learner: Any, env: MultiAgentEnv, seed: int, max_steps: int, on_step: Any = None
) -> dict[str, torch.Tensor]:
    """Deterministic actions; the first episode of every env copy counts, ``[num_envs, n_agents]`` per
    group. An episode still running after ``max_steps`` counts with its return so far (the cap acts as
    a time limit). ``on_step(env)`` is called after every step (video)."""
    td = env.reset(seed=seed)
    returns = {g: torch.zeros(env.num_envs, s.n_agents, device=env.device) for g, s in env.groups.items()}
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(max_steps):
        out = env.step(learner.act(td, deterministic=True))
        if on_step is not None:
            on_step(env)
        for g in returns:
            returns[g] += out[g][REWARD] * (~finished).unsqueeze(-1)
        finished |= out[DONE]
        td = out
        if bool(finished.all()):
            break
    return {g: r.cpu() for g, r in returns.items()}


def evaluate(learner: Any, env: MultiAgentEnv, seed: int, max_steps: int) -> dict[str, float]:
    """Per-group and overall means of :func:`episode_returns`."""
    returns = episode_returns(learner, env, seed, max_steps)
    result = {f"eval_return_{g}": float(r.mean()) for g, r in returns.items()}
    agent_returns = torch.cat(list(returns.values()), dim=-1)
    result["eval_return_mean"] = float(agent_returns.mean())
    result["eval_return_team"] = float(agent_returns.sum(-1).mean())
    result["eval_episodes"] = int(agent_returns.shape[0])
    return result


CHECKPOINT_FORMAT = 1


class Experiment:
    """Train one algorithm on one env; everything is built (and validated) before anything is written.

    Checkpoints are exact: ``checkpoints/ckpt-<frames>.pt`` holds the learner's weights, optimizers,
    normalizers, generators and (off-policy) replay buffer, the torch/numpy/python RNG states, the
    counters and the metric rows. Every checkpoint also starts new episodes in all env copies (seeded
    from the run seed and the checkpoint number), in the uninterrupted run as in a resumed one, so a
    run killed at any point and resumed from its last checkpoint reproduces ``metrics.csv`` and the
    final parameters bit for bit on CPU. Wall-clock goes to ``timing.csv``, apart from the
    deterministic metrics.
    """

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
        self.learner = spec.build(config.algo, self.env, exp.seed).to(exp.device)
        self.collector = RolloutCollector(self.env, self.learner.act, config.algo.rollout_steps)
        self.loggers = make_loggers(config, self.out)  # fails here (before any write) if wandb is missing
        self.frames = 0
        self.checkpoints_written = 0
        self.next_eval = exp.eval_every or exp.frames
        self.next_checkpoint = exp.checkpoint_interval()
        self.last_eval = float("nan")
        self.best_eval = -float("inf")
        self.wall_s = 0.0
        self.eval_wall_s = 0.0  # the part of wall_s spent in periodic evaluations
        self.rows: list[dict[str, Any]] = []
        self.timing: list[dict[str, Any]] = []
        self._written: dict[str, tuple[int, list[str]]] = {"metrics.csv": (0, []), "timing.csv": (0, [])}
        self._interrupted = False

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    # ------------------------------------------------------------------ loop
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train to ``experiment.frames``. With ``resume``, continue from the newest readable checkpoint
        of the run directory; otherwise the directory must be empty or absent."""
        exp = self.config.experiment
        if resume:
            self._restore_latest()
        else:
            if self.out.exists() and any(self.out.iterdir()):
                raise MarlkitError(f"run directory {self.out} is not empty; choose another --out, or resume it")
            atomic_write_text(self.out / "config.json", json.dumps(self.config.to_json(), indent=2))
            if exp.eval_every:  # the untrained policy: every learning curve starts at frame 0
                self.rows.append({"frames": 0, **self._evaluate()})
                self.timing.append({"frames": 0, "wall_s": 0.0, "eval_s": 0.0, "fps": 0.0})
            self._start_episodes()
        self._rewrite_csvs()
        self.loggers.open(purge_step=self.frames if resume else None)
        bar = tqdm(
            total=exp.frames,
            initial=self.frames,
            unit="frame",
            disable=not exp.progress,
            dynamic_ncols=True,
            desc=f"{self.config.algo_name} {self.config.env_name} s{exp.seed}",
        )
        previous_handler = _install_interrupt(self)
        start = time.perf_counter() - self.wall_s
        try:
            while self.frames < exp.frames:
                self._iteration(bar, start)
                if self._interrupted:
                    self.save_checkpoint()
                    bar.close()
                    return {"interrupted": True, "frames": self.frames, "run_dir": str(self.out)}
                if self.frames >= self.next_checkpoint and self.frames < exp.frames:
                    # New episodes first, then the snapshot: a resume makes the same reset and then
                    # restores the RNG states from right after it (env resets may draw from them).
                    self.checkpoints_written += 1
                    self.next_checkpoint += exp.checkpoint_interval()
                    self._start_episodes()
                    self.save_checkpoint()
        finally:
            _restore_interrupt(previous_handler)
            self.loggers.close()
        bar.close()
        self.save_checkpoint(final=True)
        summary = {
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "eval_wall_s": round(self.eval_wall_s, 3),
            "final_eval_return_mean": self.last_eval,
            "final_eval_return_team": self.rows[-1].get("eval_return_team"),
            "best_eval_return_mean": self.best_eval,
            "algo": self.config.algo_name,
            "env": self.config.env_name,
            "seed": exp.seed,
        }
        if hasattr(self.learner, "timing_summary"):  # wall-clock profile of planners (not in metrics.csv)
            summary.update(self.learner.timing_summary())
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _iteration(self, bar: Any, start: float) -> None:
        exp = self.config.experiment
        batch, stats = self.collector.collect()
        self.frames += batch.numel()
        metrics = self.learner.update(batch)
        row: dict[str, Any] = {"frames": self.frames, "episodes": stats.episodes, "return_mean": stats.mean_return()}
        row.update({f"return_{g}": stats.group_return(g) for g in self.env.groups})
        for g, spec in self.env.groups.items():
            if spec.n_agents > 1:
                row.update({f"return_{a}": float(r) for a, r in zip(spec.agents, stats.agent_returns[g], strict=True)})
        row.update(metrics)
        if self.frames >= self.next_eval or self.frames >= exp.frames:
            eval_start = time.perf_counter()
            row.update(self._evaluate())
            self.eval_wall_s += time.perf_counter() - eval_start
            self.last_eval = row["eval_return_mean"]
            self.next_eval += exp.eval_every or exp.frames
            if self.last_eval > self.best_eval:
                self.best_eval = self.last_eval
                self._save_weights(self.checkpoint_dir / "best.pt")
        self.wall_s = time.perf_counter() - start
        self.rows.append(row)
        self.timing.append(
            {
                "frames": self.frames,
                "wall_s": round(self.wall_s, 3),
                "eval_s": round(self.eval_wall_s, 3),
                "fps": round(self.frames / max(self.wall_s, 1e-9), 1),
            }
        )
        self._append_csvs()
        self.loggers.log(row, self.frames)
        bar.update(batch.numel())
        bar.set_postfix(
            fps=f"{self.timing[-1]['fps']:.0f}", ret=f"{row['return_mean']:.3f}", eval=f"{self.last_eval:.3f}"
        )

    def _evaluate(self) -> dict[str, float]:
        # The same seed every time: evaluations differ only by the policy.
        exp = self.config.experiment
        return evaluate(self.learner, self.eval_env, exp.seed + 10_000, exp.eval_max_steps)

    def _start_episodes(self) -> None:
        # Checkpoint k starts new episodes from seed (seed, k) in every run, resumed or not.
        self.collector.reset(self.config.experiment.seed + 7919 * self.checkpoints_written)

    # ------------------------------------------------------------ metric files
    def _append_csvs(self) -> None:
        for name, rows in (("metrics.csv", self.rows), ("timing.csv", self.timing)):
            written, columns = self._written[name]
            new_columns = list(columns)
            for row in rows[written:]:
                new_columns += [k for k in row if k not in new_columns]
            path = self.out / name
            if new_columns != columns or not path.exists():
                # A new column (e.g. the first evaluation) rewrites the file; otherwise append: rewriting
                # every iteration would be quadratic in the run length.
                atomic_write_text(path, _csv_text(new_columns, rows, header=True))
            else:
                with path.open("a") as f:
                    f.write(_csv_text(new_columns, rows[written:], header=False))
            self._written[name] = (len(rows), new_columns)

    def _rewrite_csvs(self) -> None:
        self._written = {"metrics.csv": (0, []), "timing.csv": (0, [])}
        for name in self._written:
            (self.out / name).unlink(missing_ok=True)
        if self.rows:
            self._append_csvs()

    # ------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        exp = self.config.experiment
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_json(),
            "learner": self.learner.state_dict(),
            "training": self.learner.training_state(include_replay=exp.save_replay),
            "rng": rng_state(),
            "counters": {
                "frames": self.frames,
                "checkpoints_written": self.checkpoints_written,
                "next_eval": self.next_eval,
                "next_checkpoint": self.next_checkpoint,
                "last_eval": self.last_eval,
                "best_eval": self.best_eval,
                "wall_s": self.wall_s,
                "eval_wall_s": self.eval_wall_s,
            },
            "rows": self.rows,
            "timing": self.timing,
        }

    def save_checkpoint(self, final: bool = False) -> Path:
        """Write ``ckpt-<frames>.pt`` atomically (``final.pt`` at the end) and keep the newest K."""
        state = self.state()
        path = self.checkpoint_dir / ("final.pt" if final else f"ckpt-{self.frames:012d}.pt")
        atomic_write_bytes(path, lambda f: torch.save(state, f))
        keep = self.config.experiment.keep_checkpoints
        periodic = sorted(self.checkpoint_dir.glob("ckpt-*.pt"))
        for old in periodic[: max(len(periodic) - keep, 0)]:
            old.unlink(missing_ok=True)
        return path

    def _save_weights(self, path: Path) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_json(),
            "learner": self.learner.state_dict(),
            "counters": {"frames": self.frames, "eval_return_mean": self.last_eval},
        }
        atomic_write_bytes(path, lambda f: torch.save(state, f))

    def _restore_latest(self) -> None:
        candidates = sorted(self.checkpoint_dir.glob("ckpt-*.pt"), reverse=True)
        if not candidates:
            raise MarlkitError(f"no checkpoint to resume in {self.checkpoint_dir}; start the run again instead")
        for path in candidates:
            try:
                state = load_checkpoint(path)
                if state.get("config") != self.config.to_json():
                    raise MarlkitError("it belongs to a different config")
                self.load_state(state)
                return
            except Exception as err:
                print(
                    f"marlkit: checkpoint {path.name} is unusable ({_one_line(err)}); trying an older one",
                    file=sys.stderr,
                )
        raise MarlkitError(f"every checkpoint in {self.checkpoint_dir} is unusable; start the run again instead")

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise MarlkitError(f"unknown checkpoint format {state.get('format')!r}")
        self.learner.load_training_state(state["training"])
        self.learner.load_state_dict(state["learner"])
        for key, value in state["counters"].items():
            setattr(self, key, value)
        self.rows, self.timing = list(state["rows"]), list(state["timing"])
        self._start_episodes()  # the same reset the uninterrupted run made after writing this checkpoint
        set_rng_state(state["rng"])


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


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _install_interrupt(experiment: Experiment) -> Any:
    """Ctrl-C finishes the current iteration, writes a checkpoint and returns cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if experiment._interrupted:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        experiment._interrupted = True
        print(
            "\nmarlkit: interrupted; saving a checkpoint after this iteration (Ctrl-C again to abort)", file=sys.stderr
        )

    return signal.signal(signal.SIGINT, handler)


def _restore_interrupt(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


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
