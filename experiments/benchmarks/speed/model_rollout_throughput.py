"""Model-rollout throughput: model transitions per second of a 7-member ensemble (4 x 200 SiLU, the
PETS/MBPO default) on 100k (and 2k) particles, each bound to one of 5 elites, against the same model
step run as a Python loop over members (one ``nn.Sequential`` per member with the same weights, each on
its own particles). Interleaved repeats, medians; prints JSON and writes docs/benchmarks.md.

    python experiments/benchmarks/speed/model_rollout_throughput.py [--particles 100000 2000] [--repeats 5]
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
from torch import nn

from marlkit.models.world_model import EnsembleWorldModel, WorldModelConfig

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
    noise = torch.Generator().manual_seed(1)
    out_dim = model.out_dim

    @torch.no_grad()
    def batched_step() -> None:
        model.predict(state, action, members, sample=True, disagreement=False)

    @torch.no_grad()
    def looped_step() -> torch.Tensor:
        """The same model step with a Python loop over members: same normalization, log-variance
        bounds, sampling and denormalization, one network call per member on its own particles."""
        x = model.normalize_input(state, action)
        mean, logvar = torch.empty(particles, out_dim), torch.empty(particles, out_dim)
        for e in model.elite_idx.tolist():
            idx = (members == e).nonzero().squeeze(1)
            m, raw = nets[e](x[idx]).chunk(2, dim=-1)
            mean[idx], logvar[idx] = m, model.bound_logvar(raw)
        delta = (mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=noise)) * model.out_std
        return state + (delta + model.out_mean)[:, :STATE_DIM]

    # The networks alone, on inputs already grouped by member (what each path's matmuls cost).
    x = model.normalize_input(state, action)
    groups = [(members == e).nonzero().squeeze(1) for e in model.elite_idx.tolist()]
    width = max(len(idx) for idx in groups)
    grid = torch.zeros(len(groups), width, x.shape[-1])
    for slot, idx in enumerate(groups):
        grid[slot, : len(idx)] = x[idx]
    inputs = [x[idx] for idx in groups]

    @torch.no_grad()
    def batched_net() -> None:
        model.forward_chunked(grid, model.elite_idx)

    @torch.no_grad()
    def looped_net() -> None:
        for e, rows in zip(model.elite_idx.tolist(), inputs, strict=True):
            nets[e](rows)

    # Same numbers: the batched means equal the per-member networks' outputs.
    with torch.no_grad():
        means = model(x[groups[0]].unsqueeze(0), model.elite_idx[:1]).mean
        reference = nets[int(model.elite_idx[0])](x[groups[0]])[:, :out_dim]
        assert torch.allclose(means[0], reference, atol=1e-4)
        # and the looped step is the batched step up to the noise draw
        assert looped_step().shape == model.predict(state, action, members, sample=False, disagreement=False)[0].shape
    calls = max(3, 300_000 // particles)
    fns = {"step": batched_step, "step_loop": looped_step, "net": batched_net, "net_loop": looped_net}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):  # interleaved, so that load on the machine hits every path alike
        for name, fn in fns.items():
            fn()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "particles": particles,
        "batched_transitions_per_s": round(particles / med["step"]),
        "loop_transitions_per_s": round(particles / med["step_loop"]),
        "speedup": round(med["step_loop"] / med["step"], 2),
        "network_only_speedup": round(med["net_loop"] / med["net"], 2),
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
        f"{r['loop_transitions_per_s']:,} | {r['speedup']}x | {r['network_only_speedup']}x |"
        for r in rows
    )
    body = (
        f"Particles, each bound to one of {model.cfg.elites} elites of a {model.cfg.ensemble_size}-member "
        f"ensemble (4 x 200 SiLU, Pendulum-sized inputs), one model step with aleatoric sampling and without "
        f"the disagreement term, {results['threads']} torch threads. The batched path "
        "(`EnsembleWorldModel.predict`) sorts particles by member into one `[elites, n, in]` batch and runs one "
        "batched product per layer over row blocks of at most 8 MB. The reference is the same model step "
        "as a Python loop over members: the same normalization, log-variance bounds, sampling and "
        "denormalization, with one `nn.Sequential` (same weights) per member on its own particles. The last "
        "column times the networks alone on inputs already grouped by member.\n\n"
        "| particles | marlkit batched ensemble (transitions/s) | Python loop over members (transitions/s) "
        "| speedup | speedup, networks only |\n"
        "|---|---|---|---|---|\n" + table + "\n\n"
        "On CPU both paths are bound by the same matrix products at 100k particles, so parity of the "
        "networks is the ceiling; three fixes got the batched path there from 0.44x (2026-11-21): row blocks "
        "instead of one 80 MB activation per layer (allocations past glibc's mmap threshold page-fault every "
        "time: 86 ms against 53 ms for the same bmm into a reused buffer); bmm plus an in-place bias add and "
        "activation instead of `baddbmm` (15%); and splitting each member's rows so that the batch count "
        "divides the thread count (5 members on 2 threads left one thread idle: 480 against 410 ns a row)."
    )
    write_section("model_rollout_throughput", "Model-rollout throughput (issue: model-based)", body, results)


if __name__ == "__main__":
    main()
