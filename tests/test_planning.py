"""CEM planning: finds a known optimum, warm-starts from the shifted plan, never picks NaN candidates."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit.models.planning import CEMConfig, CEMPlanner

LOW, HIGH = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])


@settings(max_examples=10, deadline=None, derandomize=True)  # the same 10 targets on every run
@given(st.integers(0, 10_000))
def test_finds_the_optimum_of_a_quadratic_over_sequences(seed):
    g = torch.Generator().manual_seed(seed)
    target = LOW + (HIGH - LOW) * (0.1 + 0.8 * torch.rand(6, 2, generator=g))  # inside the bounds

    def score(candidates: torch.Tensor) -> torch.Tensor:
        return -(candidates - target).pow(2).sum((1, 2))

    planner = CEMPlanner(CEMConfig(horizon=6, population=1000, iterations=20, momentum=0.1), LOW, HIGH, seed=seed)
    plan = planner.plan(score)
    assert (plan - target).abs().max() < 0.05


def test_samples_stay_inside_the_bounds():
    seen = []
    planner = CEMPlanner(CEMConfig(horizon=3, population=200, iterations=4), LOW, HIGH, seed=0)
    planner.plan(lambda c: seen.append(c.clone()) or c.sum((1, 2)))  # pushes towards the upper bound
    everything = torch.cat(seen)
    assert bool((everything >= LOW).all()) and bool((everything <= HIGH).all())


def test_warm_start_is_the_previous_plan_shifted_by_one_step():
    planner = CEMPlanner(CEMConfig(horizon=5, population=100, iterations=3), LOW, HIGH, seed=1)
    target = torch.linspace(-0.5, 0.5, 5).unsqueeze(-1).expand(5, 2)

    def score(c: torch.Tensor) -> torch.Tensor:
        return -(c - target).pow(2).sum((1, 2))

    plan = planner.plan(score)
    planner.mean = plan.clone()  # act() plans again from the same start: reproduce it with the same seed
    planner = CEMPlanner(CEMConfig(horizon=5, population=100, iterations=3), LOW, HIGH, seed=1)
    first = planner.act(score)
    assert torch.equal(first, plan[0])
    assert torch.equal(planner.mean[:-1], plan[1:])
    assert torch.equal(planner.mean[-1], (LOW + HIGH) / 2)
    planner.reset()
    assert torch.equal(planner.mean, ((LOW + HIGH) / 2).expand(5, 2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_inf_candidate_never_wins(bad):
    # Every real return is negative and best at a = 0.9; candidates with a_0 > 0.5 "diverge". Replacing
    # their score by -1e-10 (mbrl-lib) would make them win; here they rank last.
    def score(c: torch.Tensor) -> torch.Tensor:
        real = -1.0 - (c[..., 0] - 0.9).pow(2).sum(-1)
        return torch.where((c[..., 0] > 0.5).any(-1), torch.full_like(real, bad), real)

    plan = CEMPlanner(CEMConfig(horizon=4, population=300, iterations=10), LOW, HIGH, seed=2).plan(score)
    assert bool((plan[:, 0] <= 0.5).all())
    assert bool((plan[:, 0] > 0.3).all())  # pushed towards the best finite region


def test_batched_planner_solves_one_problem_per_env_copy_and_resets_rows():
    targets = torch.stack([torch.full((4, 2), 0.5), torch.full((4, 2), -0.5), torch.zeros(4, 2)])

    def score(candidates: torch.Tensor) -> torch.Tensor:  # [N, P, H, A] -> [N, P]
        return -(candidates - targets.unsqueeze(1)).pow(2).sum((2, 3))

    planner = CEMPlanner(CEMConfig(horizon=4, population=500, iterations=15), LOW, HIGH, seed=3, batch=3)
    first = planner.act(score)
    assert first.shape == (3, 2)
    assert (first - targets[:, 0]).abs().max() < 0.05
    assert torch.equal(planner.mean[:, -1], ((LOW + HIGH) / 2).expand(3, 2))
    warm = planner.mean.clone()
    planner.reset(torch.tensor([False, True, False]))
    assert torch.equal(planner.mean[[0, 2]], warm[[0, 2]])
    assert torch.equal(planner.mean[1], ((LOW + HIGH) / 2).expand(4, 2))
