"""Batches are borrowed: the collector writes every rollout into the same buffer, so a learner that
keeps data must copy it. Every learner that stores data goes through two consecutive rollouts and
updates here, and must still hold the first rollout intact."""

from __future__ import annotations

import pytest
import torch

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.options import with_overrides
from marlkit.keys import NEXT, STATE
from marlkit.training.rollout import RolloutCollector

STEPS, COPIES = 6, 2
# No learning: warm-up never ends, so update() only stores the rows.
STORE_ONLY = {
    "pets": {"warmup_frames": 10**9, "model.hidden": (8,)},
    "mbpo": {"warmup_frames": 10**9, "hidden": (8,), "model.hidden": (8,)},
    "maddpg": {"warmup_frames": 10**9, "hidden": (8,)},
    "masac": {"warmup_frames": 10**9, "hidden": (8,)},
}


def stored_states(learner) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(learner, "replay"):
        rows = learner.replay.storage[: len(learner.replay)]
        return rows[STATE].flatten(), rows[NEXT, STATE].flatten()
    return learner.data["state"].flatten(), learner.data["next_state"].flatten()


@pytest.mark.parametrize("algo", list(STORE_ONLY))
def test_learners_keep_the_first_rollout_intact(algo):
    env = make_env("helper_envs:Clock", COPIES, "cpu", 0)
    spec = algorithm(algo)
    learner = spec.build(with_overrides(spec.default_config(), STORE_ONLY[algo], "algo"), env, 0)
    collector = RolloutCollector(env, learner.act, STEPS)  # reuses its buffer, as the training loop does
    first, _ = collector.collect()
    first_buffer = first[STATE].data_ptr()
    learner.update(first)
    second, _ = collector.collect()
    assert second[STATE].data_ptr() == first_buffer, "the collector must reuse its buffer for this test to bite"
    learner.update(second)
    state, next_state = stored_states(learner)
    # Every copy's clock reads 0 .. 2T-1 over the two rollouts, each state exactly once per copy.
    expected = torch.arange(2 * STEPS, dtype=torch.float32).repeat(COPIES)
    assert torch.equal(state.sort().values, expected.sort().values), state
    assert torch.equal(next_state - state, torch.ones_like(state))
