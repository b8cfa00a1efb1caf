"""Wall-clock of marlkit against HARL and EPyMARL with nothing else running (issues 30 and 33).

The side-by-side scripts run their queues two at a time, one per core, so their wall-clock ratios carry
the other run's load (HARL's HAPPO took 788-1280 s per 1M-step run). This script runs each pairing alone,
one run at a time, at a budget where setup is small against training: the peer, then each marlkit side,
then the peer again (the peer's time is the mean of its two runs, so a drift of the machine during the
pairing shows as a difference between them). Each run as its side-by-side script runs it (one torch
thread; the same options, seed 0); the returns at this budget mean nothing and are left out.

    python experiments/benchmarks/peers/clean_wall_clock.py [--pairs harl-hatrpo,harl-happo,epymarl-vdn]
        [--frames 100000]

Run it alone: anything else on the machine invalidates the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import epymarl_side_by_side as epymarl
import harl_side_by_side as harl
import torch
from _report import write_section

# pairing -> (peer label, algorithm, the side-by-side module, its peer runner); each runner takes
# (algorithm, frames, seed), and the module's run_ours(algorithm, frames, seed, side) runs marlkit's sides.
PAIRINGS = {
    "harl-hatrpo": ("HARL", "hatrpo", harl, harl.run_harl),
    "harl-happo": ("HARL", "happo", harl, harl.run_harl),
    "epymarl-vdn": ("EPyMARL", "vdn", epymarl, epymarl.run_epymarl),
}


def time_pairing(name: str, frames: int) -> dict:
    label, algo, module, run_peer = PAIRINGS[name]
    sides = list(module.side_options(algo))
    first = run_peer(algo, frames, 0)["wall_s"]
    ours = {side: module.run_ours(algo, frames, 0, side)["wall_s"] for side in sides}
    last = run_peer(algo, frames, 0)["wall_s"]
    peer = (first + last) / 2
    result = {"peer": label, "algo": algo, "frames": frames, "peer_wall_s": [first, last],
              "marlkit_wall_s": ours, "ratio": {side: wall / peer for side, wall in ours.items()}}  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=",".join(PAIRINGS), help=f"comma-separated of {', '.join(PAIRINGS)}")
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.pairs.split(",")
    if unknown := [n for n in names if n not in PAIRINGS]:
        raise SystemExit(f"unknown pairings {unknown}; valid: {', '.join(PAIRINGS)}")
    results = {name: time_pairing(name, args.frames) for name in names}
    rows = ["| pairing | peer s (first, last) | marlkit side | marlkit s | ms per env step | marlkit / peer |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        first, last = r["peer_wall_s"]
        for side, wall in r["marlkit_wall_s"].items():
            rows.append(f"| {name} | {first:.0f}, {last:.0f} | {side} | {wall:.0f} | "
                        f"{1000 * wall / r['frames']:.2f} | {r['ratio'][side]:.2f} |")  # fmt: skip
    body = (
        f"Each pairing alone on the machine, {args.frames:,} env steps per run, seed 0, one torch thread, "
        "in the order peer, marlkit's sides, peer; the ratio divides by the mean of the peer's two runs. Every "
        "run is the side-by-side script's own (same options, same measure of wall-clock: HARL's and marlkit's "
        "training time; EPyMARL's and marlkit's with evaluations, as EPyMARL reports it).\n\n" + "\n".join(rows)
    )
    write_section("clean_wall_clock", "Wall-clock against HARL and EPyMARL, each pairing alone", body, results)


if __name__ == "__main__":
    main()
