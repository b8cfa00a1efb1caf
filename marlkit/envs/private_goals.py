"""Private goals: a cooperative VMAS scenario where a local critic cannot see most of the reward
(``make_env("envs/private_goals")``).

``n_agents`` holonomic agents each have a goal of their own, at random positions. Agent i observes
only its velocity and its own goal relative to itself (4 numbers), nothing of the other agents. The
reward is shared: with ``reward="distance"`` (the default) minus the agents' mean distance to their
goals, with ``reward="progress"`` the decrease of their summed distance, scaled by
``shaping_factor``; plus ``arrival_bonus`` times the fraction of agents within ``goal_radius``.

Each agent's best policy is independent of the others (go to your goal), so independent learners
can solve it; but from agent i's observation, the other agents' share of the shared return is
noise. A critic V(o_i) (ITRPO) therefore leaves most of the return's variance in the advantage,
while a centralized V(s) (MATRPO, HATRPO; the global state is all agents' observations) can
predict it: the textbook case for a centralized critic, with the gap growing with ``n_agents``.

Kwargs: ``n_agents`` (4), ``reward`` ("distance" or "progress"), ``shaping_factor`` (1.0, progress
only), ``goal_radius`` (0.1), ``arrival_bonus`` (0.1, per step, split across agents).
"""

from __future__ import annotations

import torch
from vmas.simulator.core import Agent, Landmark, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import Color, ScenarioUtils


class Scenario(BaseScenario):
    def make_world(self, batch_dim: int, device: torch.device, **kwargs: object) -> World:
        self.n_agents = int(kwargs.pop("n_agents", 4))  # type: ignore[call-overload]
        self.shaping_factor = float(kwargs.pop("shaping_factor", 1.0))  # type: ignore[arg-type]
        self.goal_radius = float(kwargs.pop("goal_radius", 0.1))  # type: ignore[arg-type]
        self.arrival_bonus = float(kwargs.pop("arrival_bonus", 0.1))  # type: ignore[arg-type]
        self.reward_kind = str(kwargs.pop("reward", "distance"))
        if self.reward_kind not in ("distance", "progress"):
            raise ValueError(f"reward must be 'distance' or 'progress', got {self.reward_kind!r}")
        ScenarioUtils.check_kwargs_consumed(kwargs, warn=True)
        if self.n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {self.n_agents}")
        world = World(batch_dim, device, x_semidim=1.2, y_semidim=1.2)
        self.goals = []
        for i in range(self.n_agents):
            world.add_agent(Agent(name=f"agent_{i}", collide=False, shape=Sphere(0.05), color=Color.BLUE))
            goal = Landmark(name=f"goal_{i}", collide=False, shape=Sphere(self.goal_radius), color=Color.GREEN)
            world.add_landmark(goal)
            self.goals.append(goal)
        self.potential = torch.zeros(batch_dim, device=device)
        self.reward_now = torch.zeros(batch_dim, device=device)
        return world

    def _distances(self) -> torch.Tensor:
        pos = torch.stack([a.state.pos for a in self.world.agents], dim=1)
        goals = torch.stack([g.state.pos for g in self.goals], dim=1)
        return torch.linalg.vector_norm(pos - goals, dim=-1)

    def reset_world_at(self, env_index: int | None = None) -> None:
        rows = 1 if env_index is not None else self.world.batch_dim
        for entity in [*self.world.agents, *self.goals]:
            position = torch.empty(rows, self.world.dim_p, device=self.world.device).uniform_(-1.0, 1.0)
            entity.set_pos(position, batch_index=env_index)
        potential = self._distances().sum(-1)
        if env_index is None:
            self.potential = potential
        else:
            self.potential[env_index] = potential[env_index]

    def reward(self, agent: Agent) -> torch.Tensor:
        # Shared reward, computed once per step when the first agent asks for it.
        if agent is self.world.agents[0]:
            distances = self._distances()
            potential = distances.sum(-1)
            arrived = (distances < self.goal_radius).float().mean(-1)
            if self.reward_kind == "distance":
                self.reward_now = -distances.mean(-1) + self.arrival_bonus * arrived
            else:
                self.reward_now = self.shaping_factor * (self.potential - potential) + self.arrival_bonus * arrived
            self.potential = potential
        return self.reward_now

    def observation(self, agent: Agent) -> torch.Tensor:
        goal = self.goals[self.world.agents.index(agent)]
        return torch.cat([agent.state.vel, goal.state.pos - agent.state.pos], dim=-1)
