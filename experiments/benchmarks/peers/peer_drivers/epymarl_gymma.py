"""Runs inside the EPyMARL venv (experiments/benchmarks/peers/peers.py --setup makes it from EPyMARL's source
at a pinned commit): one EPyMARL run of ALGO (its ``src/config/algs/ALGO.yaml``) on a Gymnasium-registered
multi-agent task through its ``gymma`` wrapper, with its own evaluation; prints one JSON line.

    .peers/epymarl/bin/python epymarl_gymma.py ALGO KEY STEPS SEED TIME_LIMIT [OVERRIDES_JSON]

KEY: e.g. ``lbforaging:Foraging-8x8-2p-2f-coop-v3``. OVERRIDES_JSON: EPyMARL config keys (``{"lr": 3e-4,
"use_rnn": true, "test_interval": 50000}``), given to its sacred command line as ``key=value``.

EPyMARL's ``envs/__init__.py`` imports SMAClite unconditionally; an empty stand-in module is registered for
it (no SMAClite task is run). Results come from EPyMARL's own sacred record (``info.json``):
``test_return_mean`` at each evaluation (the common reward, summed over agents, over ``test_nepisode``
greedy episodes). Reported: the last evaluation (``eval_return``), the mean over evaluation points and the
best point (the paper's two metrics, per run), and the wall-clock of the whole run (evaluations included).
Where EPyMARL's own schedule skips the evaluation at the end of training, the driver adds it
(:func:`evaluate_at_the_end`).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import time
import types
from pathlib import Path

SRC = Path(__file__).resolve().parents[4] / ".peers" / "epymarl-src" / "src"
SACRED = SRC.parent / "results" / "sacred"


def own_record(before: set[Path], algo: str, key: str, seed: int, steps: int) -> Path:
    """This run's ``info.json``: sacred numbers its run folders per algorithm and task, so with several runs at
    once the newest folder may be another run's; this one is new since the start and has this algorithm,
    task, seed and budget."""
    mine = [c for c in set(SACRED.rglob("config.json")) - before
            if ((config := json.loads(c.read_text()))["name"], config["env_args"]["key"], config["seed"],
                config["t_max"]) == (algo, key, seed, steps)]  # fmt: skip
    if len(mine) != 1:
        raise SystemExit(f"expected one new sacred run of {algo} on {key} with seed {seed} and t_max {steps}, "
                         f"found {len(mine)}")  # fmt: skip
    return mine[0].parent / "info.json"


def evaluate_at_the_end() -> None:
    """A last evaluation at the end of training where EPyMARL's schedule skipped it, as marlkit evaluates at
    the end. EPyMARL tests when ``t_env`` has moved ``test_interval`` past its last test; episodes that end
    early shift those points, and its loop can stop at ``t_max`` before the last one (VDN's seed 0 on LBF
    was last tested at 450,226 of 500,000 steps). Evaluation only: the same ``test_nepisode`` greedy episodes
    through its own runner and logger, after the last update, before the env closes."""
    from runners.episode_runner import EpisodeRunner  # EPyMARL's module, the one its run.py imports

    run_episode, close_env = EpisodeRunner.run, EpisodeRunner.close_env

    def run(self, test_mode=False):
        if test_mode:
            self.last_test_t = self.t_env
        return run_episode(self, test_mode=test_mode)

    def close(self) -> None:
        if getattr(self, "last_test_t", None) != self.t_env:
            for _ in range(self.args.test_nepisode):
                run(self, test_mode=True)
        close_env(self)

    EpisodeRunner.run, EpisodeRunner.close_env = run, close


def main() -> None:
    algo, key, steps, seed, time_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    overrides = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    sys.modules.setdefault("smaclite", types.ModuleType("smaclite"))
    sys.path.insert(0, str(SRC))
    evaluate_at_the_end()
    results = Path(tempfile.mkdtemp(prefix="epymarl-"))
    settings = {"env_args.key": key, "env_args.time_limit": time_limit, "t_max": steps, "seed": seed,
                "use_cuda": False, "save_model": False, "use_tensorboard": False, "local_results_path": str(results),
                **overrides}  # fmt: skip
    # sacred reads Python literals: True/False/None, not JSON's true/false/null
    words = [f"{k}={v!r}" if isinstance(v, bool) or v is None else f"{k}={v}" for k, v in settings.items()]
    sys.argv = ["main.py", f"--config={algo}", "--env-config=gymma", "with", *words]
    os.chdir(SRC)
    before = set(SACRED.rglob("config.json"))
    start = time.perf_counter()
    try:
        runpy.run_path(str(SRC / "main.py"), run_name="__main__")
    except SystemExit as end:  # sacred exits when the run is over
        if end.code not in (0, None):
            raise
    wall = time.perf_counter() - start
    info = json.loads(own_record(before, algo, key, seed, steps).read_text())
    returns = [float(v["value"] if isinstance(v, dict) else v) for v in info["test_return_mean"]]
    points = [int(t) for t in info["test_return_mean_T"]]
    print(json.dumps({"framework": f"EPyMARL {(SRC.parent / 'COMMIT').read_text().strip()[:12]}", "algo": algo,
                      "task": key, "eval_return": returns[-1], "eval_mean_over_points": sum(returns) / len(returns),
                      "eval_best_point": max(returns), "eval_points": points, "eval_returns": returns,
                      "steps": steps, "wall_s": wall, "seed": seed, "overrides": overrides}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
