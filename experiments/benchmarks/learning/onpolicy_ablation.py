"""Reference practice as hypotheses: MAPPO (or ``--algo ippo``) with each HARL/MAPPO/BenchMARL practice
alone, and all of HARL's together, against marlkit's defaults, 5 seeds each, under the statistics protocol (issue 33).

Per task: each variant's final return (mean [95% t-CI]), its difference from the default with the CI of
the difference and a permutation p-value, Holm-corrected over the variants of the task, the probability
of improvement, and the critics' fit at the end (explained variance of their own targets, the mean
over groups of the last ``GROUP/critic_ev`` in metrics.csv). Runs resume (compare skips finished runs).

    python experiments/benchmarks/learning/onpolicy_ablation.py [--tasks vmas/navigation,envs/private_goals]
        [--jobs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _ablation import table, versus_default
from _learning import critic_fit
from _report import write_section

import marlkit
from marlkit.analysis.sweep import HARL_CRITIC_PRACTICE

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "ablation.md"
HARL = {**HARL_CRITIC_PRACTICE, "algo.init_log_std": -1.0}
VARIANTS: dict[str, dict] = {
    "default": {},
    "value_norm": {"algo.value_norm": True},
    "relu": {"algo.activation": "relu"},
    "layer_norm": {"algo.layer_norm": True},
    "orthogonal": {"algo.init": "orthogonal"},
    "huber+value_clip": {"algo.critic_loss": "huber", "algo.value_clip": 0.2},
    "critic_minibatches=4": {"algo.critic_minibatches": 4},
    "init_log_std=-1": {"algo.init_log_std": -1.0},
    "share_actor": {"algo.share_actor": True},
    "256x256": {"algo.hidden": [256, 256]},
    "HARL set": HARL,
    # Second round: the two practices ahead on every task so far together, and HARL's critic practice
    # without its small initial std (the one part of the set that was behind everywhere).
    "share_actor+layer_norm": {"algo.share_actor": True, "algo.layer_norm": True},
    "HARL set std 1": {k: v for k, v in HARL.items() if k != "algo.init_log_std"},
    # Third round (after the BenchMARL side by side, docs/benchmarks/peers.md): more updates per frame, the one
    # difference left between marlkit's MAPPO and BenchMARL's (675 actor and 675 critic steps per 6000 frames;
    # marlkit's defaults take 40 actor and 5 critic steps per 1600). Critic 8x, actor 4x, both.
    "critic_updates_x8": {"algo.critic_epochs": 10, "algo.critic_minibatches": 4},
    "actor_updates_x4": {"algo.actor_epochs": 20, "algo.actor_minibatches": 8},
    "updates_x4_x8": {
        "algo.critic_epochs": 10,
        "algo.critic_minibatches": 4,
        "algo.actor_epochs": 20,
        "algo.actor_minibatches": 8,
    },
}
TASKS = {
    "vmas/navigation": {"frames": 60_000, "env.n_agents": 3, "env.max_steps": 100},
    "envs/private_goals": {
        "frames": 40_000,
        "env.max_steps": 100,
        "experiment.num_envs": 20,
        "experiment.eval_every": 4_000,
    },
    "vmas/balance": {"frames": 60_000, "env.max_steps": 100},
    # Continuous simple_spread as HARL runs it (3 agents, 25-step episodes); 100k frames is what 65 runs
    # afford here (about 45 s each on one core), early in learning: HARL trains for 10M.
    "mpe/simple_spread_v3": {
        "frames": 100_000,
        "env.continuous_actions": True,
        "env.max_cycles": 25,
        "experiment.num_envs": 16,
        "experiment.eval_every": 50_000,
    },
}
SEEDS = [0, 1, 2, 3, 4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="vmas/navigation,envs/private_goals")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: compare's cores / jobs)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "onpolicy_ablation"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, 'default' always included")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="a confirmation round: other seeds")
    parser.add_argument("--algo", default="mappo", help="the on-policy algorithm whose defaults the variants change")
    parser.add_argument("--round", default="", help="a later round on the defaults of its day: its own runs "
                        "(OUT/ROUND, default rerun) and section")  # fmt: skip
    args = parser.parse_args()
    chosen = ["default", *(v for v in args.variants.split(",") if v != "default")]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    seeds = list(args.seeds)
    results: dict[str, dict] = {}
    threads = {"experiment.torch_threads": args.threads} if args.threads else {}
    for task in args.tasks.split(","):
        settings = dict(TASKS[task])
        frames = settings.pop("frames")
        finals, fits = {}, {}
        for name in chosen:
            overrides = VARIANTS[name]
            label = name.replace("=", "_").replace("+", "_").replace(" ", "_")
            out = Path(args.out) / args.round / task.replace("/", "-") / label
            run = marlkit.compare([args.algo], [task], seeds, frames=frames, out=out, jobs=args.jobs, progress=False,
                                  **{"experiment.tensorboard": False, **threads, **settings, **overrides})  # fmt: skip
            assert run.report is not None and not run.failed, run.failed
            # The report covers every run under OUT, other rounds' seeds included: read this round's seeds.
            dirs = [out / task.replace("/", "-") / args.algo / f"seed{s}" for s in seeds]
            finals[name] = np.array([json.loads((d / "summary.json").read_text())["final_eval_return_mean"]
                                     for d in dirs])  # fmt: skip
            fits[name] = float(np.mean([critic_fit(d) for d in dirs]))
        pairs = versus_default(finals)
        results[task] = {
            "frames": frames,
            "settings": settings,
            "finals": {k: v.tolist() for k, v in finals.items()},
            "critic_ev": fits,
            "vs_default": pairs,
        }
        print(json.dumps({task: results[task]}), flush=True)
    algo_name = args.algo.upper()
    seed_text = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)
    lines = []
    for task, r in results.items():
        lines += [
            f"### {task} ({algo_name}, {r['frames']} frames, {json.dumps(r['settings'])}, seeds {seed_text})",
            "",
        ]
        finals = {name: np.array(r["finals"][name]) for name in chosen}
        fit = {name: f"{r['critic_ev'][name]:.2f}" for name in chosen}
        lines += [*table(finals, r["vs_default"], {"critic EV": fit}), ""]
    body = (
        f"Each variant changes marlkit's {algo_name} defaults as named (HARL set: "
        f"`{json.dumps(HARL)}`); {len(seeds)} seeds each; final = last deterministic evaluation. p: permutation test "
        f"of the variant against the default, Holm over the task's {len(chosen) - 1} variants. Critic EV: "
        "explained variance of the critics' own value targets after the last update, mean over seeds and "
        "groups.\n\n" + "\n".join(lines)
    )
    confirm = seeds != SEEDS  # a confirmation round on other seeds gets its own section
    key = (
        "onpolicy_ablation_"
        + ("" if args.algo == "mappo" else f"{args.algo}_")
        + "_".join(t.replace("/", "-") for t in results)
    )
    key += f"_seeds{seed_text}" if confirm else ""
    key += f"_{args.round}" if args.round else ""
    heading = (
        f"{algo_name} ablation, confirmation on seeds {seed_text}: "
        if confirm
        else f"{algo_name} ablation of reference "
    )
    heading += "" if confirm else "practice: "
    heading += f"round '{args.round}' on the defaults of {date.today()}: " if args.round else ""
    title = heading + ", ".join(results)
    write_section(key, title, body, results, doc=DOC)


if __name__ == "__main__":
    main()
