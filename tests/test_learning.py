"""One learning test per algorithm on a tiny task, with a reward threshold (each well under 60 s on 2 cores).

Thresholds: vmas/navigation's 0.84 is what BenchMARL's MAPPO reaches at 60k frames (reference.md);
a random policy scores about -1200 on Pendulum-v1.
"""

from __future__ import annotations

import pytest

from marlkit.experiment import Experiment, build_config

NAVIGATION = {
    "env.n_agents": 3,
    "env.max_steps": 100,
    "experiment.num_envs": 20,
    "experiment.eval_every": 0,
    "experiment.frames": 60_000,
    "experiment.progress": False,
    "algo.max_kl": 0.02,
}


@pytest.mark.parametrize("algo", ["itrpo", "matrpo", "hatrpo", "mappo"])
def test_learns_vmas_navigation(algo, tmp_path):
    summary = Experiment(build_config(algo, "vmas/navigation", NAVIGATION), tmp_path / algo).run()
    assert summary["final_eval_return_mean"] >= 0.84, summary


def test_trpo_single_agent_learns_pendulum(tmp_path):
    overrides = {
        "experiment.num_envs": 4,
        "experiment.eval_every": 0,
        "experiment.frames": 100_000,
        "experiment.progress": False,
        "algo.rollout_steps": 512,
        "algo.gamma": 0.9,
        "algo.critic_epochs": 10,
        "algo.critic_minibatches": 16,
    }
    summary = Experiment(build_config("trpo", "gym/Pendulum-v1", overrides), tmp_path / "trpo").run()
    assert summary["final_eval_return_mean"] >= -300, summary
