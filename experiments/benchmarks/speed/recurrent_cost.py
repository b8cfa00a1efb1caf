"""What a GRU actor costs: collection frames/s and HATRPO update time, GRU against MLP, in one run.

Collection: ``RolloutCollector`` with the learner's ``act`` on VMAS navigation (``--envs`` copies,
``--agents`` agents, separate actor parameters), the same env object for both models; the GRU policy
is a 64-unit encoder and a 64-unit GRU, the MLP policy 64 x 64. Update: one HATRPO ``update`` on
the same collected batch shape for both (rollout ``--steps`` per copy; the GRU replays chunks of
``--chunk``). Interleaved repeats, medians; the ratio GRU / MLP is the number to read (target for
collection: >= 0.6x the MLP's frames/s, issue 15).

    python experiments/benchmarks/speed/recurrent_cost.py [--envs 1024] [--agents 3] [--threads 2]
    python experiments/benchmarks/speed/recurrent_cost.py --quick    # smoke run, JSON only
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
from marlkit.core.checkpoint import seed_everything
from marlkit.core.options import with_overrides
from marlkit.training.rollout import RolloutCollector

MODELS = {
    "mlp": {"network": "mlp", "hidden": (64, 64)},
    "gru": {"network": "gru", "hidden": (64,), "gru_hidden": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=1024)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="rollout steps per env copy")
    parser.add_argument("--chunk", type=int, default=25, help="GRU training chunk length")
    parser.add_argument("--update-envs", type=int, default=128, help="env copies in the update's batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.envs, args.steps, args.chunk, args.update_envs, args.repeats = 32, 10, 5, 16, 1
    torch.set_num_threads(args.threads)
    seed_everything(0)
    spec = algorithm("hatrpo")

    def learner(env, model: str, steps: int):
        cfg = with_overrides(spec.config(), {**spec.preset, **MODELS[model], "rollout_steps": steps,
                                             "chunk_len": args.chunk if model == "gru" else 0})  # fmt: skip
        return spec.build(cfg, env, 0)

    env = make_env("vmas/navigation", args.envs, "cpu", 0, n_agents=args.agents, max_steps=100)
    collectors = {m: RolloutCollector(env, learner(env, m, args.steps).act, args.steps) for m in MODELS}
    update_env = make_env("vmas/navigation", args.update_envs, "cpu", 0, n_agents=args.agents, max_steps=100)
    updaters = {m: learner(update_env, m, args.steps) for m in MODELS}
    batches = {m: RolloutCollector(update_env, u.act, args.steps, reuse_buffer=False).collect()[0]
               for m, u in updaters.items()}  # fmt: skip
    fps: dict[str, list[float]] = {m: [] for m in MODELS}
    update_s: dict[str, list[float]] = {m: [] for m in MODELS}
    for m in MODELS:  # warm
        collectors[m].collect()
    for _ in range(args.repeats):
        for m in MODELS:
            start = time.perf_counter()
            collectors[m].collect()
            fps[m].append(args.envs * args.steps / (time.perf_counter() - start))
            start = time.perf_counter()
            updaters[m].update(batches[m])
            update_s[m].append(time.perf_counter() - start)
    result = {
        "config": {k: v for k, v in vars(args).items() if k != "quick"},
        "collection_fps": {m: statistics.median(v) for m, v in fps.items()},
        "update_s": {m: statistics.median(v) for m, v in update_s.items()},
    }
    result["collection_ratio_gru_over_mlp"] = result["collection_fps"]["gru"] / result["collection_fps"]["mlp"]
    result["update_ratio_gru_over_mlp"] = result["update_s"]["gru"] / result["update_s"]["mlp"]
    print(json.dumps(result, indent=1))
    if args.quick:
        return
    c, u = result["collection_fps"], result["update_s"]
    body = (
        f"VMAS navigation, {args.agents} agents with separate actor parameters, {args.envs} env copies, "
        f"{args.threads} torch threads. GRU actor: a 64-unit encoder and a 64-unit GRU; MLP actor: 64 x 64. "
        "Medians of interleaved repeats.\n\n"
        "| | MLP | GRU | GRU / MLP |\n|---|---|---|---|\n"
        f"| collection, frames/s | {c['mlp']:.0f} | {c['gru']:.0f} | {result['collection_ratio_gru_over_mlp']:.2f} "
        "(target >= 0.6) |\n"
        f"| HATRPO update ({args.update_envs} copies x {args.steps} steps, GRU chunks of {args.chunk}), s | "
        f"{u['mlp']:.2f} | {u['gru']:.2f} | {result['update_ratio_gru_over_mlp']:.2f} |\n\n"
        "The GRU's update replays each chunk step by step (the recurrence is a loop over time; env copies "
        "and agents stay batched), through the surrogate, the KL, every Fisher-vector product of conjugate "
        "gradient and every line-search candidate."
    )
    write_section("recurrent_cost", "GRU against MLP actors: collection throughput and HATRPO update time", body,
                  result)  # fmt: skip


if __name__ == "__main__":
    main()
