"""Algorithm registry: a name maps to a learner class and the config switches that define it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marlkit.algorithms.onpolicy import OnPolicy, OnPolicyConfig
from marlkit.errors import MarlkitError, suggest


@dataclass(frozen=True)
class AlgorithmSpec:
    learner: type
    config: type
    preset: dict[str, Any]
    summary: str


def _onpolicy(critic: str, schedule: str, rule: str, summary: str) -> AlgorithmSpec:
    return AlgorithmSpec(OnPolicy, OnPolicyConfig, {"critic": critic, "schedule": schedule, "step_rule": rule}, summary)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "trpo": _onpolicy("local", "simultaneous", "trust_region", "TRPO; on a multi-agent env it is ITRPO"),
    "itrpo": _onpolicy("local", "simultaneous", "trust_region", "independent TRPO, local critics V(o_i)"),
    "matrpo": _onpolicy("central", "simultaneous", "trust_region", "TRPO with a centralized critic V(s)"),
    "hatrpo": _onpolicy("central", "sequential", "trust_region", "heterogeneous-agent TRPO, random sequential order"),
    "ppo": _onpolicy("local", "simultaneous", "clip", "PPO-clip; on a multi-agent env it is IPPO"),
    "ippo": _onpolicy("local", "simultaneous", "clip", "independent PPO-clip, local critics"),
    "mappo": _onpolicy("central", "simultaneous", "clip", "PPO-clip with a centralized critic"),
    "happo": _onpolicy("central", "sequential", "clip", "heterogeneous-agent PPO, random sequential order"),
}


def algorithm(name: str) -> AlgorithmSpec:
    if name not in ALGORITHMS:
        raise MarlkitError(f"unknown algorithm '{name}'.{suggest(name, ALGORITHMS)} Valid: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "AlgorithmSpec", "OnPolicy", "OnPolicyConfig", "algorithm"]
