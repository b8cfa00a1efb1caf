"""Bad input fails with one clear line naming what is wrong and what is valid."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from marlkit import MarlkitError, make_env
from marlkit.cli import main
from marlkit.keys import ACTION


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vmas/navigaton", "Did you mean 'navigation'"),
        ("vmass/navigation", "Families: vmas/<name>"),
        ("mpe/simple_sprad_v3", "simple_spread_v3"),
        ("gym/Pendulum-v0", "Pendulum-v1"),
        ("envs/rendevous", "rendezvous"),
        ("nonexistent_module_xyz:Thing", "cannot import module"),
    ],
)
def test_unknown_env_names(name, expected):
    with pytest.raises(MarlkitError) as err:
        make_env(name)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vmas/navigation", {"n_agentz": 3}),
        ("mpe/simple_spread_v3", {"n_agentz": 3}),
        ("gym/Pendulum-v1", {"n_agentz": 3}),
        ("envs/rendezvous", {"n_agentz": 3}),
        ("envs/scout_carrier", {"n_agentz": 3}),
    ],
)
def test_unknown_env_kwarg_is_named(name, kwargs):
    with pytest.raises(MarlkitError, match="n_agentz"):
        make_env(name, num_envs=2, **kwargs)


@pytest.mark.parametrize("name", ["vmas/navigation", "mpe/simple_spread_v3"])
def test_wrong_action_shape_and_dtype_name_group_and_shape(name):
    env = make_env(name, num_envs=2, seed=0, **({"continuous_actions": True} if "mpe" in name else {}))
    td = env.rand_action(env.reset())
    good = td["agent"][ACTION]
    td["agent"][ACTION] = good[..., :1]
    with pytest.raises(MarlkitError, match=r"group 'agent'.*expected a float tensor of shape \(2, \d, \d\)"):
        env.step(td)
    td["agent"][ACTION] = good.long()
    with pytest.raises(MarlkitError, match=r"group 'agent'.*dtype torch\.int64"):
        env.step(td)


def test_discrete_action_must_be_integer():
    env = make_env("mpe/simple_adversary_v3", num_envs=2, seed=0)
    td = env.rand_action(env.reset())
    td["agent"][ACTION] = td["agent"][ACTION].float()
    with pytest.raises(MarlkitError, match=r"group 'agent'.*integer tensor of indices in \[0, 5\)"):
        env.step(td)


def test_nan_reward_names_env_and_key():
    env = make_env("helper_envs:NanRewardEnv", num_envs=2, seed=0, nan_at=2)
    td = env.step(env.rand_action(env.reset()))
    with pytest.raises(FloatingPointError, match=r"env 'helper_envs:NanRewardEnv'.*\('agent', 'reward'\)"):
        env.step(env.rand_action(td))


def test_nan_observation_names_env_and_key():
    env = make_env("helper_envs:NanRewardEnv", num_envs=2, seed=0, nan_at=1, nan_in="obs")
    with pytest.raises(FloatingPointError, match=r"env 'helper_envs:NanRewardEnv'.*'observation'"):
        env.step(env.rand_action(env.reset()))


def test_heterogeneous_observation_sizes_in_one_group():
    group_map = {"all": ["adversary_0", "agent_0", "agent_1"]}
    with pytest.raises(MarlkitError, match=r"group 'all'.*'adversary_0': \(8,\).*'agent_0': \(10,\).*pad_observations"):
        make_env("mpe/simple_adversary_v3", num_envs=2, group_map=group_map)
    env = make_env("mpe/simple_adversary_v3", num_envs=2, group_map=group_map, pad_observations=True)
    assert env.groups["all"].obs_shape == (10,)
    td = env.step(env.rand_action(env.reset()))
    assert td["all"]["observation"].shape == (2, 3, 10)


def test_mixed_action_kinds_in_one_group_fail_clearly():
    with pytest.raises(MarlkitError, match="different action spaces"):
        make_env(
            "envs/scout_carrier",
            num_envs=2,
            group_map={"all": ["scout_0", "carrier_0", "carrier_1"]},
            pad_observations=True,
        )


def test_bad_group_map_lists_missing_agents():
    with pytest.raises(MarlkitError, match=r"missing: \['agent_2'\]"):
        make_env("vmas/navigation", num_envs=2, n_agents=3, group_map={"a": ["agent_0", "agent_1"]})


def test_action_on_wrong_device_is_refused():
    env = make_env("vmas/navigation", num_envs=2, n_agents=2)
    td = TensorDict({"agent": {ACTION: torch.zeros(2, 2, 2, device="meta")}}, batch_size=[2])  # no device cast
    with pytest.raises(MarlkitError, match="is on meta but env 'vmas/navigation' runs on cpu"):
        env.step(td)


def test_cli_prints_one_line_and_exits_2(capsys):
    assert main(["demo", "--env", "vmas/navigaton"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "navigation" in err
