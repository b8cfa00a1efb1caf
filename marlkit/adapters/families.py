"""One record per env family: how its tasks are built, which names it knows, and what marlkit knows of
each task (a game? decided by the returns? a known reward or termination function for model rollouts?).

Every lookup of task knowledge by name goes through :func:`task_facts`; nothing else in marlkit keeps
lists of task names. A scenario file states its own facts (:mod:`marlkit.adapters.scenarios`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from marlkit.adapters.base import MultiAgentEnv
from marlkit.adapters.facts import TaskFacts, TerminationFn
from marlkit.adapters.scenarios import scenario_module, user_scenario, user_scenarios
from marlkit.adapters.vmas import VMAS_TASKS, VmasEnv, vmas_scenario_names
from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.extras import installed, missing_error, require
from marlkit.core.imports import import_attr

# Options consumed by marlkit itself; everything else goes to the scenario.
ADAPTER_OPTIONS = ("group_map", "pad_observations")

Build = Callable[[str, int, torch.device, int, int, dict[str, Any]], MultiAgentEnv]
"""``build(task, num_envs, device, seed, workers, kwargs)``."""


@dataclass(frozen=True)
class Family:
    name: str
    build: Build
    names: Callable[[], list[str]]
    """Task names for listings and close-match suggestions (examples where the family has no list)."""
    module: str | None = None
    """The package the family needs (its extra, :mod:`marlkit.core.extras`)."""
    tasks: Mapping[str, TaskFacts] = field(default_factory=dict)
    facts: Callable[[str], TaskFacts] | None = None
    """Facts read from the task itself (scenario files), instead of ``tasks``."""
    listing: str = ""
    """What ``marlkit list`` says before the names where they are examples, not the whole family."""

    def task_facts(self, task: str) -> TaskFacts:
        return self.facts(task) if self.facts is not None else self.tasks.get(task, TaskFacts())


# ------------------------------------------------------------------ PettingZoo and its wrappings
def _pettingzoo(
    name: str, factory: Callable[[], Any], num_envs: int, device: torch.device, seed: int, workers: int,
    options: dict[str, Any],
) -> MultiAgentEnv:  # fmt: skip
    from marlkit.adapters.pettingzoo import PettingZooEnv  # needs pettingzoo (an extra)

    return PettingZooEnv(factory, num_envs, device, seed, name=name, workers=workers, **options)


def _check_kwargs(label: str, kwargs: dict[str, Any], fn: Callable) -> None:
    """Fail naming the kwargs ``fn`` does not accept; a ``**kwargs`` catch-all accepts everything."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise MarlkitError(
            f"unknown env kwargs for '{label}': {unknown}.{suggest(unknown[0], params)} Valid: {list(params)}"
        )


def _wrapped(family: str, factory: Callable[[str, dict[str, Any]], Callable[[], Any]]) -> Build:
    """A family of PettingZoo envs made by ``factory(task, kwargs)``."""

    def build(task: str, num_envs: int, device: torch.device, seed: int, workers: int, kwargs: dict) -> MultiAgentEnv:
        options = {k: kwargs.pop(k) for k in ADAPTER_OPTIONS if k in kwargs}
        return _pettingzoo(f"{family}/{task}", factory(task, kwargs), num_envs, device, seed, workers, options)

    return build


def from_object(
    name: str, obj: Any, num_envs: int, device: torch.device, seed: int, workers: int, kwargs: dict[str, Any]
) -> MultiAgentEnv:
    """A VMAS scenario class, or a factory of PettingZoo envs."""
    if installed("vmas") and _is_vmas_scenario(obj):  # without VMAS, no class can be a VMAS scenario
        return VmasEnv(obj(), num_envs, device, seed, name=name, **kwargs)
    if not callable(obj):
        raise MarlkitError(f"'{name}' is neither a VMAS BaseScenario subclass nor a PettingZoo env factory")
    options = {k: kwargs.pop(k) for k in ADAPTER_OPTIONS if k in kwargs}
    _check_kwargs(name, kwargs, obj)
    require("pettingzoo", f"env '{name}' (a PettingZoo env factory)")
    return _pettingzoo(name, partial(obj, **kwargs), num_envs, device, seed, workers, options)


def _is_vmas_scenario(obj: Any) -> bool:
    from vmas.simulator.scenario import BaseScenario  # needs vmas (an extra)

    return inspect.isclass(obj) and issubclass(obj, BaseScenario)


def _vmas(task: str, num_envs: int, device: torch.device, seed: int, workers: int, kwargs: dict) -> MultiAgentEnv:
    return VmasEnv(task, num_envs, device, seed, **kwargs)


def _envs(task: str, num_envs: int, device: torch.device, seed: int, workers: int, kwargs: dict) -> MultiAgentEnv:
    return from_object(f"envs/{task}", user_scenario(task), num_envs, device, seed, workers, kwargs)


def _scenario_facts(task: str) -> TaskFacts:
    try:
        module = scenario_module(task)
    except Exception:  # no such file, or its simulator missing: nothing known
        return TaskFacts()
    return TaskFacts(game=bool(getattr(module, "GAME", False)), decisive=bool(getattr(module, "DECISIVE", False)))


# -------------------------------------------------------------------------------------- MPE
def mpe_env_names() -> list[str]:
    """The MPE envs of ``mpe2``; none where it is not installed."""
    if not installed("mpe2"):
        return []
    import mpe2  # needs mpe2 (an extra)

    return sorted(m.name for m in pkgutil.iter_modules(mpe2.__path__) if m.name.endswith(("_v1", "_v3", "_v4")))


def _mpe(task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    valid = mpe_env_names()
    if task not in valid:
        raise MarlkitError(f"unknown MPE env '{task}'.{suggest(task, valid)} Valid: {', '.join(valid)}")
    module = importlib.import_module(f"mpe2.{task}")
    _check_kwargs(f"mpe/{task}", kwargs, module.raw_env)
    return partial(module.parallel_env, **kwargs)


MPE_GAMES = ("simple_tag_v3", "simple_adversary_v3", "simple_push_v3", "simple_crypto_v3", "simple_world_comm_v3")

# --------------------------------------------------------------------------------- MaMuJoCo
MAMUJOCO_EXAMPLES = (
    "HalfCheetah-2x3",
    "HalfCheetah-6x1",
    "Walker2d-2x3",
    "Hopper-3x1",
    "Ant-2x4",
    "Ant-4x2",
    "Humanoid-9|8",
    "Swimmer-2x1",
    "Reacher-2x1",
)


def _mamujoco(task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    from gymnasium_robotics import mamujoco_v1  # needs gymnasium-robotics (an extra)

    robot, _, partition = task.partition("-")
    _check_kwargs(f"mamujoco/{task}", kwargs, mamujoco_v1.parallel_env)
    return partial(mamujoco_v1.parallel_env, robot, partition or None, **kwargs)


# ------------------------------------------------------------------------------- Gymnasium
def _gym(task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    import gymnasium as gym  # needs gymnasium (an extra)

    from marlkit.adapters.pettingzoo import GymAsParallel

    if task not in gym.registry:
        raise MarlkitError(f"unknown Gymnasium id '{task}'.{suggest(task, list(gym.registry))}")

    def make() -> GymAsParallel:
        try:
            return GymAsParallel(gym.make(task, **kwargs))
        except TypeError as err:
            raise MarlkitError(f"bad env kwargs for 'gym/{task}': {err}") from None
        except gym.error.DependencyNotInstalled as err:  # e.g. MuJoCo tasks without mujoco
            raise missing_error("mujoco" if "mujoco" in str(err).lower() else task, f"env 'gym/{task}'") from None

    make()  # fail on bad kwargs now, not inside the copies loop
    return make


def never(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def _unfinite(next_obs: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(next_obs).all(-1)


def inverted_pendulum(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [cart position, pole angle, velocities]; the episode ends when |angle| > 0.2.
    return _unfinite(next_obs) | (next_obs[..., 1].abs() > 0.2)


def hopper(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, angle, joint angles, velocities]; healthy: |state[1:]| < 100, z > 0.7, |angle| < 0.2.
    healthy = (next_obs[..., 1:].abs() < 100).all(-1) & (next_obs[..., 0] > 0.7) & (next_obs[..., 1].abs() < 0.2)
    return _unfinite(next_obs) | ~healthy


def walker2d(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, angle, ...]; healthy: 0.8 < z < 2.0 and |angle| < 1.
    z, angle = next_obs[..., 0], next_obs[..., 1]
    return _unfinite(next_obs) | ~((z > 0.8) & (z < 2.0) & (angle.abs() < 1.0))


def ant(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [z, ...] (x and y excluded); healthy: 0.2 <= z <= 1.0.
    z = next_obs[..., 0]
    return _unfinite(next_obs) | ~((z >= 0.2) & (z <= 1.0))


def mountain_car(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    # Observation [position, velocity]; the goal is position >= 0.45 with velocity >= 0.
    return (next_obs[..., 0] >= 0.45) & (next_obs[..., 1] >= 0)


GYM_TERMINATIONS: dict[str, TerminationFn] = {
    "Pendulum-v1": never,
    "MountainCarContinuous-v0": mountain_car,
    **{f"InvertedPendulum-v{v}": inverted_pendulum for v in (4, 5)},
    **{f"Hopper-v{v}": hopper for v in (4, 5)},
    **{f"Walker2d-v{v}": walker2d for v in (4, 5)},
    **{f"Ant-v{v}": ant for v in (4, 5)},
    **{f"{task}-v{v}": never for task in ("HalfCheetah", "Swimmer", "Reacher") for v in (4, 5)},
}


# ------------------------------------------------------------------------------ LBF, RWARE
def lbf_terminal(env: Any) -> bool:
    """All food collected (the other ending of LBF is its step limit)."""
    return int(env.field.sum()) == 0


def rware_terminal(env: Any) -> bool:
    """Never: a warehouse episode only ends by its step or inactivity limits."""
    return False


def _tuple_agents(family: str, package: str, prefix: str, terminal: Callable[[Any], bool]) -> Build:
    def factory(task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
        import gymnasium as gym  # needs gymnasium and the family's package (extras)

        from marlkit.adapters.tuple_agents import TupleAgentsAsParallel

        importlib.import_module(package)  # registers the ids (installed: make_env checked)
        valid = sorted(k for k in gym.registry if k.startswith(prefix))
        if task not in valid:
            raise MarlkitError(f"unknown {family} id '{task}'.{suggest(task, valid)} e.g. {', '.join(valid[:4])}")

        def make() -> TupleAgentsAsParallel:
            try:
                return TupleAgentsAsParallel(gym.make(task, disable_env_checker=True, **kwargs), terminal)
            except TypeError as err:
                raise MarlkitError(f"bad env kwargs for '{family}/{task}': {err}") from None

        make()  # fail on bad kwargs now, not inside the copies loop
        return make

    return _wrapped(family, factory)


def _examples(*names: str) -> Callable[[], list[str]]:
    return lambda: list(names)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("vmas", _vmas, vmas_scenario_names, "vmas", VMAS_TASKS),
        Family("mpe", _wrapped("mpe", _mpe), mpe_env_names, "mpe2", {t: TaskFacts(game=True) for t in MPE_GAMES}),
        Family(
            "mamujoco",
            _wrapped("mamujoco", _mamujoco),
            _examples(*MAMUJOCO_EXAMPLES),
            "gymnasium_robotics",
            listing="any robot and partition, e.g. ",
        ),
        Family(
            "gym",
            _wrapped("gym", _gym),
            _examples("Pendulum-v1", "CartPole-v1", "HalfCheetah-v5"),
            "pettingzoo",
            {t: TaskFacts(termination=fn) for t, fn in GYM_TERMINATIONS.items()},
            listing="any registered Gymnasium id, e.g. ",
        ),
        Family(
            "lbf",
            _tuple_agents("lbf", "lbforaging", "Foraging", lbf_terminal),
            _examples("Foraging-8x8-2p-2f-coop-v3"),
            "lbforaging",
            listing="any registered Foraging id, e.g. ",
        ),
        Family(
            "rware",
            _tuple_agents("rware", "rware", "rware", rware_terminal),
            _examples("rware-tiny-2ag-v2"),
            "rware",
            listing="any registered rware id, e.g. ",
        ),
        Family("envs", _envs, lambda: list(user_scenarios()), facts=_scenario_facts),
    )
}


def task_facts(name: str) -> TaskFacts:
    """What marlkit knows of task ``name`` (``vmas/simple_tag``, ``envs/duel``, ``pkg.mod:Attr``); an
    unknown name knows nothing."""
    if ":" in name:  # an import path: its module may state GAME and DECISIVE as a scenario file does
        try:
            obj = import_attr(name, "env")
        except MarlkitError:
            return TaskFacts()
        module = inspect.getmodule(obj)
        return TaskFacts(game=bool(getattr(module, "GAME", False)), decisive=bool(getattr(module, "DECISIVE", False)))
    family, _, task = name.partition("/")
    return FAMILIES[family].task_facts(task) if family in FAMILIES else TaskFacts()


def known_env_names() -> list[str]:
    return [f"{name}/{task}" for name, family in FAMILIES.items() for task in family.names()]
