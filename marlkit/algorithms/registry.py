"""Algorithm registry: a name maps to an :class:`AlgorithmSpec`, a learner class with its config class,
the preset that defines the variant and the optional hooks of composite learners.

Algorithms from outside the package either call :func:`register` or are named by import path,
``my_pkg.my_algo:MyLearner`` (a :class:`~marlkit.learner.Learner` subclass with a ``Config`` class
attribute, and optionally ``PRESET``) or ``my_pkg.my_algo:SPEC`` (an :class:`AlgorithmSpec`).
Installed packages declare theirs under the entry-point group ``marlkit.algorithms``. The ``teams``
learner is found the same way, by import path (:data:`BY_PATH`): it reads other runs (frozen
opponents), so it sits above the config and run-reading modules that this registry serves.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marlkit.adapters.base import MultiAgentEnv
from marlkit.algorithms.mbpo import MBPO, MBPOConfig
from marlkit.algorithms.offpolicy import OffPolicy, OffPolicyConfig
from marlkit.algorithms.onpolicy import OnPolicy, OnPolicyConfig
from marlkit.algorithms.pets import PETS, PETSConfig
from marlkit.algorithms.qlearning import QLearning, QLearningConfig
from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.imports import import_attr
from marlkit.core.options import to_dict, with_overrides
from marlkit.learner import EnvInfo, Learner

LearnerFactory = Callable[[Any, EnvInfo, int], Learner]


Sides = dict[str, list[str]]
"""A game's sides: name -> the env groups it plays."""


@dataclass(frozen=True)
class AlgorithmSpec:
    learner: LearnerFactory
    """Called as ``learner(cfg, env_info, seed)``; usually the Learner subclass itself."""
    config: type
    """The frozen config dataclass (``algo.*`` options)."""
    preset: Mapping[str, Any] = field(default_factory=dict)
    """Dotted ``algo.*`` values that define this variant on top of the config's defaults."""
    summary: str = ""
    experiment: Mapping[str, Any] = field(default_factory=dict)
    """``experiment.*`` defaults of this algorithm (e.g. fewer env copies for a planner); users override them."""

    # Optional hooks of a composite learner (one that holds other learners, as ``teams`` does). A plain
    # learner leaves them unset and gets the behaviour described on each method.
    read_config: Callable[[Mapping[str, Any]], Any] | None = None
    """Flat ``algo.*`` overrides (without the ``algo.`` prefix) -> the config; see :meth:`config_from_overrides`."""
    write_config: Callable[[Any], dict[str, Any]] | None = None
    """The config -> the JSON table ``config.json`` keeps under ``algo``; see :meth:`config_to_json`."""
    sides: Callable[[Any, EnvInfo], Sides] | None = None
    """The sides of a game the learner plays (each returned per side in evaluations and reports)."""
    label: Callable[[Mapping[str, Any]], str] | None = None
    """The ``algo`` table of ``config.json`` -> the name reports give the run (default: the algorithm's)."""
    members: Callable[[Any, str, EnvInfo], tuple[str, Any, EnvInfo]] | None = None
    """``(config, member, env)`` -> the member learner's algorithm name, config and what it knows of
    ``env`` (its groups, its state): how a snapshot of one member (a checkpoint with a ``member`` key) is
    loaded on its own."""
    flags: Callable[[Sequence[str]], dict[str, Any]] | None = None
    """Turns the values of the CLI flag ``--<flag_name>`` into ``algo.*`` overrides."""
    flag_name: str = ""
    option_help: Callable[[], tuple[str, list[tuple[str, str, Any, str]]]] | None = None
    """A title and rows ``(key, type, default, doc)`` for ``marlkit train ALGO --help`` (default: the
    config's fields)."""

    def default_config(self) -> Any:
        return with_overrides(self.config(), self.preset, "algo")

    def config_from_overrides(self, overrides: Mapping[str, Any]) -> Any:
        """The preset's config with ``overrides`` (flat keys without ``algo.``) applied; unknown keys fail."""
        if self.read_config is not None:
            return self.read_config(overrides)
        return with_overrides(self.default_config(), overrides, "algo")

    def config_to_json(self, cfg: Any) -> dict[str, Any]:
        return self.write_config(cfg) if self.write_config is not None else to_dict(cfg)

    def game_sides(self, cfg: Any, env: EnvInfo) -> Sides | None:
        """The learner's sides on ``env``, or None when it plays every group as one side per group."""
        return self.sides(cfg, env) if self.sides is not None else None

    def build(self, cfg: Any, env: MultiAgentEnv | EnvInfo, seed: int) -> Learner:
        return self.learner(cfg, env if isinstance(env, EnvInfo) else EnvInfo.of(env), seed)


def _onpolicy(critic: str, schedule: str, rule: str, summary: str, **preset: Any) -> AlgorithmSpec:
    return AlgorithmSpec(
        OnPolicy, OnPolicyConfig, {"critic": critic, "schedule": schedule, "step_rule": rule, **preset}, summary
    )


# PPO with simultaneous updates: one actor per group with LayerNorms (BenchMARL shares the policy; the
# ablation in docs/ablation.md measured the two together ahead on all four of its tasks, confirmed on seeds
# 100-109), and critics that fit: 10 epochs of 4 minibatches, 8x the critic steps of 5 full-batch epochs
# (round 'updates': explained variance 0.91-0.98 instead of 0.05-0.82; on seeds 100-109 MAPPO ahead on
# private_goals and simple_spread and level on navigation and balance, IPPO ahead on private_goals and
# level on navigation, at 1.02-1.12x the wall-clock).
# HAPPO updates agents in turn and needs their own parameters; the trust-region family keeps separate
# actors (HATRPO must, and ITRPO/MATRPO compare with it).
_SHARED_PPO = {"share_actor": True, "layer_norm": True, "critic_epochs": 10, "critic_minibatches": 4}


# MADDPG-style defaults (HARL): small networks, big batches, slower actor than critic.
_DETERMINISTIC = {"actor": "deterministic", "hidden": (64, 64), "batch_size": 1024, "actor_lr": 5e-4, "critic_lr": 1e-3}
_TD3 = {"n_critics": 2, "target_noise": 0.2, "policy_delay": 2}
_SAC = {"actor": "squashed_gaussian", "n_critics": 2}


def _offpolicy(summary: str, **preset: Any) -> AlgorithmSpec:
    return AlgorithmSpec(OffPolicy, OffPolicyConfig, preset, summary)


def _qlearning(mixer: str, summary: str) -> AlgorithmSpec:
    return AlgorithmSpec(QLearning, QLearningConfig, {"mixer": mixer}, summary)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "trpo": _onpolicy("local", "simultaneous", "trust_region", "TRPO; on a multi-agent env it is ITRPO"),
    "itrpo": _onpolicy("local", "simultaneous", "trust_region", "independent TRPO, local critics V(o_i)"),
    "matrpo": _onpolicy("central", "simultaneous", "trust_region", "TRPO with a centralized critic V_i(s)"),
    "hatrpo": _onpolicy("central", "sequential", "trust_region", "heterogeneous-agent TRPO, random sequential order"),
    "ppo": _onpolicy("local", "simultaneous", "clip", "PPO-clip; on a multi-agent env it is IPPO", **_SHARED_PPO),
    "ippo": _onpolicy("local", "simultaneous", "clip", "independent PPO-clip, local critics", **_SHARED_PPO),
    "mappo": _onpolicy("central", "simultaneous", "clip", "PPO-clip with a centralized critic", **_SHARED_PPO),
    "happo": _onpolicy("central", "sequential", "clip", "heterogeneous-agent PPO, random sequential order"),
    "maddpg": _offpolicy(
        "MADDPG: deterministic actors, centralized critics Q_i(s, a_1..a_N)", critic="central", **_DETERMINISTIC
    ),
    "matd3": _offpolicy(
        "MATD3: MADDPG with twin critics, target smoothing, delayed actors", critic="central", **_DETERMINISTIC, **_TD3
    ),
    "ddpg": _offpolicy(
        "DDPG; on a multi-agent env, independent DDPG with local critics", critic="local", **_DETERMINISTIC
    ),
    "td3": _offpolicy(
        "TD3; on a multi-agent env, independent TD3 with local critics", critic="local", **_DETERMINISTIC, **_TD3
    ),
    "sac": _offpolicy("SAC; on a multi-agent env it is ISAC", critic="local", **_SAC),
    "isac": _offpolicy("independent SAC, local twin critics Q_i(o_i, a_i)", critic="local", **_SAC),
    # 128 x 128 as in the off-policy learning benchmark: with SAC's 256 x 256 a default run on navigation
    # took 3.7x the on-policy default's time (220 s against 59 s) for about the same return (2.37 vs 2.26).
    "masac": _offpolicy(
        "multi-agent SAC, centralized twin critics Q_i(s, a_1..a_N)", critic="central", hidden=(128, 128), **_SAC
    ),
    "dqn": _qlearning("none", "DQN (double Q); on a multi-agent env it is IQL"),
    "iql": _qlearning("none", "independent Q-learning, one Q_i(o_i, .) per agent on its own reward"),
    "vdn": _qlearning("vdn", "VDN: Q_tot = sum_i Q_i(o_i, a_i) on the team reward"),
    "qmix": _qlearning("qmix", "QMIX: Q_tot = monotone mixer of Q_i, weights from hypernetworks on the state"),
    # PETS's model is MBPO's less one hidden layer (Chua et al. 2018 use 3 x 200 on the smaller tasks).
    # Planning costs ~0.1 s per env step and env copy on 2 cores: one copy, 2k frames and one final
    # evaluation of 4 episodes keep a default run at about 8 minutes (docs/benchmarks.md).
    "pets": AlgorithmSpec(
        PETS,
        PETSConfig,
        {"model.hidden": (200, 200, 200)},
        "PETS: ensemble model + CEM MPC; multi-agent: centralized joint planner",
        experiment={"num_envs": 1, "frames": 2_000, "eval_every": 0, "eval_episodes": 4},
    ),
    "mbpo": AlgorithmSpec(
        MBPO, MBPOConfig, {"critic": "local"}, "MBPO: SAC on real + branched model rollouts; multi-agent: ISAC"
    ),
    "mambpo": AlgorithmSpec(
        MBPO, MBPOConfig, {"critic": "central"}, "multi-agent MBPO: MASAC on real + joint-model rollouts"
    ),
}


BY_PATH: dict[str, str] = {"teams": "marlkit.algorithms.teams:SPEC"}
"""Built-in algorithms found by import path, as a plugin's are (their modules import this registry)."""


def register(name: str, spec: AlgorithmSpec) -> None:
    """Make ``spec`` available as ``name`` to ``train``, ``compare`` and ``list`` (in this process)."""
    if name in ALGORITHMS and ALGORITHMS[name] != spec:
        raise MarlkitError(f"algorithm '{name}' is already registered; choose another name")
    ALGORITHMS[name] = spec


def from_import_path(path: str) -> AlgorithmSpec:
    """``module.path:Attr``: an AlgorithmSpec, or a Learner subclass with a ``Config`` attribute."""
    obj = import_attr(path, "algorithm")
    if isinstance(obj, AlgorithmSpec):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Learner):
        config = getattr(obj, "Config", None)
        if config is None:
            raise MarlkitError(f"learner '{path}' needs a Config class attribute (its frozen config dataclass)")
        doc = (obj.__doc__ or "").strip()
        return AlgorithmSpec(obj, config, getattr(obj, "PRESET", {}), doc.splitlines()[0] if doc else path)
    raise MarlkitError(f"'{path}' is neither a marlkit Learner subclass nor an AlgorithmSpec")


def plugins() -> dict[str, str]:
    """Algorithms that installed packages declare under the entry-point group ``marlkit.algorithms``
    (``name = "my_pkg.my_algo:MyLearner"``): name -> import path."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group="marlkit.algorithms")}


def algorithm(name: str) -> AlgorithmSpec:
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if ":" in name:
        return from_import_path(name)
    installed = {**BY_PATH, **plugins()}
    if name in installed:
        return from_import_path(installed[name])
    raise MarlkitError(
        f"unknown algorithm '{name}'.{suggest(name, [*ALGORITHMS, *installed])} "
        f"Valid: {', '.join([*ALGORITHMS, *installed])}, "
        "or module.path:LearnerClass"
    )


def available() -> dict[str, AlgorithmSpec]:
    """Every algorithm this process can name: registered, built in by import path, and installed plugins
    (a plugin that fails to import is left out: ``algorithm(name)`` says why)."""
    found = dict(ALGORITHMS)
    for name, path in {**BY_PATH, **plugins()}.items():
        try:
            found.setdefault(name, from_import_path(path))
        except MarlkitError:
            continue
    return found
