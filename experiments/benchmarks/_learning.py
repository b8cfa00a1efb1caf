"""Shared driver of the learning benchmarks: run algos x seeds of a preset, summarize, write the docs.

A preset's runs of one algorithm (or labelled variant, ``hatrpo-gru``) are a sweep config: the driver
writes it to ``runs/bench/<preset>/<label>/sweep.yaml`` and runs it as ``marlkit compare --config`` does
(:func:`marlkit.analysis.sweep.compare`), so a finished run is skipped and an interrupted one resumes
from its last checkpoint. The same runs by hand::

    marlkit compare --config runs/bench/<preset>/<label>/sweep.yaml --seeds 0,1,2 --out runs/bench/<preset>/<label>
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from _report import write_section  # noqa: E402

from marlkit.analysis import sweep  # noqa: E402
from marlkit.analysis.stats import bootstrap_ci  # noqa: E402
from marlkit.analysis.stats import verdict as significance  # noqa: E402
from marlkit.training.config import load_config_file  # noqa: E402


def algorithm_of(preset: dict, label: str) -> str:
    """A variant's label (``hatrpo-gru``) names its algorithm in ``algo_of``; its options are in ``algo_overrides``."""
    return preset.get("algo_of", {}).get(label, label)


def sweep_config(preset: dict, label: str) -> dict:
    """The preset's runs of ``label`` as a sweep config file's tables (``marlkit compare --config``)."""
    tables: dict[str, dict] = {"algo": {}, "env": {}, "experiment": {}}
    for key, value in {**preset["overrides"], **preset.get("algo_overrides", {}).get(label, {})}.items():
        section, _, name = key.partition(".")
        tables[section][name] = value
    return {"algos": [algorithm_of(preset, label)], "envs": [preset["env"]], "frames": preset["frames"], **tables}


def run_dir(out_root: Path, name: str, preset: dict, label: str, seed: int) -> Path:
    """Where a preset's run lives: the sweep's layout under ``runs/bench/<preset>/<label>``."""
    return out_root / name / label / sweep.slug(preset["env"]) / sweep.slug(algorithm_of(preset, label)) / f"seed{seed}"


def run_seeds(preset: dict, name: str, label: str, seeds: list[int], out_root: Path, jobs: int = 1) -> dict[int, dict]:
    """Run (or skip, or resume) the seeds of one label through the sweep; their summaries by seed."""
    out = out_root / name / label
    out.mkdir(parents=True, exist_ok=True)
    config = out / "sweep.yaml"
    config.write_text(yaml.safe_dump(sweep_config(preset, label), sort_keys=False))
    names, overrides = load_config_file(str(config))
    result = sweep.compare(names["algos"], names["envs"], seeds, out, names["frames"], overrides, jobs=jobs,
                           progress=False)  # fmt: skip
    if result["failed"] or result["interrupted"]:
        raise SystemExit(f"{name}/{label}: failed {result['failed']}, interrupted {result['interrupted']}")
    return {s: json.loads((run_dir(out_root, name, preset, label, s) / "summary.json").read_text()) for s in seeds}


def run_one(preset: dict, name: str, label: str, seed: int, out_root: Path) -> dict:
    return run_seeds(preset, name, label, [seed], out_root)[seed]


def final_eval(run_dir: Path, episodes: int) -> dict[str, float]:
    """A larger deterministic evaluation of the final checkpoint (``marlkit eval``), cached in the run
    directory: the periodic evaluations of some presets are a few episodes and noisy."""
    path = run_dir / f"final_eval_{episodes}.json"
    if not path.exists():
        from marlkit.training.evaluation import evaluate_run

        result = evaluate_run(run_dir, episodes, "last")
        path.write_text(json.dumps(result))
    groups = [v for v in json.loads(path.read_text()).values() if isinstance(v, dict)]
    return groups[0]  # single-group (N=1) presets


def frames_to_target(run_dir: Path, measure: str, target: float | None) -> tuple[int | None, float | None]:
    """The first evaluation after training started that reaches ``target``, and its wall-clock."""
    if target is None:
        return None, None
    with open(run_dir / "timing.csv") as f:
        wall = {int(r["frames"]): float(r["wall_s"]) for r in csv.DictReader(f)}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if int(row["frames"]) > 0 and row.get(measure) and float(row[measure]) >= target:
                return int(row["frames"]), wall[int(row["frames"])]
    return None, None


def main(presets: dict[str, dict], family: str) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("preset", choices=sorted(presets))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (each gets cores / jobs threads)")
    args = parser.parse_args()
    preset = presets[args.preset]
    measure = preset["measure"]
    results: dict[str, dict] = {}
    for algo in args.algos or preset["algos"]:
        runs = []
        summaries = run_seeds(preset, args.preset, algo, args.seeds, Path(args.out), args.jobs)
        for seed in args.seeds:
            summary = summaries[seed]
            where = run_dir(Path(args.out), args.preset, preset, algo, seed)
            final = {
                "eval_return_mean": summary["final_eval_return_mean"],
                "eval_return_team": summary["final_eval_return_team"],
            }[measure]
            frames_hit, wall_hit = frames_to_target(where, measure, preset["target"])
            runs.append(
                {
                    "seed": seed,
                    "final": final,
                    "wall_s": summary["wall_s"],
                    # The periodic evaluations' share of wall_s (runs from before it was recorded: None).
                    "eval_wall_s": summary.get("eval_wall_s"),
                    "frames_to_target": frames_hit,
                    "wall_s_to_target": wall_hit,
                    **(
                        {"final_eval": final_eval(where, preset["final_eval_episodes"])}
                        if "final_eval_episodes" in preset
                        else {}
                    ),
                    # Planner profiles (PETS) ride along in summary.json.
                    **{k: summary[k] for k in ("plan_s_per_step", "plan_forward_share") if k in summary},
                }
            )
            print(json.dumps({"algo": algo, **runs[-1]}), flush=True)
        finals = [r["final"] for r in runs]
        walls = [r["wall_s"] for r in runs]
        results[algo] = {
            "runs": runs,
            "median": statistics.median(finals),
            "min": min(finals),
            "max": max(finals),
            "median_wall_s": statistics.median(walls),
        }
    print(json.dumps(results, indent=1))
    write_docs(args, preset, results, family)


def plot_curves(out_root: Path, preset_name: str, algos: list[str], seeds: list[int], preset: dict, name: str) -> str:
    """Evaluation return against frames, one line per seed and the mean over seeds per algorithm, into
    docs/img/<name>.png; returns the path relative to the topic pages (docs/benchmarks/)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, algo in enumerate(algos):
        color = f"C{k}"
        curves = []
        for seed in seeds:
            with open(run_dir(out_root, preset_name, preset, algo, seed) / "metrics.csv") as f:
                rows = [r for r in csv.DictReader(f) if r.get(preset["measure"])]
            frames = [int(r["frames"]) for r in rows]
            values = [float(r[preset["measure"]]) for r in rows]
            ax.plot(frames, values, color=color, alpha=0.25, linewidth=1)
            curves.append((frames, values))
        length = min(len(v) for _, v in curves)
        mean = [statistics.fmean(v[i] for _, v in curves) for i in range(length)]
        ax.plot(curves[0][0][:length], mean, color=color, linewidth=2, label=f"{algo} (mean of {len(seeds)} seeds)")
    ax.set_xlabel("environment steps (frames)")
    ax.set_ylabel(preset["measure"])
    ax.set_title(preset["title"], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = ROOT / "docs" / "img" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return f"../img/{name}.png"


def write_docs(args: argparse.Namespace, preset: dict, results: dict, family: str) -> None:
    target = preset["target"]
    rows = [
        f"| algo | {preset['measure']} mean [95% bootstrap CI] | median [min, max] over seeds {args.seeds} | "
        "per seed | wall-clock median (s), of it in evaluations | frames / wall-clock (s) to reach target, per seed |",
        "|---|---|---|---|---|---|",
    ]
    for algo, r in results.items():
        per_seed = ", ".join(f"{x['final']:.4g}" for x in r["runs"])
        hits = (
            ", ".join(
                f"{x['frames_to_target']} / {x['wall_s_to_target']:.0f}" if x["frames_to_target"] else "not reached"
                for x in r["runs"]
            )
            if target is not None
            else "n/a"
        )
        eval_walls = [x.get("eval_wall_s") for x in r["runs"]]
        in_evals = ", ".join("not recorded" if e is None else f"{e:.0f}" for e in eval_walls)
        finals = np.array([x["final"] for x in r["runs"]])
        low, high = bootstrap_ci(finals)
        rows.append(
            f"| {algo} | {finals.mean():.4g} [{low:.4g}, {high:.4g}] | {r['median']:.4g} [{r['min']:.4g}, "
            f"{r['max']:.4g}] | {per_seed} | "
            f"{r['median_wall_s']:.0f}; evaluations per seed: {in_evals} | {hits} |"
        )
    rows.append("\n" + significance({a: np.array([x["final"] for x in r["runs"]]) for a, r in results.items()}))
    for algo, r in results.items():
        if all("final_eval" in x for x in r["runs"]):
            evals = [x["final_eval"]["mean"] for x in r["runs"]]
            per_seed = ", ".join(f"{x['final_eval']['mean']:.4g} +- {x['final_eval']['std']:.3g}" for x in r["runs"])
            rows.append(
                f"\n{algo} final checkpoint, `marlkit eval --episodes {preset['final_eval_episodes']}` (mean +- std "
                f"over episodes), per seed: {per_seed}; median {statistics.median(evals):.4g}."
            )
        if all("plan_s_per_step" in x for x in r["runs"]):
            per_step = ", ".join(f"{x['plan_s_per_step'] * 1e3:.0f}" for x in r["runs"])
            share = ", ".join(f"{100 * x['plan_forward_share']:.0f}%" for x in r["runs"])
            rows.append(
                f"\n{algo} planning wall-clock per env step, per seed: {per_step} ms; share in the ensemble's "
                f"forward passes: {share}."
            )
    if preset.get("curves"):
        figure = plot_curves(Path(args.out), args.preset, list(results), args.seeds, preset, f"{family}_{args.preset}")
        rows.append(f"\n![evaluation return against frames, {preset['title']}]({figure})")
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in preset["overrides"].items())
    per_algo = "".join(
        f" {algo} also: `{' '.join(f'{k}={json.dumps(v)}' for k, v in extra.items())}`."
        for algo, extra in preset.get("algo_overrides", {}).items()
    )
    body = (
        f"{preset['reference']}\n\nConfig on top of each algorithm's defaults: `{overrides}`, "
        f"`experiment.frames={preset['frames']}`.{per_algo} Each algorithm's runs are one sweep config, "
        f"`runs/bench/{args.preset}/<algo>/sweep.yaml`, run as `marlkit compare --config` runs it (finished runs "
        "skipped, interrupted ones resumed). Wall-clock includes evaluations.\n\n" + "\n".join(rows)
    )
    write_section(f"{family}_{args.preset}", preset["title"], body, results)


def critic_fit(run_dir: Path) -> float:
    """The mean over groups of the last ``GROUP/critic_ev`` in a run's metrics.csv (explained variance of the
    critics' own value targets after the last update); NaN for a run without critics."""
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    values = [float(v) for k, v in rows[-1].items() if k.endswith("/critic_ev") and v not in ("", None)]
    return float(np.mean(values)) if values else math.nan
