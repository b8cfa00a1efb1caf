"""Learning benchmarks of the trust-region family: algos x seeds on one task, median and spread.

Each preset fixes the task, budget and config (every override is printed into docs/benchmarks.md).
Runs go to ``runs/bench/<preset>/<algo>-s<seed>`` and are skipped if already finished, so an
interrupted benchmark continues where it stopped.

    python experiments/benchmarks/onpolicy_learning.py pendulum
    python experiments/benchmarks/onpolicy_learning.py navigation
    python experiments/benchmarks/onpolicy_learning.py halfcheetah
    python experiments/benchmarks/onpolicy_learning.py spread
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from marlkit.experiment import Experiment, build_config  # noqa: E402

PRESETS: dict[str, dict] = {
    "pendulum": {
        "title": "TRPO (N=1) on gym/Pendulum-v1, 100k steps",
        "env": "gym/Pendulum-v1",
        "algos": ["trpo"],
        "frames": 100_000,
        "overrides": {
            "experiment.num_envs": 4,
            "experiment.eval_every": 0,
            "algo.rollout_steps": 512,
            "algo.gamma": 0.9,
            "algo.critic_epochs": 10,
            "algo.critic_minibatches": 16,
        },
        "measure": "eval_return_mean",
        "target": -200.0,
        "reference": "Target: eval return >= -200 at 100k steps with training wall-clock <= sb3-contrib 2.9.2 TRPO "
        "(rl-baselines3-zoo config, gSDE) on this machine: -194 after 100k steps in 27 s.",
    },
    "navigation": {
        "title": "HATRPO / MATRPO / ITRPO on vmas/navigation (3 agents, max_steps 100), 60k frames",
        "env": "vmas/navigation",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 60_000,
        "overrides": {
            "env.n_agents": 3,
            "env.max_steps": 100,
            "experiment.num_envs": 20,
            "experiment.eval_every": 6_000,
            "algo.max_kl": 0.02,
        },
        "measure": "eval_return_mean",
        "target": 0.84,
        "reference": "Reference: BenchMARL 1.5.2 MAPPO (default config) reached eval return 0.84 at 60k frames in "
        "110 s on this machine. Target: HATRPO and MATRPO >= 0.84 in <= 55 s. Eval return = mean over "
        "agents of the deterministic episode return, 16 evaluation episodes.",
    },
    "halfcheetah": {
        "title": "HATRPO / MATRPO / ITRPO on mamujoco/HalfCheetah-2x3, 1M steps",
        "env": "mamujoco/HalfCheetah-2x3",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 1_000_000,
        "overrides": {
            "experiment.num_envs": 10,
            "experiment.eval_every": 100_000,
            "experiment.eval_episodes": 5,
            "experiment.torch_threads": 1,
            "algo.rollout_steps": 400,
            "algo.obs_norm": True,
            "algo.value_norm": True,
            "algo.hidden": [128, 128],
            "algo.critic_lr": 5e-4,
            "algo.critic_minibatches": 2,
            "algo.init_log_std": -0.5,
        },
        "measure": "eval_return_mean",
        "target": 1500.0,
        "reference": "Target: HATRPO >= 1500 at 1M steps (HARL reports about 5400 at 10M). MaMuJoCo gives every "
        "agent the robot's reward, so the per-agent mean is the robot's episode return (summing over agents would "
        "double it). Deterministic evaluation, 5 episodes. These runs shared the 2 cores with the spread benchmark "
        "(one torch thread each): wall-clock is indicative only.",
    },
    "spread": {
        "title": "HATRPO / MATRPO / ITRPO on continuous mpe/simple_spread_v3 (N=3, 25-step episodes), 2M steps",
        "env": "mpe/simple_spread_v3",
        "algos": ["hatrpo", "matrpo", "itrpo"],
        "frames": 2_000_000,
        "overrides": {
            "env.continuous_actions": True,
            "env.max_cycles": 25,
            "experiment.num_envs": 16,
            "experiment.eval_every": 200_000,
            "experiment.torch_threads": 1,
            "algo.rollout_steps": 200,
            "algo.max_kl": 0.005,
            "algo.obs_norm": True,
            "algo.value_norm": True,
            "algo.hidden": [128, 128],
        },
        "measure": "eval_return_team",
        "target": None,
        "reference": "Team return summed over the 3 agents and over the 25-step episode, the measure HARL uses "
        "(HATRPO about -71 at 10M steps). mpe2's simple_spread_v3 defaults (local_ratio 0.5, dynamic_rescaling) "
        "may differ from the MPE version HARL used, so the comparison is approximate. These runs shared the 2 "
        "cores with the HalfCheetah benchmark: wall-clock is indicative only.",
    },
}


def run_one(preset: dict, name: str, algo: str, seed: int, out_root: Path) -> dict:
    out = out_root / name / f"{algo}-s{seed}"
    summary_path = out / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    if out.exists():  # an interrupted run: start it again from scratch
        import shutil

        shutil.rmtree(out)
    overrides = {
        **preset["overrides"],
        "experiment.frames": preset["frames"],
        "experiment.seed": seed,
        "experiment.progress": False,
    }
    return Experiment(build_config(algo, preset["env"], overrides), out).run()


def frames_to_target(run_dir: Path, measure: str, target: float | None) -> tuple[int | None, float | None]:
    if target is None:
        return None, None
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get(measure) and float(row[measure]) >= target:
                return int(row["frames"]), float(row["wall_s"])
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    measure = preset["measure"]
    results: dict[str, dict] = {}
    for algo in args.algos or preset["algos"]:
        runs = []
        for seed in args.seeds:
            summary = run_one(preset, args.preset, algo, seed, Path(args.out))
            run_dir = Path(args.out) / args.preset / f"{algo}-s{seed}"
            final = {
                "eval_return_mean": summary["final_eval_return_mean"],
                "eval_return_team": summary["final_eval_return_team"],
            }[measure]
            frames_hit, wall_hit = frames_to_target(run_dir, measure, preset["target"])
            runs.append(
                {
                    "seed": seed,
                    "final": final,
                    "wall_s": summary["wall_s"],
                    "frames_to_target": frames_hit,
                    "wall_s_to_target": wall_hit,
                }
            )
            print(json.dumps({"algo": algo, **runs[-1]}), flush=True)
        finals = [r["final"] for r in runs]
        walls = [r["wall_s"] for r in runs]
        results[algo] = {
            "runs": runs,
            "median": statistics.median(finals),
            "min": min(finals),
            "max": max(finals),
            "median_wall_s": statistics.median(walls),
        }
    print(json.dumps(results, indent=1))
    write_docs(args, preset, results)


def write_docs(args: argparse.Namespace, preset: dict, results: dict) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _report import write_section

    target = preset["target"]
    rows = [
        f"| algo | {preset['measure']} median [min, max] over seeds {args.seeds} | per seed | "
        "training wall-clock median (s) | frames / wall-clock (s) to reach target, per seed |",
        "|---|---|---|---|---|",
    ]
    for algo, r in results.items():
        per_seed = ", ".join(f"{x['final']:.4g}" for x in r["runs"])
        hits = (
            ", ".join(
                f"{x['frames_to_target']} / {x['wall_s_to_target']:.0f}" if x["frames_to_target"] else "not reached"
                for x in r["runs"]
            )
            if target is not None
            else "n/a"
        )
        rows.append(
            f"| {algo} | {r['median']:.4g} [{r['min']:.4g}, {r['max']:.4g}] | {per_seed} | "
            f"{r['median_wall_s']:.0f} | {hits} |"
        )
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in preset["overrides"].items())
    body = (
        f"{preset['reference']}\n\nConfig on top of each algorithm's defaults: `{overrides}`, "
        f"`experiment.frames={preset['frames']}`. Wall-clock includes evaluations.\n\n" + "\n".join(rows)
    )
    write_section(f"onpolicy_{args.preset}", preset["title"], body, results)


if __name__ == "__main__":
    main()
