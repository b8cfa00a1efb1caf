"""Rollout collection, episode statistics, user scenarios and the README demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from marlkit import make_env
from marlkit.adapters import user_scenarios
from marlkit.cli import main
from marlkit.keys import ACTION, DONE, NEXT, OBS, REWARD, STATE
from marlkit.training.rollout import RolloutCollector

ROOT = Path(__file__).resolve().parents[1]


def test_collector_batch_layout_and_next_observation_chain():
    env = make_env("vmas/navigation", num_envs=6, seed=0, n_agents=3, max_steps=7)
    batch, _ = RolloutCollector(env, env.rand_action, 20).collect()
    assert batch.batch_size == (6, 20)
    assert batch["agent"].batch_size == (6, 20, 3)
    assert batch["agent", ACTION].shape == (6, 20, 3, 2)
    assert batch[NEXT, STATE].shape == (6, 20, env.state_dim)
    # Where no reset happened, the observation reached is the next step's observation.
    cont = ~batch[DONE][:, :-1]
    assert torch.equal(batch[NEXT, "agent", OBS][:, :-1][cont], batch["agent", OBS][:, 1:][cont])
    assert bool(batch[DONE][:, 6::7].all()) and int(batch[DONE].sum()) == 6 * 2


def test_episode_stats_match_rewards_summed_by_hand():
    env = make_env("mpe/simple_adversary_v3", num_envs=4, seed=1, max_cycles=5)
    collector = RolloutCollector(env, env.rand_action, 10)  # two whole episodes per copy
    batch, stats = collector.collect()
    assert stats.episodes == 8 and stats.mean_length == 5.0
    for g in env.groups:
        per_episode = batch[g, REWARD].reshape(4, 2, 5, -1).sum(2)  # [env, episode, agent]
        torch.testing.assert_close(stats.agent_returns[g], per_episode.mean((0, 1)))
    # Episodes continue across calls; a window with no finished episode reports NaN.
    _, partial = RolloutCollector(env, env.rand_action, 3).collect()
    assert partial.episodes == 0 and torch.isnan(partial.agent_returns["agent"]).all()


def test_user_scenarios_are_discovered_and_extra_folders_work(tmp_path, monkeypatch):
    assert {"rendezvous", "scout_carrier"} <= set(user_scenarios())
    shutil.copy(ROOT / "marlkit" / "envs" / "scout_carrier.py", tmp_path / "my_task.py")
    monkeypatch.setenv("MARLKIT_ENVS_PATH", str(tmp_path))
    env = make_env("envs/my_task", num_envs=2, n_carriers=3)
    assert env.groups["carrier"].n_agents == 3


def test_scout_carrier_passes_pettingzoo_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    from marlkit.envs import scout_carrier  # a bundled scenario is a module of the package too

    parallel_api_test(scout_carrier.parallel_env(n_carriers=3), num_cycles=300)


def test_rendezvous_is_dense_cooperative_and_scales_with_n_agents():
    for n in (1, 2, 5):
        env = make_env("envs/rendezvous", num_envs=3, seed=0, n_agents=n)
        assert env.groups["agent"].n_agents == n and env.groups["agent"].obs_shape == (4 + 2 * (n - 1),)
    env = make_env("envs/rendezvous", num_envs=3, seed=0, n_agents=3)
    batch, _ = RolloutCollector(env, env.rand_action, 5).collect()
    reward = batch["agent", REWARD]
    assert bool((reward != 0).all()), "the reward is dense"
    assert torch.equal(reward, reward[..., :1].expand_as(reward)), "the reward is shared"


def test_demo_prints_frames_per_second_and_return(capsys):
    assert main(["demo", "--num-envs", "8", "--steps", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 240 and out["frames_per_s"] > 0
    assert out["episodes"] == 0 or isinstance(out["mean_episode_return_per_agent"], float)


def test_console_script_is_installed():
    exe = shutil.which("marlkit", path=os.path.dirname(sys.executable))
    assert exe is not None
    result = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=120, check=True)
    assert "envs/rendezvous" in result.stdout and "vmas:" in result.stdout


def test_reused_buffer_is_overwritten_and_opt_out_keeps_batches():
    env = make_env("vmas/navigation", num_envs=4, seed=0, n_agents=2, max_steps=50)
    reused = RolloutCollector(env, env.rand_action, 5)
    first, _ = reused.collect()
    kept = first.clone()
    second, _ = reused.collect()
    assert second is first and not torch.equal(kept["agent", OBS], second["agent", OBS])
    fresh = make_env("vmas/navigation", num_envs=4, seed=0, n_agents=2, max_steps=50)
    separate = RolloutCollector(fresh, fresh.rand_action, 5, reuse_buffer=False)
    a, _ = separate.collect()
    b, _ = separate.collect()
    assert a is not b and (a == kept).all() and (b == second).all()
