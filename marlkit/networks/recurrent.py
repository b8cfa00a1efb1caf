"""Recurrent group networks (issue 15, first piece): an MLP encoder, a GRU cell and a linear head per agent.

:class:`GRUNet` is one agent's network. It takes its input and hidden state concatenated and returns
its output and new hidden state concatenated, so that :class:`marlkit.networks.groups.GroupModule` shares or
stacks it like any single-input network: with separate parameters every agent's step is one batched
call (``torch.func.vmap``), and per-agent parameter views (HATRPO's sequential steps) keep working.

:class:`RecurrentGroup` carries the hidden state, one entry per env copy and per agent, and zeroes it
where an episode starts (``starts``), both step by step (collection) and over a stored sequence
(training); a sequence forward is the step loop, so the two agree by construction and tests check
both against running every episode on its own from a zero state.

The GRU cell is written out (``r, z, n`` gates as in ``torch.nn.GRUCell``, whose numbers it matches)
because ``vmap`` has no batching rule for the fused cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.core.errors import MarlkitError
from marlkit.keys import ALIVE, DONE
from marlkit.networks.groups import ACTIVATIONS, GroupModule


class GRUNet(nn.Module):
    """``[..., in_dim + hidden]`` -> ``[..., out_dim + hidden]``: encoder, GRU cell, linear head."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        encoder: Sequence[int] = (64,),
        hidden: int = 64,
        activation: str = "tanh",
        layer_norm: bool = False,
    ) -> None:
        """``layer_norm``: a LayerNorm on the input and after each encoder layer's activation, as in
        :func:`marlkit.networks.groups.mlp` (the GRU and the head are left as they are)."""
        super().__init__()
        if hidden < 1 or any(size < 1 for size in encoder):
            raise MarlkitError(f"recurrent sizes must be positive, got encoder {list(encoder)} and hidden {hidden}")
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        layers: list[nn.Module] = [nn.LayerNorm(in_dim)] if layer_norm else []
        width = in_dim
        for size in encoder:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            layers += [nn.LayerNorm(size)] if layer_norm else []
            width = size
        self.encoder = nn.Sequential(*layers)
        # The gates' weights in torch.nn.GRUCell's layout: rows [reset; update; new].
        self.input_gates = nn.Linear(width, 3 * hidden)
        self.hidden_gates = nn.Linear(hidden, 3 * hidden)
        self.head = nn.Linear(hidden, out_dim)

    def cell(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gi_r, gi_z, gi_n = self.input_gates(x).chunk(3, -1)
        gh_r, gh_z, gh_n = self.hidden_gates(h).chunk(3, -1)
        reset = torch.sigmoid(gi_r + gh_r)
        update = torch.sigmoid(gi_z + gh_z)
        new = torch.tanh(gi_n + reset * gh_n)
        return (1 - update) * new + update * h

    def forward(self, xh: torch.Tensor) -> torch.Tensor:
        x, h = xh.split([self.in_dim, self.hidden], -1)
        h = self.cell(self.encoder(x), h)
        return torch.cat([self.head(h), h], -1)


class RecurrentGroup(nn.Module):
    """A group's recurrent networks (shared or stacked) and the hidden-state bookkeeping."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        n_agents: int,
        share_params: bool,
        encoder: Sequence[int] = (64,),
        hidden: int = 64,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.out_dim, self.hidden = out_dim, hidden
        self.net = GroupModule(lambda: GRUNet(in_dim, out_dim, encoder, hidden, activation), n_agents, share_params)

    def initial_state(self, batch: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero hidden states ``[*batch, n_agents, hidden]``."""
        return torch.zeros(*batch, self.net.n_agents, self.hidden, device=device)

    def step(
        self, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every agent: ``x [*B, n, in]``, ``h [*B, n, hidden]``; ``starts`` (``[*B]`` per env
        copy or ``[*B, n]`` per agent) marks states to zero first. Returns ``(out, new h)``."""
        if starts is not None:
            h = reset_state(h, starts)
        y = self.net(torch.cat([x, h], -1))
        return y[..., : self.out_dim], y[..., self.out_dim :]

    def sequence(self, x: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A stored chunk: ``x [B, T, n, in]`` from the state ``h0 [B, n, hidden]`` at its first step, with
        ``starts [B, T]`` (resets inside the chunk). Returns ``(out [B, T, n, out], state after the chunk)``."""
        out, states = unroll(self.net, x, h0, starts, self.out_dim)
        return out, states[:, -1]


def reset_state(h: torch.Tensor, resets: torch.Tensor) -> torch.Tensor:
    """``h`` with the entries marked in ``resets`` zeroed; ``resets`` is ``h.shape[:-1]`` (per agent) or
    ``h.shape[:-2]`` (per env copy)."""
    keep = (~resets).to(h.dtype)
    return h * keep.view(*keep.shape, *([1] * (h.dim() - keep.dim())))


def unroll(
    net: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    h0: torch.Tensor,
    resets: torch.Tensor,
    out_dim: int,
    burn_in: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a step network ``[..., in + hidden] -> [..., out + hidden]`` over ``x [B, T, ...]`` from ``h0``,
    zeroing the state where ``resets [B, T, ...]`` is set before each step. Only time is a loop: env
    copies and agents stay batched. The first ``burn_in`` steps run without gradient (they only warm the
    state up). Returns ``(out [B, T, ..., out_dim], states [B, T, ..., hidden])``, ``states[:, t]`` being
    the state after step t."""
    outs, states = [], []
    h = h0
    for t in range(x.shape[1]):
        with torch.set_grad_enabled(torch.is_grad_enabled() and t >= burn_in):
            y = net(torch.cat([x[:, t], reset_state(h, resets[:, t])], -1))
        outs.append(y[..., :out_dim])
        h = y[..., out_dim:]
        states.append(h)
    return torch.stack(outs, 1), torch.stack(states, 1)


def reach(
    net: Callable[[torch.Tensor], torch.Tensor], x_next: torch.Tensor, states: torch.Tensor, out_dim: int
) -> torch.Tensor:
    """The outputs at the observations ``x_next [B, T, ...]`` that each step reached, from the state after
    the step (``states`` of :func:`unroll`): the episode goes on into them, so there is no reset; for a
    truncated episode the reached observation is the final one."""
    return net(torch.cat([x_next, states], -1))[..., :out_dim]


def entering_state(group: TensorDictBase, key: str, hidden: int) -> torch.Tensor:
    """The state ``[..., n, hidden]`` a group's recurrent network starts an env step from: ``group[key]``
    as the collector carried it (absent on the first step after a reset: zeros), zeroed for agents that
    are not alive."""
    alive = group[ALIVE]
    h = group.get(key, None)
    if h is None:
        h = torch.zeros(*alive.shape, hidden, device=alive.device)
    return reset_state(h, ~alive)


def resets_before(batch: TensorDictBase, g: str) -> torch.Tensor:
    """``[B, L, n]``: where a stored sequence ``batch [B, L]`` zeroes group ``g``'s states before a step,
    as collection did: the previous step ended the episode, or the agent is not alive."""
    done = batch[DONE]
    previous_done = torch.cat([torch.zeros_like(done[:, :1]), done[:, :-1]], 1)
    return previous_done.unsqueeze(-1) | ~batch[g, ALIVE]
