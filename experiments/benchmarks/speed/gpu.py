"""The GPU check: VMAS collection throughput on CUDA, host syncs per step, one short run per family.

    python experiments/benchmarks/speed/gpu.py --json gpu.json             # on a CUDA machine (about 5 minutes)
    python experiments/benchmarks/speed/gpu.py --docs gpu.json    # here: that JSON into docs/benchmarks/speed.md
    MARLKIT_GPU_DEVICE=cpu python experiments/benchmarks/speed/gpu.py --quick   # smoke test without a GPU

``experiments/benchmarks/speed/gpu.sh`` runs this and ``tests/test_cuda.py`` together. Collection uses the
default MAPPO policy (sampling included) on vmas/navigation with 3 agents, timed after a warm-up call,
with ``torch.cuda.synchronize()`` before the clock stops. A frame is one step of one env copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from _report import write_section

from marlkit import make_env
from marlkit.algorithms import algorithm
from marlkit.core.devicecheck import count_syncs, off_device, syncs_by_file
from marlkit.training.experiment import Experiment, build_config
from marlkit.training.rollout import RolloutCollector

warnings.filterwarnings("ignore")

# One short run per family on vmas/navigation (3 agents, 100-step episodes); sizes keep each under a minute.
RUNS: dict[str, dict[str, Any]] = {
    "mappo": {"experiment.num_envs": 1024, "experiment.frames": 1024 * 100 * 4, "algo.rollout_steps": 100},
    "hatrpo": {"experiment.num_envs": 1024, "experiment.frames": 1024 * 100 * 4, "algo.rollout_steps": 100},
    "maddpg": {"experiment.num_envs": 64, "experiment.frames": 40_000, "algo.rollout_steps": 25},
    "masac": {"experiment.num_envs": 64, "experiment.frames": 40_000, "algo.rollout_steps": 25},
    "mambpo": {
        "experiment.num_envs": 64,
        "experiment.frames": 10_000,
        "algo.updates_per_frame": 0.5,
        "algo.rollouts_per_frame": 50,
        "algo.model.max_epochs": 10,
    },
    "pets": {"experiment.num_envs": 16, "experiment.frames": 1_600, "algo.retrain_every": 400},
}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def collection(device: str, num_envs: int, steps: int, repeats: int) -> dict[str, Any]:
    env = make_env("vmas/navigation", num_envs, device, 0)
    spec = algorithm("mappo")
    learner = spec.build(spec.default_config(), env, 0).to(device)
    collector = RolloutCollector(env, learner.act, steps)
    collector.collect()
    rates = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        collector.collect()
        sync()
        rates.append(num_envs * steps / (time.perf_counter() - start))
    with count_syncs() as counts:
        collector.collect()
    return {
        "device": device,
        "num_envs": num_envs,
        "frames_per_s": sorted(rates)[len(rates) // 2],
        "syncs_per_step": {f: n / steps for f, n in syncs_by_file(counts).items()},
        "sync_lines": dict(counts.most_common(12)),
    }


def train(algo: str, device: str, overrides: dict[str, Any]) -> dict[str, Any]:
    config = build_config(
        algo,
        "vmas/navigation",
        {
            "experiment.device": device,
            "experiment.progress": False,
            "experiment.tensorboard": False,
            "experiment.eval_every": 0,
            **overrides,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment(config, Path(tmp) / "run")
        start = time.perf_counter()
        result = experiment.run()
        wall = time.perf_counter() - start
        stray = off_device(experiment.learner, device)
    return {
        "frames": config.experiment.frames,
        "num_envs": config.experiment.num_envs,
        "wall_s": round(wall, 1),
        "frames_per_s": round(config.experiment.frames / wall),
        "final_eval_return": result["final_eval_return_mean"],
        "tensors_off_device": stray,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--docs", metavar="JSON", help="write a results file into docs/benchmarks.md and exit")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if args.docs:
        write_docs(json.loads(Path(args.docs).read_text()))
        return
    device = os.environ.get("MARLKIT_GPU_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "collection": [],
        "training": {},
    }
    sizes = [(device, 256, 10)] if args.quick else [(device, 1024, 100), (device, 8192, 100), (device, 30_000, 50)]
    if not args.quick and device != "cpu":
        sizes += [("cpu", 1024, 100), ("cpu", 8192, 25)]  # the same machine's CPU, for the ratio
    for dev, n, steps in sizes:
        try:
            results["collection"].append(collection(dev, n, steps, repeats=1 if args.quick else 3))
        except Exception as err:
            results["collection"].append({"device": dev, "num_envs": n, "error": _error(err)})
        print(json.dumps(results["collection"][-1]), flush=True)
    if not args.skip_training:
        for algo, overrides in RUNS.items():
            if args.quick:
                overrides = {**overrides, "experiment.frames": 300 if algo == "pets" else 2_000}
                overrides = {**overrides, "experiment.num_envs": 4, "algo.rollout_steps": 25}
            try:
                results["training"][algo] = train(algo, device, overrides)
            except Exception as err:
                results["training"][algo] = {"error": _error(err)}
            print(algo, json.dumps(results["training"][algo]), flush=True)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


def _error(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)[-6:])


def write_docs(results: dict[str, Any]) -> None:
    m = results["machine"]
    lines = [
        "`tests/test_cuda.py` passed in the same call. The CPU rows "
        "are that machine's CPU. Host syncs are counted with `torch.cuda.set_sync_debug_mode` over one "
        "collection and divided by its steps; marlkit's are the documented ones (`marlkit/core/devicecheck.py`), "
        "all others are inside VMAS.",
        "",
        "| device | env copies | frames/s | host syncs per step: marlkit | inside VMAS |",
        "|---|---|---|---|---|",
    ]
    for c in results["collection"]:
        if "error" in c:
            lines.append(f"| {c['device']} | {c['num_envs']} | failed | {c['error'].splitlines()[-1]} | |")
            continue
        ours = {f: n for f, n in c["syncs_per_step"].items() if f.startswith("marlkit/")}
        vmas = sum(n for f, n in c["syncs_per_step"].items() if f.startswith("vmas/"))
        ours_text = ", ".join(f"{f.removeprefix('marlkit/')}: {n:g}" for f, n in ours.items()) or "none"
        lines.append(f"| {c['device']} | {c['num_envs']} | {c['frames_per_s']:,.0f} | {ours_text} | {vmas:.1f} |")
    lines += [
        "",
        "| algorithm | env copies | frames | wall (s) | frames/s | final eval return |",
        "|---|---|---|---|---|---|",
    ]
    for algo, r in results["training"].items():
        if "error" in r:
            lines.append(f"| {algo} | | | failed: {r['error'].splitlines()[-1]} | | |")
            continue
        ret = r["final_eval_return"]
        ret_text = f"{ret:.3f}" if isinstance(ret, float) else str(ret)
        lines.append(
            f"| {algo} | {r['num_envs']} | {r['frames']:,} | {r['wall_s']} | {r['frames_per_s']:,} | {ret_text} |"
        )
    lines += [
        "",
        "Reading: marlkit adds two host syncs per step (the VMAS adapter's `done.any()` before resets and the "
        "NaN/inf check of the env's outputs, one sync for all tensors) and three per collection (episode "
        "statistics); VMAS itself synchronises about 96 times per step in navigation, so the simulator, not "
        "marlkit, bounds small-batch GPU throughput. The training rows check that every family runs on CUDA "
        "with all parameters and buffers there (`tensors_off_device` is empty); they are too short to compare "
        "returns. To run the check where Python lacks marlkit's dependencies (the H200 image has torch "
        "but neither tensordict nor VMAS), put cp312 wheels in `.whl/` first: `pip download --no-deps "
        "--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 "
        "--platform manylinux2014_x86_64 -d .whl tensordict==0.14.3 orjson pyvers pyglet==1.5.27 gym-notices "
        "importlib_metadata` and `pip wheel --no-deps -w .whl vmas==1.5.2 gym==0.26.2`; `gpu.sh` installs them "
        "into /tmp/site beside that machine's own torch.",
    ]
    write_section(
        "gpu",
        "GPU check (VMAS on CUDA)",
        "\n".join(lines),
        results,
        "bash experiments/benchmarks/speed/gpu.sh",
        f"{m['gpu']}, {m['cpu_cores']} CPU cores, torch {m['torch']}, Python {m['python']}",
    )


if __name__ == "__main__":
    main()
