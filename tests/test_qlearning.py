"""Value-based learners (DQN / IQL / VDN / QMIX): n-step returns against a loop, the mixer's monotonicity,
VDN's sum, double-Q targets and action masks against hand computations, and bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.algorithms.mixers import QMixer
from marlkit.algorithms.qlearning import QLearning
from marlkit.blocks.returns import n_step_returns
from marlkit.core.errors import MarlkitError
from marlkit.core.options import with_overrides
from marlkit.core.specs import Box, Discrete, GroupSpec
from marlkit.keys import ACTION, ACTION_MASK, N_STEP_DISCOUNT, N_STEP_RETURN, NEXT, OBS
from marlkit.learner import EnvInfo
from marlkit.training.rollout import RolloutCollector


def make_learner(name: str, groups, state_dim: int, **overrides) -> QLearning:
    spec = algorithm(name)
    cfg = with_overrides(spec.default_config(), {"hidden": (16, 16), "batch_size": 32, **overrides})
    learner = spec.build(cfg, EnvInfo("test", groups, state_dim), 0)
    assert isinstance(learner, QLearning)
    return learner


# ------------------------------------------------------------------ n-step
def n_step_loop(reward, terminated, ended, gamma, n):
    """One env, one agent, plain Python: the window runs until n steps, the episode's end or the batch's end."""
    steps = len(reward)
    out = []
    for t in range(steps):
        ret, discount, k = 0.0, 1.0, t
        for j in range(n):
            if t + j >= steps:
                break
            ret += discount * reward[t + j]
            discount *= gamma
            k = t + j
            if terminated[t + j]:
                discount = 0.0
            if ended[t + j]:
                break
        out.append((ret, discount, k))
    return out


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(1, 12),
    n=st.integers(1, 5),
    gamma=st.floats(0.5, 1.0),
    data=st.data(),
)
def test_n_step_return_matches_a_loop(steps, n, gamma, data):
    reward = data.draw(st.lists(st.floats(-5, 5), min_size=steps, max_size=steps))
    terminated = data.draw(st.lists(st.booleans(), min_size=steps, max_size=steps))
    truncated = data.draw(st.lists(st.booleans(), min_size=steps, max_size=steps))
    ended = [a or b for a, b in zip(terminated, truncated, strict=True)]
    ret, discount, last = n_step_returns(
        torch.tensor([reward], dtype=torch.float64),
        torch.tensor([terminated]),
        torch.tensor([ended]),
        gamma,
        n,
    )
    for t, (r, d, k) in enumerate(n_step_loop(reward, terminated, ended, gamma, n)):
        assert ret[0, t].item() == pytest.approx(r, abs=1e-9)
        assert discount[0, t].item() == pytest.approx(d, abs=1e-12)
        assert last[0, t].item() == k


def test_n_step_termination_cuts_and_truncation_bootstraps():
    # Episode of 3 steps ending by termination, then one ending by a time limit after 2 steps.
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    terminated = torch.tensor([[False, False, True, False, False]])
    truncated = torch.tensor([[False, False, False, False, True]])
    ret, discount, last = n_step_returns(reward, terminated, terminated | truncated, 0.5, 3)
    assert ret.tolist() == [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 4 + 0.5 * 5, 5.0]]
    assert discount.tolist() == [[0.0, 0.0, 0.0, 0.25, 0.5]]  # truncation keeps gamma^k
    assert last.tolist() == [[2, 2, 2, 4, 4]]


# ------------------------------------------------------------------ mixers
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), agents=st.integers(1, 5))
def test_qmix_mixer_is_monotone_in_every_utility(seed, agents):
    torch.manual_seed(seed)
    mixer = QMixer(agents, state_dim=6, embed=8, hyper_hidden=16)
    q = (torch.randn(64, agents) * 5).requires_grad_(True)
    state = torch.randn(64, 6) * 3
    mixer(q, state).sum().backward()
    assert q.grad is not None and bool((q.grad >= 0).all())


def test_vdn_total_is_the_sum_of_the_agents_utilities():
    spec = GroupSpec("agent", ("agent_0", "agent_1", "agent_2"), (4,), Discrete(5))
    learner = make_learner("vdn", {"agent": spec}, state_dim=12)
    q = torch.randn(7, 3)
    assert torch.equal(learner.mix(learner.mixer, q, torch.randn(7, 12)), q.sum(-1))
    assert learner.mixer is None


# ------------------------------------------------------------------ targets
def constant_q(learner: QLearning, online: list[float], target: list[float]) -> None:
    """Every agent's network outputs ``online`` (target network: ``target``) whatever it sees."""
    for nets, values in ((learner.q, online), (learner.target_q, target)):
        last = nets["agent"].net[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor(values))


@pytest.mark.parametrize(
    ("double_q", "forbid_1", "expected"),
    [(True, False, 5.0), (False, False, 30.0), (True, True, 30.0), (False, True, 30.0)],
)
def test_double_q_target_matches_hand_computation(double_q, forbid_1, expected):
    # Online Q(o', .) = [1, 3, 2], target Q'(o', .) = [10, 5, 30]. Double Q: a' = argmax online = 1, so
    # Q'(o', 1) = 5; plain max: 30. With action 1 illegal at o', double Q picks a' = 2: 30.
    spec = GroupSpec("agent", ("agent_0",), (2,), Discrete(3), has_action_mask=True)
    learner = make_learner("dqn", {"agent": spec}, state_dim=2, double_q=double_q)
    constant_q(learner, [1.0, 3.0, 2.0], [10.0, 5.0, 30.0])
    mask = torch.tensor([[[True, not forbid_1, True]]])
    from tensordict import TensorDict

    rows = TensorDict({NEXT: {"agent": {OBS: torch.zeros(1, 1, 2), ACTION_MASK: mask}}}, batch_size=[1])
    value = learner.next_values("agent", rows)
    assert value.tolist() == [[expected]]
    # y = R + discount * Q'(o', a'): with R = 1 and a 3-step discount 0.9^3.
    assert (1.0 + 0.9**3 * value).item() == pytest.approx(1.0 + 0.729 * expected)


@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_masked_actions_are_never_chosen_nor_bootstrapped(algo):
    # MaskedEnv allows only action t % 3 at step t, and both agents observe t.
    env = make_env("helper_envs:MaskedEnv", 4, "cpu", 0)
    learner = make_learner(algo, env.groups, env.state_dim, warmup_frames=0, eps_start=0.5, eps_final=0.5)
    batch, _ = RolloutCollector(env, learner.act, 30).collect()
    taken = batch["player"][ACTION]
    assert bool((taken == batch["player"][OBS][..., 0].long() % 3).all()), "an illegal action was taken"
    learner.store(batch)
    rows, _, _ = learner.replay.sample(64)
    # A net that prefers the illegal actions: any max that ignored the mask would pick one of them.
    next_obs = rows[NEXT, "player", OBS]
    legal_next = next_obs[..., 0].long() % 3
    chosen = []
    original = learner.agent_q

    def spy(nets, g, obs):
        q = original(nets, g, obs)
        bias = torch.nn.functional.one_hot(obs[..., 0].long() % 3, 3).float() * -100.0
        return q + bias

    learner.agent_q = spy  # type: ignore[method-assign]
    values = learner.next_values("player", rows)
    for k in range(3):
        q_k = spy(learner.target_q, "player", next_obs)[..., k]
        chosen.append(torch.isclose(values, q_k))
    picked = torch.stack(chosen, -1)
    assert bool(picked.gather(-1, legal_next.unsqueeze(-1)).all()), "a target bootstrapped from an illegal action"


def test_vdn_and_qmix_stored_rows_carry_one_team_return():
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=10, continuous_actions=False)
    learner = make_learner("qmix", env.groups, env.state_dim, warmup_frames=0, team_reward="sum", n_step=2)
    batch, _ = RolloutCollector(env, learner.act, 12).collect()
    learner.store(batch)
    team = batch["agent"]["reward"].sum(-1)
    team_terminated = batch["agent"]["terminated"].all(-1)
    expected, _, _ = n_step_returns(team, team_terminated, batch["done"] | team_terminated, 0.99, 2)
    assert torch.allclose(learner.replay.storage[N_STEP_RETURN][: learner.replay.size], expected.reshape(-1))
    assert N_STEP_DISCOUNT in learner.replay.storage.keys()


def test_qmix_state_norm_feeds_the_mixer_the_standardized_state():
    """On LBF's raw state (grid coordinates), the mixer reads (state - mean) / std of the states stored so far."""
    env = make_env("lbf/Foraging-8x8-2p-2f-coop-v3", 4, "cpu", 0)
    learner = make_learner("qmix", env.groups, env.state_dim, warmup_frames=0, state_norm=True)
    batch, _ = RolloutCollector(env, learner.act, 12).collect()
    learner.store(batch)
    states = batch["state"].reshape(-1, env.state_dim).double()
    torch.testing.assert_close(learner.state_stats.mean, states.mean(0))  # exact moments up to float64 rounding
    torch.testing.assert_close(learner.state_stats.var, states.var(0, unbiased=False))
    q, state = torch.randn(5, 2), batch["state"][0, :5]
    by_hand = learner.mixer(q, ((state.double() - states.mean(0)) / (states.var(0, unbiased=False) + 1e-8).sqrt())
                            .clamp(-10, 10).float())  # fmt: skip
    torch.testing.assert_close(learner.mix(learner.mixer, q, state), by_hand)
    assert {"state_stats.mean", "state_stats.var", "state_stats.count"} <= set(learner.state_dict())
    with pytest.raises(MarlkitError, match="reads none"):
        make_learner("vdn", env.groups, env.state_dim, state_norm=True)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("algo", ["qmix", "vdn", "iql", "dqn"])
def test_continuous_actions_fail_in_one_line(algo):
    spec = GroupSpec("agent", ("agent_0", "agent_1"), (3,), Box((-1.0,), (1.0,)))
    with pytest.raises(MarlkitError, match="needs discrete actions") as err:
        make_learner(algo, {"agent": spec}, state_dim=6)
    assert "\n" not in str(err.value)


def test_differing_rewards_without_a_team_rule_fail_in_one_line():
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=10, continuous_actions=False, shared_rew=False)
    learner = make_learner("vdn", env.groups, env.state_dim, warmup_frames=0)
    batch, _ = RolloutCollector(env, learner.act, 12).collect()
    with pytest.raises(MarlkitError, match="team_reward=sum") as err:
        learner.update(batch)
    assert "\n" not in str(err.value)


def test_dueling_head_is_value_plus_centred_advantages():
    spec = GroupSpec("agent", ("agent_0",), (2,), Discrete(3))
    learner = make_learner("dqn", {"agent": spec}, state_dim=2, dueling=True)
    last = learner.q["agent"].net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, 1.0, 2.0, 6.0]))  # V = 10, A = [1, 2, 6] (mean 3)
    q = learner.agent_q(learner.q, "agent", torch.zeros(4, 1, 2))
    assert torch.allclose(q, torch.tensor([8.0, 9.0, 13.0]).expand(4, 1, 3))


def test_prioritized_replay_stores_the_td_errors_of_the_sampled_rows():
    env = make_env("helper_envs:SignalGame", 4, "cpu", 0)
    learner = make_learner("vdn", env.groups, env.state_dim, warmup_frames=0, prioritized=True)
    learner.store(RolloutCollector(env, learner.act, 20).collect()[0])
    rows, index, weights = learner.replay.sample(8)
    assert weights is not None and bool((weights <= 1).all())
    sample = learner.replay.sample
    learner.replay.sample = lambda n: (rows, index, weights)  # type: ignore[method-assign]
    learner.gradient_step()
    learner.replay.sample = sample  # type: ignore[method-assign]
    stored = learner.replay.priorities[index]
    assert bool((stored != 1.0).all()), "the sampled rows kept their initial priority"
    assert bool((stored > 0).all())


@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_normalized_rewards_make_learning_invariant_to_the_reward_scale(algo):
    # reward_norm divides returns by the rewards' running std: rewards times 10 must give the same updates.
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=10, continuous_actions=False)
    batch, _ = RolloutCollector(env, env.rand_action, 20, reuse_buffer=False).collect()
    scaled = batch.clone()
    scaled["agent", "reward"] = batch["agent", "reward"] * 10

    def trained(rows, reward_norm: bool) -> QLearning:
        torch.manual_seed(0)
        learner = make_learner(algo, env.groups, env.state_dim, warmup_frames=0, reward_norm=reward_norm,
                               team_reward="sum")  # fmt: skip
        learner.store(rows)
        for _ in range(5):
            learner.gradient_step()
        return learner

    raw, times_ten = trained(batch, True), trained(scaled, True)
    assert times_ten.reward_stats.var / raw.reward_stats.var == pytest.approx(100, rel=1e-6)
    for a, b in zip(raw.parameters(), times_ten.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Without the normalization the scale shows in the updates.
    raw, times_ten = trained(batch, False), trained(scaled, False)
    pairs = zip(raw.parameters(), times_ten.parameters(), strict=True)
    assert not all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in pairs)


@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_centered_rewards_make_learning_invariant_to_a_shift_and_a_scale(algo):
    # reward_center subtracts the running mean too (EPyMARL's standardise_rewards): a*r + b gives the same updates.
    env = make_env("vmas/navigation", 4, "cpu", 0, n_agents=2, max_steps=10, continuous_actions=False)
    batch, _ = RolloutCollector(env, env.rand_action, 20, reuse_buffer=False).collect()
    moved = batch.clone()
    moved["agent", "reward"] = batch["agent", "reward"] * 10 + 3

    def trained(rows, center: bool) -> QLearning:
        torch.manual_seed(0)
        learner = make_learner(algo, env.groups, env.state_dim, warmup_frames=0, reward_norm=True,
                               reward_center=center, team_reward="sum")  # fmt: skip
        learner.store(rows)
        for _ in range(5):
            learner.gradient_step()
        return learner

    for a, b in zip(trained(batch, True).parameters(), trained(moved, True).parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    pairs = zip(trained(batch, False).parameters(), trained(moved, False).parameters(), strict=True)
    assert not all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in pairs), "the shift did not show"
    with pytest.raises(MarlkitError, match="needs reward_norm=true and n_step=1"):
        make_learner(algo, env.groups, env.state_dim, reward_center=True)


@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_time_limit_terminal_stops_bootstrapping_at_the_time_limit_only(algo):
    env = make_env("mpe/simple_spread_v3", 2, "cpu", 0, max_cycles=5)  # truncates every 5 steps
    batch, _ = RolloutCollector(env, env.rand_action, 12, reuse_buffer=False).collect()
    truncated = batch["agent", "truncated"].all(-1)
    assert bool(truncated.any()) and not bool(batch["agent", "terminated"].any())

    def discounts(limit_terminal: bool) -> torch.Tensor:
        learner = make_learner(algo, env.groups, env.state_dim, warmup_frames=0, time_limit_terminal=limit_terminal,
                               team_reward="sum")  # fmt: skip
        learner.store(batch)
        stored = (
            learner.replay.storage[N_STEP_DISCOUNT]
            if algo == "qmix"
            else learner.replay.storage["agent"][N_STEP_DISCOUNT]
        )
        return stored[: learner.replay.size].reshape(*batch.shape, *stored.shape[1:])

    bootstrapped, cut = discounts(False), discounts(True)
    at_limit = truncated if algo == "qmix" else truncated.unsqueeze(-1).expand_as(cut)
    assert bool((bootstrapped[at_limit] == 0.99).all())  # the time limit bootstraps by default
    assert bool((cut[at_limit] == 0).all())
    torch.testing.assert_close(cut[~at_limit], bootstrapped[~at_limit])  # elsewhere nothing changes
