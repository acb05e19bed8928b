"""The Hessian of the objective as a linear operator, its spectrum, and the gradient's share in its top.

``HessianOperator`` applies H(θ) (or the Hessian of the Gaussian-smoothed objective) to a
vector by exact Hessian-vector products. One eigensolver serves every caller: ``spectrum_ends``,
thick-restart Lanczos with full reorthogonalization (``landscape.lanczos.LanczosBasis``), finds
the top and bottom eigenpairs in one run (one Krylov space serves both ends);
``top_eigenpairs`` and ``most_negative_eigenpair`` run it for one end, and the sharpness tracker
for a warm-started λ_max. ``extreme_eigenpairs`` (ARPACK through ``scipy.sparse.linalg.eigsh``)
is kept as an independent reference. All return ``Eigenpair``. ``gradient_alignment`` measures
how much of ∇F lies in the span of given eigenvectors; ``hutchinson_trace`` estimates tr H from
Rademacher probes.

Every eigenvalue carries an error bound: for a unit vector v and any θ, some eigenvalue of a
symmetric H lies within ‖Hv − θv‖ of θ, so the residual is reported as ``error_bound``, with
``bound_for`` saying for which H (the operator as computed, e.g. with float32 products).

Allen-Zhu, Li & Song (ICML 2019) approximated the most-negative-curvature direction with Oja's
method (a stochastic power iteration). Here Lanczos runs on the exact operator instead: it
converges to the exact extreme eigenpair in far fewer products, and every returned pair
carries its residual ‖Hv − λv‖, so how close it is can be read off rather than assumed.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from .errors import LandscapeError
from .lanczos import LanczosBasis


class HessianOperator(LinearOperator):
    """H(θ)·v as a symmetric float64 ``LinearOperator`` of shape (dim, dim).

    With ``sigma > 0`` it is the Hessian of the smoothed objective E_ξ F(θ + ξ), ξ ~ N(0, σ²I),
    estimated as the mean of H(θ + ξ_j) over ``samples`` perturbations drawn once, from
    ``seed``, at construction: the operator is then a fixed, deterministic, symmetric matrix.
    The points θ + ξ_j are held in memory (samples × dim numbers at the model's precision).
    Pointwise Hessians see no curvature concentrated on kinks (ReLU), so for a piecewise-linear
    network this mean estimates E_ξ H(θ + ξ), not the smoothed function's full Hessian.

    ``matvecs`` counts operator applications, ``hvps`` the Hessian-vector products they cost.
    """

    def __init__(self, objective, theta: torch.Tensor | None = None, sigma: float = 0.0,
                 samples: int = 0, seed: int = 0):
        """H at ``theta`` (default: the objective's θ₀), averaged over ``samples`` seeded θ+ξ when ``sigma`` > 0."""
        if sigma < 0:
            raise LandscapeError(f"sigma must be non-negative, got {sigma}")
        if sigma > 0 and samples < 1:
            raise LandscapeError("a smoothed Hessian (sigma > 0) needs samples >= 1")
        super().__init__(np.float64, (objective.dim, objective.dim))
        self.objective = objective
        theta = objective.theta0 if theta is None else theta
        if tuple(theta.shape) != (objective.dim,):
            raise LandscapeError(f"θ has shape {tuple(theta.shape)}, expected ({objective.dim},)")
        self.theta = theta.detach().to(objective.device, torch.float64).clone()
        self.sigma, self.samples, self.seed = float(sigma), (int(samples) if sigma > 0 else 0), seed
        self.points = [(self.theta + self.perturbation(j)).to(objective.dtype)
                       for j in range(self.samples)]
        self.matvecs = 0
        self.hvps = 0

    def perturbation(self, j: int) -> torch.Tensor:
        """ξ_j (float64, on the objective's device): the same on every device and every call."""
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, j]).generate_state(1)[0]))
        xi = torch.randn(self.shape[0], generator=gen, dtype=torch.float64) * self.sigma
        return xi.to(self.theta.device)

    def matvec_torch(self, v: torch.Tensor) -> torch.Tensor:
        """H·v for a torch vector; float64 on the objective's device."""
        v = torch.as_tensor(v)
        if self.samples == 0:
            out = self.objective.hvp(self.theta, v)
            self.hvps += 1
        else:
            out = torch.zeros(self.shape[0], dtype=torch.float64, device=self.theta.device)
            for point in self.points:
                out += self.objective.hvp(point, v)
            out /= self.samples
            self.hvps += self.samples
        self.matvecs += 1
        return out

    def _matvec(self, x):
        """H·x for a NumPy vector (SciPy's LinearOperator protocol)."""
        x = np.asarray(x, dtype=np.float64)
        v = torch.from_numpy(np.ascontiguousarray(x.reshape(-1)))
        return self.matvec_torch(v).cpu().numpy().reshape(x.shape)

    _rmatvec = _matvec

    def _adjoint(self):
        return self


def as_operator(op_or_objective) -> LinearOperator:
    """A ``LinearOperator`` as is; an objective becomes its plain Hessian at θ0."""
    if isinstance(op_or_objective, LinearOperator):
        return op_or_objective
    if hasattr(op_or_objective, "hvp"):
        return HessianOperator(op_or_objective)
    raise LandscapeError(f"expected a LinearOperator or an Objective, got {type(op_or_objective).__name__}")


def bound_scope(op) -> str:
    """What an error bound measured through ``op`` holds for (``Eigenpair.bound_for``).

    A residual is computed with the operator's own products, so its bound holds for the operator as
    computed: for a ``HessianOperator`` the products run at the objective's precision (float32 by
    default) and are summed in float64; how far that lies from the exact Hessian (the rounding of
    each product) is not part of the bound. Any other operator is taken as given.
    """
    objective = getattr(op, "objective", None)
    dtype = getattr(objective, "dtype", None)
    if dtype is None:
        return "operator as given"
    return f"operator as computed ({'float64' if dtype == torch.float64 else 'float32'} products)"


@dataclass
class Eigenpair:
    """One approximate eigenpair and what it cost: the one result type of every eigensolver here.

    ``residual`` = ‖Hv − λv‖/‖v‖ from one extra product (or, for pairs wanted only for their span,
    Lanczos' own ‖β s_last‖, equal to it up to rounding); ``iterations`` = products the run used,
    ``matvecs`` = all products of the call (iterations + the residuals measured); both, and
    ``seconds``, are shared by the pairs one call returns. ``converged`` is False when the solver
    stopped early: the pair is then the best Ritz pair of the Krylov vectors seen. ``which``: 'LA'
    (top end) or 'SA' (bottom end). ``error_bound`` = ``residual``: some eigenvalue of H lies in
    [λ − bound, λ + bound] (for a symmetric H and unit v; it need not be the extreme one if the
    solver missed it). ``bound_for`` says which H that is (see ``bound_scope``): for a float32
    objective, the operator as computed with float32 products. ``solver``: 'lanczos' (the
    thick-restart run of ``spectrum_ends``) or 'arpack' (``extreme_eigenpairs``, the reference).
    """

    eigenvalue: float
    eigenvector: np.ndarray
    residual: float
    iterations: int
    matvecs: int
    seconds: float
    converged: bool
    which: str
    error_bound: float = float("nan")
    bound_for: str = "operator as given"
    solver: str = "lanczos"

    def __post_init__(self):
        if np.isnan(self.error_bound):
            self.error_bound = self.residual

    def summary(self) -> dict:
        """Everything but the eigenvector."""
        return {k: v for k, v in asdict(self).items() if k != "eigenvector"}


@dataclass
class SpectrumEnds:
    """The top eigenpairs (largest first) and the bottom ones (most negative first) of one Lanczos run."""

    top: list[Eigenpair]
    bottom: list[Eigenpair]
    restarts: int

    @property
    def most_negative(self) -> Eigenpair:
        return self.bottom[0]


def _start_vector(v0, n: int, rng: np.random.Generator) -> np.ndarray:
    """``v0`` as a float64 vector of length n (finite, nonzero), or a Gaussian one from ``rng``."""
    if v0 is None:
        return rng.standard_normal(n)
    v0 = np.asarray(v0, dtype=np.float64).reshape(-1)
    if len(v0) != n or not np.all(np.isfinite(v0)) or not np.any(v0):
        raise LandscapeError(f"the Lanczos start vector must be finite, nonzero and of length {n}")
    return v0


def _ends_run(basis: LanczosBasis, k_top: int, k_bottom: int, tol: float, max_matvecs: int | None,
              rng: np.random.Generator) -> tuple[bool, int]:
    """Extend (and thick-restart) ``basis`` until the wanted Ritz pairs converge or the budget is spent.

    Returns (converged, restarts). A pair has converged when its Ritz residual is at most tol·|λ|.
    When full, the basis keeps the Ritz vectors nearest the wanted ends (half the basis, all of it
    at one end when only one is wanted) and goes on from the next Lanczos vector.
    """
    n, restarts = basis.V.shape[0], 0
    while True:
        basis.extend()
        values, _, residuals = basis.ritz()
        m = len(values)
        wanted = np.unique(np.r_[np.arange(m - 1, m - 1 - min(k_top, m), -1),
                                 np.arange(min(k_bottom, m))].astype(int))
        accuracy = tol * np.maximum(np.abs(values[wanted]), np.finfo(float).eps ** (2 / 3))
        if m >= k_top + k_bottom and bool(np.all(residuals[wanted] <= accuracy)):
            return True, restarts
        if max_matvecs is not None and basis.products >= max_matvecs:
            return False, restarts
        if basis.invariant and not basis.add_direction(rng.standard_normal(n)):
            return True, restarts  # the basis spans the whole space: the Ritz pairs are exact
        if basis.full:
            extra = max(1, (basis.capacity // 2 - k_top - k_bottom) // 2)
            if k_top and k_bottom:
                low, high = k_bottom + extra, k_top + extra
            else:  # one end wanted: the whole kept half goes to it
                low, high = (k_bottom + 2 * extra, 0) if k_bottom else (0, k_top + 2 * extra)
            keep = np.r_[np.arange(min(low, m)), np.arange(m - min(high, m), m)]
            basis.restart(np.unique(keep).astype(int))
            restarts += 1


def spectrum_ends(op, k_top: int = 1, k_bottom: int = 1, tol: float = 1e-6, max_basis: int = 40,
                  max_matvecs: int | None = None, seed: int = 0, v0: np.ndarray | None = None,
                  measured_top: int | None = None, bound_for: str | None = None) -> SpectrumEnds:
    """The ``k_top`` largest and ``k_bottom`` smallest algebraic eigenpairs of a symmetric operator, together.

    The library's eigensolver: one Lanczos run with full reorthogonalization and thick restarts
    (``LanczosBasis``) holding at most ``max_basis`` vectors. A pair has converged when its Ritz
    residual is at most ``tol``·|λ| (ARPACK's criterion, so ``tol`` means what it means for
    ``extreme_eigenpairs``); the run stops when all wanted pairs have, or after ``max_matvecs``
    products (then ``converged=False``; ``tol=0`` spends them all). ``v0`` (default: Gaussian from
    ``seed``) is the start, e.g. the last eigenvector for a warm start. Each returned pair's
    residual is then measured with one more product, except top pairs past the first
    ``measured_top`` (None: all), which keep Lanczos' own residual ‖β_m s_m‖ (the true one up to
    rounding under full reorthogonalization): pairs wanted only for their span cost no product.
    ``bound_for`` overrides ``bound_scope(op)`` (e.g. for an operator that wraps a Hessian).
    """
    op = as_operator(op)
    n = op.shape[0]
    if k_top < 0 or k_bottom < 0 or not 1 <= k_top + k_bottom <= n:
        raise LandscapeError(f"need k_top, k_bottom >= 0 with 1 <= k_top + k_bottom <= {n}, "
                             f"got {k_top} and {k_bottom}")
    rng = np.random.default_rng(seed)
    v0 = _start_vector(v0, n, rng)
    start = time.perf_counter()
    basis = LanczosBasis(lambda x: op.matvec(x), v0, min(n, max(max_basis, 2 * (k_top + k_bottom) + 2)))
    converged, restarts = _ends_run(basis, k_top, k_bottom, tol, max_matvecs, rng)
    values, S, residuals = basis.ritz()
    m, iterations = len(values), basis.products
    # a budget spent (or a space exhausted) before k_top + k_bottom Ritz values exist returns fewer
    # top pairs, never fewer than one at each end wanted (they coincide when there is one Ritz value)
    k_bottom = min(k_bottom, m)
    k_top = min(k_top, m - k_bottom) if m > k_bottom else min(k_top, m)
    measured, products = [], iterations
    for col, i in enumerate([*range(m - 1, m - 1 - k_top, -1), *range(k_bottom)]):
        v = basis.vectors(S[:, i])  # one at a time: no k × dim matrix beside the basis
        v /= np.linalg.norm(v)
        if measured_top is not None and measured_top <= col < k_top:
            residual = float(residuals[i])
        else:
            residual = float(np.linalg.norm(op.matvec(v).reshape(-1) - values[i] * v))
            products += 1
        measured.append((float(values[i]), v, residual, "LA" if col < k_top else "SA"))
    seconds, scope = time.perf_counter() - start, bound_for or bound_scope(op)
    pairs = [Eigenpair(lam, v, res, iterations, products, seconds, converged, which, bound_for=scope)
             for lam, v, res, which in measured]
    return SpectrumEnds(pairs[:k_top], pairs[k_top:], restarts)


def top_eigenpairs(op, k: int = 1, **kwargs) -> list[Eigenpair]:
    """The k largest algebraic eigenpairs (the sharpest directions), largest first.

    ``spectrum_ends`` for the top end only; ``kwargs`` go to it (tol, max_matvecs, max_basis, seed,
    v0, measured_top, bound_for).
    """
    return spectrum_ends(op, k_top=k, k_bottom=0, **kwargs).top


def most_negative_eigenpair(op, **kwargs) -> Eigenpair:
    """The smallest algebraic eigenpair: the most negative curvature and its direction.

    ``spectrum_ends`` for the bottom end only (``kwargs`` as for ``top_eigenpairs``). Krylov spaces
    are shift invariant, so shifting H would not speed Lanczos up.
    """
    return spectrum_ends(op, k_top=0, k_bottom=1, **kwargs).most_negative


# ----------------------------------------------------------------------------- ARPACK, the reference
class _BudgetExhausted(Exception):
    pass


def _rayleigh_ritz(X: np.ndarray, Y: np.ndarray, k: int, which: str):
    """Best k Ritz pairs of H on span(X), given Y = HX: (vectors, images, values).

    Works on the small Gram matrix XᵀX (two tall products, no tall factorization).
    """
    g, V = np.linalg.eigh(X.T @ X)
    keep = g > g.max() * 1e-10
    W = V[:, keep] / np.sqrt(g[keep])  # X @ W is an orthonormal basis of span(X)
    T = W.T @ (X.T @ Y) @ W
    w, C = np.linalg.eigh((T + T.T) / 2)
    idx = np.argsort(w)[::-1][:k] if which == "LA" else np.argsort(w)[:k]
    coef = W @ C[:, idx]
    return X @ coef, Y @ coef, w[idx]


class _Tracked(LinearOperator):
    """Counts products, enforces a budget, and keeps the best k Ritz pairs seen so far.

    Every ``window`` products it projects H onto span(best pairs, inputs since), so a run that
    stops early still has its best estimate (ARPACK's exception returns converged pairs only).
    Memory: 2·(window + k) float64 vectors, about twice ARPACK's own Krylov basis.
    """

    def __init__(self, op: LinearOperator, k: int, which: str, window: int, budget: int | None):
        """Wrap ``op`` for ``k`` pairs at end ``which``, compressing every ``window`` products, at most ``budget``."""
        super().__init__(np.float64, op.shape)
        self.op, self.k, self.which, self.window, self.budget = op, k, which, window, budget
        self.count = 0
        self.xs, self.ys = [], []
        n = op.shape[0]
        self.basis, self.images, self.values = np.zeros((n, 0)), np.zeros((n, 0)), np.zeros(0)

    def _matvec(self, x):
        """One product through the tracked operator; stops the eigensolver when the budget is spent."""
        if self.budget is not None and self.count >= self.budget:
            raise _BudgetExhausted
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(self.op.matvec(x), dtype=np.float64).reshape(-1)
        self.count += 1
        self.xs.append(x.copy())
        self.ys.append(y.copy())
        if len(self.xs) >= self.window:
            self.compress()
        return y

    def compress(self):
        if not self.xs:
            return
        X = np.column_stack([self.basis, *self.xs])
        Y = np.column_stack([self.images, *self.ys])
        self.xs, self.ys = [], []
        self.basis, self.images, self.values = _rayleigh_ritz(X, Y, self.k, self.which)


_EIGSH_TAKES_RNG = "rng" in inspect.signature(eigsh).parameters


def extreme_eigenpairs(op, k: int = 1, which: str = "LA", tol: float = 1e-6,
                       maxiter: int | None = None, ncv: int | None = None, seed: int = 0,
                       v0: np.ndarray | None = None, max_matvecs: int | None = None,
                       bound_for: str | None = None) -> list[Eigenpair]:
    """The k largest ('LA') or smallest ('SA') algebraic eigenpairs by ARPACK: the independent reference.

    The library's own solver is ``spectrum_ends`` (and ``top_eigenpairs``/``most_negative_eigenpair``,
    which run it); this one, Lanczos with implicit restarts (``scipy.sparse.linalg.eigsh``), is
    kept as an alternative and as the tests' and benchmarks' reference. It returns the same
    ``Eigenpair`` (``solver='arpack'``). ``tol`` is ARPACK's relative accuracy (‖r‖ ≤ tol·|λ|),
    ``maxiter`` its restart limit, ``ncv`` the Krylov dimension (default max(2k+1, 20)); ``v0``
    defaults to a Gaussian vector drawn from ``seed``. If ARPACK does not converge, or
    ``max_matvecs`` products are spent, the best Ritz pairs seen are returned with
    ``converged=False``. Pairs come largest first for 'LA', most negative first for 'SA'.
    """
    op = as_operator(op)
    if which not in ("LA", "SA"):
        raise LandscapeError(f"which must be 'LA' or 'SA', got {which!r}")
    n = op.shape[0]
    if not 1 <= k < n:
        raise LandscapeError(f"k must be in 1..{n - 1}, got {k}")
    ncv = min(n, ncv or max(2 * k + 1, 20))
    v0 = _start_vector(v0, n, np.random.default_rng(seed))
    tracked = _Tracked(op, k, which, window=ncv, budget=max_matvecs)
    extra = {"rng": np.random.default_rng(seed)} if _EIGSH_TAKES_RNG else {}
    start = time.perf_counter()
    converged = True
    try:
        values, vectors = eigsh(tracked, k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv,
                                v0=v0, **extra)
    except (ArpackError, _BudgetExhausted) as err:
        # ArpackNoConvergence, a spent budget, or a Krylov space that collapsed (ARPACK -9 when
        # H·v0 = 0, e.g. a zero Hessian): the best Ritz pairs of the products seen
        converged = False
        tracked.budget = None
        if isinstance(err, ArpackNoConvergence):  # pairs ARPACK did converge join the projection
            for vec in np.asarray(err.eigenvectors).T:
                tracked.matvec(vec)
        tracked.compress()
        values, vectors = tracked.values, tracked.basis
    iterations = tracked.count
    order = np.argsort(values)[::-1] if which == "LA" else np.argsort(values)
    pairs = []
    for i in order:
        v = vectors[:, i] / np.linalg.norm(vectors[:, i])
        residual = float(np.linalg.norm(op.matvec(v).reshape(-1) - values[i] * v))
        pairs.append((float(values[i]), v, residual))
    seconds, scope = time.perf_counter() - start, bound_for or bound_scope(op)
    return [Eigenpair(lam, v, res, iterations, iterations + len(pairs), seconds, converged, which,
                      bound_for=scope, solver="arpack")
            for lam, v, res in pairs]


# ----------------------------------------------------------------------------- the gradient in the top space
@dataclass
class GradientAlignment:
    """The share of ‖∇F‖² inside the span of k Hessian eigenvectors (Gur-Ari et al. 2018), or why there is none.

    ``fraction`` = ‖Pg‖²/‖g‖² with P the orthogonal projection onto the span of the k eigenvectors;
    ``eigenvalues`` and ``residuals`` are the pairs'. ``resolved`` is False, ``fraction`` None and
    ``reason`` says why, when ∇F is 0 (or not finite), or when a pair did not converge (the span is
    then not the top-k eigenspace): an unresolved share is never given as a number.
    """

    k: int
    fraction: float | None
    eigenvalues: list[float]
    residuals: list[float]
    converged: bool
    resolved: bool
    reason: str | None = None

    def as_dict(self) -> dict:
        """Plain JSON-ready values."""
        return asdict(self)


def _flat64(vector) -> np.ndarray:
    if isinstance(vector, torch.Tensor):
        vector = vector.detach().to(torch.float64).cpu().numpy()
    return np.asarray(vector, dtype=np.float64).reshape(-1)


def gradient_alignment(gradient, pairs) -> GradientAlignment:
    """How much of ``gradient`` (∇F, a torch or NumPy vector) lies in the span of the eigenpairs' vectors.

    ‖Pg‖² = hᵀG⁻¹h with h = Vᵀg and G = VᵀV, from k + k² dot products: no k × dim copy of the
    vectors (a QR of the eigenvectors of a 20 M-parameter network would hold several GB), and a
    basis that is not quite orthonormal still gives the projection onto its span.
    """
    pairs = list(pairs)
    if not pairs:
        raise LandscapeError("the gradient alignment needs at least one eigenpair")
    g = _flat64(gradient)
    vectors = [_flat64(p.eigenvector) for p in pairs]
    if any(len(v) != len(g) for v in vectors):
        raise LandscapeError(f"the eigenvectors do not have the gradient's length {len(g)}")
    k, unconverged = len(pairs), sum(not p.converged for p in pairs)
    norm_sq = float(g @ g)
    reason = ("∇F is not finite" if not np.isfinite(norm_sq) else
              "∇F = 0: the alignment of a zero gradient is undefined" if norm_sq == 0 else
              f"{unconverged} of the {k} eigenpairs did not converge: their span is not the top-{k} eigenspace"
              if unconverged else None)
    fraction = None
    if reason is None:
        h = np.array([v @ g for v in vectors])
        gram = np.array([[u @ v for v in vectors] for u in vectors])
        fraction = float(h @ np.linalg.lstsq(gram, h, rcond=None)[0]) / norm_sq
    return GradientAlignment(k, fraction, [float(p.eigenvalue) for p in pairs], [float(p.residual) for p in pairs],
                             not unconverged, reason is None, reason)


def gradient_alignment_at(function, theta: torch.Tensor | None = None, k: int = 10,
                          **solver_kwargs) -> GradientAlignment:
    """``gradient_alignment`` of ∇F(θ) with the top-k eigenpairs of H(θ), computed here.

    ``function`` is an ``Objective`` (or anything with ``value_and_grad``, ``hvp``, ``dim``,
    ``theta0``); ``solver_kwargs`` go to ``spectrum_ends`` (tol, max_matvecs, max_basis, seed, ...).
    Only the span of the pairs matters, so their residuals are Lanczos' own unless
    ``measured_top`` says otherwise.
    """
    theta = function.theta0 if theta is None else theta
    _, grad = function.value_and_grad(theta)
    solver_kwargs.setdefault("measured_top", 0)
    return gradient_alignment(grad, top_eigenpairs(HessianOperator(function, theta), k, **solver_kwargs))


@dataclass
class TraceEstimate:
    """Hutchinson's estimate of tr H, its standard error, and its cost."""

    estimate: float
    stderr: float
    samples: int
    seconds: float


def hutchinson_trace(op_or_objective, samples: int = 100, seed: int = 0) -> TraceEstimate:
    """tr H ≈ mean of zᵀHz over ``samples`` Rademacher probes z drawn from ``seed``.

    Unbiased; its variance per probe is 2·Σ_{i≠j} H_ij², so the standard error reported is the
    sample standard deviation over √samples.
    """
    op = as_operator(op_or_objective)
    if samples < 1:
        raise LandscapeError(f"samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    quads = np.empty(samples)
    for i in range(samples):
        z = rng.integers(0, 2, op.shape[0]).astype(np.float64) * 2 - 1
        quads[i] = z @ op.matvec(z).reshape(-1)
    stderr = float(quads.std(ddof=1) / np.sqrt(samples)) if samples > 1 else float("nan")
    return TraceEstimate(float(quads.mean()), stderr, samples, time.perf_counter() - start)
