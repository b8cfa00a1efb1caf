"""Individual rewards: does the centralized critic fit each agent's own return? (issue 16, defect 1)

vmas/navigation with ``shared_rew=False`` (each agent is paid for its own distance to its own goal) and
3 agents. MAPPO and MATRPO train with

* ``per_agent``: marlkit's central critic, one trunk over the state and one value output per agent;
* ``no_agent_identity``: the critic marlkit had before the fix, kept here as the reference: one shared
  network over the state copied per agent, so every agent gets the same V(s).

Every iteration, before the update, the critic's explained variance per agent is measured on the
collected batch against the GAE(lambda) returns it is trained on: EV_i = 1 - Var(G_i - V_i) / Var(G_i)
over the agent's alive rows. The table gives the mean over the last ``--tail`` iterations, the mean
spread of the returns across agents (what a shared value cannot fit) and of the predictions, and the
agents' training return over the same iterations. Seeds and variants run one after another.

    python experiments/benchmarks/learning/individual_rewards.py            # updates docs/benchmarks.md
    python experiments/benchmarks/learning/individual_rewards.py --quick    # smoke run, JSON only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _report import write_section
from torch import nn

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.algorithms.onpolicy import OnPolicy, masked_mean
from marlkit.core.checkpoint import seed_everything
from marlkit.core.specs import GroupSpec
from marlkit.keys import ALIVE
from marlkit.networks.groups import GroupModule, mlp
from marlkit.training.rollout import RolloutCollector

warnings.filterwarnings("ignore")
ENV = {"n_agents": 3, "max_steps": 100, "shared_rew": False}


class NoAgentIdentity(OnPolicy):
    """The pre-fix central critic: a shared network over the state expanded per agent."""

    @property
    def _state_trunk(self) -> bool:
        return False

    def _make_critic(self, spec: GroupSpec, state_dim: int) -> nn.Module:
        return GroupModule(lambda: mlp(state_dim, 1, self.cfg.hidden, self.cfg.activation), spec.n_agents, True)


@torch.no_grad()
def critic_fit(learner: OnPolicy, batch) -> dict[str, list[float]]:
    """Per agent: explained variance of V against the GAE returns, and mean |spread| across agents."""
    g = "agent"
    _, value, _, returns = learner.value_targets(batch, g)
    alive = batch[g][ALIVE].flatten(0, 1)
    value, returns = value.flatten(0, 1), returns.flatten(0, 1)

    def variance(x: torch.Tensor) -> torch.Tensor:  # per agent, over its alive rows
        return masked_mean((x - masked_mean(x, alive, 0)).pow(2), alive, 0)

    ev = (1 - variance(returns - value) / variance(returns)).tolist()

    def spread(x: torch.Tensor) -> float:
        return float((x.max(-1).values - x.min(-1).values).mean())

    # What a value shared by all agents cannot fit: each agent's deviation from the agents' mean.
    rows = alive.all(-1)
    dev_g = returns[rows] - returns[rows].mean(-1, keepdim=True)
    dev_v = value[rows] - value[rows].mean(-1, keepdim=True)
    ev_diff = float(1 - (dev_g - dev_v).pow(2).sum() / dev_g.pow(2).sum())
    return {"ev": ev, "ev_diff": [ev_diff], "return_spread": [spread(returns)], "value_spread": [spread(value)]}


def run(algo: str, variant: str, seed: int, iterations: int, num_envs: int, tail: int) -> dict:
    seed_everything(seed)
    env = make_env("vmas/navigation", num_envs=num_envs, seed=seed, **ENV)
    spec = algorithm(algo)
    cfg = spec.default_config()
    learner_class = OnPolicy if variant == "per_agent" else NoAgentIdentity
    learner = learner_class(cfg, env, seed)
    collector = RolloutCollector(env, learner.act, cfg.rollout_steps)
    collector.reset()
    fits, returns = [], []
    start = time.perf_counter()
    for _ in range(iterations):
        batch, stats = collector.collect()
        fits.append(critic_fit(learner, batch))
        if stats.episodes:
            returns.append(stats.group_return("agent"))
        learner.update(batch)
    last = fits[-tail:]
    ev = [statistics.fmean(f["ev"][i] for f in last) for i in range(ENV["n_agents"])]
    return {
        "algo": algo,
        "variant": variant,
        "seed": seed,
        "ev_per_agent": [round(x, 3) for x in ev],
        "ev_first_iteration": [round(x, 3) for x in fits[0]["ev"]],
        "ev_of_differences": round(statistics.fmean(f["ev_diff"][0] for f in last), 3),
        "return_spread": round(statistics.fmean(f["return_spread"][0] for f in last), 3),
        "value_spread": round(statistics.fmean(f["value_spread"][0] for f in last), 3),
        "train_return": round(statistics.fmean(returns[-tail:]), 3) if returns else None,
        "frames": iterations * num_envs * cfg.rollout_steps,
        "seconds": round(time.perf_counter() - start, 1),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| algo | critic | EV agent 0 | EV agent 1 | EV agent 2 | EV of differences | return spread | value spread "
        "| train return |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for algo in dict.fromkeys(r["algo"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            runs = [r for r in rows if r["algo"] == algo and r["variant"] == variant]

            def mean_sd(values: list[float]) -> str:
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.fmean(values):.3f} ± {sd:.3f}"

            evs = [mean_sd([r["ev_per_agent"][i] for r in runs]) for i in range(ENV["n_agents"])]
            cells = [
                *evs,
                mean_sd([r["ev_of_differences"] for r in runs]),
                mean_sd([r["return_spread"] for r in runs]),
                mean_sd([r["value_spread"] for r in runs]),
                mean_sd([r["train_return"] for r in runs if r["train_return"] is not None]),
            ]
            lines.append(f"| {algo} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run; prints JSON, writes nothing")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tail", type=int, default=10, help="iterations averaged at the end")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.num_envs, args.seeds, args.tail = 2, 4, 1, 1
    torch.set_num_threads(2)
    rows = [
        run(algo, variant, seed, args.iterations, args.num_envs, args.tail)
        for algo in ("mappo", "matrpo")
        for variant in ("no_agent_identity", "per_agent")
        for seed in range(args.seeds)
    ]
    print(json.dumps(rows))
    if args.quick:
        return

    frames = rows[0]["frames"]
    body = (
        f"vmas/navigation, 3 agents, `shared_rew=False`, {args.num_envs} envs x 100 steps per iteration, "
        f"{args.iterations} iterations ({frames} frames), {args.seeds} seeds, default configs otherwise. "
        f"EV: the critic's explained variance per agent against its GAE(lambda) targets, measured on each "
        f"collected batch before the update and averaged over the last {args.tail} iterations (mean ± sd "
        "over seeds). EV of differences: the same for each agent's deviation from the agents' mean, "
        "G_i - mean_j G_j against V_i - mean_j V_j, which a value shared by all agents cannot explain (it "
        "scores 0). Spreads: mean over rows of max - min across the 3 agents, of the returns and of the "
        "predicted values. `no_agent_identity` is the critic before the fix (the same V(s) for every "
        "agent), `per_agent` the fixed one.\n\n" + table(rows)
    )
    write_section("individual_rewards", "Individual rewards: per-agent central values (issue 16)", body, rows)


if __name__ == "__main__":
    main()
