"""marlkit against BenchMARL 1.5.2 on BenchMARL's own VMAS tasks, in one run, at equal frames (issue 33).

For each seed, marlkit and BenchMARL run back to back, one torch thread each, each with its own defaults
(``--sides matched,matched-all`` give marlkit BenchMARL's hyperparameters, then its implementation choices too, to
separate implementation from defaults). Every finished run writes its result file
``experiments/benchmarks/peers/results/<task>_<algo>_<side>_s<seed>.json``; a rerun skips the seeds whose
files exist, so the runs can be spread over sessions. The report compares the final deterministic evaluations
(16 episodes, per-agent mean return) under the statistics protocol: difference of means with its 95% CI,
permutation test, probability of improvement with a bootstrap CI, and the training wall-clock ratio.

    python experiments/benchmarks/peers/peers.py --setup        # once: .peers/benchmarl
    python experiments/benchmarks/peers/benchmarl_side_by_side.py --algo mappo --task navigation --seeds 0 1 2 3 4
    python experiments/benchmarks/peers/benchmarl_side_by_side.py --algo mappo --task navigation --report
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from typing import Any

import torch
import vmas
from _report import write_section
from _sides import load, refuse_stale, report, result_path, run_driver, run_marlkit, run_missing

ROOT = Path(__file__).resolve().parents[3]
PYTHON = ROOT / ".peers" / "benchmarl" / "bin" / "python"
# The task as both sides run it: BenchMARL's task yaml (benchmarl/conf/task/vmas/<task>.yaml) with the
# driver's kwargs (its TASK_KWARGS), as the driver reports them (``--task-config``); marlkit gets every one of
# them as an env option. marlkit evaluates only at the end (wall-clock of training, as BenchMARL's).
SCENARIOS = {"navigation": "vmas/navigation", "balance": "vmas/balance"}
COMMON = {"experiment.eval_every": 0, "experiment.eval_episodes": 16, "experiment.progress": False,
          "experiment.tensorboard": False, "experiment.torch_threads": 1}  # fmt: skip
# BenchMARL 1.5.2's defaults (benchmarl/conf: experiment/base_experiment.yaml, algorithm/mappo.yaml,
# model/layers/mlp.yaml) as marlkit options, for the matched sides: 6000 frames per batch from 10 envs, lr 5e-5,
# clip 0.2, gamma 0.99, lambda 0.9, entropy 0, gradient-norm clip 5, 256x256 tanh, shared policy and critic.
# Updates: BenchMARL's Experiment loops `on_policy_n_minibatch_iters` (45) times over ceil(6000 / 400) = 15
# minibatches drawn without replacement, each one actor and one critic step: 45 epochs of 15 minibatches,
# 675 steps per batch (benchmarl/experiment/experiment.py, the training loop and n_optimizer_steps). Runs
# before 2026-12-06 18:40 read "45 minibatch iterations" as 3 epochs x 15 and were withdrawn.
MATCHED = {
    "experiment.num_envs": 10,
    "algo.rollout_steps": 600,
    "algo.actor_lr": 5e-5,
    "algo.critic_lr": 5e-5,
    "algo.clip_eps": 0.2,
    "algo.entropy_coef": 0.0,
    "algo.gamma": 0.99,
    "algo.gae_lambda": 0.9,
    "algo.hidden": [256, 256],
    "algo.activation": "tanh",
    "algo.share_actor": True,
    "algo.layer_norm": False,  # BenchMARL's MLP has none (marlkit's MAPPO default has since the ablation)
    "algo.share_critic": True,
    "algo.actor_epochs": 45,
    "algo.actor_minibatches": 15,
    "algo.critic_epochs": 45,
    "algo.critic_minibatches": 15,
    "algo.max_grad_norm": 5.0,
    "algo.critic_max_grad_norm": 5.0,
}
# BenchMARL's implementation choices on top (read from benchmarl/algorithms/mappo.py, its conf and TorchRL):
# a TanhNormal whose scale is an actor output (NormalParamExtractor, biased_softplus_1.0); ClipPPOLoss with
# normalize_advantage=False; the actor's output layer as PyTorch initializes it (marlkit scales it by 0.01);
# no bootstrap at VMAS's time limit (TorchRL's VmasEnv reports it as `terminated`); Adam epsilon 1e-6.
MATCHED_ALL = {**MATCHED, "algo.squash": True, "algo.std": "state", "algo.adv_norm": "none",
               "algo.actor_out_gain": 1.0, "algo.time_limit_terminal": True, "algo.adam_eps": 1e-6}  # fmt: skip
# BenchMARL 1.5.2's off-policy defaults (experiment/base_experiment.yaml, algorithm/masac.yaml and maddpg.yaml)
# as marlkit options (issue 30): 6000 frames per batch from 10 envs, then 1000 gradient steps on 128 sampled
# transitions each (1/6 of a step per frame), no random warm-up, lr 5e-5 for every optimizer, polyak 0.005,
# gamma 0.99, gradient-norm clip 5, 256x256 tanh, shared actor and critic. MASAC: twin critics, initial
# temperature 1.0; MADDPG: one critic, Gaussian noise 0.8 annealed to 0.01 over a third of the frames (TorchRL's
# AdditiveGaussianModule with BenchMARL's exploration_eps_init/end and get_exploration_anneal_frames).
OFF_MATCHED = {
    "experiment.num_envs": 10,
    "algo.rollout_steps": 600,
    "algo.updates_per_frame": 1000 / 6000,
    "algo.batch_size": 128,
    "algo.warmup_frames": 0,
    "algo.actor_lr": 5e-5,
    "algo.critic_lr": 5e-5,
    "algo.tau": 0.005,
    "algo.gamma": 0.99,
    "algo.max_grad_norm": 5.0,
    "algo.hidden": [256, 256],
    "algo.activation": "tanh",
    "algo.share_actor": True,
    "algo.share_critic": True,
}
ON_POLICY = ("mappo", "ippo")
# What each report says its marlkit sides are.
ON_POLICY_SIDES = (
    "marlkit: today's defaults (MAPPO/IPPO share one actor per group with LayerNorms and train their critics for "
    "10 epochs of 4 minibatches); marlkit-critic5: the defaults before 2026-12-07 (5 full-batch critic epochs); "
    "marlkit-before: the defaults before that (separate actors, no LayerNorm). marlkit-matched: marlkit with "
    "BenchMARL's hyperparameters, 45 epochs of 15 minibatches included (the script's MATCHED); marlkit-matched-all: "
    "also BenchMARL's implementation choices: tanh-squashed Gaussian with a state-dependent std, no advantage "
    "normalization, the actor's output layer as PyTorch initializes it, no bootstrap at VMAS's time limit, Adam "
    "epsilon 1e-6 (MATCHED_ALL)."
)
OFF_POLICY_SIDES = (
    "marlkit: today's defaults (16 envs, 10 steps each between update phases, one gradient step per vectorized "
    "env step, 1/16 per frame, after 1000 random frames; MASAC 128x128, MADDPG 64x64 with batch 1024). "
    "marlkit-matched: BenchMARL's hyperparameters (the script's OFF_MATCHED: 1000 steps of 128 transitions per "
    "6000 frames, lr 5e-5, 256x256 tanh, and the algorithm's own: MASAC's initial temperature 1.0, MADDPG's "
    "annealed Gaussian noise). marlkit-matched-all: also BenchMARL's shared critic without agent identity (one value "
    "for all agents, `algo.critic_agent_id=false`) and its actor loss on every agent's current action "
    "(`algo.others_actions=current`; marlkit's default takes the other agents' actions from the buffer, as the "
    "MADDPG paper) (OFF_MATCHED_ALL)."
)
# BenchMARL's off-policy implementation choices beyond its hyperparameters (read from benchmarl/algorithms/maddpg.py
# and masac.py: a shared centralised critic with one output expanded to the agents; TorchRL's DDPG/SAC losses
# recompute the whole group's actions for the actor loss).
OFF_MATCHED_ALL = {"algo.critic_agent_id": False, "algo.others_actions": "current"}


def marlkit_sides(algo: str, frames: int) -> dict[str, dict[str, Any]]:
    """Each marlkit side's options for ``algo``: its defaults, and BenchMARL's hyperparameters (matched)."""
    if algo in ON_POLICY:
        return {"marlkit": {}, "matched": MATCHED, "matched-all": MATCHED_ALL}
    if algo == "masac":
        matched = {**OFF_MATCHED, "algo.n_critics": 2, "algo.alpha": 1.0, "algo.alpha_lr": 5e-5}
    else:
        matched = {**OFF_MATCHED, "algo.exploration": "gaussian", "algo.noise_std": 0.8, "algo.noise_std_final": 0.01,
                   "algo.noise_decay_frames": frames // 3}  # fmt: skip
    return {"marlkit": {}, "matched": matched, "matched-all": {**matched, **OFF_MATCHED_ALL}}


# marlkit-before: runs with marlkit's defaults before MAPPO/IPPO shared their actor with LayerNorms (kept
# result files; not rerunnable from this script since the defaults changed).
LABELS = {"marlkit": "marlkit-{}", "marlkit-critic5": "marlkit-{}-critic5", "marlkit-before": "marlkit-{}-before",
          "benchmarl": "BenchMARL-{}",
          "matched": "marlkit-{}-matched", "matched-all": "marlkit-{}-matched-all"}  # fmt: skip


@functools.cache
def task_kwargs(task: str) -> dict[str, Any]:
    """BenchMARL's kwargs for ``task`` (its yaml and the driver's), as marlkit env options."""
    hint = "run `python experiments/benchmarks/peers/peers.py --setup` first"
    return {f"env.{k}": v for k, v in run_driver(PYTHON, "benchmarl_vmas.py", ["--task-config", task], hint).items()}


@functools.cache
def vmas_defaults(scenario: str) -> dict[str, Any]:
    """The literal defaults a VMAS scenario reads from its kwargs (``kwargs.pop/get("name", default)``)."""
    source = Path(vmas.__file__).parent / "scenarios" / f"{scenario}.py"
    found = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("pop", "get")
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "kwargs" and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            with contextlib.suppress(ValueError):  # a computed default: the run must set it to compare
                found[node.args[0].value] = ast.literal_eval(node.args[1])
    return found


def env_mismatch(run: dict, task: str) -> str | None:
    """How a marlkit run's env differs from BenchMARL's task (VMAS's scenario defaults where the run set
    nothing), or None. Earlier runs set only the kwargs that differed from the defaults they assumed."""
    ran = run["overrides"]
    defaults = {f"env.{k}": v for k, v in vmas_defaults(SCENARIOS[task].split("/")[1]).items()}
    effective = {k: ran.get(k, defaults.get(k, "unset")) for k in task_kwargs(task)}
    wrong = [f"{k}={effective[k]} (BenchMARL {v})" for k, v in task_kwargs(task).items() if effective[k] != v]
    return ", ".join(wrong) or None


def run_ours(algo: str, task: str, frames: int, seed: int, side: str) -> dict:
    overrides = {**task_kwargs(task), **COMMON, **marlkit_sides(algo, frames)[side], "experiment.frames": frames,
                 "experiment.seed": seed}  # fmt: skip
    return run_marlkit(algo, SCENARIOS[task], overrides, fields={"task": task})


def run_benchmarl(algo: str, task: str, frames: int, seed: int) -> dict:
    hint = "run `python experiments/benchmarks/peers/peers.py --setup` first"
    result = run_driver(PYTHON, "benchmarl_vmas.py", [algo, task, str(frames), str(seed), "1"], hint)
    return {**result, "frames": frames}


def write_report(task: str, algo: str, seeds: list[int], frames: int) -> None:
    labels = {side: label.format(algo) for side, label in LABELS.items()}
    runs = load(f"{task}_{algo}", list(LABELS), seeds)
    for side, side_runs in runs.items():
        for run in side_runs:
            path = result_path(f"{task}_{algo}", side, run["seed"])
            if side != "benchmarl" and (wrong := env_mismatch(run, task)):
                raise SystemExit(f"{path} ran another env than BenchMARL's {task}: {wrong}; delete it and rerun "
                                 "that side")  # fmt: skip
    refuse_stale(f"{task}_{algo}", runs, SCENARIOS[task], marlkit_sides(algo, frames))
    lines, results = report(runs, labels, "benchmarl")
    results = {"task": task, "algo": algo, "frames": frames, **results, "runs": runs}
    sides = ON_POLICY_SIDES if algo in ON_POLICY else OFF_POLICY_SIDES
    body = (
        f"marlkit-{algo} and BenchMARL-{algo}: each with its own defaults, on {SCENARIOS[task]} "
        f"({json.dumps(task_kwargs(task))}: BenchMARL's task), {frames:,} frames per "
        "run, one torch thread each, back to back per seed; final deterministic evaluation of 16 episodes (per-agent "
        f"mean return). {sides} Result files: `experiments/benchmarks/peers/results/{task}_{algo}_*`.\n\n"
        + "\n".join(lines)
    )
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    write_section(f"benchmarl_{task}_{algo}", f"{algo.upper()} against BenchMARL 1.5.2 on vmas/{task}, "
                  f"{frames // 1000}k frames", body, results)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=(*ON_POLICY, "masac", "maddpg"), default="mappo")
    parser.add_argument("--task", choices=sorted(SCENARIOS), default="navigation")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--frames", type=int, default=200_000)
    sides = "comma-separated: benchmarl, marlkit, matched, matched-all"
    parser.add_argument("--sides", default="marlkit,benchmarl", help=sides)
    parser.add_argument("--report", action="store_true", help="only write the report from the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    valid = {"benchmarl", *marlkit_sides(args.algo, args.frames)}
    if unknown := set(args.sides.split(",")) - valid:
        raise SystemExit(f"unknown sides {sorted(unknown)} for {args.algo}; valid: {', '.join(sorted(valid))}")
    if not args.report:
        run_missing(f"{args.task}_{args.algo}", args.seeds, args.sides.split(","), "benchmarl",
                    lambda seed: run_benchmarl(args.algo, args.task, args.frames, seed),
                    lambda side, seed: run_ours(args.algo, args.task, args.frames, seed, side))  # fmt: skip
    write_report(args.task, args.algo, args.seeds, args.frames)


if __name__ == "__main__":
    main()
