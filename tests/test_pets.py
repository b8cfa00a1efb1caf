"""PETS: after a model fit on random data, the planner steers a point mass towards its goal, also
when rebuilt from the weights alone."""

from __future__ import annotations

import pytest
import torch

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.errors import MarlkitError
from marlkit.core.options import with_overrides
from marlkit.core.specs import Discrete, GroupSpec
from marlkit.keys import ACTION, OBS, STATE
from marlkit.learner import EnvInfo
from marlkit.training.rollout import RolloutCollector

SMALL = {
    "warmup_frames": 320,
    "retrain_every": 320,
    "model.max_epochs": 100,  # held-out MSE 2e-5 (400 epochs: 7e-6); every first move still heads to 0 by > 0.5
    "model.patience": 30,
    "model.hidden": (32, 32),
    "model.ensemble_size": 5,
    "model.elites": 3,
    "planner.horizon": 8,
    "planner.population": 64,
    "particles": 4,
    "planner.iterations": 3,
}


def test_planner_steers_towards_the_reward_after_a_fit():
    env = make_env("helper_envs:PointMass", 8, "cpu", 0)
    spec = algorithm("pets")
    learner = spec.build(with_overrides(spec.config(), SMALL), env, 0)
    batch, _ = RolloutCollector(env, learner.act, 40).collect()  # random actions during warm-up
    metrics = learner.update(batch)
    assert learner.model.fitted and metrics["model_holdout_mse"] < 0.1, metrics
    td = env.reset(seed=1)
    x = torch.linspace(-1.8, 1.8, 8).view(8, 1, 1)
    td["agent", OBS] = x
    td[STATE] = x.view(8, 1)
    actions = learner.act(td.clone(), deterministic=True)["agent", ACTION].view(8)
    # Reward -x'^2: every start is at least one step of 0.2 away from 0, so the first move heads to 0.
    assert bool((actions[:4] > 0.2).all()) and bool((actions[4:] < -0.2).all()), actions
    # The weights alone (what `marlkit eval` loads) make a planner, not a random policy.
    loaded = spec.build(with_overrides(spec.config(), SMALL), env, 0)
    loaded.load_state_dict(learner.state_dict())
    again = loaded.act(td.clone(), deterministic=True)["agent", ACTION].view(8)
    assert loaded.timing["plan_calls"] == 1
    assert bool((again[:4] > 0.2).all()) and bool((again[4:] < -0.2).all()), again


def test_pets_refuses_discrete_actions():
    spec = algorithm("pets")
    groups = {"agent": GroupSpec("agent", ("agent_0",), (2,), Discrete(3))}
    with pytest.raises(MarlkitError, match="continuous"):
        spec.learner(spec.config(), EnvInfo("test", groups, 2), 0)


def test_nested_config_errors_name_the_keys_users_set():
    from marlkit.algorithms.pets import PETSConfig

    for key, value in (("planner.iterations", 0), ("model.patience", 0), ("model.elites", 9)):
        with pytest.raises(MarlkitError, match=f"algo.{key} must be"):
            with_overrides(PETSConfig(), {key: value}, "algo")
