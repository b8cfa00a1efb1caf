"""The ensemble world model: fits a known system, knows where it has no data, members differ, elites
are the best held-out members, and its normalizers survive a checkpoint."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from marlkit.core.errors import MarlkitError
from marlkit.models.world_model import EnsembleWorldModel, WorldModelConfig, gaussian_nll

SMALL = WorldModelConfig(ensemble_size=5, elites=3, hidden=(64, 64), max_epochs=100, patience=20, batch_size=64)


def system(s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A nonlinear 2-D system: s' = s + 0.1 (sin(3 s_0) + a, cos(2 s_1) s_0), r = -|s|^2 + 0.5 a."""
    ds = 0.1 * torch.stack([torch.sin(3 * s[:, 0]) + a[:, 0], torch.cos(2 * s[:, 1]) * s[:, 0]], dim=-1)
    return s + ds, -(s**2).sum(-1) + 0.5 * a[:, 0]


def data(n: int, low: float = -1.0, high: float = 1.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = low + (high - low) * torch.rand(n, 2, generator=g)
    a = 2 * torch.rand(n, 1, generator=g) - 1
    s2, r = system(s, a)
    return s, a, s2, r


@pytest.fixture(scope="module")
def fitted() -> tuple[EnsembleWorldModel, dict]:
    model = EnsembleWorldModel(2, 1, SMALL, seed=0)
    metrics = model.fit(*data(3000))
    return model, metrics


def test_fits_a_known_nonlinear_system(fitted):
    model, metrics = fitted
    s, a, s2, r = data(500, seed=1)
    pred_s2, pred_r, _, _ = model.predict(s, a, sample=False)
    state_rmse = (pred_s2 - s2).pow(2).mean().sqrt().item()
    reward_rmse = (pred_r - r).pow(2).mean().sqrt().item()
    # Deltas are up to 0.2 in size and rewards span [-2.5, 0.5]: a few percent of either.
    assert state_rmse < 0.01, state_rmse
    assert reward_rmse < 0.05, reward_rmse
    assert metrics["model_epochs"] >= 1


def test_uncertainty_is_larger_far_from_the_data(fitted):
    model, _ = fitted
    s_in, a_in, _, _ = data(500, seed=2)
    s_out, a_out, _, _ = data(500, low=3.0, high=4.0, seed=2)
    inside = model.predict(s_in, a_in, sample=False).disagreement
    outside = model.predict(s_out, a_out, sample=False).disagreement
    assert outside.mean() > 10 * inside.mean(), (outside.mean(), inside.mean())
    # The learned aleatoric variance is also larger out there than on the data.
    x_in, x_out = model.normalize_input(s_in, a_in), model.normalize_input(s_out, a_out)
    logvar_in = model._members_forward(x_in, model.elite_idx).logvar
    logvar_out = model._members_forward(x_out, model.elite_idx).logvar
    assert logvar_out.mean() > logvar_in.mean()


def test_members_differ(fitted):
    model, _ = fitted
    weight = model.net.layers[0].weight
    assert not torch.allclose(weight[0], weight[1])
    s, a, _, _ = data(100, low=2.0, high=3.0, seed=3)
    x = model.normalize_input(s, a)
    mean = model(x.unsqueeze(0).expand(model.cfg.ensemble_size, *x.shape)).mean
    assert (mean[0] - mean[1]).abs().mean() > 1e-3


def test_elites_are_the_members_with_lowest_holdout_error():
    model = EnsembleWorldModel(2, 1, WorldModelConfig(ensemble_size=6, elites=2, hidden=(16,), max_epochs=3), seed=4)
    s, a, s2, r = data(400, seed=4)
    model.fit(s, a, s2, r)
    # Recompute the held-out split the fit used (same generator draw) and each member's error on it.
    g = torch.Generator().manual_seed(5)  # seed + 1, as the model's generator
    perm = torch.randperm(400, generator=g)
    hold = perm[: round(0.1 * 400)]
    inputs = (torch.cat([s, a], -1)[hold] - model.in_mean) / model.in_std
    targets = (torch.cat([s2 - s, r.unsqueeze(-1)], -1)[hold] - model.out_mean) / model.out_std
    mse = model.holdout_mse(inputs, targets)
    assert sorted(model.elite_idx.tolist()) == sorted(torch.argsort(mse)[:2].tolist())


def test_normalizers_round_trip_through_a_checkpoint(fitted):
    model, _ = fitted
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    copy = EnsembleWorldModel(2, 1, SMALL, seed=99)
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("in_mean", "in_std", "out_mean", "out_std", "elite_idx"):
        assert torch.equal(getattr(model, name), getattr(copy, name)), name
    s, a, _, _ = data(50, seed=5)
    members = model.elite_idx[torch.arange(50) % len(model.elite_idx)]
    assert torch.equal(model.predict(s, a, members, sample=False)[0], copy.predict(s, a, members, sample=False)[0])


def test_deterministic_mode_predicts_means_only():
    model = EnsembleWorldModel(
        2, 1, WorldModelConfig(ensemble_size=3, elites=2, probabilistic=False, hidden=(32,), max_epochs=50), seed=0
    )
    model.fit(*data(500))
    s, a, _, _ = data(10, seed=6)
    first, second = model.predict(s, a), model.predict(s, a)
    mean, logvar, _ = model(model.normalize_input(s, a).unsqueeze(0).expand(3, 10, 3))
    assert logvar is None and mean.shape == (3, 10, 3)
    # No aleatoric noise: particles bound to the same member get the same prediction.
    members = model.elite_idx[torch.zeros(10, dtype=torch.long)]
    assert torch.equal(model.predict(s, a, members)[0], model.predict(s, a, members)[0])
    assert first[0].shape == second[0].shape == (10, 2)


def test_model_rollout_respects_termination(fitted):
    from marlkit.models.world_model import ModelRollout

    model, _ = fitted
    # Terminate as soon as s_0 exceeds 0.5; actions push s_0 up (ds_0 = 0.1 (sin 3 s_0 + a)).
    env = ModelRollout(model, termination=lambda s, a, s2: s2[:, 0] > 0.5, propagation="ts_inf", seed=0)
    state = torch.zeros(64, 2)
    state[:, 0] = torch.linspace(0.0, 0.45, 64)
    out = env.rollout(state, torch.ones(64, 12, 1))
    ended = out["terminated"]
    assert bool(ended[:, -1].all()), "every particle crosses 0.5 within 12 steps"
    first = ended.float().argmax(1)
    for i in range(64):
        after = slice(int(first[i]) + 1, None)
        assert torch.all(out["rewards"][i, after] == 0), "no reward after a terminal step"
        assert torch.all(out["disagreement"][i, after] == 0)
        assert torch.all(out["states"][i, int(first[i]) + 2 :] == out["states"][i, int(first[i]) + 1])
        assert bool(ended[i, int(first[i]) :].all()), "termination is absorbing"
    # TS-1 and TS-inf both run; with sampling off and one elite their paths would coincide.
    assert ModelRollout(model, propagation="ts1", seed=0).rollout(state, torch.ones(64, 3, 1))["states"].shape == (
        64,
        4,
        2,
    )


def test_each_particle_runs_through_its_own_member(fitted):
    model, _ = fitted
    s, a, _, _ = data(37, seed=7)  # uneven counts per member
    g = torch.Generator().manual_seed(0)
    members = model.elite_idx[torch.randint(len(model.elite_idx), (37,), generator=g)]
    next_state, reward, _, _ = model.predict(s, a, members, sample=False, disagreement=False)
    x = model.normalize_input(s, a)
    every = model(x.unsqueeze(0).expand(model.cfg.ensemble_size, *x.shape)).mean  # all members, all particles
    expected = every[members, torch.arange(37)] * model.out_std + model.out_mean
    torch.testing.assert_close(next_state, s + expected[:, :2])
    torch.testing.assert_close(reward, expected[:, 2])


def test_learned_termination_head_predicts_the_terminal_region_and_ends_rollouts():
    from marlkit.models.world_model import ModelRollout

    s, a, s2, r = data(3000, seed=8)
    terminated = s2[:, 0] > 0.5  # the task ends once s_0 passes 0.5
    cfg = WorldModelConfig(ensemble_size=3, elites=2, hidden=(64, 64), max_epochs=80, patience=20, batch_size=64)
    model = EnsembleWorldModel(2, 1, cfg, seed=0, termination_head=True)
    model.fit(s, a, s2, r, terminated)
    ts, ta, ts2, _ = data(1000, seed=9)
    predicted = model.predict(ts, ta, sample=False).terminated
    accuracy = (predicted == (ts2[:, 0] > 0.5)).float().mean()
    assert accuracy > 0.95, accuracy
    # Without a known function the rollout ends where the head says so, and pays nothing afterwards.
    start = torch.zeros(32, 2)
    start[:, 0] = torch.linspace(0.0, 0.45, 32)
    out = ModelRollout(model, termination=None, seed=0).rollout(start, torch.ones(32, 12, 1))
    ended = out["terminated"]
    assert bool(ended[:, -1].all())
    first = ended.float().argmax(1)
    for i in range(32):
        assert torch.all(out["rewards"][i, int(first[i]) + 1 :] == 0)
        assert float(out["states"][i, int(first[i]) + 1, 0]) > 0.4  # it ended near the real boundary


def test_one_reward_per_agent():
    s, a, s2, r = data(2000, seed=10)
    rewards = torch.stack([r, -r, 2 * r], dim=-1)
    # 150 epochs: the largest error is 0.044 of the 0.1 tolerance (100 epochs leave 0.094, 300 give 0.043).
    model = EnsembleWorldModel(2, 1, dataclasses.replace(SMALL, max_epochs=150), seed=0, reward_dim=3)
    model.fit(s, a, s2, rewards)
    ts, ta, _, tr = data(200, seed=11)
    predicted = model.predict(ts, ta, sample=False).reward
    assert predicted.shape == (200, 3)
    torch.testing.assert_close(predicted, torch.stack([tr, -tr, 2 * tr], -1), atol=0.1, rtol=0)


def test_beta_nll_reweights_by_the_variance_and_gives_beta_one_the_squared_error_gradient():
    torch.manual_seed(0)
    mean = torch.randn(3, 5, requires_grad=True)
    logvar = torch.randn(3, 5, requires_grad=True)
    target = torch.randn(3, 5)
    plain = gaussian_nll(mean, logvar, target)
    torch.testing.assert_close(plain, (mean - target) ** 2 / logvar.exp() + logvar)
    half = gaussian_nll(mean, logvar, target, 0.5)
    torch.testing.assert_close(half, plain * (0.5 * logvar).exp())
    (grad_mean,) = torch.autograd.grad(gaussian_nll(mean, logvar, target, 1.0).sum(), mean)
    torch.testing.assert_close(grad_mean, 2 * (mean - target))  # d/dmean of (mean - target)^2
    with pytest.raises(MarlkitError, match=r"model.nll_beta must be in \[0, 1\], got 2"):
        WorldModelConfig(nll_beta=2).validate()
