"""Scenario files: ``envs/<name>`` is a file ``<name>.py`` found in $MARLKIT_ENVS_PATH, ./envs or the
bundled ``marlkit/envs``, defining a VMAS ``Scenario`` class or a PettingZoo ``parallel_env`` factory.

A file may also state what marlkit should know of its task, as module attributes: ``GAME = True``
(competitive or mixed: reports give per-side results and cross-play) and ``DECISIVE = True`` (the
side with the higher episode return wins: evaluations give win rates).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from marlkit.core.errors import MarlkitError, suggest

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


def scenario_module(task: str) -> ModuleType:
    """The module of scenario file ``task`` (loaded once per process); one line where there is none."""
    scenarios = user_scenarios()
    if task not in scenarios:
        searched = [str(Path(p)) for p in os.environ.get("MARLKIT_ENVS_PATH", "").split(os.pathsep) if p]
        searched += [str(Path.cwd() / "envs"), str(BUNDLED)]
        raise MarlkitError(
            f"unknown scenario 'envs/{task}'.{suggest(task, scenarios)} Searched {', '.join(searched)} "
            f"(MARLKIT_ENVS_PATH, ./envs, the bundled ones) and found {', '.join(sorted(scenarios)) or 'none'}; "
            f"put {task}.py in ./envs or a folder on MARLKIT_ENVS_PATH"
        )
    return _load_file(scenarios[task])


def user_scenario(task: str) -> Any:
    """The ``Scenario`` class or ``parallel_env`` factory of scenario file ``task``."""
    module = scenario_module(task)
    for attr in SCENARIO_ATTRS:
        if hasattr(module, attr):
            return getattr(module, attr)
    raise MarlkitError(f"scenario file {module.__file__} defines neither {' nor '.join(SCENARIO_ATTRS)}")


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
