"""A learner per team: mixed and competitive games in one run, with frozen, scripted and self-play opponents.

A run with ``algo_name = "teams"`` assigns the env's groups to teams. Each team is played by

* an algorithm (``play: maddpg``, ``mappo``, ``my_pkg.algo:MyLearner``) that trains it on its own
  groups, with its own config (every other key of the team's table is that algorithm's option);
* ``frozen``: a policy loaded from another run's checkpoint (``opponent: RUN_DIR`` or a ``.pt`` file,
  ``weights_only=True``) and never updated;
* ``scripted``: ``opponent: random`` (uniform, mask-respecting) or ``my_pkg.mod:policy``, a function
  ``policy(td, groups)`` that writes ``td[g]["action"]`` for the team's groups;
* ``pool``: snapshots of the learning team named by ``opponent`` (self-play in a symmetric game: the
  groups must match that team's, spec for spec). Each collection plays one snapshot, the newest with
  probability ``latest`` and otherwise one drawn uniformly from the pool (fictitious play).

A learning team with ``snapshot_every > 0`` keeps a pool of its past policies (the first one taken at
frame 0): it is part of the exact checkpoint, and each snapshot is also written to
``RUN/pool/<team>/snapshot-<frames>.pt``, which another run can load as a frozen opponent.

One env and one collector serve every team. A collection lasts as many steps as the longest team
asks for, and every team's ``steps_per_collection`` must divide it. A team's learner sees only its
own groups (and the global state), and updates once per slice of its own length, in time order, so
an off-policy team with 10-step collections keeps its schedule beside a 100-step on-policy team.
A learner that learns from its own fresh actions only (``Learner.replays`` false) must have the
full collection length: a later slice would hold actions of its policy before the update.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.registry import AlgorithmSpec, algorithm
from marlkit.algorithms.teams_config import (
    TEAMS,
    TeamConfig,
    TeamsConfig,
    assign_groups,
    parse_team_flags,
    team_info,
)
from marlkit.core.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from marlkit.core.errors import MarlkitError
from marlkit.core.imports import import_attr
from marlkit.core.options import describe
from marlkit.core.specs import GroupSpec
from marlkit.keys import ACTION, ACTION_MASK, NEXT, RECURRENT_STATE, RECURRENT_STATE_OUT, STATE
from marlkit.learner import Actor, EnvInfo, Learner
from marlkit.networks.groups import JointActions
from marlkit.training.runs import Player, acting_weights, check_groups, load_player

# ----------------------------------------------------------------------------- players
Snapshot = tuple[int, dict[str, torch.Tensor], dict[str, Any]]
"""A pool entry: frames when taken, acting weights, acting state (:meth:`Learner.acting_state`)."""


def clone_state(state: Any) -> Any:
    """A copy of nested dicts/lists of tensors and plain values that later steps cannot change."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, Mapping):
        return {k: clone_state(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(clone_state(v) for v in state)
    return state


class Scripted(nn.Module):
    """``random``: uniform mask-respecting actions from a seeded generator; else a user's function."""

    def __init__(self, source: str, groups: Mapping[str, GroupSpec], seed: int) -> None:
        super().__init__()
        self.groups = dict(groups)
        self.generator = torch.Generator().manual_seed(seed)
        self.function: Callable[..., Any] | None = (
            None if source == "random" else import_attr(source, "scripted policy")
        )
        if self.function is not None and not callable(self.function):
            raise MarlkitError(f"scripted policy '{source}' is not callable; give pkg.mod:function(td, groups)")

    def generator_state(self) -> dict[str, Any]:
        """The generator's state with its device: on CUDA the first step swaps in a CUDA generator."""
        return {"device": str(self.generator.device), "state": self.generator.get_state()}

    def load_generator_state(self, state: Mapping[str, Any] | torch.Tensor) -> None:
        if isinstance(state, torch.Tensor):  # a checkpoint from before the device was saved: a CPU generator
            state = {"device": "cpu", "state": state}
        if str(self.generator.device) != state["device"]:
            self.generator = torch.Generator(state["device"])
        self.generator.set_state(state["state"])

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        if self.function is not None:
            self.function(td, self.groups)
            return td
        if self.generator.device != td.device and td.device is not None:
            self.generator = torch.Generator(td.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=self.generator))
            )
        for g, spec in self.groups.items():
            mask = td[g].get(ACTION_MASK, None) if spec.has_action_mask else None
            td[g][ACTION] = spec.random_action(td.batch_size, self.generator, td.device, mask)
        return td


# ------------------------------------------------------------------------------ teams
class Teams(Learner):
    """Every team's player behind one learner: the loop, evaluator and checkpoints see one learner."""

    Config = TeamsConfig
    replays: ClassVar[bool] = True  # it slices collections itself

    def __init__(self, cfg: TeamsConfig, env: EnvInfo, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.env_info = env
        self.team_groups = assign_groups(cfg, env)
        self.players = nn.ModuleDict()
        for index, (name, team) in enumerate(cfg.teams):
            groups = self.team_groups[name]
            info = team_info(cfg, env, name, self.team_groups)
            if team.play == "frozen":
                self.players[name] = load_player(team.opponent, groups, env, greedy=team.acting == "greedy")
            elif team.play == "scripted":
                self.players[name] = Scripted(team.opponent, info.groups, seed + index)
            elif team.play == "pool":
                self.players[name] = self._mirror(name, team, env, seed + index)
            else:
                try:
                    self.players[name] = algorithm(team.play).build(team.algo, info, seed + index)
                except MarlkitError as err:
                    raise MarlkitError(f"team '{name}' ({team.play} on {', '.join(groups)}): {err}") from None
        self.learners = {n: typing_learner(self.players[n]) for n, t in cfg.teams if t.learns}
        # critic_sees=all: the other teams' actions, packed as the widened state holds them.
        self.others = nn.ModuleDict()
        for name, team in cfg.teams:
            if team.critic_sees == "all":
                if self.learners[name].acting_reads_state:
                    raise MarlkitError(
                        f"team '{name}' ({team.play}) reads the global state while acting, so it cannot train on "
                        f"a state widened by the other teams' actions; set algo.{name}.critic_sees=team"
                    )
                others = {g: s for g, s in env.groups.items() if g not in self.team_groups[name]}
                if not others:
                    raise MarlkitError(f"team '{name}' has critic_sees=all but no other team; set it to team")
                self.others[name] = JointActions(others)
        self.steps = self._collection_length()
        self.frames = 0
        # Pools: per learning team, (frames, state_dict, acting state) snapshots, oldest first.
        self.pools: dict[str, list[Snapshot]] = {}
        self.next_snapshot: dict[str, int] = {}
        self.playing: dict[str, int] = {}  # pool player -> index of the snapshot it plays
        self.fresh: list[tuple[str, Snapshot]] = []  # snapshots not yet written to files
        self.generator = torch.Generator().manual_seed(seed + 104_729)
        for name, team in cfg.teams:
            if team.learns and team.snapshot_every:
                self.pools[name] = []
                self.next_snapshot[name] = 0
        self._snapshot()
        self._draw_opponents()

    def _mirror(self, name: str, team: TeamConfig, env: EnvInfo, seed: int) -> Player:
        teams = dict(self.cfg.teams)
        source = teams.get(team.opponent)
        if source is None or not source.learns or not source.snapshot_every:
            learning = [n for n, t in self.cfg.teams if t.learns and t.snapshot_every]
            raise MarlkitError(
                f"team '{name}' plays the pool of '{team.opponent}', which is not a learning team with "
                f"snapshot_every > 0 (those: {', '.join(learning) or 'none'}); set algo.TEAM.snapshot_every"
            )
        mine, theirs = self.team_groups[name], self.team_groups[team.opponent]
        if len(mine) != len(theirs):
            raise MarlkitError(
                f"team '{name}' ({', '.join(mine)}) cannot play the pool of '{team.opponent}' ({', '.join(theirs)}): "
                "a mirrored team needs as many groups, with the same specs"
            )
        pairs = list(zip(theirs, mine, strict=True))
        check_groups(f"team '{team.opponent}'", env.groups, pairs, env.groups)
        info = team_info(self.cfg, env, team.opponent, self.team_groups)
        learner = algorithm(source.play).build(source.algo, info, seed).eval()
        return Player(learner, pairs, info.groups, env.groups, greedy=team.acting == "greedy")

    def _collection_length(self) -> int:
        lengths = {n: learner.steps_per_collection for n, learner in self.learners.items()}
        if not lengths:
            return 1
        total = math.lcm(*lengths.values())
        for name, steps in lengths.items():
            if steps != total and not self.learners[name].replays:
                longest = max(lengths, key=lambda n: lengths[n])
                raise MarlkitError(
                    f"team '{name}' learns from fresh actions only and collects {steps} steps, but the run "
                    f"collects {total} (team '{longest}'); give every such team the same rollout_steps, "
                    "a multiple of the others'"
                )
        return total

    # ---------------------------------------------------------------- contract
    @property
    def steps_per_collection(self) -> int:
        return self.steps

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for player in self.players.values():  # a team's learner touches its own groups only
            typing.cast(Actor, player).act(td, deterministic)
        return td

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        metrics: dict[str, float] = {}
        # Widened states first: the other players' actions at s' come from their policies before any update.
        widened = {name: self._widened_states(batch, name) for name in self.others}
        for name, learner in self.learners.items():
            others = [g for g in self.env_info.groups if g not in self.team_groups[name]]
            own = batch.exclude(*others, *[(NEXT, g) for g in others])
            if name in widened:
                own[STATE], own[NEXT, STATE] = widened[name]
            steps = learner.steps_per_collection
            for start in range(0, batch.shape[1], steps):
                result = learner.update(own[:, start : start + steps])
            metrics.update({f"{name}/{k}": v for k, v in result.items()})
        self.frames += batch.numel()
        self._snapshot()
        self._draw_opponents()
        return metrics

    @torch.no_grad()
    def _widened_states(self, batch: TensorDictBase, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Team ``name``'s states at s and s' with the other teams' joint action appended: the actions
        they played at s, and at s' the actions their players choose greedily on the next observations
        (recurrent players from the state they carried out of step t), as MADDPG's target critic takes
        every agent's target action at s'. Every player's exploration state is left as it was."""
        joint = typing.cast(JointActions, self.others[name])
        groups = list(joint.groups)
        now = joint.pack_env(batch)
        following = batch[NEXT].select(*groups).reshape(-1).clone()
        for g in groups:
            if RECURRENT_STATE_OUT in batch[g].keys():
                following[g][RECURRENT_STATE] = batch[g][RECURRENT_STATE_OUT].reshape(
                    -1, *batch[g][RECURRENT_STATE_OUT].shape[2:]
                )
        acting = {n: p for n, p in self.players.items() if n != name}
        kept = {n: clone_state(self._acting_of(p)) for n, p in acting.items()}
        for player in acting.values():
            typing.cast(Actor, player).act(following, deterministic=True)
        for n, player in acting.items():
            self._restore_acting(player, kept[n])
        after = joint.pack_env(following).reshape(*batch.shape, joint.dim)
        return torch.cat([batch[STATE], now], -1), torch.cat([batch[NEXT, STATE], after], -1)

    @staticmethod
    def _acting_of(player: nn.Module) -> Any:
        if isinstance(player, Scripted):
            return player.generator_state()
        return (
            typing_player(player).learner.acting_state()
            if isinstance(player, Player)
            else typing_learner(player).acting_state()
        )

    @staticmethod
    def _restore_acting(player: nn.Module, state: Any) -> None:
        if isinstance(player, Scripted):
            player.load_generator_state(state)
        elif isinstance(player, Player):
            player.learner.load_acting_state(state)
        else:
            typing_learner(player).load_acting_state(state)

    def training_state(self, include_replay: bool = True) -> dict[str, Any]:
        return {
            "teams": {n: learner.training_state(include_replay) for n, learner in self.learners.items()},
            "frames": self.frames,
            "pools": {n: [list(snapshot) for snapshot in pool] for n, pool in self.pools.items()},
            "next_snapshot": dict(self.next_snapshot),
            "playing": dict(self.playing),
            "generator": self.generator.get_state(),
            "scripted": {n: p.generator_state() for n, p in self.players.items() if isinstance(p, Scripted)},
            # Frozen and pool players' exploration state (OU noise, planners) moves as they act.
            "players": self._players_acting(),
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        for name, learner in self.learners.items():
            learner.load_training_state(state["teams"][name])
        self.frames = state["frames"]
        self.pools = {n: [(int(f), w, a) for f, w, a in pool] for n, pool in state["pools"].items()}
        self.next_snapshot = dict(state["next_snapshot"])
        self.playing = dict(state["playing"])
        self.generator.set_state(state["generator"])
        for name, generator_state in state["scripted"].items():
            typing_scripted(self.players[name]).load_generator_state(generator_state)
        self.fresh.clear()
        self._load_opponents()
        self._load_players_acting(state["players"])  # after the pool players took their snapshots' state

    def acting_state(self) -> dict[str, Any]:
        """Every learning team's acting state, and the fixed players': a frozen copy of a whole teams run
        (an opponent loaded from its checkpoint) acts as the run did."""
        teams = {n: learner.acting_state() for n, learner in self.learners.items()}
        return {"teams": teams, "players": self._players_acting()}

    def _players_acting(self) -> dict[str, Any]:
        return {n: p.learner.acting_state() for n, p in self.players.items() if isinstance(p, Player)}

    def load_acting_state(self, state: Mapping[str, Any]) -> None:
        for name, learner in self.learners.items():
            learner.load_acting_state(state["teams"][name])
        self._load_players_acting(state["players"])

    def _load_players_acting(self, states: Mapping[str, Any]) -> None:
        for name, acting in states.items():
            typing_player(self.players[name]).learner.load_acting_state(acting)

    def run_summary(self) -> dict[str, float]:
        return {f"{n}/{k}": v for n, learner in self.learners.items() for k, v in learner.run_summary().items()}

    # ------------------------------------------------------------------- pools
    def _snapshot(self) -> None:
        for name, pool in self.pools.items():
            if self.frames < self.next_snapshot[name]:
                continue
            team, learner = self.cfg.team(name), self.learners[name]
            weights = {k: v.detach().clone() for k, v in acting_weights(learner.state_dict()).items()}
            snapshot = (self.frames, weights, clone_state(learner.acting_state()))
            pool.append(snapshot)
            del pool[: max(len(pool) - team.pool_size, 0)]
            self.fresh.append((name, snapshot))
            while self.next_snapshot[name] <= self.frames:
                self.next_snapshot[name] += team.snapshot_every

    def _draw_opponents(self) -> None:
        for name, team in self.cfg.teams:
            if team.play != "pool":
                continue
            size = len(self.pools[team.opponent])
            newest = bool(torch.rand((), generator=self.generator) < team.latest)
            uniform = int(torch.randint(size, (), generator=self.generator))
            self.playing[name] = size - 1 if newest else uniform
        self._load_opponents()

    def _load_opponents(self) -> None:
        for name, index in self.playing.items():
            _, weights, acting = self.pools[self.cfg.team(name).opponent][index]
            learner = typing_player(self.players[name]).learner
            learner.load_state_dict(weights)
            learner.load_acting_state(acting)

    def pool(self, team: str) -> list[Snapshot]:
        """``(frames, weights, acting state)`` snapshots of a learning team, oldest first."""
        return self.pools[team]

    def write_files(self, run: Path, config: dict[str, Any]) -> None:
        """Snapshots taken since the last call go to ``run/pool/<team>/snapshot-<frames>.pt`` (written
        atomically; a resumed run writes the same files again), each loadable as a frozen opponent."""
        for team, (frames, weights, acting) in self.fresh:
            state = {
                "format": CHECKPOINT_FORMAT,
                "config": config,
                "team": team,
                "frames": frames,
                "learner": weights,
                "acting": acting,
            }
            save_checkpoint(run / "pool" / team / f"snapshot-{frames:012d}.pt", state)
        self.fresh = []

    def collection_metrics(self, agent_returns: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Each team's mean training return over its agents, for teams of several groups (a team that is
        one group of its name already has its column)."""
        return {
            f"return_{team}": float(torch.cat([agent_returns[g] for g in groups]).mean())
            for team, groups in self.team_groups.items()
            if groups != [team]
        }


def typing_learner(module: nn.Module) -> Learner:
    assert isinstance(module, Learner)
    return module


def typing_player(module: nn.Module) -> Player:
    assert isinstance(module, Player)
    return module


def typing_scripted(module: nn.Module) -> Scripted:
    assert isinstance(module, Scripted)
    return module


def members(cfg: TeamsConfig, name: str, env: EnvInfo) -> tuple[str, Any, EnvInfo]:
    """A learning team's algorithm, config and view of ``env``: how one of its pool snapshots loads on its own."""
    team = cfg.team(name)
    return team.play, team.algo, team_info(cfg, env, name)


def label(algo: Mapping[str, Any]) -> str:
    """``adversary=maddpg,agent=ddpg``: what a report names a teams run by (from ``config.json``)."""
    return ",".join(f"{team}={table.get('play')}" for team, table in algo.items())


def option_help() -> tuple[str, list[tuple[str, str, Any, str]]]:
    title = "team keys of a teams run (algo.TEAM.KEY=VALUE; any other key is the team algorithm's option)"
    return title, [row for row in describe(TeamConfig(), "algo.TEAM.") if row[0] != "algo.TEAM.algo"]


SPEC = AlgorithmSpec(
    Teams,
    TeamsConfig,
    summary="a learner per team: algo.TEAM.play=ALGO|frozen|scripted|pool (or --team TEAM=ALGO)",
    read_config=TeamsConfig.from_overrides,
    write_config=TeamsConfig.to_json,
    sides=lambda cfg, env: assign_groups(cfg, env),
    label=label,
    members=members,
    flags=parse_team_flags,
    flag_name="team",
    option_help=option_help,
)


__all__ = [
    "SPEC",
    "TEAMS",
    "Scripted",
    "TeamConfig",
    "Teams",
    "TeamsConfig",
    "assign_groups",
    "parse_team_flags",
]
