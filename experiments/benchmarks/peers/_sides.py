"""What the side-by-side scripts share: one result file per run, a peer driver run in its own venv, and the
report of each marlkit side against the peer under the statistics protocol."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from marlkit.analysis.stats import ALPHA, compare_task, holm, improvement, t_ci
from marlkit.training.experiment import Experiment, build_config

RESULTS = Path(__file__).parent / "results"
DRIVERS = Path(__file__).parent / "peer_drivers"


def result_path(stem: str, side: str, seed: int) -> Path:
    """``results/<stem>_<side>_s<seed>.json``; ``stem`` names the task and algorithm."""
    return RESULTS / f"{stem}_{side}_s{seed}.json"


def load(stem: str, sides: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """The result files that exist, per side (sides without any left out)."""
    runs = {side: [json.loads(p.read_text()) for s in seeds if (p := result_path(stem, side, s)).exists()]
            for side in sides}  # fmt: skip
    return {side: r for side, r in runs.items() if r}


def run_driver(python: Path, script: str, args: list[str], setup_hint: str) -> dict:
    """Run a peer driver in its venv; its last JSON line is the result."""
    if not python.exists():
        raise SystemExit(f"{python} is missing; {setup_hint}")
    proc = subprocess.run([str(python), str(DRIVERS / script), *args], capture_output=True, text=True,
                          cwd=DRIVERS)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def report(runs: dict[str, list[dict]], labels: dict[str, str], peer: str) -> tuple[list[str], dict]:
    """A table of every side, then each of our sides against ``peer``: difference of means with its Welch CI,
    permutation p, Holm over the comparisons (they share the peer's runs), probability of improvement with
    a bootstrap CI, and the ratio of median training wall-clocks. Returns markdown lines and the numbers."""
    finals = {side: np.array([r["eval_return"] for r in rs]) for side, rs in runs.items()}
    rows = ["| side | runs | final eval return, mean [95% t-CI] | per seed | training wall-clock median (s) |",
            "|---|---|---|---|---|"]  # fmt: skip
    for side, rs in runs.items():
        x = finals[side]
        low, high = t_ci(x) if len(x) > 1 else (float("nan"), float("nan"))
        per = ", ".join(f"{v:.3g}" for v in x)
        rows.append(f"| {labels[side]} | {len(x)} | {x.mean():.3g} [{low:.3g}, {high:.3g}] | {per} | "
                    f"{np.median([r['wall_s'] for r in rs]):.0f} |")  # fmt: skip
    lines = ["\n".join(rows), ""]
    results: dict = {}
    compared = [s for s in runs if s != peer and peer in runs and len(runs[s]) > 1 and len(runs[peer]) > 1]
    pairs = {s: compare_task({labels[s]: finals[s], labels[peer]: finals[peer]})[0] for s in compared}
    adjusted = dict(zip(compared, holm([pairs[s].p for s in compared]), strict=True))
    for side in compared:
        a, b, pair = finals[side], finals[peer], pairs[side]
        p_improve = improvement([a], [b])
        low, high = improvement_ci(a, b)
        ratio = np.median([r["wall_s"] for r in runs[side]]) / np.median([r["wall_s"] for r in runs[peer]])
        claim = f"{pair.a} > {pair.b}" if adjusted[side] < ALPHA else "not separated"
        sentence = (f"{claim}: {pair.a} − {pair.b} = {pair.diff:+.3g} [{pair.ci[0]:+.3g}, {pair.ci[1]:+.3g}] "
                    f"(95% Welch CI), permutation p = {pair.p:.2g}, Holm over {len(compared)} comparison(s) "
                    f"p = {adjusted[side]:.2g}.")  # fmt: skip
        lines += [f"**{labels[side]} vs {labels[peer]}** ({len(a)} and {len(b)} runs): {sentence} Probability of "
                  f"improvement P({labels[side]} > {labels[peer]}) = {p_improve:.2f} [{low:.2f}, {high:.2f}] "
                  f"(bootstrap over runs). Training wall-clock ratio (medians): {ratio:.2f}.", ""]  # fmt: skip
        results[f"{side}_vs_{peer}"] = {"claim": claim, "diff": pair.diff, "ci": list(pair.ci), "p": pair.p,
                                        "p_holm": adjusted[side], "p_improvement": p_improve,
                                        "p_improvement_ci": [low, high], "wall_ratio": float(ratio)}  # fmt: skip
    return lines, results


def improvement_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    values = [improvement([a[rng.integers(0, len(a), len(a))]], [b[rng.integers(0, len(b), len(b))]])
              for _ in range(2000)]  # fmt: skip
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def run_marlkit(
    algo: str,
    env: str,
    overrides: dict[str, Any],
    fields: dict[str, Any] | None = None,
    measure: Callable[[Path, dict], dict] | None = None,
) -> dict:
    """One marlkit run in a temporary directory: its final evaluation, its training wall-clock (evaluations
    left out) and the whole algo table, so that a result file says which defaults it ran with after they
    change. ``fields`` go into the result; ``measure(run_dir, summary)`` reads more from the run before its
    directory goes (its keys replace the defaults')."""
    config = build_config(algo, env, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        summary = Experiment(config, run_dir).run()
        measured = measure(run_dir, summary) if measure is not None else {}
    return {"framework": "marlkit", "algo": algo, **(fields or {}), "eval_return": summary["final_eval_return_mean"],
            "wall_s": summary["wall_s"] - summary["eval_wall_s"], "frames": summary["frames"],
            "overrides": overrides, "algo_config": config.to_json()["algo"], **measured}  # fmt: skip


def stale(run: dict, env: str, options: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What a marlkit result file ran that its side would not run today: ``{key: (ran, now)}``. Algo options
    are compared through the whole algo table (``algo_config``) against what the side's options and
    today's defaults give: a default that changed after the run shows, while an option the side now states
    at the value the run had by default does not; options added after the run are left out (an added
    option's default keeps the former behaviour). Other options (env, experiment) are compared as
    overrides; so are algo options of files from before result files recorded their algo table."""
    ran = run.get("algo_config")
    diffs = {k: (run["overrides"].get(k), v) for k, v in options.items()
             if run["overrides"].get(k) != v and (ran is None or not k.startswith("algo."))}  # fmt: skip
    if ran is not None:
        config = build_config(run["algo"], env, {**run["overrides"], **options})
        now = json.loads(json.dumps(config.to_json()["algo"]))
        diffs.update({f"algo.{k}": (v, now.get(k)) for k, v in sorted(ran.items()) if now.get(k) != v})
    return diffs


def refuse_stale(stem: str, runs: dict[str, list[dict]], env: str, sides: Mapping[str, Mapping[str, Any]]) -> None:
    """Stop the report when a result file of a marlkit side (``sides``: each side's options today) ran other
    settings than its side runs today (its options changed, or marlkit's defaults did): keep such files
    under another side's name, or delete and rerun them."""
    for side, options in sides.items():
        for run in runs.get(side, []):
            if changed := stale(run, env, options):
                raise SystemExit(f"{result_path(stem, side, run['seed'])} ran other settings than side {side} runs "
                                 f"today: {changed} (ran, now); keep it under another side's name or delete it "
                                 "and rerun that side")  # fmt: skip


def run_missing(
    stem: str,
    seeds: list[int],
    sides: list[str],
    peer: str,
    run_peer: Callable[[int], dict],
    run_ours: Callable[[str, int], dict],
) -> None:
    """Run every (seed, side) whose result file is missing, seed by seed (the sides back to back on the
    same machine load), and write each result as it finishes: ``run_peer(seed)`` for the side ``peer``,
    ``run_ours(side, seed)`` for marlkit's sides."""
    RESULTS.mkdir(exist_ok=True)
    for seed in seeds:
        for side in sides:
            path = result_path(stem, side, seed)
            if path.exists():
                continue
            result = run_peer(seed) if side == peer else run_ours(side, seed)
            result = {**result, "seed": seed}
            path.write_text(json.dumps(result, indent=1))
            print(json.dumps({k: result[k] for k in ("framework", "seed", "eval_return", "wall_s")}), flush=True)
