"""A finished run's policy outside the training loop: ``marlkit.load(run_dir)`` and policy export.

:class:`Policy` acts on

* a marlkit env's TensorDict (``policy(td)`` writes ``td[group]["action"]``, as the evaluator does), and
* a plain observation dict, ``{agent: observation}`` (``policy.act(obs)`` returns ``{agent: action}``):
  one PettingZoo parallel env's observations (numpy arrays, Dict observations with an ``action_mask``
  included; the actions are ints or numpy arrays), or a batch of them, e.g. a VMAS env made with
  ``dict_spaces=True`` (tensors ``[num_envs, obs_dim]``; the actions are tensors ``[num_envs, ...]``,
  what ``vmas.make_env(...).step`` takes).

The observation dict goes through what the run's env did to it: zero-padding (``pad_observations``),
the action mask of a Dict observation, and ``env.hide``. Box actions are clipped to the action space,
as marlkit's envs clip them. A recurrent (GRU) policy carries its state from call to call; ``reset()``
starts new episodes (all, or the env copies given). Deterministic by default (the mode: the mean of a
Gaussian, the argmax of a categorical or Q-function); ``deterministic=False`` samples as the learner
did when it was saved (its exploration state restored: epsilon, noise level), with torch's global
generator (``torch.manual_seed`` makes it repeatable).

:func:`export` writes the deterministic actor as TorchScript (``.pt``, ``torch.jit.load``) or ONNX
(``.onnx``): inputs ``obs_<group>`` ``[batch, n_agents, *obs_shape]`` (then ``mask_<group>`` for masked
discrete groups, ``state_<group>`` for recurrent ones), outputs ``action_<group>`` (then
``next_state_<group>``), with a JSON file beside it that names them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from marlkit.core.errors import MarlkitError
from marlkit.core.extras import require
from marlkit.core.specs import Box, GroupSpec
from marlkit.keys import ACTION, ACTION_MASK, ALIVE, DONE, OBS, RECURRENT_STATE, RECURRENT_STATE_OUT, STATE
from marlkit.learner import EnvInfo, Learner
from marlkit.networks.recurrent import reset_state
from marlkit.training.rollout import CARRIED
from marlkit.training.runs import load_run


def load(run_dir: str | Path, checkpoint: str = "last", device: str | torch.device = "cpu") -> Policy:
    """The policy of a finished (or interrupted) run: its ``last`` or ``best`` checkpoint."""
    loaded = load_run(Path(run_dir), checkpoint, acting=True)
    return Policy(loaded.learner, loaded.info, loaded.acting_state, device)


class Policy:
    """A trained learner's acting side. Build it with :func:`load`."""

    def __init__(self, learner: Learner, info: EnvInfo, acting_state: bool, device: str | torch.device = "cpu"):
        self.learner = learner.to(device).eval()
        self.info = info
        self.device = torch.device(device)
        self.groups: dict[str, GroupSpec] = dict(info.groups)
        self.agents = [a for s in self.groups.values() for a in s.agents]
        self._slot = {a: (g, j) for g, s in self.groups.items() for j, a in enumerate(s.agents)}
        self._acting_state = acting_state
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        hidden = set(info.hidden)
        self._keep = {
            g: torch.tensor([i for i in range(s.obs_dim + len(hidden)) if i not in hidden], device=self.device)
            for g, s in self.groups.items()
        }

    # ---------------------------------------------------------------- TensorDicts
    @torch.no_grad()
    def __call__(self, td: TensorDictBase, deterministic: bool = True) -> TensorDictBase:
        """Write actions into a marlkit env's TensorDict ``td`` (batch ``[num_envs]``) and return it.

        A recurrent policy's state is carried from the previous call (zeroed where ``td["done"]`` says an
        env copy was reset, and everywhere on a TensorDict from ``env.reset()``), unless ``td`` carries it."""
        self._check_sampling(deterministic)
        starting = DONE not in td.keys()
        for g in self.groups:
            for key, memory in self._memory.get(g, {}).items():
                if key not in td[g].keys() and not starting and memory.shape[0] == td.batch_size[0]:
                    td[g].set(key, reset_state(memory, td[DONE]))
        td = self.learner.act(td, deterministic=deterministic)
        self._memory = {
            g: {entering: td[g][produced] for produced, entering in CARRIED if produced in td[g].keys()}
            for g in self.groups
        }
        return td

    def reset(self, envs: torch.Tensor | None = None) -> None:
        """Start new episodes for a recurrent policy: in every env copy, or where ``envs`` (bool ``[num_envs]``)
        is set. A feed-forward policy has nothing to reset."""
        if envs is None:
            self._memory = {}
            return
        envs = torch.as_tensor(envs, device=self.device)
        self._memory = {g: {k: reset_state(h, envs) for k, h in m.items()} for g, m in self._memory.items()}

    # ------------------------------------------------------------- observation dicts
    def act(self, observations: Mapping[str, Any], deterministic: bool = True, state: Any = None) -> dict[str, Any]:
        """``{agent: observation}`` -> ``{agent: action}`` for the agents present (see the module doc).

        ``state``: the global state, for learners that act on it (PETS's central planner) where the env
        provides one (``env.state()``); where the state is the observations' concatenation it is built
        from them, and elsewhere zeros stand in (decentralized actors never read it)."""
        unknown = [a for a in observations if a not in self._slot]
        if unknown:
            raise MarlkitError(f"unknown agents {unknown}; this policy acts for {self.agents}")
        if not observations:
            return {}
        batched, batch = self._batch_shape(observations)
        obs, alive, masks = {}, {}, {}
        for g, spec in self.groups.items():
            full_shape = (spec.obs_dim + len(self.info.hidden),) if self.info.hidden else spec.obs_shape
            obs[g] = torch.zeros(batch, spec.n_agents, *full_shape, device=self.device)
            alive[g] = torch.zeros(batch, spec.n_agents, dtype=torch.bool, device=self.device)
            if spec.has_action_mask:
                masks[g] = torch.ones(batch, spec.n_agents, spec.action.n, dtype=torch.bool, device=self.device)  # type: ignore[union-attr]
        for agent, value in observations.items():
            g, j = self._slot[agent]
            if isinstance(value, Mapping):
                if ACTION_MASK in value and g in masks:
                    masks[g][:, j] = self._tensor(value[ACTION_MASK], batched).bool()
                value = value[OBS]
            x = self._tensor(value, batched).float()
            region: tuple[slice | int, ...] = (slice(None), j, *(slice(0, d) for d in x.shape[1:]))
            obs[g][region] = x  # zero-padded to the group's shape, as pad_observations does
            alive[g][:, j] = True
        td = TensorDict({STATE: self._state(obs, state, batch)}, batch_size=[batch], device=self.device)
        for g in self.groups:
            entries = {OBS: obs[g].index_select(-1, self._keep[g]) if self.info.hidden else obs[g], ALIVE: alive[g]}
            if g in masks:
                entries[ACTION_MASK] = masks[g]
            td[g] = TensorDict(entries, batch_size=[batch, self.groups[g].n_agents], device=self.device)
        if self._memory:  # carry a recurrent state: a step TensorDict (no reset) of the same batch
            td[DONE] = torch.zeros(batch, dtype=torch.bool, device=self.device)
        td = self(td, deterministic)
        actions = {g: self._clipped(g, td[g][ACTION]) for g in self.groups}
        out: dict[str, Any] = {}
        for agent in observations:
            g, j = self._slot[agent]
            action = actions[g][:, j]
            if batched:
                out[agent] = action
            elif self.groups[g].is_discrete:
                out[agent] = int(action[0])
            else:
                out[agent] = action[0].cpu().numpy()
        return out

    def _batch_shape(self, observations: Mapping[str, Any]) -> tuple[bool, int]:
        agent, value = next(iter(observations.items()))
        value = value[OBS] if isinstance(value, Mapping) else value
        spec = self.groups[self._slot[agent][0]]
        rank = 1 if self.info.hidden else len(spec.obs_shape)
        shape = tuple(np.shape(value))
        if len(shape) == rank:
            return False, 1
        if len(shape) == rank + 1:
            return True, shape[0]
        raise MarlkitError(
            f"observation of '{agent}' has shape {shape}; expected {spec.obs_shape} (one env) or "
            f"[batch, *{spec.obs_shape}]"
        )

    def _tensor(self, value: Any, batched: bool) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, device=self.device)
        return x if batched else x.unsqueeze(0)

    def _state(self, obs: Mapping[str, torch.Tensor], state: Any, batch: int) -> torch.Tensor:
        if state is not None:
            given = torch.as_tensor(np.asarray(state, np.float32) if not isinstance(state, torch.Tensor) else state)
            return given.to(self.device, torch.float32).reshape(batch, self.info.state_dim)
        if self.info.state_source == "observations":
            return torch.cat([o.flatten(start_dim=1) for o in obs.values()], -1)
        return torch.zeros(batch, self.info.state_dim, device=self.device)

    def _clipped(self, g: str, action: torch.Tensor) -> torch.Tensor:
        spec = self.groups[g].action
        if isinstance(spec, Box):
            low, high = spec.bounds(self.device)
            return torch.clamp(action.float(), low, high)
        return action

    def _check_sampling(self, deterministic: bool) -> None:
        if not deterministic and not self._acting_state and self.learner.acting_state():
            raise MarlkitError(
                "sampled actions of this learner read its exploration state, which a best checkpoint does not "
                "keep; load the last checkpoint (marlkit.load(run_dir)) or act with deterministic=True"
            )


# ------------------------------------------------------------------------- export
class _Actor(nn.Module):
    """The deterministic actor as a function of tensors: what :func:`export` traces."""

    def __init__(self, policy: Policy, recurrent: dict[str, int]) -> None:
        super().__init__()
        self.learner = policy.learner
        self.groups = policy.groups
        self.recurrent = recurrent
        self.policy = policy

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        it = iter(inputs)
        td = TensorDict({}, batch_size=[inputs[0].shape[0]])
        for g, spec in self.groups.items():
            obs = next(it)
            entries = {OBS: obs, ALIVE: torch.ones_like(obs.flatten(2)[..., 0], dtype=torch.bool)}
            if spec.has_action_mask:
                entries[ACTION_MASK] = next(it)
            if g in self.recurrent:
                entries[RECURRENT_STATE] = next(it)
            td[g] = TensorDict(entries, batch_size=obs.shape[:2])
        td[STATE] = torch.zeros(inputs[0].shape[0], self.policy.info.state_dim)
        td = self.learner.act(td, deterministic=True)
        outputs = [self.policy._clipped(g, td[g][ACTION]) for g in self.groups]
        outputs += [td[g][RECURRENT_STATE_OUT] for g in self.groups if g in self.recurrent]
        return tuple(outputs)


def export(policy: Policy, path: str | Path, batch: int = 1) -> Path:
    """Write ``policy``'s deterministic actor to ``path`` (``.pt``: TorchScript; ``.onnx``: ONNX, which
    needs ``marlkit[export]``) with ``path.json`` naming its inputs and outputs; returns ``path``.

    The actor is captured with ``torch.export`` (which follows the stacked agents' batched calls that
    ``torch.jit.trace`` cannot), then traced to TorchScript or translated to ONNX. A TorchScript file
    takes ``batch`` observations a call; an ONNX file takes any batch size where the actor's code allows
    it (``path.json`` says which: ``"batch": null``), else ``batch``."""
    path = Path(path)
    if path.suffix not in (".pt", ".onnx"):
        raise MarlkitError(f"export path must end in .pt (TorchScript) or .onnx, got '{path.name}'")
    if policy.device.type != "cpu":
        raise MarlkitError(f"export traces on the CPU; load the policy with device='cpu' (it is on {policy.device})")
    if not isinstance(batch, int) or batch < 1:
        raise MarlkitError(f"batch must be an integer >= 1, got {batch!r}")
    example, names, recurrent = example_inputs(policy, batch)
    outputs = [f"action_{g}" for g in policy.groups] + [f"next_state_{g}" for g in recurrent]
    actor = _Actor(policy, recurrent).eval()
    fixed: int | None = batch
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if path.suffix == ".onnx":
            require("onnxscript", "export to ONNX")
            try:  # any batch size
                free, _, _ = example_inputs(policy, None)
                program = torch.export.export(actor, free, strict=False, dynamic_shapes=_batch_dims(free))
                fixed = None
            except Exception:  # the actor's code fixes the batch size (e.g. a reshape by a constant)
                program = _captured(actor, example, policy)
            torch.onnx.export(program, (), str(path), input_names=names, output_names=outputs, dynamo=True,
                              verbose=False)  # fmt: skip
        else:
            traced = torch.jit.trace(_captured(actor, example, policy).module(), example, check_trace=False)
            torch.jit.freeze(traced.eval()).save(str(path))  # weights as constants: outputs need no grad
    meta = {
        "format": "torchscript" if path.suffix == ".pt" else "onnx",
        "batch": fixed,
        "inputs": {n: ["batch", *t.shape[1:]] for n, t in zip(names, example, strict=True)},
        "outputs": outputs,
        "groups": {g: list(s.agents) for g, s in policy.groups.items()},
        "env": policy.info.name,
        "hidden": list(policy.info.hidden),
    }
    Path(f"{path}.json").write_text(json.dumps(meta, indent=1))
    return path


def _batch_dims(example: tuple[torch.Tensor, ...]) -> tuple[tuple[dict[int, Any], ...]]:
    batch = torch.export.Dim("batch", min=1)
    return (tuple({0: batch} for _ in example),)


def _captured(actor: _Actor, example: tuple[torch.Tensor, ...], policy: Policy) -> Any:
    try:
        return torch.export.export(actor, example, strict=False)
    except Exception as err:  # a learner whose act() is not a function of tensors (a planner, a lineup)
        first = str(err).splitlines()[0] if str(err) else ""
        name = type(policy.learner).__name__
        raise MarlkitError(f"cannot export {name}'s actor: {type(err).__name__}: {first}") from err


def example_inputs(policy: Policy, batch: int | None = 1) -> tuple[tuple[torch.Tensor, ...], list[str], dict[str, int]]:
    """Random inputs of the exported actor (``batch`` rows; None: a size unlike every other size, as a
    batch that may vary needs, since torch.export takes equal sizes for one), their names, and each
    recurrent group's state width (found by acting once)."""
    if batch is None:
        sizes = {d for s in policy.groups.values() for d in (s.n_agents, *s.obs_shape)} | {policy.info.state_dim}
        batch = next(b for b in range(2, 1000) if b not in sizes)
    td = TensorDict({STATE: torch.zeros(batch, policy.info.state_dim)}, batch_size=[batch])
    for g, spec in policy.groups.items():
        entries = {OBS: torch.zeros(batch, spec.n_agents, *spec.obs_shape),
                   ALIVE: torch.ones(batch, spec.n_agents, dtype=torch.bool)}  # fmt: skip
        if spec.has_action_mask:
            entries[ACTION_MASK] = torch.ones(batch, spec.n_agents, spec.action.n, dtype=torch.bool)  # type: ignore[union-attr]
        td[g] = TensorDict(entries, batch_size=[batch, spec.n_agents])
    with torch.no_grad():
        probed = policy.learner.act(td.clone(), deterministic=True)
    recurrent = {g: int(probed[g][RECURRENT_STATE_OUT].shape[-1]) for g in policy.groups
                 if RECURRENT_STATE_OUT in probed[g].keys()}  # fmt: skip
    example, names = [], []
    for g, spec in policy.groups.items():
        example.append(torch.randn(batch, spec.n_agents, *spec.obs_shape))
        names.append(f"obs_{g}")
        if spec.has_action_mask:
            example.append(td[g][ACTION_MASK])
            names.append(f"mask_{g}")
        if g in recurrent:
            example.append(torch.zeros(batch, spec.n_agents, recurrent[g]))
            names.append(f"state_{g}")
    return tuple(example), names, recurrent
