"""The critics of the off-policy family: batched Q ensembles (local Q_i(o_i, a_i) or central
Q_i(global input, all actions), shared with an agent id or one per agent), their inputs, Q values for
every own action (discrete SAC), and TD targets. A mixin of :class:`~marlkit.algorithms.offpolicy.OffPolicy`,
which owns the networks and the config it reads."""

from __future__ import annotations

import torch
from torch import nn

from marlkit.algorithms.offpolicy_config import OffPolicyConfig
from marlkit.core.specs import Discrete, GroupSpec
from marlkit.networks.ensemble import EnsembleMLP
from marlkit.networks.groups import JointActions, central_input_dim


def td_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    gamma: float,
    alpha: torch.Tensor | None = None,
    next_logp: torch.Tensor | None = None,
) -> torch.Tensor:
    """``r + gamma (1 - terminated) V(s')`` with the soft value ``V = Q - alpha log pi`` when ``alpha`` is
    given. Truncation does not appear: a time limit still bootstraps from the reached state."""
    if alpha is None:
        value = q_next
    else:
        assert next_logp is not None, "a soft target needs log pi(a'|s')"
        value = q_next - alpha * next_logp
    return reward + gamma * (1 - terminated.float()) * value


class QCritics:
    # Owned by OffPolicy:
    cfg: OffPolicyConfig
    groups: dict[str, GroupSpec]
    state_dim: int
    joint: JointActions

    def _make_critic(self, g: str, s: GroupSpec) -> EnsembleMLP:
        cfg = self.cfg
        if cfg.critic == "local":
            in_dim = s.obs_dim + self.joint.widths[g]
        else:
            joint = central_input_dim(self.groups, self.state_dim, cfg.central_input, with_actions=True)
            in_dim = joint + (s.n_agents if self._agent_id(g) else 0)
        members = cfg.n_critics * (1 if cfg.share_critic else s.n_agents)
        return EnsembleMLP(members, in_dim, 1, cfg.hidden, cfg.activation)

    def _agent_id(self, g: str) -> bool:
        # A shared central critic sees the same input for every agent: a one-hot id tells them apart.
        cfg = self.cfg
        return cfg.shared_central_critic and cfg.critic_agent_id and self.groups[g].n_agents > 1

    def q_values(self, critics: nn.ModuleDict, g: str, x: torch.Tensor) -> torch.Tensor:
        """Critic inputs ``[B, n_agents, D]`` -> Q values ``[n_critics, B, n_agents]`` in one batched call."""
        b, n, d = x.shape
        nq = self.cfg.n_critics
        net = critics[g]
        if self.cfg.share_critic:
            return net(x.reshape(1, b * n, d).expand(nq, b * n, d)).view(nq, b, n)
        per_agent = x.transpose(0, 1).unsqueeze(0).expand(nq, n, b, d).reshape(nq * n, b, d)
        return net(per_agent).view(nq, n, b).transpose(1, 2)

    def critic_input(self, g: str, obs: torch.Tensor, base: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        """``actions``: the group's own ``[B, n, a]`` (local critic) or joint ``[B, n, joint.dim]``
        (central critic, one row per agent so that each agent may see a different joint action)."""
        if self.cfg.critic == "local":
            return torch.cat([obs.flatten(2), actions], dim=-1)
        assert base is not None
        b, n = actions.shape[:2]
        parts = [base.unsqueeze(1).expand(b, n, base.shape[-1]), actions]
        if self._agent_id(g):
            parts.append(torch.eye(n, device=base.device).expand(b, n, n))
        return torch.cat(parts, dim=-1)

    def q_all_actions(
        self, critics: nn.ModuleDict, g: str, obs: torch.Tensor, base: torch.Tensor, behaviour: torch.Tensor
    ) -> torch.Tensor:
        """``Q_i`` with agent i's own action set to each of its group's actions in turn, the other agents'
        actions from the joint ``behaviour [B, dim]`` (central critics): ``[n_critics, B, n, n_actions]``,
        all actions in one batched critic call."""
        spec = self.groups[g]
        assert isinstance(spec.action, Discrete)
        k, b, n = spec.action.n, obs.shape[0], spec.n_agents
        own = torch.eye(k, device=obs.device).view(k, 1, 1, k).expand(k, b, n, k)
        rows_obs = obs.unsqueeze(0).expand(k, *obs.shape).flatten(0, 1)
        if self.cfg.critic == "local":
            x = self.critic_input(g, rows_obs, None, own.flatten(0, 1))
        else:
            zeros = {h: own.new_zeros(k, b, t.n_agents, self.joint.widths[h]) for h, t in self.groups.items()}
            fresh = self.joint.pack({**zeros, g: own})
            others = behaviour.unsqueeze(0).expand(k, *behaviour.shape).flatten(0, 1)
            joint = self.joint.with_agent(g, others, fresh.flatten(0, 1))
            x = self.critic_input(g, rows_obs, base.unsqueeze(0).expand(k, *base.shape).flatten(0, 1), joint)
        q = self.q_values(critics, g, x)
        return q.view(q.shape[0], k, b, n).permute(0, 2, 3, 1)

    @staticmethod
    def soft_value(q_all: torch.Tensor, probs: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """``sum_a pi(a) (min_j Q_j(a) - alpha log pi(a))`` per agent, ``[B, n]`` (``alpha [n]``); illegal
        actions weigh 0."""
        return (probs * (q_all.min(0).values - alpha.unsqueeze(-1) * logp)).sum(-1)

    def _critic_in(self, g: str, obs: torch.Tensor, base: torch.Tensor, own: torch.Tensor, joint: torch.Tensor):
        if self.cfg.critic == "local":
            return self.critic_input(g, obs, None, own)
        n = self.groups[g].n_agents
        return self.critic_input(g, obs, base, joint.unsqueeze(1).expand(-1, n, -1) if joint.dim() == 2 else joint)
