"""Learning benchmarks of the trust-region family: algos x seeds on one task, median and spread.

Each preset fixes the task, budget and config (every override is printed into docs/benchmarks.md).
Runs go to ``runs/bench/<preset>/<algo>-s<seed>`` and are skipped if already finished, so an
interrupted benchmark continues where it stopped.

    python experiments/benchmarks/learning/onpolicy_learning.py pendulum
    python experiments/benchmarks/learning/onpolicy_learning.py navigation
    python experiments/benchmarks/learning/onpolicy_learning.py halfcheetah
    python experiments/benchmarks/learning/onpolicy_learning.py halfcheetah6x1
    python experiments/benchmarks/learning/onpolicy_learning.py hopper3x1
    python experiments/benchmarks/learning/onpolicy_learning.py spread
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _learning import main

# MaMuJoCo HalfCheetah, every partition: one torch thread per run, so two runs share the 2 cores.
HALFCHEETAH = {
    "experiment.num_envs": 10,
    "experiment.eval_every": 100_000,
    "experiment.eval_episodes": 5,
    "experiment.torch_threads": 1,
    "algo.rollout_steps": 400,
    "algo.obs_norm": True,
    "algo.value_norm": True,
    "algo.hidden": [128, 128],
    "algo.critic_lr": 5e-4,
    "algo.critic_minibatches": 2,
    "algo.init_log_std": -0.5,
}

GRU = {"algo.network": "gru"}
# Memory benchmarks: every algorithm as a GRU and an MLP variant, the same options otherwise.
MEMORY_VARIANTS = {f"{a}-{m}": a for a in ("hatrpo", "mappo", "masac", "iql") for m in ("gru", "mlp")}
# Sequence-replay choices of MASAC's GRU: 4-step chunks cut the 5-step episodes, so a chunk may start
# after its episode's cue; from the stored state, from zeros, or with 2 burn-in steps.
SEQUENCE_CHOICES = {
    "masac-gru-c4": {"algo.chunk_len": 4},
    "masac-gru-c4-zero": {"algo.chunk_len": 4, "algo.initial_state": "zero"},
    "masac-gru-c4-burn2": {"algo.chunk_len": 4, "algo.burn_in": 2},
}
# Discrete MASAC on a 5-step task: the learning test's entropy target (0.98 log|A| keeps the policy near
# uniform), one gradient step per 16 frames.
MASAC_MEMORY = {"algo.hidden": [64], "algo.target_entropy_fraction": 0.3, "algo.updates_per_frame": 0.0625}
# IQL: the reward comes at the last of 5 steps, so epsilon decays over 5k frames, one gradient step per 4
# frames, Polyak targets.
IQL_MEMORY = {"algo.eps_decay_frames": 5_000, "algo.updates_per_frame": 0.25, "algo.target_update": "polyak",
              "algo.tau": 0.01}  # fmt: skip

PRESETS: dict[str, dict] = {
    "cue_recall": {
        "title": "Memory: HATRPO, MAPPO, MASAC and IQL, GRU against MLP agents, on envs/cue_recall (2 agents, 4 cues), "
        "30k steps",
        "env": "envs/cue_recall",
        "algos": [*MEMORY_VARIANTS, *SEQUENCE_CHOICES],
        "algo_of": {**MEMORY_VARIANTS, **{label: "masac" for label in SEQUENCE_CHOICES}},
        "algo_overrides": {
            **{
                label: {
                    **({**GRU, "algo.chunk_len": 10} if label.endswith("gru") else {}),
                    **(MASAC_MEMORY if label.startswith("masac") else {}),
                    **(IQL_MEMORY if label.startswith("iql") else {}),
                }
                for label in MEMORY_VARIANTS
            },
            **{label: {**GRU, **MASAC_MEMORY, **choice} for label, choice in SEQUENCE_CHOICES.items()},
        },
        "frames": 30_000,
        "overrides": {
            "experiment.num_envs": 32,
            "experiment.eval_every": 2_000,
            "experiment.eval_episodes": 64,
            "experiment.torch_threads": 1,
            "algo.rollout_steps": 20,
        },
        "measure": "eval_return_mean",
        "target": 0.9,
        "curves": True,
        "reference": "Each agent sees its cue (one of 4) only at the first of 5 steps and is paid 1 for naming it at "
        "the last. A policy of the current observation earns 0.25 in expectation, whatever it learns; remembering "
        "earns 1.0. Threshold stated before the runs: 0.9 (greedy evaluation, 64 episodes). GRU actors: a 64-unit "
        "encoder (algo.hidden defaults to 64 x 64: two encoder layers) and a 64-unit GRU, trained on chunks of 10 "
        "steps; MASAC replays sequences of 10 steps from their stored first-step states (no burn-in); the c4 variants "
        "replay 4-step sequences, which cut episodes, from stored states, from zeros, or with 2 burn-in steps. "
        "Critics are MLPs "
        "(the central critics see the state, which holds the cues).",
    },
    "pendulum_pomdp": {
        "title": "Memory, N=1: TRPO with a GRU against an MLP on Pendulum without angular velocity, 200k steps",
        "env": "gym/Pendulum-v1",
        "algos": ["trpo-gru", "trpo-mlp"],
        "algo_of": {"trpo-gru": "trpo", "trpo-mlp": "trpo"},
        "algo_overrides": {"trpo-gru": {**GRU, "algo.chunk_len": 32}},
        "frames": 200_000,
        "overrides": {
            "env.hide": [2],
            "experiment.num_envs": 4,
            "experiment.eval_every": 20_000,
            "experiment.eval_episodes": 8,
            "experiment.torch_threads": 1,
            "algo.rollout_steps": 512,
            "algo.gamma": 0.9,
            "algo.critic_epochs": 10,
            "algo.critic_minibatches": 16,
        },
        "measure": "eval_return_mean",
        "target": -400.0,
        "curves": True,
        "reference": "The `pendulum` preset's TRPO config with the observation [cos, sin] of the angle only "
        "(`env.hide=[2]` removes the angular velocity). Fully observed, this config reaches -194 at 100k steps. "
        "Threshold stated before the runs: -400.",
    },
    "pendulum": {
        "title": "TRPO (N=1) on gym/Pendulum-v1, 100k steps",
        "env": "gym/Pendulum-v1",
        "algos": ["trpo"],
        "frames": 100_000,
        "overrides": {
            "experiment.num_envs": 4,
            "experiment.eval_every": 0,
            "algo.rollout_steps": 512,
            "algo.gamma": 0.9,
            "algo.critic_epochs": 10,
            "algo.critic_minibatches": 16,
        },
        "measure": "eval_return_mean",
        "target": -200.0,
        "reference": "Target: eval return >= -200 at 100k steps with training wall-clock <= sb3-contrib 2.9.2 TRPO "
        "(rl-baselines3-zoo config, gSDE) on this machine: -194 after 100k steps in 27 s.",
    },
    "navigation": {
        "title": "HATRPO / MATRPO / ITRPO on vmas/navigation (3 agents, max_steps 100), 60k frames",
        "env": "vmas/navigation",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 60_000,
        "overrides": {
            "env.n_agents": 3,
            "env.max_steps": 100,
            "experiment.num_envs": 20,
            "experiment.eval_every": 6_000,
            "algo.trust_region.max_kl": 0.02,
        },
        "measure": "eval_return_mean",
        "target": 0.84,
        "reference": "Reference: BenchMARL 1.5.2 MAPPO (default config) reached eval return 0.84 at 60k frames in "
        "110 s on this machine. Target: HATRPO and MATRPO >= 0.84 in <= 55 s. Eval return = mean over "
        "agents of the deterministic episode return, 16 evaluation episodes.",
    },
    "halfcheetah": {
        "title": "HATRPO / MATRPO / ITRPO on mamujoco/HalfCheetah-2x3, 1M steps",
        "env": "mamujoco/HalfCheetah-2x3",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 1_000_000,
        "overrides": HALFCHEETAH,
        "measure": "eval_return_mean",
        "target": 1500.0,
        "reference": "Target: HATRPO >= 1500 at 1M steps (HARL reports about 5400 at 10M). MaMuJoCo gives every "
        "agent the robot's reward, so the per-agent mean is the robot's episode return (summing over agents would "
        "double it). Deterministic evaluation, 5 episodes. These runs shared the 2 cores with the spread benchmark "
        "(one torch thread each): wall-clock is indicative only.",
    },
    "halfcheetah6x1": {
        "title": "HATRPO / MATRPO / ITRPO on mamujoco/HalfCheetah-6x1 (one joint per agent), 1M steps",
        "env": "mamujoco/HalfCheetah-6x1",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 1_000_000,
        "overrides": {
            # Two of the six joints see 8 numbers, the others 9: zero-padded to one group of 6 agents,
            # each with its own actor (the trust-region family's default), as in HARL.
            "env.pad_observations": True,
            **HALFCHEETAH,
        },
        "measure": "eval_return_mean",
        "target": 1500.0,
        "curves": True,
        "reference": "The HATRPO paper's heterogeneous case: six agents, one joint each, one shared robot "
        "reward (the per-agent mean is the robot's episode return). Same config as the HalfCheetah-2x3 preset. "
        "Two runs at a time, one torch thread each, on the 2 cores. How this compares with the published "
        "results: see 'Reading the HalfCheetah-6x1 reproduction' below.",
    },
    "hopper3x1": {
        "title": "HATRPO / MATRPO / ITRPO / HAPPO / MAPPO on mamujoco/Hopper-3x1 (one joint per agent), 1M steps",
        "env": "mamujoco/Hopper-3x1",
        "algos": ["hatrpo", "matrpo", "itrpo", "happo", "mappo"],
        "frames": 1_000_000,
        "overrides": {
            # The middle joint sees 9 numbers, the others 8: zero-padded to one group of 3 agents.
            "env.pad_observations": True,
            **HALFCHEETAH,
            # HAPPO/MAPPO only (the trust-region step ignores them): HARL's tuned Hopper-3x1 clip and
            # one actor minibatch per epoch.
            "algo.clip_eps": 0.05,
            "algo.actor_minibatches": 1,
        },
        "measure": "eval_return_mean",
        "target": 1000.0,
        "curves": True,
        # Hopper's episodes end when it falls: 5-episode periodic evaluations swing by 1000s.
        "final_eval_episodes": 20,
        "reference": "HARL's second one-joint-per-agent task: three agents (thigh, leg, foot), one shared robot "
        "reward, episodes end early when the hopper falls. Same config as the HalfCheetah presets (HARL tunes "
        "HATRPO's delta down to 0.001 here; this preset keeps marlkit's 0.01); HAPPO and MAPPO "
        "use HARL's Hopper clip 0.05 with one minibatch (10 epochs, as marlkit's default). Two runs at a time, "
        "one torch thread each. How this compares with the published results: see 'Reading the MaMuJoCo "
        "one-joint-per-agent reproduction' below.",
    },
    "spread": {
        "title": "HATRPO / MATRPO / ITRPO on continuous mpe/simple_spread_v3 (N=3, 25-step episodes), 2M steps",
        "env": "mpe/simple_spread_v3",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 2_000_000,
        "overrides": {
            "env.continuous_actions": True,
            "env.max_cycles": 25,
            "experiment.num_envs": 16,
            "experiment.eval_every": 200_000,
            "experiment.torch_threads": 1,
            "algo.rollout_steps": 200,
            "algo.trust_region.max_kl": 0.005,
            "algo.obs_norm": True,
            "algo.value_norm": True,
            "algo.hidden": [128, 128],
        },
        "measure": "eval_return_team",
        "target": None,
        "reference": "Team return summed over the 3 agents and over the 25-step episode, the measure HARL uses "
        "(HATRPO about -71 at 10M steps). mpe2's simple_spread_v3 defaults (local_ratio 0.5, dynamic_rescaling) "
        "may differ from the MPE version HARL used, so the comparison is approximate. These runs shared the 2 "
        "cores with the HalfCheetah benchmark: wall-clock is indicative only.",
    },
}


if __name__ == "__main__":
    main(PRESETS, "onpolicy")
