"""``marlkit`` command line. User errors print one line on stderr and exit with code 2."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from marlkit.errors import MarlkitError


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
    import torch

    from marlkit import make_env
    from marlkit.rollout import RolloutCollector

    torch.manual_seed(args.seed)
    env = make_env(args.env, num_envs=args.num_envs, device=args.device, seed=args.seed, **parse_overrides(args.kwargs))
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


def cmd_train(args: argparse.Namespace) -> None:
    from marlkit.experiment import Experiment, build_config

    overrides = parse_overrides(args.overrides)
    for flag, key in (("frames", "experiment.frames"), ("seed", "experiment.seed"), ("device", "experiment.device")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    config = build_config(args.algo, args.env, overrides)
    out = args.out or f"runs/{args.algo}-{args.env.replace('/', '_').replace(':', '_')}-s{config.experiment.seed}"
    summary = Experiment(config, out).run()
    print(json.dumps({**summary, "run_dir": out}, indent=2))


def cmd_resume(args: argparse.Namespace) -> None:
    from marlkit.experiment import Experiment, RunConfig

    run = Path(args.run_dir)
    config_path = run / "config.json"
    if not config_path.exists():
        raise MarlkitError(f"{run} is not a run directory (no config.json)")
    if (run / "summary.json").exists():
        print(json.dumps({**json.loads((run / "summary.json").read_text()), "run_dir": str(run), "resumed": False}))
        return
    config = RunConfig.from_json(json.loads(config_path.read_text()))
    summary = Experiment(config, run).run(resume=True)
    print(json.dumps({**summary, "run_dir": str(run)}, indent=2))


def print_config_help(algo: str | None = None) -> None:
    """Every option with its type, default and doc; with ``algo``, that algorithm's preset defaults."""
    from marlkit.algorithms import ALGORITHMS, algorithm
    from marlkit.config import describe
    from marlkit.experiment import ExperimentConfig

    print("algorithms: " + ", ".join(f"{k} ({v.summary})" for k, v in ALGORITHMS.items()))
    if algo is not None:
        spec = algorithm(algo)
        configs = [(f"algo.* of {algo}", spec.config, spec.preset)]
    else:
        families: dict[type, str] = {}
        for name, spec in ALGORITHMS.items():
            families.setdefault(spec.config, name)
        configs = [(f"algo.* of {name} and its family", cls, ALGORITHMS[name].preset) for cls, name in families.items()]
    for title, cls, preset in [*configs, ("experiment.*", ExperimentConfig, {})]:
        print(f"\n{title} options (override as KEY=VALUE, e.g. {title.split('*')[0]}KEY=VALUE):")
        for name, tp, default, doc in describe(cls):
            section = title.split(".")[0]
            print(f"  {section}.{name:<24} {tp:<28} default {preset.get(name, default)!r:<14} {doc}")
    print("\nenv.* options are passed to the scenario (e.g. env.n_agents=4, env.max_steps=100).")


def cmd_list(args: argparse.Namespace) -> None:
    from marlkit.adapters import FAMILIES, MAMUJOCO_EXAMPLES, mpe_env_names, user_scenarios
    from marlkit.adapters.vmas import vmas_scenario_names
    from marlkit.algorithms import ALGORITHMS

    print("algorithms:")
    for name, spec in ALGORITHMS.items():
        print(f"  {name:<8} {spec.summary}")
    print("env families:", ", ".join(f"{f}/<name>" for f in FAMILIES), "or module.path:Attr")
    print("vmas:", ", ".join(vmas_scenario_names()))
    print("mpe:", ", ".join(mpe_env_names()))
    print("mamujoco (examples):", ", ".join(MAMUJOCO_EXAMPLES))
    print("gym: any registered Gymnasium id, e.g. gym/Pendulum-v1")
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
    train.add_argument("-h", "--help", action="store_true")
    train.set_defaults(func=cmd_train)
    resume = sub.add_parser("resume", help="continue an interrupted run from its newest good checkpoint")
    resume.add_argument("run_dir")
    resume.set_defaults(func=cmd_resume)
    listing = sub.add_parser("list", help="env families, env names and user scenarios")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after the --flags, so they are collected from the leftovers.
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    unknown = [a for a in extra if a not in overrides]
    if unknown or (overrides and args.command != "train"):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    args.overrides = overrides
    if args.command == "train" and (args.help or not args.algo or not args.env):
        print("usage: marlkit train ALGO ENV [--frames N] [--seed S] [--out DIR] [--device D] [key=value ...]")
        try:
            print_config_help(args.algo)
        except MarlkitError as err:
            print(f"marlkit: error: {err}", file=sys.stderr)
            return 2
        return 0 if args.help else 2
    if args.command == "demo" and args.env == "vmas/navigation" and not args.kwargs:
        args.kwargs = ["n_agents=3", "max_steps=100"]
    try:
        args.func(args)
    except MarlkitError as err:
        print(f"marlkit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
