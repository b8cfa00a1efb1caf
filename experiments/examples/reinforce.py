"""Independent REINFORCE with a learned baseline: an algorithm written outside marlkit, on its public pieces.

Each agent follows its own policy pi_i(a_i | o_i) and learns from the Monte Carlo return (bootstrapped
only where a rollout or a time limit cuts an episode) minus a learned baseline V_i(o_i):

    loss = -mean[log pi_i(a_i | o_i) * (G_i - V_i(o_i))] + mean[(V_i(o_i) - G_i)^2]

Train it by import path, from the repository root (the working directory is importable):

    marlkit train experiments.examples.reinforce:Reinforce vmas/navigation --frames 40000 \\
        env.n_agents=2 experiment.num_envs=20
    marlkit compare --algos experiments.examples.reinforce:Reinforce,itrpo --envs vmas/navigation ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from marlkit.algorithms.onpolicy import masked_mean
from marlkit.blocks.returns import gae
from marlkit.core.options import KeyFn, option, require, require_at_least
from marlkit.core.specs import GroupSpec
from marlkit.keys import ACTION, ACTION_MASK, ALIVE, NEXT, OBS, REWARD, TERMINATED, TRUNCATED
from marlkit.learner import EnvInfo, Learner
from marlkit.networks.groups import GroupModule, mlp
from marlkit.networks.policies import GroupPolicy


@dataclass(frozen=True)
class ReinforceConfig:
    # Monte Carlo returns are noisy: short rollouts (more updates) and gamma 0.9 (less variance) made
    # vmas/navigation learn on 8 of 8 seeds at 40k frames (final 0.77-2.14), against 4 of 8 with 100 / 0.99.
    rollout_steps: int = option(25, "steps per env copy collected per update")
    gamma: float = option(0.9, "discount factor")
    lr: float = option(3e-3, "policy Adam learning rate")
    baseline_lr: float = option(1e-2, "baseline Adam learning rate")
    baseline_epochs: int = option(5, "baseline regression steps per update")
    entropy_coef: float = option(0.0, "entropy bonus coefficient")
    hidden: tuple[int, ...] = option((64, 64), "hidden layer sizes of policies and baselines")
    share_params: bool = option(True, "one network per group instead of one per agent")

    def validate(self, key: KeyFn) -> None:
        require_at_least(self, ("rollout_steps", "baseline_epochs"), 1, key)
        require(0 < self.gamma <= 1, f"{key('gamma')} must be in (0, 1], got {self.gamma}")
        require(self.lr > 0 and self.baseline_lr > 0, f"{key('lr')} and {key('baseline_lr')} must be > 0")


class Reinforce(Learner):
    """Independent REINFORCE with a learned baseline V_i(o_i) (example learner, out of tree)."""

    Config = ReinforceConfig

    def __init__(self, cfg: ReinforceConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.groups = cfg, dict(env.groups)
        self.policies = nn.ModuleDict(
            {g: GroupPolicy(s, cfg.hidden, "tanh", cfg.share_params) for g, s in self.groups.items()}
        )
        self.baselines = nn.ModuleDict({g: self._baseline(s) for g, s in self.groups.items()})
        self.policy_opt = torch.optim.Adam(self.policies.parameters(), lr=cfg.lr)
        self.baseline_opt = torch.optim.Adam(self.baselines.parameters(), lr=cfg.baseline_lr)

    def _baseline(self, spec: GroupSpec) -> GroupModule:
        return GroupModule(lambda: mlp(spec.obs_dim, 1, self.cfg.hidden), spec.n_agents, self.cfg.share_params)

    @property
    def steps_per_collection(self) -> int:
        return self.cfg.rollout_steps

    def _policy(self, g: str) -> GroupPolicy:
        policy = self.policies[g]
        assert isinstance(policy, GroupPolicy)
        return policy

    def _value(self, g: str, obs: torch.Tensor) -> torch.Tensor:
        return self.baselines[g](obs.flatten(start_dim=obs.dim() - len(self.groups[g].obs_shape))).squeeze(-1)

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        for g, spec in self.groups.items():
            policy = self._policy(g)
            mask = td[g].get(ACTION_MASK, None) if spec.has_action_mask else None
            dist = policy.dist(td[g][OBS], mask)
            td[g][ACTION] = policy.mode(dist) if deterministic else policy.sample(dist)
        return td

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        # Everything read from the borrowed batch is used before update() returns: nothing to copy.
        cfg = self.cfg
        policy_loss = torch.zeros(())
        returns: dict[str, torch.Tensor] = {}
        for g, spec in self.groups.items():
            group, policy = batch[g], self._policy(g)
            with torch.no_grad():
                value, next_value = self._value(g, group[OBS]), self._value(g, batch[NEXT, g, OBS])
                # lambda = 1: the Monte Carlo return, bootstrapped only where the rollout or a time limit cuts it.
                advantage, returns[g] = gae(
                    group[REWARD], value, next_value, group[TERMINATED], group[TRUNCATED], cfg.gamma, 1.0
                )
            alive = group[ALIVE].float()
            advantage = (advantage - masked_mean(advantage, alive)) / (advantage[group[ALIVE]].std() + 1e-8)
            mask = group.get(ACTION_MASK, None) if spec.has_action_mask else None
            dist = policy.dist(group[OBS], mask)
            objective = policy.log_prob(dist, group[ACTION]) * advantage + cfg.entropy_coef * policy.entropy(dist)
            policy_loss = policy_loss - masked_mean(objective, alive)
        self.policy_opt.zero_grad()
        policy_loss.backward()
        self.policy_opt.step()
        for _ in range(cfg.baseline_epochs):
            baseline_loss = torch.stack(
                [
                    masked_mean((self._value(g, batch[g][OBS]) - returns[g]).pow(2), batch[g][ALIVE].float())
                    for g in self.groups
                ]
            ).sum()
            self.baseline_opt.zero_grad()
            baseline_loss.backward()
            self.baseline_opt.step()
        return {"policy_loss": float(policy_loss.detach()), "baseline_loss": float(baseline_loss.detach())}

    def training_state(self, include_replay: bool = True) -> dict[str, Any]:
        return {"policy_opt": self.policy_opt.state_dict(), "baseline_opt": self.baseline_opt.state_dict()}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.baseline_opt.load_state_dict(state["baseline_opt"])
