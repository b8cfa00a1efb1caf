"""DQN (N=1) on gym/CartPole-v1 against Stable-Baselines3 2.9.2 DQN with the same hyperparameters, same run.

Both use rl-baselines3-zoo's CartPole-v1 DQN config: 256x256 ReLU, lr 2.3e-3, batch 64, buffer 100k,
1000 random steps, 128 gradient steps after every 256 env steps, the target network copied once per
training burst, Huber loss, gradient clip 10, no double Q, one env, and epsilon from 1 to 0.04 linearly
over the first 8k steps (SB3: ``exploration_fraction`` 0.16 of 50k; marlkit: 0.88 at the end of its 1000
random steps, then linear to 0.04 at 8k: the same line).

SB3 runs in its own venv (``python experiments/benchmarks/peers/peers.py --setup`` makes ``.peers/sb3``)
in ONE ``learn()`` call, so its exploration schedule runs over the whole budget; a callback evaluates it
every EVERY steps. (The earlier harness called ``learn()`` once per evaluation, which restarted SB3's
schedule every 5k steps: its epsilon was 0.04 from step 800 on, an unfair comparison.) Both sides are
evaluated greedily, 16 episodes every EVERY steps, and both wall-clocks count training only. For each
seed the two run back to back, one torch thread each. Each run writes
``results/cartpole_dqn_<frames>k_<marlkit|sb3>_s<seed>.json``; a rerun skips existing files, so seeds can be added
across sessions (seeds 0-4's files hold the runs of 2026-12-06 as the section's raw JSON recorded them).

    python experiments/benchmarks/peers/dqn_vs_sb3.py [--seeds 0 1 2 3 4] [--frames 50000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _report import write_section
from _sides import result_path

from marlkit.analysis.stats import compare_task, verdict
from marlkit.training.experiment import Experiment, build_config

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).parent / "peer_drivers" / "sb3_dqn.py"
PYTHON = ROOT / ".peers" / "sb3" / "bin" / "python"
EVERY = 2_500
EPISODES = 16
TARGETS = (475.0, 500.0)
OVERRIDES = {
    "experiment.num_envs": 1,
    "experiment.eval_every": EVERY,
    "experiment.eval_episodes": EPISODES,
    "experiment.progress": False,
    "experiment.tensorboard": False,
    "algo.rollout_steps": 256,
    "algo.updates_per_frame": 0.5,
    "algo.warmup_frames": 1_000,
    "algo.eps_start": 0.88,
    "algo.eps_decay_frames": 7_000,
    "algo.eps_final": 0.04,
    "algo.lr": 2.3e-3,
    "algo.batch_size": 64,
    "algo.buffer_size": 100_000,
    "algo.hidden": [256, 256],
    "algo.target_period": 128,
    "algo.td_loss": "huber",
    "algo.double_q": False,
    "algo.n_step": 1,
    "algo.max_grad_norm": 10.0,
}


def run_marlkit(seed: int, frames: int) -> dict:
    cfg = build_config("dqn", "gym/CartPole-v1", {**OVERRIDES, "experiment.frames": frames, "experiment.seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        summary = Experiment(cfg, Path(tmp) / "run").run()
        with open(Path(tmp) / "run" / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("eval_return_mean")]
    curve = [float(r["eval_return_mean"]) for r in rows if int(r["frames"]) > 0]  # the untrained one left out
    epsilon = [float(r["epsilon"]) for r in rows if int(r["frames"]) > 0]
    return {"curve": curve, "epsilon": epsilon, "train_s": summary["wall_s"] - summary["eval_wall_s"]}


def run_sb3(seed: int, frames: int) -> dict:
    if not PYTHON.exists():
        raise SystemExit(f"{PYTHON} is missing; run `python experiments/benchmarks/peers/peers.py --setup` first")
    cmd = [str(PYTHON), str(DRIVER), str(frames), str(seed), "1", str(EVERY), str(EPISODES)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=DRIVER.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"SB3 DQN failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def steps_to(curve: list[float], target: float, frames: int) -> int | None:
    hit = next((i for i, v in enumerate(curve) if v >= target), None)
    return None if hit is None else (hit + 1) * EVERY


def summarize(run: dict, frames: int) -> dict:
    """A run's curve read: final and best evaluation, steps to each target, evaluations at 500."""
    curve = run["curve"]
    return {
        "final": curve[-1],
        "best": max(curve),
        **{f"steps_to_{t:.0f}": steps_to(curve, t, frames) for t in TARGETS},
        "evals_at_500": sum(v >= 500 for v in curve),
        **run,
    }


def censored(values: list[int | None], frames: int) -> np.ndarray:
    """Steps to a target, a run that never reached it counted at ``frames + EVERY`` (the next evaluation)."""
    return np.array([frames + EVERY if v is None else v for v in values], dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--report", action="store_true", help="only report the seeds whose result files exist")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners = {"marlkit": run_marlkit, "sb3": run_sb3}
    stem = f"cartpole_dqn_{args.frames // 1000}k"
    if args.report:
        args.seeds = [s for s in args.seeds if all(result_path(stem, side, s).exists() for side in runners)]
    runs = []
    for seed in args.seeds:
        run = {"seed": seed}
        for side, runner in runners.items():
            path = result_path(stem, side, seed)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(summarize(runner(seed, args.frames), args.frames)))
            run[side] = json.loads(path.read_text())
        runs.append(run)
        print(json.dumps({"seed": seed, **{k: {m: run[k][m] for m in ("final", "steps_to_500", "train_s")}
                                           for k in runners}}), flush=True)  # fmt: skip
    rows = [
        "| | final eval, per seed | steps to the first eval >= 475, per seed | steps to 500, per seed | evals at 500 "
        f"(of {args.frames // EVERY}), per seed | epsilon at 5k / 10k | training wall-clock median (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for who, label in (("marlkit", "marlkit `dqn`"), ("sb3", "SB3 2.9.2 `DQN`")):
        per = [r[who] for r in runs]
        eps = per[0]["epsilon"]
        final = ", ".join(f"{p['final']:.0f}" for p in per)
        rows.append(
            f"| {label} | {final} | "
            f"{', '.join(str(p['steps_to_475'] or 'never') for p in per)} | "
            f"{', '.join(str(p['steps_to_500'] or 'never') for p in per)} | "
            f"{', '.join(str(p['evals_at_500']) for p in per)} | {eps[1]:.2f} / {eps[3]:.2f} | "
            f"{statistics.median(p['train_s'] for p in per):.0f} |"
        )
    # The protocol on steps to 500 (fewer is better: compared as minus steps) and on the final evaluations.
    sooner = {w: -censored([r[w]["steps_to_500"] for r in runs], args.frames) for w in ("marlkit", "sb3")}
    finals = {w: np.array([r[w]["final"] for r in runs]) for w in ("marlkit", "sb3")}
    pair = compare_task(sooner)[0]
    diff = float(sooner["sb3"].mean() - sooner["marlkit"].mean())  # marlkit's steps minus SB3's
    ci = pair.ci if pair.a == "sb3" else (-pair.ci[1], -pair.ci[0])
    ratio = statistics.median(r["marlkit"]["train_s"] / r["sb3"]["train_s"] for r in runs)
    results = {
        "frames": args.frames,
        "every": EVERY,
        "runs": runs,
        "steps_to_500": {"marlkit_minus_sb3": diff, "ci": list(ci), "p": pair.p, "verdict": verdict(sooner)},
        "final_verdict": verdict(finals),
        "wall_ratio_median": ratio,
    }
    print(json.dumps(results["steps_to_500"], indent=1))
    body = (
        "Same hyperparameters and exploration schedule for both (rl-baselines3-zoo's CartPole-v1 DQN config, see "
        f"the script); SB3 in one `learn()` call in its own venv. Greedy evaluation, {EPISODES} episodes every "
        f"{EVERY} steps; wall-clock counts training only, one torch thread each.\n\n"
        + "\n".join(rows)
        + f"\n\n**Steps to 500** (a run that never reached it counted at {args.frames + EVERY:,}): marlkit − SB3 = "
        f"{diff:+,.0f} [{ci[0]:+,.0f}, {ci[1]:+,.0f}] steps (95% Welch CI), permutation p = {pair.p:.2g}. "
        f"The protocol, on minus the steps (more is sooner): {verdict(sooner)}\n\n"
        f"**Final evaluation**: {verdict(finals)}\n\n"
        f"Training wall-clock, marlkit / SB3, median over seeds: {ratio:.2f}.\n\n"
        f"marlkit overrides: `{' '.join(f'{k}={json.dumps(v)}' for k, v in OVERRIDES.items())}`"
    )
    write_section("dqn_vs_sb3", f"DQN (N=1) on gym/CartPole-v1, {args.frames // 1000}k steps, against SB3", body,
                  results)  # fmt: skip


if __name__ == "__main__":
    main()
