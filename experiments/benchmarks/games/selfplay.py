"""Self-play on envs/duel: does the learner beat a random player and its own early snapshots?

``envs/duel`` is symmetric and zero-sum, and its returns name the winner. Team ``red`` learns with
PPO; team ``blue`` plays snapshots of red from red's pool (``pool:red``, uniform over every snapshot
so far: fictitious self-play), one snapshot per collection. After training, every snapshot of red's
pool (``RUN/pool/red/``) plays, with sampled actions (the game rewards mixed strategies), ``--episodes``
games on each side against

* a uniformly random player (``scripted:random``),
* red's first snapshot (frame 0, the untrained network),
* red's snapshot at ``--early`` of the run.

A win counts 1, a draw 1/2; the score is the mean over both sides and then over seeds, with a 95%
bootstrap CI over seeds. Seeds run one after another, each on one thread.

    python experiments/benchmarks/games/selfplay.py            # updates docs/benchmarks.md
    python experiments/benchmarks/games/selfplay.py --quick    # smoke run, JSON only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _report import write_section

from marlkit.adapters import make_env
from marlkit.algorithms.teams import Scripted
from marlkit.analysis.games import Lineup
from marlkit.analysis.stats import bootstrap_ci
from marlkit.learner import EnvInfo
from marlkit.training.config import build_config
from marlkit.training.evaluation import episode_returns
from marlkit.training.experiment import Experiment
from marlkit.training.runs import load_player

warnings.filterwarnings("ignore")
ENV = "envs/duel"


def score(red_player, blue_player, episodes: int, seed: int) -> float:
    """Red's score (win 1, draw 1/2) in ``episodes`` games with sampled actions."""
    env = make_env(ENV, episodes, "cpu", seed)
    torch.manual_seed(seed)
    returns = episode_returns(Lineup([red_player, blue_player]), env, seed, 100, deterministic=False)
    red, blue = returns["red"][:, 0], returns["blue"][:, 0]
    return float(((red > blue).float() + 0.5 * (red == blue).float()).mean())


def both_sides(snapshot: Path, opponent, info: EnvInfo, episodes: int, seed: int) -> float:
    """The snapshot's score as red and as blue, averaged; ``opponent(side)`` gives the other player."""
    as_red = score(load_player(str(snapshot), ["red"], info), opponent("blue"), episodes, seed)
    as_blue = 1.0 - score(opponent("red"), load_player(str(snapshot), ["red"], info, play=["blue"]), episodes, seed)
    return (as_red + as_blue) / 2


def run_seed(seed: int, frames: int, every: int, out: Path, episodes: int, early: float) -> dict:
    run = out / f"duel-selfplay-s{seed}"
    if not (run / "summary.json").exists():
        config = build_config(
            "teams",
            ENV,
            {
                "algo.red.play": "ppo",
                "algo.red.snapshot_every": every,
                "algo.blue.play": "pool",
                "algo.blue.opponent": "red",
                "experiment.frames": frames,
                "experiment.seed": seed,
                "experiment.eval_every": 0,
                "experiment.progress": False,
                "experiment.torch_threads": 1,
            },
        )
        Experiment(config, run).run()
    probe = make_env(ENV, 1, "cpu", 0)
    info = EnvInfo.of(probe)
    snapshots = sorted((run / "pool" / "red").glob("snapshot-*.pt"))
    frames_of = [int(p.stem.split("-")[1]) for p in snapshots]
    first = snapshots[0]
    early_snapshot = snapshots[int(np.argmin([abs(f - early * frames) for f in frames_of]))]

    def random(side: str):
        return Scripted("random", {side: info.groups[side]}, seed)

    def snapshot_player(path: Path):
        return lambda side: load_player(str(path), ["red"], info, play=[side])

    rows = []
    for path, f in zip(snapshots, frames_of, strict=True):
        rows.append(
            {
                "frames": f,
                "vs_random": both_sides(path, random, info, episodes, seed),
                "vs_first": both_sides(path, snapshot_player(first), info, episodes, seed),
                "vs_early": both_sides(path, snapshot_player(early_snapshot), info, episodes, seed),
            }
        )
    return {"seed": seed, "early_frames": int(early_snapshot.stem.split("-")[1]), "curve": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--every", type=int, default=30_000, help="frames between snapshots")
    parser.add_argument("--episodes", type=int, default=500, help="games per side and opponent")
    parser.add_argument("--early", type=float, default=0.1, help="the early snapshot, as a fraction of the run")
    parser.add_argument("--out", default="runs/bench/selfplay")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.seeds, args.frames, args.every, args.episodes = "0", 20_000, 10_000, 50
        args.out = "/tmp/marlkit-selfplay-quick"
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = [run_seed(s, args.frames, args.every, Path(args.out), args.episodes, args.early) for s in seeds]
    table = []
    for k, row in enumerate(per_seed[0]["curve"]):
        entry = {"frames": row["frames"]}
        for key in ("vs_random", "vs_first", "vs_early"):
            values = np.array([s["curve"][k][key] for s in per_seed])
            low, high = bootstrap_ci(values)
            entry[key] = [round(float(values.mean()), 3), round(low, 3), round(high, 3)]
        table.append(entry)
    results = {
        "seeds": seeds,
        "frames": args.frames,
        "every": args.every,
        "episodes": args.episodes,
        "early_frames": [s["early_frames"] for s in per_seed],
        "table": table,
        "per_seed": per_seed,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(results))
    if args.quick:
        return
    lines = [
        f"PPO self-play on envs/duel (red learns, blue plays red's pool uniformly), {len(seeds)} seeds x "
        f"{args.frames} frames, a snapshot every {args.every} frames. Score of each snapshot (win 1, draw 1/2; "
        f"{args.episodes} games per side with sampled actions, both sides averaged): mean over seeds [95% bootstrap "
        "CI]. 0.5 is an even match.",
        "",
        "| frames | vs random | vs first snapshot (frame 0) | vs early snapshot |",
        "|---|---|---|---|",
    ]
    for e in table:
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in (e["vs_random"], e["vs_first"], e["vs_early"])]
        lines.append(f"| {e['frames']} | " + " | ".join(cells) + " |")
    lines += ["", f"Early snapshot frames per seed: {results['early_frames']}. Wall-clock {results['wall_s']} s."]
    write_section("selfplay", "Self-play win rates on envs/duel (issue 16)", "\n".join(lines), results)


if __name__ == "__main__":
    main()
