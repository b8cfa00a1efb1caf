"""EPyMARL's practice as hypotheses for QMIX on LBF, RWARE and MPE (issue 30): each option alone and together
against marlkit's defaults, 5 seeds each, under the statistics protocol; and team-reward IQL against IQL on
each agent's own reward.

The options (each tested in tests/test_qlearning.py):

* ``state_norm``: the mixer's state through a running mean/std normalizer (LBF's raw state holds grid
  coordinates up to 7, and QMIX's Q_tot drifts on it);
* ``reward_norm``: rewards divided by their running std; ``+center``: their running mean subtracted first,
  as EPyMARL's ``standardise_rewards``;
* ``time_limit_terminal``: no bootstrap at the time limit, as EPyMARL's gym wrapper;
* ``batch_x4``: 512 sampled transitions per gradient step, so 32 per env frame, EPyMARL's replay ratio (32
  whole episodes per episode collected); marlkit's default is 8 (128 every 16 frames);
* ``EPyMARL set``: the last three together; ``EPyMARL set+state_norm``: and the mixer's normalizer.

QMIX and VDN train on the team reward in both frameworks (``env.team_reward``: every agent gets the sum, as
EPyMARL's common reward); IQL's pair is the same switch. Measure: the team return (the sum of the agents'
rewards, LBF's 1.0 when all food is eaten) at the last greedy evaluation. p: permutation test against the
group's default, Holm over the group's variants. Runs resume (compare skips finished runs); one torch thread
per run, two at a time.

    python experiments/benchmarks/learning/qlearning_ablation.py [--tasks lbf/Foraging-8x8-2p-2f-coop-v3]
        [--groups qmix,iql] [--variants state_norm,batch_x4] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _ablation import table, versus_default
from _report import write_section

import marlkit

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "ablation.md"
EPYMARL_SET = {"algo.reward_norm": True, "algo.reward_center": True, "algo.time_limit_terminal": True,
               "algo.batch_size": 512}  # fmt: skip
# Per group: the algorithm and its variants (the first is the group's baseline). QMIX's variants all train on
# the team reward; IQL's pair is that switch.
TEAM = {"env.team_reward": True}
GROUPS: dict[str, tuple[str, dict[str, dict]]] = {
    "qmix": ("qmix", {name: {**TEAM, **options} for name, options in {
        "default": {},
        "state_norm": {"algo.state_norm": True},
        "reward_norm": {"algo.reward_norm": True},
        "reward_norm+center": {"algo.reward_norm": True, "algo.reward_center": True},
        "time_limit_terminal": {"algo.time_limit_terminal": True},
        "batch_x4": {"algo.batch_size": 512},
        "EPyMARL set": EPYMARL_SET,
        "EPyMARL set+state_norm": {**EPYMARL_SET, "algo.state_norm": True},
    }.items()}),
    "iql": ("iql", {"default": {"env.team_reward": False}, "team_reward": TEAM}),
}  # fmt: skip
TASKS = {
    # EPyMARL's LBF task; 500k steps is the side by side's budget (docs/benchmarks/peers.md).
    "lbf/Foraging-8x8-2p-2f-coop-v3": {"frames": 500_000, "experiment.eval_every": 50_000,
                                       "experiment.eval_episodes": 32},
    # EPyMARL's MPE benchmark task (25-step episodes, discrete actions), where QMIX learns with marlkit's
    # defaults: does the normalized state cost anything where the raw one already works?
    "mpe/simple_spread_v3": {"frames": 200_000, "experiment.eval_every": 25_000, "experiment.eval_episodes": 32},
    # 500-step episodes: a 500k run takes about 16 minutes here, so 200k.
    "rware/rware-tiny-2ag-v2": {"frames": 200_000, "experiment.eval_every": 25_000, "experiment.eval_episodes": 16},
}  # fmt: skip
SEEDS = [0, 1, 2, 3, 4]


def team_return(summary: dict, team_reward: bool) -> float:
    """The sum of the agents' own rewards: with ``env.team_reward`` every agent's return already is it."""
    return summary["final_eval_return_mean"] if team_reward else summary["final_eval_return_team"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="lbf/Foraging-8x8-2p-2f-coop-v3")
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--variants", default="", help="comma-separated (default: all); baselines always run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "qlearning_ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    args = parser.parse_args()
    wanted = set(args.variants.split(",")) - {""}
    known = {v for _, variants in GROUPS.values() for v in variants}
    if wanted - known:
        raise SystemExit(f"unknown variants {sorted(wanted - known)}; valid: {', '.join(sorted(known))}")
    results: dict[str, dict] = {}
    lines: list[str] = []
    for task in args.tasks.split(","):
        settings = dict(TASKS[task])
        frames = settings.pop("frames")
        for group in args.groups.split(","):
            algo, variants = GROUPS[group]
            chosen = [v for i, v in enumerate(variants) if i == 0 or not wanted or v in wanted]
            finals, walls = {}, {}
            for name in chosen:
                overrides = variants[name]
                label = name.replace("+", "_").replace(" ", "_")
                out = Path(args.out) / task.replace("/", "-") / group / label
                options = {"experiment.tensorboard": False, "experiment.torch_threads": 1, **settings, **overrides}
                run = marlkit.compare([algo], [task], args.seeds, frames=frames, out=out, jobs=args.jobs,
                                      progress=False, **options)  # fmt: skip
                assert not run.failed, run.failed
                runs = [out / task.replace("/", "-") / algo / f"seed{s}" for s in args.seeds]
                summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
                finals[name] = np.array([team_return(s, overrides["env.team_reward"]) for s in summaries])
                walls[name] = f"{np.median([s['wall_s'] for s in summaries]):.0f}"
            pairs = versus_default(finals)
            results[f"{task} {group}"] = {"frames": frames, "settings": settings, "algo": algo,
                                          "finals": {k: v.tolist() for k, v in finals.items()}, "vs_default": pairs,
                                          "overrides": {k: variants[k] for k in chosen}}  # fmt: skip
            print(json.dumps({task: results[f"{task} {group}"]}), flush=True)
            lines += [f"### {task}: {algo.upper()} ({frames} frames, {json.dumps(settings)}, seeds {args.seeds})", "",
                      *table(finals, pairs, {"wall-clock median (s)": walls}), ""]  # fmt: skip
    body = (
        "Each variant changes marlkit's defaults as named (QMIX: every variant on the team reward; the EPyMARL "
        f"set: `{json.dumps(EPYMARL_SET)}`); final = the team return at the last greedy evaluation. p: permutation "
        "test against the group's default, Holm over the group's variants.\n\n" + "\n".join(lines)
    )
    # One section per task set, and per group set beyond QMIX's (so that an IQL run keeps QMIX's section).
    key = "qlearning_ablation_" + "_".join(t.split("/")[0] for t in args.tasks.split(","))
    key += "".join(f"_{g}" for g in args.groups.split(",") if g != "qmix")
    title = "QMIX ablation of EPyMARL's practice, and team-reward IQL: " + args.tasks
    write_section(key, title, body, results, doc=DOC)


if __name__ == "__main__":
    main()
