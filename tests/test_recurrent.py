"""Recurrent group networks: the GRU cell against torch's, sequences against per-episode runs from a zero
state (resets included), per-agent slices against standalone networks, and per-agent updates."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit.errors import MarlkitError
from marlkit.recurrent import GRUNet, RecurrentGroup


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
