"""marlkit as a library: a built wheel carries the bundled scenarios and py.typed, and runs them from a folder
that is neither the checkout nor holds an ``envs/`` folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = "import sys, marlkit; assert marlkit.__file__.startswith(sys.argv[1]), marlkit.__file__; " + (
    "from marlkit.cli import main; sys.exit(main(sys.argv[2:]))"
)
QUIET = ["experiment.num_envs=4", "experiment.progress=false", "experiment.tensorboard=false"]


@pytest.mark.slow
def test_a_built_wheel_runs_bundled_scenarios_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True)
    wheel = next(wheels.glob("marlkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"marlkit/envs/private_goals.py", "marlkit/envs/duel.py", "marlkit/py.typed"} <= names
    # The wheel's marlkit, not the checkout's: installed into its own folder, first on the path; its
    # dependencies come from this environment.
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MARLKIT_ENVS_PATH", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", RUN, str(site), *args]
        return subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)

    listed = cli("list")
    assert listed.returncode == 0 and "private_goals" in listed.stdout and "duel" in listed.stdout, listed
    train = cli("train", "itrpo", "envs/private_goals", "--frames", "400", "--out", "run", "algo.rollout_steps=50",
                *QUIET)  # fmt: skip
    assert train.returncode == 0 and (elsewhere / "run" / "summary.json").exists(), train.stderr
    compare = cli("compare", "--algos", "ppo", "--envs", "envs/duel", "--seeds", "0,1", "--frames", "400",
                  "--out", "cmp", "algo.rollout_steps=50", *QUIET)  # fmt: skip
    assert compare.returncode == 0 and (elsewhere / "cmp" / "report.md").exists(), compare.stderr
    by_path = cli("train", "ppo", "marlkit.envs.duel:DuelEnv", "--frames", "200", "--out", "by_path",
                  "algo.rollout_steps=50", *QUIET)  # fmt: skip
    assert by_path.returncode == 0, by_path.stderr
    missing = cli("train", "ppo", "envs/nowhere", "--frames", "200")
    assert missing.returncode == 2
    assert f"Searched {elsewhere / 'envs'}, {site / 'marlkit' / 'envs'}" in missing.stderr, missing.stderr
    assert "found cue_recall, duel" in missing.stderr and missing.stderr.count("\n") == 1
