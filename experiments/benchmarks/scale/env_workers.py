"""CPU-simulator copies in worker processes against the in-process path, in one run.

Collection frames/s (a frame is one step of one env copy) with MAPPO's policy acting in the parent, as
in training, for MPE simple_spread_v3 and MaMuJoCo HalfCheetah-2x3 at 16 and 64 copies: in-process,
1 worker and 2 workers. The variants alternate ``--repeats`` times and the median is reported. A
breakdown per step: the policy's time in the parent, the simulator's time (in-process block step), and
the overhead a worker adds (a step with one worker, beyond half the simulator's time plus the
in-process packing). Then two short MAPPO
trainings on HalfCheetah-2x3 (64 copies) with ``experiment.env_workers`` 0, 1 and 2: wall-clock, and whether their
``metrics.csv`` are byte-identical.

    python experiments/benchmarks/scale/env_workers.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from _report import write_section

from marlkit import make_env
from marlkit.algorithms import algorithm
from marlkit.training.experiment import Experiment, build_config
from marlkit.training.rollout import RolloutCollector

warnings.filterwarnings("ignore")
TASKS = {"mpe/simple_spread_v3": {}, "mamujoco/HalfCheetah-2x3": {}}
STEPS = 50  # per collection


def variants(name: str, copies: int) -> dict[str, dict]:
    out = {}
    for workers in (0, 1, 2):
        env = make_env(name, copies, seed=0, workers=workers, **TASKS[name])
        spec = algorithm("mappo")
        learner = spec.build(build_config("mappo", name, {}).algo, env, 0)
        collector = RolloutCollector(env, learner.act, STEPS)
        collector.reset()
        key = f"{workers} workers" if workers else "in-process"
        out[key] = {"env": env, "learner": learner, "collector": collector}
    return out


def collection_fps(v: dict) -> float:
    start = time.perf_counter()
    v["collector"].collect()
    return STEPS * v["env"].num_envs / (time.perf_counter() - start)


def breakdown(vs: dict[str, dict], steps: int = 100) -> dict[str, float]:
    """Milliseconds per step of all copies: policy (parent), simulator, and what one worker adds."""
    ref = vs["in-process"]
    env, learner = ref["env"], ref["learner"]
    td = env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        td = learner.act(td)
    policy = (time.perf_counter() - start) / steps
    actions = {g: td[g]["action"].numpy() for g in env.groups}
    block = env._copies
    start = time.perf_counter()
    for _ in range(steps):
        block.step(actions)
    sim = (time.perf_counter() - start) / steps
    step_ms = {}
    for key, v in vs.items():
        e = v["env"]
        t = e.reset()
        t = learner.act(t)
        start = time.perf_counter()
        for _ in range(steps):
            e.step(t)
        step_ms[key] = (time.perf_counter() - start) / steps * 1e3
    return {
        "policy_ms": round(policy * 1e3, 3),
        "simulator_ms": round(sim * 1e3, 3),
        "simulator_us_per_copy": round(sim * 1e6 / env.num_envs, 1),
        **{f"env_step_ms_{k.replace(' ', '_')}": round(ms, 3) for k, ms in step_ms.items()},
        # One worker halves the simulator's work between it and the parent; what a step takes beyond that
        # ideal split (and beyond the in-process packing) is the cost of going through a worker.
        "worker_overhead_ms": round(step_ms["1 workers"] - sim * 1e3 / 2 - (step_ms["in-process"] - sim * 1e3), 3),
    }


def training(frames: int) -> dict:
    out: dict = {"frames": frames}
    csv = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            overrides = {
                "experiment.frames": frames,
                "experiment.num_envs": 64,
                "experiment.eval_every": 0,
                "experiment.eval_episodes": 2,
                "experiment.eval_max_steps": 200,
                "experiment.progress": False,
                "experiment.tensorboard": False,
                "experiment.env_workers": workers,
            }
            config = build_config("mappo", "mamujoco/HalfCheetah-2x3", overrides)
            summary = Experiment(config, Path(tmp) / str(workers)).run()
            csv[workers] = (Path(tmp) / str(workers) / "metrics.csv").read_bytes()
            out[f"wall_s_{workers}_workers"] = summary["wall_s"]
    for workers in (1, 2):
        out[f"speedup_{workers}_workers"] = round(out["wall_s_0_workers"] / out[f"wall_s_{workers}_workers"], 2)
    out["metrics_identical"] = csv[0] == csv[1] == csv[2]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-frames", type=int, default=64_000)
    parser.add_argument("--quick", action="store_true", help="one repeat, short training, no docs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the parent (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    results: dict = {"threads": torch.get_num_threads(), "steps_per_collection": STEPS, "collection": []}
    for name in TASKS:
        for copies in (16, 64):
            vs = variants(name, copies)
            samples: dict[str, list[float]] = {k: [] for k in vs}
            for v in vs.values():
                collection_fps(v)  # warm-up: first episodes, allocator
            for _ in range(repeats):
                for key, v in vs.items():
                    samples[key].append(collection_fps(v))
            fps = {k: round(statistics.median(s), 1) for k, s in samples.items()}
            row = {"task": name, "copies": copies, "fps": fps, **breakdown(vs)}
            row["ratio_2_workers"] = round(fps["2 workers"] / fps["in-process"], 2)
            row["ratio_1_worker"] = round(fps["1 workers"] / fps["in-process"], 2)
            results["collection"].append(row)
            print(json.dumps(row), flush=True)
            for v in vs.values():
                v["env"].close()
    results["training"] = training(4_000 if args.quick else args.train_frames)
    print(json.dumps(results, indent=1))
    if not args.quick:
        write_section("env_workers", "Env worker processes (issue: scale)", report(results), results)


def report(r: dict) -> str:
    lines = [
        f"Collection with MAPPO's policy acting in the parent ({r['threads']} torch threads), "
        f"{r['steps_per_collection']} steps per collection, median of the repeats; in-process against "
        "`make_env(..., workers=N)`: N worker processes (Gymnasium's AsyncVectorEnv, shared memory) step N "
        "slices while the parent steps one more. ms are per step of all copies; the worker overhead is what a "
        "step with 1 worker takes beyond half the simulator's time plus the in-process packing.",
        "",
        "| task | copies | in-process f/s | 1 worker f/s | 2 workers f/s | 1 worker / in-process "
        "| 2 workers / in-process | policy ms | simulator ms (us/copy) | worker overhead ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["collection"]:
        f = row["fps"]
        lines.append(
            f"| {row['task']} | {row['copies']} | {f['in-process']:,.0f} | {f['1 workers']:,.0f} | "
            f"{f['2 workers']:,.0f} | {row['ratio_1_worker']}x | {row['ratio_2_workers']}x | {row['policy_ms']} | "
            f"{row['simulator_ms']} ({row['simulator_us_per_copy']}) | {row['worker_overhead_ms']} |"
        )
    t = r["training"]
    lines += [
        "",
        f"Training (MAPPO, HalfCheetah-2x3, 64 copies, {t['frames']:,} frames): {t['wall_s_0_workers']} s "
        f"in-process, {t['wall_s_1_workers']} s with 1 worker ({t['speedup_1_workers']}x), "
        f"{t['wall_s_2_workers']} s with 2 workers ({t['speedup_2_workers']}x); metrics.csv byte-identical: "
        f"{t['metrics_identical']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
