"""A real `marlkit tune` run: MAPPO on vmas/balance, 30 trials, then the best configuration against the
default on 10 fresh seeds under the statistics protocol.

The tuning scores each trial on seeds 0 and 1; the best trial's score is the largest of 30 noisy
scores on those seeds, so it is optimistic. The confirmation trains the default and the best
configuration on seeds 100-109, which the tuning never saw, and compares their final returns with the
protocol of marlkit.analysis.stats (CI of the difference, permutation test) and the probability of improvement.
Both phases resume: the study from its SQLite file, the confirmation runs from their directories.

    python experiments/benchmarks/learning/tune_mappo_balance.py [--trials 30] [--frames 60000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml
from _report import write_section

import marlkit
from marlkit.analysis import stats
from marlkit.analysis.tune import read_space

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "tuning.md"
SPACE = {
    "algo.actor_lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "algo.critic_lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "algo.actor_epochs": {"type": "int", "low": 2, "high": 15},
    "algo.clip_eps": {"type": "float", "low": 0.1, "high": 0.3},
    "algo.gae_lambda": {"type": "float", "low": 0.9, "high": 0.99},
    "algo.init_log_std": {"type": "float", "low": -1.5, "high": 0.0},
    "algo.hidden": [[64, 64], [128, 128], [256, 256]],
    "algo.activation": ["tanh", "relu"],
    "algo.share_actor": [False, True],
    "algo.value_norm": [False, True],
}
TASK = "vmas/balance"
CONFIRM_SEEDS = list(range(100, 110))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "tune_mappo_balance"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space_file = out / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    read_space(space_file)  # the file the CLI would read
    quiet = {"experiment.tensorboard": False}
    start = time.perf_counter()
    result = marlkit.tune("mappo", TASK, space_file, trials=args.trials, seeds=(0, 1), frames=args.frames,
                          out=out / "study", jobs=args.jobs, overrides=quiet)  # fmt: skip
    tune_s = time.perf_counter() - start
    start = time.perf_counter()
    finals = {}
    for label, overrides in (("default", quiet), ("tuned", {**quiet, **result.best_params})):
        run = marlkit.compare(["mappo"], [TASK], CONFIRM_SEEDS, frames=args.frames, out=out / "confirm" / label,
                              jobs=args.jobs, progress=False, **overrides)  # fmt: skip
        assert run.report is not None and not run.failed, run.failed
        finals[label] = np.array(run.report.algorithms[0]["finals"])
    confirm_s = time.perf_counter() - start
    pair = stats.compare_task(finals)[0]
    tuned_minus_default = pair.diff if pair.a == "tuned" else -pair.diff
    ci = pair.ci if pair.a == "tuned" else (-pair.ci[1], -pair.ci[0])
    verdict = stats.verdict(finals)
    poi = stats.improvement([finals["tuned"]], [finals["default"]])
    counts = {s: sum(t["state"] == s for t in result.trials) for s in ("complete", "pruned", "fail")}
    results = {
        "task": TASK,
        "frames": args.frames,
        "trials": counts,
        "tuning_seeds": [0, 1],
        "best_trial_score": result.best_value,
        "best_params": result.best_params,
        "importances": result.importances,
        "confirm_seeds": CONFIRM_SEEDS,
        "default_finals": finals["default"].tolist(),
        "tuned_finals": finals["tuned"].tolist(),
        "tuned_minus_default": tuned_minus_default,
        "ci": list(ci),
        "p_permutation": pair.p,
        "probability_of_improvement": poi,
        "verdict": verdict,
        "tune_wall_s": round(tune_s, 1),
        "confirm_wall_s": round(confirm_s, 1),
    }
    print(json.dumps(results, indent=1))
    d, t = finals["default"], finals["tuned"]
    dl, dh = stats.t_ci(d)
    tl, th = stats.t_ci(t)
    importance = "\n".join(f"| `{k}` | {v:.3f} |" for k, v in result.importances.items())
    body = f"""
`marlkit tune mappo {TASK}` with the space below, {args.trials} trials of 2 seeds (0, 1) x {args.frames} frames
each, median pruning, TPE sampler seed 0, {args.jobs} trials at a time ({counts["complete"]} complete,
{counts["pruned"]} pruned, {counts["fail"]} failed; {tune_s / 60:.1f} min). Best trial's score (mean final
return over seeds 0 and 1): **{result.best_value:.4g}**, with

```json
{json.dumps(result.best_params, indent=1)}
```

Importance of each key (Optuna's fANOVA over the completed trials):

| key | importance |
|---|---|
{importance}

**Confirmation on seeds 100-109** (never seen by the tuning; {confirm_s / 60:.1f} min): final return, mean
[95% t-CI] over 10 seeds:

| configuration | mean [95% CI] | finals |
|---|---|---|
| default | {d.mean():.4g} [{dl:.4g}, {dh:.4g}] | {", ".join(f"{x:.3g}" for x in d)} |
| tuned | {t.mean():.4g} [{tl:.4g}, {th:.4g}] | {", ".join(f"{x:.3g}" for x in t)} |

tuned − default = {tuned_minus_default:+.4g} [{ci[0]:+.4g}, {ci[1]:+.4g}] (95% CI of the difference), permutation
p = {pair.p:.3g}; probability of improvement P(tuned > default) = {poi:.2f}. Protocol verdict: {verdict}

The search space (`space.yaml`):

```yaml
{yaml.safe_dump(SPACE, sort_keys=False).strip()}
```
"""
    write_section("tune_mappo_balance", f"MAPPO on {TASK}: 30 tuned trials against the default", body, results,
                  doc=DOC)  # fmt: skip


if __name__ == "__main__":
    main()
