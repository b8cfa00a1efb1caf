"""One learning test per algorithm on a small task, with a threshold that an untrained policy cannot reach.

Every case is a row of ``CASES``. Its verdict rests on :func:`score`, the mean of the last
``LAST_EVALS`` evaluations (at 80, 90 and 100% of the run, each over the case's evaluation episodes),
not on one final evaluation, which on navigation swings by more than 1.0 between nearby budgets.
Every threshold was calibrated by ``experiments/calibrate_learning_tests.py`` over seeds 0-4 and torch
threads 1 and 2 (stand-ins for other machines: other rounding, other kernels), and sits below every
calibration run with a margin; the table, with the untrained policy's score, is in
docs/learning_tests.md. The test runs seed 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from marlkit.training.config import build_config
from marlkit.training.experiment import Experiment

QUIET = {"experiment.eval_every": 0, "experiment.progress": False, "experiment.tensorboard": False}
NAVIGATION = {**QUIET, "env.n_agents": 3, "env.max_steps": 100, "experiment.num_envs": 20}
ON_POLICY_NAVIGATION = {**NAVIGATION, "experiment.frames": 60_000, "algo.trust_region.max_kl": 0.02}
OFF_POLICY_NAVIGATION = {
    **NAVIGATION,
    "algo.hidden": [64, 64],
    "algo.batch_size": 256,
    "algo.warmup_frames": 2_000,
    "algo.rollout_steps": 10,
    "algo.updates_per_frame": 0.05,
}
# helper_envs:PointMass: x' = x + 0.2 a, reward -x'^2, 20 steps; random actions score about -27 per
# episode and steering straight to 0 about -4 (the mean over x0 ~ U(-2, 2)).
POINT_MASS = {**QUIET, "experiment.num_envs": 8, "experiment.eval_episodes": 16}
MODEL = {"algo.model.ensemble_size": 5, "algo.model.elites": 3}
RENDEZVOUS = {
    **QUIET,
    "env.n_agents": 2,
    "env.max_steps": 50,
    "experiment.num_envs": 8,
    "experiment.frames": 2_400,
    "algo.warmup_frames": 400,
    "algo.updates_per_frame": 0.5,
}
# Value-based learners (docs/benchmarks.md has the longer CartPole runs).
CARTPOLE_DQN = {
    **QUIET,
    "experiment.num_envs": 8,
    "experiment.frames": 12_000,
    "algo.updates_per_frame": 0.25,
    "algo.eps_decay_frames": 6_000,
    "algo.lr": 1e-3,
    "algo.hidden": [128, 128],
    "algo.target_period": 500,
    "algo.n_step": 3,
}
SIGNAL_GAME = {
    **QUIET,
    "experiment.num_envs": 8,
    "experiment.frames": 3_000,
    "experiment.eval_episodes": 16,
    "algo.warmup_frames": 200,
    "algo.updates_per_frame": 0.25,
    "algo.batch_size": 64,
}
VALUE_BASED_SIGNAL_GAME = {
    **SIGNAL_GAME,
    "algo.eps_decay_frames": 1_500,
    "algo.target_period": 100,
    "algo.hidden": [32, 32],
}

# name: (algorithm, env, overrides, threshold on score(): the mean of the last 3 evaluations' mean return per
# agent). Every threshold comes from the calibration table in docs/learning_tests.md (seeds 0-4 x threads
# 1 and 2); the numbers in the comments are that table's min / median over its 10 runs.
CASES: dict[str, tuple[str, str, dict[str, Any], float]] = {
    # vmas/navigation, 60k frames: the untrained policy scores 0.0, random actions about -1. 0.84 is what
    # BenchMARL's MAPPO reaches at 60k frames (reference.md). itrpo 1.71 / 2.12, matrpo 1.41 / 1.72;
    # hatrpo 1.03 / 1.83 (seed 1 learns late), so its threshold is lower. mappo (one shared actor with
    # LayerNorms, 10 critic epochs of 4 minibatches, since the ablation) 2.28 / 2.69: its threshold is the
    # calibration's highest passing one (1.95), rounded down.
    "itrpo": ("itrpo", "vmas/navigation", ON_POLICY_NAVIGATION, 0.84),
    "matrpo": ("matrpo", "vmas/navigation", ON_POLICY_NAVIGATION, 0.84),
    "hatrpo": ("hatrpo", "vmas/navigation", ON_POLICY_NAVIGATION, 0.4),
    "mappo": ("mappo", "vmas/navigation", ON_POLICY_NAVIGATION, 1.9),
    # N=1 is the same code. PointMass below: -2.13 / -2.07, untrained -22 (TRPO on Pendulum-v1 needs 100k
    # frames, 40 s of the suite; it is in experiments/benchmarks/).
    "trpo": (
        "trpo",
        "helper_envs:PointMass",
        {**POINT_MASS, "experiment.frames": 6_400, "algo.rollout_steps": 40},
        -8,
    ),
    # MADDPG (continuous) on envs/rendezvous, the MASAC case's task: 1.00 / 1.92, untrained -0.14. On
    # navigation at 30k frames (the case before) seeds 0-4 scored -1.9 to 1.5: a verdict at the mercy of the
    # seed, which failed on another CPU at its final evaluation of -1.12.
    "maddpg": ("maddpg", "envs/rendezvous", {**RENDEZVOUS, "algo.hidden": [64, 64]}, 0.4),
    "maddpg_discrete": (
        "maddpg",
        "vmas/navigation",
        {**OFF_POLICY_NAVIGATION, "experiment.frames": 30_000, "env.continuous_actions": False},
        0.25,  # Gumbel-softmax actors: 0.64 / 1.05; the untrained argmax policy -6.7, random actions about -1
    ),
    # envs/rendezvous (2 agents, dense shared reward): 0.36 / 0.47, untrained -0.06 (MASAC on navigation
    # needs 60k frames, 61 s: experiments/benchmarks/).
    "masac": ("masac", "envs/rendezvous", {**RENDEZVOUS, "algo.hidden": [64, 64], "algo.alpha": 0.05}, 0.2),
    # PointMass at 1.5k steps: -2.27 / -2.20, untrained -28 (SAC on Pendulum-v1: -116 / -128 at 6k).
    "sac": (
        "sac",
        "helper_envs:PointMass",
        {
            **POINT_MASS,
            "experiment.num_envs": 1,
            "experiment.frames": 1_500,
            "algo.hidden": [64, 64],
            "algo.actor_lr": 1e-3,
            "algo.critic_lr": 1e-3,
            "algo.alpha_lr": 1e-3,
            "algo.warmup_frames": 200,
        },
        -8,
    ),
    # -3.03 / -2.53, untrained -25.
    "pets": (
        "pets",
        "helper_envs:PointMass",
        {
            **POINT_MASS,
            **MODEL,
            "experiment.frames": 640,
            "experiment.eval_episodes": 8,
            "algo.rollout_steps": 20,
            "algo.warmup_frames": 160,
            "algo.retrain_every": 160,
            "algo.model.hidden": [32, 32],
            "algo.model.patience": 20,
            "algo.planner.horizon": 10,
            "algo.planner.population": 50,
            "algo.particles": 2,
            "algo.planner.iterations": 4,
        },
        -8,
    ),
    # -2.78 / -2.57, untrained -28.
    "mbpo": (
        "mbpo",
        "helper_envs:PointMass",
        {
            **POINT_MASS,
            **MODEL,
            "experiment.frames": 960,
            "algo.model.max_epochs": 30,
            "algo.hidden": [64, 64],
            "algo.warmup_frames": 320,
            "algo.updates_per_frame": 2,
            "algo.retrain_every": 320,
            "algo.rollouts_per_frame": 20,
            "algo.model.hidden": [64, 64],
            "algo.alpha": 0.05,
        },
        -8,
    ),
    # The MASAC case plus a joint world model: 0.16 / 0.23, untrained -0.06 (at most 0.02).
    "mambpo": (
        "mambpo",
        "envs/rendezvous",
        {
            **RENDEZVOUS,
            **MODEL,
            "algo.hidden": [64, 64],
            "algo.retrain_every": 400,
            "algo.rollouts_per_frame": 10,
            "algo.model.hidden": [64, 64],
            "algo.alpha": 0.05,
        },
        0.04,
    ),
    # CartPole-v1 (N=1 DQN): 205 / 276, untrained 9 (at most 90) (500, the maximum, is reached and lost
    # again in longer runs: docs/benchmarks.md).
    "dqn": ("dqn", "gym/CartPole-v1", CARTPOLE_DQN, 140.0),
    # helper_envs:SignalGame (two agents, shared reward): random play about 1.0, the optimum 5.0; IQL, VDN
    # and QMIX score 5.0 in every calibration run at 3k frames (at 1.5k, 3.4 on some seeds).
    "iql": ("iql", "helper_envs:SignalGame", VALUE_BASED_SIGNAL_GAME, 4.0),
    "vdn": ("vdn", "helper_envs:SignalGame", VALUE_BASED_SIGNAL_GAME, 4.0),
    "qmix": ("qmix", "helper_envs:SignalGame", VALUE_BASED_SIGNAL_GAME, 4.0),
    # Discrete MASAC on the same game: 5.0 in every calibration run at 3k frames with an entropy target
    # of 0.3 log|A| (the default 0.98 log|A| keeps the policy near-uniform on a 5-step task).
    "masac_discrete": (
        "masac",
        "helper_envs:SignalGame",
        {**SIGNAL_GAME, "algo.hidden": [32, 32], "algo.target_entropy_fraction": 0.3, "algo.warmup_frames": 200},
        4.0,
    ),
    # A recurrent (GRU) actor on the memory task envs/cue_recall (2 agents, 4 cues, 5-step episodes): a
    # feed-forward policy earns 0.25 in expectation (its MLP variant stays at 0.25-0.28,
    # docs/benchmarks.md), remembering the cue earns 1.0: 1.0 / 1.0 at 16k frames (0.88 / 1.0 before MAPPO
    # shared its actor).
    "mappo_gru": (
        "mappo",
        "envs/cue_recall",
        {
            **QUIET,
            "experiment.num_envs": 32,
            "experiment.frames": 16_000,
            "algo.rollout_steps": 20,
            "algo.network": "gru",
            "algo.chunk_len": 10,
        },
        0.8,
    ),
    # An algorithm from outside the package (experiments/examples/reinforce.py), by import path. The
    # untrained (deterministic) policy scores about 0.0, random actions -0.7; 0.46 / 1.36 (seed 1 is low).
    "reinforce": (
        "experiments.examples.reinforce:Reinforce",
        "vmas/navigation",
        {**NAVIGATION, "env.n_agents": 2, "experiment.frames": 40_000},
        0.3,
    ),
}


LAST_EVALS = 3
EVALS_PER_RUN = 10  # evaluations at 10%, 20%, ..., 100% of the frames (and at frame 0: the untrained policy)


def scored(overrides: dict[str, Any]) -> dict[str, Any]:
    """A case's overrides with the evaluations that :func:`score` reads."""
    return {**overrides, "experiment.eval_every": overrides["experiment.frames"] // EVALS_PER_RUN}


def evaluations(rows: list[dict[str, Any]]) -> list[float]:
    """The evaluation returns of a run's ``metrics.csv`` rows, in order (the first one at frame 0)."""
    return [float(r["eval_return_mean"]) for r in rows if r.get("eval_return_mean") not in (None, "")]


def score(rows: list[dict[str, Any]]) -> float:
    """The mean of the last ``LAST_EVALS`` evaluations: robust to one unlucky evaluation."""
    evals = evaluations(rows)
    assert len(evals) > LAST_EVALS, evals
    return sum(evals[-LAST_EVALS:]) / LAST_EVALS


@pytest.mark.slow
@pytest.mark.parametrize("case", [name for name in CASES if name != "reinforce"])
def test_learns(case, tmp_path):
    algo, env, overrides, threshold = CASES[case]
    experiment = Experiment(build_config(algo, env, scored(overrides)), tmp_path / case)
    experiment.run()
    assert score(experiment.rows) >= threshold, evaluations(experiment.rows)


@pytest.mark.slow
def test_out_of_tree_reinforce_learns_through_compare_by_import_path(tmp_path):
    """Named by import path, the example learner trains in compare's worker processes (seeds 0 and 1)."""
    import csv

    from marlkit.analysis.sweep import compare

    algo, env, overrides, threshold = CASES["reinforce"]
    result = compare([algo], [env], [0, 1], tmp_path, overrides=scored(overrides), jobs=2, progress=False)
    assert not result["failed"] and result["report"], result
    scores = []
    for run in sorted(tmp_path.glob("*/*/seed*")):
        with open(run / "metrics.csv") as f:
            scores.append(score(list(csv.DictReader(f))))
    assert len(scores) == 2 and min(scores) >= threshold, scores
