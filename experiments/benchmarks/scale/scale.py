"""Many agents: collection frames/s, update time per iteration and peak RSS against the agent count.

MAPPO (central critic, clip updates over all agents at once) and HATRPO (sequential trust-region steps,
one per agent) on vmas/navigation with 3, 16, 50 and 64 agents. The spawn area grows with the agents so
that their density stays that of 16 agents in VMAS's default 2 x 2 square, which VMAS's rejection
sampling places in milliseconds (denser layouts take minutes, or never finish: adapters/vmas.py).
Each configuration runs in its own process (peak RSS is per process): one warm-up iteration, then
``--iterations`` timed ones; a frame is one step of one env copy (all its agents). Then the memory
goal: one iteration at 4096 envs x 16 agents, and at 4096 envs x 64 agents, under an address-space
limit of ``--mem-limit-gib`` (a configuration that needs more fails with MemoryError, and is reported
so, instead of swapping the machine).

    python experiments/benchmarks/scale/scale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DENSITY = 16 / 4.0  # agents per unit area of VMAS's default [-1, 1]^2 spawn square


def env_overrides(n_agents: int) -> dict:
    half_side = max(1.0, math.sqrt(n_agents / DENSITY) / 2)
    return {"env.n_agents": n_agents, "env.world_spawning_x": half_side, "env.world_spawning_y": half_side}


def one(job: dict) -> dict:
    """Runs in a child process: build, collect, update; times and peak RSS."""
    import torch

    warnings.filterwarnings("ignore")
    if job.get("mem_limit_gib"):
        limit = int(job["mem_limit_gib"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from marlkit.adapters import make_env
    from marlkit.algorithms import algorithm
    from marlkit.training.experiment import build_config
    from marlkit.training.rollout import RolloutCollector

    torch.manual_seed(0)
    overrides = {
        **env_overrides(job["agents"]),
        "experiment.num_envs": job["envs"],
        "algo.rollout_steps": job["steps"],
        "env.max_steps": 100,
    }
    config = build_config(job["algo"], "vmas/navigation", overrides)
    out = {**job, "state_dim": None}
    try:
        start = time.perf_counter()
        env = make_env("vmas/navigation", job["envs"], "cpu", 0, **config.env_kwargs)
        out["build_s"] = round(time.perf_counter() - start, 2)
        out["state_dim"] = env.state_dim
        out["obs_dim"] = next(iter(env.groups.values())).obs_dim
        learner = algorithm(job["algo"]).build(config.algo, env, 0)
        collector = RolloutCollector(env, learner.act, job["steps"])
        collector.reset()
        collect_s, update_s = [], []
        for it in range(job["iterations"] + job["warmup"]):
            t0 = time.perf_counter()
            batch, _ = collector.collect()
            t1 = time.perf_counter()
            learner.update(batch)
            t2 = time.perf_counter()
            if it >= job["warmup"]:
                collect_s.append(t1 - t0)
                update_s.append(t2 - t1)
            del batch
        frames = job["envs"] * job["steps"]
        out["collect_fps"] = round(frames / (sum(collect_s) / len(collect_s)), 1)
        out["update_s"] = round(sum(update_s) / len(update_s), 3)
        out["iteration_s"] = round((sum(collect_s) + sum(update_s)) / len(update_s), 3)
        out["status"] = "ok"
    except (MemoryError, RuntimeError) as err:  # torch reports a failed allocation as a RuntimeError
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        out["status"] = f"out of memory under {job.get('mem_limit_gib')} GiB: {str(err).splitlines()[0][-120:]}"
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def run(job: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**job, "status": f"over {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {**job, "status": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes, no docs")
    parser.add_argument("--envs", type=int, default=64, help="env copies of the agent-count table")
    parser.add_argument("--steps", type=int, default=25, help="rollout steps per iteration")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--mem-limit-gib", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))), flush=True)
        return
    envs, steps = (16, 10) if args.quick else (args.envs, args.steps)
    common = {"steps": steps, "iterations": 1 if args.quick else args.iterations, "warmup": 1}
    common["mem_limit_gib"] = args.mem_limit_gib
    table = []
    for algo in ("mappo", "hatrpo"):
        for agents in (3, 16, 50, 64):
            row = run({**common, "algo": algo, "agents": agents, "envs": envs}, args.timeout)
            print(json.dumps(row), flush=True)
            table.append(row)
    big = []
    for agents in (16, 64):
        for algo in ("mappo", "hatrpo"):
            job = {**common, "algo": algo, "agents": agents, "envs": 64 if args.quick else 4096}
            job.update(iterations=1, warmup=0)  # minutes per iteration at 64 agents: the first one is timed
            job["steps"] = 10 if args.quick else 20
            row = run(job, args.timeout)
            print(json.dumps(row), flush=True)
            big.append(row)
    results = {"table": table, "large": big}
    if not args.quick:
        from _report import write_section

        write_section("scale", "Many agents (issue: scale)", report(results), results)


def report(r: dict) -> str:
    def cells(row: dict) -> str:
        if row.get("status") != "ok":
            return f"{row['status']} | | | {row.get('peak_rss_gib', '')}"
        return f"{row['collect_fps']:,.0f} | {row['update_s']} | {row['iteration_s']} | {row['peak_rss_gib']}"

    t0 = r["table"][0]
    lines = [
        f"vmas/navigation, {t0['envs']} env copies x {t0['steps']} steps per iteration, 2 torch threads, each "
        "configuration in its own process; mean of the timed iterations after one warm-up.",
        "",
        "| algorithm | agents | state dim | collection f/s | update s | iteration s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["table"]:
        lines.append(f"| {row['algo']} | {row['agents']} | {row.get('state_dim')} | {cells(row)} |")
    lines += [
        "",
        "Large batches: one timed iteration (no warm-up).",
        "",
        "| algorithm | envs x agents | steps | collection f/s | update s | iteration s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["large"]:
        lines.append(f"| {row['algo']} | {row['envs']} x {row['agents']} | {row['steps']} | {cells(row)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
