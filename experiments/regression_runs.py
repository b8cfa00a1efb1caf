"""Short seeded runs, one per algorithm family, whose ``metrics.csv`` a refactor must leave byte-identical.

    python experiments/regression_runs.py record runs/regression-before     # before restructuring
    python experiments/regression_runs.py record runs/regression-after      # after
    python experiments/regression_runs.py diff runs/regression-before runs/regression-after

Every run sets the knobs whose defaults may change (horizons, update ratios) explicitly, so that only
the code under test can move the numbers. Each run takes a few seconds on one thread.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import sys
from pathlib import Path

import torch

from marlkit.training.experiment import Experiment, build_config

COMMON = {"experiment.progress": False, "experiment.tensorboard": False, "experiment.torch_threads": 1}
NAVIGATION = {"env.n_agents": 2, "env.max_steps": 50, "experiment.num_envs": 8, "experiment.eval_episodes": 4}
ONPOLICY = {**NAVIGATION, "experiment.frames": 4_000, "experiment.eval_every": 2_000, "algo.rollout_steps": 100}
OFFPOLICY = {
    **NAVIGATION,
    "experiment.frames": 2_400,
    "experiment.eval_every": 1_200,
    "algo.hidden": [32, 32],
    "algo.batch_size": 64,
    "algo.warmup_frames": 400,
    "algo.rollout_steps": 10,
    "algo.updates_per_frame": 0.1,
}

RUNS: dict[str, tuple[str, str, dict]] = {
    "hatrpo": ("hatrpo", "vmas/navigation", ONPOLICY),
    "mappo": ("mappo", "vmas/navigation", ONPOLICY),
    "maddpg": ("maddpg", "vmas/navigation", OFFPOLICY),
    "maddpg_discrete": ("maddpg", "vmas/navigation", {**OFFPOLICY, "env.continuous_actions": False}),
    "masac": ("masac", "vmas/navigation", OFFPOLICY),
    # Two model fits: the second one reads the data stored by the first two updates.
    "pets": (
        "pets",
        "gym/Pendulum-v1",
        {
            "experiment.num_envs": 2,
            "experiment.frames": 400,
            "experiment.eval_every": 200,
            "experiment.eval_episodes": 2,
            "experiment.eval_max_steps": 20,
            "algo.rollout_steps": 25,
            "algo.warmup_frames": 100,
            "algo.retrain_every": 100,
            "algo.model.hidden": [32, 32],
            "algo.model.max_epochs": 5,
            "algo.model.ensemble_size": 3,
            "algo.model.elites": 2,
            "algo.planner.horizon": 5,
            "algo.planner.population": 20,
            "algo.particles": 2,
            "algo.planner.iterations": 2,
        },
    ),
    "mbpo": (
        "mbpo",
        "gym/Pendulum-v1",
        {
            "experiment.num_envs": 2,
            "experiment.frames": 600,
            "experiment.eval_every": 300,
            "experiment.eval_episodes": 2,
            "experiment.eval_max_steps": 50,
            "algo.hidden": [32, 32],
            "algo.batch_size": 64,
            "algo.rollout_steps": 10,
            "algo.warmup_frames": 200,
            "algo.updates_per_frame": 0.5,
            "algo.retrain_every": 200,
            "algo.rollouts_per_frame": 5,
            "algo.model.hidden": [32, 32],
            "algo.model.max_epochs": 5,
            "algo.model.ensemble_size": 3,
            "algo.model.elites": 2,
        },
    ),
    # The value-based family (double Q, QMIX's mixer on the state) on discrete navigation.
    "qmix": (
        "qmix",
        "vmas/navigation",
        {
            **{k: v for k, v in OFFPOLICY.items() if k != "algo.hidden"},
            "env.continuous_actions": False,
            "algo.eps_decay_frames": 1_000,
            "algo.target_period": 200,
        },
    ),
    # GRU policies in each family that has them (sequences in the on-policy batch, in replay, and
    # QMIX's recurrent agents), and a GRU central critic.
    "mappo_gru": (
        "mappo",
        "vmas/navigation",
        {**ONPOLICY, "algo.network": "gru", "algo.critic_network": "gru", "algo.gru_hidden": 16, "algo.chunk_len": 25},
    ),
    "masac_gru": ("masac", "vmas/navigation", {**OFFPOLICY, "algo.network": "gru", "algo.gru_hidden": 16}),
    "qmix_gru": (
        "qmix",
        "vmas/navigation",
        {
            **{k: v for k, v in OFFPOLICY.items() if k != "algo.hidden"},
            "env.continuous_actions": False,
            "algo.eps_decay_frames": 1_000,
            "algo.network": "gru",
            "algo.gru_hidden": 16,
        },
    ),
    # Teams: a PPO team snapshotting into its pool, played by the other side (self-play on envs/duel).
    "teams": (
        "teams",
        "envs/duel",
        {
            "experiment.num_envs": 8,
            "experiment.frames": 3_200,
            "experiment.eval_every": 1_600,
            "experiment.eval_episodes": 8,
            "algo.red.play": "ppo",
            "algo.red.rollout_steps": 50,
            "algo.red.hidden": [32, 32],
            "algo.red.snapshot_every": 800,
            "algo.blue.play": "pool",
            "algo.blue.opponent": "red",
        },
    ),
    # Teams: an off-policy team with short slices beside an on-policy one (simple_tag's two groups).
    "teams_mixed": (
        "teams",
        "vmas/simple_tag",
        {
            "experiment.num_envs": 4,
            "experiment.frames": 1_600,
            "experiment.eval_every": 800,
            "experiment.eval_episodes": 4,
            "env.max_steps": 50,
            "algo.adversary.play": "maddpg",
            "algo.adversary.rollout_steps": 10,
            "algo.adversary.hidden": [32, 32],
            "algo.adversary.batch_size": 64,
            "algo.adversary.warmup_frames": 200,
            "algo.agent.play": "mappo",
            "algo.agent.rollout_steps": 50,
            "algo.agent.hidden": [32, 32],
        },
    ),
}


def record(out: Path, names: list[str]) -> dict[str, str]:
    hashes = {}
    for name in names:
        algo, env, overrides = RUNS[name]
        run_dir = out / name
        if run_dir.exists():
            raise SystemExit(f"{run_dir} exists; choose an empty --out")
        torch.manual_seed(0)
        Experiment(build_config(algo, env, {**COMMON, **overrides}), run_dir).run()
        hashes[name] = hashlib.sha256((run_dir / "metrics.csv").read_bytes()).hexdigest()[:16]
    return hashes


def diff(before: Path, after: Path) -> dict[str, bool]:
    """Per family recorded on both sides (``record --only`` makes subsets): byte-identical or not."""
    return {
        name: filecmp.cmp(before / name / "metrics.csv", after / name / "metrics.csv", shallow=False)
        for name in RUNS
        if (before / name / "metrics.csv").exists() and (after / name / "metrics.csv").exists()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    dif = sub.add_parser("diff")
    dif.add_argument("before", type=Path)
    dif.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        print(json.dumps(record(args.out, args.only.split(",")), indent=2))
    else:
        same = diff(args.before, args.after)
        print(json.dumps({k: "identical" if v else "DIFFERENT" for k, v in same.items()}, indent=2))
        sys.exit(0 if all(same.values()) else 1)


if __name__ == "__main__":
    main()
