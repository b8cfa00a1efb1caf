"""The actors of the off-policy family: deterministic (tanh, Gumbel-softmax) and SAC heads, recurrent
unrolls over replayed sequences, entropy targets and exploration noise. A mixin of
:class:`~marlkit.algorithms.offpolicy.OffPolicy`, which owns the networks and the config it reads."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.offpolicy_config import OffPolicyConfig
from marlkit.blocks.schedules import UpdateSchedule, linear
from marlkit.core.specs import Discrete, GroupSpec
from marlkit.keys import (
    DONE,
)
from marlkit.networks.groups import JointActions
from marlkit.networks.policies import (
    ActorMode,
    Memory,
    categorical_head,
    gumbel_head,
    masked_log_probs,
    squashed_gaussian_head,
)
from marlkit.networks.recurrent import reach, unroll


@dataclass
class ReplayBatch:
    """A sampled batch, unpacked per group (actions normalized / one-hot), with the critics' global inputs."""

    data: dict[str, dict[str, torch.Tensor]]
    base: torch.Tensor
    next_base: torch.Tensor
    joint: torch.Tensor
    index: torch.Tensor
    weights: torch.Tensor | None
    # Recurrent actors: the sampled sequences' shape [sequences, chunk_len] (the rows above are these,
    # flattened) and each group's stored first-step states and resets.
    sequences: tuple[int, int] | None = None
    memory: dict[str, Memory] | None = None


class ReplayActors:
    # Owned by OffPolicy:
    cfg: OffPolicyConfig
    groups: dict[str, GroupSpec]
    joint: JointActions
    sac: bool
    out_dims: dict[str, int]
    schedule: UpdateSchedule
    _ou: dict[str, torch.Tensor]

    def policy(
        self,
        actors: nn.ModuleDict,
        g: str,
        obs: torch.Tensor,
        mask: torch.Tensor | None,
        mode: ActorMode,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalized actions ``[..., n, a]`` (one-hot for discrete) and log pi ``[..., n]`` (SAC; the raw
        logits for discrete actors; else None).

        ``mode``: ``sample`` (differentiable: reparameterized / straight-through), ``mean`` (deterministic),
        ``explore`` (behaviour: SAC sample, Gumbel sample, or deterministic plus noise added by ``act``).
        ``out``: the actor's raw output where it was computed already (recurrent actors)."""
        if out is None:
            out = actors[g](obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape)))
        if isinstance(self.groups[g].action, Discrete):
            if self.sac:
                return categorical_head(out, mask, mode)
            return gumbel_head(out, mask, mode)
        if not self.sac:
            return torch.tanh(out), None
        return squashed_gaussian_head(out, mode, self._log_scale(g))

    def soft_discrete(self, g: str) -> bool:
        """Discrete SAC: expectations over this group's actions are exact sums, not samples."""
        return self.sac and isinstance(self.groups[g].action, Discrete)

    def distribution(
        self,
        actors: nn.ModuleDict,
        g: str,
        obs: torch.Tensor,
        mask: torch.Tensor | None,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A discrete group's ``pi(. | o_i)`` and ``log pi(. | o_i)``, ``[..., n, n_actions]`` each; illegal
        actions get probability 0."""
        if out is None:
            out = actors[g](obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape)))
        logp = masked_log_probs(out, mask)
        return logp.exp(), logp

    def actor_outputs(self, actors: nn.ModuleDict, g: str, batch: ReplayBatch, reached: bool) -> torch.Tensor | None:
        """Recurrent actors: raw outputs at every sampled step's observation (``reached``: at the observation
        the step reached, from the state after it), unrolled over the sequences from their stored
        first-step states; the first ``burn_in`` steps only warm the state up, without gradient. None
        for feed-forward actors, which :meth:`policy` runs on the observations."""
        if batch.memory is None or batch.sequences is None:
            return None
        spec, memory, d = self.groups[g], batch.memory[g], batch.data[g]
        net, out_dim, burn = actors[g], self.out_dims[g], self.cfg.burn_in
        sequences = batch.sequences

        def inputs(key: str) -> torch.Tensor:
            x = d[key].flatten(start_dim=d[key].dim() - len(spec.obs_shape))
            return x.view(*sequences, *x.shape[1:])

        out, states = unroll(net, inputs("obs"), memory.h0, memory.resets, out_dim, burn)
        if reached:
            out = reach(net, inputs("next_obs"), states, out_dim)
        return out.flatten(0, 1)

    def target_entropy(self, g: str) -> float:
        action = self.groups[g].action
        if isinstance(action, Discrete):
            return self.cfg.target_entropy_fraction * math.log(action.n)
        return self.cfg.target_entropy_per_dim * self.joint.widths[g]

    def _log_scale(self, g: str) -> torch.Tensor:
        low, high = self.joint.bounds(g)
        return torch.log((high - low) / 2)

    def noise_std(self) -> float:
        cfg = self.cfg
        if cfg.noise_decay_frames <= 0:
            return cfg.noise_std
        return linear(self.schedule.frames, 0, cfg.noise_decay_frames, cfg.noise_std, cfg.noise_std_final)

    def _exploration_noise(self, g: str, td: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        white = torch.randn_like(action) * self.noise_std()
        if self.cfg.exploration == "gaussian":
            return white
        state = self._ou.get(g)
        if state is None or state.shape != action.shape:
            state = torch.zeros_like(action)
        if DONE in td.keys():  # a new episode starts where the previous step ended one
            state = state * (~td[DONE]).view(-1, *([1] * (action.dim() - 1)))
        self._ou[g] = state = state - self.cfg.ou_theta * state + white
        return state
