"""Calibrate the learning tests: run every case of ``tests/test_learning.py`` over seeds and torch thread
counts, and write the table of each threshold against the calibration runs to docs/learning_tests.md.

    python experiments/calibrate_learning_tests.py                      # every case, seeds 0-4, threads 1 and 2
    python experiments/calibrate_learning_tests.py itrpo masac --seeds 0 1 2 --threads 1
    python experiments/calibrate_learning_tests.py pets --set experiment.frames=480 --results /tmp/pets.jsonl

Each run records the test's statistic (``test_learning.score``: the mean of the last 3 evaluations) and
the untrained policy's value of it (the evaluation at frame 0). Seeds and thread counts stand in for
other machines: other seeds move the learning, other thread counts the rounding of every reduction.
Runs with one thread go two at a time (one per core); runs with two threads go one at a time, so no
run competes for a core. Results are appended to ``--results`` as JSON lines as they finish; a rerun
skips the (case, seed, threads) runs already there, so an interrupted calibration continues.

A threshold passes when it lies above every untrained value and below every calibration run by a
margin: the runs' robust spread (interquartile range / 1.349, a normal standard deviation's estimate
that one outlying seed cannot inflate), or ``GAP_FRACTION`` of the distance from the median run to the
untrained policy where the runs barely spread, whichever is larger.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GAP_FRACTION = 0.05
DOC = ROOT / "docs" / "learning_tests.md"


def learning_tests():
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
    import test_learning

    return test_learning


def run(name: str, seed: int, threads: int, extra: dict) -> dict:
    import torch

    from marlkit.training.config import build_config
    from marlkit.training.experiment import Experiment

    tests = learning_tests()
    torch.set_num_threads(threads)
    algo, env, overrides, threshold = tests.CASES[name]
    config = build_config(algo, env, {**tests.scored(overrides), **extra, "experiment.seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        experiment = Experiment(config, Path(tmp) / "run")
        experiment.run()
    evals = tests.evaluations(experiment.rows)
    return {
        "case": name,
        "seed": seed,
        "threads": threads,
        "score": round(tests.score(experiment.rows), 4),
        "untrained": round(evals[0], 4),
        "final": round(evals[-1], 4),
        "threshold": threshold,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(results: list[dict], cases: dict) -> list[dict]:
    rows = []
    for name, (algo, env, _, threshold) in cases.items():
        mine = [r for r in results if r["case"] == name]
        if not mine:
            continue
        scores = [r["score"] for r in mine]
        untrained = [r["untrained"] for r in mine]
        low, median, base = min(scores), statistics.median(scores), statistics.median(untrained)
        q1, q3 = np.percentile(scores, [25, 75])
        margin = max((q3 - q1) / 1.349, GAP_FRACTION * (median - base))
        highest = low - margin
        rows.append(
            {
                "case": name,
                "task": f"{algo} on {env}",
                "threshold": threshold,
                "runs": len(mine),
                "min": low,
                "median": median,
                "untrained_median": base,
                "untrained_max": max(untrained),
                "margin": round(margin, 3),
                "highest_passing_threshold": round(highest, 3),
                "passes": bool(max(untrained) < threshold <= highest),
            }
        )
    return rows


def write_doc(rows: list[dict], command: str) -> None:
    lines = [
        "# Learning tests: calibration",
        "",
        "Made by `experiments/calibrate_learning_tests.py` (the command below); do not edit by hand.",
        "",
        "Each case of `tests/test_learning.py` runs seed 0 in the test suite. Its statistic is the mean of "
        "the last 3 evaluations (at 80, 90 and 100% of the run), so one unlucky evaluation cannot decide "
        "the verdict. Every case was run over seeds 0-4 with torch threads 1 and 2 (other seeds move the "
        "learning, other thread counts the rounding: stand-ins for another machine). `untrained` is the "
        "statistic at frame 0, the policy before any update. A threshold passes when it is above every "
        "untrained value and at most `min - margin`, where the margin is the runs' robust spread "
        f"(IQR / 1.349) or {GAP_FRACTION} x (median - untrained median), whichever is larger: every "
        "calibration run clears it by that margin.",
        "",
        f"Command: `{command}`",
        "",
        "| case | task | threshold | runs | min | median | margin | untrained (median / max) "
        "| highest passing threshold | passes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['task']} | {r['threshold']:g} | {r['runs']} | {r['min']:.3f} | {r['median']:.3f} "
            f"| {r['margin']:.3f} "
            f"| {r['untrained_median']:.3f} / {r['untrained_max']:.3f} | {r['highest_passing_threshold']:.3f} "
            f"| {'yes' if r['passes'] else '**no**'} |"
        )
    DOC.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="default: every case")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE added to the case's overrides")
    parser.add_argument("--results", type=Path, default=ROOT / "runs" / "calibration" / "learning_tests.jsonl")
    parser.add_argument("--write-doc", action="store_true", help=f"write the table to {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    cases = learning_tests().CASES
    names = args.cases or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {', '.join(cases)}")
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["case"], r["seed"], r["threads"]) for r in load(args.results)}
    for threads in args.threads:
        grid = [(n, s) for n in names for s in args.seeds if (n, s, threads) not in done]
        jobs = max(1, 2 // threads)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run, n, s, threads, extra) for n, s in grid]
            for future in futures:
                result = future.result()
                print(json.dumps(result), flush=True)
                with open(args.results, "a") as f:
                    f.write(json.dumps(result) + "\n")
    rows = summarize(load(args.results), {n: cases[n] for n in names})
    print(json.dumps(rows, indent=1))
    if args.write_doc:
        write_doc(rows, "python experiments/calibrate_learning_tests.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
