"""What a newcomer gets: ``marlkit train ALGO TASK`` with no options, timed and scored, one run at a time.

Each run is the CLI itself in a fresh process (``marlkit train ALGO TASK --out DIR``, progress bar off);
``--variant`` adds overrides to compare candidate defaults in the same session, e.g.
``--variant maddpg:algo.updates_per_frame=0.1``. The table reports wall-clock, the final evaluation
return and the ratio of wall-clock to the on-policy reference run (itrpo on the same task).

    python experiments/benchmarks/learning/newcomer_defaults.py                       # the default set
    python experiments/benchmarks/learning/newcomer_defaults.py --runs itrpo:vmas/navigation,maddpg:vmas/navigation
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import write_section

DEFAULT_RUNS = (
    "itrpo:vmas/navigation",
    "maddpg:vmas/navigation",
    "masac:vmas/navigation",
    "trpo:gym/Pendulum-v1",
    "sac:gym/Pendulum-v1",
    "pets:gym/Pendulum-v1",
)


def train(algo: str, env: str, overrides: list[str], out: Path) -> dict:
    start = time.perf_counter()
    cmd = ["marlkit", "train", algo, env, "--out", str(out), "experiment.progress=false", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed", "wall_s": wall}
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "final_eval_return_mean": round(summary["final_eval_return_mean"], 3),
        "frames": summary["frames"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="comma-separated ALGO:TASK")
    parser.add_argument("--variant", action="append", default=[], help="ALGO:key=value, an extra run per flag")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    plan: list[tuple[str, str, list[str]]] = []
    for item in args.runs.split(","):
        algo, env = item.split(":", 1)
        plan.append((algo, env, []))
    for variant in args.variant:
        algo, override = variant.split(":", 1)
        for a, env, _ in list(plan):
            if a == algo:
                plan.append((algo, env, [override]))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (algo, env, overrides) in enumerate(plan):
            outcome = train(algo, env, overrides, Path(tmp) / str(k))
            row = {"algo": algo, "env": env, "overrides": " ".join(overrides), **outcome}
            results.append(row)
            print(json.dumps(row), flush=True)
    reference = {r["env"]: r["wall_s"] for r in results if r["algo"] in ("itrpo", "trpo") and not r["overrides"]}
    for r in results:
        if r["env"] in reference and "error" not in r:
            r["vs_on_policy"] = round(r["wall_s"] / reference[r["env"]], 2)
    print(json.dumps(results, indent=1))
    if args.no_docs:
        return
    rows = ["| command | extra | wall-clock (s) | x on-policy | final eval return |", "|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"| `marlkit train {r['algo']} {r['env']}` | {r['overrides'] or '-'} | {r['wall_s']} | "
            f"{r.get('vs_on_policy', '-')} | {r.get('final_eval_return_mean', r.get('error'))} |"
        )
    body = (
        "Every run is `marlkit train ALGO TASK` with no options (progress bar off), alone on the machine, one after "
        "another; *x on-policy* is the wall-clock over the on-policy run (itrpo or trpo) on the same task.\n\n"
        + "\n".join(rows)
    )
    write_section("newcomer_defaults", "Newcomer defaults: `marlkit train ALGO TASK` with no options", body, results)


if __name__ == "__main__":
    main()
