"""The config of a ``teams`` run (:mod:`marlkit.algorithms.teams`): teams, what plays each, its
options, the ``--team`` flags, and which env groups each team holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from marlkit.algorithms.registry import algorithm
from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.options import option, require, to_dict, with_overrides
from marlkit.learner import EnvInfo
from marlkit.networks.groups import action_width

TEAMS = "teams"
FIXED_PLAYS = ("frozen", "scripted", "pool")


@dataclasses.dataclass(frozen=True)
class TeamConfig:
    """One team of a ``teams`` run; its table's other keys are the options of its algorithm."""

    play: str = option(
        "", "an algorithm that trains the team (maddpg, mappo, pkg.mod:Learner), or frozen/scripted/pool"
    )
    groups: tuple[str, ...] = option((), "the team's env groups (default: the group named like the team)")
    opponent: str = option(
        "", "frozen: a run dir or .pt file; scripted: random or pkg.mod:fn; pool: the team it mirrors"
    )
    snapshot_every: int = option(0, "frames between snapshots of this learning team into its pool (0: no pool)")
    pool_size: int = option(100, "snapshots kept in the pool; the oldest goes first")
    latest: float = option(0.0, "pool: probability of playing the newest snapshot, else uniform over the pool")
    critic_sees: Literal["team", "all"] = option(
        "team",
        "learning teams: all extends the global state the team's learner trains on (its centralized critics' "
        "input) by every other team's actions: the played ones at s, the other players' greedy actions at s' "
        "(MADDPG's critics see every agent's action)",
    )
    acting: Literal["explore", "greedy"] = option(
        "explore",
        "frozen/pool: explore acts as the learner did when saved (its sampling, its exploration at the level "
        "it had reached); greedy acts deterministically. Evaluation is always greedy",
    )
    algo: Any = None
    """The config of ``play`` when it is an algorithm."""

    @property
    def learns(self) -> bool:
        return self.play not in FIXED_PLAYS

    def validate(self, key: Any) -> None:
        require(self.snapshot_every >= 0, f"{key('snapshot_every')} must be >= 0, got {self.snapshot_every}")
        require(self.pool_size >= 1, f"{key('pool_size')} must be >= 1, got {self.pool_size}")
        require(0.0 <= self.latest <= 1.0, f"{key('latest')} must be in [0, 1], got {self.latest}")
        require(
            self.critic_sees == "team" or self.learns,
            f"{key('critic_sees')} applies to learning teams only; this team plays {self.play}",
        )
        require(
            self.acting == "explore" or self.play in ("frozen", "pool"),
            f"{key('acting')} applies to frozen and pool teams only; this team plays {self.play}",
        )


TEAM_FIELDS = tuple(f.name for f in dataclasses.fields(TeamConfig) if f.name != "algo")


@dataclasses.dataclass(frozen=True)
class TeamsConfig:
    """Teams in order; build with :meth:`from_overrides` (``{"red.play": "mappo", "red.lr": 1e-3}``)."""

    teams: tuple[tuple[str, TeamConfig], ...] = ()

    def team(self, name: str) -> TeamConfig:
        return dict(self.teams)[name]

    def label(self) -> str:
        """``adversary=maddpg,agent=ddpg``: what the report names the run's algorithm by."""
        return ",".join(f"{n}={t.play}" for n, t in self.teams)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, team in self.teams:
            table = {k: getattr(team, k) for k in TEAM_FIELDS}
            table["groups"] = list(team.groups)
            out[name] = {**table, **(to_dict(team.algo) if team.algo is not None else {})}
        return out

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> TeamsConfig:
        by_team: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            team_name, dot, rest = key.partition(".")
            if not dot:
                raise MarlkitError(
                    f"'algo.{key}' is not a team option; a teams run takes algo.TEAM.play=ALGO and "
                    f"algo.TEAM.KEY=VALUE, e.g. algo.{key}.play=mappo"
                )
            by_team.setdefault(team_name, {})[rest] = value
        if not by_team:
            raise MarlkitError("a teams run needs at least one team: algo.TEAM.play=ALGO (or --team TEAM=ALGO)")
        teams = []
        for name, table in by_team.items():
            own = {k: v for k, v in table.items() if k.partition(".")[0] in TEAM_FIELDS}
            options = {k: v for k, v in table.items() if k not in own}
            team = with_overrides(TeamConfig(), own, f"algo.{name}")
            if not team.play:
                raise MarlkitError(f"team '{name}' needs algo.{name}.play: an algorithm name, frozen, scripted or pool")
            if team.learns:
                algo = with_overrides(algorithm(team.play).default_config(), options, f"algo.{name}")
                team = dataclasses.replace(team, algo=algo)
            elif options:
                raise MarlkitError(
                    f"team '{name}' plays {team.play} and takes no algorithm options, got "
                    f"{', '.join('algo.' + name + '.' + k for k in options)}; valid: {', '.join(TEAM_FIELDS)}"
                )
            elif not team.opponent:
                raise MarlkitError(
                    f"team '{name}' plays {team.play} and needs algo.{name}.opponent ({_OPPONENT[team.play]})"
                )
            teams.append((name, dataclasses.replace(team, groups=team.groups or (name,))))
        return cls(tuple(teams))


_OPPONENT = {
    "frozen": "a run directory or checkpoint file",
    "scripted": "random, or pkg.mod:function",
    "pool": "the name of the learning team whose snapshots it plays",
}


def parse_team_flags(flags: Sequence[str]) -> dict[str, Any]:
    """``--team adversary=maddpg --team agent=frozen:runs/x`` -> ``algo.*`` overrides of a teams run."""
    out: dict[str, Any] = {}
    for flag in flags:
        name, eq, play = flag.partition("=")
        if not eq or not name or not play:
            raise MarlkitError(f"--team takes TEAM=ALGO (or TEAM=frozen:RUN, scripted:random, pool:TEAM), got '{flag}'")
        kind, colon, opponent = play.partition(":")
        if colon and kind in FIXED_PLAYS:
            out[f"algo.{name}.opponent"] = opponent
            play = kind
        out[f"algo.{name}.play"] = play
    return out


def assign_groups(cfg: TeamsConfig, env: EnvInfo) -> dict[str, list[str]]:
    """Every env group in exactly one team; one line naming the first group that is not."""
    owner: dict[str, str] = {}
    for name, team in cfg.teams:
        if name in env.groups and team.groups != (name,):
            raise MarlkitError(f"team '{name}' is named like a group but holds {list(team.groups)}; rename the team")
        for g in team.groups:
            if g not in env.groups:
                raise MarlkitError(
                    f"team '{name}' names group '{g}', which {env.name} does not have.{suggest(g, list(env.groups))} "
                    f"Groups: {', '.join(env.groups)}"
                )
            if g in owner:
                raise MarlkitError(f"group '{g}' is in two teams, '{owner[g]}' and '{name}'; give it to one")
            owner[g] = name
    missing = [g for g in env.groups if g not in owner]
    if missing:
        raise MarlkitError(
            f"group '{missing[0]}' of {env.name} is in no team; add algo.{missing[0]}.play=ALGO "
            f"(or algo.TEAM.groups=[...]); teams: {', '.join(n for n, _ in cfg.teams)}"
        )
    return {name: [g for g in env.groups if owner[g] == name] for name, _ in cfg.teams}


def team_info(cfg: TeamsConfig, env: EnvInfo, name: str, groups: Mapping[str, list[str]] | None = None) -> EnvInfo:
    """What team ``name``'s learner knows of ``env``: its own groups, and with ``critic_sees=all`` a global
    state wider by the other teams' joint action (unit space: one-hot or in [-1, 1], group by group in env
    order), no longer the concatenation of the observations."""
    groups = groups if groups is not None else assign_groups(cfg, env)
    own = {g: env.groups[g] for g in groups[name]}
    if cfg.team(name).critic_sees == "team":
        return dataclasses.replace(env, groups=own)
    extra = sum(s.n_agents * action_width(s) for g, s in env.groups.items() if g not in own)
    return dataclasses.replace(env, groups=own, state_dim=env.state_dim + extra, state_source="env")
