"""VMAS scenarios through their native torch vectorization: all copies in one batched call.

Global state: VMAS has none, so ``td["state"]`` is the concatenation of all agents' observations.
``max_steps`` is reported as truncation (TorchRL's VmasEnv reports it as termination, which would
wrongly stop bootstrapping at every time limit). VMAS scenarios have no time limit of their own, and
an endless episode never ends an evaluation either, so marlkit gives every VMAS task the standard
horizon of BenchMARL's VMAS tasks, ``DEFAULT_MAX_STEPS`` = 100 steps, unless ``env.max_steps`` is
set (``env.max_steps=null``: endless episodes).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict

from marlkit.adapters.base import MultiAgentEnv, stack_state
from marlkit.adapters.facts import RewardFn, TaskFacts
from marlkit.core.errors import MarlkitError, suggest
from marlkit.core.extras import installed
from marlkit.core.specs import GroupSpec, action_space_from_gym, check_group_map, default_group_map

DEFAULT_MAX_STEPS = 100


def vmas_scenario_names() -> list[str]:
    """VMAS's scenarios; none where VMAS is not installed."""
    if not installed("vmas"):
        return []
    import vmas

    return sorted({*vmas.scenarios, *vmas.debug_scenarios, *vmas.mpe_scenarios})


class VmasEnv(MultiAgentEnv):
    def __init__(
        self,
        scenario: str | Any,
        num_envs: int,
        device: torch.device,
        seed: int,
        *,
        continuous_actions: bool = True,
        max_steps: int | None = DEFAULT_MAX_STEPS,
        group_map: Mapping[str, Sequence[str]] | None = None,
        name: str | None = None,
        **scenario_kwargs: Any,
    ) -> None:
        import vmas

        label = name or f"vmas/{scenario}"
        if isinstance(scenario, str) and scenario not in vmas_scenario_names():
            raise MarlkitError(
                f"unknown VMAS scenario '{scenario}'.{suggest(scenario, vmas_scenario_names())} "
                f"Valid: {', '.join(vmas_scenario_names())}"
            )
        if scenario == "navigation":
            _check_navigation_fits(scenario_kwargs)
        self._rng_state = _shared_rng_state()[:]
        with self._own_rng(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                env = vmas.make_env(
                    scenario,
                    num_envs=num_envs,
                    device=device,
                    continuous_actions=continuous_actions,
                    max_steps=max_steps,
                    seed=seed,
                    dict_spaces=True,
                    terminated_truncated=True,
                    **scenario_kwargs,
                )
            except TypeError as err:
                raise MarlkitError(f"bad kwargs for env '{label}': {err}") from None
        for w in caught:
            if "passed but not used by the scenario" in str(w.message):
                unused = str(w.message).split("Scenario kwargs: ")[1].split(" passed")[0]
                raise MarlkitError(f"unknown env kwargs for '{label}': {unused}")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self._env = env
        agent_names = [a.name for a in env.agents]
        groups = check_group_map(group_map, agent_names) if group_map else default_group_map(agent_names)
        self._members = groups
        with self._own_rng():
            first_obs = env.reset()
        specs = {}
        for g, members in groups.items():
            shapes = {a: tuple(first_obs[a].shape[1:]) for a in members}
            if len(set(shapes.values())) > 1:
                raise MarlkitError(
                    f"agents of group '{g}' have different observation shapes {shapes}; "
                    "split them with group_map={...}"
                )
            act_spaces = [env.action_space[a] for a in members]
            specs[g] = GroupSpec(g, tuple(members), shapes[members[0]], action_space_from_gym(g, members, act_spaces))
        state_dim = sum(spec.n_agents * spec.obs_dim for spec in specs.values())
        super().__init__(label, num_envs, torch.device(device), specs, state_dim, "observations", seed)
        self.scenario = env.scenario
        self._alive = {
            g: torch.ones(num_envs, s.n_agents, dtype=torch.bool, device=self.device) for g, s in specs.items()
        }
        self._first_reset = True

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run VMAS on this env's own random stream.

        VMAS keeps one random state for *all* its environments (a class attribute), so without this an
        evaluation env's resets would shift the training env's random stream.
        """
        shared = _shared_rng_state()
        saved = shared[:]
        shared[:] = self._rng_state
        try:
            yield
        finally:
            self._rng_state = shared[:]
            shared[:] = saved

    def _current_obs(self) -> dict[str, torch.Tensor]:
        return self._env.get_from_scenario(get_observations=True, get_rewards=False, get_infos=False, get_dones=False)[
            0
        ]

    # VMAS returns per-agent tensors; groups stack them along a new agent dimension.
    def _group_obs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {g: torch.stack([obs[a] for a in m], dim=1) for g, m in self._members.items()}

    def _reset(self, seed: int | None) -> TensorDict:
        with self._own_rng():
            return self._reset_unlocked(seed)

    def _reset_unlocked(self, seed: int | None) -> TensorDict:
        if seed is not None:
            self._env.seed(seed)
        # The env was already reset at construction with the construction seed: reuse that reset
        # once so that make_env(seed=s).reset() equals make_env(...).reset(seed=s).
        obs = self._current_obs() if self._first_reset and seed is None else self._env.reset()
        self._first_reset = False
        grouped = self._group_obs(obs)
        return self._pack(grouped, self._alive, stack_state(grouped))

    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        with self._own_rng():
            return self._step_unlocked(actions)

    def _step_unlocked(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        self._first_reset = False
        per_agent = {a: actions[g][:, i] for g, m in self._members.items() for i, a in enumerate(m)}
        obs, rew, term, trunc, _ = self._env.step(per_agent)
        next_obs = self._group_obs(obs)
        next_state = stack_state(next_obs)
        done = term | trunc
        after_obs = next_obs
        if bool(done.any()):
            if bool(done.all()):
                self._env.reset(return_observations=False)
            else:
                for index in done.nonzero().flatten().tolist():
                    self._env.reset_at(index, return_observations=False)
            after_obs = self._group_obs(self._current_obs())
        reward, terminated, truncated = {}, {}, {}
        for g, m in self._members.items():
            reward[g] = torch.stack([rew[a] for a in m], dim=1)
            terminated[g] = term.unsqueeze(1).expand(-1, len(m))
            truncated[g] = trunc.unsqueeze(1).expand(-1, len(m))
        return self._pack(
            after_obs,
            self._alive,
            stack_state(after_obs) if after_obs is not next_obs else next_state,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=next_obs,
            next_state=next_state,
            done=done,
        )

    def render(self, env_index: int = 0) -> object:
        with self._own_rng():
            return self._env.render(mode="rgb_array", env_index=env_index, visualize_when_rgb=False)


def _shared_rng_state() -> list:
    from vmas.simulator.environment.environment import Environment

    return Environment.vmas_random_state


# Random sequential placement of disks jams at about 55% of the area (and slows down well before:
# 24 default-size agents did not build in 2 minutes at 256 copies, 20 took 1.9 s); VMAS resamples positions
# until every entity fits, so past this density building the env may never return.
SPAWN_DENSITY_LIMIT = 0.4


def _check_navigation_fits(kwargs: Mapping[str, Any]) -> None:
    """navigation spawns every agent and its goal at least ``2 r + 0.05`` apart in ``[-x, x] x [-y, y]``
    (VMAS defaults: 4 agents, r = 0.1, x = y = 1). Refuse, in one line, a layout too dense to place."""
    n, r = kwargs.get("n_agents", 4), kwargs.get("agent_radius", 0.1)
    x, y = kwargs.get("world_spawning_x", 1), kwargs.get("world_spawning_y", 1)
    if not all(isinstance(v, (int, float)) and v > 0 for v in (n, r, x, y)):
        return  # VMAS reports bad values itself
    gap = 2 * r + 0.05
    density = 2 * n * math.pi * (gap / 2) ** 2 / ((2 * x + gap) * (2 * y + gap))
    if density > SPAWN_DENSITY_LIMIT:
        side = math.sqrt(2 * n * math.pi * (gap / 2) ** 2 / SPAWN_DENSITY_LIMIT) / 2
        raise MarlkitError(
            f"vmas/navigation cannot place {n} agents and their goals (radius {r}) in [-{x}, {x}] x [-{y}, {y}]: "
            f"set env.world_spawning_x and env.world_spawning_y to at least {math.ceil(side * 10) / 10}"
        )


# ------------------------------------------------------------------------ what marlkit knows of tasks
# Known reward functions restate the task's reward from its live scenario object, so that scenario
# options (shaping factor, penalties, radii) are read, not assumed (marlkit.models.rewards says why a model
# needs them).
def vmas_navigation(scenario: Any, agent_order: list[str]) -> RewardFn:
    """VMAS navigation: progress towards the goal (every agent's, summed, when ``shared_rew``), a
    final reward once all agents are on their goals, and a penalty for each agent touched."""
    agents = scenario.world.agents
    n = len(agents)
    if agent_order != [a.name for a in agents]:
        raise MarlkitError(
            "the known vmas/navigation reward needs the agents in scenario order; use algo.reward=learned"
        )
    radius, goal_radius = agents[0].shape.radius, agents[0].goal.shape.radius
    if any(a.shape.radius != radius or a.goal.shape.radius != goal_radius for a in agents):
        raise MarlkitError("the known vmas/navigation reward needs equal agent and goal radii; use algo.reward=learned")
    # Observation: position, velocity, position minus goal (each agent's goal with observe_all_goals), lidar.
    goal_at = [4 + 2 * (i if scenario.observe_all_goals else 0) for i in range(n)]
    goal_cols = torch.tensor([[c, c + 1] for c in goal_at])  # [n, 2]
    # VMAS penalizes a pair whose spheres overlap. It also penalizes gaps up to min_collision_distance,
    # but only in batches where the pair overlaps in some other env copy (World.collides looks at the
    # whole batch), which no function of one transition can know.
    contact = 2 * radius
    others = ~torch.eye(n, dtype=torch.bool)
    rows = torch.arange(n).unsqueeze(1)

    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        before, after = obs.view(len(obs), n, -1), next_obs.view(len(next_obs), n, -1)
        at = (rows.to(obs.device), goal_cols.to(obs.device))  # no-ops on CPU; tiny copies on a GPU
        to_goal_before = before[:, at[0], at[1]].norm(dim=-1)  # [B, n]
        to_goal_after = after[:, at[0], at[1]].norm(dim=-1)
        progress = (to_goal_before - to_goal_after) * scenario.pos_shaping_factor
        total = progress.sum(-1, keepdim=True).expand(-1, n) if scenario.shared_rew else progress
        total = total + scenario.final_reward * (to_goal_after < goal_radius).all(-1, keepdim=True)
        if scenario.collisions:
            pos = after[..., :2]
            gap = (pos.unsqueeze(2) - pos.unsqueeze(1)).norm(dim=-1)  # [B, n, n]
            touched = ((gap <= contact) & others.to(gap.device)).sum(-1)
            total = total + scenario.agent_collision_penalty * touched
        return total

    return reward


VMAS_TASKS = {
    "navigation": TaskFacts(reward=vmas_navigation),
    "simple_tag": TaskFacts(game=True),
    "football": TaskFacts(game=True),
}
