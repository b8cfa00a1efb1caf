"""Algorithms: the built-in learners and the registry that names them (:mod:`marlkit.algorithms.registry`).

Algorithms from outside the package either call :func:`register` or are named by import path,
``my_pkg.my_algo:MyLearner`` (a :class:`~marlkit.learner.Learner` subclass with a ``Config`` class
attribute, and optionally ``PRESET``) or ``my_pkg.my_algo:SPEC`` (an :class:`AlgorithmSpec`).
"""

from marlkit.algorithms.mbpo import MBPO, MBPOConfig
from marlkit.algorithms.offpolicy import OffPolicy, OffPolicyConfig
from marlkit.algorithms.onpolicy import OnPolicy, OnPolicyConfig
from marlkit.algorithms.pets import PETS, PETSConfig
from marlkit.algorithms.qlearning import QLearning, QLearningConfig
from marlkit.algorithms.registry import (
    ALGORITHMS,
    AlgorithmSpec,
    algorithm,
    available,
    from_import_path,
    plugins,
    register,
)
from marlkit.learner import Learner

__all__ = [
    "ALGORITHMS",
    "MBPO",
    "PETS",
    "AlgorithmSpec",
    "Learner",
    "MBPOConfig",
    "OffPolicy",
    "OffPolicyConfig",
    "OnPolicy",
    "OnPolicyConfig",
    "PETSConfig",
    "QLearning",
    "QLearningConfig",
    "algorithm",
    "available",
    "from_import_path",
    "plugins",
    "register",
]
