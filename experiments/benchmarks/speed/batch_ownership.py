"""Who owns a collected batch? The collector's cost under the two possible contracts, in one run.

* ``reused``: the collector writes every batch into one preallocated buffer and the learner borrows
  it until ``update`` returns (a learner that keeps rows copies them itself);
* ``owned``: the collector stacks every batch into fresh memory that the learner may keep.
* ``reused_plus_copy``: the reused buffer plus a full ``clone()`` of it, what a learner that keeps the
  whole batch pays under the borrowing contract.

VMAS navigation with 3 agents and a shared 64x64 policy, at 1024 and 4096 env copies; the variants
alternate within each repeat and the median frames/s is reported.

    python experiments/benchmarks/speed/batch_ownership.py            # updates docs/benchmarks.md
    python experiments/benchmarks/speed/batch_ownership.py --quick    # smoke run, JSON only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _report import write_section
from tensordict import TensorDictBase

from marlkit import make_env
from marlkit.keys import ACTION, OBS
from marlkit.networks.groups import GroupModule, mlp
from marlkit.training.rollout import RolloutCollector

warnings.filterwarnings("ignore")


def variants(num_envs: int, steps: int) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    policy = GroupModule(lambda: mlp(18, 2, (64, 64)), 3, share_params=True)

    def act(td: TensorDictBase) -> TensorDictBase:
        td["agent"][ACTION] = torch.tanh(policy(td["agent"][OBS]))
        return td

    def collector(reuse: bool) -> RolloutCollector:
        env = make_env("vmas/navigation", num_envs=num_envs, seed=0, n_agents=3, max_steps=100)
        c = RolloutCollector(env, act, steps, reuse_buffer=reuse)
        c.reset()
        return c

    reused, owned, copied = collector(True), collector(False), collector(True)
    kept: list[TensorDictBase] = []

    def reused_plus_copy() -> None:
        batch, _ = copied.collect()
        kept[:] = [batch.clone()]

    return {
        "reused": lambda: reused.collect() and None,
        "owned": lambda: owned.collect() and None,
        "reused_plus_copy": reused_plus_copy,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes = [64] if args.quick else [1024, 4096]
    results: dict[str, dict] = {}
    for n in sizes:
        steps = 10 if args.quick else 50
        fns = variants(n, steps)
        for fn in fns.values():
            fn()
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(1 if args.quick else args.repeats):
            for k, fn in fns.items():
                start = time.perf_counter()
                fn()
                samples[k].append(n * steps / (time.perf_counter() - start))
        fps = {k: round(statistics.median(v)) for k, v in samples.items()}
        results[str(n)] = {
            "steps_per_env": steps,
            **{f"{k}_fps": v for k, v in fps.items()},
            "owned_cost_pct": round(100 * (fps["reused"] / fps["owned"] - 1), 1),
            "copy_cost_pct": round(100 * (fps["reused"] / fps["reused_plus_copy"] - 1), 1),
        }
        print(json.dumps({n: results[str(n)]}))
    if not args.quick:
        rows = ["| num_envs | reused (frames/s) | owned | cost | reused + clone | cost |", "|---|---|---|---|---|---|"]
        for n, r in results.items():
            rows.append(
                f"| {n} | {r['reused_fps']:,} | {r['owned_fps']:,} | {r['owned_cost_pct']}% | "
                f"{r['reused_plus_copy_fps']:,} | {r['copy_cost_pct']}% |"
            )
        body = (
            "Collection of `[num_envs, 50]` batches on VMAS navigation (3 agents, shared 64x64 policy), 2 threads. "
            "*reused*: one preallocated buffer, borrowed by the learner during `update` (marlkit's contract); "
            "*owned*: a fresh batch per collection that the learner may keep; *reused + clone*: the borrowed "
            "batch plus a full copy, the worst case of a learner that keeps everything. Cost = reused fps / "
            "variant fps - 1, medians of the repeats, variants alternating.\n\n" + "\n".join(rows)
        )
        write_section("batch_ownership", "Batch ownership: reused vs owned collection buffers", body, results)


if __name__ == "__main__":
    main()
