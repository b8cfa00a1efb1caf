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

from marlkit.config import option, require, require_at_least


@dataclass(frozen=True)
class CEMConfig:
    horizon: int = option(15, "planning horizon H (steps)")
    population: int = option(350, "candidate sequences per iteration")
    elite_ratio: float = option(0.1, "fraction of candidates that refit the sampling distribution")
    iterations: int = option(5, "CEM iterations per planning call")
    momentum: float = option(0.1, "weight of the previous mean/std when refitting (0: elites only)")

    def validate(self, key: Callable[[str], str] = lambda name: f"planner.{name}") -> None:
        """``key`` names a field as its user sets it (PETS exposes these as ``algo.*`` keys)."""
        require_at_least(self, ("horizon", "population", "iterations"), 1, key)
        require(0 < self.elite_ratio <= 1, f"{key('elite_ratio')} must be in (0, 1], got {self.elite_ratio}")
        require(0 <= self.momentum < 1, f"{key('momentum')} must be in [0, 1), got {self.momentum}")

    @property
    def n_elites(self) -> int:
        return max(1, int(self.elite_ratio * self.population))


Score = Callable[[torch.Tensor], torch.Tensor]


class CEMPlanner:
    """CEM over sequences in ``[low, high]``; ``score(candidates [P, H, A]) -> [P]`` (higher is better)."""

    def __init__(self, cfg: CEMConfig, low: torch.Tensor, high: torch.Tensor, seed: int = 0) -> None:
        cfg.validate()
        self.cfg = cfg
        self.low, self.high = low.float(), high.float()
        self.generator = torch.Generator(device=self.low.device).manual_seed(seed)
        self.mean = self._initial_mean()

    def _initial_mean(self) -> torch.Tensor:
        return ((self.low + self.high) / 2).expand(self.cfg.horizon, -1).clone()

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self.mean = self._initial_mean()

    def plan(self, score: Score) -> torch.Tensor:
        """The refined mean sequence ``[H, A]``."""
        cfg = self.cfg
        mean = self.mean.clone()
        std = ((self.high - self.low) / 4).expand_as(mean).clone()
        for _ in range(cfg.iterations):
            # Keep mean +- 2 std inside the bounds, so truncating at 2 std never leaves them.
            std = torch.minimum(std, torch.minimum(mean - self.low, self.high - mean) / 2).clamp_min(1e-6)
            candidates = mean + std * self._truncated_normal((cfg.population, *mean.shape))
            candidates = torch.maximum(torch.minimum(candidates, self.high), self.low)
            returns = score(candidates)
            returns = torch.where(torch.isfinite(returns), returns, torch.full_like(returns, -math.inf))
            elites = candidates[torch.topk(returns, cfg.n_elites).indices]
            mean = cfg.momentum * mean + (1 - cfg.momentum) * elites.mean(0)
            std = cfg.momentum * std + (1 - cfg.momentum) * elites.std(0, unbiased=False)
        return mean

    def act(self, score: Score) -> torch.Tensor:
        """Plan, return the first action ``[A]``, and keep the plan shifted by one step as the next start."""
        plan = self.plan(score)
        self.mean = torch.cat([plan[1:], ((self.low + self.high) / 2).unsqueeze(0)], dim=0)
        return plan[0]

    def _truncated_normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal truncated to [-2, 2], by inverting the CDF on a uniform draw."""
        cdf_low = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
        u = torch.rand(shape, generator=self.generator, device=self.low.device)
        u = cdf_low + (1 - 2 * cdf_low) * u
        return math.sqrt(2) * torch.erfinv(2 * u - 1)
