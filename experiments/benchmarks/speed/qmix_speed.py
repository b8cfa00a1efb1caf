"""Gradient steps per second of QMIX against IQL and VDN on the same replay rows, and the mixer's cost.

All three learners share agent networks of one shape (shared parameters with an agent id, 64 x 64), the
batch size and the replay rows (LBF Foraging-8x8-2p-2f-coop-v3 by default, team reward summed); they
differ only in the mixer: none (IQL), a sum (VDN), the hypernetwork mixer (QMIX). Interleaved repeats,
medians; one torch thread. Prints JSON and writes docs/benchmarks.md.

    python experiments/benchmarks/speed/qmix_speed.py [--env lbf/Foraging-8x8-2p-2f-coop-v3] [--batch 128]
    python experiments/benchmarks/speed/qmix_speed.py --quick    # smoke run, JSON only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _report import write_section

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.options import with_overrides
from marlkit.training.rollout import RolloutCollector

ALGOS = ("iql", "vdn", "qmix")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="lbf/Foraging-8x8-2p-2f-coop-v3")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per timed block")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 5, 1
    torch.set_num_threads(1)
    env = make_env(args.env, 16, "cpu", 0)
    rows, _ = RolloutCollector(env, env.rand_action, 250).collect()
    learners = {}
    for name in ALGOS:
        spec = algorithm(name)
        cfg = with_overrides(spec.default_config(), {"batch_size": args.batch, "team_reward": "sum"}, "algo")
        learners[name] = spec.build(cfg, env, 0)
        learners[name].store(rows)
    times: dict[str, list[float]] = {name: [] for name in ALGOS}
    for _ in range(args.repeats):
        for name, learner in learners.items():
            learner.gradient_step()  # warm
            start = time.perf_counter()
            for _ in range(args.steps):
                learner.gradient_step()
            times[name].append(args.steps / (time.perf_counter() - start))
    per_second = {name: statistics.median(v) for name, v in times.items()}
    results = {
        "env": args.env,
        "batch": args.batch,
        "grad_steps_per_s": {k: round(v, 1) for k, v in per_second.items()},
        "qmix_over_iql": round(per_second["qmix"] / per_second["iql"], 3),
        # The mixer's share of a QMIX step: VDN's mixer is a sum, so the rest of the step is the same.
        "mixer_share_of_qmix_step": round(1 - per_second["qmix"] / per_second["vdn"], 3),
        "qmix_params": sum(p.numel() for p in learners["qmix"].mixer.parameters()),
    }
    print(json.dumps(results, indent=1))
    if args.quick:
        return
    s = results["grad_steps_per_s"]
    body = (
        f"{args.env}, {env.groups[next(iter(env.groups))].n_agents} agents, batch {args.batch}, one torch thread, "
        f"median of {args.repeats} interleaved blocks of {args.steps} gradient steps (each with its target "
        "computation and optimizer step).\n\n"
        "| IQL steps/s | VDN steps/s | QMIX steps/s | QMIX / IQL | mixer's share of a QMIX step | mixer parameters |\n"
        "|---|---|---|---|---|---|\n"
        f"| {s['iql']} | {s['vdn']} | {s['qmix']} | {results['qmix_over_iql']} | "
        f"{results['mixer_share_of_qmix_step']:.1%} | {results['qmix_params']} |"
    )
    write_section("qmix_speed", "Value-based learners: QMIX vs IQL gradient steps per second", body, results)


if __name__ == "__main__":
    main()
