"""On-policy rollout collection: ``T`` steps of every env copy into one ``[num_envs, T]`` TensorDict.

Each time step ``t`` of the batch holds what the policy saw and did (``td[g][OBS]``, ``ALIVE``,
``ACTION_MASK``, ``STATE``, ``ACTION`` and whatever else the policy wrote), the
outcome (``REWARD``, ``TERMINATED``, ``TRUNCATED``, ``DONE``) and the observation reached
(``td[NEXT][g][OBS]``, ``td[NEXT][STATE]``: the final observation where an episode ended), which is
everything GAE needs to bootstrap through truncation and not through termination.

A recurrent policy writes the state it produced (``td[g][RECURRENT_STATE_OUT]``); the collector, like
the evaluator, carries it into the next step's ``td[g][RECURRENT_STATE]``, zeroed where the env copy
was reset (:func:`carry_recurrent_state`), so every stored step holds the state its action was drawn
with and training can replay any chunk from its first step's state.

Episode statistics are accumulated on the env's device without host synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tensordict import TensorDict, TensorDictBase

from marlkit.adapters.base import MultiAgentEnv
from marlkit.keys import (
    CRITIC_STATE,
    CRITIC_STATE_OUT,
    DONE,
    NEXT,
    RECURRENT_STATE,
    RECURRENT_STATE_OUT,
    REWARD,
    TERMINATED,
    TRUNCATED,
)
from marlkit.networks.recurrent import reset_state

Policy = Callable[[TensorDictBase], TensorDictBase]
OUTCOME_KEYS = (REWARD, TERMINATED, TRUNCATED)
# Recurrent states a policy produced, and where the next step reads them.
CARRIED = ((RECURRENT_STATE_OUT, RECURRENT_STATE), (CRITIC_STATE_OUT, CRITIC_STATE))


@dataclass
class EpisodeStats:
    """Episodes that finished during one collection."""

    episodes: int
    mean_length: float
    # Per group: the mean undiscounted return of each agent, shape [n_agents] (NaN if no episode ended).
    agent_returns: dict[str, torch.Tensor] = field(default_factory=dict)

    def group_return(self, group: str, reduce: str = "mean") -> float:
        """The group's mean episode return, averaged (``"mean"``) or summed (``"sum"``) over its agents."""
        r = self.agent_returns[group]
        return float(r.sum() if reduce == "sum" else r.mean())

    def mean_return(self) -> float:
        """Per-agent mean return averaged over all agents of all groups."""
        if not self.agent_returns:
            return float("nan")
        return float(torch.cat(list(self.agent_returns.values())).mean())


class EpisodeTracker:
    """Running per-env returns; sums of finished episodes are kept on device until ``pop``."""

    def __init__(self, env: MultiAgentEnv) -> None:
        n, dev = env.num_envs, env.device
        self.running = {g: torch.zeros(n, s.n_agents, device=dev) for g, s in env.groups.items()}
        self.length = torch.zeros(n, device=dev)
        self._reset_sums()

    def _reset_sums(self) -> None:
        self.finished = {g: torch.zeros_like(r[0]) for g, r in self.running.items()}
        self.count = torch.zeros((), device=self.length.device)
        self.length_sum = torch.zeros((), device=self.length.device)

    def update(self, out: TensorDictBase) -> None:
        done = out[DONE]
        done_f = done.float()
        self.length += 1
        for g, running in self.running.items():
            running += out[g][REWARD]
            self.finished[g] += (running * done_f.unsqueeze(-1)).sum(0)
            running.mul_(~done.unsqueeze(-1))
        self.count += done_f.sum()
        self.length_sum += (self.length * done_f).sum()
        self.length.mul_(~done)

    def pop(self) -> EpisodeStats:
        count = int(self.count)
        denom = max(count, 1)
        nan = float("nan")
        stats = EpisodeStats(
            episodes=count,
            mean_length=float(self.length_sum) / denom if count else nan,
            agent_returns={
                g: (s / denom if count else torch.full_like(s, nan)).cpu() for g, s in self.finished.items()
            },
        )
        self._reset_sums()
        return stats


class RolloutCollector:
    """Steps ``env`` with ``policy`` and returns ``[num_envs, steps]`` batches; episodes continue across calls.

    With ``reuse_buffer=True`` (the default) every call writes into the same preallocated batch,
    which the next call overwrites: on-policy learners consume a batch before collecting again, and
    allocating a fresh batch each time cost up to ~20% of VMAS collection at 4096 envs
    (docs/benchmarks.md). Pass ``reuse_buffer=False``, or ``.clone()`` the batch, to keep it.
    """

    def __init__(self, env: MultiAgentEnv, policy: Policy, steps: int, reuse_buffer: bool = True) -> None:
        self.env = env
        self.policy = policy
        self.steps = steps
        self.reuse_buffer = reuse_buffer
        self.tracker = EpisodeTracker(env)
        self._td: TensorDictBase | None = None
        self._buffer: TensorDictBase | None = None

    def reset(self, seed: int | None = None) -> None:
        self._td = self.env.reset(seed)
        self.tracker = EpisodeTracker(self.env)

    @torch.no_grad()
    def collect(self) -> tuple[TensorDict, EpisodeStats]:
        if self._td is None:
            self.reset()
        assert self._td is not None
        td = self._td
        records = []
        for _ in range(self.steps):
            td = self.policy(td)
            out = self.env.step(td)
            records.append(transition(td, out, self.env.groups))
            carry_recurrent_state(td, out, self.env.groups)
            self.tracker.update(out)
            td = out
        self._td = td
        if self._buffer is not None and _same_layout(self._buffer, records[0]):
            batch = torch.stack(records, dim=1, out=self._buffer)  # type: ignore[call-overload]
        else:
            batch = torch.stack(records, dim=1)  # type: ignore[assignment]
            self._buffer = batch if self.reuse_buffer else None
        return batch, self.tracker.pop()  # type: ignore[return-value]


def _same_layout(buffer: TensorDictBase, record: TensorDictBase) -> bool:
    keys = set(record.keys(include_nested=True, leaves_only=True))
    return keys == set(buffer.keys(include_nested=True, leaves_only=True)) and all(
        buffer.get(k).dtype == record.get(k).dtype and buffer.get(k).shape[2:] == record.get(k).shape[1:] for k in keys
    )


def carry_recurrent_state(td: TensorDictBase, out: TensorDictBase, groups: dict) -> None:
    """Hand a recurrent policy's (and critic's) new state (``td[g][RECURRENT_STATE_OUT]``) to the next
    step's ``out``, zeroed in the env copies that were reset; a no-op for feed-forward networks."""
    for g in groups:
        for produced, entering in CARRIED:
            state = td[g].get(produced, None)
            if state is not None:
                out[g].set(entering, reset_state(state, out[DONE]))


def transition(td: TensorDictBase, out: TensorDictBase, groups: dict) -> TensorDict:
    """One time step: what was seen and done (``td``), its outcome and the observation reached (``out``)."""
    record = td.clone(recurse=False)
    for g in groups:
        group_td = td[g].clone(recurse=False)
        for key in OUTCOME_KEYS:
            group_td.set(key, out[g][key])
        record.set(g, group_td)
    record.set(NEXT, out[NEXT])
    record.set(DONE, out[DONE])
    return record  # type: ignore[return-value]
