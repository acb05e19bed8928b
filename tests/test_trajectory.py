"""landscape.trajectory: star-convexity, PL* and edge of stability, on functions whose answers are
known in closed form, and the sharpness tracker against a dense Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Objective
from landscape.errors import LandscapeError
from scipy.sparse.linalg import aslinearoperator

from landscape.curvature import top_eigenpairs
from landscape.trajectory import SharpnessTracker, pl_star, star_convexity

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


def _tiny_network(seed: int = 0):
    """F(θ) = ½ mean (w₂ · tanh(W₁ x) − y)² over 12 examples, θ = (W₁: 3×4, w₂: 3): 15 parameters."""
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(12, 4, dtype=F64, generator=gen), torch.randn(12, dtype=F64, generator=gen)

    def f(t):
        return 0.5 * ((torch.tanh(x @ t[:12].reshape(3, 4).T) @ t[12:] - y) ** 2).mean()
    return Function(f, 15, torch.randn(15, dtype=F64, generator=gen))


def _krylov_ritz_top(H: np.ndarray, v0: np.ndarray, m: int) -> float:
    """The largest Ritz value of H on K_m(H, v0), from an explicit twice-orthogonalized basis."""
    Q = np.zeros((len(v0), m))
    q = v0 / np.linalg.norm(v0)
    for j in range(m):
        Q[:, j] = q
        q = H @ q
        for _ in range(2):
            q -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ q)
        q /= np.linalg.norm(q)
    return float(np.linalg.eigvalsh(Q.T @ H @ Q)[-1])


def test_the_sharpness_tracker_is_lanczos_on_the_dense_hessian_of_a_tiny_network():
    f = _tiny_network()
    H = torch.autograd.functional.hessian(f.f, f.theta0).numpy()
    w = np.linalg.eigvalsh(H)
    assert w[0] < 0 < w[-1]  # indefinite, as a network's Hessian away from a minimum
    tracker = SharpnessTracker(lr=0.1, steps=4, seed=3)
    first = tracker.update(f, f.theta0)
    # cold: the top Ritz value of the 4-dimensional Krylov space of the seeded start, and 1 product more
    v0 = np.random.default_rng(3).standard_normal(15)
    assert first.sharpness == pytest.approx(_krylov_ritz_top(H, v0, 4), rel=1e-10)
    assert first.matvecs == 5 and first.sharpness < w[-1] - 0.1 and first.residual > 0.1  # not there yet
    assert first.residual == pytest.approx(np.linalg.norm(H @ tracker.vector - first.sharpness * tracker.vector),
                                           rel=1e-8)
    # warm: each run starts from the last eigenvector, so the estimates climb to λ_max
    records = [tracker.update(f, f.theta0) for _ in range(6)]
    assert records[-1].sharpness == pytest.approx(w[-1], rel=1e-10) and records[-1].residual < 1e-6 * w[-1]
    assert all(b.sharpness >= a.sharpness - 1e-12 for a, b in zip([first, *records], records))


def test_a_tracker_run_stops_on_an_invariant_space_and_finds_the_largest_algebraic_eigenvalue():
    a = aslinearoperator(np.diag([-9.0, 3.0, 1.0, 0.5]))  # the largest in magnitude is negative; λ_max is 3
    pair = top_eigenpairs(a, 1, tol=0.0, max_matvecs=10, max_basis=10, v0=np.ones(4))[0]
    assert pair.eigenvalue == pytest.approx(3.0, abs=1e-12) and pair.residual < 1e-10
    assert abs(pair.eigenvector[1]) == pytest.approx(1.0) and pair.iterations == 4  # exhausted at dim 4
    exact = top_eigenpairs(a, 1, tol=0.0, max_matvecs=10, v0=np.array([0.0, 1.0, 0.0, 0.0]))[0]
    assert exact.eigenvalue == 3.0 and exact.residual == 0.0 and exact.iterations == 1 and exact.converged
    with pytest.raises(LandscapeError, match="start vector"):
        top_eigenpairs(a, 1, v0=np.zeros(4))


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


def test_a_non_convex_homogeneous_function_is_star_convex_with_ratio_two():
    # f(θ) = ‖θ‖²·(2 + sin 4φ) is homogeneous of degree 2: ⟨∇f, θ⟩ = 2 f (Euler), toward 0 at every point,
    # though f is not convex (along the circle it oscillates)
    f = Function(lambda t: (t @ t) * (2 + torch.sin(4 * torch.atan2(t[1], t[0]))), 2)
    points = [torch.tensor([np.cos(p), np.sin(p)], dtype=F64) * r for p, r in zip(np.linspace(0, 3, 7), np.linspace(3, 0.5, 7))]
    result = star_convexity(f, points, target=torch.zeros(2, dtype=F64))
    np.testing.assert_allclose(result.ratio, 2.0, rtol=1e-12)
    assert result.holds_fraction == 1.0 and result.fails_fraction == 0.0
    a, b = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([np.cos(np.pi / 4), np.sin(np.pi / 4)], dtype=F64)
    chord = 0.5 * (f.value_and_grad(a)[0] + f.value_and_grad(b)[0])  # 2 at both ends
    middle = f.value_and_grad((a + b) / 2)[0]
    assert middle == pytest.approx(3 * np.cos(np.pi / 8) ** 2) and middle > chord  # above the chord: not convex


def test_star_convexity_on_one_function_per_point_ignores_offsets_between_functions():
    # F_t(θ) = ‖θ − θ_T‖² + c_t, a different constant per point (as different batch-norm statistics shift F):
    # on one function the gap is ‖θ_t − θ_T‖² and the ratio exactly 2; mixing F_t(θ_t) with F_T(θ_T) is not
    from landscape.trajectory import HOLDS, star_convexity_of

    target = torch.tensor([1.0, -1.0], dtype=F64)
    offsets = [0.0, 5.0, -3.0, 0.7]
    fns = [Function(lambda t, c=c: (t - target) @ (t - target) + c, 2) for c in offsets]
    thetas = [torch.tensor([2.0, 0.5], dtype=F64), torch.tensor([0.0, 0.0], dtype=F64),
              torch.tensor([1.5, -0.5], dtype=F64), target]
    one = star_convexity(None, thetas, functions=fns)
    np.testing.assert_allclose(one.ratio, 2.0, rtol=1e-12)
    assert list(one.status) == [HOLDS] * 3 and list(one.target_values) == offsets[:3]
    mixed = star_convexity_of(one.inner, [f.value_and_grad(t)[0] for f, t in zip(fns, thetas[:3])], offsets[3])
    assert not mixed.holds.all()  # F_t(θ_t) with c_t against F_T(θ_T) with c_T: the offsets decide


def test_a_failure_inside_the_rounding_tolerance_is_unresolved_not_a_failure():
    from landscape.trajectory import FAILS, HOLDS, UNRESOLVED, rounding_tolerance, star_convexity_of

    tol = rounding_tolerance(0.3, 0.3, "fp32", 128)
    assert tol == pytest.approx(64 * np.finfo(np.float32).eps + 128 * np.finfo(np.float64).eps)
    r = star_convexity_of(inner=[0.0, 0.0, 2e-3, 2e-3], values=[0.3 + 0.5 * tol, 0.3 + 3 * tol, 0.301, 0.3],
                          target_value=0.3, tolerance=tol)
    assert list(r.status) == [UNRESOLVED, FAILS, HOLDS, HOLDS]  # −0.5 tol: rounding; −3 tol: a failure
    assert np.isnan(r.ratio[0]) and np.isnan(r.ratio[3]) and r.ratio[2] == pytest.approx(2.0)
    assert r.holds_fraction == 0.5 and r.fails_fraction == 0.25


def test_star_convexity_uses_one_function_with_statistics_at_theta():
    """path_quantities pairs ∇F_B(θ_t) with F_B(θ_t) − F_B(θ_T) (``batch``), never the frozen-statistics F of
    the states: a BN network's F_B at two points of a tiny conv net, checked against a direct train-mode pass."""
    import torch.nn as nn
    from torch.func import functional_call

    from landscape.measurements.trajectory import path_quantities
    from landscape.objective import Objective

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    images, labels = torch.randn(12, 3, 8, 8), torch.arange(12) % 3
    thetas, states, batch = {}, {}, {}
    for e in (0, 1, 2):
        if e:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p))
        frozen = Objective(model, images, labels, bn="frozen", precision="fp64")
        f_b = Objective(model, images, labels, bn="batch", precision="fp64")
        value, grad = frozen.value_and_grad()
        states[e] = (frozen, frozen.theta0.to(torch.float64), float(value) + 100.0, grad + 1.0)  # not F_B
        vb, gb = f_b.value_and_grad()
        batch[e] = (f_b, float(vb), gb)
        thetas[e] = frozen.theta0.to(torch.float64)
        # F_B directly: train-mode batch norm over the 12 examples, gradient through the statistics
        params = {n: p.detach().to(torch.float64).requires_grad_(True) for n, p in model.named_parameters()}
        buffers = {n: b.detach().clone().to(torch.float64) for n, b in model.named_buffers()}
        model.train()
        out = functional_call(model.double(), {**params, **buffers}, (images.double(),))
        model.float()
        loss = nn.functional.cross_entropy(out, labels)
        direct = torch.autograd.grad(loss, list(params.values()))
        assert float(vb) == pytest.approx(loss.item(), rel=1e-9)
        assert torch.allclose(gb, torch.cat([g.reshape(-1) for g in direct]), rtol=1e-7, atol=1e-10)
    summary, arrays = path_quantities(states, [0, 1, 2], batch)
    inner = [float(batch[e][2] @ (thetas[e] - thetas[2])) for e in (0, 1)]
    np.testing.assert_allclose(arrays["star_inner"], inner, rtol=1e-10)
    np.testing.assert_allclose(arrays["star_gap"], [batch[e][1] - batch[2][1] for e in (0, 1)], rtol=1e-10)
    assert summary["star_F_B_target"] == batch[2][1]
