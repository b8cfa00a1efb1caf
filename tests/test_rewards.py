"""Known reward functions agree with the real tasks, transition by transition."""

from __future__ import annotations

import pytest
import torch

from marlkit.adapters import make_env
from marlkit.core.errors import MarlkitError
from marlkit.keys import NEXT, REWARD
from marlkit.models.rewards import known_reward
from marlkit.networks.groups import joint_observations
from marlkit.training.rollout import RolloutCollector


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_agents": 3},
        {"n_agents": 4, "shared_rew": False, "observe_all_goals": True, "agent_collision_penalty": -0.5},
        {"n_agents": 2, "collisions": False, "pos_shaping_factor": 2.0},
    ],
)
def test_known_navigation_reward_matches_the_env(kwargs):
    # A small spawning area crowds the agents, so random actions collide often.
    env = make_env(
        "vmas/navigation", num_envs=32, seed=0, max_steps=40, world_spawning_x=0.5, world_spawning_y=0.5, **kwargs
    )
    spec = env.groups["agent"]
    fn = known_reward(env.name, env.scenario, list(spec.agents))
    collector = RolloutCollector(env, env.rand_action, 60)
    collector.reset()
    rows = collector.collect()[0].reshape(-1)
    groups = {"agent": spec}
    obs, next_obs = joint_observations(rows, groups), joint_observations(rows[NEXT], groups)
    actual = rows["agent"][REWARD].reshape(len(rows), -1)
    predicted = fn(obs, torch.zeros(len(rows), 0), next_obs)
    assert predicted.shape == actual.shape
    # VMAS also penalizes gaps in (0, min_collision_distance] when the pair overlaps in another env copy
    # of the batch; the function cannot see that, and only such rows may differ.
    pos = next_obs.view(len(rows), spec.n_agents, -1)[..., :2]
    gap = (pos.unsqueeze(2) - pos.unsqueeze(1)).norm(dim=-1) - 2 * env.scenario.agent_radius
    near = ((gap > 0) & (gap <= env.scenario.min_collision_distance)).any(-1)
    differs = (predicted - actual).abs() > 1e-5
    assert not (differs & ~near).any()
    assert differs.float().mean() < 0.01
    if kwargs.get("collisions", True):
        assert (actual <= kwargs.get("agent_collision_penalty", -1.0) + 0.1).any(), "no collision was exercised"


def test_known_navigation_reward_pays_the_final_reward_and_refuses_other_tasks():
    env = make_env("vmas/navigation", num_envs=1, seed=0, n_agents=2, collisions=False, final_reward=0.5)
    fn = known_reward(env.name, env.scenario, ["agent_0", "agent_1"])
    # Each agent: position, velocity, position minus goal. Both end on their goals, 0.3 and 0.1 closer.
    before = torch.tensor([[0.0, 0, 0, 0, 0.3, 0, 1, 1, 0, 0, 0, 0.1]])
    after = torch.tensor([[0.0, 0, 0, 0, 0.0, 0, 1, 1, 0, 0, 0, 0.0]])
    torch.testing.assert_close(fn(before, torch.zeros(1, 0), after), torch.tensor([[0.9, 0.9]]))
    with pytest.raises(MarlkitError, match="scenario order"):
        known_reward(env.name, env.scenario, ["agent_1", "agent_0"])
    with pytest.raises(MarlkitError, match=r"no reward function for 'gym/Pendulum-v1'.*vmas/navigation"):
        known_reward("gym/Pendulum-v1", None, ["agent"])
