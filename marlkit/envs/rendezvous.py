"""Rendezvous: a cooperative VMAS scenario written for marlkit (``make_env("envs/rendezvous")``).

``n_agents`` holonomic agents start at random positions and must all gather on one goal. The
reward is dense and shared: the decrease of the agents' summed distance to the goal, scaled by
``shaping_factor``, plus ``arrival_bonus`` on the step all agents are within ``goal_radius``.
Observation of agent i: its velocity, the goal relative to it, and the other agents relative to
it (in agent order), so observation size is ``4 + 2 * (n_agents - 1)``.

Kwargs: ``n_agents`` (3), ``shaping_factor`` (1.0), ``goal_radius`` (0.1), ``arrival_bonus``
(1.0), ``terminate_on_arrival`` (False: the episode runs until ``max_steps``, a truncation).
"""

from __future__ import annotations

import torch
from vmas.simulator.core import Agent, Landmark, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import Color, ScenarioUtils


class Scenario(BaseScenario):
    def make_world(self, batch_dim: int, device: torch.device, **kwargs: object) -> World:
        self.n_agents = int(kwargs.pop("n_agents", 3))  # type: ignore[call-overload]
        self.shaping_factor = float(kwargs.pop("shaping_factor", 1.0))  # type: ignore[arg-type]
        self.goal_radius = float(kwargs.pop("goal_radius", 0.1))  # type: ignore[arg-type]
        self.arrival_bonus = float(kwargs.pop("arrival_bonus", 1.0))  # type: ignore[arg-type]
        self.terminate_on_arrival = bool(kwargs.pop("terminate_on_arrival", False))
        ScenarioUtils.check_kwargs_consumed(kwargs, warn=True)
        if self.n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {self.n_agents}")
        world = World(batch_dim, device, x_semidim=1.2, y_semidim=1.2)
        for i in range(self.n_agents):
            world.add_agent(Agent(name=f"agent_{i}", collide=False, shape=Sphere(0.05), color=Color.BLUE))
        self.goal = Landmark(name="goal", collide=False, shape=Sphere(self.goal_radius), color=Color.GREEN)
        world.add_landmark(self.goal)
        self.potential = torch.zeros(batch_dim, device=device)
        self.reward_now = torch.zeros(batch_dim, device=device)
        return world

    def _distances(self) -> torch.Tensor:
        pos = torch.stack([a.state.pos for a in self.world.agents], dim=1)
        return torch.linalg.vector_norm(pos - self.goal.state.pos.unsqueeze(1), dim=-1)

    def reset_world_at(self, env_index: int | None = None) -> None:
        rows = 1 if env_index is not None else self.world.batch_dim
        for entity in [*self.world.agents, self.goal]:
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
            arrived = (distances < self.goal_radius).all(-1)
            self.reward_now = self.shaping_factor * (self.potential - potential) + self.arrival_bonus * arrived
            self.potential = potential
        return self.reward_now

    def observation(self, agent: Agent) -> torch.Tensor:
        others = [other.state.pos - agent.state.pos for other in self.world.agents if other is not agent]
        return torch.cat([agent.state.vel, self.goal.state.pos - agent.state.pos, *others], dim=-1)

    def done(self) -> torch.Tensor:
        if not self.terminate_on_arrival:
            return torch.zeros(self.world.batch_dim, dtype=torch.bool, device=self.world.device)
        return (self._distances() < self.goal_radius).all(-1)
