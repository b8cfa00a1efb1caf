"""The experiment platform: config files, CLI input errors, eval with video, compare and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from marlkit.analysis.report import write_report
from marlkit.analysis.results import load_runs
from marlkit.analysis.stats import bootstrap_ci, iqm
from marlkit.analysis.sweep import compare
from marlkit.cli import main

TINY = {
    "env.n_agents": 2,
    "env.max_steps": 25,
    "experiment.num_envs": 4,
    "experiment.eval_every": 200,
    "experiment.eval_episodes": 2,
    "experiment.tensorboard": False,
    "algo.rollout_steps": 25,
    "algo.hidden": [16, 16],
}


def kv(overrides: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "hatrpo", "vmas/navigation", "algo.max_kll=0.1"], "did you mean 'algo.trust_region.max_kl'"),
        (["train", "hatrpoo", "vmas/navigation"], "did you mean 'hatrpo'"),
        (["train", "hatrpo", "vmas/navigation", "algo.trust_region.max_kl=abc"], "must be a number"),
        (["train", "hatrpo", "vmas/navigation", "--frames", "-5"], "frames must be > 0"),
        (["train", "hatrpo", "vmas/navigation", "algo.trust_region.max_kl=0"], "max_kl must be > 0"),
        (["train", "hatrpo", "vmas/navigation", "algo.share_actor=true"], "sequential schedule"),
        (["train", "qmix", "mpe/simple_spread_v3", "env.continuous_actions=true"], "needs discrete actions"),
        (["train", "masac", "vmas/navigation", "algo.target_entropy_fraction=0.5"], "discrete actions only"),
        (["train", "vdn", "mpe/simple_adversary_v3"], "needs a stated team reward"),
        (["train", "maddpg", "vmas/navigation", "experiment.wandb=true"], "wandb"),
        (["compare", "--algos", "itrpo,nope", "--envs", "vmas/navigation", "--seeds", "0"], "unknown algorithm"),
        (["compare", "--algos", "itrpo", "--envs", "vmas/navigation", "--seeds", "x"], "comma-separated integers"),
        (["compare", "--algos", "itrpo", "--envs", "vmas/navigation", "--seeds", "0", "env.n_agentz=3"], "n_agentz"),
        (["compare", "--algos", "maddpg,vdn", "--envs", "vmas/navigation", "--seeds", "0"], "discrete"),
    ],
)
def test_bad_input_fails_with_one_line_before_writing(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import importlib.util

    if "wandb" in message and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.lower() in err.lower(), err
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "runs").exists(), "nothing may be written"


def test_config_files_and_recreating_a_run_from_its_config(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "algo_name: itrpo\nenv_name: vmas/navigation\nexperiment:\n  frames: 400\n  seed: 3\n"
        "algo:\n  trust_region:\n    max_kl: 0.02\n"
        + "".join(f"  {k.split('.')[1]}: {json.dumps(v)}\n" for k, v in TINY.items() if k.startswith("algo."))
        + "env:\n  n_agents: 2\n  max_steps: 25\n"
    )
    toml_file = tmp_path / "run.toml"
    toml_file.write_text("[experiment]\nframes = 400\nseed = 3\nnum_envs = 4\n[algo.trust_region]\nmax_kl = 0.02\n")
    exp = [f"{k}={json.dumps(v)}" for k, v in TINY.items() if k.startswith("experiment.")]
    assert main(["train", "--config", str(yaml_file), "--out", str(tmp_path / "a"), *exp]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["algo"]["trust_region"]["max_kl"] == 0.02 and config["experiment"]["seed"] == 3
    assert config["env"] == {"n_agents": 2, "max_steps": 25}
    # The saved config alone re-creates the run: same metrics, number for number.
    assert main(["train", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    # TOML, and CLI key=value wins over the file.
    args = ["train", "itrpo", "vmas/navigation", "--config", str(toml_file), "--out", str(tmp_path / "c")]
    overrides = kv({k: v for k, v in TINY.items() if k != "experiment.num_envs"})
    assert main([*args, *overrides, "algo.trust_region.max_kl=0.03"]) == 0
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["algo"]["trust_region"]["max_kl"] == 0.03 and config["experiment"]["num_envs"] == 4


def test_eval_prints_per_group_returns_and_writes_a_gif(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "itrpo", "vmas/navigation", "--frames", "400", "--out", str(run), *kv(TINY)]) == 0
    capsys.readouterr()
    video = tmp_path / "episode.gif"
    assert main(["eval", str(run), "--episodes", "3", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert "agent: return" in out and "+-" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["episodes"] == 3 and result["checkpoint"] == "final.pt"
    from PIL import Image

    with Image.open(video) as gif:
        assert gif.n_frames == 26  # the reset frame plus max_steps=25 steps
    assert main(["eval", str(run), "--checkpoint", "best"]) == 0


# ------------------------------------------------------------ compare/report
@pytest.mark.slow
def test_compare_skips_finished_runs_reports_failures_and_writes_a_report(tmp_path):
    out = tmp_path / "sweep"
    envs = ["vmas/navigation", "tests.helper_envs:NanRewardEnv"]
    # One override set for both envs, so no env.* keys: navigation then has no time limit, and the
    # evaluation step cap keeps its episodes short.
    overrides = {**{k: v for k, v in TINY.items() if not k.startswith("env.")}, "experiment.eval_max_steps": 25}
    result = compare(["itrpo", "matrpo"], envs, [0, 1], out, frames=400, overrides=overrides, jobs=1, progress=False)
    # The NaN env fails mid-run (after it was validated); the navigation runs still finish.
    assert len(result["failed"]) == 4 and len(result["runs"]) == 4
    for run_dir, message in result["failed"].items():
        assert "NaN" in message or "nan" in message, message
        assert (Path(run_dir) / "error.txt").exists()
    assert all(r["status"] == "done" for r in result["runs"].values())
    report = Path(result["report"])
    text = report.read_text()
    assert "## vmas/navigation" in text and "| itrpo | 2 |" in text and "| matrpo | 2 |" in text
    assert (out / "curves_vmas_navigation.png").exists() and (out / "aggregate.png").exists()
    again = compare(["itrpo", "matrpo"], envs[:1], [0, 1], out, frames=400, overrides=overrides, jobs=1, progress=False)
    assert all(r["status"] == "skipped" for r in again["runs"].values())
    assert len(load_runs(out)) == 4


def test_iqm_and_bootstrap_ci():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of the middle 50%: 3, 4, 5, 6
    assert iqm(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)
    low, high = bootstrap_ci(np.array([5.0, 5.0, 5.0]))
    assert low == high == 5.0
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, size=200)
    low, high = bootstrap_ci(x)
    half_width = 1.96 / np.sqrt(200)
    assert low < x.mean() < high
    assert high - low == pytest.approx(2 * half_width, rel=0.2)


def test_report_on_hand_made_runs(tmp_path):
    # Two algorithms, known curves: the table holds their means and the time to 90% of the best.
    for algo, finals in (("a", [1.0, 2.0, 3.0]), ("b", [0.0, 0.0, 0.0])):
        for seed, final in enumerate(finals):
            run = tmp_path / algo / str(seed)
            run.mkdir(parents=True)
            config = {"algo_name": algo, "env_name": "toy", "experiment": {"seed": seed}, "algo": {}, "env": {}}
            (run / "config.json").write_text(json.dumps(config))
            with (run / "metrics.csv").open("w") as f:
                w = csv.writer(f)
                w.writerow(["frames", "eval_return_mean"])
                w.writerows([[100, 0.0], [200, final / 2], [300, final]])
            (run / "timing.csv").write_text("frames,wall_s\n100,1\n200,2\n300,3\n")
            (run / "summary.json").write_text("{}")
    # An interrupted run (no summary.json) whose last evaluation is its untrained value: never a final.
    partial = tmp_path / "b" / "3"
    partial.mkdir()
    config = {"algo_name": "b", "env_name": "toy", "experiment": {"seed": 3}, "algo": {}, "env": {}}
    (partial / "config.json").write_text(json.dumps(config))
    (partial / "metrics.csv").write_text("frames,eval_return_mean\n0,-50.0\n")
    text = write_report(tmp_path).read_text()
    # initial 0, best = mean of a = 2, target = 1.8: a's seeds reach it at 300 frames (seed 2 at 200).
    assert "| a | 3 | 2 [" in text and "| b | 3 | 0 [" in text
    # The mean's 95% Student-t CI: 2 +- t(0.975, 2) * 1 / sqrt(3) = 2 +- 2.484.
    assert "| a | 3 | 2 [-0.4841, 4.484] | 2 | 300 | 3 | 2/3 |" in text and "| b | 3 | 0 [0, 0] |" in text
    assert "| a − b | +2 [" in text and "Inconclusive at 3 seeds: a − b = +2" in text
    assert "Unfinished runs, left out of every table and figure:** `b/3` (0 frames)" in text


def test_ray_backend_lands_in_the_same_layout(tmp_path):
    pytest.importorskip("ray")
    import ray

    out = tmp_path / "ray"
    overrides = {**{k: v for k, v in TINY.items() if not k.startswith("env.")}, "experiment.eval_max_steps": 25}
    try:
        result = compare(
            ["itrpo"], ["vmas/navigation"], [0, 1], out, frames=200, overrides=overrides, backend="ray", progress=False
        )
    finally:
        ray.shutdown()
    assert not result["failed"] and len(result["runs"]) == 2
    assert (out / "vmas-navigation" / "itrpo" / "seed1" / "summary.json").exists()
    assert "| itrpo | 2 |" in Path(result["report"]).read_text()


# ------------------------------------------------------------ config formats
def as_format_1(config: dict) -> dict:
    """A format-2 config.json as marlkit wrote it before configs were nested (flat algo keys, no format)."""
    from marlkit.algorithms import algorithm
    from marlkit.core.options import flatten

    renames = {new: old for old, new in getattr(algorithm(config["algo_name"]).config, "LEGACY_KEYS", {}).items()}
    old = {k: v for k, v in config.items() if k != "format"}
    old["algo"] = {renames.get(k, k): v for k, v in flatten(config["algo"]).items() if k in renames or "." not in k}
    return old


@pytest.mark.parametrize("algo", ["hatrpo", "pets", "mbpo"])
def test_format_1_configs_load_as_the_same_config(algo):
    from marlkit.training.config import RunConfig, build_config

    config = build_config(algo, "gym/Pendulum-v1", {"algo.rollout_steps": 7}).to_json()
    legacy = as_format_1(config)
    assert "trust_region" not in legacy["algo"] and "model" not in legacy["algo"] and "format" not in legacy
    assert RunConfig.from_json(legacy).to_json() == config
    with pytest.raises(Exception, match="config format 3 is unknown; this marlkit reads formats 1 to 2"):
        RunConfig.from_json({**config, "format": 3})


def test_a_format_1_run_resumes_and_evaluates(tmp_path):
    """A run directory written before nested configs: resume continues it exactly, eval reads it."""
    import torch

    overrides = [*kv(TINY), "experiment.checkpoint_every=200", "experiment.eval_every=0", "--frames", "600"]
    for name in ("new", "old"):
        assert main(["train", "itrpo", "vmas/navigation", "--out", str(tmp_path / name), *overrides]) == 0

    old = tmp_path / "old"
    legacy = as_format_1(json.loads((old / "config.json").read_text()))
    (old / "config.json").write_text(json.dumps(legacy))
    for path in (old / "checkpoints").glob("ckpt-*.pt"):
        state = torch.load(path, weights_only=True)
        torch.save({**state, "config": legacy}, path)
    (old / "summary.json").unlink()
    (old / "checkpoints" / "final.pt").unlink()
    assert main(["resume", str(old)]) == 0
    assert (old / "metrics.csv").read_text() == (tmp_path / "new" / "metrics.csv").read_text()
    assert main(["eval", str(old), "--episodes", "2"]) == 0


@pytest.mark.parametrize(
    ("finals", "sentence"),
    [
        (
            {"a": [3.0, 3.1, 3.2, 3.3, 3.4], "b": [1.0, 1.1, 1.2, 1.3, 1.4], "c": [0.0, 0.1, 0.2, 0.3, 0.4]},
            "Different at 5 seeds (permutation test, Holm over 3 pairs, 5%): a > b: a − b = +2",
        ),
        # The same separation at 3 seeds is inconclusive: 20 splits, no p-value below 0.1.
        ({"a": [3.0, 3.1, 3.2], "b": [1.0, 1.1, 1.2], "c": [0.0, 0.1, 0.2]}, "Inconclusive at 3 seeds: a − c = +3"),
        (
            {"a": [5.0], "b": [0.0, 0.1, 0.2]},
            "Nothing claimed: a ran with one seed; a test of a difference needs at least two seeds per algorithm.",
        ),
    ],
    ids=["separated", "three_seeds", "single_seed"],
)
def test_report_says_whether_the_difference_is_significant(tmp_path, finals, sentence):
    for algo, values in finals.items():
        for seed, final in enumerate(values):
            run = tmp_path / algo / str(seed)
            run.mkdir(parents=True)
            config = {"algo_name": algo, "env_name": "toy", "experiment": {"seed": seed}, "algo": {}, "env": {}}
            (run / "config.json").write_text(json.dumps(config))
            (run / "metrics.csv").write_text(f"frames,eval_return_mean\n100,0.0\n200,{final}\n")
            (run / "summary.json").write_text("{}")
    lines = write_report(tmp_path).read_text().splitlines()
    assert sum(line.startswith(sentence) for line in lines) == 1, [line for line in lines if "seeds" in line]
