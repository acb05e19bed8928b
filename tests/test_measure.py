"""landscape.measure: probes, envelope fits, descent checks, surfaces, interpolation, resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from torch import nn

from landscape import measure
from landscape.directions import Direction, gaussian_direction, gradient_direction
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.objective import Objective
from landscape.results import Partial

from cases import closed_form, least_squares

EPS = np.finfo(np.float64).eps


@pytest.fixture
def quadratic():
    obj, model, x, y = least_squares(n=50, d=6, classes=4, seed=2)
    F, grad, H = closed_form(model, x, y)
    return obj, F, grad, H


# ----------------------------------------------------------------------------- semi-smoothness
def test_probe_on_a_quadratic_has_residual_half_t2_uHu_and_the_fit_finds_it(quadratic):
    obj, F, grad, H = quadratic
    g = torch.from_numpy(grad)
    u = gaussian_direction(obj, 5)
    un = u.vector.numpy()
    curv = float(un @ H @ un)
    mags = np.logspace(-2, 0, 8)
    steps = np.concatenate([-mags[::-1], [0.0], mags])
    probe = measure.semi_smoothness_probe(obj, obj.theta0, g, u, steps)
    assert np.array_equal(probe.t, steps)
    assert probe.F == pytest.approx(F, rel=1e-14)
    assert probe.slope == pytest.approx(float(grad @ un), rel=1e-12)
    expected_f = F + steps * float(grad @ un) + 0.5 * steps ** 2 * curv
    np.testing.assert_allclose(probe.f, expected_f, rtol=1e-13)
    # r(t) = ½ t² uᵀHu up to float64 rounding of F itself
    r_exact = 0.5 * steps ** 2 * curv
    tol = 64 * EPS * max(1.0, np.abs(probe.f).max())
    assert np.abs(probe.r - r_exact).max() <= tol
    assert probe.r[steps == 0][0] == 0.0
    fit = probe.fit
    assert fit.a <= 1e-9 * fit.b
    assert fit.b == pytest.approx(0.5 * curv, rel=1e-8)
    assert fit.points == 16 and fit.rel_rms < 1e-8 and fit.active >= 1  # rounding keeps some just under it
    assert fit.envelope == pytest.approx(1.0, abs=1e-8)
    assert probe.noise_floor == pytest.approx(64 * EPS * max(F, 1.0))
    assert probe.descent is None


def _vertex_envelope(t, r, floor=0.0):
    """The envelope LP solved by brute force: its optimum is a vertex of the feasible set, so try every
    single-term bound and every intersection of two constraint lines, keep the feasible cheapest."""
    t, r = np.abs(t), np.abs(r)
    need = r - floor
    feasible = lambda a, b: a >= 0 and b >= 0 and np.all(a * t + b * t ** 2 >= need * (1 - 1e-12))
    cands = [(np.max(need / t), 0.0), (0.0, np.max(need / t ** 2))]
    for i in range(len(t)):
        for j in range(i + 1, len(t)):
            if t[i] != t[j]:
                cands.append(tuple(np.linalg.solve([[t[i], t[i] ** 2], [t[j], t[j] ** 2]], [need[i], need[j]])))
    cost = lambda ab: np.sum((ab[0] * t + ab[1] * t ** 2) / r)
    return min((c for c in cands if feasible(*c)), key=cost)


def _relative_least_squares_rms(t, r):
    """The former fit (non-negative least squares of a|t| + b t² in relative error): its relative RMS error."""
    t, r = np.abs(t), np.abs(r)
    (a, b), _ = nnls(np.stack([t / r, t ** 2 / r], axis=1), np.ones(len(t)))
    return float(np.sqrt(np.mean(((a * t + b * t ** 2) / r - 1) ** 2)))


LADDER = np.concatenate([-np.logspace(-4, 0, 9), [0.0], np.logspace(-4, 0, 9)])


def test_fit_envelope_recovers_kink_and_curvature_terms():
    t = LADDER
    r = 0.3 * np.abs(t) + 2.0 * t ** 2
    fit = measure.fit_envelope(t, r)
    assert fit.a == pytest.approx(0.3, rel=1e-10) and fit.b == pytest.approx(2.0, rel=1e-10)
    assert fit.envelope == pytest.approx(1.0, rel=1e-10) and fit.points == 18 and fit.active == 18
    assert fit.resolved and fit.distinct_t == 9 and fit.decades == pytest.approx(4.0)
    assert fit.t_range == [pytest.approx(1e-4), pytest.approx(1.0)]
    # a purely linear |r| (a kink) gives b = 0; the sign of r does not matter
    fit = measure.fit_envelope(t, -0.7 * np.abs(t))
    assert fit.a == pytest.approx(0.7, rel=1e-10) and fit.b == pytest.approx(0.0, abs=1e-12)


def test_the_envelope_of_scattered_points_bounds_them_and_is_the_lp_optimum():
    """Each side's envelope is the LP optimum (an independent search over the vertices) and bounds that side's
    points, touching one; a, b are the larger side's, so a·|t| + b·t² bounds both sides."""
    rng = np.random.default_rng(0)
    r = (0.3 * np.abs(LADDER) + 2.0 * LADDER ** 2) * np.exp(rng.normal(0, 0.3, len(LADDER)))
    fit = measure.fit_envelope(LADDER, r)
    models = []
    for side, sign in (("+", 1.0), ("-", -1.0)):
        here = np.sign(LADDER) == sign
        t, ar = np.abs(LADDER[here]), np.abs(r[here])
        a, b = _vertex_envelope(t, ar)
        c = fit.sides[side]
        assert c["a"] == pytest.approx(a, rel=1e-9, abs=1e-12) and c["b"] == pytest.approx(b, rel=1e-9, abs=1e-12)
        model = c["a"] * t + c["b"] * t ** 2
        assert np.all(model >= ar * (1 - 1e-12)) and np.any(np.isclose(model, ar, rtol=1e-9, atol=0))
        models.append((model, ar))
    assert fit.a == max(c["a"] for c in fit.sides.values()) and fit.b == max(c["b"] for c in fit.sides.values())
    t, ar = np.abs(LADDER[LADDER != 0]), np.abs(r[LADDER != 0])
    assert np.all(fit.a * t + fit.b * t ** 2 >= ar * (1 - 1e-12))
    assert fit.envelope == pytest.approx(1.0, abs=1e-12)
    assert fit.active == sum(int(np.sum(np.isclose(m, x, rtol=1e-9, atol=0))) for m, x in models)
    ratio = np.concatenate([m / x for m, x in models])
    assert fit.rel_rms == pytest.approx(np.sqrt(np.mean((ratio - 1) ** 2)), rel=1e-12)


@pytest.mark.parametrize("a0", [1e-3, 0.7, 50.0])
def test_the_envelope_of_a_pure_kink_is_a0_t(a0):
    """(a) r = a0·|t| exactly on a log ladder: a = a0, b = 0."""
    fit = measure.fit_envelope(LADDER, a0 * np.abs(LADDER))
    assert fit.a == pytest.approx(a0, rel=1e-6) and fit.b <= 1e-6 * a0
    assert fit.rel_rms < 1e-6 and fit.active == 18


@pytest.mark.parametrize("b0", [1e-3, 2.0, 300.0])
def test_the_envelope_of_pure_curvature_is_b0_t2(b0):
    """(b) r = b0·t²: a ≈ 0, b = b0."""
    fit = measure.fit_envelope(LADDER, b0 * LADDER ** 2)
    assert fit.b == pytest.approx(b0, rel=1e-6) and fit.a <= 1e-6 * b0 * 1e-4  # a·t_lo ≪ b0·t_lo²
    assert fit.rel_rms < 1e-6


@pytest.mark.parametrize("b0", [1e-3, 2.0, 300.0])
def test_pure_curvature_leaves_a_unresolved_with_the_resolution_b0_t_lo(b0):
    """r = b0·t² on a ladder from t_lo: min |r|/|t| = b0·t_lo, so a kink below b0·t_lo hides under every point;
    the envelope's a ≈ 0 is no measurement: a_resolved False, a bounded by a_resolution = b0·t_lo."""
    t_lo = 3e-4
    mags = np.geomspace(t_lo, 0.5, 11)
    t = np.concatenate([-mags[::-1], [0.0], mags])
    fit = measure.fit_envelope(t, b0 * t ** 2)
    assert fit.resolved and fit.a_resolved is False
    assert fit.a_resolution == pytest.approx(b0 * t_lo, rel=1e-9)
    assert fit.a < measure.KINK_MIN_SHARE * fit.a_resolution
    # a rounding floor that drops the two smallest steps: the resolution is set by the smallest fitted |t|
    floor = b0 * mags[1] * mags[2]  # between b0·mags[1]² and b0·mags[2]²
    fit = measure.fit_envelope(t, b0 * t ** 2, floor=floor)
    assert fit.t_range[0] == pytest.approx(mags[2]) and fit.a_resolution == pytest.approx(b0 * mags[2], rel=1e-9)


@pytest.mark.parametrize("a0", [1e-2, 0.7, 50.0])
def test_a_kink_well_above_the_curvature_at_t_lo_is_resolved(a0):
    """r = a0·|t| + b0·t² with a0 ≫ b0·t_lo (t_lo = 1e-4, b0 = 2): a = a0 is a measurement, and
    a_resolution = min (a0 + b0|t|) = a0 + b0·t_lo."""
    b0, t_lo = 2.0, 1e-4
    fit = measure.fit_envelope(LADDER, a0 * np.abs(LADDER) + b0 * LADDER ** 2)
    assert fit.a_resolved is True and fit.a == pytest.approx(a0, rel=1e-9)
    assert fit.a_resolution == pytest.approx(a0 + b0 * t_lo, rel=1e-9)


def test_a_kink_smaller_than_the_curvature_at_t_lo_is_only_bounded():
    """r = a0·|t| + b0·t² with a0 = b0·t_lo/2: at t_lo the kink is a third of |r|, below KINK_MIN_SHARE;
    the envelope's a is not resolved and the kink is bounded by a_resolution = 1.5·b0·t_lo."""
    b0, t_lo = 2.0, 1e-4
    a0 = 0.5 * b0 * t_lo
    fit = measure.fit_envelope(LADDER, a0 * np.abs(LADDER) + b0 * LADDER ** 2)
    assert fit.a_resolution == pytest.approx(1.5 * b0 * t_lo, rel=1e-9)
    assert fit.a_resolved is False and fit.a <= fit.a_resolution / 2
    assert measure.kink_resolved(0.5, 1.0) and not measure.kink_resolved(0.5 - 1e-12, 1.0)


def test_a_sign_change_leaves_a_at_zero_and_the_envelope_over_every_point():
    """(c) r = ½h t² − c t³ changes sign at t = h/(2c) = 1, inside the window: |r| dips to ~0 there. The
    envelope keeps a ≈ 0 (no fake kink) and bounds every point; the former relative least-squares fit
    missed the points by a relative RMS > 0.5; the envelope's looseness is reported as it is."""
    h, c = 2.0, 1.0
    mags = np.geomspace(1e-3, 3.0, 14)
    t = np.concatenate([-mags[::-1], [0.0], mags])
    r = 0.5 * h * t ** 2 - c * t ** 3
    assert np.any(r[t > 0] > 0) and np.any(r[t > 0] < 0)
    fit = measure.fit_envelope(t, r)
    assert fit.resolved and fit.b > 0 and fit.a <= 1e-3 * fit.b * mags[-1]
    model = fit.a * np.abs(t) + fit.b * t ** 2
    assert np.all(model >= np.abs(r) * (1 - 1e-12))
    # the bound is set by the cubic at t = −3: b ≥ ½h + c·|t| = 4 (with a = 0, exactly)
    assert fit.b == pytest.approx(0.5 * h + c * mags[-1], rel=1e-9)
    used = t != 0
    assert _relative_least_squares_rms(t[used], r[used]) > 0.5
    side_model = np.where(t > 0, fit.sides["+"]["a"] * np.abs(t) + fit.sides["+"]["b"] * t ** 2,
                          fit.sides["-"]["a"] * np.abs(t) + fit.sides["-"]["b"] * t ** 2)  # each side its own
    looseness = np.sqrt(np.mean((side_model[used] / np.abs(r[used]) - 1) ** 2))
    assert fit.rel_rms == pytest.approx(looseness, rel=1e-12) and fit.rel_rms > 0.5


def test_the_rounding_allowance_keeps_noise_at_tiny_t_from_posing_as_a_kink():
    """(d) r = b0 t² plus rounding noise of size floor/2 at tiny |t|: the points just above the floor
    do not force a ≈ floor/t_lo; the bound holds up to the floor."""
    b0, floor = 1.0, 1e-6
    t = np.concatenate([-np.geomspace(3e-4, 1.0, 16)[::-1], [0.0], np.geomspace(3e-4, 1.0, 16)])
    noise = np.where(np.abs(t) < 3e-3, floor / 2, 0.0) * np.sign(np.sin(7 * np.arange(len(t))))
    r = b0 * t ** 2 + noise
    fit = measure.fit_envelope(t, r, floor=floor)
    used = (t != 0) & (np.abs(r) > floor)
    t_lo = np.abs(t[used]).min()
    assert t_lo < 3e-3 and np.any(np.abs(r[used]) > b0 * t[used] ** 2)  # noise lifts a fitted point above b0·t²
    assert fit.a * t_lo <= floor and fit.a * t_lo <= 1e-9 * floor
    assert fit.b == pytest.approx(b0, rel=2 * floor)
    model = fit.a * np.abs(t[used]) + fit.b * t[used] ** 2
    assert np.all(model >= np.abs(r[used]) - floor * (1 + 1e-9))
    # without the allowance the same points would need a kink of about (floor/2)/t_lo
    a_strict, _ = _vertex_envelope(t[used], r[used])
    assert a_strict * t_lo > 0.2 * floor


def test_a_fit_on_too_few_or_too_close_points_is_not_measured_never_zero():
    t = np.concatenate([-np.logspace(-4, 0, 9), [0.0], np.logspace(-4, 0, 9)])
    r = 0.3 * np.abs(t) + 2.0 * t ** 2
    # above the floor 1.0 only |t| = 1 is left (both signs): one distinct |t|
    fit = measure.fit_envelope(t, r, floor=1.0)
    assert not fit.resolved and fit.points == 2 and fit.distinct_t == 1
    assert fit.a is None and fit.b is None and fit.rel_rms is None and "1 distinct |t|" in fit.reason
    fit = measure.fit_envelope(t, r, floor=10.0)
    assert not fit.resolved and fit.points == 0 and fit.t_range is None
    # four distinct |t| but within less than a decade: not measured either
    close = np.array([0.0, 1.0, 1.5, 2.0, 3.0])
    fit = measure.fit_envelope(close, 0.3 * close)
    assert fit.distinct_t == measure.PROBE_MIN_POINTS and fit.decades < measure.PROBE_MIN_DECADES
    assert not fit.resolved and fit.a is None
    # the ceiling: points with |r| > F are left out
    fit = measure.fit_envelope(t, r, ceiling=0.3 * 1e-2 + 2e-4)
    assert fit.t_range[1] == pytest.approx(1e-2) and fit.resolved


def test_window_edges_bracket_the_rounding_floor_and_F():
    mags = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    r = np.array([1e-9, 1e-5, 1e-2, 0.5, 40.0])
    w = measure.window_edges(mags, r, floor=1e-6, ceiling=1.0)
    assert (w["t_lo"], w["t_hi"]) == (1e-2, 1.0)
    assert w["lo_bracket"] == (1e-3, 1e-2) and w["hi_bracket"] == (1.0, 10.0)
    w = measure.window_edges(mags, np.array([1e-5, 1e-4, 1e-3, 1e-2, np.nan]), floor=1e-6, ceiling=1.0)
    assert (w["t_lo"], w["t_hi"], w["lo_bracket"], w["hi_bracket"]) == (1e-3, 1.0, None, (1.0, 10.0))
    w = measure.window_edges(mags, np.full(5, 1e-9), floor=1e-6, ceiling=1.0)
    assert w["t_lo"] is None and w["t_hi"] is None


def _kinked(a: float, c: float, K: float):
    """F(θ) = a·|u·θ| + c·(v·θ)² + K (u ⊥ v unit vectors), at θ₀ with u·θ₀ = 0 (the kink) and v·θ₀ = 1.

    Two examples x₁ = u, x₂ = v through a bias-free linear map; the per-example loss
    y₀·|z| + y₁·z² + y₂ (the labels carry the coefficients, each example weighs ½)."""
    d = 6
    u, v = np.eye(d)[0], np.eye(d)[1]  # exact: u·θ₀ is exactly 0
    x = torch.tensor(np.stack([u, v]), dtype=torch.float64)
    y = torch.tensor([[2 * a, 0.0, 0.0], [0.0, 2 * c, 2 * K]], dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(v, dtype=torch.float64)[None])
    loss = lambda out, lab: lab[:, 0] * out[:, 0].abs() + lab[:, 1] * out[:, 0] ** 2 + lab[:, 2]
    obj = Objective(model, x, y, loss=loss, precision="fp64", channels_last=False)
    return obj, u, v


def test_adaptive_probe_recovers_a_known_kink_with_ten_resolved_steps():
    a, c, K = 0.4, 0.3, 1.0
    obj, u, v = _kinked(a, c, K)
    d = torch.tensor((u + v) / np.sqrt(2), dtype=torch.float64)
    direction = Direction(d, "test")
    _, grad = obj.value_and_grad()
    evaluated, values = [], obj.values
    obj.values = lambda thetas, **kw: (evaluated.append(len(list(thetas := list(thetas)))), values(thetas, **kw))[1]
    probe = measure.adaptive_probe(obj, obj.theta0, grad, direction, count=10)
    assert sum(evaluated) == len(probe.t) == probe.evaluations  # every point evaluated once
    assert len(evaluated) <= 1 + measure.PROBE_REFINE_ROUNDS + 1  # scout, bisection rounds, ladder: a few passes
    F0 = c + K
    assert probe.F == pytest.approx(F0, rel=1e-14)
    fit = probe.fit
    assert fit.resolved and fit.distinct_t >= 10 and fit.decades >= 1
    # r(t) = a·|u·d|·|t| + c·(v·d)²·t² exactly: a_fit = a/√2, b = c/2
    assert fit.a == pytest.approx(a / np.sqrt(2), rel=1e-6)
    assert fit.b == pytest.approx(c / 2, rel=1e-4)
    gnorm = float(grad.norm())
    assert gnorm == pytest.approx(2 * c, rel=1e-12)  # ∇F = 2c·(v·θ₀)·v (|z| has gradient 0 at the kink)
    assert probe.a_over_grad_norm == pytest.approx(fit.a / gnorm, rel=1e-12)
    assert probe.a_over_sqrt_F == pytest.approx(fit.a / np.sqrt(F0), rel=1e-12)
    # the ladder lies between the rounding floor and F on both sides
    w = probe.window
    for side in ("+", "-"):
        lo, hi = w[side]["t_lo"], w[side]["t_hi"]
        r_hi = a / np.sqrt(2) * hi + c / 2 * hi ** 2
        assert r_hi <= F0 and a / np.sqrt(2) * lo + c / 2 * lo ** 2 > probe.noise_floor
    assert np.all(np.diff(probe.t) > 0) and np.any(probe.t == 0)


def test_adaptive_probe_on_a_quadratic_finds_b_and_no_kink(quadratic):
    obj, F, grad, H = quadratic
    g = torch.from_numpy(grad)
    u = gaussian_direction(obj, 5)
    un = u.vector.numpy()
    probe = measure.adaptive_probe(obj, obj.theta0, g, u, count=12)
    fit = probe.fit
    assert fit.resolved and fit.distinct_t >= 12
    assert fit.b == pytest.approx(0.5 * float(un @ H @ un), rel=1e-3)  # points near the floor carry ~1 % rounding
    # no kink: a·|t| stays at the rounding level of the smallest fitted step (a few % of r there) ...
    assert fit.a <= 0.05 * fit.b * fit.t_range[0]
    # ... and is nothing next to the gradient: the descent-step condition a ≪ ‖∇F‖ holds by orders of magnitude
    assert probe.a_over_grad_norm == pytest.approx(fit.a / np.linalg.norm(grad), rel=1e-12)
    assert probe.a_over_grad_norm < 1e-6


def test_a_probe_flat_below_the_rounding_floor_is_not_measured():
    obj, u, v = _kinked(0.0, 1e-40, 1.0)  # r(t) = 1e-40·t²/2: below 64 ε for every scouted t
    direction = Direction(torch.tensor((u + v) / np.sqrt(2), dtype=torch.float64), "test")
    _, grad = obj.value_and_grad()
    probe = measure.adaptive_probe(obj, obj.theta0, grad, direction, count=10)
    assert not probe.fit.resolved and probe.fit.points == 0
    assert probe.fit.a is None and probe.a_over_sqrt_F is None and probe.a_over_grad_norm is None
    assert probe.window["+"]["t_lo"] is None  # no ladder: nothing rose above the floor


def test_default_steps_and_noise_floor():
    steps = measure.default_steps(200.0, count=4, smallest=1e-4, largest=1e-1)
    np.testing.assert_allclose(steps, [-20, -2, -0.2, -0.02, 0, 0.02, 0.2, 2, 20], rtol=1e-12)
    assert measure.noise_floor(0.5, "fp32") == pytest.approx(64 * np.finfo(np.float32).eps)
    assert measure.noise_floor(3.0, "fp64") == pytest.approx(3 * 64 * EPS)
    with pytest.raises(LandscapeError):
        measure.noise_floor(1.0, "bf16")


def test_probe_needs_t_zero(quadratic):
    obj, *_ = quadratic
    with pytest.raises(LandscapeError, match="t = 0"):
        measure.semi_smoothness_probe(obj, obj.theta0, torch.zeros(obj.dim), gaussian_direction(obj, 0),
                                      np.array([-1.0, 1.0]))


# ----------------------------------------------------------------------------- descent check
def test_descent_along_the_negative_gradient_of_a_quadratic(quadratic):
    obj, F, grad, H = quadratic
    g = torch.from_numpy(grad)
    gnorm = float(np.linalg.norm(grad))
    ghat = grad / gnorm
    curv = float(ghat @ H @ ghat)
    eta_star = gnorm / curv  # the exact line minimum
    steps = np.concatenate([-np.array([eta_star]), [0.0], eta_star * np.array([0.1, 0.5, 1.0, 1.5, 3.0])])
    d = gradient_direction(g, obj, negative=True)
    probe = measure.semi_smoothness_probe(obj, obj.theta0, g, d, steps)
    desc = probe.descent
    eta = np.array(desc["eta"])
    np.testing.assert_array_equal(eta, steps[steps > 0])
    expected = eta * gnorm - 0.5 * eta ** 2 * curv
    np.testing.assert_allclose(desc["decrease"], expected, rtol=1e-11, atol=1e-13 * F)
    np.testing.assert_allclose(desc["predicted"], eta * gnorm, rtol=1e-14)
    assert desc["best_eta"] == eta_star
    assert desc["best_decrease"] == pytest.approx(0.5 * gnorm ** 2 / curv, rel=1e-11)
    assert desc["best_fraction_of_F"] == pytest.approx(0.5 * gnorm ** 2 / curv / F, rel=1e-11)
    assert desc["efficiency_at_best"] == pytest.approx(0.5, rel=1e-10)
    assert probe.slope == pytest.approx(-gnorm, rel=1e-12)


def test_descent_check_on_hand_made_numbers():
    steps = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    f = np.array([9.0, 4.0, 3.0, 2.5, 3.5])
    d = measure.descent_check(steps, f, grad_norm=2.0)
    assert d["eta"] == [0.5, 1.0, 2.0]
    assert d["decrease"] == [1.0, 1.5, 0.5]
    assert d["predicted"] == [1.0, 2.0, 4.0]
    assert d["best_eta"] == 1.0 and d["best_decrease"] == 1.5
    assert d["best_fraction_of_F"] == 1.5 / 4.0 and d["efficiency_at_best"] == 0.75


# ----------------------------------------------------------------------------- gradient dominance
def test_gradient_dominance_on_a_quadratic(quadratic):
    obj, F, grad, H = quadratic
    test_obj, *_ = least_squares(n=20, d=6, classes=4, seed=9)
    result, g = measure.gradient_dominance(obj, None, ["bias"], test=test_obj)
    assert result.F == pytest.approx(F, rel=1e-14)
    assert result.grad_sq == pytest.approx(float(grad @ grad), rel=1e-12)
    bias_grad = grad[-4:]
    assert result.grad_sq_hidden == pytest.approx(float(bias_grad @ bias_grad), rel=1e-12)
    assert result.ratio == pytest.approx(float(grad @ grad) / F, rel=1e-12)
    assert result.ratio_hidden == pytest.approx(float(bias_grad @ bias_grad) / F, rel=1e-12)
    assert result.layer_grad_norms["weight"] == pytest.approx(float(np.linalg.norm(grad[:-4])), rel=1e-12)
    assert result.test_loss == pytest.approx(test_obj.value(), rel=1e-15)
    assert result.theta_norm == pytest.approx(float(obj.theta0.norm()))
    np.testing.assert_allclose(g.numpy(), grad, rtol=0, atol=1e-13 * np.abs(grad).max())


# ----------------------------------------------------------------------------- resumable points
def _counting(obj, raise_after=None):
    """Wrap obj.values: record the points of each pass; raise KeyboardInterrupt in the pass that
    would take the count past ``raise_after`` (none of its points finish)."""
    passes = []
    original = type(obj).values.__get__(obj)

    def values(thetas, progress=None, *, buffers=None):
        thetas = list(thetas)
        if raise_after is not None and sum(passes) + len(thetas) > raise_after:
            raise KeyboardInterrupt
        passes.append(len(thetas))
        return original(thetas, progress, buffers=buffers)

    obj.values = values
    return passes


class _Progress:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


@pytest.mark.parametrize("points_per_pass", [1, None])
def test_an_interrupted_surface_resumes_without_recomputing_and_equals_an_uninterrupted_one(
        points_per_pass, tmp_path):
    _, model, features, labels = least_squares(n=50, d=6, classes=4, seed=2)
    obj = Objective(model, features, labels, loss="mse", precision="fp64", batch_size=16,
                    points_per_pass=points_per_pass)
    row = 1 if points_per_pass == 1 else 5  # points per pass: one, or a row of the grid
    assert obj.points_per_pass >= row
    x = gaussian_direction(obj, 1)
    y = gaussian_direction(obj, 2)
    xs = np.linspace(-1, 1, 5)
    ys = np.linspace(-0.5, 1.0, 4)
    reference = measure.surface(obj, obj.theta0, x, y, xs, ys)
    partial = Partial(tmp_path / "surface.partial.npz")

    passes = _counting(obj, raise_after=7)
    with pytest.raises(KeyboardInterrupt):
        measure.surface(obj, obj.theta0, x, y, xs, ys, partial)
    finished = 7 // row * row  # the interrupted pass finishes nothing
    assert sum(passes) == finished and set(passes) == {row} and partial.path.is_file()
    with np.load(partial) as z:
        assert int(z["done"].sum()) == finished

    passes = _counting(obj)
    progress = _Progress()
    resumed = measure.surface(obj, obj.theta0, x, y, xs, ys, partial, progress)
    assert sum(passes) == 20 - finished and max(passes) <= row
    assert progress.n == 20
    for key in ("xs", "ys", "loss", "acc"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(reference, key))
    # once complete, a rerun evaluates nothing
    passes = _counting(obj)
    again = measure.surface(obj, obj.theta0, x, y, xs, ys, partial)
    assert sum(passes) == 0
    np.testing.assert_array_equal(again.loss, reference.loss)
    # a partial file for other coordinates is not reused
    passes = _counting(obj)
    measure.surface(obj, obj.theta0, x, y, xs, ys[:3], partial)
    assert sum(passes) == 15
    # nor is a damaged one
    partial.path.write_bytes(b"not an npz file")
    passes = _counting(obj)
    measure.surface(obj, obj.theta0, x, y, xs, ys[:3], partial)
    assert sum(passes) == 15


def _conv_bn_net():
    """A conv + batch norm + linear network with random statistics, on 23 random 6×6 images."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.1, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    return model.eval(), torch.randn(23, 3, 6, 6, generator=gen), torch.randint(0, 3, (23,), generator=gen)


def _mlp():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    return (nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 3)), torch.randn(23, 6, generator=gen),
            torch.randint(0, 3, (23,), generator=gen))


@pytest.mark.parametrize("case", [_conv_bn_net, _mlp])
def test_surfaces_and_probes_in_passes_of_several_points_equal_one_point_at_a_time(case):
    model, x, y = case()
    one = Objective(model, x, y, batch_size=8, points_per_pass=1)
    many = Objective(model, x, y, batch_size=8, points_per_pass=6)
    assert many.point_batching and not one.point_batching
    dx, dy = gaussian_direction(one, 1), gaussian_direction(one, 2)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-0.5, 1.0, 4)
    passes = _counting(many)
    batched = measure.surface(many, many.theta0, dx, dy, xs, ys)
    assert passes == [5] * 4  # a row of the grid per pass
    single = measure.surface(one, one.theta0, dx, dy, xs, ys)
    np.testing.assert_allclose(batched.loss, single.loss, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(batched.acc, single.acc)
    assert single.loss[2, 3] == one.value(one.theta0 + xs[3] * dx.vector + ys[2] * dy.vector)
    _, grad = one.value_and_grad()
    steps = measure.default_steps(float(one.theta0.norm()), 4, 1e-3, 0.3)
    passes = _counting(many)
    probe_many = measure.semi_smoothness_probe(many, many.theta0, grad, dx, steps)
    assert passes == [6, 3]  # nine steps
    probe_one = measure.semi_smoothness_probe(one, one.theta0, grad, dx, steps)
    np.testing.assert_allclose(probe_many.f, probe_one.f, rtol=1e-6, atol=0)


def test_surface_layout_rows_are_y_columns_are_x(quadratic):
    obj, *_ = quadratic
    x = gaussian_direction(obj, 3)
    y = gaussian_direction(obj, 4)
    xs = np.array([-1.0, 0.0, 0.5, 2.0])
    ys = np.array([-0.3, 0.7, 1.0])
    res = measure.surface(obj, obj.theta0, x, y, xs, ys)
    assert res.loss.shape == (3, 4) and res.acc.shape == (3, 4)
    for j, i in ((0, 3), (2, 0), (1, 2)):
        direct = obj.value(obj.theta0 + xs[i] * x.vector + ys[j] * y.vector)
        assert res.loss[j, i] == pytest.approx(direct, rel=1e-13)
        swapped = obj.value(obj.theta0 + ys[j] * x.vector + xs[i] * y.vector)
        assert res.loss[j, i] != pytest.approx(swapped, rel=1e-6)
    assert res.loss[1, 1] != res.loss[0, 1]


def test_surface_summary_on_a_hand_made_grid():
    res = measure.Surface(xs=np.array([-1.0, 0.0, 1.0]), ys=np.array([-2.0, 0.0, 2.0]),
                          loss=np.array([[5.0, 4.0, 6.0],
                                         [3.0, 2.0, 1.5],
                                         [0.5, 7.0, 8.0]]))
    s = measure.surface_summary(res)
    assert s.F == 2.0
    assert s.along_x == measure.GridBest(decrease=0.5, at=1.0)
    assert s.along_y == measure.GridBest(decrease=0.0, at=0.0)
    assert s.anywhere == measure.GridBest(decrease=1.5, at=[-1.0, 2.0])
    assert s.extra_from_y == 1.0
    # F is read at the grid point nearest the origin; a plain dict with the arrays is read too
    res = {"xs": np.array([-1.0, 0.1, 1.2]), "ys": np.array([-0.05, 1.0]),
           "loss": np.array([[3.0, 2.0, 2.5], [1.0, 4.0, 0.0]])}
    s = measure.surface_summary(res)
    assert s.F == 2.0
    assert s.along_x == measure.GridBest(0.0, 0.1) and s.along_y == measure.GridBest(0.0, -0.05)
    assert s.anywhere == measure.GridBest(2.0, [1.2, 1.0])
    assert s.extra_from_y == 2.0


# ----------------------------------------------------------------------------- interpolation
def _bn_net(seed):
    torch.manual_seed(seed)
    model = build_model("resnet8")
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def two_nets():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (6,), generator=gen)
    return _bn_net(1), _bn_net(2), images, labels


def test_interpolation_with_interpolated_statistics_reproduces_both_ends(two_nets):
    model_a, model_b, images, labels = two_nets
    alphas = np.linspace(-0.5, 1.5, 5)
    obj = Objective(model_a, images, labels)
    theta_a = obj.theta0
    theta_b = obj.flatten(dict(model_b.named_parameters())).detach()
    bufs_a = {n: b.detach() for n, b in model_a.named_buffers()}
    bufs_b = {n: b.detach() for n, b in model_b.named_buffers()}
    res = measure.interpolation(obj, theta_a, theta_b, alphas, bufs_a, bufs_b)
    fa = Objective(model_a, images, labels).value()
    fb = Objective(model_b, images, labels).value()
    assert res.loss[1] == fa
    assert res.loss[3] == fb
    assert fa != pytest.approx(fb, rel=1e-3)
    # the midpoint: weights and statistics both halfway
    mid = obj.with_buffers(measure.interpolate_buffers(bufs_a, bufs_b, 0.5))
    assert res.loss[2] == pytest.approx(mid.value(0.5 * (theta_a + theta_b)), rel=1e-6)
    # without the statistics, θ_b is evaluated with θ_a's statistics: a different number
    plain = measure.interpolation(obj, theta_a, theta_b, alphas)
    assert plain.loss[1] == fa and plain.loss[3] != pytest.approx(fb, rel=1e-3)
    with pytest.raises(LandscapeError, match="both ends"):
        measure.interpolation(obj, theta_a, theta_b, alphas, bufs_a, None)
    # fp64 objective, fp32 statistics from the checkpoints: the ends still agree
    obj64 = Objective(model_a, images, labels, precision="fp64")
    res64 = measure.interpolation(obj64, obj64.theta0, theta_b, alphas, bufs_a, bufs_b)
    assert res64.loss[3] == pytest.approx(Objective(model_b, images, labels, precision="fp64").value(), rel=1e-13)


@pytest.mark.parametrize("bn", ["frozen", "recompute"])
def test_interpolation_in_passes_of_several_points_equals_one_point_at_a_time(two_nets, bn):
    model_a, model_b, images, labels = two_nets
    alphas = np.linspace(-0.5, 1.5, 5)
    bufs = ({n: b.detach() for n, b in model_a.named_buffers()},
            {n: b.detach() for n, b in model_b.named_buffers()}) if bn == "frozen" else (None, None)
    results = {}
    for k in (1, 5):
        obj = Objective(model_a, images, labels, bn=bn, points_per_pass=k)
        theta_b = obj.flatten(dict(model_b.named_parameters())).detach()
        passes = _counting(obj)
        results[k] = measure.interpolation(obj, obj.theta0, theta_b, alphas, *bufs)
        assert passes == ([1] * 5 if k == 1 else [5])
    np.testing.assert_allclose(results[5].loss, results[1].loss, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(results[5].acc, results[1].acc)
    assert len(set(np.round(results[1].loss, 5))) == 5


def test_interpolation_with_recomputed_statistics_reproduces_both_ends(two_nets):
    model_a, model_b, images, labels = two_nets
    stats = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    alphas = np.array([0.0, 0.5, 1.0])
    obj = Objective(model_a, images, labels, bn="recompute", recompute_images=stats, batch_size=5)
    theta_b = obj.flatten(dict(model_b.named_parameters())).detach()
    res = measure.interpolation(obj, obj.theta0, theta_b, alphas)
    own_a = Objective(model_a, images, labels, bn="recompute", recompute_images=stats, batch_size=5).value()
    own_b = Objective(model_b, images, labels, bn="recompute", recompute_images=stats, batch_size=5).value()
    assert res.loss[0] == own_a
    assert res.loss[2] == own_b
    assert own_a != pytest.approx(Objective(model_a, images, labels).value(), rel=1e-3)


def test_monotonicity_on_hand_made_curves():
    alphas = np.array([-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    m = measure.monotonicity(alphas, np.array([0.0, 3.0, 2.0, 2.0, 1.0, 0.5, 10.0]))
    assert m == measure.Monotonicity(monotone=True, largest_bump=0.0, bump_at=0.0)
    m = measure.monotonicity(alphas, np.array([0.0, 3.0, 2.0, 2.5, 1.0, 0.5, 10.0]))
    assert m.monotone is False and m.largest_bump == 0.5 and m.bump_at == 0.5
    m = measure.monotonicity(alphas, np.array([0.0, 3.0, 1.0, 2.0, 2.8, 0.5, 0.0]))
    assert m.monotone is False and m.largest_bump == pytest.approx(1.8) and m.bump_at == 0.75
    # rounding-level rises do not count
    m = measure.monotonicity(alphas, np.array([9.0, 3.0, 3.0 + 1e-12, 2.0, 1.0, 0.5, 9.0]))
    assert m.monotone is True


# ----------------------------------------------------------------------------- second-order test (no grid)
G, C, MU, K = 0.7, 2.0, 1.5, 3.0


def _double_well(a, b):
    """Non-convex and separable: max decrease g²/2c along a, μ²/4κ along b (at b² = μ/κ), their sum in the plane."""
    return 5.0 - G * a + 0.5 * C * a * a - 0.5 * MU * b * b + 0.25 * K * b ** 4


def test_second_order_test_finds_the_closed_form_maxima_of_a_non_convex_function():
    from landscape.measure import second_order_test

    r = second_order_test(_double_well, scale=0.05)
    assert r.d_grad == pytest.approx(G * G / (2 * C), abs=1e-6)
    assert r.grad_step == pytest.approx(G / C, rel=1e-3)
    assert r.d_curv == pytest.approx(MU * MU / (4 * K), abs=1e-6)
    assert abs(r.curv_step) == pytest.approx(np.sqrt(MU / K), rel=1e-3)
    assert r.d_plane == pytest.approx(G * G / (2 * C) + MU * MU / (4 * K), abs=1e-6)
    assert r.extra == pytest.approx(MU * MU / (4 * K), abs=1e-6)
    assert r.extra_fraction == pytest.approx((MU * MU / (4 * K)) / (G * G / (2 * C)), rel=1e-5)
    assert r.bracketed and r.evaluations < 150


@pytest.mark.parametrize("scale", [1e-3, 0.05, 3.0])
def test_second_order_test_on_a_convex_coupled_quadratic(scale):
    from landscape.measure import second_order_test

    p, q, s = 2.0, 0.6, 1.0  # F = 1 − g·a + ½(p a² + 2q ab + s b²), positive definite
    r = second_order_test(lambda a, b: 1.0 - G * a + 0.5 * (p * a * a + 2 * q * a * b + s * b * b), scale)
    assert r.d_grad == pytest.approx(G * G / (2 * p), abs=1e-6)
    assert r.d_curv == 0.0  # positive curvature along y and no slope: no decrease either way
    assert r.d_plane == pytest.approx(G * G * s / (2 * (p * s - q * q)), abs=1e-6)
    assert r.extra >= 0


def test_line_search_brackets_from_any_start_and_reports_no_decrease_on_a_rising_line():
    from landscape.measure import max_decrease_along

    f = lambda s: 2.0 - 3.0 * s + 4.0 * s * s  # noqa: E731  max decrease 9/16 at s = 3/8
    for start in (1e-4, 0.3, 50.0):
        r = max_decrease_along(f, 2.0, start)
        assert r["decrease"] == pytest.approx(9 / 16, abs=1e-9)
        assert r["step"] == pytest.approx(3 / 8, rel=1e-3)
    up = max_decrease_along(lambda s: 2.0 + s, 2.0, 0.1)
    assert up["decrease"] == 0.0 and up["step"] == 0.0 and up["bracket"] is None


def test_plane_function_moves_theta_along_both_directions():
    from landscape.directions import Direction
    from landscape.measure import plane_function
    from landscape.objective import Objective

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, bias=False)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    obj = Objective(model, x, y, precision="fp64")
    u, v = torch.zeros(obj.dim, dtype=torch.float64), torch.zeros(obj.dim, dtype=torch.float64)
    u[0], v[1] = 1.0, 1.0
    f = plane_function(obj, obj.theta0, Direction(u, "test"), Direction(v, "test"))
    expected = obj.theta0.clone()
    expected[0] += 0.3
    expected[1] -= 0.2
    assert f(0.3, -0.2) == pytest.approx(obj.value(expected), rel=1e-12)


def test_max_decrease_on_a_plateau_reports_the_best_step_instead_of_failing():
    from landscape.measure import max_decrease_along

    # falls, then stays exactly flat for a while, then rises: the doubling leaves lo and mid on the plateau,
    # where Brent's bracket condition f(mid) < f(lo) cannot hold (as F does at its fp32 rounding floor)
    f = lambda s: 1.0 - min(s, 0.4) if s < 3.0 else 1.0  # noqa: E731
    r = max_decrease_along(f, 1.0, 0.1)
    assert r["decrease"] == pytest.approx(0.4) and 0.4 <= r["step"] < 3.0 and r["bracket"] is not None


# ----------------------------------------------------------------------------- second order against controls
MU2, S2, COS2 = 1.5, 4.0, 0.9  # curvature −μ along e_b (quartic κ = K), +s along e_c; the control's cos²φ


def _three_d(u):
    """F(u) = 5 − G·u_a + ½C·u_a² − ½μ·u_b² + ¼κ·u_b⁴ + ½s·u_c²: x = e_a (−∇F), the most negative
    eigen-direction e_b, the top one e_c (s > C), all orthogonal to x."""
    a, b, c = u
    return 5.0 - G * a + 0.5 * C * a * a - 0.5 * MU2 * b * b + 0.25 * K * b ** 4 + 0.5 * S2 * c * c


def _plane(y):
    return lambda a, b: _three_d(np.array([a, 0.0, 0.0]) + b * np.asarray(y))


def test_second_order_controls_have_their_closed_form_extra_decreases():
    from landscape.measure import second_order_test

    cos, sin = np.sqrt(COS2), np.sqrt(1 - COS2)  # a unit direction ⊥ x mixing the negative and the positive axis
    r = second_order_test(_plane([0, 1, 0]), 0.05, controls={"random_0": _plane([0, cos, sin]), "top": _plane([0, 0, 1])})
    d_grad = G * G / (2 * C)
    m = MU2 * COS2 - S2 * (1 - COS2)  # −curvature along the control: max decrease m²/(4κcos⁴φ)
    assert r.d_grad == pytest.approx(d_grad, abs=1e-6)
    assert r.extra == pytest.approx(MU2 ** 2 / (4 * K), abs=1e-6)
    ctrl, top = r.controls["random_0"], r.controls["top"]
    assert ctrl["d_dir"] == pytest.approx(m * m / (4 * K * COS2 ** 2), abs=1e-6)
    assert ctrl["extra"] == pytest.approx(m * m / (4 * K * COS2 ** 2), abs=1e-6)
    assert ctrl["extra_fraction"] == pytest.approx(ctrl["extra"] / d_grad, rel=1e-5)
    assert top["d_dir"] == 0.0 and top["extra"] == 0.0 and top["extra_fraction"] == 0.0  # convex along e_c
    assert r.extra_fraction - ctrl["extra_fraction"] == pytest.approx(
        (MU2 ** 2 / (4 * K) - m * m / (4 * K * COS2 ** 2)) / d_grad, rel=1e-4)


def test_at_the_rounding_floor_and_without_a_bracket_numbers_are_unresolved_bounds():
    from landscape.measure import noise_floor, second_order_test

    flat = second_order_test(lambda a, b: 2.0 - G * a + 0.5 * C * a * a - 1e-18 * b * b, 0.05, precision="fp64")
    floor = noise_floor(2.0, "fp64")
    assert flat.rounding_floor == floor
    d_curv = flat.d_curv  # a decrease of 1e-18·b² is below 64 eps: a bound, not 0
    assert (d_curv["resolved"], d_curv["bound"], d_curv["side"]) == (False, floor, "below")
    assert flat.extra["resolved"] is False and flat.extra_fraction["bound"] == pytest.approx(floor / (G * G / 4))
    assert flat.d_grad == pytest.approx(G * G / (2 * C), abs=1e-6)  # resolved: a number
    falling = second_order_test(lambda a, b: 2.0 - a - b * b, 0.05, precision="fp64")  # never rises along x
    assert falling.d_grad["resolved"] is False and falling.d_grad["side"] == "above"
    assert falling.d_grad["bound"] > 0 and not falling.bracketed


def test_plane_points_evaluate_the_points_known_in_advance_in_one_call():
    from landscape.measure import Plane, second_order_test

    calls = []

    def evaluate(rows):
        calls.append(len(rows))
        ys = ([0, 1, 0], [0, np.sqrt(COS2), np.sqrt(1 - COS2)])
        return np.array([_three_d(np.array([a, 0.0, 0.0]) + b * np.asarray(ys[int(k)])) for k, a, b in rows])

    batched = second_order_test(Plane(evaluate, 0), 0.05, controls={"random_0": Plane(evaluate, 1)})
    single = second_order_test(_plane([0, 1, 0]), 0.05, controls={"random_0": _plane([0, np.sqrt(COS2), np.sqrt(1 - COS2)])})
    assert max(calls) >= 2  # the sign test, the starting simplex and the first line steps go together
    assert batched.d_plane == single.d_plane and batched.controls == single.controls


# ----------------------------------------------------------------------------- result types
def test_dominance_result_has_attributes_and_the_stored_layout(quadratic):
    obj, F, grad, H = quadratic
    test_obj, *_ = least_squares(n=20, d=6, classes=4, seed=9)
    result, _ = measure.gradient_dominance(obj, None, ["bias"], test=test_obj)
    assert isinstance(result, measure.Dominance)
    g2, h2 = float(grad @ grad), float(grad[-4:] @ grad[-4:])
    stored = result.as_dict()
    assert list(stored) == ["F", "grad_sq", "grad_sq_hidden", "ratio", "ratio_hidden", "grad_norm", "theta_norm",
                            "train_acc", "layer_grad_norms", "test_loss", "test_acc", "seconds"]
    norms = stored.pop("layer_grad_norms")
    assert norms == pytest.approx({"weight": float(np.linalg.norm(grad[:-4])), "bias": h2 ** 0.5}, rel=1e-12)
    assert stored == pytest.approx({
        "F": F, "grad_sq": g2, "grad_sq_hidden": h2, "ratio": g2 / F, "ratio_hidden": h2 / F,
        "grad_norm": g2 ** 0.5, "theta_norm": float(obj.theta0.norm()), "train_acc": obj.evaluate()[1],
        "test_loss": test_obj.value(), "test_acc": test_obj.evaluate()[1], "seconds": result.seconds}, rel=1e-12)
    assert result.layer_grad_norms == norms  # as_dict() gave a copy
    assert result["ratio"] == result.ratio and "test_acc" in result and set(result) == {*stored, "layer_grad_norms"}
    alone, _ = measure.gradient_dominance(obj, None, ["bias"])
    assert alone.test_loss is None and "test_loss" not in alone.as_dict() and "test_acc" not in alone


def test_probe_result_has_attributes_the_stored_summary_and_arrays(quadratic):
    import json

    obj, F, grad, H = quadratic
    g = torch.from_numpy(grad)
    gnorm = float(np.linalg.norm(grad))
    d = gradient_direction(g, obj, negative=True)
    steps = np.concatenate([-np.logspace(-2, 0, 6)[::-1], [0.0], np.logspace(-2, 0, 6)])
    probe = measure.semi_smoothness_probe(obj, obj.theta0, g, d, steps)
    assert isinstance(probe, measure.Probe) and isinstance(probe.fit, measure.ProbeFit)
    curv = float(grad @ H @ grad) / gnorm ** 2
    stored = probe.as_dict()
    assert list(stored) == ["direction", "F", "slope", "grad_norm", "noise_floor", "fit_ceiling", "fit",
                            "a_over_sqrt_F", "a_over_grad_norm", "max_abs_t", "evaluations", "descent"]
    assert list(stored["fit"]) == ["a", "b", "rel_rms", "envelope", "active", "a_resolution", "a_resolved", "sides", "resolved",
                                   "reason", "points", "distinct_t", "t_range", "decades"]
    assert stored["fit"] == probe.fit.as_dict() and stored["fit"]["b"] == pytest.approx(0.5 * curv, rel=1e-8)
    assert stored["F"] == pytest.approx(F, rel=1e-14) and stored["slope"] == pytest.approx(-gnorm, rel=1e-12)
    assert stored["a_over_grad_norm"] == pytest.approx(probe.fit.a / gnorm, rel=1e-12) and stored["max_abs_t"] == 1.0
    assert stored["evaluations"] == 13 and stored["direction"] == d.describe()
    assert stored["descent"] == measure.descent_check(steps, probe.f, stored["grad_norm"])
    json.dumps(stored)  # JSON-ready as it is
    np.testing.assert_allclose(probe.f, F - gnorm * steps + 0.5 * curv * steps ** 2, rtol=1e-13)
    arrays = probe.arrays()
    assert list(arrays) == ["t", "f", "r", "acc"] and arrays["r"] is probe.r
    summary, unpacked = probe  # the former (summary, arrays) return
    assert summary == stored and unpacked.keys() == arrays.keys()
    assert probe["fit"]["b"] == probe.fit.b and probe.fit["points"] == probe.fit.points
    adaptive = measure.adaptive_probe(obj, obj.theta0, g, gaussian_direction(obj, 5), count=4)
    assert list(adaptive.as_dict())[-1] == "window" and "descent" not in adaptive
    assert adaptive.window["refine_rounds"] == measure.PROBE_REFINE_ROUNDS


def test_surface_results_have_attributes_and_the_stored_layout(quadratic):
    obj, F, grad, H = quadratic
    x, y = gaussian_direction(obj, 3), gaussian_direction(obj, 4)
    xs, ys = np.array([-1.0, 0.0, 1.0]), np.array([0.0, 0.5])
    res = measure.surface(obj, obj.theta0, x, y, xs, ys)
    assert isinstance(res, measure.Surface)
    stored = res.as_dict()
    assert list(stored) == ["xs", "ys", "loss", "acc"] and stored["loss"] is res.loss and res["xs"] is res.xs
    u, v = x.vector.numpy(), y.vector.numpy()
    for j, b in enumerate(ys):  # F on a quadratic: F + ⟨∇F, s⟩ + ½ sᵀHs at s = a·u + b·v
        for i, a in enumerate(xs):
            step = a * u + b * v
            assert res.loss[j, i] == pytest.approx(F + grad @ step + 0.5 * step @ H @ step, rel=1e-12)
    s = measure.surface_summary(res)
    assert isinstance(s, measure.SurfaceSummary) and isinstance(s.along_x, measure.GridBest)
    row, col = res.loss[0], res.loss[:, 1]
    iy, ix = np.unravel_index(np.argmin(res.loss), res.loss.shape)
    assert s.as_dict() == {
        "F": res.loss[0, 1], "along_x": {"decrease": res.loss[0, 1] - row.min(), "at": float(xs[np.argmin(row)])},
        "along_y": {"decrease": res.loss[0, 1] - col.min(), "at": float(ys[np.argmin(col)])},
        "anywhere": {"decrease": res.loss[0, 1] - res.loss.min(), "at": [float(xs[ix]), float(ys[iy])]},
        "extra_from_y": row.min() - res.loss.min()}
    assert s["along_x"] == s.along_x.as_dict() and s.along_x["at"] == s.along_x.at


def test_interpolation_and_monotonicity_results_have_attributes_and_the_stored_layout(quadratic):
    obj, F, grad, H = quadratic
    theta_b = obj.theta0 - 0.1 * torch.from_numpy(grad)
    alphas = np.array([-0.5, 0.0, 0.5, 1.0])
    res = measure.interpolation(obj, obj.theta0, theta_b, alphas)
    assert isinstance(res, measure.Interpolation)
    assert list(res.as_dict()) == ["alpha", "loss", "acc"] and res["loss"] is res.loss
    np.testing.assert_array_equal(res.alpha, alphas)
    g2, c = float(grad @ grad), float(grad @ H @ grad)  # F(θ − 0.1α∇F) = F − 0.1α‖∇F‖² + ½(0.1α)² ∇FᵀH∇F
    np.testing.assert_allclose(res.loss, F - 0.1 * alphas * g2 + 0.005 * alphas ** 2 * c, rtol=1e-12)
    m = measure.monotonicity(res.alpha, res.loss)
    assert isinstance(m, measure.Monotonicity)
    assert m.as_dict() == {"monotone": True, "largest_bump": 0.0, "bump_at": 0.0}  # a gradient step is downhill
    m = measure.monotonicity(np.array([0.0, 0.5, 1.0]), np.array([1.0, 1.25, 0.5]))
    assert m.as_dict() == {"monotone": False, "largest_bump": 0.25, "bump_at": 0.5} and m["bump_at"] == m.bump_at


def test_second_order_result_has_attributes_and_the_stored_layout():
    import json

    r = measure.second_order_test(_plane([0, 1, 0]), 0.05, controls={"top": _plane([0, 0, 1])})
    assert isinstance(r, measure.SecondOrder)
    stored = r.as_dict()
    assert list(stored) == ["F", "d_grad", "grad_step", "grad_search", "d_curv", "curv_step", "d_plane", "plane_at",
                            "extra", "extra_fraction", "evaluations", "plane_converged", "plane_search",
                            "line_search_rtol", "rounding_floor", "search_rule", "bracketed", "controls"]
    assert list(stored["controls"]["top"]) == ["d_dir", "dir_step", "d_plane", "plane_at", "extra", "extra_fraction",
                                               "evaluations", "plane_converged", "plane_search"]
    assert stored["F"] == 5.0 and stored["d_grad"] == pytest.approx(G * G / (2 * C), abs=1e-6)
    assert stored["d_curv"] == pytest.approx(MU2 ** 2 / (4 * K), abs=1e-6) and stored["grad_search"] == "bracketed"
    assert stored["controls"]["top"]["d_dir"] == 0.0 and stored["search_rule"] == measure.SEARCH_RULE
    assert {k: getattr(r, k) for k in stored} == stored and r["d_plane"] == r.d_plane
    json.dumps(stored)
    stored["controls"]["top"]["direction"] = "added by a caller"  # the stored form is a copy
    assert "direction" not in r.controls["top"]


def test_each_side_gets_its_own_envelope_so_a_cubic_term_is_not_called_a_kink():
    """r = ½h t² + c t³ grows faster than t² on one side and slower on the other; one curve for both sides
    (the earlier fit) bought the far points of the slow side with a linear term, a 'kink' the residual does not
    have (r/|t| → 0 as t → 0). Each side's own envelope has a = 0, and b is the larger side's max r/t²."""
    from landscape.measure import fit_envelope

    h, c = 14.0, 60.0
    mags = np.geomspace(2e-3, 0.25, 12)
    t = np.concatenate([mags, -np.geomspace(2e-3, 19.0, 16)])
    r = 0.5 * h * t ** 2 + c * t ** 3
    r[t < 0] = 0.5 * h * t[t < 0] ** 2 / (1 + np.abs(t[t < 0]))  # the other side saturates
    fit = fit_envelope(t, r, floor=1e-9, ceiling=np.inf)
    assert fit.resolved and fit.sides["+"]["a"] == pytest.approx(0.0, abs=1e-9)  # the cubic side: no linear term
    assert fit.sides["+"]["b"] == pytest.approx(np.max(np.abs(r[t > 0]) / t[t > 0] ** 2), rel=1e-6)
    # the saturating side needs a linear term for its far steps, but its smallest steps show |r|/|t| ≪ that:
    # no kink at 0, only its bound
    assert fit.sides["-"]["a"] > 1.2 * fit.a_resolution and not fit.a_resolved
    assert np.all(fit.a * np.abs(t) + fit.b * t ** 2 >= np.abs(r) - 1e-9)  # one bound for both sides
    # the kink's resolution is the larger side's: min r/|t| on each side, then the max
    per_side = [np.min(np.abs(r[s]) / np.abs(t[s])) for s in (t > 0, t < 0)]
    assert fit.a_resolution == pytest.approx(max(per_side), rel=1e-12)
