"""Run configs: what one training run is made of (algorithm, env, experiment settings), and config files.

``build_config(algo, env, {"algo.model.lr": 1e-3, "env.n_agents": 3, "experiment.frames": 1e5})``
resolves overrides on top of the algorithm's preset; ``RunConfig.to_json`` is a run's ``config.json``
(format 2: nested parts are nested tables) and ``RunConfig.from_json`` reads it back, including the
flat format 1 written before configs were nested.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marlkit.adapters.base import canonical_device
from marlkit.algorithms.registry import algorithm
from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.options import KeyFn, flatten, leaf_keys, option, require, to_dict, with_overrides

SECTIONS = ("algo", "env", "experiment")
# Below this many copies per slice, the step's round trip to the workers outweighs the parallel work
# (docs/benchmarks.md, "Env worker processes").
AUTO_WORKERS_MIN_COPIES = 32
CONFIG_FORMAT = 2  # 1: flat algo tables (before nested configs); 2: nested tables


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
    env_workers: int = option(
        -1,
        "processes stepping the copies of a CPU simulator (PettingZoo, MPE, MaMuJoCo, Gymnasium); VMAS ignores it. "
        "0: in-process; N: N processes step slices while the run steps one itself; "
        "-1: auto (the run's torch threads minus one, from 32 copies per slice on, else 0)",
    )
    checkpoint_every: int = option(0, "frames between checkpoints, each starting new episodes (0: a tenth of the run)")
    keep_checkpoints: int = option(3, "periodic checkpoints kept; older ones are deleted")
    save_replay: bool = option(True, "include the off-policy replay buffer in checkpoints")
    tensorboard: bool = option(True, "write TensorBoard event files to RUN_DIR/tensorboard")
    wandb: bool = option(False, "also log to Weights & Biases (needs `pip install wandb`)")
    wandb_project: str = option("marlkit", "Weights & Biases project name")

    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(self.frames // 10, 1)

    def env_worker_count(self, threads: int) -> int:
        """Worker processes for the training env, given the run's torch threads (its share of the cores:
        a sweep running runs side by side gives each fewer). Rollouts are the same for every count."""
        if self.env_workers >= 0:
            return self.env_workers
        return threads - 1 if threads >= 2 and self.num_envs >= AUTO_WORKERS_MIN_COPIES * threads else 0

    def validate(self, key: KeyFn) -> None:
        for name in ("frames", "num_envs", "eval_episodes", "keep_checkpoints", "eval_max_steps"):
            require(getattr(self, name) >= 1, f"{key(name)} must be > 0, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "torch_threads"):
            require(getattr(self, name) >= 0, f"{key(name)} must be >= 0, got {getattr(self, name)}")
        require(self.env_workers >= -1, f"{key('env_workers')} must be >= 0, or -1 for auto, got {self.env_workers}")
        require_seed(self.seed, key("seed"))
        try:
            canonical_device(self.device, available=False)  # make_env checks that this machine has it
        except MarlkitError as err:
            raise MarlkitError(f"{key('device')}: {err}") from None


def require_seed(seed: int, key: str) -> None:
    """Every random source is seeded from one seed, and numpy takes only [0, 2**32 - 1]."""
    require(0 <= seed < 2**32, f"{key} must be in [0, 2**32 - 1] (numpy's seed range), got {seed}")


@dataclass(frozen=True)
class RunConfig:
    algo_name: str
    env_name: str
    experiment: ExperimentConfig
    algo: Any
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "algo_name": self.algo_name,
            "env_name": self.env_name,
            "experiment": to_dict(self.experiment),
            "algo": algorithm(self.algo_name).config_to_json(self.algo),
            "env": dict(self.env_kwargs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        version = data.get("format", 1)
        algo = flatten(data["algo"])
        if version == 1:
            algo = _upgrade_format_1(data["algo_name"], algo)
        elif version != CONFIG_FORMAT:
            raise MarlkitError(f"config format {version!r} is unknown; this marlkit reads formats 1 to {CONFIG_FORMAT}")
        return build_config(
            data["algo_name"],
            data["env_name"],
            {
                **{f"experiment.{k}": v for k, v in data["experiment"].items()},
                **{f"algo.{k}": v for k, v in algo.items()},
                **{f"env.{k}": v for k, v in data["env"].items()},
            },
        )


def _upgrade_format_1(algo_name: str, algo: dict[str, Any]) -> dict[str, Any]:
    """Flat keys of a format-1 ``config.json`` renamed to their nested homes."""
    config = algorithm(algo_name).config
    renames: dict[str, str] = getattr(config, "LEGACY_KEYS", {})
    valid = set(leaf_keys(config()))
    out = {}
    for key, value in algo.items():
        new = renames.get(key, key)
        if new not in valid:
            raise MarlkitError(
                f"config.json format 1 has key 'algo.{key}', which format {CONFIG_FORMAT} of {algo_name} "
                "does not know; re-create the run with this marlkit"
            )
        out[new] = value
    return out


EXAMPLE = {"algorithm": "mappo", "env": "vmas/navigation"}


def build_config(algo_name: str, env_name: str, overrides: Mapping[str, Any]) -> RunConfig:
    """Resolve ``algo.*``, ``env.*`` and ``experiment.*`` overrides on top of the algorithm's preset."""
    for what, value in (("algorithm", algo_name), ("env", env_name)):
        if not isinstance(value, str):
            raise MarlkitError(f"the {what} name must be a string such as {EXAMPLE[what]!r}, got {value!r}")
    if not isinstance(overrides, Mapping):
        raise MarlkitError(f"overrides must be a mapping such as {{'algo.lr': 1e-3}}, got {type(overrides).__name__}")
    spec = algorithm(algo_name)
    by_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise MarlkitError(f"override keys are strings such as 'algo.lr', got {key!r}")
        section, dot, name = key.partition(".")
        if not dot or section not in SECTIONS:
            home = (
                "experiment"
                if key in leaf_keys(ExperimentConfig())
                else "algo"
                if key in leaf_keys(spec.config())
                else "env"
            )
            raise MarlkitError(
                f"override '{key}' needs a section prefix ({', '.join(s + '.' for s in SECTIONS)}); "
                f"did you mean '{home}.{key}'?"
            )
        by_section[section][name] = value  # a nested table (algo.model={lr: ...}) is flattened by with_overrides
    algo_cfg = spec.config_from_overrides(by_section["algo"])
    exp_cfg = with_overrides(ExperimentConfig(), {**spec.experiment, **by_section["experiment"]}, "experiment")
    return RunConfig(algo_name, env_name, exp_cfg, algo_cfg, by_section["env"])


def load_config_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A YAML, TOML or JSON file -> ``(top-level names, flat "section.key" overrides)``.

    Layout: optional top-level names (``algo_name``, ``env_name``; for sweeps ``algos``, ``envs``,
    ``seeds``, ``frames``) and the tables ``algo``, ``env`` and ``experiment`` (nested parts as nested
    tables or dotted keys). A run's own ``config.json`` has this layout, so ``--config RUN/config.json``
    re-creates that run."""

    file = Path(path)
    if not file.exists():
        raise MarlkitError(f"config file {path} does not exist")
    if not file.is_file():
        raise MarlkitError(f"config file {path} is not a file; give a .yaml, .yml, .toml or .json file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MarlkitError(f"config file {path} is not UTF-8 text") from None
    try:
        if file.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif file.suffix == ".toml":
            data = tomllib.loads(text)
        elif file.suffix == ".json":
            data = json.loads(text)
        else:
            raise MarlkitError(f"config file {path} must end in .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise MarlkitError(f"cannot parse {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MarlkitError(f"config file {path} must hold a mapping at the top level")
    version = data.pop("format", CONFIG_FORMAT)
    names = {k: v for k, v in data.items() if k not in SECTIONS}
    valid = ("algo_name", "env_name", "algos", "envs", "seeds", "frames")
    for key in names:
        if key not in valid:
            raise MarlkitError(
                f"unknown top-level key '{key}' in {path}.{suggest(key, [*valid, *SECTIONS])} "
                f"Valid: {', '.join([*valid, *SECTIONS])}"
            )
    _check_names(names, path)
    tables = {}
    for section in SECTIONS:
        table = data.get(section) or {}
        if not isinstance(table, dict):
            raise MarlkitError(f"'{section}' in {path} must be a table of key = value")
        tables[section] = flatten(table) if section != "env" else dict(table)
    if version == 1 and "algo_name" in names:  # an old run's config.json
        tables["algo"] = _upgrade_format_1(names["algo_name"], tables["algo"])
    overrides = {f"{section}.{k}": v for section, table in tables.items() for k, v in table.items()}
    return names, overrides


def _check_names(names: dict[str, Any], path: str) -> None:
    """Top-level names of a config file have fixed types: say which one is off, and what it should be."""

    def text(v: Any) -> bool:
        return isinstance(v, str) and bool(v)

    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def listed(v: Any, ok: Any) -> bool:
        return (isinstance(v, list) and bool(v) and all(ok(x) for x in v)) or ok(v)

    kinds = {
        "algo_name": (text, "a string such as 'hatrpo'"),
        "env_name": (text, "a string such as 'vmas/navigation'"),
        "algos": (lambda v: listed(v, text), "a list of algorithm names"),
        "envs": (lambda v: listed(v, text), "a list of env names"),
        "seeds": (lambda v: listed(v, integer), "a list of integers"),
        "frames": (lambda v: integer(v) and v > 0, "a positive integer"),
    }
    for key, value in names.items():
        ok, expected = kinds[key]
        if not ok(value):
            raise MarlkitError(f"'{key}' in {path} must be {expected}, got {value!r}")
