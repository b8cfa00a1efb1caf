"""The learner contract: everything the training loop, the evaluator and checkpoints ask of an algorithm.

A learner is built as ``MyLearner(cfg, env, seed)`` from its frozen config and one :class:`EnvInfo`
(never from the env itself), and then the loop only ever does this::

    learner.to(device)
    while frames < budget:
        batch = collect(learner.act, steps=learner.steps_per_collection)   # [num_envs, T] TensorDict
        metrics = learner.update(batch)                                    # borrowed batch, see update()
    checkpoint: learner.state_dict() + learner.training_state(); resume: load_training_state, load_state_dict
    a frozen copy (an opponent): load_state_dict + load_acting_state (the exploration state act() reads)
    evaluation: learner.act(td, deterministic=True); end of run: learner.run_summary()
    optional, per collection: learner.collection_metrics(agent returns) and learner.write_files(run dir)

Subclass :class:`Learner` (it is an ``nn.Module``: parameters and buffers go in ``state_dict``),
implement the three abstract members, and register it (:func:`marlkit.algorithms.register`) or name
it by import path (``marlkit train my_pkg.my_algo:MyLearner vmas/navigation``).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tensordict import TensorDictBase
from torch import Tensor, nn

from marlkit.core.specs import GroupSpec

if TYPE_CHECKING:
    from marlkit.adapters.base import MultiAgentEnv, StateSource


@dataclass(frozen=True)
class EnvInfo:
    """What a learner may know about its env: the same for training, evaluation and a rebuilt checkpoint."""

    name: str
    """The env's name (``vmas/navigation``): known termination and reward functions are looked up by it."""
    groups: Mapping[str, GroupSpec]
    """Agent groups in env order: names, agents, observation and action specs."""
    state_dim: int
    """Width of ``td["state"]``, the global state."""
    state_source: StateSource = "observations"
    """``env`` when the simulator provides the global state, ``observations`` when it is their concatenation."""
    scenario: Any = None
    """The simulator's scenario object where the backend has one (VMAS); known reward functions read it."""
    hidden: tuple[int, ...] = ()
    """Observation entries removed by ``env.hide``: the observations are not the task's full ones. The
    state keeps them; where it is the concatenation of the full observations (``state_source``
    ``observations``), known reward and termination functions read it instead."""

    @classmethod
    def of(cls, env: MultiAgentEnv) -> EnvInfo:
        return cls(env.name, dict(env.groups), env.state_dim, env.state_source, env.scenario, env.hidden)

    @property
    def n_agents(self) -> int:
        return sum(s.n_agents for s in self.groups.values())


class Actor(Protocol):
    """Anything that writes actions: a learner, or a lineup of players in a game (:mod:`marlkit.analysis.games`)."""

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase: ...


class Learner(nn.Module, metaclass=ABCMeta):
    """An algorithm as the training loop sees it. Construct as ``Learner(cfg, env: EnvInfo, seed: int)``."""

    Config: ClassVar[type]
    """The frozen config dataclass (its fields are the ``algo.*`` options); needed to load by import path."""

    replays: ClassVar[bool] = False
    """True when :meth:`update` may learn from actions of an older policy (replay buffers, models): a
    teams run (:mod:`marlkit.algorithms.teams`) may then hand it several slices of one longer collection."""

    @property
    def acting_reads_state(self) -> bool:
        """Whether :meth:`act` reads ``td["state"]`` (planners, models of the state, recurrent critics
        stepped while acting). A teams run that widens a team's training state (``critic_sees=all``)
        refuses such a learner: the state it acts on would lack the other teams' actions."""
        return False

    @property
    @abstractmethod
    def steps_per_collection(self) -> int:
        """Env steps per env copy that the loop collects before each :meth:`update`."""

    @abstractmethod
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        """Write ``td[group]["action"]`` for every group (batch ``[num_envs]``) and return ``td``.

        ``deterministic`` is set for evaluation. Called under ``torch.no_grad()`` by the collector."""

    @abstractmethod
    def update(self, batch: TensorDictBase) -> dict[str, float]:
        """Learn from a ``[num_envs, T]`` batch (layout: :mod:`marlkit.training.rollout`); return metrics for
        ``metrics.csv``.

        The batch is **borrowed**: the collector writes the next collection into the same memory, so
        it is valid only until ``update`` returns. Copy what you keep (``.clone()``, or a replay
        buffer's ``extend``, which copies)."""

    def training_state(self, include_replay: bool = True) -> dict[str, Any]:
        """Everything besides ``state_dict()`` that an exact resume needs: optimizers, generators,
        counters and (``include_replay``) stored data. Tensors and plain data only (loaded with
        ``weights_only=True``)."""
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`training_state`; called before ``load_state_dict``."""

    def acting_state(self) -> dict[str, Any]:
        """The part of :meth:`training_state` that :meth:`act` reads besides ``state_dict()``: exploration
        schedules (warm-up, epsilon, noise level), noise processes, planners' generators. A frozen copy of
        the learner (an opponent in a teams run) restores it to act as the learner did when it was saved;
        without it, a copy would act like an untrained learner (at random during its warm-up).
        Override it together with :meth:`load_acting_state` when ``act`` depends on such state."""
        return {}

    def load_acting_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`acting_state` from its own output or from a whole :meth:`training_state`."""

    def run_summary(self) -> dict[str, float]:
        """Extra numbers for ``summary.json`` at the end of a run (e.g. planning wall-clock)."""
        return {}

    def collection_metrics(self, agent_returns: Mapping[str, Tensor]) -> dict[str, float]:
        """Extra ``metrics.csv`` columns computed from a collection's per-agent returns of the episodes
        that ended in it (per group, ``[n_agents]``), e.g. a team's return over several groups."""
        return {}

    def write_files(self, run: Path, config: dict[str, Any]) -> None:
        """Write files of the learner's own into the run directory ``run`` (``config`` is its
        ``config.json``): called when a new run starts and after every collection's update. Write
        atomically (:func:`marlkit.core.checkpoint.save_checkpoint`): a run may be killed at any point."""
