"""Every adapter honours the same contract: specs, shapes, time limits, auto-reset, determinism."""

from __future__ import annotations

import pytest
import torch

from marlkit import Box, Discrete, make_env
from marlkit.keys import ACTION, ACTION_MASK, ALIVE, DONE, NEXT, OBS, REWARD, STATE, TERMINATED, TRUNCATED
from marlkit.training.rollout import RolloutCollector

# name, kwargs, name of the time-limit kwarg
ADAPTERS = [
    ("vmas/navigation", {"n_agents": 3}, "max_steps"),
    ("vmas/navigation", {"n_agents": 2, "continuous_actions": False}, "max_steps"),
    ("mpe/simple_spread_v3", {"continuous_actions": True}, "max_cycles"),
    ("mpe/simple_adversary_v3", {}, "max_cycles"),
    ("mamujoco/HalfCheetah-2x3", {}, "max_episode_steps"),
    ("gym/Pendulum-v1", {}, "max_episode_steps"),
    ("gym/CartPole-v1", {}, "max_episode_steps"),
    ("envs/rendezvous", {"n_agents": 4}, "max_steps"),
    ("envs/scout_carrier", {"n_carriers": 2}, "max_steps"),
    ("vmas.scenarios.balance:Scenario", {"n_agents": 3}, "max_steps"),
    ("mpe2.simple_tag_v3:parallel_env", {}, "max_cycles"),
    ("mpe2.simple_spread_v3:env", {}, "max_cycles"),  # an AEC env, converted to parallel
    ("lbf/Foraging-8x8-2p-2f-coop-v3", {}, "max_episode_steps"),
    ("rware/rware-tiny-2ag-v2", {}, "max_steps"),
]
IDS = [f"{n}-{i}" for i, (n, _, _) in enumerate(ADAPTERS)]
NUM_ENVS = 3


def _env(name, kwargs, limit_key, limit, seed=0, num_envs=NUM_ENVS):
    return make_env(name, num_envs=num_envs, seed=seed, **{**kwargs, limit_key: limit})


def _rollout(env, steps):
    collector = RolloutCollector(env, env.rand_action, steps)
    collector.reset()
    return collector.collect()[0]


@pytest.mark.parametrize(("name", "kwargs", "limit_key"), ADAPTERS, ids=IDS)
def test_specs_match_data(name, kwargs, limit_key):
    env = _env(name, kwargs, limit_key, 50)
    td = env.reset()
    assert td.batch_size == torch.Size([NUM_ENVS])
    assert td[STATE].shape == (NUM_ENVS, env.state_dim)
    for _ in range(4):
        acted = env.rand_action(td)
        td = env.step(acted)
    for g, spec in env.groups.items():
        assert len(spec.agents) == spec.n_agents
        assert td[g][OBS].shape == (NUM_ENVS, spec.n_agents, *spec.obs_shape)
        assert td[g][OBS].dtype == torch.float32
        for key in (REWARD, TERMINATED, TRUNCATED, ALIVE):
            assert td[g][key].shape == (NUM_ENVS, spec.n_agents), key
        assert td[g][TERMINATED].dtype == td[g][TRUNCATED].dtype == torch.bool
        assert td[NEXT][g][OBS].shape == td[g][OBS].shape
        action = acted[g][ACTION]
        assert action.shape == (NUM_ENVS, spec.n_agents, *spec.action_shape)
        if isinstance(spec.action, Box):
            low, high = spec.action.bounds("cpu")
            assert bool(((action >= low) & (action <= high)).all())
        else:
            assert isinstance(spec.action, Discrete)
            assert bool(((action >= 0) & (action < spec.action.n)).all())
        assert (ACTION_MASK in td[g].keys()) == spec.has_action_mask
    assert td[NEXT][STATE].shape == (NUM_ENVS, env.state_dim)
    assert td[DONE].shape == (NUM_ENVS,)


@pytest.mark.parametrize(("name", "kwargs", "limit_key"), ADAPTERS, ids=IDS)
def test_time_limit_is_truncation_and_final_obs_is_kept(name, kwargs, limit_key):
    limit = 4
    short = _env(name, kwargs, limit_key, limit)
    long = _env(name, kwargs, limit_key, 100)  # same seed: the same episode, without the time limit
    td_s, td_l = short.reset(), long.reset()
    assert torch.equal(td_s[STATE], td_l[STATE])
    for t in range(1, limit + 1):
        td_s = short.rand_action(td_s)
        for g in short.groups:
            td_l[g][ACTION] = td_s[g][ACTION]
        td_s, td_l = short.step(td_s), long.step(td_l)
        ended = bool(td_s[DONE].any())
        if t < limit:
            if ended:  # a real termination happened first (e.g. CartPole falling): nothing more to check
                return
            continue
        assert bool(td_s[DONE].all())
        for g in short.groups:
            alive_before = ~td_l[g][TERMINATED]
            assert bool(td_s[g][TRUNCATED][alive_before].all())
            assert not bool(td_l[g][TRUNCATED].any())
            assert torch.equal(td_s[g][TERMINATED], td_l[g][TERMINATED])
            # The final observation is the one the un-truncated twin reached ...
            assert torch.allclose(td_s[NEXT][g][OBS], td_l[g][OBS])
            assert torch.equal(td_s[g][REWARD], td_l[g][REWARD])
        assert torch.allclose(td_s[NEXT][STATE], td_l[STATE])
        # ... while the observation to act on next comes from a fresh episode.
        assert not torch.equal(td_s[STATE], td_s[NEXT][STATE])


@pytest.mark.parametrize(("name", "kwargs", "limit_key"), ADAPTERS, ids=IDS)
def test_same_seed_same_rollout(name, kwargs, limit_key):
    a = _rollout(_env(name, kwargs, limit_key, 5, seed=3), 12)
    b = _rollout(_env(name, kwargs, limit_key, 5, seed=3), 12)
    c = _rollout(_env(name, kwargs, limit_key, 5, seed=4), 12)
    assert (a == b).all()
    assert not torch.equal(a[STATE], c[STATE])


def test_vmas_partial_reset_keeps_other_copies():
    env = make_env(
        "envs/rendezvous", num_envs=4, seed=0, n_agents=2, max_steps=50, terminate_on_arrival=True, goal_radius=5.0
    )  # every copy "arrives" at once: terminated, not truncated
    td = env.step(env.rand_action(env.reset()))
    assert bool(td[DONE].all())
    assert bool(td["agent"][TERMINATED].all()) and not bool(td["agent"][TRUNCATED].any())


def test_agents_leaving_mid_episode_are_masked():
    env = make_env("envs/scout_carrier", num_envs=8, seed=0, n_carriers=2, max_steps=200, radius=0.6)
    batch = _rollout(env, 60)
    alive = batch["carrier"][ALIVE]
    left = ~alive
    assert bool(left.any()), "no carrier ever arrived; the test needs a mid-episode termination"
    # A carrier that is not alive gets no reward and a zero observation ...
    assert bool((batch["carrier"][REWARD][left] == 0).all())
    assert bool((batch["carrier"][OBS][left] == 0).all())
    # ... and it left by terminating on its previous step.
    prev_alive = alive[:, :-1] & ~alive[:, 1:] & ~batch[DONE][:, :-1, None]
    assert bool(batch["carrier"][TERMINATED][:, :-1][prev_alive].all())


def test_action_mask_is_exposed_and_respected():
    env = make_env("helper_envs:MaskedEnv", num_envs=5, seed=0)
    assert env.groups["player"].has_action_mask
    batch = _rollout(env, 12)
    mask = batch["player"][ACTION_MASK]
    chosen = torch.gather(mask, -1, batch["player"][ACTION].unsqueeze(-1))
    assert bool(chosen.all())
    assert bool((batch["player"][REWARD] == 1).all())
    # The reached step's mask rides with the reached observation (t = obs), across auto-resets too.
    reached = batch[NEXT]["player"]
    legal = torch.nn.functional.one_hot(reached[OBS][..., 0].long() % 3, 3).bool()
    assert torch.equal(reached[ACTION_MASK], legal)


def test_vmas_envs_do_not_share_a_random_stream():
    # VMAS keeps one global random state; marlkit gives every env its own, so another env's resets
    # (e.g. evaluation) cannot change a training env's episodes.
    def first_states(disturb: bool) -> list[torch.Tensor]:
        env = make_env("vmas/navigation", num_envs=2, seed=0, n_agents=2, max_steps=3)
        other = make_env("vmas/navigation", num_envs=2, seed=5, n_agents=2, max_steps=3)
        td, states = env.reset(), []
        for _ in range(9):
            if disturb:
                other.reset(seed=7)
            td = env.step(env.rand_action(td))
            states.append(td[STATE])
        return states

    for a, b in zip(first_states(False), first_states(True), strict=True):
        assert torch.equal(a, b)


def test_mamujoco_passes_agent_obsk_through():
    near = make_env("mamujoco/HalfCheetah-2x3", num_envs=1, agent_obsk=0)
    far = make_env("mamujoco/HalfCheetah-2x3", num_envs=1, agent_obsk=1)
    assert near.groups["agent"].obs_dim < far.groups["agent"].obs_dim
    assert near.state_source == "env" and near.state_dim == far.state_dim


@pytest.mark.parametrize("workers", [0, 1])
def test_observation_padding_matches_supersuit(workers):
    """marlkit zero-pads heterogeneous observations in place (SuperSuit's wrapper cost 1.4 ms per step
    of HalfCheetah-6x1); the result must be SuperSuit's, number for number, with and without workers."""
    supersuit = pytest.importorskip("supersuit")
    from mpe2 import simple_adversary_v3

    from marlkit.adapters.pettingzoo import PettingZooEnv

    group_map = {"all": ["adversary_0", "agent_0", "agent_1"]}

    def padded():
        return supersuit.pad_observations_v0(simple_adversary_v3.parallel_env(max_cycles=10))

    def plain():
        return simple_adversary_v3.parallel_env(max_cycles=10)

    reference = PettingZooEnv(padded, 3, torch.device("cpu"), 5, name="ref", group_map=group_map)
    native = PettingZooEnv(
        plain, 3, torch.device("cpu"), 5, name="native", group_map=group_map, pad_observations=True, workers=workers
    )
    assert native.groups["all"].obs_shape == reference.groups["all"].obs_shape == (10,)
    ref_td, td = reference.reset(), native.reset()
    torch.manual_seed(0)
    for _ in range(25):  # across the 10-step episodes' resets
        action = reference.rand_action(ref_td)
        ref_td, td = reference.step(action), native.step(action)
        assert (td == ref_td).all()
        assert (td["all"][OBS][:, 0, 8:] == 0).all()  # the adversary sees 8 numbers
    native.close()


@pytest.mark.parametrize("kind", ["distance", "progress"])
def test_private_goals_reward_is_computed_from_what_the_agents_see(kind):
    """Each agent sees its goal relative to itself (obs[2:4]) and nothing of the others; the shared
    reward is minus the mean distance (or the decrease of the summed distance) plus the arrival bonus."""
    env = make_env("envs/private_goals", num_envs=4, seed=3, n_agents=3, reward=kind, goal_radius=0.3)
    td = env.reset()
    assert env.groups["agent"].obs_shape == (4,)
    before = torch.linalg.vector_norm(td["agent"][OBS][..., 2:4], dim=-1)
    for _ in range(3):
        td = env.step(env.rand_action(td))
        after = torch.linalg.vector_norm(td[NEXT]["agent"][OBS][..., 2:4], dim=-1)
        bonus = 0.1 * (after < 0.3).float().mean(-1)
        expected = (-after.mean(-1) if kind == "distance" else before.sum(-1) - after.sum(-1)) + bonus
        reward = td["agent"][REWARD]
        assert torch.allclose(reward, expected.unsqueeze(-1).expand_as(reward), atol=1e-5)
        before = after


def test_lbf_terminates_when_all_food_is_collected_and_passes_rewards_per_agent():
    import gymnasium as gym

    from marlkit.adapters.families import lbf_terminal
    from marlkit.adapters.tuple_agents import TupleAgentsAsParallel

    env = TupleAgentsAsParallel(gym.make("Foraging-8x8-2p-2f-coop-v3", disable_env_checker=True), lbf_terminal)
    twin = gym.make("Foraging-8x8-2p-2f-coop-v3", disable_env_checker=True)
    obs, _ = env.reset(seed=5)
    twin_obs, _ = twin.reset(seed=5)
    assert all(torch.equal(torch.as_tensor(obs[f"agent_{i}"]), torch.as_tensor(twin_obs[i])) for i in range(2))
    for t in range(60):
        actions = {a: (t * 7 + i) % 6 for i, a in enumerate(env.agents)}
        _, rewards, term, trunc, _ = env.step(actions)
        _, twin_rewards, done, _, _ = twin.step(tuple(actions.values()))
        assert [rewards["agent_0"], rewards["agent_1"]] == [float(r) for r in twin_rewards]
        if done:
            assert trunc["agent_0"] and not term["agent_0"], "the step limit is a truncation"
            break
    env.reset(seed=5)
    env.env.unwrapped.field[:] = 0  # every food item gone: the next step ends the episode for real
    _, _, term, trunc, _ = env.step({a: 0 for a in env.agents})
    assert term == {"agent_0": True, "agent_1": True}
    assert trunc == {"agent_0": False, "agent_1": False}
    assert env.agents == []


@pytest.mark.parametrize(
    ("name", "kwargs", "hide"), [("gym/Pendulum-v1", {}, [2]), ("vmas/navigation", {"n_agents": 2}, [0, 5])]
)
def test_hidden_observation_entries_are_removed_and_nothing_else_changes(name, kwargs, hide):
    full = make_env(name, num_envs=3, seed=7, **kwargs)
    partial = make_env(name, num_envs=3, seed=7, hide=hide, **kwargs)
    for g, spec in full.groups.items():
        assert partial.groups[g].obs_shape == (spec.obs_shape[0] - len(hide),)
    keep = [i for i in range(next(iter(full.groups.values())).obs_shape[0]) if i not in hide]
    a, b = full.reset(), partial.reset()
    for _ in range(5):
        for g in full.groups:
            assert torch.equal(a[g][OBS][..., keep], b[g][OBS])
        assert torch.equal(a[STATE], b[STATE])  # the global state keeps everything
        a = full.rand_action(a)
        for g in full.groups:
            b[g][ACTION] = a[g][ACTION]
        a, b = full.step(a), partial.step(b)
        for g in full.groups:
            assert torch.equal(a[NEXT][g][OBS][..., keep], b[NEXT][g][OBS])
            assert torch.equal(a[g][REWARD], b[g][REWARD])


@pytest.mark.parametrize(
    ("hide", "message"), [([3], "indices must be in 0..2"), ([0, 1, 2], "removes every"), (2, "list of")]
)
def test_bad_hide_fails_in_one_line(hide, message):
    from marlkit.core.errors import MarlkitError

    with pytest.raises(MarlkitError, match=message) as err:
        make_env("gym/Pendulum-v1", num_envs=1, hide=hide)
    assert "\n" not in str(err.value)


def test_cue_recall_needs_memory():
    # At the answering step every observation is the same whatever the cue: a feed-forward policy's
    # expected reward is 1 / n_cues. Answering with the cue seen at the start earns 1.
    env = make_env("envs/cue_recall", num_envs=64, seed=0, n_agents=2, n_cues=4, delay=3)
    td = env.reset()
    cue = td["agent"][OBS][..., :4].argmax(-1)
    assert bool((td["agent"][OBS][..., :4].sum(-1) == 1).all())
    for t in range(4):
        td["agent"][ACTION] = cue  # a policy that remembers
        td = env.step(td)
        if t < 3:
            assert bool((td["agent"][OBS][..., :4] == 0).all()), "the cue must be hidden after the first step"
            assert not bool(td[DONE].any())
    final_obs = td[NEXT]["agent"][OBS]
    assert bool((final_obs == final_obs[:1, :1]).all()), "the last observation must not depend on the cue"
    assert bool(td[DONE].all()) and bool(td["agent"][TERMINATED].all())
    assert bool((td["agent"][REWARD] == 1).all())
    # The state shows every cue (for centralized critics).
    assert env.state_dim == 2 * 4 + 1


def test_team_reward_gives_every_agent_the_sum_of_all_agents_rewards_in_every_group():
    from marlkit.core.errors import MarlkitError

    def rollout(**kwargs):
        env = make_env("mpe/simple_tag_v3", num_envs=3, seed=4, max_cycles=10, **kwargs)  # two groups
        td = env.reset(4)
        out = []
        for _ in range(5):
            td = env.step(env.rand_action(td))  # the env's generator, seeded by reset: the same actions
            out.append({g: td[g][REWARD].clone() for g in env.groups})
        env.close()
        return out

    own, team = rollout(), rollout(team_reward=True)
    for own_step, team_step in zip(own, team, strict=True):
        total = sum(r.sum(-1) for r in own_step.values())
        assert bool((total != 0).any()), "no reward at all: the test would prove nothing"
        for r in team_step.values():
            torch.testing.assert_close(r, total.unsqueeze(-1).expand_as(r))  # same rollout, same sums: exact
    with pytest.raises(MarlkitError, match="team_reward must be true or false"):
        make_env("mpe/simple_spread_v3", team_reward="yes")
