"""The CUDA path, end to end: every algorithm family trains briefly with VMAS on ``device=cuda``, keeps
every tensor there, resumes from a checkpoint there, and collects without host synchronisation beyond
the documented one per step. Skipped on machines without CUDA (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py`` or through ``experiments/benchmarks/speed/gpu.sh``."""

from __future__ import annotations

import csv
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from marlkit import make_env
from marlkit.algorithms import algorithm
from marlkit.core.devicecheck import count_syncs, off_device, syncs_by_file, undocumented_marlkit_syncs
from marlkit.training.experiment import Experiment, build_config
from marlkit.training.rollout import RolloutCollector
from marlkit.training.runs import read_run_config

# MARLKIT_TEST_DEVICE=cpu runs the same checks on the CPU (the sync counts are then empty).
DEVICE = os.environ.get("MARLKIT_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = {"env.n_agents": 2, "env.max_steps": 25, "experiment.num_envs": 32, "experiment.eval_episodes": 4}
# One algorithm per family (and the sequential trust-region variant), a few thousand frames each.
FAMILIES = {
    "mappo": {"experiment.frames": 4_000, "algo.rollout_steps": 25},
    "hatrpo": {"experiment.frames": 4_000, "algo.rollout_steps": 25},
    "maddpg": {"experiment.frames": 2_000, "algo.warmup_frames": 500, "algo.hidden": [64, 64]},
    "masac": {"experiment.frames": 2_000, "algo.warmup_frames": 500, "algo.hidden": [64, 64]},
    "mambpo": {
        "experiment.frames": 2_000,
        "algo.warmup_frames": 500,
        "algo.hidden": [64, 64],
        "algo.updates_per_frame": 0.25,
        "algo.rollouts_per_frame": 20,
        "algo.model.max_epochs": 3,
        "algo.model.hidden": [64, 64],
    },
    "pets": {
        "experiment.frames": 300,
        "experiment.num_envs": 4,
        "algo.warmup_frames": 100,
        "algo.retrain_every": 100,
        "algo.model.max_epochs": 3,
        "algo.planner.population": 64,
        "algo.planner.horizon": 5,
    },
}


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo", list(FAMILIES))
def test_family_trains_and_resumes_on_cuda(algo: str, tmp_path: Path) -> None:
    frames = FAMILIES[algo]["experiment.frames"]
    overrides = {
        **SMALL,
        "experiment.device": DEVICE,
        "experiment.progress": False,
        "experiment.tensorboard": False,
        "experiment.eval_every": frames // 2,
        "experiment.checkpoint_every": frames // 2,
        **FAMILIES[algo],
    }
    config = build_config(algo, "vmas/navigation", overrides)
    run = tmp_path / "run"
    experiment = Experiment(config, run)
    experiment.run()
    assert off_device(experiment.learner, DEVICE) == []
    rows = metrics(run)
    evals = [float(r["eval_return_mean"]) for r in rows if r["eval_return_mean"]]
    assert len(evals) == 3 and all(math.isfinite(x) for x in evals)  # frame 0, the middle and the end
    assert all(math.isfinite(float(v)) for r in rows for k, v in r.items() if k.endswith("_loss") and v)

    resumed = resume_from_the_first_checkpoint(run, tmp_path / "copy")
    assert off_device(resumed.learner, DEVICE) == []
    assert [r["frames"] for r in metrics(resumed.out)] == [r["frames"] for r in rows]


def resume_from_the_first_checkpoint(run: Path, copy: Path) -> Experiment:
    """Resume on the device from the first periodic checkpoint of a copy of ``run`` (CUDA kernels need
    not be bitwise deterministic, so callers check that the state loads and the run completes)."""
    shutil.copytree(run, copy)
    for ckpt in sorted((copy / "checkpoints").glob("ckpt-*.pt"))[1:]:
        ckpt.unlink()
    (copy / "checkpoints" / "final.pt").unlink(missing_ok=True)
    resumed = Experiment(read_run_config(copy), copy)
    resumed.run(resume=True)
    return resumed


@pytest.mark.parametrize("algo", ["mappo", "masac"])
def test_collection_makes_only_the_documented_syncs(algo: str) -> None:
    env = make_env("vmas/navigation", 256, DEVICE, 0, n_agents=3)
    spec = algorithm(algo)
    learner = spec.build(spec.default_config(), env, 0).to(DEVICE)
    steps = 20
    collector = RolloutCollector(env, learner.act, steps)
    collector.collect()  # first call allocates the reused batch
    with count_syncs() as counts:
        batch, _ = collector.collect()
    assert batch.device.type == DEVICE
    assert undocumented_marlkit_syncs(counts, steps) == {}, syncs_by_file(counts)


def test_teams_with_a_scripted_random_opponent_resumes_on_cuda(tmp_path: Path) -> None:
    """The scripted player swaps in a generator on the env's device at its first step; its checkpointed
    state carries that device, so a fresh player restores it (it used to fail: every checkpoint unusable)."""
    overrides = {
        "env.max_steps": 25,
        "experiment.num_envs": 32,
        "experiment.eval_episodes": 4,
        "experiment.device": DEVICE,
        "experiment.progress": False,
        "experiment.tensorboard": False,
        "experiment.frames": 3_200,
        "experiment.eval_every": 1_600,
        "experiment.checkpoint_every": 1_600,
        "algo.adversary.play": "mappo",
        "algo.adversary.rollout_steps": 25,
        "algo.agent.play": "scripted",
        "algo.agent.opponent": "random",
    }
    run = tmp_path / "run"
    Experiment(build_config("teams", "vmas/simple_tag", overrides), run).run()
    state = torch.load(sorted((run / "checkpoints").glob("ckpt-*.pt"))[0], weights_only=True)
    assert state["training"]["scripted"]["agent"]["device"].startswith(DEVICE)
    resumed = resume_from_the_first_checkpoint(run, tmp_path / "copy")
    assert [r["frames"] for r in metrics(resumed.out)] == [r["frames"] for r in metrics(run)]
