"""Algorithm registry: a name maps to a learner class and the config switches that define it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marlkit.adapters.base import MultiAgentEnv
from marlkit.algorithms.mbpo import MBPO, MBPOConfig
from marlkit.algorithms.offpolicy import OffPolicy, OffPolicyConfig
from marlkit.algorithms.onpolicy import OnPolicy, OnPolicyConfig
from marlkit.algorithms.pets import PETS, PETSConfig
from marlkit.errors import MarlkitError, suggest


@dataclass(frozen=True)
class AlgorithmSpec:
    learner: type
    config: type
    preset: dict[str, Any]
    summary: str

    def build(self, cfg: Any, env: MultiAgentEnv, seed: int) -> Any:
        """The learner for ``env``; model-based learners also get the task's name (for its known
        termination function), where its global state comes from and, for known reward functions,
        the simulator's scenario object."""
        needs_facts = getattr(self.learner, "needs_env_facts", False)
        facts: dict[str, Any] = {"env_name": env.name, "state_source": env.state_source} if needs_facts else {}
        if getattr(self.learner, "needs_scenario", False):
            facts["scenario"] = env.scenario
        return self.learner(cfg, env.groups, env.state_dim, seed=seed, **facts)


def _onpolicy(critic: str, schedule: str, rule: str, summary: str) -> AlgorithmSpec:
    return AlgorithmSpec(OnPolicy, OnPolicyConfig, {"critic": critic, "schedule": schedule, "step_rule": rule}, summary)


# MADDPG-style defaults (HARL): small networks, big batches, slower actor than critic.
_DETERMINISTIC = {"actor": "deterministic", "hidden": (64, 64), "batch_size": 1024, "actor_lr": 5e-4, "critic_lr": 1e-3}
_TD3 = {"n_critics": 2, "target_noise": 0.2, "policy_delay": 2}
_SAC = {"actor": "squashed_gaussian", "n_critics": 2}


def _offpolicy(summary: str, **preset: Any) -> AlgorithmSpec:
    return AlgorithmSpec(OffPolicy, OffPolicyConfig, preset, summary)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "trpo": _onpolicy("local", "simultaneous", "trust_region", "TRPO; on a multi-agent env it is ITRPO"),
    "itrpo": _onpolicy("local", "simultaneous", "trust_region", "independent TRPO, local critics V(o_i)"),
    "matrpo": _onpolicy("central", "simultaneous", "trust_region", "TRPO with a centralized critic V(s)"),
    "hatrpo": _onpolicy("central", "sequential", "trust_region", "heterogeneous-agent TRPO, random sequential order"),
    "ppo": _onpolicy("local", "simultaneous", "clip", "PPO-clip; on a multi-agent env it is IPPO"),
    "ippo": _onpolicy("local", "simultaneous", "clip", "independent PPO-clip, local critics"),
    "mappo": _onpolicy("central", "simultaneous", "clip", "PPO-clip with a centralized critic"),
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
    "masac": _offpolicy("multi-agent SAC, centralized twin critics Q_i(s, a_1..a_N)", critic="central", **_SAC),
    "pets": AlgorithmSpec(
        PETS, PETSConfig, {}, "PETS: ensemble model + CEM MPC; multi-agent: centralized joint planner"
    ),
    "mbpo": AlgorithmSpec(
        MBPO, MBPOConfig, {"critic": "local"}, "MBPO: SAC on real + branched model rollouts; multi-agent: ISAC"
    ),
    "mambpo": AlgorithmSpec(
        MBPO, MBPOConfig, {"critic": "central"}, "multi-agent MBPO: MASAC on real + joint-model rollouts"
    ),
}


def algorithm(name: str) -> AlgorithmSpec:
    if name not in ALGORITHMS:
        raise MarlkitError(f"unknown algorithm '{name}'.{suggest(name, ALGORITHMS)} Valid: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


__all__ = [
    "ALGORITHMS",
    "MBPO",
    "AlgorithmSpec",
    "MBPOConfig",
    "OffPolicy",
    "OffPolicyConfig",
    "OnPolicy",
    "OnPolicyConfig",
    "algorithm",
]
