"""Model-rollout throughput: model transitions per second of a 7-member ensemble (4 x 200 SiLU, the
PETS/MBPO default) on 100k (and 2k) particles, each bound to one of 5 elites, against the same ensemble run
as a Python loop over members (one ``nn.Sequential`` per member with the same weights, each on its
own particles). Interleaved repeats, medians; prints JSON and writes docs/benchmarks.md.

    python experiments/benchmarks/model_rollout_throughput.py [--particles 100000 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))

import torch
from _report import write_section
from torch import nn

from marlkit.world_model import EnsembleWorldModel, WorldModelConfig

STATE_DIM, ACTION_DIM = 3, 1  # gym/Pendulum-v1


def member_loop(model: EnsembleWorldModel) -> list[nn.Sequential]:
    """The ensemble as separate networks with identical weights (the reference)."""
    nets = []
    for e in range(model.cfg.ensemble_size):
        layers: list[nn.Module] = []
        for i, layer in enumerate(model.net.layers):
            linear = nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
            with torch.no_grad():
                linear.weight.copy_(layer.weight[e].T)
                linear.bias.copy_(layer.bias[e, 0])
            layers.append(linear)
            if i < len(model.net.layers) - 1:
                layers.append(nn.SiLU())
        nets.append(nn.Sequential(*layers))
    return nets


def measure(model: EnsembleWorldModel, nets: list[nn.Sequential], particles: int, repeats: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    state = torch.randn(particles, STATE_DIM, generator=g)
    action = torch.rand(particles, ACTION_DIM, generator=g) * 2 - 1
    members = model.elite_idx[torch.randint(len(model.elite_idx), (particles,), generator=g)]
    x = model.normalize_input(state, action)
    groups = [(int(e), (members == e).nonzero().squeeze(1)) for e in model.elite_idx]

    @torch.no_grad()
    def batched() -> None:
        model.predict(state, action, members, sample=True, disagreement=False)

    @torch.no_grad()
    def looped() -> None:
        out = torch.empty(particles, model.out_dim * 2)
        for e, idx in groups:
            out[idx] = nets[e](x[idx])

    # Same numbers: the batched means equal the per-member networks' outputs.
    with torch.no_grad():
        means = model(x[groups[0][1]].unsqueeze(0), model.elite_idx[:1]).mean
        reference = nets[groups[0][0]](x[groups[0][1]])[:, : model.out_dim]
        assert torch.allclose(means[0], reference, atol=1e-4)
    calls = max(3, 300_000 // particles)
    times: dict[str, list[float]] = {"batched": [], "loop": []}
    for _ in range(repeats):
        for name, fn in (("batched", batched), ("loop", looped)):
            fn()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "particles": particles,
        "batched_transitions_per_s": round(particles / med["batched"]),
        "loop_transitions_per_s": round(particles / med["loop"]),
        "speedup": round(med["loop"] / med["batched"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--particles", type=int, nargs="+", default=[100_000, 2_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = EnsembleWorldModel(STATE_DIM, ACTION_DIM, WorldModelConfig(), seed=0)
    nets = member_loop(model)
    rows = [measure(model, nets, n, args.repeats) for n in args.particles]
    results = {
        "ensemble_size": model.cfg.ensemble_size,
        "elites": model.cfg.elites,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    print(json.dumps(results, indent=1))
    table = "\n".join(
        f"| {r['particles']:,} | {r['batched_transitions_per_s']:,} | "
        f"{r['loop_transitions_per_s']:,} | {r['speedup']}x |"
        for r in rows
    )
    body = (
        f"Particles, each bound to one of {model.cfg.elites} elites of a {model.cfg.ensemble_size}-member "
        f"ensemble (4 x 200 SiLU, Pendulum-sized inputs), one model step with aleatoric sampling and without "
        f"the disagreement term, {results['threads']} torch threads. The batched path sorts particles by member "
        "into one `[elites, n, in]` batch and runs one batched product per layer over row blocks of at most 8 MB "
        "(it includes normalization, sampling and the scatter back); the reference loops over members with one "
        "`nn.Sequential` each on its own particles (network only).\n\n"
        "| particles | marlkit batched ensemble (transitions/s) | Python loop over members | speedup |\n"
        "|---|---|---|---|\n" + table + "\n\n"
        "At 100k particles both paths are bound by the same matrix products, so parity is the ceiling on CPU. "
        "Three fixes got the batched path there from 0.44x (measured 2026-11-21 before them): row blocks "
        "instead of one 80 MB activation per layer (allocations past glibc's mmap threshold page-fault every "
        "time: 86 ms against 53 ms for the same bmm into a reused buffer); bmm plus an in-place bias add and "
        "activation instead of `baddbmm` (15%); and splitting each member's rows so that the batch count "
        "divides the thread count (5 members on 2 threads left one thread idle: 480 against 410 ns a row). "
        "At planning-call sizes the loop's per-member Python and dispatch cost shows."
    )
    write_section("model_rollout_throughput", "Model-rollout throughput (issue: model-based)", body, results)


if __name__ == "__main__":
    main()
