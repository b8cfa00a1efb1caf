"""The one training loop every algorithm runs through: collect -> update -> log -> evaluate -> checkpoint.

A run directory holds ``config.json`` (the full resolved config: the run can be re-created from it),
``metrics.csv`` (one row per iteration), ``summary.json`` and ``checkpoints/final.pt``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_write_text,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    use_first_usable,
)
from marlkit.core.errors import MarlkitError
from marlkit.core.interrupts import StopRequest
from marlkit.core.rundir import contents, exclusive, remove_partial_writes
from marlkit.learner import EnvInfo, Learner
from marlkit.training.config import RunConfig, build_config
from marlkit.training.evaluation import episode_returns, per_episode, summarize_returns
from marlkit.training.loggers import MetricFiles, make_loggers
from marlkit.training.rollout import RolloutCollector

__all__ = ["Experiment", "RunConfig", "build_config", "load_checkpoint"]
EvalHook = Callable[[int, float], bool]  # after each evaluation: (frames, eval return) -> stop here?


class Experiment:
    """Train one algorithm on one env; everything is built (and validated) before anything is written.

    Checkpoints are exact: ``checkpoints/ckpt-<frames>.pt`` holds the learner's weights, optimizers,
    normalizers, generators and (off-policy) replay buffer, the torch/numpy/python RNG states, the
    counters and the metric rows. Every checkpoint also starts new episodes in all env copies (seeded
    from the run seed and the checkpoint number), in the uninterrupted run as in a resumed one, so a
    run killed at any point and resumed from its last checkpoint reproduces ``metrics.csv`` and the
    final parameters bit for bit on CPU. Wall-clock goes to ``timing.csv``, apart from the metrics."""

    def __init__(self, config: RunConfig, out_dir: str | Path, on_eval: EvalHook | None = None) -> None:
        self.config = config
        self.on_eval = on_eval
        self.out = Path(out_dir)
        exp = config.experiment
        if exp.torch_threads:
            torch.set_num_threads(exp.torch_threads)
        seed_everything(exp.seed)
        spec = algorithm(config.algo_name)
        workers = exp.env_worker_count(torch.get_num_threads())
        self.env = make_env(config.env_name, exp.num_envs, exp.device, exp.seed, workers=workers, **config.env_kwargs)
        self.eval_env = make_env(config.env_name, exp.eval_episodes, exp.device, exp.seed + 10_000, **config.env_kwargs)
        self.learner: Learner = spec.build(config.algo, self.env, exp.seed).to(exp.device)
        self.sides = spec.game_sides(config.algo, EnvInfo.of(self.env))  # a game's, returned per side
        self.collector = RolloutCollector(self.env, self.learner.act, self.learner.steps_per_collection)
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
        self.episodes: list[dict[str, Any]] = []  # every evaluation episode's return (episodes.csv)
        self.files = MetricFiles(
            self.out, {"metrics.csv": self.rows, "timing.csv": self.timing, "episodes.csv": self.episodes}
        )
        self._stop = StopRequest()

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    # ------------------------------------------------------------------ loop
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train to ``experiment.frames``. With ``resume``, continue from the newest readable checkpoint
        of the run directory; otherwise the directory must be empty or absent.

        The run holds the directory's lock throughout (a second writer fails at once, naming this one),
        and first deletes temporary files that a killed writer left. An error while writing (disk full,
        read-only) is one :class:`MarlkitError` naming the path and the cause; what was written before
        stays intact and resumable."""
        if not resume:
            self._require_empty()  # before the lock file: nothing is written into a folder we refuse
        with exclusive(self.out):
            remove_partial_writes(self.out)
            try:
                return self._run(resume)
            except OSError as err:
                where = err.filename or self.out
                raise MarlkitError(
                    f"cannot write {where}: {err.strerror or err}; earlier checkpoints are intact, "
                    "so `marlkit resume` continues once this is fixed"
                ) from err
            finally:
                self.env.close()  # env worker processes end with the run

    def _require_empty(self) -> None:
        if contents(self.out):
            raise MarlkitError(f"run directory {self.out} is not empty; choose another --out, or resume it")

    def _run(self, resume: bool) -> dict[str, Any]:
        exp = self.config.experiment
        if resume:
            self._restore_latest()
        else:
            self._require_empty()  # again under the lock: another writer may have started meanwhile
            atomic_write_text(self.out / "config.json", json.dumps(self.config.to_json(), indent=2))
            if exp.eval_every:  # the untrained policy: every learning curve starts at frame 0
                self.rows.append({"frames": 0, **self._evaluate()})
                self.timing.append({"frames": 0, "wall_s": 0.0, "eval_s": 0.0, "fps": 0.0})
            self._start_episodes()
            self.learner.write_files(self.out, self.config.to_json())  # e.g. pool snapshots taken at frame 0
        self.files.rewrite()
        self.loggers.open(purge_step=self.frames if resume else None)
        bar = tqdm(
            total=exp.frames,
            initial=self.frames,
            unit="frame",
            disable=not exp.progress,
            dynamic_ncols=True,
            desc=f"{self.config.algo_name} {self.config.env_name} s{exp.seed}",
        )
        start = time.perf_counter() - self.wall_s
        try:
            with self._stop:  # Ctrl-C: finish the iteration, checkpoint, return
                while self.frames < exp.frames:
                    self._iteration(bar, start)
                    if self._stop.is_set():
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
        summary.update(self.learner.run_summary())  # e.g. planners' wall-clock profile (not in metrics.csv)
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
        row.update(self.learner.collection_metrics(stats.agent_returns))
        self.learner.write_files(self.out, self.config.to_json())
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
            if self.on_eval is not None and self.on_eval(self.frames, self.last_eval):
                self._stop.requested = True  # checkpoint and return `interrupted`, as on Ctrl-C (tune prunes)
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
        self.files.append()
        self.loggers.log(row, self.frames)
        bar.update(batch.numel())
        bar.set_postfix(
            fps=f"{self.timing[-1]['fps']:.0f}", ret=f"{row['return_mean']:.3f}", eval=f"{self.last_eval:.3f}"
        )

    def _evaluate(self) -> dict[str, float]:
        # The same seed every time: evaluations differ only by the policy.
        exp = self.config.experiment
        returns = episode_returns(self.learner, self.eval_env, exp.seed + 10_000, exp.eval_max_steps)
        means, teams = per_episode(returns)
        self.episodes += [
            {"frames": self.frames, "episode": i, "return_mean": m, "return_team": t}
            for i, (m, t) in enumerate(zip(means, teams, strict=True))
        ]
        return summarize_returns(returns, self.sides, self.eval_env.name)

    def _start_episodes(self) -> None:
        # Checkpoint k starts new episodes from seed (seed, k) in every run, resumed or not.
        self.collector.reset(self.config.experiment.seed + 7919 * self.checkpoints_written)

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
            "episodes": self.episodes,
        }

    def save_checkpoint(self, final: bool = False) -> Path:
        """Write ``ckpt-<frames>.pt`` atomically (``final.pt`` at the end) and keep the newest K."""
        state = self.state()
        path = self.checkpoint_dir / ("final.pt" if final else f"ckpt-{self.frames:012d}.pt")
        save_checkpoint(path, state)
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
        save_checkpoint(path, state)

    def _restore_latest(self) -> None:
        candidates = sorted(self.checkpoint_dir.glob("ckpt-*.pt"), reverse=True)
        if not candidates:
            raise MarlkitError(f"no checkpoint to resume in {self.checkpoint_dir}; start the run again instead")

        def use(state: dict[str, Any]) -> None:
            if RunConfig.from_json(state["config"]).to_json() != self.config.to_json():
                raise MarlkitError("it belongs to a different config")
            self.load_state(state)

        use_first_usable(
            candidates, use, f"every checkpoint in {self.checkpoint_dir} is unusable; start the run again instead"
        )

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise MarlkitError(f"unknown checkpoint format {state.get('format')!r}")
        self.learner.load_training_state(state["training"])
        self.learner.load_state_dict(state["learner"])
        for key, value in state["counters"].items():
            setattr(self, key, value)
        self.rows[:], self.timing[:] = state["rows"], state["timing"]  # in place: self.files writes these lists
        self.episodes[:] = state.get("episodes", [])  # absent from checkpoints written before episodes.csv
        self._start_episodes()  # the same reset the uninterrupted run made after writing this checkpoint
        set_rng_state(state["rng"])
