"""Cross-entropy-method MPC over action sequences (the planner of PETS, Chua et al. 2018).

Each call to :meth:`CEMPlanner.plan` refines a Gaussian over ``[horizon, action_dim]`` sequences:
sample ``population`` sequences from a truncated normal inside the action bounds, score them, refit
mean and std to the ``elite_ratio`` best (with ``momentum`` towards the previous values), repeat
``iterations`` times. :meth:`act` returns the first action of the plan and warm-starts the next call
with the plan shifted by one step (the new last step starts at the middle of the bounds).

Scores that are NaN or infinite rank as the worst possible score, never as zero: mbrl-lib replaces
NaN by -1e-10, which makes a diverged candidate win whenever every real return is negative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from marlkit.core.options import KeyFn, option, require, require_at_least


@dataclass(frozen=True)
class CEMConfig:
    horizon: int = option(15, "planning horizon H (steps)")
    population: int = option(100, "candidate sequences per iteration")
    elite_ratio: float = option(0.1, "fraction of candidates that refit the sampling distribution")
    iterations: int = option(5, "CEM iterations per planning call")
    momentum: float = option(0.1, "weight of the previous mean/std when refitting (0: elites only)")

    def validate(self, key: KeyFn = lambda name: f"planner.{name}") -> None:
        require_at_least(self, ("horizon", "population", "iterations"), 1, key)
        require(0 < self.elite_ratio <= 1, f"{key('elite_ratio')} must be in (0, 1], got {self.elite_ratio}")
        require(0 <= self.momentum < 1, f"{key('momentum')} must be in [0, 1), got {self.momentum}")

    @property
    def n_elites(self) -> int:
        return max(1, int(self.elite_ratio * self.population))


Score = Callable[[torch.Tensor], torch.Tensor]


class CEMPlanner:
    """CEM over sequences in ``[low, high]``; higher scores are better.

    Unbatched (``batch=None``): ``score(candidates [P, H, A]) -> [P]`` and plans are ``[H, A]``.
    Batched (``batch=N``, one independent problem per env copy, solved together):
    ``score(candidates [N, P, H, A]) -> [N, P]`` and plans are ``[N, H, A]``.
    """

    def __init__(
        self, cfg: CEMConfig, low: torch.Tensor, high: torch.Tensor, seed: int = 0, batch: int | None = None
    ) -> None:
        cfg.validate()
        self.cfg, self.batch = cfg, batch
        self.low, self.high = low.float(), high.float()
        self.generator = torch.Generator(device=self.low.device).manual_seed(seed)
        self.mean = self._initial_mean()

    def _middle(self) -> torch.Tensor:
        return (self.low + self.high) / 2

    def _initial_mean(self) -> torch.Tensor:
        shape = (
            (self.cfg.horizon, len(self.low)) if self.batch is None else (self.batch, self.cfg.horizon, len(self.low))
        )
        return self._middle().expand(shape).clone()

    def reset(self, which: torch.Tensor | None = None) -> None:
        """Forget the warm start (at the start of an episode); batched: only the rows where ``which``."""
        if which is None:
            self.mean = self._initial_mean()
        else:
            self.mean[which] = self._middle()

    def plan(self, score: Score) -> torch.Tensor:
        """The refined mean sequence(s) ``[H, A]`` (batched: ``[N, H, A]``)."""
        cfg = self.cfg
        mean = self.mean.clone() if self.batch is not None else self.mean.unsqueeze(0).clone()
        std = ((self.high - self.low) / 4).expand_as(mean).clone()
        n = mean.shape[0]
        for _ in range(cfg.iterations):
            # Keep mean +- 2 std inside the bounds, so truncating at 2 std never leaves them.
            std = torch.minimum(std, torch.minimum(mean - self.low, self.high - mean) / 2).clamp_min(1e-6)
            noise = self._truncated_normal((n, cfg.population, *mean.shape[1:]))
            candidates = mean.unsqueeze(1) + std.unsqueeze(1) * noise
            candidates = torch.maximum(torch.minimum(candidates, self.high), self.low)
            returns = score(candidates) if self.batch is not None else score(candidates[0]).unsqueeze(0)
            returns = torch.where(torch.isfinite(returns), returns, torch.full_like(returns, -math.inf))
            best = torch.topk(returns, cfg.n_elites, dim=1).indices  # [N, elites]
            elites = torch.take_along_dim(candidates, best[:, :, None, None], dim=1)
            mean = cfg.momentum * mean + (1 - cfg.momentum) * elites.mean(1)
            std = cfg.momentum * std + (1 - cfg.momentum) * elites.std(1, unbiased=False)
        return mean if self.batch is not None else mean[0]

    def act(self, score: Score) -> torch.Tensor:
        """Plan, return the first action ``[A]`` (batched: ``[N, A]``), and keep the plan shifted by one
        step as the next start."""
        plan = self.plan(score)
        tail = self._middle().expand(*plan.shape[:-2], 1, len(self.low))
        self.mean = torch.cat([plan[..., 1:, :], tail], dim=-2)
        return plan[..., 0, :]

    def _truncated_normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal truncated to [-2, 2], by inverting the CDF on a uniform draw."""
        cdf_low = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
        u = torch.rand(shape, generator=self.generator, device=self.low.device)
        u = cdf_low + (1 - 2 * cdf_low) * u
        return math.sqrt(2) * torch.erfinv(2 * u - 1)
