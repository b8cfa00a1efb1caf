"""Games: per-team results, head-to-head evaluation and cross-play matrices.

In a competitive or mixed game the mean over all agents means nothing (zero-sum: it is 0 whatever
happens), so results are given per *side*: the teams of a teams run, else one side per group. A
side's return is the mean episode return of its agents. Where a task's returns name a winner (the
side with the higher return: the task's ``decisive`` fact, :func:`marlkit.adapters.task_facts`), win,
draw and loss rates are given too.

``marlkit eval RUN --against OTHER`` plays each side of RUN against OTHER's policies on the other
sides; :func:`crossplay` plays every run's policy of each side against every run's policies of the
others, which ``marlkit report`` tabulates and draws as heatmaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tensordict import TensorDictBase

from marlkit.adapters import make_env, task_facts
from marlkit.core.errors import MarlkitError
from marlkit.training.evaluation import episode_returns, side_results
from marlkit.training.runs import env_info_of, load_player, run_sides


class Lineup:
    """Several players, each acting for its own groups of one env."""

    def __init__(self, players: Sequence[Any]) -> None:
        self.players = list(players)

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for player in self.players:
            player.act(td, deterministic)
        return td


def _check_same_task(runs: Sequence[Path], configs: Sequence[Any]) -> None:
    first = configs[0]
    for run, config in zip(runs, configs, strict=True):
        if (config.env_name, config.env_kwargs) != (first.env_name, first.env_kwargs):
            raise MarlkitError(
                f"{run} trained on {config.env_name} {config.env_kwargs}, {runs[0]} on {first.env_name} "
                f"{first.env_kwargs}; head-to-head needs one task"
            )


def play(lineup: Lineup, env: Any, config: Any, sides: Mapping[str, Sequence[str]], seed: int) -> dict[str, float]:
    """One match on ``env`` (one episode per env copy), reset from ``seed``."""
    returns = episode_returns(lineup, env, seed, config.experiment.eval_max_steps)
    return side_results(returns, sides, task_facts(config.env_name).decisive, prefix="")


def match_env(config: Any, episodes: int, seed: int) -> Any:
    return make_env(config.env_name, episodes, "cpu", seed, **config.env_kwargs)


def evaluate_against(run: str | Path, other: str | Path, episodes: int = 16, seed: int = 123_456) -> dict[str, Any]:
    """Each side of ``run`` (its last checkpoint) against ``other``'s policies on every other side."""
    run, other = Path(run), Path(other)
    config, sides = run_sides(run)
    other_config, _ = run_sides(other) if other.is_dir() else (config, sides)
    _check_same_task([run, other], [config, other_config])
    info = env_info_of(config)
    result: dict[str, Any] = {"run_dir": str(run), "against": str(other), "episodes": episodes, "sides": {}}
    env = match_env(config, episodes, seed)
    try:
        for side, groups in sides.items():
            rest = [g for g in info.groups if g not in groups]
            lineup = Lineup([load_player(str(run), groups, info), load_player(str(other), rest, info)])
            result["sides"][side] = play(lineup, env, config, sides, seed)
    finally:
        env.close()
    return result


def crossplay(runs: Sequence[str | Path], episodes: int = 16, seed: int = 123_456) -> dict[str, Any]:
    """``matrix[side][i][j]``: the return of ``side`` played by run i against the other sides played by
    run j (sides from the first run). With a winner, also ``wins[side][i][j]``."""
    paths = [Path(r) for r in runs]
    loaded = [run_sides(p) for p in paths]
    _check_same_task(paths, [c for c, _ in loaded])
    config, sides = loaded[0]
    info = env_info_of(config)
    decisive = task_facts(config.env_name).decisive
    matrix: dict[str, list[list[float]]] = {}
    wins: dict[str, list[list[float]]] = {}
    env = match_env(config, episodes, seed)  # one env for every match: each resets it from the same seed
    try:
        for side, groups in sides.items():
            rest = [g for g in info.groups if g not in groups]
            own = [load_player(str(p), groups, info) for p in paths]
            opponents = [load_player(str(p), rest, info) for p in paths]
            matrix[side] = [[0.0] * len(paths) for _ in paths]
            wins[side] = [[0.0] * len(paths) for _ in paths]
            for i, mine in enumerate(own):
                for j, theirs in enumerate(opponents):
                    result = play(Lineup([mine, theirs]), env, config, sides, seed)
                    matrix[side][i][j] = result[f"return_{side}"]
                    wins[side][i][j] = result.get(f"win_{side}", float("nan"))
    finally:
        env.close()
    out: dict[str, Any] = {"runs": [str(p) for p in paths], "sides": sides, "episodes": episodes, "matrix": matrix}
    if decisive:
        out["wins"] = wins
    return out
