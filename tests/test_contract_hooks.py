"""The optional hooks of the learner contract and of AlgorithmSpec, used by a composite learner that is
not marlkit's own: extra metrics columns, files in the run directory, sides of a game, config in and
out of config.json, the report's label; and what the env family records know of tasks."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from marlkit.adapters import task_facts
from marlkit.algorithms import AlgorithmSpec, register
from marlkit.analysis.results import run_label
from marlkit.keys import ACTION
from marlkit.learner import EnvInfo, Learner
from marlkit.training.experiment import Experiment, build_config
from marlkit.training.runs import read_run_config, run_sides


@dataclass(frozen=True)
class PairConfig:
    split: tuple[tuple[str, tuple[str, ...]], ...] = ()


class RandomPair(Learner):
    """Uniform actions for every group; reports each side's collected return and writes a file per update."""

    Config = PairConfig

    def __init__(self, cfg: PairConfig, env: EnvInfo, seed: int) -> None:
        super().__init__()
        self.cfg, self.groups = cfg, dict(env.groups)
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    @property
    def steps_per_collection(self) -> int:
        return 10

    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for g, spec in self.groups.items():
            td[g][ACTION] = spec.random_action(td.batch_size, self.generator, td.device)
        return td

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        self.updates += 1
        return {"updates": float(self.updates)}

    def collection_metrics(self, agent_returns: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {f"side_{name}": float(torch.cat([agent_returns[g] for g in groups]).mean())
                for name, groups in self.cfg.split}  # fmt: skip

    def write_files(self, run: Path, config: dict[str, Any]) -> None:
        (run / "own").mkdir(exist_ok=True)
        (run / "own" / f"update-{self.updates}.json").write_text(json.dumps(config["algo"]))


def read_pair(overrides: Mapping[str, Any]) -> PairConfig:
    return PairConfig(tuple((side, tuple(groups)) for side, groups in overrides.items()))


SPEC = AlgorithmSpec(
    RandomPair,
    PairConfig,
    summary="random play in two sides",
    read_config=read_pair,
    write_config=lambda cfg: {side: list(groups) for side, groups in cfg.split},
    sides=lambda cfg, env: {side: list(groups) for side, groups in cfg.split},
    label=lambda algo: "pair:" + "+".join(algo),
)


def test_a_composite_learner_gets_its_columns_files_sides_config_and_label(tmp_path, monkeypatch):
    monkeypatch.setattr("marlkit.algorithms.registry.ALGORITHMS", {})
    register("pair", SPEC)
    overrides = {"algo.red": ["red"], "algo.blue": ["blue"], "experiment.frames": 80, "experiment.num_envs": 4,
                 "experiment.eval_every": 40, "experiment.eval_episodes": 4, "experiment.progress": False,
                 "experiment.tensorboard": False}  # fmt: skip
    run = tmp_path / "run"
    Experiment(build_config("pair", "envs/duel", overrides), run).run()
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == {"red": ["red"], "blue": ["blue"]}  # write_config
    assert read_run_config(run).algo == PairConfig((("red", ("red",)), ("blue", ("blue",))))  # read_config
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"side_red", "side_blue", "eval_return_red", "eval_win_red", "eval_win_blue", "eval_draw"} <= set(rows[-1])
    wins = [float(rows[-1][k]) for k in ("eval_win_red", "eval_win_blue", "eval_draw")]
    assert abs(sum(wins) - 1.0) < 1e-6  # envs/duel is decisive: every episode is won, lost or drawn
    assert sorted(p.name for p in (run / "own").iterdir()) == [
        f"update-{k}.json" for k in range(3)
    ]  # at the start, after each of 2 updates
    assert run_sides(run)[1] == {"red": ["red"], "blue": ["blue"]}
    assert run_label(config) == "pair:red+blue"


def test_the_family_records_know_games_winners_and_known_functions():
    assert task_facts("envs/duel").decisive and task_facts("envs/duel").game  # stated by the scenario file
    assert task_facts("vmas/simple_tag").game and not task_facts("vmas/simple_tag").decisive
    assert task_facts("mpe/simple_adversary_v3").game and not task_facts("mpe/simple_spread_v3").game
    assert task_facts("vmas/navigation").reward is not None and task_facts("vmas/balance").reward is None
    assert task_facts("gym/Hopper-v5").termination is not None and task_facts("gym/CartPole-v1").termination is None
    assert task_facts("envs/private_goals") == task_facts("nowhere/at_all") == task_facts("envs/no_such_file")
    assert not task_facts("helper_envs:NanRewardEnv").game
