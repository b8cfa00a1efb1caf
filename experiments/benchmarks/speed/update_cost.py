"""Trust-region update cost vs number of agents: batched solve vs the same maths as a loop over agents.

ITRPO actor step with separate parameters, N in {1, 2, 4, 8, 16}, a fixed total number of samples per
update (per-agent samples = total / N). *batched*: marlkit's solve, all agents as rows of one
problem. *loop*: ``trust_region_step`` called once per agent on that agent's slice (the reference
a per-agent implementation would run). Median of ``--repeats`` timings, alternating the two.

    python experiments/benchmarks/speed/update_cost.py
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _report import write_section
from torch.func import functional_call

from marlkit.blocks.trust_region import TrustRegionConfig, trust_region_step
from marlkit.core.specs import Box, GroupSpec
from marlkit.networks.policies import GroupPolicy


def problem(n_agents: int, total: int, seed: int = 0):
    torch.manual_seed(seed)
    spec = GroupSpec("agent", tuple(f"agent_{i}" for i in range(n_agents)), (18,), Box((-1.0,) * 2, (1.0,) * 2))
    policy = GroupPolicy(spec, hidden=(64, 64), share_params=False)
    batch = total // n_agents
    obs = torch.randn(batch, n_agents, 18)
    with torch.no_grad():
        old = policy.dist(obs)
        action = policy.sample(old)
        old_lp = policy.log_prob(old, action)
    adv = torch.randn(batch, n_agents)
    return policy, obs, old, action, old_lp, adv


def batched(policy, obs, old, action, old_lp, adv, cfg) -> None:
    net = policy.net

    def dist_at(theta):
        return policy.dist(obs, None, net.unflatten(theta))

    result = trust_region_step(
        net.flat_params(),
        lambda th: (torch.exp(policy.log_prob(dist_at(th), action) - old_lp) * adv).mean(0),
        lambda th: policy.kl(old, dist_at(th)).mean(0),
        cfg,
    )
    net.set_flat_params(result.theta)


def standalone_agents(policy: GroupPolicy) -> list[torch.nn.Module]:
    """Agent k's network as its own module, loaded with its slice: what a per-agent implementation holds."""
    nets = []
    for k in range(policy.net.n_agents):
        net = copy.deepcopy(policy.net._template[0]).to_empty(device="cpu")
        net.load_state_dict(policy.net.agent_state_dict(k))
        nets.append(net)
    return nets


def loop(policy, obs, old, action, old_lp, adv, cfg) -> None:
    """The same maths, one agent at a time, each on a plain module (no vmap)."""
    nets = standalone_agents(policy)
    for k, net in enumerate(nets):
        names = [n for n, _ in net.named_parameters()]
        shapes = [p.shape for _, p in net.named_parameters()]
        theta0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).unsqueeze(0)

        def dist_at(theta, names=names, shapes=shapes, net=net, k=k):
            params, offset = {}, 0
            for name, shape in zip(names, shapes, strict=True):
                size = shape.numel()
                params[name] = theta[0, offset : offset + size].reshape(shape)
                offset += size
            return functional_call(net, params, (obs[:, k],))

        def surrogate(th, k=k, dist_at=dist_at):
            ratio = torch.exp(policy.log_prob(dist_at(th), action[:, k]) - old_lp[:, k])
            return (ratio * adv[:, k]).mean(0).reshape(1)

        def kl(th, k=k, dist_at=dist_at):
            return policy.kl(old[:, k], dist_at(th)).mean(0).reshape(1)

        result = trust_region_step(theta0, surrogate, kl, cfg)
        policy.net.set_flat_params(result.theta, agent=k)


def timed(fn, state, cfg) -> float:
    policy = state[0]
    saved = policy.net.flat_params()
    start = time.perf_counter()
    fn(*state, cfg)
    elapsed = time.perf_counter() - start
    policy.net.set_flat_params(saved)  # every repeat solves the same problem
    return elapsed


def measure(total: int, repeats: int, cfg: TrustRegionConfig) -> dict:
    results: dict[int, dict[str, float]] = {}
    for n in (1, 2, 4, 8, 16):
        state = problem(n, total)
        timed(batched, state, cfg), timed(loop, state, cfg)  # warm-up
        samples: dict[str, list[float]] = {"batched_s": [], "loop_s": []}
        for _ in range(repeats):
            samples["batched_s"].append(timed(batched, state, cfg))
            samples["loop_s"].append(timed(loop, state, cfg))
        row = {k: round(statistics.median(v), 4) for k, v in samples.items()}
        row["loop_over_batched"] = round(row["loop_s"] / row["batched_s"], 2)
        results[n] = row
        print(json.dumps({"total": total, n: row}), flush=True)
    for row in results.values():
        row["batched_vs_n1"] = round(row["batched_s"] / results[1]["batched_s"], 2)
    return {
        "per_n": results,
        "n16_le_2x_n1": results[16]["batched_vs_n1"] <= 2.0,
        "n16_ge_4x_faster_than_loop": results[16]["loop_over_batched"] >= 4.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--total",
        type=int,
        nargs="+",
        default=[2_000, 8_000, 32_000],
        help="samples per update, over all agents (one table per value)",
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    # A fixed number of backtracking steps and CG iterations, so both variants do the same work.
    cfg = TrustRegionConfig(max_kl=1e9, accept_ratio=-1e9, backtrack_iters=1)
    summary = {str(total): measure(total, args.repeats, cfg) for total in args.total}
    print(json.dumps(summary, indent=1))
    if args.no_docs:
        return

    tables = []
    for total, res in summary.items():
        rows = [
            f"**{total} samples per update** — N=16 <= 2x N=1: "
            f"{'met' if res['n16_le_2x_n1'] else 'NOT met'}; batched >= 4x faster than the loop at N=16: "
            f"{'met' if res['n16_ge_4x_faster_than_loop'] else 'NOT met'}",
            "",
            "| N agents | samples/agent | batched solve (s) | vs N=1 | loop over agents (s) | loop / batched |",
            "|---|---|---|---|---|---|",
        ]
        for n, r in res["per_n"].items():
            rows.append(
                f"| {n} | {int(total) // n} | {r['batched_s']} | {r['batched_vs_n1']}x | {r['loop_s']} | "
                f"{r['loop_over_batched']}x |"
            )
        tables.append("\n".join(rows))
    body = (
        "One ITRPO actor step (gradient, 10 CG iterations of double-backprop Fisher-vector products, step "
        "size, one line-search evaluation) for a group with separate parameters: 64x64 MLP Gaussian policy, "
        "obs 18, action 2, a fixed total number of samples split over N agents. *batched*: marlkit's solve, "
        "all agents as rows of one problem (vmap). *loop*: the same solver called once per agent on a plain "
        "per-agent module. Targets: N=16 <= 2x N=1, and batched >= 4x faster than the loop at N=16.\n\n"
        + "\n\n".join(tables)
    )
    write_section("update_cost", "Trust-region update cost vs agents (issue: trust-region family)", body, summary)


if __name__ == "__main__":
    main()
