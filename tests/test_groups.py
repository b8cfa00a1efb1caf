"""Group networks: shared vs stacked parameters, per-agent views, centralized inputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit import make_env
from marlkit.networks.groups import GroupModule, JointActions, central_input, central_input_dim, mlp


def make(in_dim=5, out_dim=3):
    return lambda: mlp(in_dim, out_dim, (16, 16), "tanh")


@settings(max_examples=15, deadline=None)
@given(n_agents=st.integers(1, 6), batch=st.integers(1, 9), seed=st.integers(0, 1000))
def test_separate_params_equal_standalone_mlp_per_agent(n_agents, batch, seed):
    torch.manual_seed(seed)
    group = GroupModule(make(), n_agents, share_params=False)
    x = torch.randn(batch, 2, n_agents, 5)
    y = group(x)
    assert y.shape == (batch, 2, n_agents, 3)
    for i in range(n_agents):
        standalone = make()()
        standalone.load_state_dict(group.agent_state_dict(i))
        torch.testing.assert_close(y[..., i, :], standalone(x[..., i, :]), rtol=0, atol=1e-6)
        torch.testing.assert_close(group.forward_agent(x[..., i, :], i), standalone(x[..., i, :]), rtol=0, atol=1e-6)


def test_separate_agents_are_initialised_independently():
    group = GroupModule(make(), 3, share_params=False)
    flat = group.flat_params()
    assert not torch.equal(flat[0], flat[1])


def test_shared_params_every_agent_equals_the_same_mlp():
    group = GroupModule(make(), 4, share_params=True)
    standalone = make()()
    standalone.load_state_dict(group.agent_state_dict(2))
    x = torch.randn(7, 4, 5)
    y = group(x)
    for i in range(4):
        # A (7, 4, 5) input and a (7, 5) one run different matmul kernels, whose float32 sums may round
        # differently in the last bits on another CPU: equal up to float32 rounding (assert_close's
        # defaults, rtol 1.3e-6, atol 1e-5), not bit for bit.
        torch.testing.assert_close(y[:, i], standalone(x[:, i]))
    assert group.param_dim == 1 and group.flat_params().shape[0] == 1


def test_step_on_one_agent_view_leaves_others_bit_identical():
    group = GroupModule(make(), 4, share_params=False)
    before = group.flat_params()
    x = torch.randn(32, 4, 5)
    view = group.agent_params(1)
    loss = group.forward_agent(x[:, 1], 1, view).pow(2).mean()
    grads = torch.autograd.grad(loss, list(view.values()))
    with torch.no_grad():
        for p, g in zip(view.values(), grads, strict=True):
            p.sub_(0.1 * g)
    after = group.flat_params()
    assert not torch.equal(before[1], after[1])
    for i in (0, 2, 3):
        assert torch.equal(before[i], after[i])


def test_gradient_of_one_agent_output_reaches_only_its_slice():
    group = GroupModule(make(), 3, share_params=False)
    x = torch.randn(8, 3, 5)
    group(x)[:, 2].sum().backward()
    for p in group.parameters():
        assert p.grad is not None
        assert torch.count_nonzero(p.grad[:2]) == 0
        assert torch.count_nonzero(p.grad[2]) > 0


@pytest.mark.parametrize("share", [True, False])
def test_flat_params_round_trip(share):
    group = GroupModule(make(), 3, share_params=share)
    flat = group.flat_params()
    group.set_flat_params(torch.zeros_like(flat))
    assert torch.count_nonzero(group.flat_params()) == 0
    group.set_flat_params(flat)
    assert torch.equal(group.flat_params(), flat)


def test_central_inputs_and_joint_actions():
    env = make_env("mpe/simple_adversary_v3", num_envs=4, seed=0)  # discrete, two groups
    td = env.rand_action(env.reset())
    state = central_input(td, env.groups, "state")
    assert state.shape == (4, central_input_dim(env.groups, env.state_dim, "state"))
    obs = central_input(td, env.groups, "observations")
    joint = JointActions(env.groups)
    one_hot = joint.pack_env(td)
    assert obs.shape[-1] + one_hot.shape[-1] == central_input_dim(
        env.groups, env.state_dim, "observations", with_actions=True
    )
    assert one_hot.shape == (4, 3 * 5) and joint.dim == 15
    assert bool((one_hot.sum(-1) == 3).all())
    # The adversary's observations and actions come first, then the agents'.
    torch.testing.assert_close(obs[:, :8], td["adversary"]["observation"][:, 0])
    parts = joint.unpack(one_hot)
    for g in env.groups:
        assert torch.equal(joint.env(g, parts[g]), td[g]["action"])
    # Agent i of a group owns its width of slots after the groups before it: agent_1 holds 10..14.
    assert torch.equal(joint.slots("agent")[1], (torch.arange(15) >= 10).float())
    assert torch.equal(joint.slots("agent")[0], ((torch.arange(15) >= 5) & (torch.arange(15) < 10)).float())


def test_joint_actions_round_trip_continuous_bounds():
    env = make_env("vmas/navigation", num_envs=3, seed=0, n_agents=2)
    joint = JointActions(env.groups)
    low, high = joint.bounds("agent")
    td = env.rand_action(env.reset())
    unit = joint.pack_env(td)
    assert unit.shape == (3, 4) and bool((unit.abs() <= 1).all())
    back = joint.env("agent", joint.unpack(unit)["agent"])
    torch.testing.assert_close(back, td["agent"]["action"].clamp(low, high))
    # Row i of with_agent is the behaviour joint action with agent i's slot replaced.
    behaviour, fresh = torch.zeros(3, 4), torch.ones(3, 4)
    mixed = joint.with_agent("agent", behaviour, fresh)
    assert mixed.shape == (3, 2, 4)
    assert torch.equal(mixed[:, 0], torch.tensor([1.0, 1, 0, 0]).expand(3, 4))
    assert torch.equal(mixed[:, 1], torch.tensor([0.0, 0, 1, 1]).expand(3, 4))


@pytest.mark.parametrize(("activation", "gain"), [("tanh", 5 / 3), ("relu", 2**0.5), ("silu", 2**0.5)])
def test_orthogonal_init_gives_orthogonal_rows_with_the_activation_gain(activation, gain):
    torch.manual_seed(0)
    net = mlp(10, 3, (8, 6), activation, init="orthogonal")
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    for linear, expected in zip(linears, (gain, gain, 1.0), strict=True):
        w = linear.weight  # [out, in] with out <= in: orthonormal rows, scaled by the gain
        # float32 QR: orthonormal up to rounding
        torch.testing.assert_close(w @ w.T, expected**2 * torch.eye(w.shape[0]), rtol=0, atol=1e-5)
        assert torch.equal(linear.bias, torch.zeros_like(linear.bias))


def test_layer_norm_mlps_keep_the_batched_path_and_equal_each_agents_own_network():
    torch.manual_seed(0)
    group = GroupModule(lambda: mlp(5, 2, (16, 16), "relu", layer_norm=True), 3, False)
    norms = [m for m in mlp(5, 2, (16, 16), "relu", layer_norm=True) if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 3 and group._plan is not None  # input, and after each hidden layer
    with torch.no_grad():  # LayerNorm starts as the identity affine map: make it matter
        for p in group.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(7, 3, 5)
    out = group(x)
    for i in range(3):
        own = mlp(5, 2, (16, 16), "relu", layer_norm=True)
        own.load_state_dict(group.agent_state_dict(i))
        # batched matmuls against one agent's network: other kernels, equal up to float rounding
        torch.testing.assert_close(out[:, i], own(x[:, i]), rtol=1e-5, atol=1e-6)
    plan, group._plan = group._plan, None  # the vmap path computes the same
    torch.testing.assert_close(group(x), out, rtol=1e-5, atol=1e-6)
    group._plan = plan
