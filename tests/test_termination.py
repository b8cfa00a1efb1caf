"""Known termination functions agree with the real tasks, transition by transition."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from marlkit.adapters.families import FAMILIES, never
from marlkit.models.termination import known_termination


@pytest.mark.parametrize("task", ["InvertedPendulum-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "HalfCheetah-v5"])
def test_known_termination_matches_the_env(task):
    env = gym.make(task)
    fn = known_termination(f"gym/{task}")
    assert fn is not None
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows, flags = [], []
    while len(rows) < 400:
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        nxt, _, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, nxt))
        flags.append(terminated)
        obs = env.reset()[0] if terminated or truncated else nxt
    env.close()
    s, a, s2 = (torch.as_tensor(np.stack(x), dtype=torch.float32) for x in zip(*rows, strict=True))
    predicted = fn(s, a, s2)
    assert predicted.tolist() == flags
    if task != "HalfCheetah-v5":
        assert any(flags), "random actions should end some episodes"


def test_unknown_tasks_have_no_function_and_never_is_all_false():
    assert known_termination("gym/NoSuchTask-v0") is None
    assert not never(torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3, 2)).any()
    assert FAMILIES["gym"].task_facts("Pendulum-v1").termination is never
