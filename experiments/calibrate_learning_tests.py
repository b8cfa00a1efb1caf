"""Calibrate the learning tests: run a case of ``tests/test_learning.py`` on several seeds and print each
seed's final evaluation return beside the test's threshold and the untrained policy's return.

    python experiments/calibrate_learning_tests.py itrpo masac --seeds 0 1 2 --jobs 2
    python experiments/calibrate_learning_tests.py pets --set experiment.frames=480    # try a cheaper variant

The test itself runs seed 0 with torch's default threads; calibration runs use one thread per job,
so their numbers differ slightly from the test's: a threshold needs margin on every seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cases() -> dict:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
    from test_learning import CASES

    return CASES


def run(name: str, seed: int, extra: dict, threads: int, env_name: str | None = None) -> dict:
    import torch

    from marlkit.config import build_config
    from marlkit.experiment import Experiment

    torch.set_num_threads(threads)
    algo, env, overrides, threshold = cases()[name]
    overrides = {**overrides, **extra, "experiment.seed": seed, "experiment.eval_every": 0}
    config = build_config(algo, env_name or env, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = Experiment(config, Path(tmp) / "run").run()
    return {
        "case": name,
        "seed": seed,
        "final": round(summary["final_eval_return_mean"], 3),
        "threshold": threshold,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE added to the case's overrides")
    parser.add_argument("--env", help="another task than the case's")
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    threads = max(1, 2 // args.jobs)
    grid = [(name, seed) for name in args.cases for seed in args.seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        n = len(grid)
        for result in pool.map(run, *zip(*grid, strict=True), [extra] * n, [threads] * n, [args.env] * n):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
