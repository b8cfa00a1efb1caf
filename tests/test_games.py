"""Competitive and mixed tasks: each one's group layout, and the reward structure that makes it a game.

Random-policy rollouts; the reward relations are the tasks' own (mpe2 and VMAS sources), so a group
mix-up in the adapters (a reward or an observation given to the wrong team) breaks them."""

from __future__ import annotations

import pytest
import torch

from marlkit import make_env
from marlkit.keys import REWARD
from marlkit.training.rollout import RolloutCollector

LAYOUTS = [
    ("mpe/simple_tag_v3", {}, {"adversary": 3, "agent": 1}),
    ("mpe/simple_adversary_v3", {}, {"adversary": 1, "agent": 2}),
    ("mpe/simple_push_v3", {}, {"adversary": 1, "agent": 1}),
    ("mpe/simple_crypto_v3", {}, {"eve": 1, "bob": 1, "alice": 1}),
    ("mpe/simple_world_comm_v3", {}, {"leadadversary": 1, "adversary": 3, "agent": 2}),
    ("vmas/simple_tag", {}, {"adversary": 3, "agent": 1}),
    ("vmas/football", {"ai_red_agents": False}, {"agent_blue": 3, "agent_red": 3}),
]


def rewards(name: str, kwargs: dict, num_envs: int = 16, steps: int = 50, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per group ``[num_envs, steps, n_agents]`` rewards of a random-policy rollout."""
    env = make_env(name, num_envs=num_envs, seed=seed, **kwargs)
    collector = RolloutCollector(env, env.rand_action, steps, reuse_buffer=False)
    collector.reset()
    batch = collector.collect()[0]
    return {g: batch[g][REWARD] for g in env.groups}


@pytest.mark.parametrize(("name", "kwargs", "groups"), LAYOUTS, ids=[n for n, _, _ in LAYOUTS])
def test_game_group_layout(name, kwargs, groups):
    env = make_env(name, num_envs=2, seed=0, **kwargs)
    assert {g: s.n_agents for g, s in env.groups.items()} == groups
    td = env.reset()
    for g, spec in env.groups.items():
        assert td[g]["observation"].shape[-2:] == (spec.n_agents, spec.obs_dim)


@pytest.mark.parametrize("name", ["mpe/simple_tag_v3", "vmas/simple_tag"])
def test_tag_catches_pay_predators_what_the_prey_loses(name):
    # Predators share +10 per catch; the prey pays -10 per catch and a boundary penalty (>= 0).
    r = rewards(name, {})
    adversary, prey = r["adversary"], r["agent"][..., 0]
    assert torch.equal(adversary, adversary[..., :1].expand_as(adversary)), "predators share one reward"
    caught = adversary[..., 0]
    assert (caught >= 0).all() and torch.equal(caught, (caught / 10).round() * 10), "multiples of +10"
    assert (caught > 0).any(), "no catch in the rollout: the test would prove nothing"
    assert (prey <= -caught + 1e-4).all(), "the prey loses at least what the predators win"


def test_adversary_game_signs():
    # The adversary is paid minus its distance to the goal; the good agents share one reward.
    r = rewards("mpe/simple_adversary_v3", {})
    assert (r["adversary"] <= 0).all() and (r["adversary"] < 0).any()
    good = r["agent"]
    assert torch.equal(good[..., 0], good[..., 1])


def test_push_and_crypto_signs():
    push = rewards("mpe/simple_push_v3", {})
    assert (push["agent"] <= 0).all() and (push["agent"] < 0).any(), "minus the distance to its goal"
    crypto = rewards("mpe/simple_crypto_v3", {})
    assert (crypto["eve"] <= 0).all() and (crypto["eve"] < 0).any(), "minus eve's reconstruction error"


def test_world_comm_adversaries_share_their_catches():
    # Each adversary: minus 0.1 x its distance to the nearest good agent, plus 5 per catch by any adversary.
    r = rewards("mpe/simple_world_comm_v3", {})
    adversaries = torch.cat([r["leadadversary"], r["adversary"]], dim=-1)
    catches = torch.floor((adversaries + 1) / 5)
    assert torch.equal(catches, catches[..., :1].expand_as(catches)), "catches are shared"
    shaping = adversaries - 5 * catches
    assert ((shaping > -1) & (shaping <= 0)).all()
    assert (catches > 0).any() and (shaping < 0).any(), "no catch or no shaping: the test would prove nothing"


def test_football_teams_share_their_reward():
    # Two controlled teams (ai_red_agents=False): each team's agents get one reward; without the dense
    # shaping only goals count, and a goal pays one side what it costs the other.
    kwargs = {"ai_red_agents": False, "n_blue_agents": 2, "n_red_agents": 2}
    dense = rewards("vmas/football", kwargs, num_envs=8, steps=40)
    for team in dense.values():
        assert torch.equal(team, team[..., :1].expand_as(team))
        assert (team != 0).any(), "no shaping in the rollout: the test would prove nothing"
    sparse = rewards("vmas/football", {**kwargs, "dense_reward": False}, num_envs=8, steps=40)
    assert torch.equal(sparse["agent_blue"], -sparse["agent_red"])


def test_duel_is_zero_sum_and_decided_at_the_end():
    r = rewards("envs/duel", {}, num_envs=32, steps=60)
    red, blue = r["red"][..., 0], r["blue"][..., 0]
    assert torch.equal(red, -blue), "zero-sum"
    assert set(red.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (red == 1).any() and (red == -1).any(), "random play should win and lose games"
