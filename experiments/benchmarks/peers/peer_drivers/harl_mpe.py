"""Runs inside the HARL venv (experiments/benchmarks/peers/peers.py --setup makes it from HARL's source at
a pinned commit): one HARL run of ALGO on continuous simple_spread with HARL's tuned config for it
(``tuned_configs/pettingzoo_mpe/simple_spread_v2-continuous/ALGO/config.json``), then a deterministic
evaluation; prints one JSON line.

    .peers/harl/bin/python harl_mpe.py ALGO FRAMES SEED THREADS [OVERRIDES_JSON]

The env: HARL imports ``pettingzoo.mpe.simple_spread_v2``, which PettingZoo 1.27 no longer has. This
driver points that name at ``mpe2.simple_spread_v3`` (the MPE that marlkit's ``mpe/simple_spread_v3``
runs), so both frameworks run the same env; HARL's own wrapper (padding, its 25-step limit, state) is
unchanged. HARL's periodic evaluation is off while training (training wall-clock alone, as marlkit's is
measured); one evaluation of HARL's own (its eval envs, deterministic actions, ``eval_episodes``) runs
at the end. HARL's wrapper gives every agent the team reward (the sum of the agents' rewards), so the
mean over agents of its evaluation returns, reported as ``eval_return``, is the team return. The only
change to HARL's code: its wrapper's ``unwrap`` also accepts the ``(observations, infos)`` that
PettingZoo >= 1.22's ``reset`` returns.

The vector env: HARL's tuned ``n_rollout_threads`` (20 envs) step in HARL's own in-process
``ShareDummyVecEnv`` rather than 20 ``ShareSubprocVecEnv`` worker processes. Both make the same envs with
the same seeds (``seed + rank * 1000``) and the same reset-on-done logic, so learning is unchanged (seed 0,
20k steps: the same evaluation return, -68.28, either way); one process keeps a run on one core, at the
same speed here (25 s against 23 s for 20k steps). ``"vec_env": "subproc"`` in OVERRIDES_JSON restores
HARL's worker processes.

OVERRIDES_JSON (optional): ``{"algo": {...}, "model": {...}, "train": {...}}`` merged into the tuned config,
and ``"vec_env"``: ``"dummy"`` (the default) or ``"subproc"``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import types
from pathlib import Path

import mpe2.simple_spread_v3
import numpy as np
import torch

# Before HARL's env module imports it: the old PettingZoo name -> the MPE both sides run.
_mpe = types.ModuleType("pettingzoo.mpe")
_mpe.simple_spread_v2 = mpe2.simple_spread_v3
sys.modules["pettingzoo.mpe"] = _mpe
sys.modules["pettingzoo.mpe.simple_spread_v2"] = mpe2.simple_spread_v3

import harl  # noqa: E402
from harl.envs.env_wrappers import ShareDummyVecEnv  # noqa: E402
from harl.envs.pettingzoo_mpe import pettingzoo_mpe_env  # noqa: E402
from harl.runners import RUNNER_REGISTRY  # noqa: E402
from harl.utils import envs_tools  # noqa: E402

_unwrap = pettingzoo_mpe_env.PettingZooMPEEnv.unwrap


def _unwrap_reset(self: pettingzoo_mpe_env.PettingZooMPEEnv, d: object) -> list:
    # PettingZoo >= 1.22's reset returns (observations, infos); HARL's wrapper was written for observations.
    return _unwrap(self, d[0] if isinstance(d, tuple) else d)


pettingzoo_mpe_env.PettingZooMPEEnv.unwrap = _unwrap_reset

TUNED = Path(harl.__file__).resolve().parents[1] / "tuned_configs" / "pettingzoo_mpe" / "simple_spread_v2-continuous"


def main() -> None:
    algo, frames, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    overrides = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    vec_env = overrides.pop("vec_env", "dummy")
    if vec_env == "dummy":  # HARL's in-process vector env for its n_rollout_threads envs (see the docstring)
        envs_tools.ShareSubprocVecEnv = ShareDummyVecEnv
    config = json.loads((TUNED / algo / "config.json").read_text())
    algo_args, env_args = config["algo_args"], config["env_args"]
    for section, values in overrides.items():
        algo_args[section].update(values)
    train = algo_args["train"]
    train["num_env_steps"] = frames
    algo_args["seed"] = {"seed": seed, "seed_specify": True}
    algo_args["device"].update({"cuda": False, "torch_threads": threads})
    algo_args["render"]["use_render"] = False
    use_eval = algo_args["eval"]["use_eval"]
    algo_args["eval"]["use_eval"] = True  # the eval envs exist; evaluating while training is skipped below
    train["eval_interval"] = 10**9
    per_iteration = train["episode_length"] * train["n_rollout_threads"]
    with tempfile.TemporaryDirectory() as tmp:
        algo_args["logger"]["log_dir"] = tmp
        main_args = {"algo": algo, "env": "pettingzoo_mpe", "exp_name": "side_by_side", "load_config": ""}
        runner = RUNNER_REGISTRY[algo](main_args, algo_args, env_args)
        start = time.perf_counter()
        runner.run()
        wall = time.perf_counter() - start
        returns: list[float] = []
        original = runner.logger.eval_log

        def capture(eval_episode: int) -> None:
            original(eval_episode)  # concatenates each finished episode's per-agent sums: [episodes x n_agents, 1]
            per_agent = np.asarray(runner.logger.eval_episode_rewards).reshape(-1, runner.num_agents)
            returns.extend(per_agent.mean(1).tolist())

        runner.logger.eval_log = capture
        runner.prep_rollout()
        runner.eval()
        n_agents = runner.num_agents
        runner.close()
    print(
        json.dumps(
            {
                "framework": f"HARL {harl_commit()}",
                "algo": algo,
                "eval_return": float(np.mean(returns)),
                "measure": "team return (every agent's reward is the team's in HARL's wrapper)",
                "n_agents": n_agents,
                "eval_episodes": len(returns),
                "wall_s": wall,
                "frames": frames // per_iteration * per_iteration,
                "iterations": frames // per_iteration,
                "periodic_eval_in_tuned_config": use_eval,
                "threads": threads,
                "vec_env": vec_env,
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


def harl_commit() -> str:
    pin = Path(harl.__file__).resolve().parents[1] / "COMMIT"
    return pin.read_text().strip()[:12] if pin.exists() else "unpinned"


if __name__ == "__main__":
    main()
