"""``marlkit tune``: a small study runs, resumes (a trial a crash left running is run again with its values,
its runs resumed), refuses other settings in its folder, and prunes through the loop's evaluation hook."""

from __future__ import annotations

import json

import optuna
import pytest

from marlkit.analysis.tune import STUDY, _storage, parse_space, tune
from marlkit.core.errors import MarlkitError
from marlkit.training.config import build_config, load_config_file
from marlkit.training.experiment import Experiment

SPACE = {
    "algo.actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "algo.hidden": [[16], [32, 32]],
    "algo.actor_epochs": {"type": "int", "low": 1, "high": 4},
}
FIXED = {"algo.rollout_steps": 50, "experiment.num_envs": 4, "experiment.eval_every": 200,
         "experiment.tensorboard": False}  # fmt: skip


@pytest.mark.slow
def test_a_study_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "study"
    first = tune("ppo", "gym/CartPole-v1", SPACE, trials=2, seeds=[0, 1], frames=600, out=out, overrides=FIXED)
    assert len(first.trials) == 2 and all(t["state"] == "complete" for t in first.trials)
    for t in first.trials:  # each trial's score is the mean of its seeds' final evaluations
        finals = [json.loads((out / t["dir"] / f"seed{s}" / "summary.json").read_text())["final_eval_return_mean"]
                  for s in (0, 1)]  # fmt: skip
        assert t["value"] == pytest.approx(sum(finals) / 2) and t["finals"] == finals
    # A crash in the middle of a trial: it stays RUNNING in the study.
    study = optuna.load_study(study_name=STUDY, storage=_storage(out))
    crashed = study.ask()
    crashed.suggest_float("algo.actor_lr", 1e-4, 1e-2, log=True)
    # Run again to 4 finished trials, two at a time in worker processes.
    again = tune("ppo", "gym/CartPole-v1", SPACE, trials=4, seeds=[0, 1], frames=600, out=out, overrides=FIXED,
                 jobs=2)  # fmt: skip
    states = [t["state"] for t in again.trials]
    assert states.count("complete") == 4 and states.count("fail") == 1, states
    study = optuna.load_study(study_name=STUDY, storage=_storage(out))
    repeat = [t for t in study.trials if t.user_attrs.get("repeats") == crashed.number]
    assert len(repeat) == 1 and repeat[0].params["algo.actor_lr"] == crashed.params["algo.actor_lr"]
    assert again.best_value == max(t["value"] for t in again.trials if t["state"] == "complete")
    text = again.report.read_text()
    assert "4 complete, 0 pruned, 1 failed" in text and "importance" in text and set(again.importances) == set(SPACE)
    names, overrides = load_config_file(str(out / "best.yaml"))  # trains the best values again
    config = build_config(names["algo_name"], names["env_name"], overrides)
    assert config.algo.actor_lr == pytest.approx(again.best_params["algo.actor_lr"])
    assert list(config.algo.hidden) == again.best_params["algo.hidden"]
    with pytest.raises(MarlkitError, match="other settings"):
        tune("ppo", "gym/CartPole-v1", {"algo.actor_lr": [1e-3]}, trials=4, seeds=[0, 1], frames=600, out=out,
             overrides=FIXED)  # fmt: skip


def test_an_evaluation_hook_stops_a_run_that_stays_resumable(tmp_path):
    config = build_config("ppo", "gym/CartPole-v1", {**FIXED, "experiment.frames": 1000, "experiment.progress": False})
    seen = []
    summary = Experiment(config, tmp_path / "run", lambda frames, value: seen.append(frames) or frames >= 400).run()
    assert summary["interrupted"] and seen == [200, 400]  # the frame-0 evaluation precedes training
    assert not (tmp_path / "run" / "summary.json").exists()
    finished = Experiment(config, tmp_path / "run").run(resume=True)
    assert finished["frames"] == 1000


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "must map config keys"),
        ({"algo.lr": {"type": "float", "low": 1, "high": 0}}, "low < high"),
        ({"algo.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "low > 0 on a log scale"),
        ({"algo.lr": {"type": "float", "low": 0, "high": 1, "scale": 2}}, "unknown entries"),
        ({"algo.lr": {"type": "normal"}}, "has type 'normal'"),
        ({"algo.n": {"type": "int", "low": 0.5, "high": 3}}, "must be integers"),
        ({"algo.act": {"type": "categorical", "choices": []}}, "non-empty list"),
    ],
)
def test_bad_search_spaces_are_one_line(space, message):
    with pytest.raises(MarlkitError, match=message) as err:
        parse_space(space)
    assert "\n" not in str(err.value)


def test_unknown_keys_fail_before_anything_is_written(tmp_path):
    with pytest.raises(MarlkitError, match=r"unknown key 'algo\.lr'"):
        tune("ppo", "gym/CartPole-v1", {"algo.lr": [1e-3]}, trials=1, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_parallel_trials_with_equal_values_share_their_runs_without_clashing(tmp_path):
    """A space of one point: both trials get the same folder; the second waits for the first and reuses
    its finished run (the same score) instead of failing on the run directory's lock."""
    out = tmp_path / "study"
    result = tune("ppo", "gym/CartPole-v1", {"algo.hidden": [[16]]}, trials=2, seeds=[0], frames=400, out=out,
                  overrides=FIXED, jobs=2)  # fmt: skip
    assert [t["state"] for t in result.trials] == ["complete", "complete"]
    assert result.trials[0]["value"] == result.trials[1]["value"] and result.trials[0]["dir"] == result.trials[1]["dir"]
