"""PETS planning cost per env step on gym/Pendulum-v1 with the learning benchmark's planner and model
(``model_based_learning.py pets_pendulum``), measured alone on a quiet machine: the model is fit on 1k
random transitions, then ``--steps`` planning calls are timed. Prints JSON and writes docs/benchmarks.md.

    python experiments/benchmarks/speed/pets_planning_time.py [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning"))  # the learning presets

import torch
from _report import write_section
from model_based_learning import PRESETS

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.core.options import with_overrides
from marlkit.training.rollout import RolloutCollector


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the learning benchmark
    preset = PRESETS["pets_pendulum"]
    algo = {k.removeprefix("algo."): v for k, v in preset["overrides"].items() if k.startswith("algo.")}
    algo.update(warmup_frames=1_000, retrain_every=1_000)
    env = make_env("gym/Pendulum-v1", 1, "cpu", 0)
    spec = algorithm("pets")
    learner = spec.build(with_overrides(spec.default_config(), algo), env, 0)
    collector = RolloutCollector(env, learner.act, 1_000)
    batch, _ = collector.collect()  # random actions during warm-up
    start = time.perf_counter()
    learner.update(batch)
    fit_s = time.perf_counter() - start
    td = env.reset(seed=1)
    learner.act(td)  # first call builds the planner
    learner.timing.update(plan_s=0.0, plan_calls=0.0)
    learner.model.forward_seconds = 0.0
    for _ in range(args.steps):
        td = env.step(learner.act(td))
    profile = learner.run_summary()
    frames = preset["frames"]
    results = {
        "steps": args.steps,
        "plan_s_per_step": round(profile["plan_s_per_step"], 4),
        "forward_share": round(profile["plan_forward_share"], 3),
        "model_fit_s_1k": round(fit_s, 2),
        "planning_s_for_5k_steps": round(profile["plan_s_per_step"] * frames, 1),
    }
    print(json.dumps(results, indent=1))
    body = (
        f"Planner of the PETS learning benchmark (100 candidates x 5 particles x horizon 15 x 5 CEM iterations, "
        f"7-member 3 x 200 ensemble), one env copy, 1 torch thread, alone on the machine: "
        f"**{results['plan_s_per_step'] * 1e3:.0f} ms of planning per env step**, "
        f"{100 * results['forward_share']:.0f}% of it in the ensemble's forward passes (the rest: CEM sampling, "
        f"sorting particles by member, sampling noise, Python). {frames:,} steps of planning come to "
        f"{results['planning_s_for_5k_steps']:.0f} s; one model fit on 1k transitions took "
        f"{results['model_fit_s_1k']:.1f} s (fits on up to 5k transitions run every 200 steps)."
    )
    write_section("model_based_pets_planning_time", "PETS planning time per env step (Pendulum)", body, results)


if __name__ == "__main__":
    main()
