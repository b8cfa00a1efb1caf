"""Bad input fails with one clear line naming what is wrong and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import vmas  # noqa: F401 - its import prints a notice on stderr once; not inside the captured tests
from tensordict import TensorDict

from marlkit import MarlkitError, make_env
from marlkit.cli import main
from marlkit.keys import ACTION


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vmas/navigaton", "Did you mean 'navigation'"),
        ("vmass/navigation", "Families: vmas/<name>"),
        ("mpe/simple_sprad_v3", "simple_spread_v3"),
        ("gym/Pendulum-v0", "Pendulum-v1"),
        ("envs/rendevous", "rendezvous"),
        ("nonexistent_module_xyz:Thing", "cannot import module"),
    ],
)
def test_unknown_env_names(name, expected):
    with pytest.raises(MarlkitError) as err:
        make_env(name)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vmas/navigation", {"n_agentz": 3}),
        ("mpe/simple_spread_v3", {"n_agentz": 3}),
        ("gym/Pendulum-v1", {"n_agentz": 3}),
        ("envs/rendezvous", {"n_agentz": 3}),
        ("envs/scout_carrier", {"n_agentz": 3}),
    ],
)
def test_unknown_env_kwarg_is_named(name, kwargs):
    with pytest.raises(MarlkitError, match="n_agentz"):
        make_env(name, num_envs=2, **kwargs)


@pytest.mark.parametrize("name", ["vmas/navigation", "mpe/simple_spread_v3"])
def test_wrong_action_shape_and_dtype_name_group_and_shape(name):
    env = make_env(name, num_envs=2, seed=0, **({"continuous_actions": True} if "mpe" in name else {}))
    td = env.rand_action(env.reset())
    good = td["agent"][ACTION]
    td["agent"][ACTION] = good[..., :1]
    with pytest.raises(MarlkitError, match=r"group 'agent'.*expected a float tensor of shape \(2, \d, \d\)"):
        env.step(td)
    td["agent"][ACTION] = good.long()
    with pytest.raises(MarlkitError, match=r"group 'agent'.*dtype torch\.int64"):
        env.step(td)


def test_discrete_action_must_be_integer():
    env = make_env("mpe/simple_adversary_v3", num_envs=2, seed=0)
    td = env.rand_action(env.reset())
    td["agent"][ACTION] = td["agent"][ACTION].float()
    with pytest.raises(MarlkitError, match=r"group 'agent'.*integer tensor of indices in \[0, 5\)"):
        env.step(td)


def test_nan_reward_names_env_and_key():
    env = make_env("helper_envs:NanRewardEnv", num_envs=2, seed=0, nan_at=2)
    td = env.step(env.rand_action(env.reset()))
    with pytest.raises(FloatingPointError, match=r"env 'helper_envs:NanRewardEnv'.*\('agent', 'reward'\)"):
        env.step(env.rand_action(td))


def test_nan_observation_names_env_and_key():
    env = make_env("helper_envs:NanRewardEnv", num_envs=2, seed=0, nan_at=1, nan_in="obs")
    with pytest.raises(FloatingPointError, match=r"env 'helper_envs:NanRewardEnv'.*'observation'"):
        env.step(env.rand_action(env.reset()))


def test_heterogeneous_observation_sizes_in_one_group():
    group_map = {"all": ["adversary_0", "agent_0", "agent_1"]}
    with pytest.raises(MarlkitError, match=r"group 'all'.*'adversary_0': \(8,\).*'agent_0': \(10,\).*pad_observations"):
        make_env("mpe/simple_adversary_v3", num_envs=2, group_map=group_map)
    env = make_env("mpe/simple_adversary_v3", num_envs=2, group_map=group_map, pad_observations=True)
    assert env.groups["all"].obs_shape == (10,)
    td = env.step(env.rand_action(env.reset()))
    assert td["all"]["observation"].shape == (2, 3, 10)


def test_mixed_action_kinds_in_one_group_fail_clearly():
    with pytest.raises(MarlkitError, match="different action spaces"):
        make_env(
            "envs/scout_carrier",
            num_envs=2,
            group_map={"all": ["scout_0", "carrier_0", "carrier_1"]},
            pad_observations=True,
        )


def test_bad_group_map_lists_missing_agents():
    with pytest.raises(MarlkitError, match=r"missing: \['agent_2'\]"):
        make_env("vmas/navigation", num_envs=2, n_agents=3, group_map={"a": ["agent_0", "agent_1"]})


def test_action_on_wrong_device_is_refused():
    env = make_env("vmas/navigation", num_envs=2, n_agents=2)
    td = TensorDict({"agent": {ACTION: torch.zeros(2, 2, 2, device="meta")}}, batch_size=[2])  # no device cast
    with pytest.raises(MarlkitError, match="is on meta but env 'vmas/navigation' runs on cpu"):
        env.step(td)


def test_cli_prints_one_line_and_exits_2(capsys):
    assert main(["demo", "--env", "vmas/navigaton"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "navigation" in err


# ---------------------------------------------------------------------------------------------------
# Every bad input at the command line: exit code 2, one line on stderr, no traceback, nothing written.
NOT_UTF8 = b"algo:\n  actor_lr: \xff\xfe\n"
FILES: dict[str, str | bytes] = {
    "a_file": "not a directory",
    "full/x.txt": "something",
    "bad.yaml": "algo: [unclosed",
    "list.yaml": "- 1\n- 2\n",
    "algo_int.yaml": "algo_name: 5\nenv_name: vmas/navigation\n",
    "env_list.yaml": "algo_name: itrpo\nenv_name: [vmas/navigation]\n",
    "unknown_top.yaml": "algo_nme: itrpo\n",
    "seeds_text.yaml": "seeds: abc\n",
    "nan.yaml": "algo:\n  actor_lr: .nan\n",
    "inf.yaml": "algo:\n  gamma: .inf\n",
    "hidden.yaml": "algo:\n  hidden: [64, 0]\n",
    "wrong.txt": "algo: {}\n",
    "not_utf8.yaml": NOT_UTF8,
    "folder.yaml/inner": "",
    "run/config.json": "{not json",
}
TRAIN = ["train", "itrpo", "vmas/navigation"]
TRAIN_MADDPG = ["train", "maddpg", "vmas/navigation"]
BAD_CLI = {
    # --out
    "out is a file": [*TRAIN, "--out", "a_file"],
    "out is /dev/null": [*TRAIN, "--out", "/dev/null"],
    "out cannot be created": [*TRAIN, "--out", "/proc/marlkit-run"],
    "out below a file": [*TRAIN, "--out", "a_file/run"],
    "out not empty": [*TRAIN, "--out", "full"],
    # config files
    "config missing": [*TRAIN, "--config", "missing.yaml"],
    "config is a folder": [*TRAIN, "--config", "folder.yaml"],
    "config not UTF-8": [*TRAIN, "--config", "not_utf8.yaml"],
    "config YAML syntax": [*TRAIN, "--config", "bad.yaml"],
    "config not a mapping": [*TRAIN, "--config", "list.yaml"],
    "config algo_name not a string": ["train", "--config", "algo_int.yaml"],
    "config env_name a list": ["train", "--config", "env_list.yaml"],
    "config unknown top-level key": [*TRAIN, "--config", "unknown_top.yaml"],
    "config suffix": [*TRAIN, "--config", "wrong.txt"],
    "config NaN": [*TRAIN, "--config", "nan.yaml"],
    "config inf": [*TRAIN, "--config", "inf.yaml"],
    "config zero layer": [*TRAIN, "--config", "hidden.yaml"],
    "compare config seeds text": ["compare", "--config", "seeds_text.yaml"],
    # scenarios and their kwargs
    "scenario make_world raises": ["train", "itrpo", "helper_envs:BrokenScenario"],
    "scenario constructor raises": ["train", "itrpo", "helper_envs:broken_factory"],
    "demo scenario raises": ["demo", "--env", "helper_envs:BrokenScenario"],
    "n_agents zero": [*TRAIN, "env.n_agents=0"],
    "n_agents negative": [*TRAIN, "env.n_agents=-2"],
    "demo n_agents zero": ["demo", "n_agents=0"],
    "unknown env kwarg": [*TRAIN, "env.n_agentz=3"],
    "navigation too crowded to spawn (would hang)": [*TRAIN, "env.n_agents=64"],
    "demo navigation too crowded": ["demo", "n_agents=30", "world_spawning_x=0.5"],
    "unknown env": ["train", "itrpo", "vmas/navigaton"],
    "unknown algorithm": ["train", "itrpx", "vmas/navigation"],
    # devices
    "cuda without CUDA": [*TRAIN, "--device", "cuda"],
    "unknown device": [*TRAIN, "--device", "tpu9"],
    "demo cuda index": ["demo", "--device", "cuda:7"],
    "experiment.device key": [*TRAIN, "experiment.device=gpu"],
    # seeds
    "negative seed": [*TRAIN, "--seed", "-1"],
    "seed past numpy": [*TRAIN, "--seed", str(2**32)],
    "demo negative seed": ["demo", "--seed", "-1"],
    "compare negative seed": ["compare", "--algos", "itrpo", "--seeds", "-5"],
    # numbers in configs
    "zero layer size": [*TRAIN, "algo.hidden=[0,64]"],
    "negative layer size": [*TRAIN, "algo.hidden=[-4]"],
    "negative learning rate": [*TRAIN, "algo.critic_lr=-1"],
    "zero learning rate": ["train", "mappo", "vmas/navigation", "algo.actor_lr=0"],
    "nan learning rate": ["train", "mappo", "vmas/navigation", "algo.actor_lr=nan"],
    "gamma above one": [*TRAIN, "algo.gamma=2"],
    "unknown algo key": [*TRAIN, "algo.actr_lr=0.1"],
    "no section prefix": [*TRAIN, "critic_lr=0.1"],
    "zero frames": [*TRAIN, "--frames", "0"],
    "negative env copies": [*TRAIN, "experiment.num_envs=-2"],
    "layer sizes not numbers": [*TRAIN, "algo.hidden=abc"],
    "nested model lr": ["train", "mbpo", "vmas/navigation", "algo.model.lr=-0.1"],
    # options that only apply with others
    "critic without id, separate critics": [*TRAIN_MADDPG, "algo.critic_agent_id=false", "algo.share_critic=false"],
    "critic without id, local critic": [*TRAIN_MADDPG, "algo.critic_agent_id=false", "algo.critic=local"],
    # demo
    "demo zero steps": ["demo", "--steps", "0"],
    "demo negative steps": ["demo", "--steps", "-3"],
    "demo zero env copies": ["demo", "--num-envs", "0"],
    # compare
    "compare empty algos": ["compare", "--algos", ","],
    "compare empty envs": ["compare", "--envs", ","],
    "compare empty seeds": ["compare", "--seeds", ","],
    "compare repeated seed": ["compare", "--algos", "itrpo", "--seeds", "0,0", "--jobs", "2"],
    "compare repeated algorithm": ["compare", "--algos", "itrpo,itrpo"],
    "compare unknown algorithm": ["compare", "--algos", "itrpo,nosuch"],
    "compare unknown backend": ["compare", "--algos", "itrpo", "--backend", "slurm"],
    "compare zero jobs": ["compare", "--algos", "itrpo", "--jobs", "0"],
    # eval and resume
    "eval missing run": ["eval", "no_such_run"],
    "eval zero episodes": ["eval", "run", "--episodes", "0"],
    "eval unknown checkpoint kind": ["eval", "run", "--checkpoint", "middle"],
    "eval corrupt config.json": ["eval", "run"],
    "resume missing run": ["resume", "no_such_run"],
    "resume corrupt config.json": ["resume", "run"],
    "malformed override": [*TRAIN, "=5"],
}


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv", list(BAD_CLI.values()), ids=list(BAD_CLI))
def test_bad_cli_input_is_one_line_exit_2_and_writes_nothing(argv, tmp_path, monkeypatch, capsys):
    for name, content in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marlkit: error: "), captured.err
    assert "Traceback" not in captured.err
    assert _tree(tmp_path) == before, "nothing written"
    assert not Path("/proc/marlkit-run").exists()


def test_the_table_covers_at_least_40_cases():
    assert len(BAD_CLI) >= 40


# The same through the Python API: MarlkitError, never a raw TypeError/ValueError/OSError.
def _api_cases(tmp_path):
    from marlkit.analysis.sweep import compare
    from marlkit.training.config import build_config, load_config_file
    from marlkit.training.evaluation import evaluate_run
    from marlkit.training.experiment import Experiment
    from marlkit.training.runs import read_run_config

    (tmp_path / "a_file").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("[1, 2]")
    small = {"env.n_agents": 2, "experiment.progress": False}
    return {
        "hidden text": lambda: build_config("itrpo", "vmas/navigation", {"algo.hidden": "abc"}),
        "seed too large": lambda: build_config("itrpo", "vmas/navigation", {"experiment.seed": 2**40}),
        "nan lr": lambda: build_config("masac", "vmas/navigation", {"algo.actor_lr": float("nan")}),
        "inf tau": lambda: build_config("masac", "vmas/navigation", {"algo.tau": float("inf")}),
        "num_envs text": lambda: make_env("vmas/navigation", num_envs="4"),
        "device cuda": lambda: make_env("vmas/navigation", device="cuda"),
        "device nonsense": lambda: make_env("vmas/navigation", device="quantum"),
        "scenario raises": lambda: make_env("helper_envs:BrokenScenario"),
        "factory raises": lambda: make_env("helper_envs:broken_factory"),
        "n_agents zero": lambda: make_env("vmas/navigation", n_agents=0),
        "out is a file": lambda: Experiment(build_config("itrpo", "vmas/navigation", small), tmp_path / "a_file").run(),
        "duplicate seeds": lambda: compare(["itrpo"], ["vmas/navigation"], [1, 1], tmp_path / "c", progress=False),
        "config folder": lambda: load_config_file(str(tmp_path)),
        "config.json not a mapping": lambda: read_run_config(tmp_path / "run"),
        "eval missing run": lambda: evaluate_run(tmp_path / "nothing"),
        "algo None": lambda: build_config(None, "vmas/navigation", {}),  # type: ignore[arg-type]
        "algo int": lambda: build_config(5, "vmas/navigation", {}),  # type: ignore[arg-type]
        "env None": lambda: build_config("itrpo", None, {}),  # type: ignore[arg-type]
        "overrides not a mapping": lambda: build_config("itrpo", "vmas/navigation", ["algo.lr=1"]),  # type: ignore[arg-type]
        "override key not a string": lambda: build_config("itrpo", "vmas/navigation", {3: 1}),
        "negative clip_eps": lambda: build_config("mappo", "vmas/navigation", {"algo.clip_eps": -1.0}),
    }


API_CASES = [
    "hidden text",
    "seed too large",
    "nan lr",
    "inf tau",
    "num_envs text",
    "device cuda",
    "device nonsense",
    "scenario raises",
    "factory raises",
    "n_agents zero",
    "out is a file",
    "duplicate seeds",
    "config folder",
    "config.json not a mapping",
    "eval missing run",
    "algo None",
    "algo int",
    "env None",
    "overrides not a mapping",
    "override key not a string",
    "negative clip_eps",
]


@pytest.mark.parametrize("case", API_CASES)
def test_bad_api_input_raises_marlkit_error(case, tmp_path):
    call = _api_cases(tmp_path)[case]
    with pytest.raises(MarlkitError) as err:
        call()
    assert "\n" not in str(err.value)


def test_a_gpu_runs_config_still_reads_on_a_cpu_machine(tmp_path):
    # Device availability is checked where envs are made, not when a stored config is read: `marlkit
    # eval` of a run trained on CUDA works on a laptop without one.
    import json

    from marlkit.training.config import build_config
    from marlkit.training.runs import read_run_config

    data = build_config("itrpo", "vmas/navigation", {}).to_json()
    data["experiment"]["device"] = "cuda:1"
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert read_run_config(tmp_path).experiment.device == "cuda:1"
    with pytest.raises(MarlkitError, match=r"experiment\.device: unknown device"):
        build_config("itrpo", "vmas/navigation", {"experiment.device": "tpu"})


# Numeric options whose negative values mean something; every other numeric option refuses -1.
NEGATIVE_OK = {
    "init_log_std": "a log standard deviation",
    "target_entropy_per_dim": "SAC's entropy target, -1 per dimension by default",
    "env_workers": "-1 picks the number of worker processes itself",
}


def test_every_numeric_option_refuses_a_sign_it_cannot_take():
    """The audit of option ranges as a test: a new numeric option needs a bound or a reason here."""
    from marlkit.algorithms import ALGORITHMS, algorithm
    from marlkit.core.options import describe, with_overrides
    from marlkit.training.config import ExperimentConfig

    configs = [(algorithm(name).default_config(), "algo") for name in ALGORITHMS if name != "teams"]
    accepted = []
    for cfg, section in [*configs, (ExperimentConfig(), "experiment")]:
        for name, kind, _value, _ in describe(cfg):
            if kind not in ("int", "float") or name.rsplit(".", 1)[-1] in NEGATIVE_OK:
                continue
            try:
                with_overrides(cfg, {name: -1}, section)
                accepted.append(f"{section}.{name} ({type(cfg).__name__})")
            except MarlkitError as err:
                assert "\n" not in str(err)
    assert not accepted, accepted
