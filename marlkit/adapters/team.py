"""A common reward for any task: every agent gets the team's reward, the sum of all agents' rewards at that
step (``env.team_reward=true``).

This is how HARL's MPE wrapper and EPyMARL's ``common_reward`` present cooperative tasks; with it marlkit
trains on the reward those references train on. Returns in ``metrics.csv`` are then team returns for every
agent (``eval_return_mean`` is the team return; ``eval_return_team`` sums it over the agents). Known reward
functions (model-based rollouts) give each agent its own reward, so they are not offered here.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from marlkit.adapters.base import MultiAgentEnv
from marlkit.keys import REWARD


class TeamReward(MultiAgentEnv):
    """``env`` with each agent's reward replaced by the sum over all agents of all groups."""

    def __init__(self, env: MultiAgentEnv) -> None:
        groups = dict(env.groups)
        super().__init__(env.name, env.num_envs, env.device, groups, env.state_dim, env.state_source, env.seed)
        self.inner = env
        self.scenario = None  # known reward functions would give agents their own rewards
        self.hidden = env.hidden

    def _step(self, actions: dict[str, torch.Tensor]) -> TensorDict:
        td = self.inner._step(actions)
        total = sum(td[g][REWARD].sum(-1) for g in self.groups)
        assert isinstance(total, torch.Tensor)
        for g, spec in self.groups.items():
            td[g].set(REWARD, total.unsqueeze(-1).expand(-1, spec.n_agents).contiguous())
        return td

    def _reset(self, seed: int | None) -> TensorDict:
        return self.inner.reset(seed)

    def render(self, env_index: int = 0) -> object:
        return self.inner.render(env_index)

    def close(self) -> None:
        self.inner.close()
