"""MADDPG against DDPG as the MADDPG paper evaluates them (Lowe et al. 2017, section 5, Figure 3): the two
teams of a competitive MPE task, each MADDPG or DDPG, are trained together in one teams run, and a pairing
is judged against the same opponent algorithm (issue 30, item 4). Two of the paper's tasks (``--task``):

* predator-prey (``simple_tag``, ``mpe/simple_tag_v3``): 3 predators (the group ``adversary``), 1 prey
  (the group ``agent``), 2 obstacles;
* physical deception (``simple_adversary``, ``mpe/simple_adversary_v3``): 2 cooperating agents (the group
  ``agent``) who know which of the 2 landmarks is the goal, and 1 adversary (the group ``adversary``) who
  does not; the agents are paid the adversary's distance to the goal minus their own nearest distance, the
  adversary minus its distance.

Both teams run with the paper's settings (openai/maddpg's defaults, the script's PAPER): Adam lr 0.01,
gradient-norm clip 0.5, tau 0.01, gamma 0.95, batch 1024, one gradient step per 100 frames, 64x64 MLPs, a
critic per agent, Gumbel-softmax actors on MPE's discrete actions with the 1e-3 logits regularizer, and
no learning before 25,600 frames (1024 x 25, the code's first update; here those frames are uniformly
random actions). A MADDPG team's critics see every agent's action, its own team's and the other team's
(``critic_sees=all``: at s' the other team's greedy actions on the next observations); DDPG's critics see
the agent's own observation and action. Differences from the paper's code: hard (straight-through)
Gumbel-softmax samples (the paper's MPE took the soft sample as a force vector), greedy evaluation (the
paper's sampled), mpe2's simple_tag, 16 env copies.

Measure: the final greedy evaluation (64 episodes) of each group's per-agent return. On predator-prey a
predator earns +10 for every touch of the prey by any predator, so the predators' return / 10 is touches
per episode, the paper's measure; on physical deception the returns are summed distances (the paper counts
successes within a distance, so its numbers are not comparable, only the directions). A pairing is named
``<adversary's algorithm>-<agents' algorithm>`` (predators-prey). Comparisons (each a Welch CI of the
difference, a permutation p, Holm over the four), e.g. on predator-prey:

* predators, MADDPG vs DDPG, against DDPG prey: maddpg-ddpg vs ddpg-ddpg (predators' return);
* predators, MADDPG vs DDPG, against MADDPG prey: maddpg-maddpg vs ddpg-maddpg;
* prey, MADDPG vs DDPG, against DDPG predators: ddpg-maddpg vs ddpg-ddpg (prey's return);
* prey, MADDPG vs DDPG, against MADDPG predators: maddpg-maddpg vs maddpg-ddpg.

One result file per run, ``results/<task>_<adversary>-<agents>_s<seed>.json``; a rerun skips existing
files, so seeds add up across sessions. One torch thread per run.

    python experiments/benchmarks/games/maddpg_pairs.py --seeds 0 1 2 [--pairs maddpg-ddpg,ddpg-ddpg]
    python experiments/benchmarks/games/maddpg_pairs.py --task simple_adversary --seeds 0 1 2
    python experiments/benchmarks/games/maddpg_pairs.py [--task simple_adversary] --report
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from _report import write_section

from marlkit.analysis.stats import ALPHA, holm, improvement, permutation_p, t_ci, welch_ci
from marlkit.training.experiment import Experiment, build_config

RESULTS = Path(__file__).parent / "results"
PAIRS = ("maddpg-ddpg", "ddpg-ddpg", "ddpg-maddpg", "maddpg-maddpg")
# openai/maddpg's defaults (train.py's arguments and maddpg.py's update), as each team's options.
PAPER = {
    "actor_lr": 0.01,
    "critic_lr": 0.01,
    "max_grad_norm": 0.5,
    "tau": 0.01,
    "gamma": 0.95,
    "batch_size": 1024,
    "updates_per_frame": 0.01,
    "hidden": [64, 64],
    "share_critic": False,
    "logits_reg": 1e-3,
    "warmup_frames": 25_600,
}
RUN = {"env.continuous_actions": False, "experiment.eval_episodes": 64, "experiment.progress": False,
       "experiment.tensorboard": False, "experiment.torch_threads": 1}  # fmt: skip


@dataclass(frozen=True)
class Task:
    env: str
    title: str  # the paper's name of the task
    sides: tuple[str, str]  # names of the groups ``adversary`` and ``agent`` in the report
    measure: str  # what a side's return means, for the report
    unit: str = ""  # the adversary's return in the paper's unit, for the table's header

    @property
    def groups(self) -> dict[str, str]:
        return dict(zip(self.sides, ("adversary", "agent"), strict=True))

    def comparisons(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(side, opponent algorithm): the pairings that put MADDPG and DDPG on the side against it."""
        adversary, agents = self.sides
        return {
            (adversary, "ddpg"): ("maddpg-ddpg", "ddpg-ddpg"),
            (adversary, "maddpg"): ("maddpg-maddpg", "ddpg-maddpg"),
            (agents, "ddpg"): ("ddpg-maddpg", "ddpg-ddpg"),
            (agents, "maddpg"): ("maddpg-maddpg", "maddpg-ddpg"),
        }


TASKS = {
    "simple_tag": Task("mpe/simple_tag_v3", "predator-prey", ("predators", "prey"),
                       "each group's per-agent return (the predators' is 10 x the touches per episode)",
                       " (touches x 10)"),
    "simple_adversary": Task("mpe/simple_adversary_v3", "physical deception", ("adversary", "agents"),
                             "each group's per-agent return (the agents': the adversary's distance to the goal "
                             "minus the agents' nearest, summed over the episode; the adversary's: minus its "
                             "distance)"),
}  # fmt: skip


def overrides(pair: str, frames: int, seed: int) -> dict:
    """The teams run of ``pair`` (predators-prey): both teams on PAPER, MADDPG's critics seeing all actions."""
    out = {**RUN, "experiment.frames": frames, "experiment.eval_every": frames // 4, "experiment.seed": seed}
    for team, algo in zip(("adversary", "agent"), pair.split("-"), strict=True):
        out[f"algo.{team}.play"] = algo
        out.update({f"algo.{team}.{k}": v for k, v in PAPER.items()})
        if algo == "maddpg":
            out[f"algo.{team}.critic_sees"] = "all"
    return out


def run(task: str, pair: str, frames: int, seed: int) -> dict:
    options = overrides(pair, frames, seed)
    config = build_config("teams", TASKS[task].env, options)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        summary = Experiment(config, run_dir).run()
        with (run_dir / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("eval_return_adversary")]
    curve = {side: [float(r[f"eval_return_{g}"]) for r in rows] for side, g in TASKS[task].groups.items()}
    return {"pair": pair, "seed": seed, "frames": summary["frames"], "wall_s": summary["wall_s"],
            **{side: values[-1] for side, values in curve.items()}, "eval_frames": [int(r["frames"])
            for r in rows], "curves": curve, "overrides": options}  # fmt: skip


def _of(name: str) -> str:
    """The possessive: predators', prey's."""
    return name + ("'" if name.endswith("s") else "'s")


def result_path(task: str, pair: str, seed: int) -> Path:
    return RESULTS / f"{task}_{pair}_s{seed}.json"


def report(task: str, frames: int) -> None:
    spec = TASKS[task]
    adversary, agents = spec.sides
    runs: dict[str, list[dict]] = {p: [] for p in PAIRS}
    for path in sorted(RESULTS.glob(f"{task}_*_s*.json")):
        result = json.loads(path.read_text())
        if result["pair"] in runs and result["frames"] == frames:
            runs[result["pair"]].append(result)
    rows = [f"| {adversary}-{agents} | runs | {_of(adversary)} return{spec.unit} [95% t-CI] | {_of(agents)} return "
            f"[95% t-CI] | per seed ({adversary} / {agents}) | wall-clock median (s) |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for pair, rs in runs.items():
        if not rs:
            continue
        cells = []
        for side in spec.groups:
            x = np.array([r[side] for r in rs])
            low, high = t_ci(x) if len(x) > 1 else (float("nan"), float("nan"))
            cells.append(f"{x.mean():.1f} [{low:.1f}, {high:.1f}]")
        per = ", ".join(f"{r['seed']}: {r[adversary]:.0f} / {r[agents]:.0f}" for r in rs)
        rows.append(f"| {pair} | {len(rs)} | {cells[0]} | {cells[1]} | {per} | "
                    f"{np.median([r['wall_s'] for r in rs]):.0f} |")  # fmt: skip
    tests = []
    for (side, opponent), (with_maddpg, with_ddpg) in spec.comparisons().items():
        a = np.array([r[side] for r in runs[with_maddpg]])
        b = np.array([r[side] for r in runs[with_ddpg]])
        if len(a) >= 2 and len(b) >= 2:
            tests.append((side, opponent, a, b))
    raw = [permutation_p(a, b) for *_, a, b in tests]
    adjusted = holm(raw) if tests else []
    lines, results = ["\n".join(rows), ""], {"frames": frames, "paper": PAPER, "comparisons": []}
    for (side, opponent, a, b), p, p_holm in zip(tests, raw, adjusted, strict=True):
        diff, (low, high) = float(a.mean() - b.mean()), welch_ci(a, b)
        verdict = ("MADDPG ahead" if diff > 0 else "DDPG ahead") if p_holm < ALPHA else "not separated"
        p_better = improvement([a], [b])
        lines.append(f"- **{side}, against {opponent.upper()} {agents if side == adversary else adversary}:** "
                     f"MADDPG − DDPG = {diff:+.1f} [{low:+.1f}, {high:+.1f}] (95% Welch CI, {len(a)} and {len(b)} "
                     f"runs), permutation p {p:.2g}, Holm over {len(tests)} p {p_holm:.2g}: "
                     f"{verdict}; P(MADDPG better) {p_better:.2f}.")  # fmt: skip
        results["comparisons"].append({"side": side, "opponent": opponent, "diff": diff, "ci": [low, high],
                                       "p": p, "p_holm": p_holm, "verdict": verdict,
                                       "p_improvement": p_better})  # fmt: skip
    results["runs"] = {p: [{k: r[k] for k in ("seed", *spec.sides, "wall_s", "eval_frames", "curves")}
                           for r in rs] for p, rs in runs.items()}  # fmt: skip
    body = (
        f"Each pairing ({adversary}-{agents}) trained together in one teams run on {spec.env}, {frames:,} frames, "
        f"with the paper's settings on both teams (`{json.dumps(PAPER)}`), discrete actions (Gumbel-softmax "
        "actors); MADDPG teams' critics see every agent's action (`critic_sees=all`). Final greedy evaluation of "
        f"64 episodes: {spec.measure}. Result files: `experiments/benchmarks/games/results/{task}_*`.\n\n"
        + "\n".join(lines)
    )
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
    write_section(f"maddpg_pairs_{task}", f"MADDPG and DDPG trained together on {spec.title}, the paper's "
                  f"protocol and settings, {frames // 1000}k frames", body, results)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="simple_tag")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated adversary-agents pairings")
    parser.add_argument("--frames", type=int, default=600_000)
    parser.add_argument("--report", action="store_true", help="only write the report from the result files")
    args = parser.parse_args()
    pairs = args.pairs.split(",")
    if unknown := set(pairs) - set(PAIRS):
        raise SystemExit(f"unknown pairings {sorted(unknown)}; valid: {', '.join(PAIRS)}")
    torch.set_num_threads(1)
    if not args.report:
        RESULTS.mkdir(exist_ok=True)
        for seed in args.seeds:  # seed-major: an interrupted sweep leaves every pairing at about as many seeds
            for pair in pairs:
                path = result_path(args.task, pair, seed)
                if path.exists():
                    continue
                result = run(args.task, pair, args.frames, seed)
                path.write_text(json.dumps(result, indent=1))
                print(json.dumps({k: result[k] for k in ("pair", "seed", *TASKS[args.task].sides, "wall_s")}),
                      flush=True)  # fmt: skip
    report(args.task, args.frames)


if __name__ == "__main__":
    main()
