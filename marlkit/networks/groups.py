"""Group networks: one network per agent, either shared or stacked and run in one vectorized call.

Inputs and outputs carry the agent dimension second to last: ``[..., n_agents, features]``.

* ``share_params=True``: one network applied over the agent dimension; every agent's view is the
  same parameter set.
* ``share_params=False``: each agent's parameters are stacked with a leading agent dimension and the
  forward pass for all agents is one batched call: plain MLPs (``mlp``) run one ``baddbmm`` per layer,
  other networks one ``torch.func.vmap`` over ``functional_call`` (several times slower on small
  networks); agent ``i``'s view is a slice of the stacked tensors, so an update through it moves
  agent ``i`` only.
"""

from __future__ import annotations

import copy
import itertools
import typing
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.specs import Box, Discrete, GroupSpec, from_unit, to_unit
from marlkit.keys import ACTION, OBS, STATE

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}


INITS = ("default", "orthogonal")


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    layer_norm: bool = False,
    init: str = "default",
) -> nn.Sequential:
    """A plain MLP; the last layer has no activation.

    ``layer_norm``: a LayerNorm on the input and after each hidden layer's activation (HARL's MLPBase).
    ``init="orthogonal"``: orthogonal weights with the activation's gain (the output layer's gain 1) and
    zero biases, as HARL and MAPPO initialize; ``"default"`` keeps PyTorch's."""
    if activation not in ACTIVATIONS:
        raise MarlkitError(
            f"unknown activation '{activation}'.{suggest(activation, ACTIVATIONS)} Valid: {', '.join(ACTIVATIONS)}"
        )
    if init not in INITS:
        raise MarlkitError(f"unknown init '{init}'; valid: {', '.join(INITS)}")
    layers: list[nn.Module] = [nn.LayerNorm(in_dim)] if layer_norm else []
    sizes = [in_dim, *hidden]
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        if layer_norm:
            layers.append(nn.LayerNorm(b))
    layers.append(nn.Linear(sizes[-1], out_dim))
    net = nn.Sequential(*layers)
    if init == "orthogonal":
        linears = [m for m in net if isinstance(m, nn.Linear)]
        # calculate_gain knows tanh, relu and leaky_relu; the other ReLU-like activations take ReLU's.
        gain = nn.init.calculate_gain("tanh") if activation == "tanh" else nn.init.calculate_gain("relu")
        if activation == "leaky_relu":
            gain = nn.init.calculate_gain("leaky_relu")
        with torch.no_grad():
            for i, linear in enumerate(linears):
                nn.init.orthogonal_(linear.weight, gain if i < len(linears) - 1 else 1.0)
                nn.init.zeros_(linear.bias)
    return net


_STATELESS_ACTIVATIONS = tuple(ACTIVATIONS.values())


def _mlp_plan(net: nn.Module) -> list[tuple[str, str | None, nn.Module | None]] | None:
    """``(weight name, bias name, None)`` per Linear, ``(weight name, bias name, norm)`` per LayerNorm and
    ``("", None, activation)`` per activation, or None when ``net`` is not a plain Sequential of those (it
    then runs through vmap)."""
    if not isinstance(net, nn.Sequential) or any(True for _ in net.buffers()):
        return None
    plan: list[tuple[str, str | None, nn.Module | None]] = []
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            plan.append((f"{i}.weight", f"{i}.bias" if layer.bias is not None else None, None))
        elif isinstance(layer, nn.LayerNorm) and layer.elementwise_affine and layer.bias is not None:
            plan.append((f"{i}.weight", f"{i}.bias", layer))
        elif isinstance(layer, _STATELESS_ACTIVATIONS):
            plan.append(("", None, layer))
        else:
            return None
    return plan


def _slot(name: str) -> str:
    # Parameter names may not contain dots; "0.weight" is stored as "0__weight".
    return name.replace(".", "__")


class GroupModule(nn.Module):
    """``n_agents`` copies of the network made by ``make_net``, shared or stacked."""

    def __init__(self, make_net: Callable[[], nn.Module], n_agents: int, share_params: bool) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.share_params = share_params
        if share_params:
            self.net = make_net()
            return
        nets = [make_net() for _ in range(n_agents)]
        params, buffers = stack_module_state(nets)  # type: ignore[arg-type]
        self._names = list(params)
        self._buffer_names = list(buffers)
        for name, value in params.items():
            self.register_parameter(_slot(name), nn.Parameter(value))
        for name, value in buffers.items():
            self.register_buffer(_slot(name), value)
        # A stateless template: kept out of the module tree so it owns no parameters of its own.
        self._template = [copy.deepcopy(nets[0]).to("meta")]
        # Plain MLPs (what `mlp` builds) run as batched matmuls over the agent dim: on small networks
        # `vmap(functional_call)` costs several times the arithmetic (docs/benchmarks.md).
        self._plan = _mlp_plan(nets[0])

    # ------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """All agents at once on ``[..., n_agents, features]``. ``params``, shaped like :meth:`stacked`
        (e.g. from :meth:`unflatten`), replace the module's parameters for this call."""
        if x.shape[-2] != self.n_agents:
            raise MarlkitError(f"group input has {x.shape[-2]} agents in dim -2, expected {self.n_agents}")
        if self.share_params:
            if params is None:
                return self.net(x)
            return functional_call(self.net, {n: p[0] for n, p in params.items()}, (x,))
        params = self.stacked() if params is None else params
        if self.n_agents == 1 and next(iter(params.values())).shape[0] == 1:
            return self.forward_agent(x.squeeze(-2), 0, {n: p[0] for n, p in params.items()}).unsqueeze(-2)
        if self._plan is not None:
            return self._batched(params, x.movedim(-2, 0)).movedim(0, -2)
        out = vmap(self._call)(params, self._stacked_buffers(), x.movedim(-2, 0))
        return out.movedim(0, -2)

    def forward_agent(
        self, x: torch.Tensor, agent: int, params: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Agent ``agent``'s network alone on inputs ``[..., features]``; ``params`` (e.g. a view
        from :meth:`agent_params`, or candidate values) replace its parameters for this call."""
        if params is None:
            params = self.agent_params(agent)
        if self.share_params:
            return functional_call(self.net, dict(params), (x,))
        if self.n_agents == 1:
            # vmap costs ~3x a plain call on small networks; a group of one needs no batching.
            return self._call(params, self._agent_buffers(0), x)
        # The same vmapped call as `forward`, over a stack of one: with a single agent, per-agent
        # (sequential) and group (simultaneous) updates then compute bit-identical numbers.
        one = {n: p.unsqueeze(0) for n, p in params.items()}
        if self._plan is not None:
            return self._batched(one, x.unsqueeze(0))[0]
        buffers = {n: b[agent : agent + 1] for n, b in self._stacked_buffers().items()}
        return vmap(self._call)(one, buffers, x.unsqueeze(0))[0]

    def _batched(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The MLP on ``x [K, ..., in]`` with stacked ``params`` ``[K, ...]``: one bmm per layer."""
        assert self._plan is not None
        lead = x.shape[1:-1]
        h = x.reshape(x.shape[0], -1, x.shape[-1])
        for weight, bias, layer in self._plan:
            if isinstance(layer, nn.LayerNorm):
                assert bias is not None
                normed = F.layer_norm(h, layer.normalized_shape, eps=layer.eps)
                h = torch.addcmul(params[bias].unsqueeze(1), normed, params[weight].unsqueeze(1))
            elif layer is not None:
                h = layer(h)
            elif bias is None:
                h = torch.bmm(h, params[weight].transpose(1, 2))
            else:
                h = torch.baddbmm(params[bias].unsqueeze(1), h, params[weight].transpose(1, 2))
        return h.reshape(x.shape[0], *lead, h.shape[-1])

    def _call(
        self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        return functional_call(self._template[0], ({**params, **buffers},), (x,))

    # ---------------------------------------------------------- parameters
    @property
    def param_dim(self) -> int:
        """Leading size of the stacked parameters: 1 when shared, ``n_agents`` when separate."""
        return 1 if self.share_params else self.n_agents

    def stacked(self) -> dict[str, torch.Tensor]:
        """Parameters with a leading ``param_dim`` dimension (views of the module's own tensors)."""
        if self.share_params:
            return {n: p.unsqueeze(0) for n, p in self.net.named_parameters()}
        return {n: getattr(self, _slot(n)) for n in self._names}

    def _stacked_buffers(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, _slot(n)) for n in self._buffer_names}

    def _agent_buffers(self, agent: int) -> dict[str, torch.Tensor]:
        return {n: b[agent] for n, b in self._stacked_buffers().items()}

    def agent_params(self, agent: int) -> dict[str, torch.Tensor]:
        """Agent ``agent``'s parameters as views: in-place updates change that agent only
        (with shared parameters, the one shared set)."""
        if not 0 <= agent < self.n_agents:
            raise MarlkitError(f"agent index {agent} out of range for a group of {self.n_agents}")
        if self.share_params:
            return dict(self.net.named_parameters())
        return {n: p[agent] for n, p in self.stacked().items()}

    def agent_state_dict(self, agent: int) -> dict[str, torch.Tensor]:
        """A standalone ``state_dict`` for agent ``agent``, loadable into ``make_net()``."""
        if self.share_params:
            return {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        tensors = {**self.agent_params(agent), **self._agent_buffers(agent)}
        return {k: v.detach().clone() for k, v in tensors.items()}

    def _rows(self, agent: int | None) -> slice:
        # An agent's rows are its own slice, or the one shared row: with shared parameters every
        # agent's view is the shared set (as in :meth:`agent_params`).
        return slice(None) if agent is None or self.share_params else slice(agent, agent + 1)

    def flat_params(self, agent: int | None = None) -> torch.Tensor:
        """All parameters as ``[param_dim, n_params]`` (a copy); with ``agent``, that agent's rows:
        ``[1, n_params]``."""
        rows = self._rows(agent)
        return torch.cat([p.detach()[rows].reshape(p[rows].shape[0], -1) for p in self.stacked().values()], dim=1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``[K, n_params]`` into tensors shaped ``[K, *param_shape]`` (differentiably)."""
        out, offset = {}, 0
        for name, p in self.stacked().items():
            size = p[0].numel()
            out[name] = flat[:, offset : offset + size].reshape(flat.shape[0], *p.shape[1:])
            offset += size
        return out

    @torch.no_grad()
    def set_flat_params(self, flat: torch.Tensor, agent: int | None = None) -> None:
        """Inverse of :meth:`flat_params`, in place. With ``agent``, ``flat`` is ``[1, n_params]`` and
        only that agent's rows are written (the shared row when parameters are shared)."""
        rows = self._rows(agent)
        offset = 0
        for p in self.stacked().values():
            size = p[0].numel()
            p[rows].copy_(flat[:, offset : offset + size].reshape(p[rows].shape))
            offset += size


# ----------------------------------------------------------- centralized inputs
def joint_observations(td: TensorDictBase, groups: Mapping[str, GroupSpec]) -> torch.Tensor:
    """All agents' observations, flattened and concatenated group by group: ``[*batch, D]``."""
    batch = td.batch_dims
    return torch.cat([td[g][OBS].flatten(start_dim=batch) for g in groups], dim=-1)


def action_width(spec: GroupSpec) -> int:
    """One agent's width in a joint action vector: the action dim, or ``n`` one-hot entries."""
    return spec.action.n if isinstance(spec.action, Discrete) else spec.action.dim


class JointActions(nn.Module):
    """The one packing of all agents' actions into a joint vector: group by group, agent by agent.

    Learners work in *unit space*: continuous actions rescaled to [-1, 1] (what tanh actors and
    planners produce), discrete ones one-hot. :meth:`unit` and :meth:`env` convert one group's actions
    between the env's space and unit space; :meth:`pack` and :meth:`unpack` join and split unit
    actions ``[*batch, n_agents, width]`` per group and ``[*batch, dim]`` jointly. Bounds and agent
    slots are non-persistent buffers: they follow ``.to(device)`` and stay out of checkpoints."""

    def __init__(self, groups: Mapping[str, GroupSpec]) -> None:
        super().__init__()
        self.groups = dict(groups)
        self.widths = {g: action_width(s) for g, s in groups.items()}
        self.sizes = [s.n_agents * self.widths[g] for g, s in groups.items()]
        self.dim = sum(self.sizes)
        offset = 0
        for g, s in groups.items():
            width = self.widths[g]
            # Agent i's slots in the joint vector: [n_agents, dim] of 0/1.
            slots = torch.zeros(s.n_agents, self.dim)
            for i in range(s.n_agents):
                slots[i, offset + i * width : offset + (i + 1) * width] = 1
            self.register_buffer(f"slots_{g}", slots, persistent=False)
            offset += s.n_agents * width
            if isinstance(s.action, Box):
                low, high = s.action.bounds("cpu")
                self.register_buffer(f"low_{g}", low, persistent=False)
                self.register_buffer(f"high_{g}", high, persistent=False)

    @property
    def device(self) -> torch.device:
        """Where the learner that owns this packer lives (its buffers follow ``.to(device)``)."""
        return self.slots(next(iter(self.groups))).device

    def slots(self, g: str) -> torch.Tensor:
        return typing.cast(torch.Tensor, getattr(self, f"slots_{g}"))

    def bounds(self, g: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A continuous group's action bounds ``[dim]`` each."""
        return getattr(self, f"low_{g}"), getattr(self, f"high_{g}")

    def unit(self, g: str, action: torch.Tensor) -> torch.Tensor:
        """Env actions of group ``g`` -> unit space (one-hot for discrete)."""
        spec = self.groups[g].action
        if isinstance(spec, Discrete):
            return nn.functional.one_hot(action.long(), spec.n).float()
        return to_unit(action, *self.bounds(g))

    def env(self, g: str, action: torch.Tensor) -> torch.Tensor:
        """Unit-space actions of group ``g`` -> env actions (argmax for discrete)."""
        if isinstance(self.groups[g].action, Discrete):
            return action.argmax(-1)
        return from_unit(action, *self.bounds(g))

    def pack(self, actions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-group unit actions ``[*batch, n_agents, width]`` -> joint ``[*batch, dim]``."""
        return torch.cat([actions[g].flatten(start_dim=actions[g].dim() - 2) for g in self.groups], dim=-1)

    def pack_env(self, td: TensorDictBase) -> torch.Tensor:
        """Every group's env actions in ``td`` -> joint unit actions ``[*td.batch_size, dim]``."""
        return self.pack({g: self.unit(g, td[g][ACTION]) for g in self.groups})

    def unpack(self, joint: torch.Tensor) -> dict[str, torch.Tensor]:
        """Joint ``[*batch, dim]`` -> per-group ``[*batch, n_agents, width]`` (views)."""
        parts = joint.split(self.sizes, dim=-1)
        return {
            g: part.unflatten(-1, (s.n_agents, self.widths[g]))
            for (g, s), part in zip(self.groups.items(), parts, strict=True)
        }

    def with_agent(self, g: str, behaviour: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
        """``[B, n, dim]``: row i is the joint ``behaviour`` ``[B, dim]`` with agent i's slot from ``fresh``."""
        slots = self.slots(g)
        return behaviour.unsqueeze(1) * (1 - slots) + fresh.unsqueeze(1) * slots


def central_input(td: TensorDictBase, groups: Mapping[str, GroupSpec], source: str = "state") -> torch.Tensor:
    """Input of a centralized critic: the global state or all observations."""
    if source == "state":
        return td[STATE]
    if source == "observations":
        return joint_observations(td, groups)
    raise MarlkitError(f"unknown central input source '{source}'; valid: 'state', 'observations'")


def central_input_dim(
    groups: Mapping[str, GroupSpec], state_dim: int, source: str = "state", with_actions: bool = False
) -> int:
    base = state_dim if source == "state" else sum(s.n_agents * s.obs_dim for s in groups.values())
    if with_actions:
        base += sum(s.n_agents * action_width(s) for s in groups.values())
    return base
