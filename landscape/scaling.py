"""How a quantity scales with width: one slope definition, its bootstrap interval, and the theory's predictions.

* ``fit_slope``: the exponent p of q ∝ width^p, the least-squares slope of log q on log width over
  every (width, seed) point, with a 95 % interval (seed bootstrap ∪ the fit's t interval). The
  one slope for every figure line and every table entry of a width sweep.
* ``judge``: the slope's interval against a ``Prediction`` (a direction or an exponent band).
* ``PREDICTIONS`` / ``predictions``: what Allen-Zhu, Li & Song (2019) imply for each quantity a sweep
  reports, in the sweep's parametrization (standard initialization, W_l entries N(0, 2/m)), each
  with its one-line derivation.
* ``theorem_lr``: the theorem's step size η ∝ 1/m relative to a base width.

Pure functions of numbers; no file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import LandscapeError

RESAMPLES = 2000     # bootstrap resamples of the seeds
LEVEL = 0.95         # two-sided percentile interval
MIN_WIDTHS = 3       # two widths fit any line exactly: a slope needs three
TOLERANCE = 0.25     # default half-width of an exponent band (see Prediction)
FLAT_SLOPE = 0.1     # |slope| up to this counts as flat for 'does not increase'
VERDICTS = ("agrees", "disagrees", "inconclusive", "uninformative")


@dataclass
class Slope:
    """The exponent p of q ∝ width^p fitted over every (width, seed) point, and its 95 % interval.

    ``slope``/``intercept``: log q ≈ intercept + slope·log width by least squares over the points
    kept (finite, > 0). ``low``/``high``: the interval judged, the union of ``boot_low``/``boot_high``
    (percentile interval of the slopes of ``resamples`` bootstrap resamples of the seeds; NaN
    with one seed) and ``t_low``/``t_high`` (the pooled fit's t interval, points − 2 degrees of
    freedom); ``fit_slope`` says why both. ``points``/``widths``/``seeds``: what the fit rests on.
    ``dropped``: values ≤ 0 left off the log scale; ``missing``: NaN/inf cells. ``per_seed``: each
    seed's own slope (NaN below ``MIN_WIDTHS`` widths). ``width_values``/``centers``: each width
    with a kept point and the geometric mean of its kept values (what a figure draws; with every
    seed at every width the fitted line passes through their log-mean). ``reason``: why there is
    no slope ('' when there is).
    """

    slope: float
    intercept: float
    low: float
    high: float
    points: int
    widths: int
    seeds: int
    dropped: int
    missing: int
    per_seed: dict = field(default_factory=dict)
    width_values: list = field(default_factory=list)
    centers: list = field(default_factory=list)
    boot_low: float = float("nan")
    boot_high: float = float("nan")
    t_low: float = float("nan")
    t_high: float = float("nan")
    resamples: int = 0
    level: float = LEVEL
    reason: str = ""

    @property
    def informative(self) -> bool:
        return not self.reason

    def describe(self, axis: str = "widths") -> str:
        """'0.71 [0.62, 0.80] (30 points, 6 widths × 5 seeds; 2 values ≤ 0 dropped)' or the reason;
        ``axis``: the plural noun of what was fitted against ('sizes', 'depths')."""
        if not self.informative:
            return self.reason.replace("widths", axis).replace("width", axis.rstrip("s"))
        interval = f" [{self.low:.3g}, {self.high:.3g}]"
        note = f"; {self.dropped} value{'s' * (self.dropped != 1)} ≤ 0 dropped" if self.dropped else ""
        return (f"{self.slope:.3g}{interval} ({self.points} points, {self.widths} {axis} × "
                f"{self.seeds} seeds{note})")


def _as_table(widths, values_by_seed) -> tuple[np.ndarray, list, np.ndarray]:
    """(widths, seed labels, seeds × widths array) from a mapping seed → values or a 2-D array."""
    w = np.asarray(widths, dtype=np.float64)
    if isinstance(values_by_seed, Mapping):
        seeds = list(values_by_seed)
        rows = [np.asarray(values_by_seed[s], dtype=np.float64) for s in seeds]
        table = np.stack(rows) if rows else np.empty((0, len(w)))
    else:
        table = np.atleast_2d(np.asarray(values_by_seed, dtype=np.float64))
        seeds = list(range(table.shape[0]))
    if w.ndim != 1 or table.ndim != 2 or table.shape[1] != len(w) or table.shape[0] == 0:
        raise LandscapeError(f"need one value per width for each seed: {len(w)} widths, "
                             f"values shaped {table.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise LandscapeError(f"widths must be finite and > 0, got {w.tolist()}")
    return w, seeds, table


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y on x; NaN when x has a single value."""
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _bootstrap(xs: list[np.ndarray], ys: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """Slopes of the pooled fit over ``resamples`` draws of the seeds with replacement.

    A draw is a vector of counts (how often each seed's curve enters); the pooled least-squares
    slope is computed from count-weighted sums, so no data are copied. Draws whose points span
    a single width (a seed with one kept width, drawn alone) have no slope and are left out.
    """
    centre = np.mean(np.concatenate(xs))
    sums = np.array([[len(x), np.sum(x - centre), np.sum(y), np.sum((x - centre) ** 2), np.sum((x - centre) * y)]
                     for x, y in zip(xs, ys)])  # seeds × (n, Σx, Σy, Σx², Σxy)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(xs), np.full(len(xs), 1.0 / len(xs)), size=resamples)
    n, sx, sy, sxx, sxy = (counts @ sums).T
    denom = n * sxx - sx ** 2
    ok = denom > 1e-12 * np.maximum(n * sxx, 1e-300)
    return (n[ok] * sxy[ok] - sx[ok] * sy[ok]) / denom[ok]


def _t_interval(x: np.ndarray, y: np.ndarray, slope: float, intercept: float, level: float) -> tuple[float, float]:
    """The slope's t interval from the residuals of the pooled fit (cells taken as independent)."""
    from scipy.stats import t as student

    resid = y - (intercept + slope * x)
    se = math.sqrt(float(np.sum(resid ** 2)) / (len(x) - 2) / float(np.sum((x - x.mean()) ** 2)))
    half = float(student.ppf(0.5 + level / 2, len(x) - 2)) * se
    return slope - half, slope + half


def fit_slope(widths, values_by_seed, *, resamples: int = RESAMPLES, level: float = LEVEL,
              seed: int = 0) -> Slope:
    """The slope of log q on log width over every (width, seed) point, with its 95 % interval.

    ``values_by_seed``: a mapping seed → values aligned with ``widths`` (NaN for a missing cell),
    or a seeds × widths array. Why the pooled fit: it uses every measurement and needs no
    imputation when a cell is missing; with lognormal noise it is the natural estimator of a
    power law; and when every seed has every width it equals both the slope through the
    per-width geometric means and the mean of the seeds' own slopes. The interval is the union
    of two: the seed bootstrap (each seed's whole curve resampled with replacement, ``resamples``
    draws from a generator seeded by ``seed``, percentile interval), which sees seed-level
    effects but, with few seeds, badly under-covers (two seeds give the range of two slopes);
    and the pooled fit's t interval, right when cells are independent and which also widens
    when the points leave a power law. Coverage of the true exponent measured on synthetic
    sweeps (lognormal cell noise σ = 0.3): bootstrap alone 54 % at 2 seeds × 4 widths, 79 % at
    3 × 4, 84 % at 5 × 6; the union 95 %, 94 %, 95 % (90 % when the seeds' own exponents also
    spread by 0.2). Values ≤ 0 cannot go on a log scale: they are dropped and counted (a caveat:
    a decreasing quantity that reaches 0 loses exactly the points that show it). No slope
    (``reason`` set) when every value is 0, none is finite, or fewer than ``MIN_WIDTHS`` widths
    keep a value > 0.
    """
    w, seeds, table = _as_table(widths, values_by_seed)
    finite = np.isfinite(table)
    keep = finite & (table > 0)
    dropped, missing = int(np.sum(finite & ~keep)), int(np.sum(~finite))
    grid = np.broadcast_to(w, table.shape)
    nwidths = len(np.unique(grid[keep]))
    empty = Slope(float("nan"), float("nan"), float("nan"), float("nan"), int(keep.sum()), nwidths,
                  int(keep.any(axis=1).sum()), dropped, missing, level=level)
    if not finite.any():
        return replace(empty, reason="undefined at every cell")
    if not keep.any() and np.all(table[finite] == 0):
        return replace(empty, reason="0 at every cell with a value")
    if nwidths < MIN_WIDTHS:
        return replace(empty, reason=f"only {nwidths} width{'s' * (nwidths != 1)} with a value > 0 "
                                     f"({dropped} ≤ 0, {missing} undefined): a slope needs {MIN_WIDTHS}")
    logw, logq = np.log(w), np.log(np.where(keep, table, 1.0))
    x, y = np.log(grid[keep]), logq[keep]
    slope, intercept = _ols(x, y)
    t_low, t_high = _t_interval(x, y, slope, intercept, level)
    per_seed = {s: (_ols(logw[keep[i]], logq[i][keep[i]])[0] if keep[i].sum() >= MIN_WIDTHS else float("nan"))
                for i, s in enumerate(seeds)}
    used = [i for i in range(len(seeds)) if keep[i].any()]
    draws = _bootstrap([logw[keep[i]] for i in used], [logq[i][keep[i]] for i in used], resamples, seed) \
        if len(used) >= 2 else np.empty(0)
    boot_low, boot_high = (float(v) for v in np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])) \
        if len(draws) else (float("nan"), float("nan"))
    cols = keep.any(axis=0)
    centers = [float(np.exp(np.mean(logq[keep[:, j], j]))) for j in np.flatnonzero(cols)]
    return replace(empty, slope=slope, intercept=intercept, low=float(np.nanmin([t_low, boot_low])),
                   high=float(np.nanmax([t_high, boot_high])), per_seed=per_seed, width_values=w[cols].tolist(),
                   centers=centers, boot_low=boot_low, boot_high=boot_high, t_low=t_low, t_high=t_high,
                   resamples=len(draws))


def by_seed(rows, quantity: str, widths, seeds, width_key: str = "width", seed_key: str = "seed") -> dict:
    """seed → the values of ``quantity`` aligned with ``widths`` (NaN where a cell is absent), from row dicts."""
    cell = {(r[width_key], r[seed_key]): r.get(quantity) for r in rows}
    return {s: [float("nan") if cell.get((w, s)) is None else float(cell[(w, s)]) for w in widths] for s in seeds}


# ---------------------------------------------------------------------------------------------- judging
DIRECTIONS = ("increases", "decreases", "does not increase")


@dataclass(frozen=True)
class Prediction:
    """What the theory says about a quantity's slope p = d log q / d log width.

    Either a ``direction`` alone ('increases': p > 0, 'decreases': p < 0, 'does not increase':
    p ≤ ``flat``), or an ``exponent`` e with ``bound`` 'equal' (p ∈ [e − tol, e + tol]),
    'at_least' (p ≥ e − tol: the theory bounds q below by a multiple of m^e) or 'at_most'
    (p ≤ e + tol: bounded above). The tolerance absorbs what a bound's constants hide at finite
    width; a √log m factor alone shifts the local slope by 1/(2 ln m) ≈ 0.1 at m = 64 to 512.
    ``direction`` is then the sign the exponent implies (None when it implies none); the band
    is the intersection of both.
    """

    direction: str | None
    exponent: float | None = None
    bound: str = "equal"
    tolerance: float = TOLERANCE
    flat: float = FLAT_SLOPE
    derivation: str = ""

    def __post_init__(self):
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise LandscapeError(f"unknown direction {self.direction!r}: use {', '.join(DIRECTIONS)}")
        if self.bound not in ("equal", "at_least", "at_most"):
            raise LandscapeError(f"unknown bound {self.bound!r}: use equal, at_least or at_most")
        if self.direction is None and self.exponent is None:
            raise LandscapeError("a prediction needs a direction or an exponent")

    def band(self) -> tuple[float, float, bool, bool]:
        """(low, high, low open, high open): the slopes the prediction allows.

        With both an exponent and a direction, the intersection of the two: a tolerance never
        lets a 'decreases' prediction accept a rising quantity.
        """
        if self.direction == "increases":
            side = (0.0, math.inf, True, False)
        elif self.direction == "decreases":
            side = (-math.inf, 0.0, False, True)
        elif self.direction == "does not increase":
            side = (-math.inf, self.flat, False, False)
        else:
            side = (-math.inf, math.inf, False, False)
        if self.exponent is None:
            return side
        e, t = self.exponent, self.tolerance
        low = -math.inf if self.bound == "at_most" else e - t
        high = math.inf if self.bound == "at_least" else e + t
        lo, lo_open = (side[0], side[2]) if side[0] >= low else (low, False)
        hi, hi_open = (side[1], side[3]) if side[1] <= high else (high, False)
        return lo, hi, lo_open, hi_open

    def sign(self) -> Prediction | None:
        """The direction alone, without the exponent (None when the prediction has no direction)."""
        return None if self.direction is None else replace(self, exponent=None)

    def describe(self) -> str:
        if self.exponent is None:
            return self.direction
        rel = {"equal": "≈", "at_least": "≥", "at_most": "≤"}[self.bound]
        return f"slope {rel} {self.exponent:.3g} (± {self.tolerance:g})"


def judge(slope: Slope, prediction: Prediction | str) -> str:
    """'agrees', 'disagrees', 'inconclusive' or 'uninformative': the slope's interval against the prediction.

    The prediction allows a band of slopes (``Prediction.band``: the open half-line of the sign
    for 'increases'/'decreases', p ≤ flat for 'does not increase', e ± tol or a half-line from it
    for an exponent). The verdict is 'agrees' when the whole bootstrap interval lies inside the
    band, 'disagrees' when it lies wholly outside it, and 'inconclusive' when it straddles an
    edge: the data are then too noisy to decide (for a direction, the interval spans both signs)
    — so a wide interval never agrees by overlapping. Without a slope (0 or undefined
    everywhere, too few widths) it is 'uninformative'.
    A string is taken as a direction.
    """
    if isinstance(prediction, str):
        prediction = Prediction(prediction)
    if not slope.informative or not math.isfinite(slope.slope):
        return "uninformative"
    lo, hi = slope.low, slope.high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    band_lo, band_hi, lo_open, hi_open = prediction.band()
    above_lo = lo > band_lo if lo_open else lo >= band_lo
    below_hi = hi < band_hi if hi_open else hi <= band_hi
    if above_lo and below_hi:
        return "agrees"
    outside = (hi <= band_lo if lo_open else hi < band_lo) or (lo >= band_hi if hi_open else lo > band_hi)
    return "disagrees" if outside else "inconclusive"


# ---------------------------------------------------------------------------------------------- theory
def theorem_lr(base_lr: float, width: float, base_width: float) -> float:
    """The step size at ``width`` when it shrinks as 1/width from ``base_lr`` at ``base_width``.

    The convergence theorem sets η = Θ(dδ/(poly(n, L)·m)): its gradients grow as √m (‖∇F‖² ∝ m·F,
    the gradient lemmas) and so does the curvature (smoothness b ∝ m), so η ∝ 1/m keeps each step's
    change of F width-independent and the number of steps to a target free of m. With a constant
    η a wider network takes relatively larger steps. ``width`` and ``base_width`` may be
    multipliers or hidden widths m (only their ratio counts); for a ResNet, whose channel width
    plays m's part, the same rule is the analogue.
    """
    if not (base_lr > 0 and width > 0 and base_width > 0 and math.isfinite(base_lr * width * base_width)):
        raise LandscapeError(f"need base_lr, width and base_width > 0, got {base_lr}, {width}, {base_width}")
    return base_lr * base_width / width


_RADIUS = ("the theorem keeps ‖W_l(t) − W_l(0)‖_F ≤ ω = poly(n, L, 1/δ)/√m for every hidden layer (and in the "
           "lazy regime the move W_l(T) − W_l(0), of rank ≤ n, has ‖·‖₂ ≈ ‖·‖_F ∝ m^{-1/2})")
# What the theorem implies for each quantity a width sweep reports, keyed by the sweep's names, in the
# theorem's own setting: bias-free ReLU MLPs at the paper's initialization (A, W_l entries N(0, 2/m),
# B entries N(0, 1/d)), hidden layers trained on n δ-separated points; m the hidden width. For a ResNet
# the channel width plays m's part only by analogy (batch norm changes the scalings). The new
# quantities: activation_flips = the largest flip fraction over the hidden layers between θ_0 and
# θ_T, spectral_movement = the relative move of each hidden layer (or their largest),
# ntk_min_eigenvalue = λ_min(K_0) on the training points.
PREDICTIONS: dict[str, Prediction] = {
    "c": Prediction("increases", 1.0, "equal", derivation=(
        "gradient lemmas: Ω(δm/(dn²))·F ≤ ‖∇F‖² ≤ O(poly(n, L)·m/d)·F near initialization, both ∝ m, so "
        "c = min ‖∇F‖²/F ∝ m (a lower bound alone would give slope ≥ 1)")),
    "a_over_sqrt_F": Prediction(None, 1 / 3, "at_most", derivation=(
        "semi-smoothness: kink term O(ω^{1/3}L²√(m log m)/√d)·‖W'‖₂·√F with ω ∝ m^{-1/2}: a/√F ≤ O(m^{1/3}√log m) "
        "along low-rank (gradient) directions, O(m^{-1/6}√log m) along Gaussian ones (‖W'‖₂ ≈ 2‖W'‖_F/√m); "
        "only a/‖∇F‖ (∝ a/√(mF)) must fall, as m^{-1/6}")),
    "lambda_ratio": Prediction("decreases", derivation=(
        "H = JᵀJ/n + Σ r_i∇²f_i/n: λ_max ≳ λ_max(K)/n ∝ m while the residual term, the only source of "
        "negative curvature, grows slower (∝ √(F m) at fixed F: f is nearly linear in θ at large width), so "
        "|λ_min/λ_max| falls (≈ m^{-1/2} heuristically; the paper bounds curvature only from above, b ∝ m)")),
    "travelled": Prediction("decreases", -1.0, "at_most", derivation=(
        _RADIUS + "; ‖θ_0‖ = √(2Lm) over m×m hidden layers with N(0, 2/m) entries, so ‖θ_T − θ_0‖/‖θ_0‖ "
        "≤ O(m^{-1}) (m^{-1/2} only where the trained parameters number ∝ m, e.g. one m×d layer)")),
    "ntk_drift": Prediction("decreases", -1 / 6, "at_most", derivation=(
        "within radius ω the backward vectors change by O(ω^{1/3}√log m) relative to their size (the "
        "semi-smoothness lemma's ingredient), so ‖K_T − K_0‖/‖K_0‖ ≤ O(m^{-1/6}√log m); ≈ m^{-1/2} in the lazy regime")),
    "interpolation_bump": Prediction("decreases", derivation=(
        "along θ_0 → θ_T (length ∝ m^{-1/2}) F stays within the semi-smoothness bound of its linearization, "
        "whose kink term shrinks relative to the first-order term as m^{-1/6}; in the lazy limit F is a convex "
        "quadratic on the segment and the bump vanishes")),
    "steps": Prediction("does not increase", derivation=(
        "at a constant η the per-step decrease is ∝ η·c ∝ η·m (gradient lemma) while the theorem's "
        "η ∝ 1/m gives width-free steps T = poly(n, L)/δ²·log(1/ε): fewer or as many steps, until η "
        "passes 2/λ_max ∝ 1/m")),
    "activation_flips": Prediction("decreases", -1 / 3, "at_most", derivation=(
        "perturbation lemma: ‖W'_l‖₂ ≤ ω changes at most O(mω^{2/3}L) of the m ReLU signs per input, a "
        "fraction O(Lω^{2/3}) ∝ m^{-1/3} with ω ∝ m^{-1/2} (≈ m^{-1/2} for a spread-out lazy-regime move); "
        "the largest fraction over hidden layers")),
    "spectral_movement": Prediction("decreases", -0.5, "at_most", derivation=(
        _RADIUS + "; ‖W_l(0)‖₂ → 2√2 (m×m, N(0, 2/m)), so ‖W_l(T) − W_l(0)‖₂/‖W_l(0)‖₂ ≤ O(m^{-1/2}) "
        "for each hidden layer")),
    "ntk_min_eigenvalue": Prediction("increases", 1.0, "equal", derivation=(
        "each ‖∂f/∂W_l‖² ∝ ‖back‖²·‖h‖² ∝ m/d at the paper's initialization, so K ∝ m and λ_min(K_0) "
        "= m·λ_min of the width-normalized kernel, > 0 for δ-separated data (the gradient lemma is its "
        "consequence)")),
}


def predictions(lr_scaling: str = "constant") -> dict[str, Prediction]:
    """``PREDICTIONS`` for a sweep whose learning rate is 'constant' or scaled as ``theorem_lr``.

    Only the step count's derivation depends on it: with η ∝ 1/m the theorem bounds it by a T free of
    m (slope ≤ 0, within ``flat``); at a constant η the per-step progress grows with m.
    """
    if lr_scaling == "constant":
        return dict(PREDICTIONS)
    if lr_scaling == "theorem":
        return {**PREDICTIONS, "steps": Prediction("does not increase", 0.0, "at_most", derivation=(
            "with the theorem's η = Θ(dδ/(poly(n, L)·m)) the steps to loss ε are at most T = poly(n, L)/δ²·log(1/ε), "
            "free of m (about constant in the lazy regime: rate η·λ_min(K) ∝ m⁰)"))}
    raise LandscapeError(f"unknown learning-rate scaling {lr_scaling!r}: use constant or theorem")
