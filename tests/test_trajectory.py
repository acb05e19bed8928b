"""landscape.trajectory: star-convexity, PL*, gradient–curvature alignment and edge of stability,
on functions whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Objective
from landscape.errors import LandscapeError
from landscape.trajectory import (SharpnessTracker, gradient_alignment, lanczos_top, pl_star,
                                  star_convexity)

F64 = torch.float64


class Function:
    """F(θ) from a torch callable, with what the trajectory functions and HessianOperator read."""

    def __init__(self, f, dim: int, theta0: torch.Tensor | None = None):
        self.f, self.dim = f, dim
        self.device, self.dtype = torch.device("cpu"), F64
        self.theta0 = torch.zeros(dim, dtype=F64) if theta0 is None else theta0

    def value_and_grad(self, theta=None):
        theta = (self.theta0 if theta is None else theta).detach().to(F64).requires_grad_(True)
        value = self.f(theta)
        (grad,) = torch.autograd.grad(value, theta)
        return float(value.detach()), grad

    def hvp(self, theta, v):
        theta = (self.theta0 if theta is None else theta).detach().to(F64).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.f(theta), theta, create_graph=True)
        (hv,) = torch.autograd.grad(grad @ v.to(F64), theta)
        return hv


def _quadratic(eigenvalues, seed: int = 0, offset: float = 0.0):
    """½(θ − θ*)ᵀ H (θ − θ*) + offset with H = Q diag(λ) Qᵀ for a random rotation Q; returns (F, H, Q, θ*)."""
    gen = torch.Generator().manual_seed(seed)
    lam = torch.as_tensor(eigenvalues, dtype=F64)
    q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), dtype=F64, generator=gen))
    h = q @ torch.diag(lam) @ q.T
    star = torch.randn(len(lam), dtype=F64, generator=gen)
    f = Function(lambda t: 0.5 * (t - star) @ h @ (t - star) + offset, len(lam))
    return f, h, q, star


def _gradient_descent(function, theta, lr: float, steps: int) -> list[torch.Tensor]:
    path = [theta]
    for _ in range(steps):
        path.append(path[-1] - lr * function.value_and_grad(path[-1])[1])
    return path


def test_star_convexity_of_a_quadratic_toward_its_minimum_has_ratio_two():
    f, _, _, star = _quadratic([4.0, 2.0, 1.0, 0.5, 0.1], offset=3.0)
    path = _gradient_descent(f, torch.zeros(5, dtype=F64), lr=0.2, steps=6)
    result = star_convexity(f, path, target=star)  # ⟨H e, e⟩ = 2·(½ eᵀHe)
    assert result.holds_fraction == 1.0 and len(result.indices) == 7
    np.testing.assert_allclose(result.ratio, 2.0, rtol=1e-12)
    assert result.target_value == pytest.approx(3.0)
    toward_last = star_convexity(f, path)  # convex: star-convex toward any point, the last one skipped
    assert toward_last.holds_fraction == 1.0 and list(toward_last.indices) == list(range(6))


def test_star_convexity_fails_where_the_function_bends_away():
    f = Function(lambda t: (t[0] ** 2 - 1) ** 2, 1)  # minima at ±1; not star-convex toward 1
    xs = [-0.5, 0.3, 0.6, 2.0]
    result = star_convexity(f, [torch.tensor([x], dtype=F64) for x in xs], target=torch.tensor([1.0], dtype=F64))
    grad = [4 * x * (x * x - 1) for x in xs]
    np.testing.assert_allclose(result.inner, [g * (x - 1) for g, x in zip(grad, xs)], rtol=1e-12)
    np.testing.assert_allclose(result.gap, [(x * x - 1) ** 2 for x in xs], rtol=1e-12)
    assert list(result.holds) == [False, False, True, True]  # −2.25 < 0.5625, 0.764 < 0.828; 0.61 ≥ 0.41, 24 ≥ 9
    assert result.holds_fraction == 0.5


def test_pl_star_of_a_quadratic_along_eigenvectors_is_twice_the_eigenvalue():
    lam = [5.0, 2.0, 0.25]
    f, _, q, star = _quadratic(lam, offset=1.5)
    points = [star + 0.7 * q[:, i] for i in range(3)] + [star]
    result = pl_star(f, points, f_star=1.5)  # ‖He‖²/(½eᵀHe) = 2λ for e along an eigenvector
    np.testing.assert_allclose(result.ratio[:3], [2 * v for v in lam], rtol=1e-10)
    assert np.isnan(result.ratio[3]) and result.mu == pytest.approx(0.5, rel=1e-10)
    conservative = pl_star(f, points)  # F* = 0 lies below the true minimum 1.5: smaller ratios
    assert conservative.f_star == 0.0 and np.all(conservative.ratio < 2 * np.array(lam + [0.0]) + 1e-12)
    assert pl_star(f, points, f_star="min").f_star == pytest.approx(1.5)
    with pytest.raises(LandscapeError, match="f_star must be"):
        pl_star(f, points, f_star="mean")


def test_gradient_alignment_with_the_top_eigenspace_of_a_quadratic():
    lam = np.array([30.0, 20.0, 10.0] + list(np.linspace(3.0, 0.1, 27)))
    f, _, q, star = _quadratic(lam, seed=3)
    theta = star + q @ torch.ones(30, dtype=F64)  # e = θ − θ* has coordinate 1 on every eigenvector
    result = gradient_alignment(f, theta, k=3, tol=1e-10)
    expected = float(np.sum(lam[:3] ** 2) / np.sum(lam ** 2))  # ∇F = He has coordinates λ_i
    assert result.fraction == pytest.approx(expected, rel=1e-8)
    np.testing.assert_allclose(result.eigenvalues, lam[:3], rtol=1e-8)
    assert result.converged and result.k == 3


def test_lanczos_top_finds_the_largest_algebraic_eigenvalue_and_stops_on_an_invariant_space():
    a = np.diag([-9.0, 3.0, 1.0, 0.5])  # the largest in magnitude is negative; λ_max is 3
    lam, v, residual = lanczos_top(lambda x: a @ x, np.ones(4), steps=10)
    assert lam == pytest.approx(3.0, abs=1e-12) and residual < 1e-10 and abs(v[1]) == pytest.approx(1.0)
    lam, _, residual = lanczos_top(lambda x: a @ x, np.array([0.0, 1.0, 0.0, 0.0]), steps=10)
    assert lam == 3.0 and residual == 0.0


def test_gradient_descent_beyond_two_over_eta_diverges_and_the_tracker_sees_it():
    torch.manual_seed(0)  # the layer's initial weights
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, dtype=F64, generator=gen) * torch.tensor([4.0, 1.0, 1.0, 0.5, 0.5], dtype=F64)
    y = torch.randn(20, 1, dtype=F64, generator=gen)
    objective = Objective(nn.Linear(5, 1, bias=False), x, y, loss="mse", precision="fp64")
    lam_max = float(torch.linalg.eigvalsh(x.T @ x / 20)[-1])  # F = ½ mean (w·x − y)²: H = XᵀX/n
    lr = 2.5 / lam_max  # 2/η = 0.8 λ_max: unstable along the top eigenvector
    tracker = SharpnessTracker(lr=lr, steps=8)
    theta, losses = objective.theta0, []
    for step in range(30):  # 1.5^30: any start with a component along the top eigenvector blows up
        loss, grad = objective.value_and_grad(theta)
        losses.append(loss)
        record = tracker.update(objective, theta, step)
        tracker.steps = 1  # warm: one product from the last eigenvector is enough on a fixed H
        assert record.sharpness == pytest.approx(lam_max, rel=1e-9) and record.residual < 1e-6 * lam_max
        assert record.above and record.ratio == pytest.approx(1.25, rel=1e-9)
        theta = theta - lr * grad
    assert losses[-1] > 100 * losses[0] and np.all(np.diff(losses[10:]) > 0)  # |1 − ηλ_max| = 1.5: divergence
    stable, _ = _descend(objective, 1.5 / lam_max, 12)
    assert stable[-1] < stable[0]
    assert [r.step for r in tracker.history] == list(range(30))
    with pytest.raises(LandscapeError, match="step size"):
        SharpnessTracker(lr=0.0)


def _descend(objective, lr, steps):
    theta, losses = objective.theta0, []
    for _ in range(steps):
        loss, grad = objective.value_and_grad(theta)
        losses.append(loss)
        theta = theta - lr * grad
    return losses, theta
