"""Is PETS on Pendulum limited by its model or by its planner? The final models of the learning
benchmark (``model_based_learning.py pets_pendulum``, trained while planning with horizon 15) are
evaluated on the same 10 episodes (``marlkit eval``'s seed) with the trained planning horizon and with
longer ones; nothing else changes. Results are cached per run directory. Prints JSON and writes
docs/benchmarks.md.

    python experiments/benchmarks/learning/pets_horizon_eval.py [--seeds 0 1 2] [--horizons 15 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _learning import ROOT
from _report import write_section

from marlkit.adapters import make_env
from marlkit.training.evaluation import episode_returns
from marlkit.training.runs import load_learner

EPISODES, SEED = 10, 123_456  # marlkit eval's evaluation seed


def evaluate_with_horizon(run: Path, horizon: int) -> dict:
    path = run / f"eval_{EPISODES}_horizon_{horizon}.json"
    if path.exists():
        return json.loads(path.read_text())
    config, learner, _ = load_learner(run, "last")
    cfg = learner.cfg  # planners are built lazily from cfg
    learner.cfg = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, horizon=horizon))
    env = make_env(config.env_name, EPISODES, "cpu", SEED, **config.env_kwargs)
    start = time.perf_counter()
    returns = next(iter(episode_returns(learner, env, SEED, config.experiment.eval_max_steps).values()))
    per_episode = returns.mean(-1)
    result = {
        "horizon": horizon,
        "mean": float(per_episode.mean()),
        "std": float(per_episode.std(unbiased=False)),
        "per_episode": [round(float(r), 1) for r in per_episode],
        "wall_s": round(time.perf_counter() - start, 1),
    }
    path.write_text(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizons", type=int, nargs="+", default=[15, 30])
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the learning benchmark
    runs = {s: Path(args.out) / "pets_pendulum" / f"pets-s{s}" for s in args.seeds}
    results = {h: {s: evaluate_with_horizon(run, h) for s, run in runs.items()} for h in args.horizons}
    print(json.dumps(results, indent=1))
    rows = ["| planning horizon | mean return per seed (10 episodes, +- std) | median over seeds |"]
    rows.append("|---|---|---|")
    for h, by_seed in results.items():
        means = [r["mean"] for r in by_seed.values()]
        per_seed = ", ".join(f"{r['mean']:.0f} +- {r['std']:.0f}" for r in by_seed.values())
        rows.append(f"| {h} | {per_seed} | {statistics.median(means):.0f} |")
    body = (
        f"The final models of the PETS learning benchmark (seeds {args.seeds}; trained while planning with "
        "horizon 15), each evaluated on the same 10 deterministic episodes (`marlkit eval`'s seed) with "
        "different planning horizons; population, particles and CEM iterations as in training, 1 torch "
        "thread.\n\n" + "\n".join(rows)
    )
    write_section("model_based_pets_horizon", "PETS on Pendulum: planning horizon at evaluation", body, results)


if __name__ == "__main__":
    main()
