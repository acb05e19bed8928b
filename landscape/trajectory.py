"""Convexity along a training trajectory θ_0, θ_1, …, θ_T: the one-point conditions SGD actually needs.

The theorem does not need F to be convex, only that, along the path, the gradient points toward
the solution and is large wherever F is. Measured here, for any object with
``value_and_grad(θ)`` (an ``Objective``, or a test function):

* star-convexity toward θ_T: ⟨∇F(θ_t), θ_t − θ_T⟩ ≥ F(θ_t) − F(θ_T);
* PL*: ‖∇F(θ_t)‖² ≥ μ·(F(θ_t) − F*);
* the exponent p of ‖∇F‖² ∝ F^p along training (``gradient_exponent``);
* edge of stability: the sharpness λ_max(H) along the path against 2/η, the step size's
  stability limit for gradient descent on a quadratic.

Pure functions; no file I/O. How much of ‖∇F‖² lies in the top-k Hessian eigenspace is
``landscape.curvature.gradient_alignment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import t as student

from .errors import LandscapeError


def _points(function, thetas) -> tuple[np.ndarray, list[torch.Tensor]]:
    """(F(θ_t), ∇F(θ_t) in float64) at every point."""
    values, grads = [], []
    for theta in thetas:
        value, grad = function.value_and_grad(theta)
        values.append(float(value))
        grads.append(grad.detach().to(torch.float64))
    if not values:
        raise LandscapeError("the trajectory holds no point")
    return np.asarray(values), grads


HOLDS, FAILS, UNRESOLVED = 1.0, -1.0, 0.0  # star-convexity at one point, as stored (a float array)


def rounding_tolerance(f_a: float, f_b: float, precision: str = "fp64", examples: int = 1) -> float:
    """How far a difference F_a − F_b can be rounding: the noise floor of the larger of the two
    (``measure.noise_floor``: 64 eps of the precision × max(F, 1)) plus the bound of the float64
    sum over ``examples`` per-example losses (examples · eps64 · max(F, 1))."""
    from .measure import noise_floor

    scale = max(abs(f_a), abs(f_b), 1.0)
    return noise_floor(scale, precision) + examples * float(np.finfo(np.float64).eps) * scale


@dataclass
class StarConvexity:
    """Star-convexity of F toward θ_T at each point θ_t of a trajectory (θ_T itself excluded).

    ``inner`` = ⟨∇F_t(θ_t), θ_t − θ_T⟩ and ``gap`` = F_t(θ_t) − F_t(θ_T), both of ONE function F_t
    (the same F for every t, or θ_t's own, e.g. with θ_t's batch-norm statistics frozen);
    ``margin`` = inner − gap. ``status``: HOLDS where margin ≥ ``tolerance`` (the rounding floor of
    the F difference), FAILS where margin < −tolerance, UNRESOLVED in between. ``ratio`` =
    inner/gap where gap exceeds the tolerance (NaN elsewhere): a convex F gives ratio ≥ 1, a
    quadratic with minimum at θ_T exactly 2.
    """

    inner: np.ndarray
    gap: np.ndarray
    ratio: np.ndarray
    status: np.ndarray
    tolerance: np.ndarray
    target_values: np.ndarray
    indices: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.inner - self.gap

    @property
    def holds(self) -> np.ndarray:
        return self.status == HOLDS

    @property
    def target_value(self) -> float:
        """F(θ_T) of the first point's function (of every point's, with one function)."""
        return float(self.target_values[0]) if len(self.target_values) else float("nan")

    @property
    def holds_fraction(self) -> float:
        return float(np.mean(self.holds)) if len(self.status) else float("nan")

    @property
    def fails_fraction(self) -> float:
        return float(np.mean(self.status == FAILS)) if len(self.status) else float("nan")


def star_convexity(function, thetas, target: torch.Tensor | None = None, functions=None) -> StarConvexity:
    """Check ⟨∇F(θ_t), θ_t − θ_T⟩ ≥ F(θ_t) − F(θ_T) along ``thetas``; θ_T = ``target`` or the last point.

    ``functions`` (one per θ_t, optional): the function both sides of point t use, e.g. the
    objective with θ_t's batch-norm statistics frozen (``Objective.with_buffers``); F_t(θ_T) is
    then evaluated under it. Points equal to θ_T are skipped (both sides are 0 there). The
    tolerance is ``rounding_tolerance`` of each function's precision and example count.
    """
    thetas = list(thetas)
    target = thetas[-1] if target is None else target
    target64 = target.detach().to(torch.float64)
    kept = [i for i, t in enumerate(thetas) if not torch.equal(t.detach().to(torch.float64), target64)]
    fns = [function if functions is None else functions[i] for i in kept]
    shared = function.value_and_grad(target)[0] if functions is None else None
    inner, values, targets, tols = [], [], [], []
    for i, fn in zip(kept, fns):
        value, grad = fn.value_and_grad(thetas[i])
        grad = grad.detach().to(torch.float64)
        f_target = shared if shared is not None else fn.value_and_grad(target)[0]
        inner.append(float(grad @ (thetas[i].detach().to(grad) - target64.to(grad))))
        values.append(float(value))
        targets.append(float(f_target))
        tols.append(rounding_tolerance(float(value), float(f_target), getattr(fn, "precision", "fp64"),
                                       int(getattr(fn, "num_examples", 1))))
    return star_convexity_of(inner, values, targets, kept, tols)


def star_convexity_of(inner, values, target_value, indices=None, tolerance=0.0) -> StarConvexity:
    """The star-convexity test from numbers already computed: inner_t = ⟨∇F_t(θ_t), θ_t − θ_T⟩,
    values_t = F_t(θ_t) and F_t(θ_T) = ``target_value`` (one number, or one per point where each
    θ_t has its own function), judged against ``tolerance`` (one number or one per point)."""
    inner, values = np.asarray(inner, float), np.asarray(values, float)
    targets = np.broadcast_to(np.asarray(target_value, float), inner.shape).copy()
    tol = np.broadcast_to(np.asarray(tolerance, float), inner.shape).copy()
    gap = values - targets
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gap > tol, inner / np.where(gap > tol, gap, 1.0), np.nan)
    margin = inner - gap
    status = np.where(margin >= tol, HOLDS, np.where(margin < -tol, FAILS, UNRESOLVED))
    indices = np.arange(len(inner)) if indices is None else np.asarray(indices, dtype=np.int64)
    return StarConvexity(inner, gap, ratio, status, tol, targets, indices)


@dataclass
class PLStar:
    """The Polyak–Łojasiewicz ratio ‖∇F‖²/(F − F*) at each point, and its minimum μ.

    ``f_star`` is the F* used and ``f_star_rule`` how it was chosen; points with F − F* ≤ 0 get
    NaN and are left out of ``mu``.
    """

    ratio: np.ndarray
    grad_sq: np.ndarray
    excess: np.ndarray
    f_star: float
    f_star_rule: str

    @property
    def mu(self) -> float:
        finite = self.ratio[np.isfinite(self.ratio)]
        return float(finite.min()) if len(finite) else float("nan")


def pl_star(function, thetas, f_star: float | str = "zero") -> PLStar:
    """‖∇F(θ_t)‖²/(F(θ_t) − F*) along ``thetas``.

    F*: 'zero' (default) takes F* = 0, a lower bound on the minimum of any nonnegative loss, so
    the ratio reported is a lower bound on the true one (conservative); it is exactly the PL*
    condition of Liu, Zhu & Belkin for models that interpolate (the theorem's regime).
    'min' takes the lowest F seen along the trajectory, an upper bound on inf F (optimistic; the
    minimizing point itself then drops out). A number is used as given.
    """
    values, grads = _points(function, thetas)
    return pl_star_of(values, np.array([float(g @ g) for g in grads]), f_star)


def pl_star_of(values, grad_sq, f_star: float | str = "zero") -> PLStar:
    """The PL* ratios from F(θ_t) and ‖∇F(θ_t)‖² already computed (F* as in ``pl_star``)."""
    values, grad_sq = np.asarray(values, float), np.asarray(grad_sq, float)
    if f_star == "zero":
        star, rule = 0.0, "zero (lower bound of a nonnegative loss)"
    elif f_star == "min":
        star, rule = float(values.min()), "min (lowest F on the trajectory)"
    elif isinstance(f_star, (int, float)) and not isinstance(f_star, bool) and np.isfinite(f_star):
        star, rule = float(f_star), "given"
    else:
        raise LandscapeError(f"f_star must be 'zero', 'min' or a finite number, got {f_star!r}")
    excess = values - star
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(excess > 0, grad_sq / np.where(excess > 0, excess, 1.0), np.nan)
    return PLStar(ratio, grad_sq, excess, star, rule)


EXPONENT_MIN_POINTS = 3  # a power-law fit needs at least this many points with distinct F


def gradient_exponent(values, grad_sq, level: float = 0.95) -> dict:
    """The exponent p of ‖∇F‖² ≈ k·F^p: least squares of log ‖∇F‖² on log F, with its t-interval.

    PL (‖∇F‖² ≥ c·F with one c down to F = 0) needs p ≤ 1 as F → 0; cross-entropy near
    interpolation gives p ≈ 2 (‖∇F‖ and F both shrink with the margins), so ‖∇F‖²/F ∝ F → 0.
    Points with F ≤ 0 or ‖∇F‖² ≤ 0 or non-finite are left out (counted in ``dropped``). The
    interval assumes independent residuals: consecutive points of a training track are
    correlated, so read it as a lower bound on the uncertainty. No fit (p NaN, ``reason`` set)
    with fewer than EXPONENT_MIN_POINTS points or a single F.
    """
    F, G = np.asarray(list(values), float), np.asarray(list(grad_sq), float)
    keep = np.isfinite(F) & np.isfinite(G) & (F > 0) & (G > 0)
    x, y = np.log(F[keep]), np.log(G[keep])
    out = {"p": float("nan"), "low": float("nan"), "high": float("nan"), "k": float("nan"), "n": int(keep.sum()),
           "dropped": int((~keep).sum()), "level": level, "reason": None,
           "F_range": [float(F[keep].min()), float(F[keep].max())] if keep.any() else None}
    if len(x) < EXPONENT_MIN_POINTS or np.ptp(x) == 0:
        return {**out, "reason": f"{len(x)} point(s) with F > 0 and ‖∇F‖² > 0 over "
                                 f"{len(np.unique(x))} distinct F: a fit needs {EXPONENT_MIN_POINTS} and two F"}
    xc = x - x.mean()
    p = float(xc @ (y - y.mean()) / (xc @ xc))
    intercept = float(y.mean() - p * x.mean())
    dof = len(x) - 2
    se = float(np.sqrt(np.sum((y - intercept - p * x) ** 2) / dof / (xc @ xc))) if dof > 0 else float("inf")
    half = float(student.ppf(0.5 + level / 2, dof)) * se if dof > 0 else float("inf")
    return {**out, "p": p, "low": p - half, "high": p + half, "k": float(np.exp(intercept))}


@dataclass
class SharpnessRecord:
    """λ_max(H(θ)) estimated at one step, beside the gradient-descent stability limit 2/η."""

    step: int
    sharpness: float
    residual: float
    threshold: float
    matvecs: int

    @property
    def ratio(self) -> float:
        """λ_max/(2/η): above 1, gradient descent with step η is unstable along the top direction."""
        return self.sharpness / self.threshold

    @property
    def above(self) -> bool:
        return self.sharpness > self.threshold


@dataclass
class SharpnessTracker:
    """Follow λ_max along training cheaply: a few Lanczos steps, each run started from the last eigenvector.

    The top eigenvector moves little between nearby steps, so ``steps`` products (default 8)
    usually suffice once warm; the first call starts from a Gaussian vector drawn from ``seed``.
    Each run is the library's Lanczos (``landscape.curvature.top_eigenpairs`` with ``tol=0``: all
    ``steps`` products are spent unless the Krylov space becomes invariant, and the basis holds
    them all, with no restart) plus one product for the residual ‖Hv − λv‖, so a poor estimate
    shows. ``lr`` is the step size η; Cohen et al.'s edge of stability is λ_max hovering at 2/η.
    """

    lr: float
    steps: int = 8
    seed: int = 0
    history: list[SharpnessRecord] = field(default_factory=list)
    vector: np.ndarray | None = None

    def __post_init__(self):
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise LandscapeError(f"the step size must be a finite number > 0, got {self.lr}")

    def update(self, function, theta: torch.Tensor | None = None, step: int | None = None) -> SharpnessRecord:
        """Estimate λ_max(H(θ)), remember its eigenvector for the next call, and record it."""
        from .curvature import HessianOperator, top_eigenpairs

        op = HessianOperator(function, theta)
        v0 = self.vector if self.vector is not None else np.random.default_rng(self.seed).standard_normal(op.shape[0])
        steps = max(1, int(self.steps))
        pair = top_eigenpairs(op, 1, tol=0.0, max_matvecs=steps, max_basis=steps, v0=v0)[0]
        self.vector = pair.eigenvector
        record = SharpnessRecord(len(self.history) if step is None else step, pair.eigenvalue, pair.residual,
                                 2.0 / self.lr, op.matvecs)
        self.history.append(record)
        return record
