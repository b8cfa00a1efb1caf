"""Gradient steps per second of MADDPG and MASAC at batch 1024 with 3 and 8 agents, against a plain
PyTorch reference in the same run: one Adam step of one critic MLP (same hidden sizes) on the same
central critic input tensor. The ratio says how many "plain critic steps" one full multi-agent step
costs (a MASAC step computes twin critics for every agent, targets, actors and the temperature).

    python experiments/benchmarks/speed/offpolicy_throughput.py [--repeats 5]
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

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.options import with_overrides
from marlkit.networks.groups import mlp
from marlkit.training.rollout import RolloutCollector

BATCH = 1024


def learner_for(name: str, n_agents: int):
    env = make_env("vmas/navigation", 64, "cpu", 0, n_agents=n_agents, max_steps=100)
    spec = algorithm(name)
    cfg = with_overrides(
        spec.config(), {**spec.preset, "batch_size": BATCH, "hidden": (128, 128), "warmup_frames": 10**9}
    )
    learner = spec.build(cfg, env, 0)
    batch, _ = RolloutCollector(env, learner.act, 100).collect()
    learner.update(batch)
    return learner


def reference_step(learner) -> callable:
    """One plain critic: nn.Sequential MLP, MSE to a fixed target, Adam step, on the learner's own input."""
    batch = learner.sample()
    g = next(iter(learner.groups))
    x = learner._critic_in(g, batch.data[g]["obs"], batch.base, batch.data[g]["action"], batch.joint)[:, 0]
    target = torch.randn(x.shape[0], 1)
    net = mlp(x.shape[-1], 1, learner.cfg.hidden, learner.cfg.activation)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        loss = nn.functional.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def rate(fn, seconds: float = 1.5) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for name in ("maddpg", "masac"):
        for n_agents in (3, 8):
            learner = learner_for(name, n_agents)
            ref = reference_step(learner)
            ours, plain = [], []
            for _ in range(args.repeats):
                ours.append(rate(learner.gradient_step))
                plain.append(rate(ref))
            ratios = [p / o for o, p in zip(ours, plain, strict=True)]
            results[f"{name}_n{n_agents}"] = {
                "grad_steps_per_s": round(statistics.median(ours), 1),
                "plain_critic_steps_per_s": round(statistics.median(plain), 1),
                "cost_in_plain_critic_steps": round(statistics.median(ratios), 2),
            }
            print(json.dumps({name: n_agents, **results[f"{name}_n{n_agents}"]}), flush=True)
    lines = [
        "| algorithm | agents | gradient steps/s | plain critic steps/s | one step costs (plain critic steps) |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        algo, n = key.split("_n")
        lines.append(
            f"| {algo} | {n} | {r['grad_steps_per_s']} | {r['plain_critic_steps_per_s']} | "
            f"{r['cost_in_plain_critic_steps']} |"
        )
    body = (
        f"vmas/navigation, batch {BATCH}, hidden 128x128 ReLU, shared central critics (one-hot agent id), separate "
        "actors per agent. Reference: one Adam step of a single `nn.Sequential` critic MLP with the same hidden sizes "
        "on the same central input tensor (batch x critic input). Medians of interleaved repeats.\n\n"
        + "\n".join(lines)
    )
    write_section("offpolicy_throughput", "Off-policy gradient-step throughput", body, results)


if __name__ == "__main__":
    main()
