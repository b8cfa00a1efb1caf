"""marlkit as a library: a wheel built from the source, installed with one simulator extra into a fresh
virtualenv, runs the bundled scenarios from a folder that is neither the checkout nor holds an ``envs/``
folder, from the command line and from Python, and names the extra a task without its simulator needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["experiment.num_envs=4", "experiment.progress=false", "experiment.tensorboard=false"]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "runs", "build", "dist", ".peers", "*.egg-info",
                                    "__pycache__", ".*_cache", ".hypothesis", "docs", "experiments")  # fmt: skip
API = """
import marlkit
run = marlkit.train("itrpo", "envs/private_goals", frames=400, out="api_run", algo={"rollout_steps": 50},
                    experiment={"num_envs": 4, "progress": False, "tensorboard": False})
policy = marlkit.load(run.dir)
env = marlkit.make_env("envs/private_goals", num_envs=2)
td = env.step(policy(env.reset()))
print("api ok", run.summary["frames"], sorted(policy.act({"agent_0": td["agent", "observation"][0, 0].numpy()})))
"""
CHECKS = """
import contextlib, io, json
from marlkit.cli import main
out = []
for task in ("envs/duel", "envs/nowhere"):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out.append([main(["train", "ppo", task, "--frames", "200"]), err.getvalue()])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_wheel_with_the_vmas_extra_runs_in_a_fresh_venv_from_another_folder(tmp_path):
    # A copy of the source: a build in the checkout would reuse its build/ folder, stale files included.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    wheel = next(wheels.glob("marlkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"marlkit/envs/private_goals.py", "marlkit/envs/duel.py", "marlkit/py.typed"} <= names
    # A fresh virtualenv with the core and VMAS only (pip takes the packages from this machine's index).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}[vmas]"], check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MARLKIT_ENVS_PATH", "PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [str(env_dir / "bin" / "marlkit"), *args]
        return subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)

    listed = run("list")
    assert listed.returncode == 0 and "private_goals" in listed.stdout and "duel" in listed.stdout, listed
    assert str(env_dir) in listed.stdout  # the scenarios of the installed package, not of the checkout
    assert "mpe: not installed (pip install 'marlkit[mpe]')" in listed.stdout
    train = run("train", "itrpo", "envs/private_goals", "--frames", "400", "--out", "run", "algo.rollout_steps=50",
                *QUIET)  # fmt: skip
    assert train.returncode == 0 and (elsewhere / "run" / "summary.json").exists(), train.stderr
    compare = run("compare", "--algos", "itrpo,matrpo", "--envs", "envs/private_goals", "--seeds", "0,1",
                  "--frames", "400", "--out", "cmp", "algo.rollout_steps=50", *QUIET)  # fmt: skip
    assert compare.returncode == 0 and (elsewhere / "cmp" / "report.md").exists(), compare.stderr
    by_path = run("train", "ppo", "marlkit.envs.private_goals:Scenario", "--frames", "200", "--out", "by_path",
                  "algo.rollout_steps=50", *QUIET)  # fmt: skip
    assert by_path.returncode == 0, by_path.stderr
    api = subprocess.run([str(python), "-c", API + CHECKS], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert api.returncode == 0 and "api ok 400 ['agent_0']" in api.stdout, api.stderr
    site = Path(next(env_dir.glob("lib/python3*/site-packages")))
    duel, missing = json.loads(api.stdout.splitlines()[-1])
    # Without its extra, a task says which one to install; an unknown scenario says where it looked.
    assert duel[0] == 2 and "pip install 'marlkit[pettingzoo]'" in duel[1] and duel[1].count("\n") == 1, duel
    assert missing[0] == 2 and missing[1].count("\n") == 1
    assert f"Searched {elsewhere / 'envs'}, {site / 'marlkit' / 'envs'}" in missing[1], missing
    assert "found cue_recall, duel" in missing[1]
