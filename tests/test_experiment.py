"""The training loop's run directory, configs, checkpoints and one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from marlkit import MarlkitError
from marlkit.cli import main
from marlkit.training.experiment import Experiment, RunConfig, build_config, load_checkpoint

SMALL = {
    "env.n_agents": 2,
    "env.max_steps": 10,
    "experiment.num_envs": 4,
    "experiment.frames": 400,
    "experiment.eval_every": 200,
    "experiment.eval_episodes": 2,
    "experiment.progress": False,
    "algo.rollout_steps": 50,
}


def test_run_directory_holds_config_metrics_and_a_safe_checkpoint(tmp_path):
    config = build_config("hatrpo", "vmas/navigation", SMALL)
    experiment = Experiment(config, tmp_path / "run")
    summary = experiment.run()
    run = tmp_path / "run"
    assert RunConfig.from_json(json.loads((run / "config.json").read_text())) == config
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frames"]) for r in rows] == [0, 200, 400]  # frame 0: the untrained policy
    with open(run / "timing.csv") as f:
        timing = list(csv.DictReader(f))
    assert [int(r["frames"]) for r in timing] == [0, 200, 400]
    # Both evaluations after frame 0 fall inside the wall-clock; evaluation time only accumulates.
    eval_s = [float(r["eval_s"]) for r in timing]
    assert 0 == eval_s[0] < eval_s[1] < eval_s[2] == summary["eval_wall_s"] < summary["wall_s"]
    for column in (
        "frames",
        "return_mean",
        "eval_return_mean",
        "agent/kl",
        "agent/step_frac",
        "agent/accepted",
        "agent/expected_improve",
        "agent/actual_improve",
        "agent/cg_residual",
        "critic_loss",
    ):
        assert column in rows[1], column
    assert all(r["eval_return_mean"] for r in rows)
    checkpoint = load_checkpoint(run / "checkpoints" / "final.pt")
    assert checkpoint["counters"]["frames"] == summary["frames"] == 400
    fresh = Experiment(build_config("hatrpo", "vmas/navigation", {**SMALL, "experiment.seed": 9}), tmp_path / "x")
    fresh.learner.load_state_dict(checkpoint["learner"])
    for key, value in experiment.learner.state_dict().items():
        assert torch.equal(value, fresh.learner.state_dict()[key]), key
    assert [p.name for p in run.glob(".*")] == [".lock"], "no temporary files left behind"


def test_same_seed_same_numbers(tmp_path):
    a = Experiment(build_config("matrpo", "vmas/navigation", SMALL), tmp_path / "a").run()
    b = Experiment(build_config("matrpo", "vmas/navigation", SMALL), tmp_path / "b").run()
    assert a["final_eval_return_mean"] == b["final_eval_return_mean"]
    assert (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1].split(",")[3:] == (
        tmp_path / "b" / "metrics.csv"
    ).read_text().splitlines()[1].split(",")[3:]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algo.max_kll": 0.1}, "unknown key 'algo.max_kll'. Did you mean 'algo.trust_region.max_kl'"),
        ({"algo.max_kl": 0.1}, "unknown key 'algo.max_kl'. Did you mean 'algo.trust_region.max_kl'"),
        ({"algo.trust_region.max_kll": 0.1}, "Did you mean 'algo.trust_region.max_kl'"),
        ({"algo.trust_region": 0.1}, "'algo.trust_region' is a group of options"),
        ({"algo.critic.max_kl": 0.1}, "unknown key 'algo.critic.max_kl'"),
        ({"algo.trust_region.max_kl": 0}, "algo.trust_region.max_kl must be > 0"),
        ({"algo.trust_region.cg_iters": "ten"}, "algo.trust_region.cg_iters must be an integer"),
        ({"experiment.frames": -5}, "experiment.frames must be > 0"),
        ({"frames": 5}, "did you mean 'experiment.frames'"),
        ({"algo.critic": "centre"}, "algo.critic must be one of 'local', 'central'"),
        ({"algo.share_actor": True}, "separate actor parameters"),
    ],
)
def test_bad_config_fails_with_one_line(overrides, message):
    with pytest.raises(MarlkitError) as err:
        build_config("hatrpo", "vmas/navigation", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_algorithm_suggests_close_matches():
    with pytest.raises(MarlkitError, match="Did you mean 'hatrpo'"):
        build_config("hatrpo2", "vmas/navigation", {})


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "hatrpo", "vmas/navigation", "algo.trust_region.max_kl=0"],
        ["train", "hatrpo", "vmas/navigaton"],
        ["train", "hatrpoo", "vmas/navigation"],
        ["train", "hatrpo", "vmas/navigation", "env.n_agentz=3"],
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marlkit: error: ") and err.count("\n") == 1
    assert not out.exists()


def test_cli_train_writes_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "itrpo", "vmas/navigation", "--frames", "200", "--seed", "3", "--out", str(out)]
    args += [f"{k}={v}" for k, v in SMALL.items() if k != "experiment.frames"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 3
    assert json.loads((out / "config.json").read_text())["experiment"]["seed"] == 3


def test_refuses_to_overwrite_a_run(tmp_path):
    config = build_config("itrpo", "vmas/navigation", SMALL)
    Experiment(config, tmp_path / "run").run()
    before = (tmp_path / "run" / "metrics.csv").read_text()
    with pytest.raises(MarlkitError, match="not empty"):
        Experiment(config, tmp_path / "run").run()
    assert (tmp_path / "run" / "metrics.csv").read_text() == before
