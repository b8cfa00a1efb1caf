"""Deterministic evaluation: the loop's periodic evaluations, and ``marlkit eval`` of a run's last or best
checkpoint, with videos.

Videos: VMAS renders ``rgb_array`` frames natively (headless). PettingZoo and Gymnasium envs are
built with ``render_mode="rgb_array"``; MuJoCo-based ones (MaMuJoCo, ``gym/HalfCheetah-v5``, ...)
need an off-screen OpenGL: ``MUJOCO_GL=egl`` (GPU drivers) or ``MUJOCO_GL=osmesa`` (Debian/Ubuntu
package ``libosmesa6``). ``.gif`` is written with Pillow; ``.mp4`` needs ``pip install imageio[ffmpeg]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from marlkit.adapters import make_env
from marlkit.adapters.base import MultiAgentEnv
from marlkit.algorithms import algorithm
from marlkit.checkpoint import use_first_usable
from marlkit.config import RunConfig, read_run_config
from marlkit.errors import MarlkitError
from marlkit.games import WINNER_TASKS, side_results
from marlkit.keys import DONE, REWARD
from marlkit.learner import Actor, EnvInfo, Learner
from marlkit.rollout import carry_recurrent_state
from marlkit.teams import Teams, acting_weights


@torch.no_grad()
def episode_returns(
    learner: Actor,
    env: MultiAgentEnv,
    seed: int,
    max_steps: int,
    on_step: Callable[[MultiAgentEnv], None] | None = None,
    deterministic: bool = True,
) -> dict[str, torch.Tensor]:
    """Deterministic actions (unless told otherwise: games with mixed strategies); the first episode of
    every env copy counts, ``[num_envs, n_agents]`` per group. An episode still running after
    ``max_steps`` counts with its return so far (the cap acts as a time limit). ``on_step(env)`` is
    called after every step (video)."""
    td = env.reset(seed=seed)
    returns = {g: torch.zeros(env.num_envs, s.n_agents, device=env.device) for g, s in env.groups.items()}
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(max_steps):
        td = learner.act(td, deterministic=deterministic)
        out = env.step(td)
        carry_recurrent_state(td, out, env.groups)
        if on_step is not None:
            on_step(env)
        for g in returns:
            returns[g] += out[g][REWARD] * (~finished).unsqueeze(-1)
        finished |= out[DONE]
        td = out
        if bool(finished.all()):
            break
    return {g: r.cpu() for g, r in returns.items()}


def evaluate(learner: Learner, env: MultiAgentEnv, seed: int, max_steps: int) -> dict[str, float]:
    """Per-group and overall means of :func:`episode_returns`."""
    return summarize_returns(learner, env, episode_returns(learner, env, seed, max_steps))


def per_episode(returns: dict[str, torch.Tensor]) -> tuple[list[float], list[float]]:
    """Each episode's return averaged over agents (the measure ``eval_return_mean`` averages) and summed
    over agents (``eval_return_team``), from :func:`episode_returns`."""
    agents = torch.cat(list(returns.values()), dim=-1)
    return agents.mean(-1).tolist(), agents.sum(-1).tolist()


def summarize_returns(learner: Learner, env: MultiAgentEnv, returns: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-group and overall means of per-episode returns ``[episodes, n_agents]`` per group."""
    result = {f"eval_return_{g}": float(r.mean()) for g, r in returns.items()}
    agent_returns = torch.cat(list(returns.values()), dim=-1)
    result["eval_return_mean"] = float(agent_returns.mean())
    result["eval_return_team"] = float(agent_returns.sum(-1).mean())
    result["eval_episodes"] = int(agent_returns.shape[0])
    if isinstance(learner, Teams):  # a game: each team's return, and who won where the task says
        result.update(side_results(returns, learner.team_groups, env.name in WINNER_TASKS))
    return result


def checkpoint_candidates(run: Path, which: str) -> list[Path]:
    """The checkpoints to try for ``which``, best first: ``best.pt`` alone, or ``final.pt`` then the
    periodic checkpoints, newest first."""
    checkpoints = run / "checkpoints"
    if which == "best":
        candidates = [checkpoints / "best.pt"]
    elif which == "last":
        candidates = [checkpoints / "final.pt", *sorted(checkpoints.glob("ckpt-*.pt"), reverse=True)]
    else:
        raise MarlkitError(f"--checkpoint must be 'last' or 'best', got '{which}'")
    present = [p for p in candidates if p.exists()]
    if not present:
        raise MarlkitError(f"{run} has no {which} checkpoint (looked for {', '.join(p.name for p in candidates)})")
    return present


class LoadedRun(NamedTuple):
    config: RunConfig
    learner: Learner
    checkpoint: Path
    acting_state: bool
    """Whether the learner's acting state (exploration schedules, noise, planners) was restored too."""
    info: EnvInfo


def load_run(run: Path, which: str = "last", acting: bool = False) -> LoadedRun:
    """The run's learner (in eval mode) with the weights of its ``which`` checkpoint and, with ``acting``,
    the acting state that its sampled actions read, where the checkpoint has one (``best.pt`` holds
    weights only). An unreadable checkpoint (a corrupted file) is skipped for the next older one, as
    ``resume`` does; none usable is one line."""
    config = read_run_config(run)
    candidates = checkpoint_candidates(run, which)
    probe = make_env(config.env_name, 1, "cpu", 0, **config.env_kwargs)
    info = EnvInfo.of(probe)
    probe.close()
    spec = algorithm(config.algo_name)
    learner = spec.build(config.algo, info, config.experiment.seed)
    restored = []

    def use(state: dict[str, Any]) -> None:
        learner.load_state_dict(acting_weights(state["learner"]))
        if acting and "training" in state:
            learner.load_acting_state(state["training"])
            restored.append(True)

    path = use_first_usable(
        candidates,
        use,
        f"no usable {which} checkpoint in {run / 'checkpoints'} (tried {', '.join(p.name for p in candidates)})",
    )
    return LoadedRun(config, learner.eval(), path, bool(restored), info)


def load_learner(run: Path, which: str = "last") -> tuple[RunConfig, Learner, Path]:
    """The run's learner with the weights of its ``which`` checkpoint (see :func:`load_run`)."""
    loaded = load_run(run, which)
    return loaded.config, loaded.learner, loaded.checkpoint


def evaluate_run(
    run: str | Path, episodes: int = 16, which: str = "last", video: str | None = None, seed: int = 123_456
) -> dict[str, Any]:
    run = Path(run)
    if video is not None and Path(video).suffix.lower() not in (".gif", ".mp4"):
        raise MarlkitError(f"--video must end in .gif or .mp4, got '{video}'")
    config, learner, path = load_learner(run, which)
    if config.experiment.torch_threads:  # as in training: a planner on 2 threads beside other runs thrashes
        torch.set_num_threads(config.experiment.torch_threads)
    max_steps = config.experiment.eval_max_steps
    env = make_env(config.env_name, episodes, "cpu", seed, **config.env_kwargs)
    returns = episode_returns(learner, env, seed, max_steps)
    result: dict[str, Any] = {"run_dir": str(run), "checkpoint": path.name, "episodes": episodes}
    for g, r in returns.items():
        per_episode = r.mean(-1)
        result[g] = {
            "mean": float(per_episode.mean()),
            "std": float(per_episode.std(unbiased=False)),
            "per_agent_mean": [round(float(x), 4) for x in r.mean(0)],
        }
    if video is not None:
        result["video"] = write_video(config, learner, Path(video), seed, max_steps)
    return result


def write_video(config: RunConfig, learner: Learner, path: Path, seed: int, max_steps: int) -> str:
    kwargs = dict(config.env_kwargs)
    if not config.env_name.startswith("vmas/"):
        kwargs.setdefault("render_mode", "rgb_array")
    env = make_env(config.env_name, 1, "cpu", seed, **kwargs)
    frames: list[np.ndarray] = []

    def grab(e: Any) -> None:
        frames.append(np.asarray(e.render(0)))

    try:
        env.reset(seed=seed)
        grab(env)
        episode_returns(learner, env, seed, max_steps, on_step=grab)
    except MarlkitError:
        raise
    except Exception as err:
        raise MarlkitError(
            f"cannot render {config.env_name}: {str(err).splitlines()[0] if str(err) else err!r} "
            "(MuJoCo envs need MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f.astype(np.uint8)) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)
    else:
        try:
            import imageio.v3 as iio  # type: ignore[import-not-found]
        except ImportError:
            raise MarlkitError("writing .mp4 needs imageio with ffmpeg: pip install 'imageio[ffmpeg]'") from None
        iio.imwrite(path, np.stack(frames).astype(np.uint8), fps=20)
    return str(path)
