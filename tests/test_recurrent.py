"""Recurrent group networks: the GRU cell against torch's, sequences against per-episode runs from a zero
state (resets included), per-agent slices against standalone networks, and per-agent updates."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit import make_env
from marlkit.algorithms import algorithm
from marlkit.algorithms.onpolicy import masked_mean
from marlkit.core.checkpoint import seed_everything
from marlkit.core.errors import MarlkitError
from marlkit.core.options import with_overrides
from marlkit.keys import CRITIC_STATE, DONE, RECURRENT_STATE, RECURRENT_STATE_OUT
from marlkit.networks.recurrent import GRUNet, RecurrentGroup, reset_state, unroll
from marlkit.training.rollout import RolloutCollector


def test_gru_cell_matches_torch():
    torch.manual_seed(0)
    net = GRUNet(5, 2, encoder=(), hidden=7)
    reference = torch.nn.GRUCell(5, 7)
    with torch.no_grad():
        reference.weight_ih.copy_(net.input_gates.weight)
        reference.bias_ih.copy_(net.input_gates.bias)
        reference.weight_hh.copy_(net.hidden_gates.weight)
        reference.bias_hh.copy_(net.hidden_gates.bias)
    x, h = torch.randn(11, 5), torch.randn(11, 7)
    out = net(torch.cat([x, h], -1))
    assert torch.allclose(out[:, 2:], reference(x, h), atol=1e-6)
    assert torch.allclose(out[:, :2], net.head(reference(x, h)), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(share=st.booleans(), steps=st.integers(1, 9), seed=st.integers(0, 1000))
def test_sequence_with_resets_equals_each_episode_from_a_zero_state(share, steps, seed):
    torch.manual_seed(seed)
    batch, n = 3, 2
    group = RecurrentGroup(4, 3, n, share, encoder=(8,), hidden=5)
    x = torch.randn(batch, steps, n, 4)
    starts = torch.rand(batch, steps) < 0.3
    h0 = torch.randn(batch, n, 5)  # the state carried in from before the chunk
    out, last = group.sequence(x, h0, starts)
    for b in range(batch):
        h = h0[b : b + 1]
        for t in range(steps):
            if starts[b, t]:
                h = torch.zeros_like(h)  # a fresh episode: brute force from zero
            y = group.net(torch.cat([x[b : b + 1, t], h], -1))
            h = y[..., 3:]
            assert torch.allclose(out[b, t], y[0, :, :3], atol=1e-6)
        assert torch.allclose(last[b], h[0], atol=1e-6)


def test_hidden_state_resets_exactly_at_episode_starts():
    torch.manual_seed(1)
    group = RecurrentGroup(4, 3, 2, False, hidden=5)
    x, h = torch.randn(6, 2, 4), torch.randn(6, 2, 5)
    starts = torch.tensor([True, False, True, False, False, True])
    out, _ = group.step(x, h, starts)
    fresh, _ = group.step(x, torch.zeros_like(h))
    carried, _ = group.step(x, h)
    assert torch.equal(out[starts], fresh[starts])
    assert torch.equal(out[~starts], carried[~starts])
    assert not torch.allclose(fresh[~starts], carried[~starts])


def test_each_agent_equals_a_standalone_network_loaded_with_its_slice():
    torch.manual_seed(2)
    group = RecurrentGroup(4, 3, 3, False, encoder=(8,), hidden=5)
    x, h = torch.randn(7, 3, 4), torch.randn(7, 3, 5)
    out, new_h = group.step(x, h)
    for i in range(3):
        alone = GRUNet(4, 3, (8,), 5)
        alone.load_state_dict(group.net.agent_state_dict(i))
        y = alone(torch.cat([x[:, i], h[:, i]], -1))
        assert torch.allclose(out[:, i], y[:, :3], atol=1e-6)
        assert torch.allclose(new_h[:, i], y[:, 3:], atol=1e-6)


def test_a_step_on_one_agent_leaves_the_others_bit_identical():
    torch.manual_seed(3)
    group = RecurrentGroup(4, 3, 3, False, hidden=5)
    before = group.net.flat_params()
    x = torch.randn(2, 5, 3, 4)
    out, _ = group.sequence(x, group.initial_state([2]), torch.zeros(2, 5, dtype=torch.bool))
    out[:, :, 1].pow(2).sum().backward()  # agent 1's loss, through time
    torch.optim.SGD(group.parameters(), lr=0.1).step()
    after = group.net.flat_params()
    assert torch.equal(after[[0, 2]], before[[0, 2]])
    assert not torch.equal(after[1], before[1])


def test_non_positive_sizes_fail_in_one_line():
    with pytest.raises(MarlkitError, match="must be positive") as err:
        RecurrentGroup(4, 3, 2, True, hidden=0)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ recurrent on-policy learners
def recurrent_setup(algo: str, chunk_len: int, share: bool = False, steps: int = 12, num_envs: int = 3, **extra):
    """A GRU learner on cue recall: 5-step episodes, so episodes end inside rollouts and chunks."""
    seed_everything(0)
    env = make_env("envs/cue_recall", num_envs=num_envs, seed=0, n_agents=2, delay=4)
    spec = algorithm(algo)
    overrides = {"rollout_steps": steps, "network": "gru", "gru_hidden": 6, "hidden": (8,), "chunk_len": chunk_len}
    cfg = with_overrides(spec.config(), {**spec.preset, "share_actor": share, **overrides, **extra})
    learner = spec.build(cfg, env, 0)
    return env, learner, RolloutCollector(env, learner.act, steps, reuse_buffer=False)


@pytest.mark.parametrize("chunk_len,share", [(0, False), (4, False), (6, True), (3, True)])
def test_chunked_replay_reproduces_the_distributions_actions_were_drawn_from(chunk_len, share):
    _, learner, collector = recurrent_setup("mappo", chunk_len, share)
    policy = learner.policies["agent"]
    drawn: list[torch.Tensor] = []
    step = policy.step

    def recording_step(obs, h, mask=None):
        dist, h_out = step(obs, h, mask)
        drawn.append(dist)
        return dist, h_out

    policy.step = recording_step
    collector.collect()  # the second collection starts from carried, nonzero states
    drawn.clear()
    batch, _ = collector.collect()
    assert batch["agent"][RECURRENT_STATE][:, 0].abs().sum() > 0
    data = learner._prepare(batch)
    expected = learner._sequences(torch.stack(drawn, 1))
    torch.testing.assert_close(data["agent"].old_dist, expected, rtol=0, atol=1e-6)


def test_collection_resets_the_state_exactly_where_an_episode_starts():
    _, _, collector = recurrent_setup("mappo", 0)
    batch, _ = collector.collect()
    state, state_out = batch["agent"][RECURRENT_STATE], batch["agent"][RECURRENT_STATE_OUT]
    done = batch[DONE]
    for t in range(1, batch.shape[1]):
        for e in range(batch.shape[0]):
            expected = torch.zeros_like(state_out[e, t - 1]) if done[e, t - 1] else state_out[e, t - 1]
            assert torch.equal(state[e, t], expected)
    assert bool(done.any()) and bool((~done).any())


@pytest.mark.parametrize("algo", ["hatrpo", "matrpo", "itrpo"])
def test_every_accepted_recurrent_trust_region_step_keeps_kl_within_the_radius(algo):
    _, learner, collector = recurrent_setup(algo, 4, steps=20, num_envs=8)
    policy = learner.policies["agent"]
    max_kl = learner.cfg.trust_region.max_kl
    accepted = 0
    for _ in range(3):
        batch, _ = collector.collect()
        data = learner._prepare(batch)["agent"]
        before = policy.net.flat_params()
        learner.update(batch)
        with torch.no_grad():
            new = policy.dist(data.obs, data.mask, memory=data.memory)
            kl = masked_mean(policy.kl(data.old_dist, new), data.alive, (0, 1))  # per agent
        moved = (policy.net.flat_params() != before).any(-1)
        assert bool((kl[moved] <= max_kl * (1 + 1e-4)).all()), (kl, max_kl)
        accepted += int(moved.sum())
    assert accepted > 0


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
def test_recurrent_critics_replay_the_states_of_collection_in_whole_rollouts_and_in_chunks(algo):
    _, learner, collector = recurrent_setup(algo, 4, critic_network="gru")
    collector.collect()
    batch, _ = collector.collect()  # starts from carried, nonzero critic states
    stored = batch["agent"][CRITIC_STATE]
    assert stored[:, 0].abs().sum() > 0
    memory = learner._memory(batch, "agent", CRITIC_STATE, batch.shape[1])
    critic_in = learner.critic_input(batch, "agent")
    _, states = unroll(learner.critics["agent"], critic_in, memory.h0, memory.resets, 1)
    torch.testing.assert_close(reset_state(states[:, :-1], memory.resets[:, 1:]), stored[:, 1:], rtol=0, atol=1e-6)
    # The critic's training chunks (from their stored states) give the values of the whole-rollout unroll.
    _, whole, _, _ = learner.value_targets(batch, "agent")
    data = learner._prepare(batch)["agent"]
    chunked = learner.value("agent", data.critic_in, data.critic_memory)
    torch.testing.assert_close(chunked, learner._sequences(whole), rtol=0, atol=1e-5)


def test_recurrent_options_that_cannot_work_fail_in_one_line():
    for overrides, match in (
        ({"network": "gru", "chunk_len": 50}, "chunk_len must be in"),
        ({"network": "gru", "chunk_len": 7}, "must divide"),
        ({"network": "gru", "gru_hidden": 0}, "gru_hidden must be positive"),
        ({"network": "lstm"}, "network"),
        ({"critic_network": "gru"}, "network=gru too"),
    ):
        spec = algorithm("mappo")
        with pytest.raises(MarlkitError, match=match) as error:
            cfg = with_overrides(spec.config(), {**spec.preset, "rollout_steps": 20, **overrides})
            spec.build(cfg, make_env("envs/cue_recall", num_envs=2, seed=0), 0)
        assert "\n" not in str(error.value)
    with pytest.raises(MarlkitError, match="network") as error:
        with_overrides(algorithm("pets").config(), {"network": "gru"})
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ recurrent off-policy learners
def replay_setup(algo: str, **overrides):
    """A GRU replay learner (off-policy or value-based, with its preset) on cue recall: 4-step episodes
    end inside the 5-step replayed sequences; three collections stored."""
    seed_everything(0)
    env = make_env("envs/cue_recall", num_envs=4, seed=0, n_agents=2, delay=3)
    spec = algorithm(algo)
    base = {"rollout_steps": 10, "network": "gru", "gru_hidden": 6, "hidden": (8,), "chunk_len": 5,
            "warmup_frames": 0, "batch_size": 20}  # fmt: skip
    learner = spec.build(with_overrides(spec.config(), {**spec.preset, **base, **overrides}), env, 0)
    collector = RolloutCollector(env, learner.act, 10)
    for _ in range(3):
        learner.store(collector.collect()[0])
    return learner


@pytest.mark.parametrize("algo", ["masac", "maddpg"])
def test_replayed_sequences_reproduce_the_states_of_collection(algo):
    # Every stored step's state equals the actor unrolled from its sequence's first stored state: resets
    # where the previous step ended an episode, and nowhere else.
    learner = replay_setup(algo)
    rows = learner.replay.storage[: learner.replay.size]
    assert bool(rows["done"].any()), "no episode ended inside the stored sequences"
    batch_memory = learner.sample().memory  # the sampler's resets, on a random draw
    assert batch_memory is not None
    previous_done = torch.cat([torch.zeros_like(rows["done"][:, :1]), rows["done"][:, :-1]], 1)
    stored = rows["agent", RECURRENT_STATE]
    x = rows["agent", "observation"]
    _, states = unroll(learner.actors["agent"], x, stored[:, 0], previous_done.unsqueeze(-1).expand(-1, -1, 2), 4)
    replayed = reset_state(states[:, :-1], previous_done[:, 1:])
    torch.testing.assert_close(replayed, stored[:, 1:], rtol=0, atol=1e-6)


def test_zero_initial_states_replace_the_stored_ones():
    learner = replay_setup("masac")
    learner.cfg = dataclasses.replace(learner.cfg, initial_state="zero")
    memory = learner.sample().memory
    assert memory is not None and not bool(memory["agent"].h0.any())
    assert bool(learner.replay.storage["agent", RECURRENT_STATE][: learner.replay.size, 0].any())


def test_targets_continue_the_state_into_the_observation_each_step_reached():
    # Where a step did not end its episode, the observation it reached is the next step's, and the target's
    # actor output there equals the next step's output.
    learner = replay_setup("masac")
    batch = learner.sample()
    assert batch.sequences is not None
    with torch.no_grad():
        now = learner.actor_outputs(learner.actors, "agent", batch, reached=False).view(*batch.sequences, 2, -1)
        reached = learner.actor_outputs(learner.actors, "agent", batch, reached=True).view(*batch.sequences, 2, -1)
    done = batch.memory["agent"].resets[:, 1:, 0]  # reset before step t+1: step t ended an episode
    torch.testing.assert_close(reached[:, :-1][~done], now[:, 1:][~done], rtol=0, atol=1e-6)


def test_burn_in_steps_carry_no_loss_and_no_gradient():
    learner = replay_setup("masac", burn_in=2)
    batch = learner.sample()
    alive = batch.data["agent"]["alive"].view(*batch.sequences, 2)
    assert bool((alive[:, :2] == 0).all()) and bool((alive[:, 2:] > 0).any())
    out = learner.actor_outputs(learner.actors, "agent", batch, reached=False).view(*batch.sequences, 2, -1)
    params = list(learner.actors.parameters())
    warm_grads = torch.autograd.grad(out[:, :2].sum(), params, allow_unused=True, retain_graph=True)
    assert all(g is None or bool((g == 0).all()) for g in warm_grads)
    grads = torch.autograd.grad(out[:, 2:].sum(), params, allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    warm = unroll(learner.actors["agent"], batch.data["agent"]["obs"].view(*batch.sequences, 2, -1)[:, :2],
                  batch.memory["agent"].h0, batch.memory["agent"].resets[:, :2], 4)[0]  # fmt: skip
    torch.testing.assert_close(out[:, :2].detach(), warm.detach())


def test_offpolicy_recurrent_options_that_cannot_work_fail_in_one_line():
    for algo, overrides, match in (
        ("masac", {"network": "gru", "chunk_len": 3}, "must divide"),
        ("masac", {"network": "gru", "burn_in": 10}, "burn_in must be in"),
        ("masac", {"network": "gru", "prioritized": True}, "prioritized"),
        ("masac", {"network": "gru", "batch_size": 4}, "at least one sequence"),
        ("masac", {"network": "gru", "gru_hidden": 0}, "gru_hidden"),
        ("mbpo", {"network": "gru"}, "algo.network=mlp"),
    ):
        spec = algorithm(algo)
        with pytest.raises(MarlkitError, match=match) as error:
            cfg = with_overrides(spec.config(), {**spec.preset, **overrides})
            spec.build(cfg, make_env("gym/Pendulum-v1", num_envs=2, seed=0), 0)
        assert "\n" not in str(error.value)


# ------------------------------------------------------------------ recurrent Q-networks
@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_recurrent_q_networks_replay_the_states_of_collection_and_continue_them_into_targets(algo):
    learner = replay_setup(algo, team_reward="sum")
    rows = learner.replay.storage[: learner.replay.size]
    assert bool(rows["done"].any())
    previous_done = torch.cat([torch.zeros_like(rows["done"][:, :1]), rows["done"][:, :-1]], 1)
    stored = rows["agent", RECURRENT_STATE]
    x = learner._inputs("agent", rows["agent", "observation"])
    _, states = unroll(learner.q["agent"], x, stored[:, 0], previous_done.unsqueeze(-1).expand(-1, -1, 2), 4)
    torch.testing.assert_close(reset_state(states[:, :-1], previous_done[:, 1:]), stored[:, 1:], rtol=0, atol=1e-6)
    sequences, _, _, memory = learner._sample()
    with torch.no_grad():
        now, reached = learner.sequence_q(learner.q, "agent", sequences, memory["agent"])
    now, reached = now.view(*sequences.shape, 2, -1), reached.view(*sequences.shape, 2, -1)
    going_on = ~sequences["done"][:, :-1]
    torch.testing.assert_close(reached[:, :-1][going_on], now[:, 1:][going_on], rtol=0, atol=1e-6)
    learner.gradient_step()  # the whole step runs on sequences


def test_recurrent_q_options_that_cannot_work_fail_in_one_line():
    for overrides, match in (
        ({"network": "gru", "chunk_len": 3}, "must divide"),
        ({"network": "gru", "n_step": 3}, "n_step"),
        ({"network": "gru", "prioritized": True}, "prioritized"),
        ({"network": "gru", "batch_size": 4}, "at least one sequence"),
    ):
        spec = algorithm("iql")
        with pytest.raises(MarlkitError, match=match) as error:
            spec.build(with_overrides(spec.config(), overrides), make_env("envs/cue_recall", num_envs=2, seed=0), 0)
        assert "\n" not in str(error.value)
