"""``marlkit tune ALGO TASK``: hyperparameter search with Optuna (``pip install 'marlkit[tune]'``).

A search space is a YAML, TOML or JSON file of config keys (any ``algo.*``, ``env.*`` or
``experiment.*`` option) and their ranges::

    algo.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    algo.epochs: {type: int, low: 2, high: 20}
    algo.hidden: {type: categorical, choices: [[64, 64], [256, 256]]}
    algo.activation: [tanh, relu]            # a list: categorical

Each trial trains every seed (``OUT/trials/<params hash>/seed<k>/``, ordinary run directories) and scores
the mean of their final evaluations (``measure``). After each evaluation the trial reports the return
(step = seed index x frames + frames) and a pruner (Optuna's median rule by default) may stop it. The
study lives in ``OUT/study.db`` (SQLite): running the same command again continues it. A trial that a
crash or Ctrl-C left unfinished is run again with the same parameters, and its runs resume from their
checkpoints. ``jobs > 1`` runs trials in parallel worker processes, as ``compare`` does (``cores / jobs``
torch threads each). ``OUT/tune.md`` reports the best configuration, every trial and the importance of
each key (Optuna's fANOVA); ``OUT/best.yaml`` trains it again (``marlkit train --config OUT/best.yaml``).

The best trial's score is optimistic: it is the largest of many noisy scores on the same seeds. Compare
it with the default on other seeds before claiming an improvement (docs/tuning.md shows how).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from marlkit.analysis.sweep import run_job, worker_setup
from marlkit.core.errors import MarlkitError
from marlkit.core.extras import require
from marlkit.core.rundir import exclusive, prepare
from marlkit.training.config import build_config

KINDS = ("float", "int", "categorical")
STUDY = "marlkit"


@dataclass(frozen=True)
class Param:
    """One key's range: ``float``/``int`` between ``low`` and ``high`` (``log`` scale, ``step``), or
    ``categorical`` ``choices``."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def example(self) -> Any:
        if self.kind == "categorical":
            return list(self.choices[0]) if isinstance(self.choices[0], tuple) else self.choices[0]
        return int(self.low) if self.kind == "int" else self.low


def parse_space(raw: Any, where: str = "search space") -> dict[str, Param]:
    """Validate a search space (see the module doc); every mistake is one line naming the key."""
    if not isinstance(raw, Mapping) or not raw:
        raise MarlkitError(
            f"{where} must map config keys to ranges, e.g. algo.lr: {{type: float, low: 1e-4, high: 1e-2}}"
        )
    space = {}
    for key, spec in raw.items():
        if isinstance(spec, list):
            spec = {"type": "categorical", "choices": spec}
        if not isinstance(spec, Mapping):
            raise MarlkitError(f"{where}: '{key}' must be a table with a type, or a list of choices; got {spec!r}")
        unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
        kind = spec.get("type")
        if kind not in KINDS or unknown:
            problem = f"unknown entries {sorted(unknown)}" if unknown else f"type {kind!r}"
            raise MarlkitError(f"{where}: '{key}' has {problem}; a range has type ({', '.join(KINDS)}), low, high, "
                               "log, step, or choices")  # fmt: skip
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise MarlkitError(f"{where}: '{key}' is categorical and needs a non-empty list of choices")
            space[key] = Param(key, kind, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices))
            continue
        low: Any = spec.get("low")
        high: Any = spec.get("high")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low < high or (spec.get("log") and low <= 0):
            raise MarlkitError(
                f"{where}: '{key}' needs numbers low < high (low > 0 on a log scale), got {low!r}, {high!r}"
            )
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise MarlkitError(
                f"{where}: '{key}' is an int range; low and high must be integers, got {low!r}, {high!r}"
            )
        space[key] = Param(key, kind, float(low), float(high), bool(spec.get("log", False)), spec.get("step"))
    return space


def read_space(path: str | Path) -> dict[str, Param]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise MarlkitError(f"cannot read search space {path}: {err.strerror or err}") from None
    try:
        if path.suffix == ".toml":
            raw: Any = tomllib.loads(text)
        else:
            raw = yaml.safe_load(text)  # YAML, and JSON (a subset of it)
    except Exception as err:
        raise MarlkitError(f"search space {path} does not parse: {type(err).__name__}: {err}") from None
    return parse_space(raw, f"search space {path}")


def suggest(trial: Any, space: Mapping[str, Param]) -> dict[str, Any]:
    """The trial's values, by config key."""
    values = {}
    for key, p in space.items():
        if p.kind == "categorical":
            index = trial.suggest_categorical(key, list(range(len(p.choices)))) if _unhashable(p) else None
            values[key] = p.choices[index] if index is not None else trial.suggest_categorical(key, list(p.choices))
        elif p.kind == "int":
            values[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _unhashable(p: Param) -> bool:
    """Choices Optuna cannot store as they are (lists such as hidden sizes): it stores their index."""
    return any(isinstance(c, tuple) for c in p.choices)


@dataclass(frozen=True)
class Settings:
    """What a study was started with; running it again must give the same."""

    algo: str
    task: str
    space: dict[str, Param]
    seeds: tuple[int, ...]
    frames: int | None
    overrides: dict[str, Any]
    measure: str
    pruner: str
    sampler_seed: int

    def signature(self) -> str:
        fixed = {"algo": self.algo, "task": self.task, "seeds": list(self.seeds), "frames": self.frames,
                 "overrides": self.overrides, "measure": self.measure,
                 "space": {k: repr(p) for k, p in self.space.items()}}  # fmt: skip
        return json.dumps(fixed, sort_keys=True, default=str)

    def config(self, values: Mapping[str, Any], seed: int) -> Any:
        overrides = {**self.overrides, **values, "experiment.seed": seed, "experiment.progress": False}
        if self.frames is not None:
            overrides["experiment.frames"] = self.frames
        return build_config(self.algo, self.task, overrides)


@dataclass(frozen=True)
class TuneResult:
    out: Path
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    importances: dict[str, float]
    report: Path


def tune(
    algo: str,
    task: str,
    space: str | Path | Mapping[str, Any],
    trials: int = 20,
    seeds: Sequence[int] = (0, 1),
    frames: int | None = None,
    out: str | Path = "runs/tune",
    jobs: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    measure: str = "eval_return_mean",
    pruner: str = "median",
    sampler_seed: int = 0,
) -> TuneResult:
    """Run the study up to ``trials`` finished (complete or pruned) trials, then write the report."""
    require("optuna", "marlkit tune")
    import optuna

    if not isinstance(trials, int) or trials < 1:
        raise MarlkitError(f"--trials must be an integer >= 1, got {trials!r}")
    if pruner not in ("median", "none"):
        raise MarlkitError(f"--pruner must be 'median' or 'none', got '{pruner}'")
    if measure not in ("eval_return_mean", "eval_return_team"):
        raise MarlkitError(f"--measure must be eval_return_mean or eval_return_team, got '{measure}'")
    if not seeds or len(set(seeds)) != len(seeds):
        raise MarlkitError(f"--seeds must name at least one seed, each once; got {list(seeds)}")
    parsed = parse_space(space) if isinstance(space, Mapping) else read_space(space)
    settings = Settings(algo, task, parsed, tuple(int(s) for s in seeds), frames, dict(overrides or {}), measure,
                        pruner, sampler_seed)  # fmt: skip
    settings.config({k: p.example() for k, p in parsed.items()}, settings.seeds[0])  # unknown keys fail here
    out = Path(out)
    prepare(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with exclusive(out):
        study = optuna.create_study(study_name=STUDY, storage=_storage(out), direction="maximize", load_if_exists=True)
        started = study.user_attrs.get("settings")
        if started is None:
            study.set_user_attr("settings", settings.signature())
        elif started != settings.signature():
            raise MarlkitError(f"{out} holds a study started with other settings (algorithm, task, space, seeds, "
                               "frames or overrides); choose another --out to start a new one")  # fmt: skip
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # left by a crash: run its values again
            study.enqueue_trial(t.params, user_attrs={"repeats": t.number})
        done = len(study.get_trials(deepcopy=False, states=_finished_states(optuna)))
        remaining = max(trials - done, 0)
        cores = os.cpu_count() or 1
        workers = max(1, min(jobs or 1, remaining or 1))
        threads = max(1, cores // workers)
        if workers == 1:
            for _ in range(remaining):
                run_trial(str(out), settings, threads, ask_trial(out, settings)[0])
        else:
            run_parallel(out, settings, threads, workers, remaining)
        return write_tune_report(out, settings)


def run_parallel(out: Path, settings: Settings, threads: int, workers: int, trials: int) -> None:
    """``trials`` trials, ``workers`` at a time in worker processes. This process asks the study for each
    trial when a worker is free (the sampler sees every finished and running trial, and no two processes
    race for one queued trial); the workers train and tell. A trial whose values equal a running one's
    shares its folder, so it starts once that one has finished (and reuses its finished runs)."""
    context = get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=worker_setup,
                               initargs=(os.getpid(), stop))  # fmt: skip
    running: dict[Future, Path] = {}

    def finish(futures: set[Future]) -> None:
        for future in futures:
            running.pop(future)
            future.result()

    try:
        for _ in range(trials):
            if len(running) == workers:
                finish(wait(running, return_when=FIRST_COMPLETED).done)
            trial_id, folder = ask_trial(out, settings)
            finish({f for f, used in running.items() if used == folder})
            running[pool.submit(run_trial, str(out), settings, threads, trial_id)] = folder
        finish(set(running))
    except KeyboardInterrupt:  # running trials checkpoint their runs and stay unfinished
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished_states(optuna: Any) -> tuple[Any, ...]:  # the finished states (Optuna is an optional import)
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _storage(out: Path) -> Any:
    import optuna

    # Parallel trials write one SQLite file: wait for its lock instead of failing at once.
    return optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}", engine_kwargs={"connect_args": {"timeout": 60}})


def trial_dir(out: Path, values: Mapping[str, Any]) -> Path:
    """Runs of equal values share a folder: a trial run again after a crash resumes them."""
    digest = hashlib.sha1(json.dumps(dict(values), sort_keys=True, default=str).encode()).hexdigest()[:10]
    return out / "trials" / digest


def ask_trial(out: Path, settings: Settings) -> tuple[int, Path]:
    """A new trial of the study (a queued repeat of a crashed one first) with its values suggested and
    its folder named; returns its id and folder. Only the process that runs :func:`tune` asks."""
    import optuna

    storage = _storage(out)
    sampler_seed = settings.sampler_seed + len(optuna.load_study(study_name=STUDY, storage=storage).trials)
    with warnings.catch_warnings():  # constant_liar (parallel trials avoid each other's points) is "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True)
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler)
    trial = study.ask()
    values = suggest(trial, settings.space)
    folder = trial_dir(out, values)
    trial.set_user_attr("dir", str(folder.relative_to(out)))
    trial.set_user_attr("values", json.dumps(values))
    return trial._trial_id, folder  # the id is what optuna.trial.Trial is built from, as Optuna's own ask does


def run_trial(out_dir: str, settings: Settings, threads: int, trial_id: int) -> None:
    """Train an asked trial's seeds (pruning on the way) and tell the study its score."""
    import optuna

    out = Path(out_dir)
    frames = settings.frames or settings.config({}, 0).experiment.frames
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=frames // 2)
              if settings.pruner == "median" else optuna.pruners.NopPruner())  # fmt: skip
    study = optuna.load_study(study_name=STUDY, storage=_storage(out), pruner=pruner)
    trial = optuna.trial.Trial(study, trial_id)
    values = json.loads(trial.user_attrs["values"])
    folder = out / trial.user_attrs["dir"]
    finals = []
    try:
        for k, seed in enumerate(settings.seeds):
            pruned: list[bool] = []

            def report(at: int, value: float, k: int = k, pruned: list = pruned) -> bool:
                trial.report(value, k * frames + at)
                pruned.append(trial.should_prune())
                return pruned[-1]

            config = settings.config(values, seed)
            result = run_job(config.to_json(), str(folder / f"seed{seed}"), threads, report)
            if result.get("status") == "interrupted":
                if pruned and pruned[-1]:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    return
                raise KeyboardInterrupt  # stopped by Ctrl-C: left RUNNING, run again next time
            finals.append(float(result[f"final_{settings.measure}"]))
    except KeyboardInterrupt:
        raise
    except Exception as err:
        trial.set_user_attr("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_user_attr("finals", finals)
    study.tell(trial, sum(finals) / len(finals))


def write_tune_report(out: Path, settings: Settings) -> TuneResult:
    """``OUT/tune.md`` and ``OUT/best.yaml`` from the study."""
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=_storage(out))
    rows = []
    for t in study.trials:
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     "values": json.loads(t.user_attrs.get("values", "{}")), "finals": t.user_attrs.get("finals"),
                     "dir": t.user_attrs.get("dir"), "error": t.user_attrs.get("error")})  # fmt: skip
    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        raise MarlkitError(f"no trial of the study in {out} completed ({len(rows)} trials); see {out / 'tune.md'}")
    best = max(complete, key=lambda r: r["value"])
    try:
        importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # fewer than two completed trials, or nothing varied
        importances = {}
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    lines = [
        f"# Tuning {settings.algo} on {settings.task}",
        "",
        f"{len(rows)} trials ({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed); "
        f"each trains seeds {', '.join(map(str, settings.seeds))} for {settings.frames or 'the default'} frames and "
        f"scores the mean final `{settings.measure}`. Pruner: {settings.pruner}. Study: `{out / 'study.db'}`.",
        "",
        f"**Best: trial {best['number']}, score {best['value']:.4g}** (finals {best['finals']}; runs in "
        f"`{best['dir']}`): `{json.dumps(best['values'])}`. Train it again with "
        f"`marlkit train --config {out / 'best.yaml'}`.",
        "",
        "The best score is optimistic (the largest of many noisy scores on the same seeds): compare it with the "
        "default on other seeds, with the statistics protocol, before calling it better.",
        "",
    ]
    if importances:
        lines += ["| key | importance (fANOVA) |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in importances.items()] + [""]
    keys = list(settings.space)
    lines += ["| trial | state | score | " + " | ".join(keys) + " |", "|---" * (3 + len(keys)) + "|"]
    ordered = sorted(
        rows, key=lambda r: -r["value"] if r["value"] is not None and math.isfinite(r["value"]) else math.inf
    )
    for r in ordered:
        score = f"{r['value']:.4g}" if r["value"] is not None else (r["error"] or "-")
        lines.append(
            f"| {r['number']} | {r['state']} | {score} | "
            + " | ".join(str(r["values"].get(k, "")) for k in keys)
            + " |"
        )
    report = out / "tune.md"
    report.write_text("\n".join(lines) + "\n")
    tables: dict[str, dict[str, Any]] = {"algo": {}, "env": {}, "experiment": {}}
    for key, value in {**settings.overrides, **best["values"]}.items():
        section, _, name = key.partition(".")
        tables[section][name] = value
    if settings.frames is not None:
        tables["experiment"]["frames"] = settings.frames
    best_file = {"algo_name": settings.algo, "env_name": settings.task, **{k: v for k, v in tables.items() if v}}
    (out / "best.yaml").write_text(yaml.safe_dump(best_file, sort_keys=False))
    return TuneResult(out, best["values"], float(best["value"]), rows, importances, report)
