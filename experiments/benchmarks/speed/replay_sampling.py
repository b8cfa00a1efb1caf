"""Replay sampling cost: marlkit's ring buffer against TorchRL's TensorDictReplayBuffer
(LazyTensorStorage + RandomSampler) and against a floor of plain tensor indexing, on the same rows.

Rows are joint transitions of vmas/navigation with 3 agents (every key the off-policy learners store).
Interleaved repeats, medians; prints JSON and writes docs/benchmarks.md.

    python experiments/benchmarks/speed/replay_sampling.py [--rows 100000] [--repeats 7]

TorchRL is not a marlkit dependency: `pip install -e ".[bench]"` first.
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
from torchrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer

from marlkit.adapters import make_env
from marlkit.blocks.replay import ReplayBuffer
from marlkit.training.rollout import RolloutCollector


def rows_of_navigation(n_rows: int) -> torch.Tensor:
    env = make_env("vmas/navigation", 1000, "cpu", 0, n_agents=3, max_steps=100)
    collector = RolloutCollector(env, env.rand_action, n_rows // 1000, reuse_buffer=False)
    batch, _ = collector.collect()
    return batch.reshape(-1)


def timed(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    rows = rows_of_navigation(args.rows)
    ours = ReplayBuffer(args.rows, seed=0)
    ours.extend(rows)
    torchrl = TensorDictReplayBuffer(storage=LazyTensorStorage(args.rows), sampler=RandomSampler())
    torchrl.extend(rows)
    leaves = {k: rows.get(k) for k in rows.keys(include_nested=True, leaves_only=True)}
    results = {}
    for batch in (256, 1024):

        def floor(batch: int = batch) -> None:
            index = torch.randint(args.rows, (batch,))
            for v in leaves.values():
                v[index]

        candidates = {
            "plain indexing (floor)": floor,
            "marlkit ReplayBuffer": lambda batch=batch: ours.sample(batch),
            "TorchRL TensorDictReplayBuffer": lambda batch=batch: torchrl.sample(batch),
        }
        times: dict[str, list[float]] = {k: [] for k in candidates}
        for _ in range(args.repeats):
            for name, fn in candidates.items():
                fn()
                times[name].append(timed(fn, args.calls))
        med = {k: statistics.median(v) for k, v in times.items()}
        results[f"batch_{batch}"] = {
            "us_per_sample_call": {k: round(v, 1) for k, v in med.items()},
            "marlkit_over_floor": round(med["marlkit ReplayBuffer"] / med["plain indexing (floor)"], 2),
            "torchrl_over_marlkit": round(med["TorchRL TensorDictReplayBuffer"] / med["marlkit ReplayBuffer"], 2),
        }
    print(json.dumps(results, indent=1))
    lines = [
        "| batch | plain indexing (us) | marlkit (us) | TorchRL (us) | marlkit / floor | TorchRL / marlkit |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        t = r["us_per_sample_call"]
        lines.append(
            f"| {key.split('_')[1]} | {t['plain indexing (floor)']} | {t['marlkit ReplayBuffer']} | "
            f"{t['TorchRL TensorDictReplayBuffer']} | {r['marlkit_over_floor']} | {r['torchrl_over_marlkit']} |"
        )
    body = (
        f"{args.rows} joint transitions of vmas/navigation (3 agents, {len(leaves)} tensors per row), uniform sampling "
        "with replacement, median of interleaved repeats.\n\n" + "\n".join(lines)
    )
    write_section("replay_sampling", "Replay sampling: marlkit ring buffer vs TorchRL", body, results)


if __name__ == "__main__":
    main()
