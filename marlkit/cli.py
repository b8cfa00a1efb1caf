"""``marlkit`` command line. User errors print one line on stderr and exit with code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from marlkit import deploy
from marlkit.adapters import FAMILIES, make_env, user_scenarios
from marlkit.algorithms import ALGORITHMS, AlgorithmSpec, algorithm, available, plugins
from marlkit.analysis import marl_eval, sweep
from marlkit.analysis.games import evaluate_against
from marlkit.analysis.report import write_report
from marlkit.analysis.tune import tune
from marlkit.api import resume, train
from marlkit.core.errors import MarlkitError
from marlkit.core.extras import EXTRAS, installed
from marlkit.core.options import describe, with_overrides
from marlkit.training.config import ExperimentConfig, load_config_file, require_seed
from marlkit.training.evaluation import evaluate_run
from marlkit.training.rollout import RolloutCollector


def _parse_value(text: str) -> object:
    """``key=value`` values: JSON where it parses (numbers, booleans, lists), else the raw string."""
    for candidate in (text, text.lower()):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return text


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MarlkitError(f"expected key=value, got '{pair}'")
        out[key] = _parse_value(value)
    return out


def cmd_demo(args: argparse.Namespace) -> None:
    """A random-policy rollout: prints frames/s and the mean episode return."""

    if args.steps < 1:
        raise MarlkitError(f"--steps must be >= 1, got {args.steps}")
    require_seed(args.seed, "--seed")
    torch.manual_seed(args.seed)
    env_kwargs: dict[str, Any] = parse_overrides(args.kwargs)
    env = make_env(args.env, num_envs=args.num_envs, device=args.device, seed=args.seed, **env_kwargs)
    collector = RolloutCollector(env, env.rand_action, args.steps)
    collector.reset()
    start = time.perf_counter()
    _, stats = collector.collect()
    elapsed = time.perf_counter() - start
    frames = env.num_envs * args.steps
    result = {
        "env": env.name,
        "num_envs": env.num_envs,
        "frames": frames,
        "frames_per_s": round(frames / elapsed, 1),
        "episodes": stats.episodes,
        "mean_episode_return_per_agent": round(stats.mean_return(), 4),
        "groups": {
            g: {"agents": list(s.agents), "obs_shape": list(s.obs_shape), "action": str(s.action)}
            for g, s in env.groups.items()
        },
    }
    print(json.dumps(result, indent=2))


def cmd_train(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.team:  # marlkit train ENV --team red=mappo --team blue=sac
        name, spec = flag_algorithm("team")
        names = load_config_file(args.config)[0] if args.config else {}
        if (args.algo or names.get("algo_name", name)) != name:
            raise MarlkitError(f"--team makes a {name} run, but ALGO is '{args.algo}'; leave ALGO out or give '{name}'")
        args.algo = name
        assert spec.flags is not None
        overrides.update(spec.flags(args.team))
    overrides.update(parse_overrides(args.overrides))
    run = train(args.algo, args.env, frames=args.frames, seed=args.seed, out=args.out, device=args.device,
                config=args.config, **overrides)  # fmt: skip
    print(json.dumps({**run.summary, "run_dir": str(run.dir)}, indent=2))
    return 130 if run.interrupted else 0


def cmd_resume(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    finished = (run / "summary.json").exists()
    result = resume(run)
    if finished:
        print(json.dumps({**result.summary, "run_dir": str(run), "resumed": False}))
        return 0
    print(json.dumps({**result.summary, "run_dir": str(run)}, indent=2))
    return 130 if result.interrupted else 0


def cmd_eval(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise MarlkitError(f"--episodes must be >= 1, got {args.episodes}")
    if args.checkpoint not in ("last", "best"):
        raise MarlkitError(f"--checkpoint must be 'last' or 'best', got '{args.checkpoint}'")
    if args.against:
        if args.video or args.checkpoint != "last":
            raise MarlkitError("--against plays last checkpoints without video; leave out --video and --checkpoint")
        result = evaluate_against(args.run_dir, args.against, args.episodes)
        for side, numbers in result["sides"].items():
            print(
                f"{side} of {args.run_dir} against {args.against}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items())
            )
        print(json.dumps(result))
        return
    result = evaluate_run(args.run_dir, args.episodes, args.checkpoint, args.video)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}: return {value['mean']:.4g} +- {value['std']:.4g} (per agent {value['per_agent_mean']})")
    print(json.dumps(result))


def _csv(text: str | None, flag: str) -> list[str] | None:
    """A comma-separated option: None when not given; given but empty (``--algos ,``) is an error."""
    if text is None:
        return None
    values = [t.strip() for t in str(text).split(",") if t.strip()]
    if not values:
        raise MarlkitError(f"{flag} is empty; give comma-separated values, or leave it out for the default")
    return values


def _seeds(text: str | None, default: Sequence[int]) -> list[int]:
    """``--seeds 0,1,2``: integers, or ``default`` when not given."""
    seeds = _csv(text, "--seeds")
    try:
        return [int(s) for s in seeds] if seeds else list(default)
    except ValueError:
        raise MarlkitError(f"--seeds must be comma-separated integers, got '{text}'") from None


def cmd_compare(args: argparse.Namespace) -> int:
    names, file_overrides = load_config_file(args.config) if args.config else ({}, {})
    for key in ("algos", "envs", "seeds"):
        if getattr(args, key) is None and key in names:
            value = names[key]
            setattr(args, key, ",".join(map(str, value)) if isinstance(value, list) else str(value))
    args.frames = args.frames or names.get("frames")
    default = not (args.algos or args.envs or args.seeds or args.frames or args.overrides or args.config)
    overrides = {**file_overrides, **parse_overrides(args.overrides)} if not default else dict(sweep.DEFAULT_OVERRIDES)
    seed_values = _seeds(args.seeds, sweep.DEFAULT_SEEDS)
    result = sweep.compare(
        algos=_csv(args.algos, "--algos") or list(sweep.DEFAULT_ALGOS),
        envs=_csv(args.envs, "--envs") or list(sweep.DEFAULT_ENVS),
        seeds=seed_values,
        out=args.out,
        frames=args.frames or (sweep.DEFAULT_FRAMES if default else None),
        overrides=overrides,
        jobs=args.jobs,
        backend=args.backend,
        address=args.address,
    )
    for run, err in result["failed"].items():
        print(f"marlkit: run {run} failed: {err}", file=sys.stderr)
    print(
        json.dumps(
            {
                "out": result["out"],
                "report": result["report"],
                "runs": len(result["runs"]),
                "failed": len(result["failed"]),
                "unfinished": len(result["unfinished"]),
                "interrupted": result["interrupted"],
            }
        )
    )
    if result["report"]:
        print(f"report: {result['report']}")
    if result["interrupted"]:
        print(
            f"marlkit: sweep interrupted; {len(result['unfinished'])} runs unfinished (no report). "
            "Run the same command again to resume them.",
            file=sys.stderr,
        )
        return 130
    return 0


def cmd_report(args: argparse.Namespace) -> None:
    if args.crossplay_episodes < 0:
        raise MarlkitError(f"--crossplay-episodes must be >= 0, got {args.crossplay_episodes}")
    print(f"report: {write_report(args.dir, args.measure, args.fraction, args.crossplay_episodes)}")
    if args.export == "marl-eval":
        print(f"marl-eval: {marl_eval.export(args.dir, absolute=args.absolute)}")


def cmd_tune(args: argparse.Namespace) -> int:
    seed_values = _seeds(args.seeds, (0, 1))
    result = tune(args.algo, args.env, args.space, args.trials, seed_values, args.frames, args.out, args.jobs,
                  parse_overrides(args.overrides), args.measure, args.pruner, args.seed)  # fmt: skip
    print(json.dumps({"best": result.best_params, "score": result.best_value, "importance": result.importances,
                      "report": str(result.report)}))  # fmt: skip
    print(f"report: {result.report}")
    return 0


def cmd_export(args: argparse.Namespace) -> None:
    path = deploy.export(deploy.load(args.run_dir, args.checkpoint), args.path, args.batch)
    print(json.dumps({"export": str(path), "about": f"{path}.json"}))


def flag_algorithm(flag: str) -> tuple[str, AlgorithmSpec]:
    """The algorithm whose spec turns the CLI flag ``--FLAG`` into its options (``--team``: a learner per team)."""
    for name, spec in available().items():
        if spec.flag_name == flag and spec.flags is not None:
            return name, spec
    raise MarlkitError(f"no algorithm takes --{flag}")


def print_config_help(algo: str | None = None) -> None:
    """Every option with its type, default and doc; with ``algo``, that algorithm's preset defaults."""
    print("algorithms: " + ", ".join(f"{k} ({v.summary})" for k, v in available().items()))
    experiment = ExperimentConfig()
    spec = algorithm(algo) if algo is not None else None
    if spec is not None and spec.option_help is not None:
        title, rows = spec.option_help()
        print(f"\n{title}:")
        for name, tp, default, doc in rows:
            print(f"  {name:<30} {tp:<28} default {default!r:<14} {doc}")
        configs = []
    elif spec is not None:
        configs = [(f"algo.* of {algo}", "algo", spec.default_config())]
        experiment = with_overrides(experiment, spec.experiment, "experiment")
    else:
        families: dict[type, str] = {}
        for name, registered in ALGORITHMS.items():
            families.setdefault(registered.config, name)
        configs = [
            (f"algo.* of {name} and its family", "algo", ALGORITHMS[name].default_config())
            for name in families.values()
        ]
    for title, section, cfg in [*configs, ("experiment.*", "experiment", experiment)]:
        print(f"\n{title} options (override as KEY=VALUE, e.g. {section}.KEY=VALUE):")
        for name, tp, default, doc in describe(cfg, f"{section}."):
            print(f"  {name:<30} {tp:<28} default {default!r:<14} {doc}")
    print("\nenv.* options are passed to the scenario (e.g. env.n_agents=4, env.max_steps=100).")


def cmd_list(args: argparse.Namespace) -> None:
    installed_plugins = plugins()
    print("algorithms:")
    for name, spec in available().items():
        print(f"  {name:<8} {spec.summary}" + (" (installed plugin)" if name in installed_plugins else ""))
    print("  or any module.path:LearnerClass (see README: Write your own algorithm)")
    print("env families:", ", ".join(f"{f}/<name>" for f in FAMILIES), "or module.path:Attr")
    for name, family in FAMILIES.items():
        if family.module is not None and not installed(family.module):
            print(f"{name}: not installed (pip install 'marlkit[{EXTRAS[family.module]}]')")
        elif name != "envs":  # scenario files are listed with their paths below
            print(f"{name}: {family.listing}{', '.join(family.names())}")
    for name, path in user_scenarios().items():
        print(f"envs/{name}: {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marlkit", description="Multi-agent RL over agent groups.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="random-policy rollout: frames/s and mean return")
    demo.add_argument("--env", default="vmas/navigation")
    demo.add_argument("--num-envs", type=int, default=256)
    demo.add_argument("--steps", type=int, default=200, help="steps per env copy")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu")
    demo.add_argument(
        "kwargs", nargs="*", help="scenario kwargs as key=value (default n_agents=3 max_steps=100 for vmas/navigation)"
    )
    demo.set_defaults(func=cmd_demo)
    train = sub.add_parser("train", help="train ALGO on ENV", add_help=False)
    train.add_argument("algo", nargs="?")
    train.add_argument("env", nargs="?")
    train.add_argument("--frames", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--out")
    train.add_argument("--device")
    train.add_argument("--config", help="YAML/TOML/JSON file with algo/env/experiment tables (CLI key=value wins)")
    train.add_argument(
        "--team",
        action="append",
        help="TEAM=ALGO, TEAM=frozen:RUN, TEAM=scripted:random or TEAM=pool:TEAM (repeat; makes a teams run)",
    )
    train.add_argument("-h", "--help", action="store_true")
    train.set_defaults(func=cmd_train)
    evaluation = sub.add_parser("eval", help="deterministic evaluation of a run's checkpoint, optionally a video")
    evaluation.add_argument("run_dir")
    evaluation.add_argument("--episodes", type=int, default=16)
    evaluation.add_argument("--checkpoint", default="last", help="last or best")
    evaluation.add_argument("--video", help="write a .gif (or .mp4) of one episode")
    evaluation.add_argument("--against", help="a run dir or checkpoint: each side of RUN_DIR plays its other sides")
    evaluation.set_defaults(func=cmd_eval)
    comp = sub.add_parser("compare", help="algorithms x envs x seeds, then a report (no arguments: the default)")
    comp.add_argument("--algos", help="comma-separated, e.g. itrpo,matrpo,hatrpo")
    comp.add_argument("--envs", help="comma-separated env names")
    comp.add_argument("--seeds", help="comma-separated integers")
    comp.add_argument("--frames", type=int)
    comp.add_argument("--out", default="runs/compare")
    comp.add_argument("--jobs", type=int, help="parallel runs (default: one per CPU core)")
    comp.add_argument("--backend", default="local", help="local or ray")
    comp.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    comp.add_argument("--config", help="YAML/TOML/JSON file: algos, envs, seeds, frames and algo/env/experiment tables")
    comp.set_defaults(func=cmd_compare)
    rep = sub.add_parser("report", help="report.md and figures from any set of run directories")
    rep.add_argument("dir")
    rep.add_argument("--measure", default="eval_return_mean", help="eval_return_mean or eval_return_team")
    rep.add_argument("--fraction", type=float, default=0.9, help="time-to-target threshold fraction")
    rep.add_argument(
        "--crossplay-episodes", type=int, default=32, help="episodes per cross-play match on game tasks (0: none)"
    )
    rep.add_argument(
        "--export", choices=["marl-eval"], help="also write DIR/marl_eval.json (marl-eval's and BenchMARL's layout)"
    )
    rep.add_argument(
        "--no-absolute",
        dest="absolute",
        action="store_false",
        help="export without absolute_metrics (the best policy re-evaluated over 10x the evaluation episodes)",
    )
    rep.set_defaults(func=cmd_report)
    tun = sub.add_parser("tune", help="hyperparameter search with Optuna (pip install 'marlkit[tune]')")
    tun.add_argument("algo")
    tun.add_argument("env")
    tun.add_argument("--space", required=True, help="YAML/TOML/JSON: config keys and their ranges")
    tun.add_argument("--trials", type=int, default=20, help="finished (complete or pruned) trials to reach")
    tun.add_argument("--seeds", help="comma-separated seeds every trial trains (default 0,1)")
    tun.add_argument("--frames", type=int)
    tun.add_argument("--out", default="runs/tune", help="the study (study.db), its runs and tune.md")
    tun.add_argument("--jobs", type=int, help="trials in parallel (default 1)")
    tun.add_argument("--measure", default="eval_return_mean", help="eval_return_mean or eval_return_team")
    tun.add_argument("--pruner", default="median", help="median (Optuna's median rule) or none")
    tun.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    tun.set_defaults(func=cmd_tune)
    exp = sub.add_parser("export", help="write a run's deterministic actor as TorchScript (.pt) or ONNX (.onnx)")
    exp.add_argument("run_dir")
    exp.add_argument("path", help="OUT.pt (TorchScript) or OUT.onnx (pip install 'marlkit[export]')")
    exp.add_argument("--checkpoint", default="last", help="last or best")
    exp.add_argument("--batch", type=int, default=1, help="observations per call of a TorchScript file")
    exp.set_defaults(func=cmd_export)
    resume = sub.add_parser("resume", help="continue an interrupted run from its newest good checkpoint")
    resume.add_argument("run_dir")
    resume.set_defaults(func=cmd_resume)
    listing = sub.add_parser("list", help="env families, env names and user scenarios")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    tokens = list(sys.argv[1:] if argv is None else argv)
    # key=value overrides may stand anywhere; they are taken out before argparse, which would otherwise
    # hand them to the optional ALGO/ENV positionals. A token right after a --flag is that flag's value.
    overrides = [
        t
        for i, t in enumerate(tokens)
        if "=" in t
        and not t.startswith("-")
        and (i == 0 or not tokens[i - 1].startswith("-") or tokens[i - 1] in ("-h", "--help"))
    ]
    rest = [t for t in tokens if t not in overrides]
    args, extra = parser.parse_known_args(rest)
    unknown = extra
    if args.command == "demo":  # its key=value tokens are scenario kwargs
        args.kwargs, overrides = [*args.kwargs, *overrides], []
    if unknown or (overrides and args.command not in ("train", "compare", "tune")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    args.overrides = overrides
    if args.command == "train" and args.team and args.algo and not args.env:
        args.algo, args.env = flag_algorithm("team")[0], args.algo  # marlkit train ENV --team ...
    if args.command == "train" and (args.help or ((not args.algo or not args.env) and not args.config)):
        print("usage: marlkit train ALGO ENV [--frames N] [--seed S] [--out DIR] [--device D] [key=value ...]")
        print("       marlkit train ENV --team TEAM=ALGO --team TEAM=ALGO [...]   (a learner per team)")
        try:
            print_config_help(args.algo)
        except MarlkitError as err:
            print(f"marlkit: error: {err}", file=sys.stderr)
            return 2
        return 0 if args.help else 2
    if args.command == "demo" and args.env == "vmas/navigation" and not args.kwargs:
        args.kwargs = ["n_agents=3", "max_steps=100"]
    try:
        return args.func(args) or 0
    except MarlkitError as err:
        return _fail(str(err), err)
    except OSError as err:  # disk full, read-only or missing paths: which path, and why
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"{where}{err.strerror or err}", err)
    except KeyboardInterrupt:
        print("marlkit: interrupted", file=sys.stderr)
        return 130


def _fail(message: str, err: BaseException) -> int:
    """One line on stderr and exit code 2; ``MARLKIT_DEBUG=1`` adds the traceback (causes included)."""
    if os.environ.get("MARLKIT_DEBUG"):
        traceback.print_exception(err)
    print(f"marlkit: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
