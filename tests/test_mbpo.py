"""MBPO / MAMBPO: synthetic rows look like real ones, batches mix them at the configured ratio,
rollouts stop at termination, the rollout length follows its schedule, and bad configs fail."""

from __future__ import annotations

import pytest
import torch

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.errors import MarlkitError
from marlkit.core.options import with_overrides
from marlkit.keys import NEXT, OBS, REWARD, STATE
from marlkit.training.rollout import RolloutCollector

SMALL = {
    "hidden": (32, 32),
    "batch_size": 64,
    "warmup_frames": 0,
    "updates_per_frame": 0.05,
    "retrain_every": 200,
    "rollouts_per_frame": 2.0,
    "rollout_length": (1, 3),
    "rollout_schedule": (0, 400),
    "real_ratio": 0.25,
    "model.ensemble_size": 3,
    "model.elites": 2,
    "model.hidden": (32, 32),
    "model.max_epochs": 5,
}


def learner_on_rendezvous(**overrides):
    env = make_env("envs/rendezvous", 4, "cpu", 0, n_agents=2, max_steps=25)
    spec = algorithm("mambpo")
    cfg = with_overrides(spec.config(), {**spec.preset, **SMALL, **overrides})
    return env, spec.build(cfg, env, 0)


def test_model_vector_round_trips_observations_and_state():
    env, learner = learner_on_rendezvous()
    td = env.reset()
    obs, state = learner._observations(learner._model_vector(td))
    assert torch.equal(obs["agent"], td["agent", OBS])
    assert torch.equal(state, td[STATE])  # the state of a VMAS env is the joint observations


def test_batches_mix_real_and_model_rows_at_the_ratio():
    env, learner = learner_on_rendezvous()
    batch, _ = RolloutCollector(env, learner.act, 50).collect()
    learner.update(batch)  # 200 frames: fit, branch, learn
    assert learner.model.fitted and len(learner.model_buffer) > 0
    real = learner.replay.storage[: len(learner.replay)]
    fake = learner.model_buffer.storage[: len(learner.model_buffer)]
    # Same layout: every leaf of a model row exists in real rows with the same shape and dtype.
    for key in fake.keys(include_nested=True, leaves_only=True):
        assert real[key].shape[1:] == fake[key].shape[1:] and real[key].dtype == fake[key].dtype, key
    rows, _, _ = learner.sample_rows()
    assert rows.shape == (64,)
    n_real = round(0.25 * 64)
    first = rows[:n_real][NEXT, STATE]
    is_real = (first.unsqueeze(1) == real[NEXT, STATE].unsqueeze(0)).all(-1).any(1)
    assert bool(is_real.all()), "the first real_ratio x batch rows come from the real buffer"
    rest = rows[n_real:][NEXT, STATE]
    from_model = (rest.unsqueeze(1) == fake[NEXT, STATE].unsqueeze(0)).all(-1).any(1)
    assert bool(from_model.all())
    learner.gradient_step()  # and SAC trains on the mix


def test_rollouts_stop_at_termination():
    env, learner = learner_on_rendezvous(termination="none")
    batch, _ = RolloutCollector(env, learner.act, 50).collect()
    learner.store(batch)
    learner.fit_model()
    learner.schedule.frames = 10_000  # rollout length 3 by then
    learner.branch(40)
    assert len(learner.model_buffer) == 40 * 3
    learner.termination = lambda s, a, s2: torch.ones(len(s), dtype=torch.bool)  # everything ends at once
    learner.branch(40)
    assert len(learner.model_buffer) == 40 * 3 + 40


def test_rollout_length_schedule():
    cfg = with_overrides(algorithm("mbpo").config(), {"rollout_length": (1, 15), "rollout_schedule": (20_000, 100_000)})
    assert [cfg.rollout_length_at(f) for f in (0, 20_000, 60_000, 100_000, 500_000)] == [1, 1, 8, 15, 15]


@pytest.mark.parametrize(
    ("key", "value"),
    [("real_ratio", 1.5), ("rollout_length", (0, 3)), ("rollout_schedule", (5, 5)), ("model.patience", 0)],
)
def test_bad_configs_fail_naming_the_key(key, value):
    with pytest.raises(MarlkitError, match=f"algo.{key} must"):
        with_overrides(algorithm("mbpo").config(), {key: value}, "algo")


def test_mbpo_needs_sac_actors():
    with pytest.raises(MarlkitError, match="squashed_gaussian"):
        with_overrides(algorithm("mbpo").config(), {"actor": "deterministic"}, "algo")


def test_known_rewards_label_synthetic_rows():
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=25)
    spec = algorithm("mambpo")
    cfg = with_overrides(spec.config(), {**spec.preset, **SMALL, "reward": "known"})
    learner = spec.build(cfg, env, 0)
    learner.update(RolloutCollector(env, learner.act, 50).collect()[0])
    fake = learner.model_buffer.storage[: len(learner.model_buffer)]
    assert len(fake) > 0
    expected = learner.known_reward(fake["agent", OBS].flatten(1), None, fake[NEXT, "agent", OBS].flatten(1))
    # The labels were computed rollout step by rollout step, this on the whole buffer at once: other batch
    # shapes, so float32 rounding may differ in the last bits (assert_close's float32 tolerances).
    torch.testing.assert_close(fake["agent", REWARD], expected)
    with pytest.raises(MarlkitError, match="no reward function for 'envs/rendezvous'"):
        learner_on_rendezvous(reward="known")


def test_mbpo_trains_with_hidden_observations(tmp_path):
    """``env.hide`` (the docs' Pendulum without velocity): the model predicts the hidden observations
    beside the full state, so synthetic rows have the real rows' widths (this used to crash in
    gradient_step: state of 2 entries where the env's has 3)."""
    from marlkit.training.config import build_config
    from marlkit.training.experiment import Experiment

    overrides = {f"algo.{k}": v for k, v in SMALL.items()}
    overrides.update({"env.hide": [2], "experiment.frames": 400, "experiment.num_envs": 1,
                      "experiment.eval_every": 0, "experiment.eval_episodes": 1, "experiment.progress": False,
                      "experiment.tensorboard": False})  # fmt: skip
    exp = Experiment(build_config("mbpo", "gym/Pendulum-v1", overrides), tmp_path / "run")
    exp.run()
    fake = exp.learner.model_buffer.storage[: len(exp.learner.model_buffer)]
    assert len(fake) > 0 and fake["agent", OBS].shape[-1] == 2 and fake[STATE].shape[-1] == 3


def test_known_functions_read_the_full_observations_under_hide():
    """With ``env.hide`` the known reward reads the state (the full joint observations), so it labels real
    transitions with the env's own rewards; on the hidden observations it would read the wrong entries."""
    # No collisions: VMAS's collision penalty depends on other env copies (tests/test_rewards.py).
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=25, hide=[0, 1], collisions=False)
    spec = algorithm("mambpo")
    cfg = with_overrides(spec.config(), {**spec.preset, **SMALL, "reward": "known"})
    learner = spec.build(cfg, env, 0)
    batch = RolloutCollector(env, learner.act, 50).collect()[0]
    learner.update(batch)
    rows = batch.reshape(-1)
    full = learner._full_observations(learner._model_vector(rows))
    full_next = learner._full_observations(learner._model_vector(rows[NEXT]))
    # Rewards are sums of float32 distance differences: tolerance for the order of operations only.
    torch.testing.assert_close(learner.known_reward(full, None, full_next), rows["agent", REWARD].flatten(1))
    fake = learner.model_buffer.storage[: len(learner.model_buffer)]
    assert len(fake) > 0 and fake["agent", OBS].shape[-1] == env.groups["agent"].obs_shape[0]


def test_known_reward_under_hide_without_a_full_state_fails_in_one_line():
    from dataclasses import replace

    from marlkit.learner import EnvInfo

    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=25, hide=[0])
    spec = algorithm("mambpo")
    cfg = with_overrides(spec.config(), {**spec.preset, **SMALL, "reward": "known"})
    with pytest.raises(MarlkitError, match=r"env.hide=\[0\] removes entries and its state is not") as err:
        spec.build(cfg, replace(EnvInfo.of(env), state_source="env"), 0)
    assert "\n" not in str(err.value)
