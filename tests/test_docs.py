"""The README stays true: its scenario example runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

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
    from marlkit import sweep

    command = README.split("<!-- main-command -->")[1].split("```bash\n")[1].split("\n")[0]
    assert command.endswith("pip install -e . && marlkit compare")
    jobs = sweep.plan(
        sweep.DEFAULT_ALGOS,
        sweep.DEFAULT_ENVS,
        sweep.DEFAULT_SEEDS,
        tmp_path,
        sweep.DEFAULT_FRAMES,
        sweep.DEFAULT_OVERRIDES,
    )
    assert sorted({j.config.algo_name for j in jobs}) == ["hatrpo", "itrpo", "matrpo"]
    assert {j.config.env_name for j in jobs} == {"vmas/navigation"} and len(jobs) == 9
    assert not any(tmp_path.iterdir()), "planning writes nothing"
