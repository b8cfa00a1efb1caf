"""Memory matters (issue 15): the GRU-minus-MLP gap of every algorithm, with a 95% bootstrap CI, from the
runs that ``onpolicy_learning.py cue_recall`` and ``onpolicy_learning.py pendulum_pomdp`` left in runs/bench/.

Each run's number is its final evaluation (``final_eval_return_mean`` of summary.json). The gap's CI
resamples the seeds of the two variants independently (10,000 resamples, seeded).

    python experiments/benchmarks/learning/memory_reading.py
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _learning import run_dir
from _report import write_section
from onpolicy_learning import PRESETS

from marlkit.analysis.stats import bootstrap_ci

ROOT = Path(__file__).resolve().parents[3] / "runs" / "bench"
SEEDS = (0, 1, 2)
TASKS = {
    # task: (run folder, algorithms, threshold stated before the runs)
    "envs/cue_recall (2 agents, 4 cues), 30k steps": ("cue_recall", ("hatrpo", "mappo", "masac", "iql"), 0.9),
    "Pendulum-v1 without angular velocity, 200k steps": ("pendulum_pomdp", ("trpo",), -400.0),
}


def finals(folder: str, label: str) -> np.ndarray:
    return np.array(
        [
            json.loads((run_dir(ROOT, folder, PRESETS[folder], label, seed) / "summary.json").read_text())[
                "final_eval_return_mean"
            ]
            for seed in SEEDS
        ]
    )


def frames_to(folder: str, label: str, seed: int, threshold: float) -> int | None:
    """The first evaluation at or above ``threshold`` (frames), or None."""
    with open(run_dir(ROOT, folder, PRESETS[folder], label, seed) / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("eval_return_mean") and float(row["eval_return_mean"]) >= threshold:
                return int(row["frames"])
    return None


def gap_ci(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of mean(a) - mean(b), seeds resampled within each variant."""
    rng = np.random.default_rng(seed)
    n = 10_000
    diff = a[rng.integers(0, len(a), (n, len(a)))].mean(1) - b[rng.integers(0, len(b), (n, len(b)))].mean(1)
    low, high = np.percentile(diff, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    results: dict[str, dict] = {}
    lines = []
    for task, (folder, algos, threshold) in TASKS.items():
        rows = [
            "| algorithm | GRU mean [95% CI] | MLP mean [95% CI] | GRU - MLP [95% CI] | GRU seeds >= threshold | "
            "MLP seeds >= threshold |",
            "|---|---|---|---|---|---|",
        ]
        results[task] = {"threshold": threshold}
        for algo in algos:
            gru, mlp = finals(folder, f"{algo}-gru"), finals(folder, f"{algo}-mlp")
            (g_lo, g_hi), (m_lo, m_hi), (d_lo, d_hi) = bootstrap_ci(gru), bootstrap_ci(mlp), gap_ci(gru, mlp)
            rows.append(
                f"| {algo} | {gru.mean():.3g} [{g_lo:.3g}, {g_hi:.3g}] | {mlp.mean():.3g} [{m_lo:.3g}, {m_hi:.3g}] | "
                f"{gru.mean() - mlp.mean():.3g} [{d_lo:.3g}, {d_hi:.3g}] | {int((gru >= threshold).sum())} / "
                f"{len(gru)} | {int((mlp >= threshold).sum())} / {len(mlp)} |"
            )
            results[task][algo] = {
                "gru": gru.tolist(),
                "mlp": mlp.tolist(),
                "gap": float(gru.mean() - mlp.mean()),
                "gap_ci": [d_lo, d_hi],
            }
        lines += [f"**{task}**, threshold {threshold:g} (stated before the runs), 3 seeds per variant.\n", *rows, ""]
    choices = {
        "10-step sequences, stored state (masac-gru)": "masac-gru",
        "4-step sequences, stored state": "masac-gru-c4",
        "4-step sequences, zero state": "masac-gru-c4-zero",
        "4-step sequences, stored state, 2 burn-in steps": "masac-gru-c4-burn2",
    }
    rows = [
        "| MASAC GRU sequence replay | final mean [95% CI] | per seed | frames to 0.9, per seed |",
        "|---|---|---|---|",
    ]
    results["sequence_choices"] = {}
    for name, label in choices.items():
        values = finals("cue_recall", label)
        low, high = bootstrap_ci(values)
        hits = [frames_to("cue_recall", label, seed, 0.9) for seed in SEEDS]
        rows.append(f"| {name} | {values.mean():.3g} [{low:.3g}, {high:.3g}] | "
                    f"{', '.join(f'{v:.3g}' for v in values)} | {', '.join(str(h) for h in hits)} |")  # fmt: skip
        results["sequence_choices"][label] = {"final": values.tolist(), "frames_to_0.9": hits}
    lines += ["**Sequence-replay choices** on cue recall (MASAC, GRU; 4-step chunks cut the 5-step episodes).\n",
              *rows, ""]  # fmt: skip
    body = "\n".join(lines) + "\n" + READING
    write_section("memory_reading", "Memory matters: GRU against MLP actors (issue 15)", body, results)
    print(json.dumps(results, indent=1))


READING = """Per-run curves, frames to the threshold and wall-clock: the `onpolicy_cue_recall` and
`onpolicy_pendulum_pomdp` sections. Why an MLP cannot pass on cue recall: at the answer step every
agent's observation is the same whatever its cue, so a policy of the observation alone earns 0.25 in
expectation (envs/cue_recall.py).

**Sequence-replay choices, measured.** On cue recall they barely matter: every variant ends at 1.0
on every seed, and the frames to 0.9 differ by at most two evaluations (evaluations every 2k frames).
Burn-in is the slowest, because 2 of each 4-step chunk's steps carry no loss. A zero initial state is
not measurably worse here, which I did not expect and have not explained: episodes and chunks are
aligned (20-step rollouts, 5-step episodes), so no 4-step chunk holds an answer step together with its
episode's cue. A control with 1-step chunks from zeros (no memory can be trained) stays at 0.33 after
12k frames (one seed, `marlkit train masac envs/cue_recall algo.network=gru algo.chunk_len=1
algo.initial_state=zero`, the preset's other options), so the evaluation itself does not leak the cue.
Stored states stay the default; R2D2's case for them is longer episodes than this task has."""


if __name__ == "__main__":
    main()
