"""marlkit: multi-agent RL over agent groups and batched TensorDicts.

The Python API (README: "Use marlkit from Python"): :func:`train`, :func:`resume`, :func:`compare` and
:func:`report` and :func:`tune` run experiments and return their results as data; :func:`load` gives a finished run's
:class:`Policy`, which :func:`export` writes as TorchScript or ONNX; :func:`make_env` builds any task.
"""

from marlkit import keys
from marlkit.adapters import make_env
from marlkit.adapters.base import MultiAgentEnv
from marlkit.analysis.report import ReportTables
from marlkit.analysis.tune import TuneResult, tune
from marlkit.api import CompareResult, TrainResult, compare, report, resume, train
from marlkit.core.errors import MarlkitError
from marlkit.core.specs import Box, Discrete, GroupSpec
from marlkit.deploy import Policy, export, load

__all__ = [
    "Box",
    "CompareResult",
    "Discrete",
    "GroupSpec",
    "MarlkitError",
    "MultiAgentEnv",
    "Policy",
    "ReportTables",
    "TrainResult",
    "TuneResult",
    "compare",
    "export",
    "keys",
    "load",
    "make_env",
    "report",
    "resume",
    "train",
    "tune",
]
__version__ = "0.1.0"
