"""The trust-region solver against hand computations and brute-force references."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marlkit.blocks.returns import gae
from marlkit.blocks.trust_region import TrustRegionConfig, conjugate_gradient, make_fvp, trust_region_step
from marlkit.core.specs import Box, Discrete, GroupSpec
from marlkit.networks.policies import GroupPolicy, Memory

torch.set_default_dtype(torch.float32)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 4), p=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_cg_solves_batched_spd_systems(k, p, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(k, p, p, generator=g, dtype=torch.float64)
    a = q @ q.transpose(1, 2) + 0.5 * torch.eye(p, dtype=torch.float64)
    b = torch.randn(k, p, generator=g, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: (a @ v.unsqueeze(-1)).squeeze(-1), b, iters=4 * p, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-6, atol=1e-6)
    assert bool((residual < 1e-5).all())


def test_worked_example_natural_gradient_step():
    # g = [1, 10], F = diag(100, 1), delta = 0.01 (reference.md): F^-1 g = [0.01, 10], beta = sqrt(0.02/100.01).
    g = torch.tensor([[1.0, 10.0]], dtype=torch.float64)
    fisher = torch.diag(torch.tensor([100.0, 1.0], dtype=torch.float64))
    cfg = TrustRegionConfig(max_kl=0.01, cg_damping=0.0, cg_iters=10)
    result = trust_region_step(
        torch.zeros(1, 2, dtype=torch.float64),
        lambda th: (th * g).sum(-1),
        lambda th: 0.5 * ((th @ fisher) * th).sum(-1),
        cfg,
    )
    beta = (0.02 / 100.01) ** 0.5
    assert abs(beta - 0.01414) < 1e-5
    torch.testing.assert_close(result.theta, torch.tensor([[0.01 * beta, 10 * beta]], dtype=torch.float64))
    # The rounded values quoted in reference.md, at the precision they are quoted with.
    torch.testing.assert_close(result.theta, torch.tensor([[0.000141, 0.1414]], dtype=torch.float64), atol=5e-5, rtol=0)
    assert bool(result.accepted.all()) and float(result.step_frac) == 1.0
    assert float(result.kl) <= 0.01 + 1e-12


def test_rows_are_independent_problems_with_their_own_step_sizes():
    # Two rows with different curvature: each gets its own beta; a single shared solve would not.
    g = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    curv = torch.tensor([[4.0, 1.0], [1.0, 9.0]], dtype=torch.float64)
    cfg = TrustRegionConfig(max_kl=0.02, cg_damping=0.0)
    result = trust_region_step(
        torch.zeros(2, 2, dtype=torch.float64),
        lambda th: (th * g).sum(-1),
        lambda th: 0.5 * (curv * th * th).sum(-1),
        cfg,
    )
    for k in range(2):
        x = g[k] / curv[k]
        expected = (2 * 0.02 / (x * curv[k] * x).sum()).sqrt() * x
        torch.testing.assert_close(result.full_step[k], expected)
        assert bool(result.accepted[k])
        torch.testing.assert_close(result.theta[k], result.step_frac[k] * expected)


def _tiny_policy(discrete: bool, n_agents: int = 1, seed: int = 0, memory: int = 0) -> GroupPolicy:
    torch.manual_seed(seed)
    action = Discrete(4) if discrete else Box((-1.0, -1.0), (1.0, 1.0))
    spec = GroupSpec("agent", tuple(f"agent_{i}" for i in range(n_agents)), (3,), action)
    policy = GroupPolicy(spec, hidden=(5,), activation="tanh", share_params=False, init_log_std=-0.3, memory=memory)
    with torch.no_grad():  # un-shrink the output layer so the Fisher is not nearly zero
        for p in policy.net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return policy


def _analytic_fisher(
    policy: GroupPolicy, dist_of: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor
) -> torch.Tensor:
    """E_s[J^T M J]: J the Jacobian of sample s's distribution parameters (``dist_of(theta [P]) -> [S, D]``),
    M the Fisher of the output family."""
    dist = dist_of(theta[0]).detach()
    jacobian = torch.autograd.functional.jacobian(dist_of, theta[0])  # [S, D, P]
    rows = []
    for s in range(dist.shape[0]):
        if policy.continuous:
            _, log_std = policy.split(dist[s])
            m = torch.diag(torch.cat([torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)]))
        else:
            p = torch.softmax(dist[s], -1)
            m = torch.diag(p) - torch.outer(p, p)
        rows.append(jacobian[s].T @ m @ jacobian[s])
    return torch.stack(rows).mean(0)


def _check_fvp(policy: GroupPolicy, dist_at: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``dist_at(theta [1, P]) -> [..., 1 agent, D]``: the KL Hessian, the explicit Fisher and the solver's
    Fisher-vector products agree."""
    theta0 = policy.net.flat_params()
    old = dist_at(theta0).detach()

    def kl(th: torch.Tensor) -> torch.Tensor:
        return policy.kl(old, dist_at(th)).reshape(-1, 1).mean(0)

    theta = theta0.clone().requires_grad_(True)
    fvp = make_fvp(kl, theta, damping=0.0)
    hessian = torch.autograd.functional.hessian(lambda th: kl(th.unsqueeze(0)).sum(), theta0[0])
    fisher = _analytic_fisher(policy, lambda th: dist_at(th.unsqueeze(0)).reshape(-1, old.shape[-1]), theta0)
    torch.testing.assert_close(hessian, fisher, rtol=1e-4, atol=1e-5)
    for _ in range(3):
        v = torch.randn_like(theta0)
        torch.testing.assert_close(fvp(v)[0], fisher @ v[0], rtol=1e-4, atol=1e-5)
    damped = make_fvp(kl, theta, damping=0.1)
    v = torch.randn_like(theta0)
    torch.testing.assert_close(damped(v), fvp(v) + 0.1 * v)


def test_fisher_vector_products_equal_explicit_fisher_and_kl_hessian():
    for discrete in (False, True):
        policy = _tiny_policy(discrete)
        obs = torch.randn(6, 1, 3)
        _check_fvp(policy, lambda th, policy=policy, obs=obs: policy.dist(obs, None, policy.net.unflatten(th)))


def test_recurrent_fisher_vector_products_equal_explicit_fisher_through_time():
    # Sequences of 4 steps with a reset inside: the Fisher of the mean KL over every step backpropagates
    # through the GRU's recurrence, and the explicit E[J^T M J] differentiates each step's output through
    # all earlier steps.
    for discrete in (False, True):
        policy = _tiny_policy(discrete, memory=3)
        obs = torch.randn(2, 4, 1, 3)
        memory = Memory(torch.randn(2, 1, 3), torch.tensor([[False, False, True, False], [False] * 4]).unsqueeze(-1))
        _check_fvp(
            policy,
            lambda th, policy=policy, obs=obs, memory=memory: policy.dist(
                obs, None, policy.net.unflatten(th), memory=memory
            ),
        )


@settings(max_examples=20, deadline=None)
@given(
    discrete=st.booleans(),
    n_agents=st.integers(1, 3),
    batch=st.integers(4, 40),
    seed=st.integers(0, 10_000),
    max_kl=st.sampled_from([0.001, 0.01, 0.05]),
)
def test_every_accepted_step_respects_the_kl_radius(discrete, n_agents, batch, seed, max_kl):
    policy = _tiny_policy(discrete, n_agents, seed)
    obs = torch.randn(batch, n_agents, 3)
    old = policy.dist(obs).detach()
    action = policy.sample(old)
    old_lp = policy.log_prob(old, action)
    adv = torch.randn(batch, n_agents)

    def dist_at(th):
        return policy.dist(obs, None, policy.net.unflatten(th))

    def surrogate(th):
        return (torch.exp(policy.log_prob(dist_at(th), action) - old_lp) * adv).mean(0)

    def kl(th):
        return policy.kl(old, dist_at(th)).mean(0)

    theta0 = policy.net.flat_params()
    result = trust_region_step(theta0, surrogate, kl, TrustRegionConfig(max_kl=max_kl))
    with torch.no_grad():
        reached = kl(result.theta)
        improvement = surrogate(result.theta) - surrogate(theta0)
    for k in range(n_agents):
        if result.accepted[k]:
            assert float(reached[k]) <= max_kl * (1 + 1e-5)
            assert float(improvement[k]) > 0
        else:
            assert torch.equal(result.theta[k], theta0[k])


def test_rejected_step_restores_parameters_bit_identically():
    theta0 = torch.randn(3, 5)
    g = torch.randn(3, 5)
    # The linear model promises improvement, but the true surrogate falls off a cliff in every direction.
    surrogate = lambda th: (th * g).sum(-1) - 1e6 * (th - theta0).pow(2).sum(-1)
    kl = lambda th: 0.5 * (th - theta0).pow(2).sum(-1)
    result = trust_region_step(theta0, surrogate, kl, TrustRegionConfig())
    assert not bool(result.accepted.any())
    assert torch.equal(result.theta, theta0) and result.theta.data_ptr() != theta0.data_ptr()
    assert float(result.step_frac.sum()) == 0.0


def test_gae_matches_a_reference_loop_with_termination_and_truncation():
    torch.manual_seed(0)
    e, t = 3, 9
    reward, value, next_value = torch.randn(e, t), torch.randn(e, t), torch.randn(e, t)
    terminated = torch.rand(e, t) < 0.15
    truncated = (torch.rand(e, t) < 0.15) & ~terminated
    gamma, lam = 0.9, 0.8
    adv, ret = gae(reward, value, next_value, terminated, truncated, gamma, lam)
    for i in range(e):
        running = 0.0
        for k in reversed(range(t)):
            bootstrap = 0.0 if terminated[i, k] else gamma * float(next_value[i, k])
            delta = float(reward[i, k]) + bootstrap - float(value[i, k])
            if terminated[i, k] or truncated[i, k]:
                running = 0.0
            running = delta + gamma * lam * running
            assert abs(float(adv[i, k]) - running) < 1e-5
    torch.testing.assert_close(ret, adv + value)


def test_gae_bootstraps_through_truncation_only():
    r, v, nv = torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), 5.0)
    no, yes = torch.zeros(1, 1, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool)
    # 0.9 is not a float32 number: gamma * 5 is 4.5 up to float32 rounding (a fused multiply-add or not).
    assert float(gae(r, v, nv, no, yes, 0.9, 0.95)[0]) == pytest.approx(4.5, abs=1e-6)  # truncated: bootstraps
    assert float(gae(r, v, nv, yes, no, 0.9, 0.95)[0]) == 0.0  # terminated: an exact zero, no arithmetic


def test_categorical_kl_is_exact_and_respects_masks():
    policy = _tiny_policy(True)
    logits_old, logits_new = torch.randn(5, 4), torch.randn(5, 4)
    p, q = torch.softmax(logits_old, -1), torch.softmax(logits_new, -1)
    torch.testing.assert_close(policy.kl(logits_old, logits_new), (p * (p / q).log()).sum(-1))
    mask = torch.tensor([[True, False, True, True]] * 5)
    obs = torch.randn(5, 1, 3)
    dist = policy.dist(obs, mask.unsqueeze(1))
    assert torch.isfinite(policy.kl(dist, dist)).all() and float(policy.kl(dist, dist).abs().max()) < 1e-6
    samples = torch.stack([policy.sample(dist) for _ in range(50)])
    assert not bool((samples == 1).any())


def test_running_norm_matches_batch_statistics_and_round_trips():
    from marlkit.networks.normalizers import RunningNorm

    torch.manual_seed(0)
    data = torch.randn(300, 4) * torch.tensor([1.0, 2.0, 5.0, 0.1]) + torch.tensor([0.0, 3.0, -2.0, 7.0])
    norm = RunningNorm((4,))
    for chunk in data.split(37):
        norm.update(chunk)
    torch.testing.assert_close(norm.mean.float(), data.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.var.float(), data.var(0, unbiased=False), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(norm.denormalize(norm.normalize(data, clip=False)), data, rtol=1e-5, atol=1e-4)
