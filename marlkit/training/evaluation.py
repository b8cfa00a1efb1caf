"""Deterministic evaluation: the loop's periodic evaluations, and ``marlkit eval`` of a run's last or best
checkpoint, with videos.

Videos: VMAS renders ``rgb_array`` frames natively (headless). PettingZoo and Gymnasium envs are
built with ``render_mode="rgb_array"``; MuJoCo-based ones (MaMuJoCo, ``gym/HalfCheetah-v5``, ...)
need an off-screen OpenGL: ``MUJOCO_GL=egl`` (GPU drivers) or ``MUJOCO_GL=osmesa`` (Debian/Ubuntu
package ``libosmesa6``). ``.gif`` is written with Pillow; ``.mp4`` needs ``pip install imageio[ffmpeg]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlkit.adapters import make_env, task_facts
from marlkit.adapters.base import MultiAgentEnv
from marlkit.core.errors import MarlkitError
from marlkit.keys import DONE, REWARD
from marlkit.learner import Actor, Learner
from marlkit.training.config import RunConfig
from marlkit.training.rollout import carry_recurrent_state
from marlkit.training.runs import load_learner


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


def evaluate(
    learner: Actor, env: MultiAgentEnv, seed: int, max_steps: int, sides: Mapping[str, Sequence[str]] | None = None
) -> dict[str, float]:
    """Per-group and overall means of :func:`episode_returns` (and per side, for a game's ``sides``)."""
    return summarize_returns(episode_returns(learner, env, seed, max_steps), sides, env.name)


def per_episode(returns: dict[str, torch.Tensor]) -> tuple[list[float], list[float]]:
    """Each episode's return averaged over agents (the measure ``eval_return_mean`` averages) and summed
    over agents (``eval_return_team``), from :func:`episode_returns`."""
    agents = torch.cat(list(returns.values()), dim=-1)
    return agents.mean(-1).tolist(), agents.sum(-1).tolist()


def summarize_returns(
    returns: dict[str, torch.Tensor], sides: Mapping[str, Sequence[str]] | None = None, task: str = ""
) -> dict[str, float]:
    """Per-group and overall means of per-episode returns ``[episodes, n_agents]`` per group; for a
    game's ``sides``, each side's return, and who won where the task ``task`` names a winner."""
    result = {f"eval_return_{g}": float(r.mean()) for g, r in returns.items()}
    agent_returns = torch.cat(list(returns.values()), dim=-1)
    result["eval_return_mean"] = float(agent_returns.mean())
    result["eval_return_team"] = float(agent_returns.sum(-1).mean())
    result["eval_episodes"] = int(agent_returns.shape[0])
    if sides is not None:
        result.update(side_results(returns, sides, task_facts(task).decisive))
    return result


def side_results(
    returns: Mapping[str, torch.Tensor], sides: Mapping[str, Sequence[str]], decisive: bool, prefix: str = "eval_"
) -> dict[str, float]:
    """Per side, the mean of its agents' episode returns; with ``decisive`` and two sides, win rates.

    ``returns``: per group ``[episodes, n_agents]``."""
    per_side = {s: torch.cat([returns[g] for g in groups], -1).mean(-1) for s, groups in sides.items()}
    out = {f"{prefix}return_{s}": float(r.mean()) for s, r in per_side.items()}
    if decisive and len(sides) == 2:
        (a, ra), (b, rb) = per_side.items()
        out[f"{prefix}win_{a}"] = float((ra > rb).float().mean())
        out[f"{prefix}win_{b}"] = float((rb > ra).float().mean())
        out[f"{prefix}draw"] = float((ra == rb).float().mean())
    return out


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
