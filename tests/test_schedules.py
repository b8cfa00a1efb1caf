"""Schedules: the off-policy update-to-data ratio holds exactly over any sequence of collections."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from marlkit.blocks.schedules import UpdateSchedule, linear

batches = st.lists(st.tuples(st.integers(1, 64), st.integers(1, 50)), min_size=1, max_size=30)  # (copies, steps)


@given(batches, st.sampled_from([0.05, 0.1, 1.0, 2.5, 20.0]), st.integers(0, 500))
def test_gradient_steps_follow_the_ratio_after_warmup(sizes, ratio, warmup):
    schedule = UpdateSchedule(warmup, ratio)
    total, counted = 0, 0
    for copies, steps in sizes:
        frames = copies * steps
        schedule.record(frames)
        earned = schedule.due(frames, copies)
        total += earned
        if schedule.frames >= warmup:
            counted += frames
        else:
            assert earned == 0
    # Fractions carry over: the total is the floor of ratio x counted frames (up to float rounding).
    assert abs(total - math.floor(counted * ratio + 1e-9)) <= 1


@given(batches)
def test_default_ratio_is_one_step_per_vectorized_env_step(sizes):
    schedule = UpdateSchedule(0, None)
    total = 0
    for copies, steps in sizes:
        schedule.record(copies * steps)
        total += schedule.due(copies * steps, copies)
    assert total == sum(steps for _, steps in sizes)


def test_linear_ramp():
    assert [linear(t, 10, 20, 1.0, 3.0) for t in (0, 10, 15, 20, 99)] == [1.0, 1.0, 2.0, 3.0, 3.0]


def test_zero_length_ramp_is_a_step_at_its_start():
    """A decay over 0 frames (``eps_decay_frames=0``) is a step: ``first`` before ``start``, ``last`` from it."""
    assert [linear(t, 10, 10, 1.0, 0.05) for t in (0, 9, 10, 11, 1e9)] == [1.0, 1.0, 0.05, 0.05, 0.05]


def test_epsilon_without_decay_is_final_right_after_warmup(tmp_path):
    """``algo.eps_decay_frames=0`` trains (it raised ZeroDivisionError at the first step after warm-up)."""
    from marlkit.training.config import build_config
    from marlkit.training.experiment import Experiment

    overrides = {
        "experiment.frames": 400,
        "experiment.num_envs": 4,
        "experiment.eval_every": 0,
        "experiment.eval_episodes": 2,
        "experiment.progress": False,
        "experiment.tensorboard": False,
        "algo.warmup_frames": 100,
        "algo.eps_decay_frames": 0,
        "algo.eps_final": 0.1,
    }
    Experiment(build_config("iql", "helper_envs:SignalGame", overrides), tmp_path / "run").run()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    eps = [float(r.split(",")[header.index("epsilon")]) for r in rows[1:]]
    assert eps[0] == 1.0 and eps[-1] == 0.1, eps
