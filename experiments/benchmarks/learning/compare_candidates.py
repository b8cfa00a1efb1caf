"""Candidate tasks for the default `marlkit compare`: does any one tell ITRPO, MATRPO and HATRPO apart?

Each candidate is run as the default comparison runs (``marlkit.analysis.sweep.compare``: the three algorithms,
seeds 0-2, the default overrides, two runs at a time on 2 cores) at a budget meant to fit about
5 minutes, and timed. Per candidate and algorithm: the mean final evaluation return and its 95%
bootstrap CI (the report's numbers), the report's significance sentence, and the separation: the
largest gap between two algorithms' means over the mean CI width (>= 1 with disjoint CIs is what
issue 18 asks for). Results are cached in ``runs/bench/candidates/<name>/result.json``; wall-clock is
only meaningful when nothing else ran (the load average at the start is recorded beside it).

    python experiments/benchmarks/learning/compare_candidates.py                 # every candidate
    python experiments/benchmarks/learning/compare_candidates.py --only private_goals_progress
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _report import write_section

from marlkit.analysis.results import load_runs
from marlkit.analysis.stats import bootstrap_ci
from marlkit.analysis.stats import verdict as significance
from marlkit.analysis.sweep import DEFAULT_ALGOS, DEFAULT_SEEDS, compare

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "runs" / "bench" / "candidates"
# What every candidate shares (the default comparison's settings before and after issue 18).
VMAS = {
    "env.max_steps": 100,
    "experiment.num_envs": 20,
    "experiment.eval_every": 12_000,
    "algo.trust_region.max_kl": 0.02,
}

CANDIDATES: dict[str, dict] = {
    "navigation": {
        "env": "vmas/navigation",
        "frames": 120_000,
        "overrides": {**VMAS, "env.n_agents": 3},
        "why": "the default until issue 18: each agent has its own goal and sees the others by lidar; shaped reward",
    },
    "balance": {
        "env": "vmas/balance",
        "frames": 120_000,
        "overrides": VMAS,
        "why": "agents carry one package on a shared line: each agent's return depends on the others' pushes",
    },
    "give_way": {
        "env": "vmas/give_way",
        "frames": 120_000,
        "overrides": VMAS,
        "why": "two agents must pass each other in a corridor: one has to yield (conflicting best responses)",
    },
    "private_goals_progress": {
        "env": "envs/private_goals",
        "frames": 40_000,
        "overrides": {**VMAS, "experiment.eval_every": 4_000, "env.reward": "progress"},
        "why": "agent i sees only its own goal; 3/4 of the shared reward is the others' (textbook case for V(s))",
    },
    "private_goals_distance": {
        "env": "envs/private_goals",
        "frames": 40_000,
        "overrides": {**VMAS, "experiment.eval_every": 4_000, "env.reward": "distance"},
        "why": "as above, with the others' distances (not their progress) in the reward: V(o_i) cannot predict "
        "most of its target",
    },
    "joint_sum": {
        "env": "envs/joint_sum",
        "frames": 40_000,
        "overrides": {**VMAS, "experiment.eval_every": 4_000, "algo.rollout_steps": 50},
        "why": "4 agents' actions add up to hit a target: simultaneous full trust-region steps overshoot by about "
        "4x, HATRPO's factor M lets later agents see the earlier ones' steps",
    },
}


def run_candidate(name: str, spec: dict, jobs: int | None) -> dict:
    out = OUT / name
    cached = out / "result.json"
    if cached.exists():
        return json.loads(cached.read_text())
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    compare(
        DEFAULT_ALGOS,
        [spec["env"]],
        DEFAULT_SEEDS,
        out,
        spec["frames"],
        dict(spec["overrides"]),
        jobs=jobs,
        progress=False,
    )
    wall = time.perf_counter() - start
    finals: dict[str, np.ndarray] = {}
    for run in load_runs(out):
        finals.setdefault(run.algo, np.array([]))
        finals[run.algo] = np.append(finals[run.algo], run.final)
    cis = {a: bootstrap_ci(x) for a, x in finals.items()}
    means = {a: float(x.mean()) for a, x in finals.items()}
    width = float(np.mean([hi - lo for lo, hi in cis.values()]))
    result = {
        "env": spec["env"],
        "frames": spec["frames"],
        "overrides": spec["overrides"],
        "wall_s": round(wall, 1),
        "jobs": jobs or os.cpu_count(),
        "loadavg_at_start": round(load, 2),
        "algos": {a: {"finals": finals[a].tolist(), "mean": means[a], "ci": cis[a]} for a in finals},
        "separation": (max(means.values()) - min(means.values())) / width if width > 0 else float("inf"),
        "significance": significance(finals),
    }
    cached.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES))
    parser.add_argument("--jobs", type=int, help="runs at a time (default: one per core, as compare does)")
    args = parser.parse_args()
    results = {}
    for name in args.only or CANDIDATES:
        results[name] = run_candidate(name, CANDIDATES[name], args.jobs)
        print(json.dumps({name: results[name]}), flush=True)
    # The docs table lists every candidate measured so far, not only this invocation's.
    measured = {
        n: json.loads((OUT / n / "result.json").read_text()) for n in CANDIDATES if (OUT / n / "result.json").exists()
    }
    rows = [
        "| candidate | env, frames | why a difference is expected | ITRPO | MATRPO | HATRPO | separation | "
        "compare wall-clock (load at start) | significance sentence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in measured.items():
        cells = [
            f"{r['algos'][a]['mean']:.4g} [{r['algos'][a]['ci'][0]:.4g}, {r['algos'][a]['ci'][1]:.4g}]"
            for a in DEFAULT_ALGOS
        ]
        rows.append(
            f"| {name} | {r['env']}, {r['frames']} | {CANDIDATES[name]['why']} | {' | '.join(cells)} | "
            f"{r['separation']:.2f} | {r['wall_s']:.0f} s, {r['jobs']} at a time ({r['loadavg_at_start']}) | "
            f"{r['significance']} |"
        )
    body = (
        "Each candidate run as the default comparison runs it (3 algorithms x seeds 0-2, two runs at a time); "
        "final evaluation return, mean [95% bootstrap CI] over seeds. Separation = largest gap between two "
        "algorithms' means / mean CI width.\n\n" + "\n".join(rows)
    )
    write_section("compare_candidates", "Candidate tasks for the default comparison", body, measured)


if __name__ == "__main__":
    main()
