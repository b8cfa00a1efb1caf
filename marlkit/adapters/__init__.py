"""``make_env``: one entry point for every scenario source.

Names:
  ``vmas/<scenario>``            VMAS, natively vectorized (CPU or CUDA)
  ``mpe/<env>``                  MPE from ``mpe2``, e.g. ``mpe/simple_spread_v3``
  ``mamujoco/<robot>-<parts>``   MaMuJoCo, e.g. ``mamujoco/HalfCheetah-2x3``
  ``gym/<id>``                   Gymnasium, one group with one agent, e.g. ``gym/Pendulum-v1``
  ``lbf/<id>``                   Level-Based Foraging, e.g. ``lbf/Foraging-8x8-2p-2f-coop-v3``
  ``rware/<id>``                 Multi-Robot Warehouse, e.g. ``rware/rware-tiny-2ag-v2``
  ``envs/<name>``                a scenario file ``<name>.py`` in an ``envs/`` folder (see README)
  ``module.path:Attr``           a VMAS ``BaseScenario`` subclass or a PettingZoo env factory

Every family also takes ``hide=[i, ...]``: those entries are removed from every agent's observation
(:mod:`marlkit.adapters.hide`), which turns any task into a partially observable one.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from marlkit.adapters.base import MultiAgentEnv, canonical_device
from marlkit.errors import MarlkitError, first_line, suggest
from marlkit.extras import as_missing, installed, missing_error, require
from marlkit.imports import import_attr

FAMILIES = ("vmas", "mpe", "mamujoco", "gym", "lbf", "rware", "envs")
# The package each family needs (its extra: marlkit.extras); a scenario file's own imports are checked as
# it loads.
FAMILY_MODULES = {
    "vmas": "vmas",
    "mpe": "mpe2",
    "mamujoco": "gymnasium_robotics",
    "gym": "pettingzoo",
    "lbf": "lbforaging",
    "rware": "rware",
}
# Options consumed by marlkit itself; everything else goes to the scenario.
ADAPTER_OPTIONS = ("group_map", "pad_observations")


def make_env(
    name: str,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
    *,
    workers: int = 0,
    **env_kwargs: Any,
) -> MultiAgentEnv:
    """Create ``num_envs`` copies of scenario ``name`` behind the marlkit env contract.

    ``workers > 0`` steps the copies of a CPU simulator (PettingZoo, MPE, MaMuJoCo, Gymnasium) in that
    many processes (at most one per copy), with the same rollouts as in-process; VMAS, vectorized in
    torch, ignores it.

    Anything the simulator or a user scenario raises while building (a constructor, ``make_world``, an
    assertion on its kwargs) becomes one :class:`MarlkitError` line naming the env and the original
    error; the original stays attached as ``__cause__`` (the CLI prints it with ``MARLKIT_DEBUG=1``)."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise MarlkitError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if not isinstance(workers, int) or workers < 0:
        raise MarlkitError(f"workers must be an integer >= 0 (0: in-process), got {workers!r}")
    device = canonical_device(device)
    hide = env_kwargs.pop("hide", None)
    if hide is not None and (isinstance(hide, int) or not all(isinstance(i, int) for i in hide)):
        raise MarlkitError(f"hide must be a list of observation indices, e.g. hide=[2], got {hide!r}")
    try:
        env = _make_env(name, num_envs, device, seed, workers, env_kwargs)
    except MarlkitError:
        raise
    except Exception as err:
        missing = as_missing(err, f"env '{name}'")  # a simulator (or a scenario's import) not installed
        if missing is not None:
            raise missing from err
        cause = f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
        raise MarlkitError(
            f"env '{name}' failed to build with kwargs {env_kwargs}: {cause} (MARLKIT_DEBUG=1 shows the traceback)"
        ) from err
    if hide is None:
        return env
    from marlkit.adapters.hide import HiddenObservations

    try:
        return HiddenObservations(env, hide)
    except MarlkitError:
        env.close()
        raise


def _make_env(
    name: str, num_envs: int, device: torch.device, seed: int, workers: int, env_kwargs: dict[str, Any]
) -> MultiAgentEnv:
    if ":" in name:
        return _from_object(name, import_attr(name, "env"), num_envs, device, seed, workers, env_kwargs)
    family, _, task = name.partition("/")
    if family not in FAMILIES or not task:
        raise MarlkitError(
            f"unknown env '{name}'.{suggest(name, known_env_names())} Families: "
            f"{', '.join(f + '/<name>' for f in FAMILIES)}, or module.path:Attr"
        )
    if family in FAMILY_MODULES:
        require(FAMILY_MODULES[family], f"env '{name}'")
    if family == "vmas":
        from marlkit.adapters.vmas import VmasEnv

        return VmasEnv(task, num_envs, device, seed, **env_kwargs)
    if family == "envs":
        return _from_object(name, _user_scenario(task), num_envs, device, seed, workers, env_kwargs)
    options = {k: env_kwargs.pop(k) for k in ADAPTER_OPTIONS if k in env_kwargs}
    return _pettingzoo(name, _factory(family, task, env_kwargs), num_envs, device, seed, workers, options)


def _factory(family: str, task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    if family == "mpe":
        valid = mpe_env_names()
        if task not in valid:
            raise MarlkitError(f"unknown MPE env '{task}'.{suggest(task, valid)} Valid: {', '.join(valid)}")
        module = importlib.import_module(f"mpe2.{task}")
        _check_kwargs(f"mpe/{task}", kwargs, module.raw_env)
        return partial(module.parallel_env, **kwargs)
    if family == "mamujoco":
        from gymnasium_robotics import mamujoco_v1

        robot, _, partition = task.partition("-")
        _check_kwargs(f"mamujoco/{task}", kwargs, mamujoco_v1.parallel_env)
        return partial(mamujoco_v1.parallel_env, robot, partition or None, **kwargs)
    if family in ("lbf", "rware"):
        return _tuple_agents(family, task, kwargs)
    # gym
    import gymnasium as gym

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


def _tuple_agents(family: str, task: str, kwargs: dict[str, Any]) -> Callable[[], Any]:
    import gymnasium as gym

    from marlkit.adapters.tuple_agents import PACKAGES, TERMINAL, TupleAgentsAsParallel

    importlib.import_module(PACKAGES[family])  # registers the ids (installed: make_env checked)
    valid = sorted(k for k in gym.registry if k.startswith("Foraging" if family == "lbf" else "rware"))
    if task not in valid:
        raise MarlkitError(f"unknown {family} id '{task}'.{suggest(task, valid)} e.g. {', '.join(valid[:4])}")

    def make() -> TupleAgentsAsParallel:
        try:
            return TupleAgentsAsParallel(gym.make(task, disable_env_checker=True, **kwargs), TERMINAL[family])
        except TypeError as err:
            raise MarlkitError(f"bad env kwargs for '{family}/{task}': {err}") from None

    make()  # fail on bad kwargs now, not inside the copies loop
    return make


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


def _pettingzoo(
    name: str,
    factory: Callable[[], Any],
    num_envs: int,
    device: torch.device,
    seed: int,
    workers: int,
    options: dict[str, Any],
) -> MultiAgentEnv:
    from marlkit.adapters.pettingzoo import PettingZooEnv

    return PettingZooEnv(factory, num_envs, device, seed, name=name, workers=workers, **options)


def _from_object(
    name: str, obj: Any, num_envs: int, device: torch.device, seed: int, workers: int, kwargs: dict[str, Any]
) -> MultiAgentEnv:
    """A VMAS scenario class, or a factory of PettingZoo envs."""
    if installed("vmas") and _is_vmas_scenario(obj):  # without VMAS, no class can be a VMAS scenario
        from marlkit.adapters.vmas import VmasEnv

        return VmasEnv(obj(), num_envs, device, seed, name=name, **kwargs)
    if not callable(obj):
        raise MarlkitError(f"'{name}' is neither a VMAS BaseScenario subclass nor a PettingZoo env factory")
    options = {k: kwargs.pop(k) for k in ADAPTER_OPTIONS if k in kwargs}
    _check_kwargs(name, kwargs, obj)
    require("pettingzoo", f"env '{name}' (a PettingZoo env factory)")
    return _pettingzoo(name, partial(obj, **kwargs), num_envs, device, seed, workers, options)


def _is_vmas_scenario(obj: Any) -> bool:
    from vmas.simulator.scenario import BaseScenario

    return inspect.isclass(obj) and issubclass(obj, BaseScenario)


# ------------------------------------------------------------- user scenarios
SCENARIO_ATTRS = ("Scenario", "parallel_env")


BUNDLED = Path(__file__).resolve().parents[1] / "envs"
"""The scenarios that ship inside the package (``marlkit/envs``)."""


def scenario_dirs() -> list[Path]:
    """Folders searched for ``envs/<name>.py``, first match wins: $MARLKIT_ENVS_PATH, ./envs (your own
    scenarios), then the bundled ``marlkit/envs``, which never depends on the current folder."""
    dirs = [Path(p) for p in os.environ.get("MARLKIT_ENVS_PATH", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "envs", BUNDLED]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in unique:
            unique.append(d.resolve())
    return unique


def user_scenarios() -> dict[str, Path]:
    """Short name -> file for every scenario file found (the first folder wins on a clash)."""
    found: dict[str, Path] = {}
    for d in scenario_dirs():
        for path in sorted(d.glob("*.py")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def _user_scenario(task: str) -> Any:
    scenarios = user_scenarios()
    if task not in scenarios:
        searched = [str(Path(p)) for p in os.environ.get("MARLKIT_ENVS_PATH", "").split(os.pathsep) if p]
        searched += [str(Path.cwd() / "envs"), str(BUNDLED)]
        raise MarlkitError(
            f"unknown scenario 'envs/{task}'.{suggest(task, scenarios)} Searched {', '.join(searched)} "
            f"(MARLKIT_ENVS_PATH, ./envs, the bundled ones) and found {', '.join(sorted(scenarios)) or 'none'}; "
            f"put {task}.py in ./envs or a folder on MARLKIT_ENVS_PATH"
        )
    module = _load_file(scenarios[task])
    for attr in SCENARIO_ATTRS:
        if hasattr(module, attr):
            return getattr(module, attr)
    raise MarlkitError(f"scenario file {scenarios[task]} defines neither {' nor '.join(SCENARIO_ATTRS)}")


def _load_file(path: Path) -> ModuleType:
    module_name = f"marlkit_user_envs.{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a failed load (e.g. its simulator missing) is retried next time
        raise
    return module


# ---------------------------------------------------------------- listings
def mpe_env_names() -> list[str]:
    """The MPE envs of ``mpe2``; none where it is not installed."""
    if not installed("mpe2"):
        return []
    import mpe2

    return sorted(m.name for m in pkgutil.iter_modules(mpe2.__path__) if m.name.endswith(("_v1", "_v3", "_v4")))


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


def known_env_names() -> list[str]:
    from marlkit.adapters.vmas import vmas_scenario_names

    return (
        [f"vmas/{s}" for s in vmas_scenario_names()]
        + [f"mpe/{s}" for s in mpe_env_names()]
        + [f"mamujoco/{s}" for s in MAMUJOCO_EXAMPLES]
        + [f"envs/{s}" for s in user_scenarios()]
        + ["gym/Pendulum-v1", "gym/CartPole-v1", "gym/HalfCheetah-v5"]
        + ["lbf/Foraging-8x8-2p-2f-coop-v3", "rware/rware-tiny-2ag-v2"]
    )
