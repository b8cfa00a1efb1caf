"""The actor updates of the on-policy family: trust-region steps (simultaneous, or sequential with
HATRPO's factor) and PPO-clip epochs. A mixin of :class:`~marlkit.algorithms.onpolicy.OnPolicy`, which
owns the networks and the config it reads."""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping

import torch
from torch import nn

from marlkit.algorithms.onpolicy_config import OnPolicyConfig
from marlkit.algorithms.onpolicy_data import GroupBatch, index_memory, masked_mean
from marlkit.blocks.trust_region import StepResult, trust_region_step
from marlkit.networks.policies import GroupPolicy


class OnPolicyActorSteps:
    # Owned by OnPolicy:
    cfg: OnPolicyConfig
    actor_rows: nn.ParameterDict
    actor_opts: dict[str, torch.optim.Adam]
    agent_ids: list[tuple[str, int]]
    order_rng: torch.Generator
    shuffle_rng: torch.Generator
    _policy: Callable[[str], GroupPolicy]

    def _solve(self, g: str, d: GroupBatch, weight: torch.Tensor | None, agent: int | None) -> StepResult:
        """A trust-region step for group ``g`` (all agents batched) or for one ``agent`` of it."""
        policy = self._policy(g)
        net = policy.net
        # Separate parameters solve one problem per agent (reduce over samples); shared, one problem.
        b = d if agent is None else d.agent(agent)
        dims = tuple(range(b.lead + (agent is None and net.share_params)))
        obs, mask, action, alive, adv = b.obs, b.mask, b.action, b.alive, b.advantage
        old_dist, old_lp = b.old_dist, b.old_log_prob
        theta0 = net.flat_params(agent)
        if weight is not None:
            adv = adv * weight

        def per_problem(x: torch.Tensor) -> torch.Tensor:
            return masked_mean(x, alive, dims).reshape(-1)

        def dist_at(theta: torch.Tensor) -> torch.Tensor:
            return policy.dist(obs, mask, net.unflatten(theta), agent, b.memory)

        def surrogate(theta: torch.Tensor) -> torch.Tensor:
            ratio = torch.exp(policy.log_prob(dist_at(theta), action) - old_lp)
            return per_problem(ratio * adv)

        def kl(theta: torch.Tensor) -> torch.Tensor:
            return per_problem(policy.kl(old_dist, dist_at(theta)))

        result = trust_region_step(theta0, surrogate, kl, self.cfg.trust_region)
        net.set_flat_params(result.theta, agent)
        return result

    def _update_actors_simultaneous(self, data: dict[str, GroupBatch]) -> dict[str, float]:
        if self.cfg.step_rule == "clip":
            rows = {g: self._actor_row(g, self._policy(g).net.flat_params()) for g in data}
            clip_metrics = self._clip_epochs(
                list(rows),
                lambda idx: torch.stack(
                    [self._clip_loss(g, d, idx, params=self._policy(g).net.unflatten(rows[g])) for g, d in data.items()]
                ).sum(),
                data,
            )
            for g, row in rows.items():
                self._policy(g).net.set_flat_params(row.detach())
            return clip_metrics
        metrics: dict[str, float] = {}
        for g, d in data.items():
            metrics.update(self._solve(g, d, None, None).metrics(f"{g}/"))
        return metrics

    def _update_actors_sequential(self, data: dict[str, GroupBatch]) -> dict[str, float]:
        n = len(self.agent_ids)
        order = torch.randperm(n, generator=self.order_rng).tolist() if self.cfg.agent_order == "random" else range(n)
        self.last_order = [f"{self.agent_ids[k][0]}_{self.agent_ids[k][1]}" for k in order]
        any_d = next(iter(data.values()))
        factor = torch.ones(any_d.alive.shape[: any_d.lead], device=any_d.alive.device)
        results: dict[str, list[dict[str, float]]] = {}
        for k in order:
            g, i = self.agent_ids[k]
            d = data[g]
            if self.cfg.step_rule == "trust_region":
                results.setdefault(g, []).append(self._solve(g, d, factor, i).metrics(f"{g}/"))
            else:
                results.setdefault(g, []).append(self._clip_agent(g, i, d, factor))
            with torch.no_grad():
                policy, a = self._policy(g), d.agent(i)
                new_lp = policy.log_prob(policy.dist(a.obs, a.mask, agent=i, memory=a.memory), a.action)
                ratio = torch.where(a.alive, torch.exp(new_lp - a.old_log_prob), 1.0)
                factor = factor * ratio
                if self.cfg.factor_clip > 1:
                    factor = factor.clamp(1 / self.cfg.factor_clip, self.cfg.factor_clip)
        metrics = {key: sum(r[key] for r in rs) / len(rs) for rs in results.values() for key in rs[0]}
        self.last_factor = factor
        metrics["factor_mean"] = float(factor.mean())
        metrics["factor_max"] = float(factor.max())
        return metrics

    def _clip_loss(
        self,
        g: str,
        d: GroupBatch,
        idx: torch.Tensor,
        agent: int | None = None,
        weight: torch.Tensor | None = None,
        params: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        policy = self._policy(g)
        b = d if agent is None else d.agent(agent)
        mask = None if b.mask is None else b.mask[idx]
        dist = policy.dist(b.obs[idx], mask, params, agent, index_memory(b.memory, idx))
        ratio = torch.exp(policy.log_prob(dist, b.action[idx]) - b.old_log_prob[idx])
        adv = b.advantage[idx] * (1.0 if weight is None else weight[idx])
        clipped = torch.min(ratio * adv, ratio.clamp(1 - self.cfg.clip_eps, 1 + self.cfg.clip_eps) * adv)
        alive = b.alive[idx]
        return -masked_mean(clipped, alive) - self.cfg.entropy_coef * masked_mean(policy.entropy(dist), alive)

    def _actor_row(self, key: str, current: torch.Tensor) -> nn.Parameter:
        """The optimizer's copy of some parameter rows of group ``g``, refreshed from ``current``."""
        if key not in self.actor_rows:
            self.actor_rows[key] = nn.Parameter(current.clone())
            self.actor_opts[key] = torch.optim.Adam([self.actor_rows[key]], lr=self.cfg.actor_lr, eps=self.cfg.adam_eps)
        row = self.actor_rows[key]
        with torch.no_grad():
            row.copy_(current)
        return typing.cast(nn.Parameter, row)

    def _clip_epochs(
        self, keys: list[str], loss_fn: Callable[[torch.Tensor], torch.Tensor], data: Mapping[str, GroupBatch]
    ) -> dict[str, float]:
        n = next(iter(data.values())).alive.shape[0]
        device = next(iter(data.values())).alive.device
        losses = []
        for _ in range(self.cfg.actor_epochs):
            perm = torch.randperm(n, generator=self.shuffle_rng)
            for idx in perm.chunk(self.cfg.actor_minibatches):
                loss = loss_fn(idx.to(device))
                for key in keys:
                    self.actor_opts[key].zero_grad()
                loss.backward()
                for key in keys:
                    grad = self.actor_rows[key].grad
                    assert grad is not None
                    # Each agent's row is clipped to its own norm: agents do not share a clip factor.
                    norms = grad.norm(dim=1, keepdim=True)
                    grad.mul_((self.cfg.max_grad_norm / (norms + 1e-6)).clamp(max=1.0))
                    self.actor_opts[key].step()
                losses.append(float(loss.detach()))
        return {"actor_loss": sum(losses) / len(losses)}

    def _clip_agent(self, g: str, i: int, d: GroupBatch, weight: torch.Tensor) -> dict[str, float]:
        net = self._policy(g).net
        key = f"{g}__{i}" if not net.share_params else f"{g}__shared"
        row = self._actor_row(key, net.flat_params(i))
        metrics = self._clip_epochs(
            [key], lambda idx: self._clip_loss(g, d, idx, i, weight, net.unflatten(row)), {g: d}
        )
        net.set_flat_params(row.detach(), i)
        return {f"{g}/{k}": v for k, v in metrics.items()}
