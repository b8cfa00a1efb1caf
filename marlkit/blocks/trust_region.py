"""The trust-region solver: natural-gradient step with a KL constraint, batched over K problems.

Parameters are a matrix ``theta [K, P]``: row k is one independent problem (one agent's parameters
for a group with separate parameters, or the single shared set). The caller supplies

* ``surrogate(theta) -> [K]``: mean importance-weighted advantage of each problem, and
* ``kl(theta) -> [K]``: mean KL(pi_old || pi_theta) of each problem on its own observations,

where row k may depend on ``theta[k]`` only. Then one backward pass gives every row's gradient, one
double-backward gives every row's Fisher-vector product (the Hessian of ``sum_k KL_k`` is block
diagonal), and conjugate gradient, step sizes and the backtracking line search run on all rows at
once, each with its own step size, its own KL <= delta test and its own acceptance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from marlkit.core.options import KeyFn, option, require, require_at_least

EPS = 1e-8
# Guards CG's divisions against 0/0 once a row has converged, without biasing the other rows.
TINY = 1e-30


@dataclass(frozen=True)
class TrustRegionConfig:
    max_kl: float = option(0.01, "KL radius delta of each step (mean over states of KL(old || new))")
    cg_iters: int = option(10, "conjugate-gradient iterations")
    cg_damping: float = option(0.1, "damping added to the Fisher-vector product: F v + damping * v")
    cg_residual_tol: float = option(1e-10, "stop CG early once every row's squared residual is below this")
    backtrack_coef: float = option(0.8, "the line search tries fractions backtrack_coef ** j of the full step")
    backtrack_iters: int = option(10, "fractions tried before the step is rejected")
    accept_ratio: float = option(0.5, "minimum actual / expected improvement for a step to be accepted")

    def validate(self, key: KeyFn = lambda name: f"trust_region.{name}") -> None:
        require(self.max_kl > 0, f"{key('max_kl')} must be > 0, got {self.max_kl}")
        require(0 < self.backtrack_coef < 1, f"{key('backtrack_coef')} must be in (0, 1), got {self.backtrack_coef}")
        require_at_least(self, ("cg_iters", "backtrack_iters"), 1, key)
        require_at_least(self, ("cg_damping", "cg_residual_tol"), 0, key)
        require(0 <= self.accept_ratio <= 1, f"{key('accept_ratio')} must be in [0, 1], got {self.accept_ratio}")


@dataclass
class StepResult:
    """Per-row outcome of one trust-region step; every tensor has shape [K]."""

    theta: torch.Tensor  # [K, P] new parameters (the old ones, copied, where rejected)
    accepted: torch.Tensor
    step_frac: torch.Tensor  # fraction of the full step taken (0 where rejected)
    kl: torch.Tensor  # KL reached (0 where rejected)
    expected_improve: torch.Tensor  # first-order prediction g . step, for the step taken (full step if rejected)
    actual_improve: torch.Tensor  # surrogate(new) - surrogate(old) (0 where rejected)
    cg_residual: torch.Tensor  # norm of the final CG residual
    full_step: torch.Tensor  # [K, P] the step at fraction 1

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}kl": float(self.kl.mean()),
            f"{prefix}step_frac": float(self.step_frac.mean()),
            f"{prefix}accepted": float(self.accepted.float().mean()),
            f"{prefix}expected_improve": float(self.expected_improve.mean()),
            f"{prefix}actual_improve": float(self.actual_improve.mean()),
            f"{prefix}cg_residual": float(self.cg_residual.mean()),
        }


def batched_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, residual_tol: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = b`` for every row of ``b [K, P]`` at once (A symmetric positive definite per row).

    Returns ``x`` and the norm of each row's final residual.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = batched_dot(r, r)
    for _ in range(iters):
        if bool((rr < residual_tol).all()):
            break
        ap = matvec(p)
        alpha = rr / batched_dot(p, ap).clamp_min(TINY)
        x = x + alpha.unsqueeze(-1) * p
        r = r - alpha.unsqueeze(-1) * ap
        rr_new = batched_dot(r, r)
        p = r + (rr_new / rr.clamp_min(TINY)).unsqueeze(-1) * p
        rr = rr_new
    return x, rr.sqrt()


def make_fvp(
    kl: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, damping: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> F v + damping * v`` for every row, by double backprop through ``sum_k KL_k`` at ``theta``.

    ``theta`` must require grad. At theta = theta_old the KL Hessian is the Fisher information matrix.
    """
    (grad_kl,) = torch.autograd.grad(kl(theta).sum(), theta, create_graph=True)

    def fisher_vector_product(v: torch.Tensor) -> torch.Tensor:
        (hv,) = torch.autograd.grad(batched_dot(grad_kl, v).sum(), theta, retain_graph=True)
        return hv + damping * v

    return fisher_vector_product


def trust_region_step(
    theta_old: torch.Tensor,
    surrogate: Callable[[torch.Tensor], torch.Tensor],
    kl: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrustRegionConfig,
) -> StepResult:
    """One TRPO step on every row of ``theta_old [K, P]``; see the module docstring."""
    theta_old = theta_old.detach()
    theta = theta_old.clone().requires_grad_(True)
    base = surrogate(theta)
    (grad,) = torch.autograd.grad(base.sum(), theta)
    fisher_vector_product = make_fvp(kl, theta, cfg.cg_damping)
    direction, residual = conjugate_gradient(fisher_vector_product, grad, cfg.cg_iters, cfg.cg_residual_tol)
    curvature = batched_dot(direction, fisher_vector_product(direction)).detach()
    beta = torch.sqrt(2 * cfg.max_kl / curvature.clamp_min(EPS))
    full_step = (beta.unsqueeze(-1) * direction).detach()
    expected_full = batched_dot(grad, full_step)
    base = base.detach()

    k = theta_old.shape[0]
    accepted = torch.zeros(k, dtype=torch.bool, device=theta_old.device)
    frac = torch.zeros(k, device=theta_old.device)
    kl_taken = torch.zeros(k, device=theta_old.device)
    actual_taken = torch.zeros(k, device=theta_old.device)
    with torch.no_grad():
        for j in range(cfg.backtrack_iters):
            fraction = cfg.backtrack_coef**j
            candidate = theta_old + fraction * full_step
            actual = surrogate(candidate) - base
            expected = fraction * expected_full
            kl_new = kl(candidate)
            ok = (
                ~accepted
                & (kl_new <= cfg.max_kl)
                & (actual > 0)
                & (expected > 0)
                & (actual >= cfg.accept_ratio * expected)
            )
            frac = torch.where(ok, fraction, frac)
            kl_taken = torch.where(ok, kl_new, kl_taken)
            actual_taken = torch.where(ok, actual, actual_taken)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
        # Rejected rows get a copy of the old parameters, bit for bit.
        new_theta = torch.where(accepted.unsqueeze(-1), theta_old + frac.unsqueeze(-1) * full_step, theta_old)
    return StepResult(
        theta=new_theta,
        accepted=accepted,
        step_frac=frac,
        kl=kl_taken,
        expected_improve=torch.where(accepted, frac * expected_full, expected_full).detach(),
        actual_improve=actual_taken,
        cg_residual=residual.detach(),
        full_step=full_step,
    )
