"""marlkit and its peers side by side, in one run, on this machine: ratios of wall-clock and returns.

* MAPPO, MADDPG and MASAC on vmas/navigation (3 agents, 100 steps, shared reward) at 60k frames against
  BenchMARL 1.5.2 (its own TorchRL pin, 0.11), each with its own default configs;
* SAC (20k steps) and TRPO (100k steps) on Pendulum-v1 against Stable-Baselines3 / sb3-contrib 2.9.2;
* VMAS collection (navigation, random actions) against TorchRL's VmasEnv (marlkit's own TorchRL).

The peers live in their own virtualenvs under ``.peers/`` (git-ignored), made by ``--setup`` with the
same torch as marlkit's (2.13.0, the local CPU wheel; pip's cap keeps any dependency from pulling
another). Every pair runs back to back, marlkit first, on the same seed, so that both meet the same
machine load; nothing is reused from other runs.

    # once: .peers/benchmarl, sb3, harl, epymarl (PATH: git directories holding HARL's and EPyMARL's pins)
    python experiments/benchmarks/peers/peers.py --setup --git harl=PATH --git epymarl=PATH
    python experiments/benchmarks/peers/peers.py [--quick]    # run; without --quick, writes docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning"))  # the learning presets

import torch
from _report import write_section
from offpolicy_learning import PRESETS as OFFPOLICY_PRESETS
from onpolicy_learning import PRESETS as ONPOLICY_PRESETS
from sac_vs_sb3 import OVERRIDES as SAC_OVERRIDES

from marlkit.training.experiment import Experiment, build_config

ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / ".peers"
DRIVERS = Path(__file__).parent / "peer_drivers"
VENVS = {
    # BenchMARL pins TorchRL < 0.12; torchvision and av (video logging) are left out: PyPI's torchvision
    # does not load beside torch 2.13 and no code path used here imports either.
    "benchmarl": [
        "torch==2.13.0",
        "benchmarl==1.5.2 --no-deps",
        "torchrl==0.11.1",
        "tensordict>=0.11,<0.12",
        "vmas==1.5.2",
        "hydra-core",
        "tqdm",
    ],
    "sb3": ["torch==2.13.0", "stable-baselines3==2.9.2", "sb3-contrib==2.9.2", "gymnasium==1.4.0"],
    # HARL from its source (SOURCES), installed --no-deps: its setup.py asks only for torch and loggers.
    "harl": [
        "torch==2.13.0",
        "pyyaml",
        "tensorboardX",
        "setproctitle",
        "absl-py",
        "cloudpickle",
        "supersuit==3.11.0",
        "pettingzoo==1.27.0",
        "mpe2==1.1.1",
        "gymnasium==1.4.0",
    ],
    # EPyMARL runs from its source tree (no package); sacred needs pkg_resources (gone from setuptools 81) and
    # torch 2.13 asks for setuptools >= 77.0.3.
    "epymarl": [
        "torch==2.13.0",
        "sacred",
        "setuptools>=77.0.3,<81",
        "pyyaml",
        "numpy",
        "scipy",
        "gymnasium==1.4.0",
        "lbforaging==2.0.0",
        "rware==2.0.0",
    ],
}
# Peers installed from a pinned commit of their public source: (repository, commit, paths left out). The
# source comes from a git directory given to --setup as --git NAME=PATH (e.g. a clone or a fetched
# snapshot); DexHands' assets are left out (large, and unused here).
SOURCES = {
    "harl": ("PKU-MARL/HARL", "d539bad20f677bc4ce9fa200fa5de31b5f0b9d37", ["harl/envs/dexhands/DexterousHands"]),
    "epymarl": ("uoe-agents/epymarl", "cbc38c09588064eab978501d0f12c2cf58fa7fc2", []),
}
NAVIGATION = {"env.n_agents": 3, "env.max_steps": 100, "experiment.num_envs": 20}
NO_EVAL = {"experiment.eval_every": 0}  # wall-clock of training alone, as the peers' is measured
# marlkit's side: the configs of its own learning benchmarks for these tasks (docs/benchmarks.md).
MARLKIT = {
    "mappo": ("vmas/navigation", {**NAVIGATION, **NO_EVAL}),
    "maddpg": ("vmas/navigation", {**OFFPOLICY_PRESETS["navigation"]["overrides"], **NO_EVAL}),
    "masac": ("vmas/navigation", {**OFFPOLICY_PRESETS["navigation"]["overrides"], **NO_EVAL}),
    "sac": ("gym/Pendulum-v1", {**SAC_OVERRIDES, **NO_EVAL}),
    "trpo": ("gym/Pendulum-v1", {**ONPOLICY_PRESETS["pendulum"]["overrides"], **NO_EVAL}),
}
PAIRS = [  # (marlkit algo, frames, peer venv, peer driver and its arguments before FRAMES)
    ("mappo", 60_000, "benchmarl", ("benchmarl_vmas.py", "navigation")),
    ("maddpg", 60_000, "benchmarl", ("benchmarl_vmas.py", "navigation")),
    ("masac", 60_000, "benchmarl", ("benchmarl_vmas.py", "navigation")),
    ("sac", 20_000, "sb3", ("sb3_pendulum.py",)),
    ("trpo", 100_000, "sb3", ("sb3_pendulum.py",)),
]


def install_source(name: str, git_dir: str | None, pip: list[str]) -> None:
    """Export the pinned commit of a source-installed peer into .peers/NAME-src and install it (no deps)."""
    repo, commit, excluded = SOURCES[name]
    src = PEERS / f"{name}-src"
    if not (src / "COMMIT").exists() or (src / "COMMIT").read_text().strip() != commit:
        if git_dir is None:
            raise SystemExit(f"{name}: give a git directory of {repo} holding {commit}: --git {name}=PATH")
        src.mkdir(parents=True, exist_ok=True)
        pathspec = ["--", ".", *(f":(exclude){path}" for path in excluded)]
        archive = subprocess.run(["git", "--git-dir", git_dir, "archive", commit, *pathspec], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (src / "COMMIT").write_text(commit + "\n")
    if (src / "setup.py").exists() or (src / "pyproject.toml").exists():  # EPyMARL runs from its tree
        subprocess.run([*pip, "--no-deps", "-e", str(src)], check=True)


def setup(git_dirs: dict[str, str]) -> None:
    for name, requirements in VENVS.items():
        venv = PEERS / name
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, requirements[0]], check=True)  # torch first: the others must keep it
        plain = [r for r in requirements[1:] if "--no-deps" not in r]
        subprocess.run([*pip, *plain, "torch==2.13.0"], check=True)
        for r in requirements[1:]:
            if "--no-deps" in r:
                subprocess.run([*pip, "--no-deps", r.split()[0]], check=True)
        if name in SOURCES:
            install_source(name, git_dirs.get(name), pip)
        version = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"{name}: torch {version}", flush=True)


def run_marlkit(algo: str, frames: int, seed: int) -> dict:
    env, overrides = MARLKIT[algo]
    config = build_config(
        algo,
        env,
        {**overrides, "experiment.frames": frames, "experiment.seed": seed, "experiment.progress": False},
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = Experiment(config, Path(tmp) / "run").run()
    result = {"eval_return": summary["final_eval_return_mean"], "wall_s": summary["wall_s"]}
    return {"framework": "marlkit", "algo": algo, **result}


def run_peer(venv: str, driver: tuple[str, ...], algo: str, frames: int, seed: int) -> dict:
    """``driver``: the driver script and the arguments it takes between ALGO and FRAMES (a VMAS task)."""
    python = PEERS / venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing; run `python {Path(__file__).relative_to(ROOT)} --setup` first")
    script, *task = driver
    cmd = [str(python), str(DRIVERS / script), algo, *task, str(frames), str(seed), str(torch.get_num_threads())]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=DRIVERS)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{venv} {algo} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def collection(num_envs: int, steps: int) -> dict:
    from collection_throughput import measure, vmas_variants

    variants = vmas_variants(num_envs, steps)
    return measure({k: variants[k] for k in ("marlkit_collector", "torchrl_vmasenv")}, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", action="store_true", help="make the peers' virtualenvs under .peers/")
    parser.add_argument("--quick", action="store_true", help="tiny budgets, no docs (checks the plumbing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--git", action="append", default=[], metavar="NAME=PATH",
                        help="--setup: a git directory holding a source-installed peer's pinned commit")  # fmt: skip
    args = parser.parse_args()
    if args.setup:
        setup(dict(item.split("=", 1) for item in args.git))
        return
    warnings.filterwarnings("ignore")
    pairs = []
    for algo, frames, venv, driver in PAIRS:
        frames = min(frames, 6_000 if venv == "benchmarl" else 2_048) if args.quick else frames
        ours = run_marlkit(algo, frames, args.seed)
        peer = run_peer(venv, driver, algo, frames, args.seed)
        pair = {"algo": algo, "frames": frames, "marlkit": ours, "peer": peer}
        pair["wall_ratio"] = round(ours["wall_s"] / peer["wall_s"], 3)
        pairs.append(pair)
        print(json.dumps(pair), flush=True)
    results = {
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "pairs": pairs,
        "collection_fps": collection(64 if args.quick else 1024, 20 if args.quick else 100),
    }
    print(json.dumps(results, indent=1))
    if not args.quick:
        write_section("peers", "marlkit and its peers in one run (issue: scale)", report(results), results)


def report(r: dict) -> str:
    lines = [
        f"Seed {r['seed']}, {r['threads']} torch threads, every pair back to back (marlkit first). Wall-clock is "
        "training only (marlkit: its `wall_s`, which includes no evaluation here; peers: their `learn`/`run` call). "
        "Eval return: deterministic policy, mean over agents of the episode return, 16 episodes after training. "
        "Each side uses its own configuration for the task (BenchMARL: its defaults, 256x256 tanh MLPs, "
        "6000 frames per batch; SB3: as listed in the drivers), so the ratio is what a user of each gets.",
        "",
        "| algorithm | task | frames | marlkit return | peer | peer return | marlkit s | peer s | "
        "wall-clock ratio marlkit / peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["pairs"]:
        task = MARLKIT[p["algo"]][0]
        lines.append(
            f"| {p['algo']} | {task} | {p['frames']:,} | {p['marlkit']['eval_return']:.3g} | "
            f"{p['peer']['framework']} | "
            f"{p['peer']['eval_return']:.3g} | {p['marlkit']['wall_s']:.1f} | {p['peer']['wall_s']:.1f} | "
            f"{p['wall_ratio']:.2f} |"
        )
    fps = r["collection_fps"]
    ratio = fps["marlkit_collector"] / fps["torchrl_vmasenv"]
    lines += [
        "",
        f"VMAS collection (navigation, 3 agents, 1024 envs x 100 steps, a 64x64 policy, median of 3): marlkit "
        f"{fps['marlkit_collector']:,.0f} frames/s, TorchRL 0.14.1 VmasEnv stepped in a loop "
        f"{fps['torchrl_vmasenv']:,.0f} "
        f"frames/s: {ratio:.2f}x.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)
