"""marlkit against HARL on HARL's own task, continuous MPE simple_spread (3 agents, 25-step episodes), at
equal env steps (issue 33).

HARL runs from its source at a pinned commit (``.peers/harl``, made by ``peers.py --setup``) with its tuned
config for the task (``tuned_configs/pettingzoo_mpe/simple_spread_v2-continuous/<algo>``), through
``peer_drivers/harl_mpe.py``, which points HARL's ``pettingzoo.mpe.simple_spread_v2`` at
``mpe2.simple_spread_v3``: both frameworks run the same env. marlkit runs twice per seed:

* ``marlkit``: marlkit's defaults for the algorithm, HARL's batch layout (20 envs x 200 steps per iteration);
* ``matched``: HARL's tuned config as marlkit options (HARL_CONFIG below), with marlkit's unbounded log-std
  starting at HARL's 0.37;
* ``matched-std``: the same with HARL's bounded std too, ``0.5 * sigmoid(p)`` (``algo.std=bounded``: it
  starts at 0.37 and cannot pass 0.5).

One torch thread per run. HARL's 20 envs (its tuned ``n_rollout_threads``) step in its in-process vector
env (``peer_drivers/harl_mpe.py`` says why this changes no numbers), so each run uses one core. Each run writes
``results/spread_<algo>_<side>_s<seed>.json``; a rerun skips existing files, so runs spread over sessions.
The reward is HARL's: every agent gets the team's (``env.team_reward``), and both sides report the team
return of a final deterministic evaluation (marlkit 16 episodes, HARL its own eval, 20).

    python experiments/benchmarks/peers/peers.py --setup --git harl=PATH  # PATH: a git dir of PKU-MARL/HARL
    python experiments/benchmarks/peers/harl_side_by_side.py --algo hatrpo --seeds 0 1 2 --frames 1000000
    python experiments/benchmarks/peers/harl_side_by_side.py --algo hatrpo --seeds 0 1 2 --report
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _report import write_section
from _sides import load, refuse_stale, report, run_driver, run_marlkit, run_missing

ROOT = Path(__file__).resolve().parents[3]
PYTHON = ROOT / ".peers" / "harl" / "bin" / "python"
ENV = "mpe/simple_spread_v3"
# HARL's wrapper gives every agent the team reward (the sum over agents): part of the task, so both sides.
TASK = {"env.continuous_actions": True, "env.max_cycles": 25, "env.team_reward": True}
COMMON = {"experiment.num_envs": 20, "algo.rollout_steps": 200, "experiment.eval_every": 0,
          "experiment.eval_episodes": 16, "experiment.progress": False, "experiment.tensorboard": False,
          "experiment.torch_threads": 1}  # fmt: skip
# HARL's tuned simple_spread config (happo and hatrpo share everything but the step rule) as marlkit options.
HARL_CONFIG = {
    "algo.gamma": 0.99,
    "algo.gae_lambda": 0.95,
    "algo.critic_lr": 5e-4,
    "algo.critic_epochs": 5,
    "algo.critic_minibatches": 1,
    "algo.critic_max_grad_norm": 10.0,
    "algo.critic_loss": "huber",
    "algo.huber_delta": 10.0,
    "algo.value_clip": 0.2,
    "algo.value_norm": True,
    "algo.hidden": [128, 128],
    "algo.activation": "relu",
    "algo.init": "orthogonal",
    "algo.layer_norm": True,  # use_feature_normalization + HARL's MLPBase LayerNorms
    "algo.init_log_std": math.log(0.5 / (1 + math.exp(-1))),  # 0.5 * sigmoid(1) = 0.366
}
ALGO_CONFIG = {
    "happo": {"algo.actor_lr": 5e-4, "algo.actor_epochs": 5, "algo.actor_minibatches": 1, "algo.clip_eps": 0.2,
              "algo.entropy_coef": 0.01, "algo.max_grad_norm": 10.0},
    "hatrpo": {"algo.trust_region.max_kl": 0.005, "algo.trust_region.backtrack_coef": 0.8,
               "algo.trust_region.backtrack_iters": 10, "algo.trust_region.accept_ratio": 0.5},
}  # fmt: skip
BOUNDED_STD = {"algo.std": "bounded", "algo.std_max": 0.5}  # HARL's std_y_coef; its p starts at 1 (init_log_std)
LABELS = {"marlkit": "marlkit-{}", "harl": "HARL-{}", "matched": "marlkit-{}-matched",
          "matched-std": "marlkit-{}-matched-std"}  # fmt: skip


def side_options(algo: str) -> dict[str, dict]:
    """Each marlkit side's options beyond the task's."""
    matched = {**HARL_CONFIG, **ALGO_CONFIG[algo]}
    return {"marlkit": {}, "matched": matched, "matched-std": {**matched, **BOUNDED_STD}}


def run_ours(algo: str, frames: int, seed: int, side: str) -> dict:
    options = side_options(algo)[side]
    return run_marlkit(algo, ENV, {**TASK, **COMMON, **options, "experiment.frames": frames, "experiment.seed": seed})


def run_harl(algo: str, frames: int, seed: int) -> dict:
    hint = "run `python experiments/benchmarks/peers/peers.py --setup` first"
    return run_driver(PYTHON, "harl_mpe.py", [algo, str(frames), str(seed), "1"], hint)


def write_report(algo: str, seeds: list[int], frames: int) -> None:
    labels = {side: label.format(algo) for side, label in LABELS.items()}
    runs = load(f"spread_{algo}", list(LABELS), seeds)
    refuse_stale(f"spread_{algo}", runs, ENV, side_options(algo))
    lines, results = report(runs, labels, "harl")
    results = {"env": ENV, "algo": algo, "frames": frames, **results, "runs": runs}
    body = (
        f"marlkit-{algo} and HARL-{algo} on continuous {ENV} ({json.dumps(TASK)}), {frames:,} env steps per run, "
        "one torch thread each, back to back per seed. HARL: its tuned config for the task, its source at the "
        "commit in each result file's `framework`. marlkit: its defaults with HARL's batch layout (20 envs x 200 "
        "steps); marlkit-matched: HARL's tuned config as marlkit options (the script's HARL_CONFIG and "
        "ALGO_CONFIG); marlkit-matched-std: the same with HARL's bounded std (BOUNDED_STD). Every agent trains "
        "on the team reward, as in HARL's wrapper; final deterministic "
        f"evaluation, team return. Result files: `experiments/benchmarks/peers/results/spread_{algo}_*`.\n\n"
        + "\n".join(lines)
    )
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    write_section(f"harl_spread_{algo}", f"{algo.upper()} against HARL on continuous simple_spread, "
                  f"{frames // 1000}k steps", body, results)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(ALGO_CONFIG), default="hatrpo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--sides", default="harl,matched,marlkit",
                        help="comma-separated: harl, matched, matched-std, marlkit")  # fmt: skip
    parser.add_argument("--report", action="store_true", help="only write the report from the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        run_missing(f"spread_{args.algo}", args.seeds, args.sides.split(","), "harl",
                    lambda seed: run_harl(args.algo, args.frames, seed),
                    lambda side, seed: run_ours(args.algo, args.frames, seed, side))  # fmt: skip
    write_report(args.algo, args.seeds, args.frames)


if __name__ == "__main__":
    main()
