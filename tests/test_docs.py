"""The README stays true: its scenario example runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from marlkit import make_env
from marlkit.keys import REWARD

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_scenario_example_runs(tmp_path, monkeypatch):
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if b.startswith("# envs/reach.py"))
    (tmp_path / "reach.py").write_text(block)
    monkeypatch.setenv("MARLKIT_ENVS_PATH", str(tmp_path))
    env = make_env("envs/reach", num_envs=4, seed=0, n_agents=2, max_steps=10)
    td = env.step(env.rand_action(env.reset()))
    assert td["agent", REWARD].shape == (4, 2)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and "<!-- test-command -->" in README
    command = README.split("<!-- test-command -->")[1].split("```bash\n")[1].split("\n")[0]
    assert "pytest" in command and 'pip install -e ".[test]"' in command


def test_readme_main_command_is_the_default_comparison(tmp_path):
    from marlkit.analysis import sweep

    command = README.split("<!-- main-command -->")[1].split("```bash\n")[1].split("\n")[0]
    assert command.endswith('pip install -e ".[all]" && marlkit compare')
    jobs = sweep.plan(
        sweep.DEFAULT_ALGOS,
        sweep.DEFAULT_ENVS,
        sweep.DEFAULT_SEEDS,
        tmp_path,
        sweep.DEFAULT_FRAMES,
        sweep.DEFAULT_OVERRIDES,
    )
    assert sorted({j.config.algo_name for j in jobs}) == ["hatrpo", "itrpo", "matrpo"]
    assert {j.config.env_name for j in jobs} == {"envs/private_goals"} and len(jobs) == 24  # 8 seeds
    assert not any(tmp_path.iterdir()), "planning writes nothing"


def test_readme_learner_example_trains_by_import_path(tmp_path, monkeypatch, capsys):
    from marlkit.algorithms import ALGORITHMS, AlgorithmSpec, algorithm, register
    from marlkit.cli import main

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if b.startswith("# my_algo.py"))
    (tmp_path / "my_algo.py").write_text(block)
    monkeypatch.chdir(tmp_path)  # as a user would: the file sits in the working directory
    assert main(["train", "my_algo:VanillaPG", "vmas/navigation", "--help"]) == 0
    assert "algo.lr" in capsys.readouterr().out
    tiny = ["env.n_agents=2", "env.max_steps=20", "experiment.num_envs=4", "experiment.progress=false"]
    assert main(["train", "my_algo:VanillaPG", "vmas/navigation", "--frames", "400", "--out", "run", *tiny]) == 0
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "loss" in header and "eval_return_mean" in header
    assert main(["train", "my_algo:VanillaPG", "vmas/navigation", "algo.lrr=1", "--out", "bad"]) == 2
    assert "Did you mean 'algo.lr'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    spec = algorithm("my_algo:VanillaPG")
    monkeypatch.setattr("marlkit.algorithms.ALGORITHMS", dict(ALGORITHMS))  # the registration ends with the test
    register("vanilla_pg_test", AlgorithmSpec(spec.learner, spec.config, {"lr": 3e-3}))
    assert algorithm("vanilla_pg_test").default_config().lr == 3e-3


@pytest.mark.slow
def test_readme_python_api_examples_run(tmp_path, monkeypatch):
    blocks = README.split("<!-- api-example -->")[1:]
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        code = block.split("```python\n", 1)[1].split("```", 1)[0]
        exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "api-balance" / "actor.onnx").exists()
    assert (tmp_path / "runs" / "api-cmp" / "report.md").exists()
    assert {r["algorithm"] for r in namespace["tables"].algorithms} == {"ippo", "mappo"}
