"""Optional dependencies: which extra of ``pip install 'marlkit[EXTRA]'`` brings which module.

The core (torch, tensordict, numpy, scipy, the loggers and the report) runs every algorithm; each
simulator and feature is an extra (pyproject.toml). A task or command whose package is missing fails in
one line naming the extra, never with a traceback from deep inside an adapter.
"""

from __future__ import annotations

import importlib.util

from marlkit.core.errors import MarlkitError

EXTRAS: dict[str, str] = {
    "vmas": "vmas",
    "pettingzoo": "pettingzoo",
    "gymnasium": "pettingzoo",
    "mpe2": "mpe",
    "mujoco": "mujoco",
    "gymnasium_robotics": "mamujoco",
    "lbforaging": "lbf",
    "rware": "rware",
    "optuna": "tune",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
}
"""Top-level module -> the extra that installs it."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent module that is None in sys.modules, or a broken install
        return False


def missing_error(module: str, what: str) -> MarlkitError:
    """The one-line error for ``what`` (a task, a command) whose ``module`` is not installed."""
    root = module.split(".")[0]
    extra = EXTRAS.get(root)
    fix = f"pip install 'marlkit[{extra}]'" if extra else f"pip install {root}"
    return MarlkitError(f"{what} needs the '{root}' package, which is not installed: {fix} (or marlkit[all])")


def require(module: str, what: str) -> None:
    """Raise :func:`missing_error` unless ``module`` is importable."""
    if not installed(module):
        raise missing_error(module, what)


def as_missing(err: BaseException, what: str) -> MarlkitError | None:
    """The one-line error for an ``ImportError`` of a module that an extra provides, else None."""
    if isinstance(err, ModuleNotFoundError) and err.name and err.name.split(".")[0] in EXTRAS:
        return missing_error(err.name, what)
    return None
