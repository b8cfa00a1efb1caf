"""Collection throughput: marlkit vs the raw simulator loop with the same policy, in the same run.

A frame is one step of one env copy. Every configuration is timed ``--repeats`` times, alternating
between the variants so that machine noise hits all of them alike; the median is reported.

    python experiments/benchmarks/speed/collection_throughput.py            # full run, updates docs/benchmarks.md
    python experiments/benchmarks/speed/collection_throughput.py --quick    # smoke run, prints JSON only
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

import numpy as np
import torch
from _report import write_section
from tensordict import TensorDictBase

from marlkit import make_env
from marlkit.keys import ACTION, OBS
from marlkit.networks.groups import GroupModule, mlp
from marlkit.training.rollout import RolloutCollector

warnings.filterwarnings("ignore")


def small_policy(obs_dim: int, act_dim: int, n_agents: int) -> GroupModule:
    torch.manual_seed(0)
    return GroupModule(lambda: mlp(obs_dim, act_dim, (64, 64)), n_agents, share_params=True)


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    frames = fn()
    return frames / (time.perf_counter() - start)


def marlkit_collector(env, policy: GroupModule, steps: int) -> tuple[Callable, Callable[[], int]]:
    """The policy as a marlkit actor on the env's single group, and a timed collection call."""
    group = next(iter(env.groups))

    def act(td: TensorDictBase) -> TensorDictBase:
        td[group][ACTION] = torch.tanh(policy(td[group][OBS]))
        return td

    collector = RolloutCollector(env, act, steps)
    collector.reset()

    def run_collector() -> int:
        collector.collect()
        return steps * env.num_envs

    return act, run_collector


# ----------------------------------------------------------------------- VMAS
def vmas_variants(num_envs: int, steps: int) -> dict[str, Callable[[], int]]:
    import vmas

    kwargs = {"n_agents": 3, "max_steps": 100}
    raw = vmas.make_env("navigation", num_envs=num_envs, seed=0, continuous_actions=True, **kwargs)
    policy = small_policy(18, 2, 3)
    raw_obs = [raw.reset()]

    @torch.no_grad()
    def run_raw() -> int:
        obs = raw_obs[0]
        for _ in range(steps):
            actions = torch.tanh(policy(torch.stack(obs, dim=1)))
            obs, _, dones, _ = raw.step(list(actions.unbind(1)))
            if dones.any():
                if dones.all():
                    obs = raw.reset()
                else:
                    for i in dones.nonzero().flatten().tolist():
                        raw.reset_at(i)
                    obs = raw.get_from_scenario(True, False, False, False)[0]
        raw_obs[0] = obs
        return steps * num_envs

    env = make_env("vmas/navigation", num_envs=num_envs, seed=0, **kwargs)
    act, run_collector = marlkit_collector(env, policy, steps)
    state = {"td": env.reset()}

    @torch.no_grad()
    def run_step_loop() -> int:
        td = state["td"]
        for _ in range(steps):
            td = env.step(act(td))
        state["td"] = td
        return steps * num_envs

    variants = {"raw_vmas": run_raw, "marlkit_collector": run_collector, "marlkit_step_loop": run_step_loop}
    try:
        variants["torchrl_vmasenv"] = torchrl_variant(num_envs, steps, policy, kwargs)
    except Exception as err:  # TorchRL is a reference only; its absence must not stop the benchmark
        print(f"torchrl reference skipped: {err}")
    return variants


def torchrl_variant(num_envs: int, steps: int, policy: GroupModule, kwargs: dict) -> Callable[[], int]:
    from torchrl.envs.libs.vmas import VmasEnv

    env = VmasEnv("navigation", num_envs=num_envs, continuous_actions=True, seed=0, **kwargs)
    state = {"td": env.reset()}

    def act(td: TensorDictBase) -> TensorDictBase:
        td["agents", "action"] = torch.tanh(policy(td["agents", "observation"]))
        return td

    @torch.no_grad()
    def run() -> int:
        td = env.rollout(steps, act, auto_reset=False, tensordict=state["td"], break_when_any_done=False)
        state["td"] = env.reset() if td[..., -1]["next", "done"].any() else td[..., -1]["next"]
        return steps * num_envs

    return run


# ------------------------------------------------------------- PettingZoo
def pettingzoo_variants(
    name: str, factory: Callable, num_envs: int, steps: int, env_kwargs: dict
) -> dict[str, Callable[[], int]]:
    copies = [factory() for _ in range(num_envs)]
    observations = [env.reset(seed=i)[0] for i, env in enumerate(copies)]
    agents = copies[0].possible_agents
    obs_dim = copies[0].observation_space(agents[0]).shape[0]
    space = copies[0].action_space(agents[0])
    policy = small_policy(obs_dim, space.shape[0], len(agents))
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)

    @torch.no_grad()
    def run_raw() -> int:
        for _ in range(steps):
            obs = torch.as_tensor(np.stack([[o[a] for a in agents] for o in observations]), dtype=torch.float32)
            actions = torch.clamp(torch.tanh(policy(obs)), low, high).numpy()
            for i, env in enumerate(copies):
                observations[i], *_ = env.step({a: actions[i, j] for j, a in enumerate(env.agents)})
                if not env.agents:
                    observations[i], _ = env.reset()
        return steps * num_envs

    env = make_env(name, num_envs=num_envs, seed=0, **env_kwargs)
    _, run_collector = marlkit_collector(env, policy, steps)
    return {"raw_pettingzoo": run_raw, "marlkit_collector": run_collector}


def measure(variants: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    for fn in variants.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            samples[k].append(timed(fn))
    return {k: round(statistics.median(v), 1) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes; print JSON, do not touch docs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes = [16, 256] if args.quick else [16, 256, 1024, 4096]
    results: dict[str, dict] = {"vmas_navigation_3_agents": {}}
    for n in sizes:
        steps = 20 if args.quick else max(50, min(400, 200_000 // n))
        fps = measure(vmas_variants(n, steps), 1 if args.quick else args.repeats)
        fps["overhead_collector_vs_raw_pct"] = round(100 * (fps["raw_vmas"] / fps["marlkit_collector"] - 1), 1)
        fps["overhead_step_loop_vs_raw_pct"] = round(100 * (fps["raw_vmas"] / fps["marlkit_step_loop"] - 1), 1)
        if "torchrl_vmasenv" in fps:
            fps["overhead_torchrl_vs_raw_pct"] = round(100 * (fps["raw_vmas"] / fps["torchrl_vmasenv"] - 1), 1)
        results["vmas_navigation_3_agents"][str(n)] = {"steps_per_env": steps, **fps}
        print(json.dumps({n: results["vmas_navigation_3_agents"][str(n)]}))

    from gymnasium_robotics import mamujoco_v1
    from mpe2 import simple_spread_v3

    pz = {
        "mpe/simple_spread_v3": (
            lambda: simple_spread_v3.parallel_env(continuous_actions=True),
            {"continuous_actions": True},
        ),
        "mamujoco/HalfCheetah-2x3": (lambda: mamujoco_v1.parallel_env("HalfCheetah", "2x3"), {}),
    }
    for name, (factory, kwargs) in pz.items():
        steps = 20 if args.quick else 200
        fps = measure(pettingzoo_variants(name, factory, 16, steps, kwargs), 1 if args.quick else args.repeats)
        fps["overhead_collector_vs_raw_pct"] = round(100 * (fps["raw_pettingzoo"] / fps["marlkit_collector"] - 1), 1)
        results[name] = {"num_envs": 16, "steps_per_env": steps, **fps}
        print(json.dumps({name: results[name]}))
    print(json.dumps(results, indent=1))
    if not args.quick:
        write_docs(results)


def write_docs(results: dict) -> None:

    rows = [
        "| num_envs | raw VMAS (frames/s) | marlkit collector | overhead | marlkit step loop | overhead | "
        "TorchRL VmasEnv.rollout | overhead |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results["vmas_navigation_3_agents"].items():
        rows.append(
            f"| {n} | {r['raw_vmas']:,.0f} | {r['marlkit_collector']:,.0f} | {r['overhead_collector_vs_raw_pct']}% | "
            f"{r['marlkit_step_loop']:,.0f} | {r['overhead_step_loop_vs_raw_pct']}% | "
            f"{r.get('torchrl_vmasenv', float('nan')):,.0f} | {r.get('overhead_torchrl_vs_raw_pct', 'n/a')}% |"
        )
    rows += [
        "",
        "| task (16 copies) | raw PettingZoo loop (frames/s) | marlkit collector | overhead |",
        "|---|---|---|---|",
    ]
    for name in ("mpe/simple_spread_v3", "mamujoco/HalfCheetah-2x3"):
        r = results[name]
        rows.append(
            f"| {name} | {r['raw_pettingzoo']:,.0f} | {r['marlkit_collector']:,.0f} | "
            f"{r['overhead_collector_vs_raw_pct']}% |"
        )
    body = (
        "VMAS navigation, 3 agents, `max_steps=100`, a shared 64x64 MLP policy in the loop (same weights in every "
        "variant). *raw VMAS*: `vmas.make_env` stepped by hand with the policy's forward pass and the same "
        "auto-reset. *marlkit collector*: `RolloutCollector.collect()`, which also stores every transition into a "
        "`[num_envs, T]` TensorDict and tracks episode returns. *marlkit step loop*: `env.step` alone. TorchRL's "
        "`VmasEnv` is measured as a reference only: marlkit does not use TorchRL wrappers on the step path. "
        "Overhead = raw fps / variant fps - 1. Target: collector overhead <= 10% at >= 1024 envs.\n\n" + "\n".join(rows)
    )
    write_section("collection_throughput", "Collection throughput (issue: foundation)", body, results)


if __name__ == "__main__":
    main()
