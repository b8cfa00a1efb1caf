"""``make_env``: one entry point for every scenario source.

Names:
  ``vmas/<scenario>``            VMAS, natively vectorized (CPU or CUDA)
  ``mpe/<env>``                  MPE from ``mpe2``, e.g. ``mpe/simple_spread_v3``
  ``mamujoco/<robot>-<parts>``   MaMuJoCo, e.g. ``mamujoco/HalfCheetah-2x3``
  ``gym/<id>``                   Gymnasium, one group with one agent, e.g. ``gym/Pendulum-v1``
  ``lbf/<id>``                   Level-Based Foraging, e.g. ``lbf/Foraging-8x8-2p-2f-coop-v3``
  ``rware/<id>``                 Multi-Robot Warehouse, e.g. ``rware/rware-tiny-2ag-v2``
  ``envs/<name>``                a scenario file ``<name>.py`` in an ``envs/`` folder (see README)
  ``module.path:Attr``           a VMAS ``BaseScenario`` subclass or a PettingZoo env factory

Each family's record (:mod:`marlkit.adapters.families`) builds its tasks and holds what marlkit
knows of them (:func:`task_facts`). Every family also takes ``hide=[i, ...]``: those entries are
removed from every agent's observation (:mod:`marlkit.adapters.hide`), which turns any task into a
partially observable one.
"""

from __future__ import annotations

from typing import Any

import torch

from marlkit.adapters.base import MultiAgentEnv, canonical_device
from marlkit.adapters.facts import TaskFacts
from marlkit.adapters.families import FAMILIES, from_object, known_env_names, task_facts
from marlkit.adapters.hide import HiddenObservations
from marlkit.adapters.scenarios import scenario_dirs, user_scenarios
from marlkit.adapters.team import TeamReward
from marlkit.core.errors import MarlkitError, first_line, suggest
from marlkit.core.extras import as_missing, require
from marlkit.core.imports import import_attr


def make_env(
    name: str,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
    *,
    workers: int = 0,
    **env_kwargs: Any,
) -> MultiAgentEnv:
    """Create ``num_envs`` copies of scenario ``name`` behind the marlkit env contract.

    ``workers > 0`` steps the copies of a CPU simulator (PettingZoo, MPE, MaMuJoCo, Gymnasium) in that
    many processes (at most one per copy), with the same rollouts as in-process; VMAS, vectorized in
    torch, ignores it. ``hide=[...]`` removes observation entries (:mod:`marlkit.adapters.hide`);
    ``team_reward=True`` gives every agent the sum of all agents' rewards (:mod:`marlkit.adapters.team`).

    Anything the simulator or a user scenario raises while building (a constructor, ``make_world``, an
    assertion on its kwargs) becomes one :class:`MarlkitError` line naming the env and the original
    error; the original stays attached as ``__cause__`` (the CLI prints it with ``MARLKIT_DEBUG=1``)."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise MarlkitError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if not isinstance(workers, int) or workers < 0:
        raise MarlkitError(f"workers must be an integer >= 0 (0: in-process), got {workers!r}")
    device = canonical_device(device)
    hide = env_kwargs.pop("hide", None)
    team_reward = env_kwargs.pop("team_reward", False)
    if not isinstance(team_reward, bool):
        raise MarlkitError(f"team_reward must be true or false, got {team_reward!r}")
    if hide is not None and (isinstance(hide, int) or not all(isinstance(i, int) for i in hide)):
        raise MarlkitError(f"hide must be a list of observation indices, e.g. hide=[2], got {hide!r}")
    try:
        env = _make_env(name, num_envs, device, seed, workers, env_kwargs)
    except MarlkitError:
        raise
    except Exception as err:
        missing = as_missing(err, f"env '{name}'")  # a simulator (or a scenario's import) not installed
        if missing is not None:
            raise missing from err
        cause = f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
        raise MarlkitError(
            f"env '{name}' failed to build with kwargs {env_kwargs}: {cause} (MARLKIT_DEBUG=1 shows the traceback)"
        ) from err
    if hide is not None:
        try:
            env = HiddenObservations(env, hide)
        except MarlkitError:
            env.close()
            raise
    return TeamReward(env) if team_reward else env


def _make_env(
    name: str, num_envs: int, device: torch.device, seed: int, workers: int, env_kwargs: dict[str, Any]
) -> MultiAgentEnv:
    if ":" in name:
        return from_object(name, import_attr(name, "env"), num_envs, device, seed, workers, env_kwargs)
    family_name, _, task = name.partition("/")
    family = FAMILIES.get(family_name)
    if family is None or not task:
        raise MarlkitError(
            f"unknown env '{name}'.{suggest(name, known_env_names())} Families: "
            f"{', '.join(f + '/<name>' for f in FAMILIES)}, or module.path:Attr"
        )
    if family.module is not None:
        require(family.module, f"env '{name}'")
    return family.build(task, num_envs, device, seed, workers, env_kwargs)


__all__ = [
    "FAMILIES",
    "MultiAgentEnv",
    "TaskFacts",
    "known_env_names",
    "make_env",
    "scenario_dirs",
    "task_facts",
    "user_scenarios",
]
