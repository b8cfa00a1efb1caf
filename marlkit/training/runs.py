"""Reading a finished (or running) run: its config, its checkpoints, its learner, and the policy of some
of its groups as a player in another env (frozen opponents, head-to-head, cross-play).

Every module that reads runs goes through here: evaluation, deployment, games and composite learners
(a ``teams`` run's frozen and pool opponents).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from marlkit.adapters import make_env
from marlkit.algorithms.registry import algorithm
from marlkit.core.checkpoint import load_checkpoint, use_first_usable
from marlkit.core.errors import MarlkitError, first_line
from marlkit.core.specs import Discrete, GroupSpec
from marlkit.keys import ACTION_MASK, ALIVE, CRITIC_STATE, OBS, RECURRENT_STATE
from marlkit.learner import EnvInfo, Learner
from marlkit.training.config import RunConfig

# A shielded group's recurrent states belong to another player (another size, even).
MEMORY_KEYS = (RECURRENT_STATE, CRITIC_STATE)


def read_run_config(run: Path) -> RunConfig:
    """The config a run directory was made with (its ``config.json``)."""
    path = run / "config.json"
    if not path.exists():
        raise MarlkitError(f"{run} is not a run directory (no config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a mapping")
        return RunConfig.from_json(data)
    except MarlkitError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSON and UTF-8 errors are ValueErrors
        raise MarlkitError(
            f"{path} is not a readable marlkit config ({type(err).__name__}: {first_line(err)})"
        ) from None


def env_info_of(config: RunConfig) -> EnvInfo:
    """The EnvInfo of a run's task, from a one-copy probe env."""
    probe = make_env(config.env_name, 1, "cpu", 0, **config.env_kwargs)
    info = EnvInfo.of(probe)
    probe.close()
    return info


def run_sides(run: Path) -> tuple[RunConfig, dict[str, list[str]]]:
    """A run's config and its sides: those its algorithm plays (the teams of a teams run), else one
    side per group of its env."""
    config = read_run_config(run)
    info = env_info_of(config)
    sides = algorithm(config.algo_name).game_sides(config.algo, info)
    return config, sides if sides is not None else {g: [g] for g in info.groups}


def checkpoint_candidates(run: Path, which: str) -> list[Path]:
    """The checkpoints to try for ``which``, best first: ``best.pt`` alone, or ``final.pt`` then the
    periodic checkpoints, newest first."""
    checkpoints = run / "checkpoints"
    if which == "best":
        candidates = [checkpoints / "best.pt"]
    elif which == "last":
        candidates = [checkpoints / "final.pt", *sorted(checkpoints.glob("ckpt-*.pt"), reverse=True)]
    else:
        raise MarlkitError(f"--checkpoint must be 'last' or 'best', got '{which}'")
    present = [p for p in candidates if p.exists()]
    if not present:
        raise MarlkitError(f"{run} has no {which} checkpoint (looked for {', '.join(p.name for p in candidates)})")
    return present


def acting_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A learner's weights less what only training uses: PPO-clip keeps optimizer copies of its actor
    rows in its state_dict (``actor_rows.``), made at its first update."""
    return {k: v for k, v in state.items() if "actor_rows." not in k}


class LoadedRun(NamedTuple):
    config: RunConfig
    learner: Learner
    checkpoint: Path
    acting_state: bool
    """Whether the learner's acting state (exploration schedules, noise, planners) was restored too."""
    info: EnvInfo


def load_run(run: Path, which: str = "last", acting: bool = False) -> LoadedRun:
    """The run's learner (in eval mode) with the weights of its ``which`` checkpoint and, with ``acting``,
    the acting state that its sampled actions read, where the checkpoint has one (``best.pt`` holds
    weights only). An unreadable checkpoint (a corrupted file) is skipped for the next older one, as
    ``resume`` does; none usable is one line."""
    config = read_run_config(run)
    candidates = checkpoint_candidates(run, which)
    info = env_info_of(config)
    learner = algorithm(config.algo_name).build(config.algo, info, config.experiment.seed)
    restored = []

    def use(state: dict[str, Any]) -> None:
        learner.load_state_dict(acting_weights(state["learner"]))
        if acting and "training" in state:
            learner.load_acting_state(state["training"])
            restored.append(True)

    path = use_first_usable(
        candidates,
        use,
        f"no usable {which} checkpoint in {run / 'checkpoints'} (tried {', '.join(p.name for p in candidates)})",
    )
    return LoadedRun(config, learner.eval(), path, bool(restored), info)


def load_learner(run: Path, which: str = "last") -> tuple[RunConfig, Learner, Path]:
    """The run's learner with the weights of its ``which`` checkpoint (see :func:`load_run`)."""
    loaded = load_run(run, which)
    return loaded.config, loaded.learner, loaded.checkpoint


# ----------------------------------------------------------------------------- players
class Player(nn.Module):
    """Acts for some env groups with a learner that may know other groups, or know them by other names.

    ``pairs`` maps the learner's groups to the env groups they play. The learner's other groups see
    the env's data where the specs agree and zeros where they do not (their actions are discarded),
    without the recurrent states of whoever plays them. A ``greedy`` player always acts deterministically;
    otherwise it acts as its learner's exploration state (:meth:`Learner.acting_state`) says, and
    deterministically when asked to (evaluation)."""

    def __init__(
        self,
        learner: Learner,
        pairs: Sequence[tuple[str, str]],
        known: Mapping[str, GroupSpec],
        env: Mapping[str, GroupSpec],
        greedy: bool = False,
    ) -> None:
        super().__init__()
        self.learner = learner
        self.greedy = greedy
        self.pairs = list(pairs)
        played = {src for src, _ in pairs}
        self.shielded = [g for g, s in known.items() if g not in played and g in env and same_spec(s, env[g])]
        self.absent = {g: s for g, s in known.items() if g not in played and g not in self.shielded}

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        groups = [k for k in td.keys() if isinstance(td.get(k), TensorDictBase)]
        view = td.exclude(*groups)
        for g in self.shielded:
            view.set(g, td[g].exclude(*MEMORY_KEYS))
        for g, spec in self.absent.items():
            view.set(g, placeholder(spec, td.batch_size, td.device))
        for src, dst in self.pairs:
            view.set(src, td[dst].clone(recurse=False))
        self.learner.act(view, deterministic or self.greedy)
        for src, dst in self.pairs:
            td[dst].update(view[src])
        return td


def placeholder(spec: GroupSpec, batch: Sequence[int], device: Any) -> TensorDict:
    """Zero observations of living agents with every action allowed."""
    n = spec.n_agents
    td = TensorDict(
        {
            OBS: torch.zeros(*batch, n, *spec.obs_shape, device=device),
            ALIVE: torch.ones(*batch, n, dtype=torch.bool, device=device),
        },
        batch_size=batch,
    )
    if spec.has_action_mask and isinstance(spec.action, Discrete):
        td.set(ACTION_MASK, torch.ones(*batch, n, spec.action.n, dtype=torch.bool, device=device))
    return td


def same_spec(a: GroupSpec, b: GroupSpec) -> bool:
    return (a.n_agents, a.obs_shape, a.action, a.has_action_mask) == (
        b.n_agents,
        b.obs_shape,
        b.action,
        b.has_action_mask,
    )


def describe_spec(s: GroupSpec) -> str:
    return f"{s.n_agents} agents, observation {tuple(s.obs_shape)}, action {s.action}"


def check_groups(
    where: str, source: Mapping[str, GroupSpec], pairs: Sequence[tuple[str, str]], env: Mapping[str, GroupSpec]
) -> None:
    """Each ``(src, dst)``: ``source[src]`` exists and has ``env[dst]``'s spec; otherwise one line."""
    for src, dst in pairs:
        if src not in source:
            raise MarlkitError(
                f"{where} has no group '{src}' (its groups: {', '.join(source)}); it cannot play '{dst}'"
            )
        if not same_spec(source[src], env[dst]):
            raise MarlkitError(
                f"group '{src}' of {where} has {describe_spec(source[src])}, but this env's '{dst}' has "
                f"{describe_spec(env[dst])}"
            )


def checkpoint_file(source: str) -> Path:
    """A run directory's last checkpoint, or the file itself."""
    path = Path(source)
    if path.is_dir():
        return checkpoint_candidates(path, "last")[0]
    if not path.is_file():
        raise MarlkitError(f"opponent {source} is neither a run directory nor a checkpoint file")
    return path


def load_player(
    source: str, groups: Sequence[str], env: EnvInfo, play: Sequence[str] | None = None, greedy: bool = False
) -> Player:
    """The policy of ``groups`` from a run directory, a checkpoint, or a snapshot of one member of a
    composite run (a pool snapshot of a teams run), checked against ``env``'s specs; it acts for the env
    groups ``play`` (default: ``groups``) only, so a symmetric game's red policy can play blue. It acts
    as the saved learner did (its acting state: past its warm-up, at the exploration level it had
    reached), or always greedily."""
    path = checkpoint_file(source)
    pairs = list(zip(groups, play if play is not None else groups, strict=True))
    try:
        state = load_checkpoint(path)
        config = RunConfig.from_json(state["config"])
    except MarlkitError:
        raise
    except Exception as err:  # a truncated or foreign file: what it is, in one line
        raise MarlkitError(f"cannot read opponent checkpoint {path}: {type(err).__name__}: {err}") from None
    info = env_info_of(config)
    spec = algorithm(config.algo_name)
    if "team" in state and spec.members is not None:  # a snapshot of one member learner
        name, cfg, info = spec.members(config.algo, state["team"], info)
        check_groups(f"pool snapshot {path} (team '{state['team']}')", info.groups, pairs, env.groups)
        learner = algorithm(name).build(cfg, info, config.experiment.seed)
        acting = state.get("acting")
    else:
        name = config.algo_name
        check_groups(f"checkpoint {path}", info.groups, pairs, env.groups)
        learner = spec.build(config.algo, info, config.experiment.seed)
        acting = state["training"]
    learner.load_state_dict(acting_weights(state["learner"]))
    if acting is None and learner.acting_state():
        raise MarlkitError(
            f"pool snapshot {path} has no acting state (written before marlkit kept one), so its "
            f"{name} policy would act as if untrained; load a run checkpoint instead"
        )
    if acting is not None:
        learner.load_acting_state(acting)
    return Player(learner.eval(), pairs, info.groups, env.groups, greedy)


__all__ = [
    "LoadedRun",
    "Player",
    "acting_weights",
    "checkpoint_candidates",
    "env_info_of",
    "load_learner",
    "load_player",
    "load_run",
    "read_run_config",
    "run_sides",
]
