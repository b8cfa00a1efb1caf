"""The Python API: a loaded policy acts on TensorDicts and on plain observation dicts alike (padding,
masks, hide, agents that left, recurrent state), its exports act as it does, and train/compare/report
return what the run directories hold."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mpe2 import simple_spread_v3
from tensordict import TensorDict

import marlkit
from marlkit.algorithms import algorithm
from marlkit.api import overrides_of
from marlkit.cli import main
from marlkit.core.errors import MarlkitError
from marlkit.deploy import Policy, example_inputs
from marlkit.keys import ACTION, ACTION_MASK, DONE, OBS
from marlkit.learner import EnvInfo
from marlkit.training.config import build_config
from marlkit.training.rollout import carry_recurrent_state

QUIET = {"progress": False, "tensorboard": False}


def fresh_policy(algo: str, task: str, **overrides) -> tuple[Policy, marlkit.MultiAgentEnv]:
    """An untrained learner's policy (acting needs no training) and a 3-copy env of its task."""
    config = build_config(algo, task, {f"algo.{k}": v for k, v in overrides.items()})
    env = marlkit.make_env(task, 3, seed=0, **config.env_kwargs)
    learner = algorithm(algo).build(config.algo, env, 0)
    return Policy(learner, EnvInfo.of(env), acting_state=False), env


def agent_dicts(policy: Policy, td: TensorDict, index: int) -> dict[str, np.ndarray]:
    """Env copy ``index``'s observations as a PettingZoo env would give them."""
    return {a: td[g][OBS][index, j].numpy() for g, s in policy.groups.items() for j, a in enumerate(s.agents)}


@pytest.mark.parametrize(
    ("algo", "task", "options"),
    [
        ("mappo", "vmas/navigation", {}),
        ("masac", "vmas/navigation", {"share_actor": True}),
        ("qmix", "lbf/Foraging-8x8-2p-2f-coop-v3", {}),
        ("hatrpo", "mpe/simple_spread_v3", {}),
    ],
)
def test_observation_dicts_give_the_tensordict_actions(algo, task, options):
    policy, env = fresh_policy(algo, task, **options)
    td = env.reset(seed=1)
    for _ in range(3):
        for i in range(env.num_envs):
            actions = policy.act(agent_dicts(policy, td, i))
            # The policy on env copy i's TensorDict row: the same shapes as one observation dict, so the
            # same numbers bit for bit (docs/testing.md), discrete argmaxes included.
            expected = policy(td[i : i + 1].clone())
            for g, spec in policy.groups.items():
                for j, agent in enumerate(spec.agents):
                    want = expected[g][ACTION][0, j]
                    if spec.is_discrete:
                        assert actions[agent] == int(want) and isinstance(actions[agent], int)
                    else:  # clipped to the action space, as the env clips
                        low, high = spec.action.bounds("cpu")
                        np.testing.assert_array_equal(actions[agent], torch.clamp(want, low, high).numpy())
        td = env.step(env.rand_action(td))


def test_a_plain_pettingzoo_env_is_driven_by_a_loaded_policy():
    policy, _ = fresh_policy("mappo", "mpe/simple_spread_v3")
    raw = simple_spread_v3.parallel_env(max_cycles=5)
    obs, _ = raw.reset(seed=0)
    steps = 0
    while raw.agents:
        actions = policy.act(obs, deterministic=False)
        assert set(actions) == set(raw.agents)
        assert all(raw.action_space(a).contains(int(v)) for a, v in actions.items())
        obs, *_ = raw.step(actions)
        steps += 1
    assert steps == 5


def test_dict_observations_carry_their_action_masks_and_absent_agents_get_no_action():
    policy, _ = fresh_policy("iql", "helper_envs:MaskedEnv")
    mask = np.array([0, 0, 1], np.int8)
    for _ in range(5):  # untrained: the mask alone makes the action legal
        obs = {"player_0": {"observation": np.array([2.0], np.float32), "action_mask": mask}}
        assert policy.act(obs) == {"player_0": 2}
    with pytest.raises(MarlkitError, match="unknown agents"):
        policy.act({"nobody": np.zeros(1)})


def test_hidden_entries_are_removed_from_raw_observations():
    hidden_config = build_config("ppo", "gym/Pendulum-v1", {"env.hide": [2]})
    hidden_env = marlkit.make_env("gym/Pendulum-v1", 1, seed=0, **hidden_config.env_kwargs)
    learner = algorithm("ppo").build(hidden_config.algo, hidden_env, 0)
    hidden = Policy(learner, EnvInfo.of(hidden_env), acting_state=False)
    full = np.array([0.3, -0.9, 5.0], np.float32)
    td = hidden_env.reset(seed=0)
    td["agent", OBS][0, 0] = torch.from_numpy(full[[0, 1]])
    expected = hidden(td)["agent", ACTION][0, 0]
    np.testing.assert_array_equal(hidden.act({"agent_0": full})["agent_0"], expected.clamp(-2, 2).numpy())


def test_batched_observations_give_batched_actions_for_vmas():
    import vmas

    policy, env = fresh_policy("mappo", "vmas/navigation")
    raw = vmas.make_env("navigation", num_envs=4, dict_spaces=True, seed=0, n_agents=env.n_agents)
    obs = raw.reset()
    for _ in range(3):
        actions = policy.act(obs)
        assert set(actions) == {a.name for a in raw.agents}
        assert all(a.shape == (4, 2) and isinstance(a, torch.Tensor) for a in actions.values())
        obs, *_ = raw.step(actions)


def test_a_recurrent_policy_carries_its_state_as_the_evaluator_does():
    policy, env = fresh_policy("mappo", "vmas/navigation", network="gru")
    reference, _ = fresh_policy("mappo", "vmas/navigation", network="gru")
    reference.learner.load_state_dict(policy.learner.state_dict())
    td = env.reset(seed=0)
    td_ref = td.clone()
    for step in range(6):
        got = policy(td.clone())  # carries its own state: td holds none
        want = reference.learner.act(td_ref, deterministic=True)  # the evaluator's loop
        torch.testing.assert_close(got["agent", ACTION], want["agent", ACTION], rtol=0, atol=0)
        out = env.step(want)
        carry_recurrent_state(want, out, env.groups)
        td_ref, td = out, out.exclude(("agent", "recurrent_state"))
        if step == 2:  # the state matters: acting without it differs
            forgot = reference.learner.act(td.clone(), deterministic=True)["agent", ACTION]
            assert not torch.equal(forgot, reference.learner.act(out.clone(), True)["agent", ACTION])
    policy.reset()
    assert policy._memory == {}


def test_a_recurrent_policy_on_observation_dicts_remembers_and_resets():
    policy, env = fresh_policy("mappo", "vmas/navigation", network="gru")
    td = env.reset(seed=0)
    obs = agent_dicts(policy, td, 0)
    first = policy.act(obs)
    again = policy.act(obs)  # same observation, a state that has moved on
    assert any(not np.array_equal(first[a], again[a]) for a in first)
    policy.reset()
    np.testing.assert_array_equal(policy.act(obs)["agent_0"], first["agent_0"])


def test_sampled_actions_need_the_exploration_state():
    policy, _ = fresh_policy("iql", "helper_envs:MaskedEnv")
    obs = {"player_0": {"observation": np.array([2.0], np.float32), "action_mask": np.ones(3, np.int8)}}
    with pytest.raises(MarlkitError, match="deterministic=True"):
        policy.act(obs, deterministic=False)


@pytest.mark.parametrize(
    ("algo", "task", "options"),
    [
        ("mappo", "vmas/navigation", {}),
        ("mappo", "vmas/navigation", {"network": "gru"}),
        ("masac", "vmas/navigation", {"share_actor": True}),
        ("qmix", "lbf/Foraging-8x8-2p-2f-coop-v3", {}),
        ("iql", "helper_envs:MaskedEnv", {"network": "gru"}),
        ("sac", "gym/Pendulum-v1", {}),
    ],
)
def test_exported_actors_act_as_the_policy(algo, task, options, tmp_path):
    import onnxruntime

    policy, _ = fresh_policy(algo, task, **options)
    for suffix in (".pt", ".onnx"):
        path = marlkit.export(policy, tmp_path / f"actor{suffix}", batch=5)
        meta = json.loads(Path(f"{path}.json").read_text())
        batch = meta["batch"] or 11  # ONNX files that take any batch are run on another size
        inputs, names, recurrent = example_inputs(policy, batch)
        assert list(meta["inputs"]) == names and len(meta["outputs"]) == len(policy.groups) + len(recurrent)
        if suffix == ".pt":
            got = [t.numpy() for t in torch.jit.load(str(path))(*inputs)]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                session = onnxruntime.InferenceSession(str(path))
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        # The policy itself on the same observations (masks, states) through a TensorDict.
        it = iter(inputs)
        td = TensorDict({}, batch_size=[batch])
        for g, spec in policy.groups.items():
            entries = {OBS: next(it), "alive": torch.ones(batch, spec.n_agents, dtype=torch.bool)}
            if spec.has_action_mask:
                entries[ACTION_MASK] = next(it)
            if g in recurrent:
                entries["recurrent_state"] = next(it)
            td[g] = TensorDict(entries, batch_size=[batch, spec.n_agents])
        td["state"] = torch.zeros(batch, policy.info.state_dim)
        td[DONE] = torch.zeros(batch, dtype=torch.bool)
        out = policy(td)
        want = [policy._clipped(g, out[g][ACTION]) for g in policy.groups]
        want += [out[g]["recurrent_state_out"] for g in recurrent]
        for w, g in zip(want, got, strict=True):
            # The same ops in another runtime: equal up to float rounding (1e-5 on actions of size ~1).
            np.testing.assert_allclose(np.asarray(g, np.float64), w.numpy().astype(np.float64), rtol=0, atol=1e-5)


def test_planners_are_refused_by_export_in_one_line(tmp_path):
    policy, _ = fresh_policy("pets", "gym/Pendulum-v1")
    logging.disable(logging.WARNING)
    try:
        with pytest.raises(MarlkitError, match="cannot export"):
            marlkit.export(policy, tmp_path / "p.pt")
    finally:
        logging.disable(logging.NOTSET)
    with pytest.raises(MarlkitError, match=r"\.pt \(TorchScript\) or \.onnx"):
        marlkit.export(policy, tmp_path / "p.zip")


def test_overrides_take_tables_and_dotted_keys():
    assert overrides_of({"algo": {"lr": 1e-3}, "experiment.seed": 3}) == {"algo.lr": 1e-3, "experiment.seed": 3}
    with pytest.raises(MarlkitError, match="table of options"):
        overrides_of({"algo": 5})


def test_train_load_compare_and_report_return_what_the_runs_hold(tmp_path):
    experiment = {**QUIET, "num_envs": 4, "eval_every": 200, "eval_episodes": 4}
    run = marlkit.train("ppo", "envs/duel", frames=400, seed=1, out=tmp_path / "run", experiment=experiment,
                        algo={"rollout_steps": 50})  # fmt: skip
    assert run.dir == tmp_path / "run" and run.config.experiment.seed == 1 and not run.interrupted
    rows = run.metrics()
    assert rows[-1]["frames"] == 400
    assert rows[-1]["eval_return_mean"] == pytest.approx(run.summary["final_eval_return_mean"])
    assert marlkit.resume(run.dir).summary == run.summary
    policy = marlkit.load(run.dir)
    assert set(policy.agents) == {"red_0", "blue_0"}
    assert main(["export", str(run.dir), str(tmp_path / "duel.pt"), "--checkpoint", "best"]) == 0
    exported = torch.jit.load(str(tmp_path / "duel.pt"))
    inputs, _, _ = example_inputs(marlkit.load(run.dir, "best"))
    assert [tuple(t.shape) for t in exported(*inputs)] == [(1, 1), (1, 1)]  # one agent per team, discrete

    result = marlkit.compare(["ppo", "mappo"], ["envs/duel"], seeds=[0, 1], frames=400, out=tmp_path / "cmp",
                             jobs=1, progress=False, experiment=experiment, algo={"rollout_steps": 50})  # fmt: skip
    assert not result.failed and result.report is not None
    tables = result.report
    assert {r["algorithm"] for r in tables.algorithms} == {"ppo", "mappo"}
    assert len(tables.pairs) == 1 and tables.pairs[0]["task"] == "envs/duel"
    text = tables.path.read_text()
    assert tables.verdicts["envs/duel"] in text
    for row in tables.algorithms:  # the report's table row holds the same numbers
        assert f"| {row['algorithm']} | 2 | {row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}] |" in text
    again = marlkit.report(tmp_path / "cmp")
    assert again.algorithms == tables.algorithms and again.pairs == tables.pairs


def test_the_package_imports_and_fails_in_one_line_without_its_simulators():
    """Every simulator extra blocked: `import marlkit` and `marlkit list` work, and a task names its extra."""
    blocked = ["vmas", "pettingzoo", "gymnasium", "mpe2", "gymnasium_robotics", "mujoco", "lbforaging", "rware",
               "optuna", "onnx", "onnxscript"]  # fmt: skip
    cases = {
        "envs/private_goals": "marlkit[vmas]",
        "vmas/navigation": "marlkit[vmas]",
        "envs/duel": "marlkit[pettingzoo]",
        "mpe/simple_spread_v3": "marlkit[mpe]",
        "lbf/Foraging-8x8-2p-2f-coop-v3": "marlkit[lbf]",
        "mamujoco/HalfCheetah-2x3": "marlkit[mamujoco]",
        "gym/CartPole-v1": "marlkit[pettingzoo]",
    }
    code = f"""
import contextlib, io, json, sys
for m in {blocked!r}:
    sys.modules[m] = None
import marlkit
from marlkit.cli import main
listing = io.StringIO()
with contextlib.redirect_stdout(listing):
    assert main(["list"]) == 0
out = {{"list": listing.getvalue()}}
for task in {list(cases)!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out[task] = [main(["train", "ppo", task, "--frames", "100"]), err.getvalue()]
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert "vmas: not installed (pip install 'marlkit[vmas]')" in out["list"]
    for task, extra in cases.items():
        code, stderr = out[task]
        assert code == 2 and stderr.count("\n") == 1 and extra in stderr, (task, stderr)
