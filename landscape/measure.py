"""Measurements: questions asked of an Objective along directions. They return small dataclasses
(``Dominance``, ``Probe`` with its ``ProbeFit``, ``Surface``, ``SurfaceSummary``, ``Interpolation``,
``Monotonicity``, ``SecondOrder``): attributes for library users, ``as_dict()`` for the result files.

* gradient dominance: F, ‖∇F‖² (all and hidden parameters), their ratio, per-layer norms;
* semi-smoothness probes: f(t) = F(θ + t·u), r(t) = f(t) − f(0) − t·⟨∇F, u⟩ and the fit
  |r(t)| ≈ a·|t| + b·t² (a: ReLU kinks, b: smooth curvature);
* descent check along −∇F: actual decrease against the first-order prediction η·‖∇F‖;
* 2D surfaces on a plane and 1D interpolation between two points.

Every many-point evaluation whose points are known in advance (probes, surfaces,
interpolations) goes through ``evaluate_points``: it asks ``Objective.values`` for several
points per forward pass and hands finished points to a store (``results.Partial``) so an
interrupted measurement resumes without recomputing them; this module itself reads and writes
no files. Searches whose next point depends on the last (line and plane searches) evaluate
one point at a time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import linprog

from .directions import Direction
from .errors import LandscapeError
from .objective import Objective


# ----------------------------------------------------------------------------- results
class Result:
    """What the measurements return: attributes for library users, ``as_dict()`` for the result files.

    ``result[key]`` (and ``key in result``, ``get``, ``keys``, iteration over the keys) reads
    ``as_dict()``: the compatibility path for code written when these functions returned dicts.
    The results are frozen: a caller adding keys adds them to its own ``as_dict()`` copy.
    """

    def as_dict(self) -> dict:
        """The stored form, JSON-ready (a fresh copy)."""
        return asdict(self)

    def __getitem__(self, key: str):
        return self.as_dict()[key]

    def __contains__(self, key) -> bool:
        return key in self.as_dict()

    def __iter__(self):
        return iter(self.as_dict())

    def get(self, key: str, default=None):
        return self.as_dict().get(key, default)

    def keys(self):
        return self.as_dict().keys()


# ----------------------------------------------------------------------------- points
SAVE_EVERY_S = 2.0  # finished points reach disk at least this often (and on any interruption)

def evaluate_points(objective: Objective, coords: np.ndarray,
                    make_point: Callable[[np.ndarray], tuple[torch.Tensor, dict | None]],
                    store=None, progress=None, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """F and accuracy at each row of ``coords``; finished points are handed to ``store``.

    ``make_point(row)`` returns (θ, batch-norm buffers or None). The points not yet done go to
    ``objective.values`` in passes of ``objective.points_per_pass`` (at most ``chunk``, e.g. a
    surface's row). ``store`` (e.g. a ``results.Partial``) has ``load(coords)`` → (loss, acc,
    done) or None and ``save(coords, loss, acc, done)``: points it already holds are not
    recomputed, and finished points are handed to it every ``SAVE_EVERY_S`` seconds and when
    the loop is interrupted (a pass cut short loses only its own points).
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    saved = store.load(coords) if store is not None else None
    loss, acc, done = saved if saved is not None else (np.full(n, np.nan), np.full(n, np.nan),
                                                       np.zeros(n, dtype=bool))
    if progress is not None:
        progress.update(int(done.sum()))
    size = max(1, min(chunk or objective.points_per_pass, objective.points_per_pass))
    todo = np.flatnonzero(~done)
    last_save, unsaved = time.perf_counter(), 0
    try:
        for start in range(0, len(todo), size):
            idx = todo[start:start + size]
            thetas, buffers = zip(*(make_point(coords[i]) for i in idx))
            loss[idx], acc[idx] = objective.values(thetas, buffers=buffers)
            done[idx] = True
            unsaved += len(idx)
            if store is not None and time.perf_counter() - last_save > SAVE_EVERY_S:
                store.save(coords, loss, acc, done)
                last_save, unsaved = time.perf_counter(), 0
            if progress is not None:
                progress.update(len(idx))
    finally:  # an interruption (Ctrl-C, an error) keeps every finished point
        if store is not None and unsaved:
            store.save(coords, loss, acc, done)
    return loss, acc


def along(theta: torch.Tensor, *directions: Direction) -> Callable[[np.ndarray], tuple[torch.Tensor, None]]:
    """make_point for θ + Σ c_k d_k."""
    def make_point(c):
        point = theta.clone()
        for coef, d in zip(c, directions):
            point.add_(d.vector, alpha=float(coef))
        return point, None
    return make_point


# ----------------------------------------------------------------------------- gradient dominance
def _ratio(grad_sq: float, loss: float) -> float:
    """‖∇F‖²/F; at F = 0 it is +inf for a non-zero gradient and undefined (NaN, stored 'nan') for 0/0."""
    if loss > 0:
        return grad_sq / loss
    return float("inf") if grad_sq > 0 else float("nan")


@dataclass(frozen=True)
class Dominance(Result):
    """Gradient dominance at θ: F, ‖∇F‖² over all and hidden parameters, ‖∇F‖²/F, per-layer norms of ∇F,
    accuracies; ``test_loss``/``test_acc`` are None (and not stored) without a test objective."""

    F: float
    grad_sq: float
    grad_sq_hidden: float
    ratio: float
    ratio_hidden: float
    grad_norm: float
    theta_norm: float
    train_acc: float
    layer_grad_norms: dict
    test_loss: float | None = None
    test_acc: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        if self.test_loss is None:
            del out["test_loss"], out["test_acc"]
        return out


def gradient_dominance(objective: Objective, theta: torch.Tensor | None, hidden: Sequence[str],
                       test: Objective | None = None) -> tuple[Dominance, torch.Tensor]:
    """F, ‖∇F‖² over all and hidden parameters, ratio ‖∇F‖²/F, per-layer norms, accuracies."""
    theta = objective.theta0 if theta is None else theta
    start = time.perf_counter()
    loss, grad = objective.value_and_grad(theta)
    _, train_acc = objective.evaluate(theta)
    norms = objective.layer_norms(grad)
    grad_sq = float(grad.pow(2).sum())
    grad_sq_hidden = float(sum(norms[n] ** 2 for n in hidden if n in norms))
    test_loss, test_acc = test.evaluate() if test is not None else (None, None)
    return Dominance(F=loss, grad_sq=grad_sq, grad_sq_hidden=grad_sq_hidden, ratio=_ratio(grad_sq, loss),
                     ratio_hidden=_ratio(grad_sq_hidden, loss), grad_norm=grad_sq ** 0.5,
                     theta_norm=float(theta.norm()), train_acc=train_acc, layer_grad_norms=norms,
                     test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - start), grad


# ----------------------------------------------------------------------------- semi-smoothness
PROBE_MIN_POINTS = 4       # a fit rests on at least this many distinct |t| ...
PROBE_MIN_DECADES = 1.0    # ... spanning at least this many decades; otherwise the probe is 'not measured'
PROBE_SCOUT_PER_DECADE = 1  # scouting magnitudes per decade of the scouting range
PROBE_REFINE_ROUNDS = 3    # bisections (in log |t|) of each window edge; 3: edges to a factor 10^(1/8) ≈ 1.33


def default_steps(theta_norm: float, count: int = 10, smallest: float = 1e-5, largest: float = 0.05) -> np.ndarray:
    """t = 0 and ±(log-spaced magnitudes from smallest·‖θ‖ to largest·‖θ‖)."""
    mags = np.logspace(np.log10(smallest), np.log10(largest), count) * theta_norm
    return np.concatenate([-mags[::-1], [0.0], mags])


def noise_floor(f0: float, precision: str) -> float:
    """Residuals below this are rounding, not geometry: 64 machine epsilons of max(F, 1)."""
    eps = {"fp64": np.finfo(np.float64).eps, "fp32": np.finfo(np.float32).eps}.get(precision)
    if eps is None:
        raise LandscapeError("semi-smoothness residuals need fp32 or fp64, never bf16")
    return 64 * float(eps) * max(abs(f0), 1.0)


def fit_resolution(t: np.ndarray, r: np.ndarray, floor: float = 0.0, ceiling: float = np.inf) -> dict:
    """Which points a fit may use (t ≠ 0, floor < |r| ≤ ceiling, finite) and whether they resolve it.

    Resolved: at least PROBE_MIN_POINTS distinct |t| spanning at least PROBE_MIN_DECADES decades
    (fewer cannot tell a·|t| from b·t²). Returns ``use`` (a mask), resolved, reason (None when
    resolved), points, distinct |t|, their range and the decades it spans.
    """
    t, r = np.abs(np.asarray(t, float)), np.abs(np.asarray(r, float))
    use = (t > 0) & np.isfinite(r) & (r > floor) & (r <= ceiling)
    mags = np.unique(t[use])
    span = [float(mags[0]), float(mags[-1])] if len(mags) else None
    decades = float(np.log10(mags[-1] / mags[0])) if len(mags) else 0.0
    reason = None
    if len(mags) < PROBE_MIN_POINTS or decades < PROBE_MIN_DECADES:
        reason = (f"{len(mags)} distinct |t| spanning {decades:.2g} decades with rounding floor < |r| ≤ F: a fit needs "
                  f"{PROBE_MIN_POINTS} over {PROBE_MIN_DECADES:g} decade(s)")
    return {"use": use, "resolved": reason is None, "reason": reason, "points": int(use.sum()),
            "distinct_t": int(len(mags)), "t_range": span, "decades": decades}


@dataclass(frozen=True)
class ProbeFit(Result):
    """The tightest upper envelope |r(t)| ≤ a·|t| + b·t² (``fit_envelope``); a, b, rel_rms, envelope,
    active, a_resolution, a_resolved are None when it is not resolved (``reason`` says why), never 0.
    ``a_resolution`` is the smallest kink the fitted points could show (``kink_resolution``); an a with
    ``a_resolved`` False is no measurement: the probe bounds the kink by a_resolution, nothing less.
    ``sides``: each side's own envelope {'+': {a, b}, '-': {a, b}}; a and b are their maxima, so
    a·|t| + b·t² bounds both sides."""

    a: float | None
    b: float | None
    rel_rms: float | None
    envelope: float | None
    active: int | None
    a_resolution: float | None
    a_resolved: bool | None
    sides: dict | None
    resolved: bool
    reason: str | None
    points: int
    distinct_t: int
    t_range: list | None
    decades: float


ENVELOPE_ACTIVE_RTOL = 1e-9  # a point is on the envelope when the model is within this of |r| − floor
KINK_MIN_SHARE = 0.5  # a fitted a is resolved when a·|t| carries this share of |r| where |r|/|t| is least
KINK_EXCESS = 0.05  # ... and is at most this much above what the smallest steps show (|r|/|t| there)


def kink_resolution(t: np.ndarray, r: np.ndarray) -> float:
    """The smallest kink coefficient the points (t ≠ 0) could have shown: min |rᵢ|/|tᵢ|.

    Why: a kink a′·|t| below it lies under the measured |rᵢ| at every step (a′|tᵢ| < |rᵢ|), so curvature
    alone accounts for every point as well; the probe bounds a kink by this and cannot see a smaller one.
    For r = b₀t² it is b₀·t_lo (t_lo the smallest fitted |t|); for r = a₀|t| + b₀t² it is a₀ + b₀·t_lo.
    """
    t, r = np.abs(np.asarray(t, float)), np.abs(np.asarray(r, float))
    return float(np.min(r / t))


def kink_resolved(a: float, a_resolution: float) -> bool:
    """Whether a fitted kink a is a measurement of a kink at t = 0: KINK_MIN_SHARE·a_resolution ≤ a ≤
    (1 + KINK_EXCESS)·a_resolution. Below: at the step where |r|/|t| is least the kink term would carry
    less than that share of |r|, curvature explains it. Above: the smallest steps show |r|/|t| < a, so the
    envelope's linear term is bought by the far steps (a side that grows slower than t², as cross-entropy
    does once the logits saturate), not by a kink at 0; the kink at 0 is bounded by a_resolution. (a ≥
    a_resolution itself would reject every kink with curvature beside it: r = a₀|t| + b₀t² has a = a₀ <
    a_resolution = a₀ + b₀·t_lo.)"""
    return bool(KINK_MIN_SHARE * a_resolution <= a <= (1.0 + KINK_EXCESS) * a_resolution)


def envelope_coefficients(t: np.ndarray, r: np.ndarray, floor: float = 0.0) -> tuple[float, float]:
    """a, b ≥ 0 minimizing Σ (a·t + b·t²)/r subject to a·t + b·t² ≥ r − floor at every point
    (t > 0, r > floor ≥ 0).

    A linear programme (HiGHS dual simplex, so the answer is a vertex: its active constraints hold to
    rounding). The variables are scaled by the single-term bounds a₁ = max (r − floor)/t and
    b₁ = max (r − floor)/t², each feasible alone, so that both lie in [0, 1]; each row is scaled to
    a largest coefficient of 1.
    """
    need = r - floor
    a1, b1 = float(np.max(need / t)), float(np.max(need / t ** 2))
    rows = np.stack([t * a1 / need, t ** 2 * b1 / need], axis=1)
    scale = rows.max(axis=1)
    cost = np.array([a1 * np.sum(t / r), b1 * np.sum(t ** 2 / r)])
    sol = linprog(cost / cost.max(), A_ub=-rows / scale[:, None], b_ub=-1.0 / scale, bounds=[(0, None)] * 2,
                  method="highs-ds")
    if sol.status != 0:  # cannot happen (feasible, bounded); fall back to the better single-term bound
        return (a1, 0.0) if cost[0] <= cost[1] else (0.0, b1)
    return float(sol.x[0] * a1), float(sol.x[1] * b1)


def fit_envelope(t: np.ndarray, r: np.ndarray, floor: float = 0.0, ceiling: float = np.inf) -> ProbeFit:
    """The tightest upper envelope |r(t)| ≤ a·|t| + b·t² with a, b ≥ 0 (``envelope_coefficients``).

    Semi-smoothness claims a bound, so the fit is one: every fitted point lies under the model up to
    the rounding floor (the allowance keeps a point just above the floor at tiny |t| from forcing
    a ≈ floor/|t|, rounding posing as a kink), and the model is as low as it can be in relative terms
    (Σ model/|r|: every scale of |t| counts alike). Only points with floor < |r| ≤ ceiling are fitted:
    below the floor is rounding, above the ceiling (the probe passes F(θ)) the step has left the
    neighbourhood the local bound is about. An unresolved fit (``fit_resolution``) is 'not measured':
    resolved False, its reason, and a, b, rel_rms, envelope, active, a_resolution, a_resolved None — never 0.
    Each side of t = 0 gets its own envelope: the residual's odd terms (c·t³) flip sign at 0, so one curve
    for both sides would trade one side's super-quadratic growth against the other's saturation and call
    the compromise a kink. a and b are the larger of the two sides' (one bound for both), a_resolution the
    larger of the sides' resolutions (a one-sided kink may hide on the side that resolves less).

    Returns a, b, ``sides``, ``rel_rms`` = RMS of model/|r| − 1 over the fitted points (how loose the bound is,
    not a quality gate), ``envelope`` κ = max |r|/model (≤ max |r|/(|r| − floor): 1 up to rounding),
    ``active`` (points on the envelope), ``a_resolution`` (``kink_resolution`` of the fitted points),
    ``a_resolved`` (``kink_resolved``; False: a is below what the probe can see, so the kink is only
    bounded by a_resolution — not 0), the fitted points, distinct |t|, |t| range, decades.
    """
    signed = np.asarray(t, float)
    t, r = np.abs(signed), np.abs(np.asarray(r, float))
    res = fit_resolution(t, r, floor, ceiling)
    use = res.pop("use")
    if not res["resolved"]:
        return ProbeFit(a=None, b=None, rel_rms=None, envelope=None, active=None, a_resolution=None,
                        a_resolved=None, sides=None, **res)
    model, coefficients, resolutions = np.zeros(len(t)), {}, []
    for side, sign in (("+", 1.0), ("-", -1.0)):  # each side its own envelope: r's t³ term flips sign at 0
        here = use & (np.sign(signed) == sign)
        if not here.any():
            continue
        a_s, b_s = envelope_coefficients(t[here], r[here], floor)
        coefficients[side] = {"a": a_s, "b": b_s}
        model[here] = a_s * t[here] + b_s * t[here] ** 2
        resolutions.append(kink_resolution(t[here], r[here]))
    a = max(c["a"] for c in coefficients.values())
    b = max(c["b"] for c in coefficients.values())
    tu, ru, mu = t[use], r[use], model[use]
    active = int(np.sum(np.abs(mu - (ru - floor)) <= ENVELOPE_ACTIVE_RTOL * (ru - floor)))
    a_resolution = max(resolutions)  # a one-sided kink may hide on the side that resolves less
    return ProbeFit(a=a, b=b, rel_rms=float(np.sqrt(np.mean((mu / ru - 1.0) ** 2))),
                    envelope=float(np.max(ru / mu)), active=active, a_resolution=a_resolution,
                    a_resolved=kink_resolved(a, a_resolution), sides=coefficients, **res)


def _ratio_or_none(a: float | None, scale: float) -> float | None:
    """a / scale for a measured a and scale > 0; None for an unmeasured a, NaN for scale 0."""
    if a is None:
        return None
    return a / scale if scale > 0 else float("nan")


@dataclass(frozen=True, eq=False)
class Probe(Result):
    """A semi-smoothness probe: f(t) = F(θ + t·u), r(t) = f(t) − f(0) − t·⟨∇F, u⟩ at the steps ``t``
    (arrays t, f, r, acc), the envelope ``fit``, a/√F and a/‖∇F‖ (None when the fit is not measured),
    the adaptive ``window`` and, along −∇F, the ``descent`` check (None when absent, then not stored).

    ``as_dict()`` is the stored summary, ``arrays()`` the stored arrays; ``summary, arrays = probe``
    unpacks both (the compatibility path for the former (summary, arrays) return).
    """

    direction: dict
    F: float
    slope: float
    grad_norm: float
    noise_floor: float
    fit_ceiling: float
    fit: ProbeFit
    a_over_sqrt_F: float | None
    a_over_grad_norm: float | None
    max_abs_t: float
    evaluations: int
    t: np.ndarray
    f: np.ndarray
    r: np.ndarray
    acc: np.ndarray
    window: dict | None = None
    descent: dict | None = None

    def as_dict(self) -> dict:
        out = {"direction": dict(self.direction), "F": self.F, "slope": self.slope, "grad_norm": self.grad_norm,
               "noise_floor": self.noise_floor, "fit_ceiling": self.fit_ceiling, "fit": self.fit.as_dict(),
               "a_over_sqrt_F": self.a_over_sqrt_F, "a_over_grad_norm": self.a_over_grad_norm,
               "max_abs_t": self.max_abs_t, "evaluations": self.evaluations}
        extra = (("window", self.window), ("descent", self.descent))
        out.update({k: copy.deepcopy(v) for k, v in extra if v is not None})
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The evaluated steps, values, residuals and accuracies (stored beside the summary)."""
        return {"t": self.t, "f": self.f, "r": self.r, "acc": self.acc}

    def __iter__(self):
        return iter((self.as_dict(), self.arrays()))


def semi_smoothness_probe(objective: Objective, theta: torch.Tensor, grad: torch.Tensor,
                          direction: Direction, steps: np.ndarray, store=None, progress=None) -> Probe:
    """f(t), r(t) and the envelope fit along a unit direction on a given grid of t."""
    steps = np.asarray(steps, dtype=np.float64)
    if not np.any(steps == 0):
        raise LandscapeError("the step grid must contain t = 0")
    f, acc = evaluate_points(objective, steps[:, None], along(theta, direction), store, progress)
    return probe_summary(objective, grad, direction, steps, f, acc)


def probe_summary(objective: Objective, grad: torch.Tensor, direction: Direction, steps: np.ndarray,
                  f: np.ndarray, acc: np.ndarray, window: dict | None = None) -> Probe:
    """The residuals, the fit and both normalizations of a probe's evaluated points (t = 0 among them).

    a/√F is the theorem's form; a/‖∇F‖ is what a gradient step needs (it gains η‖∇F‖² and the
    kinks cost at most η·a·‖∇F‖). Both are None when the fit is not measured.
    """
    f0 = float(f[steps == 0][0])
    slope = float(grad.to(torch.float64) @ direction.vector.to(torch.float64))
    grad_norm = float(grad.to(torch.float64).norm())
    r = f - f0 - steps * slope
    floor = noise_floor(f0, objective.precision)
    fit = fit_envelope(steps, r, floor, ceiling=max(f0, floor))
    return Probe(direction=direction.describe(), F=f0, slope=slope, grad_norm=grad_norm, noise_floor=floor,
                 fit_ceiling=max(f0, floor), fit=fit,
                 a_over_sqrt_F=_ratio_or_none(fit.a, np.sqrt(f0) if f0 > 0 else 0.0),
                 a_over_grad_norm=_ratio_or_none(fit.a, grad_norm), max_abs_t=float(np.abs(steps).max()),
                 evaluations=int(len(steps)), t=steps, f=f, r=r, acc=acc, window=window,
                 descent=descent_check(steps, f, grad_norm) if direction.kind == "neg_gradient" else None)


def window_edges(mags: np.ndarray, r: np.ndarray, floor: float, ceiling: float) -> dict:
    """One side's window from its evaluated magnitudes (ascending) and residuals |r|.

    t_lo: the smallest magnitude with |r| > floor; t_hi: the largest magnitude below the first
    one beyond t_lo with |r| > ceiling (non-finite counts as above), or the largest evaluated.
    ``lo_bracket``/``hi_bracket``: the evaluated neighbours around each edge that a bisection
    can narrow (None when the edge is at the end of the evaluated range).
    """
    above = np.flatnonzero(r > floor)
    if not len(above):
        return {"t_lo": None, "t_hi": None, "lo_bracket": None, "hi_bracket": None}
    j = int(above[0])
    over = np.flatnonzero(~(r[j:] <= ceiling))
    h = j + int(over[0]) if len(over) else None
    lo_bracket = (float(mags[j - 1]), float(mags[j])) if j > 0 else None
    if h is None:
        return {"t_lo": float(mags[j]), "t_hi": float(mags[-1]), "lo_bracket": lo_bracket, "hi_bracket": None}
    hi_bracket = (float(mags[h - 1]), float(mags[h])) if h > 0 else None
    t_hi = float(mags[h - 1]) if h > j else None  # the first point above the floor is already over F
    return {"t_lo": float(mags[j]), "t_hi": t_hi, "lo_bracket": lo_bracket, "hi_bracket": hi_bracket}


def adaptive_probe(objective: Objective, theta: torch.Tensor, grad: torch.Tensor, direction: Direction,
                   count: int = 10, smallest: float = 1e-7, largest: float = 1.0,
                   refine: int = PROBE_REFINE_ROUNDS, store=None, progress=None) -> Probe:
    """A probe whose steps lie where the residual is geometry: between the rounding floor and F.

    1. Scout: t = 0 and ±(PROBE_SCOUT_PER_DECADE magnitudes per decade from smallest·‖θ‖ to
       largest·‖θ‖), one ``values`` pass.
    2. Per side, the window [t_lo, t_hi] of ``window_edges`` (t_lo: smallest |t| with |r| above
       the rounding floor; t_hi: the last |t| before |r| first exceeds F); ``refine`` rounds each
       evaluate the geometric midpoint of every edge's bracket (both edges, both sides in one
       pass) and recompute the window.
    3. Ladder: ``count`` log-spaced magnitudes from t_lo to t_hi on each side (``store`` keeps
       them resumable). The fit uses every evaluated point (scout, bisection, ladder).
    A side with no |r| above the floor, or whose first such point is already over F, adds no ladder.
    """
    make = along(theta, direction)
    norm = float(theta.norm())
    scout = default_steps(norm, max(2, int(round(np.log10(largest / smallest) * PROBE_SCOUT_PER_DECADE)) + 1),
                          smallest, largest)
    slope = float(grad.to(torch.float64) @ direction.vector.to(torch.float64))
    known = dict(zip(scout.tolist(), zip(*evaluate_points(objective, scout[:, None], make, None, progress))))
    f0 = known[0.0][0]
    floor = noise_floor(f0, objective.precision)
    ceiling = max(f0, floor)

    def windows():
        out = {}
        for side, sign in (("+", 1.0), ("-", -1.0)):
            mags = np.array(sorted(abs(t) for t in known if t * sign > 0))
            res = np.array([abs(known[sign * m][0] - f0 - sign * m * slope) for m in mags])
            out[side] = window_edges(mags, res, floor, ceiling)
        return out

    for _ in range(refine):
        edges = windows()
        mids = [sign * float(np.sqrt(b[0] * b[1])) for side, sign in (("+", 1.0), ("-", -1.0))
                for b in (edges[side]["lo_bracket"], edges[side]["hi_bracket"]) if b is not None]
        mids = [m for m in dict.fromkeys(mids) if m not in known]
        if not mids:
            break
        coords = np.array(mids)[:, None]
        known.update(zip(mids, zip(*evaluate_points(objective, coords, make, None, progress))))
    edges = windows()
    ladder = [sign * m for side, sign in (("+", 1.0), ("-", -1.0))
              if edges[side]["t_lo"] is not None and edges[side]["t_hi"] is not None
              for m in np.geomspace(edges[side]["t_lo"], edges[side]["t_hi"], count)]
    ladder = np.array(sorted(set(ladder) - set(known)), dtype=np.float64)  # its ends are evaluated already
    if len(ladder):
        known.update(zip(ladder.tolist(), zip(*evaluate_points(objective, ladder[:, None], make, store, progress))))
    steps = np.array(sorted(known), dtype=np.float64)
    f = np.array([known[t][0] for t in steps])
    acc = np.array([known[t][1] for t in steps])
    window = {side: {"t_lo": e["t_lo"], "t_hi": e["t_hi"]} for side, e in edges.items()}
    window.update(scout=[smallest * norm, largest * norm], refine_rounds=refine, ladder_per_side=count)
    return probe_summary(objective, grad, direction, steps, f, acc, window)


def descent_check(steps: np.ndarray, f: np.ndarray, grad_norm: float) -> dict:
    """Along −∇F/‖∇F‖: actual decrease F(θ) − F(θ − η·∇F/‖∇F‖) against η·‖∇F‖, over η > 0."""
    f0 = float(f[steps == 0][0])
    pos = steps > 0
    eta, dec = steps[pos], f0 - f[pos]
    best = int(np.argmax(dec))
    return {"eta": eta.tolist(), "decrease": dec.tolist(), "predicted": (eta * grad_norm).tolist(),
            "best_eta": float(eta[best]), "best_decrease": float(dec[best]),
            "best_fraction_of_F": float(dec[best] / f0) if f0 > 0 else float("nan"),
            "efficiency_at_best": float(dec[best] / (eta[best] * grad_norm)) if grad_norm > 0 else float("nan")}


# ----------------------------------------------------------------------------- surfaces
@dataclass(frozen=True, eq=False)
class Surface(Result):
    """F and accuracy on the grid θ + a·x + b·y: ``loss[j, i]`` at a = xs[i], b = ys[j] (rows y, columns x).
    ``as_dict()`` is the stored arrays (xs, ys, loss, acc)."""

    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray
    acc: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"xs": self.xs, "ys": self.ys, "loss": self.loss, "acc": self.acc}


@dataclass(frozen=True)
class GridBest(Result):
    """The largest decrease F(θ) − F found on (part of) a grid and where: a coordinate, or [x, y] anywhere."""

    decrease: float
    at: float | list


@dataclass(frozen=True)
class SurfaceSummary(Result):
    """How much lower than F(θ) a surface gets along x alone, along y alone, anywhere, and what y adds."""

    F: float
    along_x: GridBest
    along_y: GridBest
    anywhere: GridBest
    extra_from_y: float


def surface(objective: Objective, theta: torch.Tensor, x: Direction, y: Direction,
            xs: np.ndarray, ys: np.ndarray, store=None, progress=None) -> Surface:
    """F and accuracy on the grid θ + a·x + b·y, a ∈ xs, b ∈ ys (arrays shaped len(ys)×len(xs))."""
    grid = np.array([(a, b) for b in ys for a in xs], dtype=np.float64)
    loss, acc = evaluate_points(objective, grid, along(theta, x, y), store, progress, chunk=len(xs))
    shape = (len(ys), len(xs))
    return Surface(np.asarray(xs, float), np.asarray(ys, float), loss.reshape(shape), acc.reshape(shape))


def surface_summary(result: Surface | Mapping) -> SurfaceSummary:
    """How much lower than F(θ) the grid gets: along x alone, along y alone, anywhere.

    ``result``: a ``Surface``, or a mapping with its keys xs, ys, loss (as ``surface`` returned before)."""
    if isinstance(result, Mapping):
        result = Surface(np.asarray(result["xs"]), np.asarray(result["ys"]), np.asarray(result["loss"]))
    xs, ys, loss = result.xs, result.ys, result.loss
    ix0, iy0 = int(np.argmin(np.abs(xs))), int(np.argmin(np.abs(ys)))
    f0 = float(loss[iy0, ix0])
    row, col = loss[iy0, :], loss[:, ix0]
    iy, ix = np.unravel_index(int(np.argmin(loss)), loss.shape)

    def best(values, coords):
        i = int(np.argmin(values))
        return GridBest(f0 - float(values[i]), float(coords[i]))

    return SurfaceSummary(F=f0, along_x=best(row, xs), along_y=best(col, ys),
                          anywhere=GridBest(f0 - float(loss[iy, ix]), [float(xs[ix]), float(ys[iy])]),
                          extra_from_y=float(row.min()) - float(loss.min()))


# ----------------------------------------------------------------------------- interpolation
def interpolate_buffers(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1−α)·a + α·b for floating batch-norm statistics; counters are taken from a."""
    return {n: (torch.lerp(a[n], b[n].to(a[n]), alpha) if a[n].is_floating_point() else a[n]) for n in a}


@dataclass(frozen=True, eq=False)
class Interpolation(Result):
    """F and accuracy at θ(α) = (1−α)·θ_a + α·θ_b for each α (``as_dict()``: the arrays alpha, loss, acc)."""

    alpha: np.ndarray
    loss: np.ndarray
    acc: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"alpha": self.alpha, "loss": self.loss, "acc": self.acc}


@dataclass(frozen=True)
class Monotonicity(Result):
    """Whether F is non-increasing on α ∈ [0, 1], and its largest bump above the running minimum and where."""

    monotone: bool
    largest_bump: float
    bump_at: float


def interpolation(objective: Objective, theta_a: torch.Tensor, theta_b: torch.Tensor,
                  alphas: np.ndarray, buffers_a: dict | None = None, buffers_b: dict | None = None,
                  store=None, progress=None) -> Interpolation:
    """F and accuracy at θ(α) = (1−α)·θ_a + α·θ_b.

    Batch norm follows the objective's policy; with ``buffers_a``/``buffers_b`` given (and a
    'frozen' objective) the running statistics are interpolated the same way as the weights.
    """
    theta_a = theta_a.to(objective.device, objective.dtype)
    theta_b = theta_b.to(objective.device, objective.dtype)
    if (buffers_a is None) != (buffers_b is None):
        raise LandscapeError("interpolated statistics need the buffers of both ends")

    def make_point(c):
        alpha = float(c[0])
        point = torch.lerp(theta_a, theta_b, alpha)  # exact at α = 0 and α = 1
        bufs = interpolate_buffers(buffers_a, buffers_b, alpha) if buffers_a is not None else None
        return point, bufs

    loss, acc = evaluate_points(objective, np.asarray(alphas, float)[:, None], make_point, store, progress)
    return Interpolation(np.asarray(alphas, float), loss, acc)


def monotonicity(alphas: np.ndarray, loss: np.ndarray) -> Monotonicity:
    """Is the loss non-increasing on α ∈ [0, 1]? The largest bump above the running minimum."""
    inside = (alphas >= 0) & (alphas <= 1)
    seg = loss[inside]
    running_min = np.minimum.accumulate(seg)
    bumps = seg - running_min
    return Monotonicity(monotone=bool(np.all(np.diff(seg) <= 1e-9 * np.maximum(1.0, np.abs(seg[:-1])))),
                        largest_bump=float(bumps.max()) if len(bumps) else 0.0,
                        bump_at=float(alphas[inside][int(np.argmax(bumps))]) if len(bumps) else float("nan"))


# ----------------------------------------------------------------------------- second-order test
LINE_SEARCH_RTOL = 1e-3      # bracketing line searches locate the best step to this relative precision
PLANE_MAX_EVALUATIONS = 40   # of the Nelder–Mead search in the plane
PLANE_FTOL = 1e-7            # relative change of F below which the plane search stops (fp32 rounding)
SEARCH_RULE = ("every search keeps its best evaluated point: line searches stop at the nearest local maximum of "
               "the decrease, the plane search (Nelder-Mead from the best gradient step) after its budget; every "
               "direction, the controls included, gets the same searches, budget and starting rule")


def unresolved(bound: float | None, side: str = "below", why: str = "") -> dict:
    """A number a search could not resolve, stored as its bound (the true value lies ``side`` it)."""
    return {"resolved": False, "bound": None if bound is None else float(bound), "side": side, "why": why}


def resolved_value(x) -> float | None:
    """A stored number as a float, or None where it is ``unresolved``."""
    return None if isinstance(x, dict) else float(x)


class _Counted:
    """f(a, b) on the plane θ + a·x + b·y, memoized; the points with b = 0 (the gradient line, the
    same for every y) live in ``axis``, which several planes of one test share."""

    def __init__(self, f: Callable[[float, float], float], axis: dict | None = None):
        self.f, self.seen, self.axis = f, {}, ({} if axis is None else axis)

    def _store(self, key):
        return self.axis if key[1] == 0.0 else self.seen

    def __call__(self, a: float, b: float) -> float:
        return self.many([(a, b)])[0]

    def many(self, points) -> list[float]:
        """f at several points, the new ones in one call of ``f.many`` where f has it (Objective.values)."""
        keys = [(float(a), float(b)) for a, b in points]
        todo = [k for k in dict.fromkeys(keys) if k not in self._store(k)]
        if todo:
            values = f_many(todo) if (f_many := getattr(self.f, "many", None)) else [self.f(*k) for k in todo]
            for k, v in zip(todo, values):
                self._store(k)[k] = float(v)
        return [self._store(k)[k] for k in keys]

    @property
    def count(self) -> int:
        return len(self.seen) + len(self.axis)

    def best(self) -> tuple[float, tuple[float, float]]:
        """The lowest value seen (on the axis too) and where."""
        both = {**self.axis, **self.seen}
        point = min(both, key=both.get)
        return both[point], point


def max_decrease_along(f: Callable[[float], float], f0: float, start: float,
                       rtol: float = LINE_SEARCH_RTOL, max_evaluations: int = 80) -> dict:
    """max over s > 0 of f0 − f(s), by bracketing and Brent's method (to ``rtol`` relative in s).

    Starts at ``start`` and shrinks it until f decreases (no decrease down to start·1e-4: 0,
    status 'no decrease'), then doubles the step until f rises again, so the best step lies
    inside the bracket; Brent then refines it. This finds the first local maximum of the
    decrease beyond the bracket's start: on a function with several dips it is the nearest one,
    as a line search would take. The decrease is that of the best point evaluated. ``status``:
    'bracketed', 'plateau' (equal values, nothing to refine), 'no decrease' or 'unbracketed'
    (still falling when the evaluations ran out: the decrease is a lower bound).
    """
    from scipy.optimize import minimize_scalar

    values: dict[float, float] = {}

    def g(s):
        if s not in values:
            values[s] = float(f(s))
        return values[s]

    def done(status, bracket):
        best_s = min(values, key=values.get)
        return {"decrease": f0 - values[best_s], "step": best_s, "evaluations": len(values), "bracket": bracket,
                "status": status}

    s = float(start)
    while g(s) >= f0 and s > start * 1e-4 and len(values) < max_evaluations:
        s /= 4.0
    if g(s) >= f0:
        return {"decrease": 0.0, "step": 0.0, "evaluations": len(values), "bracket": None, "status": "no decrease"}
    lo, mid, hi = 0.0, s, 2.0 * s
    while g(hi) <= g(mid) and len(values) < max_evaluations:
        lo, mid, hi = mid, hi, 2.0 * hi
    if g(hi) <= g(mid):  # still falling after the budget: report the best seen, unbracketed
        return done("unbracketed", None)
    if lo > 0.0 and not g(mid) < g(lo):  # a plateau (equal values, e.g. at F's rounding floor): nothing to refine
        return done("plateau", [lo, hi])
    minimize_scalar(lambda v: f0 if v == 0.0 else g(v), bracket=(lo, mid, hi), method="brent",
                    tol=rtol, options={"maxiter": max_evaluations})
    return done("bracketed", [lo, hi])


def line_decrease(search: dict, floor: float) -> float | dict:
    """A line search's decrease as a number, or ``unresolved`` with its bound: still falling when
    the evaluations ran out (at least the best seen), or below the rounding floor of F (no
    decrease found, or one smaller than ``floor``; with floor 0 'no decrease' is the value 0)."""
    if search["status"] == "unbracketed":
        return unresolved(search["decrease"], "above", "the line search was still falling when its evaluations ran out")
    if floor > 0 and search["decrease"] < floor:
        return unresolved(floor, "below", "below the rounding floor of F (64 eps x max(F, 1))")
    return float(search["decrease"])


def plane_search(counted: _Counted, f0: float, a0: float, scale: float, rtol: float, max_evaluations: int) -> dict:
    """The searches of one plane θ + a·x + b·y, x's best step ``a0`` known: the line search along
    ±y (both signs), then Nelder–Mead from (a0, 0), (1.1·a0, 0) and (a0, ±b0) towards the better
    sign of y, b0 = max(best step along y, 0.1·a0). Every evaluated point counts for d_plane."""
    from scipy.optimize import minimize

    counted.many([(0.0, scale), (0.0, -scale)])
    lines = [max_decrease_along(lambda b, sgn=sgn: counted(0.0, sgn * b), f0, scale, rtol) for sgn in (1.0, -1.0)]
    best = max(lines, key=lambda r: r["decrease"])
    b0 = max(best["step"], 0.1 * a0)
    up, down = counted.many([(a0, b0), (a0, -b0)])
    sign = 1.0 if up <= down else -1.0  # the better side of y, then one local search
    simplex = np.array([[a0, 0.0], [1.1 * a0, 0.0], [a0, sign * b0]])
    counted.many(simplex)
    res = minimize(lambda z: counted(z[0], z[1]), simplex[0], method="Nelder-Mead",
                   options={"initial_simplex": simplex, "xatol": rtol * a0, "fatol": PLANE_FTOL * max(abs(f0), 1.0),
                            "maxfev": max_evaluations})
    f_best, (a_best, b_best) = counted.best()
    return {"line": best, "line_sign": 1.0 if best is lines[0] else -1.0, "d_plane": f0 - f_best,
            "plane_at": [a_best, b_best], "evaluations": counted.count,
            "plane_search": {"sign_of_y": sign, "evaluations": int(res.nfev), "converged": bool(res.success)}}


def extra_decrease(d_plane: float, grad: dict, d_grad, floor: float) -> tuple[float | dict, float | dict]:
    """(d_plane − d_grad, that over d_grad), each a number or ``unresolved`` with its bound.

    ``grad`` is the gradient line search (its best seen decrease), ``d_grad`` its resolved form."""
    raw = grad["decrease"]
    extra = d_plane - raw  # ≥ 0: the plane's candidates include the gradient line's points
    extra_value = extra if extra >= floor else unresolved(floor, "below", "below the rounding floor of F")
    if raw <= 0 or (isinstance(d_grad, dict) and d_grad["side"] == "below"):
        return extra_value, unresolved(None, "below", "d_grad is not resolved: no denominator")
    if isinstance(d_grad, dict):  # d_grad at least raw: the fraction is at most this
        return extra_value, unresolved(max(extra, floor) / raw, "below", "d_grad was still growing")
    if isinstance(extra_value, dict):
        return extra_value, unresolved(floor / raw, "below", "the extra decrease is below the rounding floor of F")
    return extra, extra / raw


@dataclass(frozen=True)
class SecondOrder(Result):
    """The grid-free second-order test (``second_order_test``). Each decrease is a number or, where a
    search could not resolve it, an ``unresolved`` dict with its bound. d_grad (gradient line),
    d_curv (along y, best step ``curv_step``), d_plane (best point of the plane), extra = d_plane − d_grad
    and extra_fraction = extra/d_grad; ``controls`` maps each control direction's name to the same
    entries for its plane (d_dir, dir_step, d_plane, plane_at, extra, extra_fraction, ...)."""

    F: float
    d_grad: float | dict
    grad_step: float
    grad_search: str
    d_curv: float | dict
    curv_step: float
    d_plane: float
    plane_at: list
    extra: float | dict
    extra_fraction: float | dict
    evaluations: int
    plane_converged: bool
    plane_search: dict
    line_search_rtol: float
    rounding_floor: float
    search_rule: str
    bracketed: bool
    controls: dict


def second_order_test(f: Callable[[float, float], float], scale: float, rtol: float = LINE_SEARCH_RTOL,
                      max_evaluations: int = PLANE_MAX_EVALUATIONS, controls: dict | None = None,
                      precision: str | None = None) -> SecondOrder:
    """How much the curvature direction adds to the gradient step, with no grid, beside controls.

    ``f(a, b)`` is F on the plane θ + a·x + b·y, x the unit negative gradient and y the unit
    most-negative-curvature direction orthogonal to x; ``controls`` maps names to the same kind
    of function with y replaced by another unit direction orthogonal to x (random, the top
    eigenvector); ``scale`` is a first step length. d_grad = max over a > 0 of F(θ) − f(a, 0)
    (one line search, shared); for each y: d_curv = max over b of F(θ) − f(0, b) (both signs) and
    d_plane = the best point of ``plane_search`` (never below d_grad or d_curv), extra =
    d_plane − d_grad. Functions with a ``many`` method get the points known in advance at once.
    With ``precision`` ('fp32'/'fp64'), decreases below ``noise_floor`` are stored ``unresolved``.
    """
    axis: dict = {}
    main = _Counted(f, axis)
    f0 = main(0.0, 0.0)
    floor = noise_floor(f0, precision) if precision else 0.0
    grad = max_decrease_along(lambda a: main(a, 0.0), f0, scale, rtol)
    d_grad = line_decrease(grad, floor)
    a0 = grad["step"] if grad["step"] > 0 else scale

    def direction(counted):
        p = plane_search(counted, f0, a0, scale, rtol, max_evaluations)
        extra, fraction = extra_decrease(p["d_plane"], grad, d_grad, floor)
        return {"d_dir": line_decrease(p["line"], floor), "dir_step": p["line_sign"] * p["line"]["step"],
                "d_plane": p["d_plane"], "plane_at": p["plane_at"], "extra": extra, "extra_fraction": fraction,
                "evaluations": p["evaluations"], "plane_converged": p["plane_search"]["converged"],
                "plane_search": p["plane_search"]}

    y = direction(main)
    return SecondOrder(F=f0, d_grad=d_grad, grad_step=grad["step"], grad_search=grad["status"],
                       d_curv=y.pop("d_dir"), curv_step=y.pop("dir_step"), **y, line_search_rtol=rtol,
                       rounding_floor=floor, search_rule=SEARCH_RULE,
                       bracketed=grad["status"] in ("bracketed", "plateau"),
                       controls={name: direction(_Counted(fc, axis)) for name, fc in (controls or {}).items()})


def plane_points(objective: Objective, theta: torch.Tensor, x: Direction, ys: Sequence[Direction],
                 progress=None) -> Callable[[np.ndarray], np.ndarray]:
    """F at rows (k, a, b) meaning θ + a·x + b·y_k, several points per pass (``Objective.values``)."""
    makers = [along(theta, x, y) for y in ys]

    def evaluate(rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        values, _ = objective.values((makers[int(k)]((a, b))[0] for k, a, b in rows), progress)
        return values
    return evaluate


class Plane:
    """F(θ + a·x + b·y_k) for one k of a ``plane_points`` family: f(a, b), or f.many([(a, b), ...])."""

    def __init__(self, evaluate: Callable[[np.ndarray], np.ndarray], k: int = 0):
        self.evaluate, self.k = evaluate, k

    def __call__(self, a: float, b: float) -> float:
        return self.many([(a, b)])[0]

    def many(self, points) -> list[float]:
        rows = np.array([[self.k, a, b] for a, b in points], dtype=np.float64).reshape(-1, 3)
        return [float(v) for v in self.evaluate(rows)]


def plane_function(objective: Objective, theta: torch.Tensor, x: Direction, y: Direction,
                   progress=None) -> Plane:
    """F(θ + a·x + b·y) as a function of (a, b) (with ``many`` for several points per pass)."""
    return Plane(plane_points(objective, theta, x, [y], progress))
