"""The quantities of Allen-Zhu, Li & Song (2019) measured on a network: NTK, depth scaling, the lemma's bound.

* ``ntk``: the empirical neural tangent kernel K = J Jᵀ over n examples, J the Jacobian of the
  network outputs with respect to the objective's parameters θ; ``ntk_drift`` how far K moved.
  The theorem's proof keeps the network near its initialization, where K barely changes.
* ``depth_scaling_fit``: whether the gradient at initialization grows polynomially or
  exponentially in the depth L (the theorem's bounds are polynomial in L).
* ``dominance_against_lemma``: the measured gradient-dominance constant next to the shape
  δ/n² of the paper's lower bound ‖∇F‖² ≥ Ω(F·δm/(dn²)).

Pure functions of an ``Objective`` (or of arrays); no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacrev

from .errors import LandscapeError


def jacobian(objective, theta: torch.Tensor | None = None, chunk: int = 64,
             projection: torch.Tensor | None = None, examples: int | None = None) -> torch.Tensor:
    """∂f(x_i)_a/∂θ for every example i and output a: a (n·k) × P float64 matrix, rows example-major.

    Row i·k + a is output coordinate a of example i; P is the objective's parameter count
    (its subset: 'hidden' gives the W_l the theorem trains). Computed with ``torch.func.jacrev``
    on ``chunk`` examples at a time; memory n·k·P numbers. With ``projection`` (a k-vector u),
    the rows are ∂⟨u, f(x_i)⟩/∂θ instead (n × P): the kernel of one fixed output direction, for
    networks too large to hold every output's Jacobian. ``examples``: the first that many only.
    Batch norm must be 'frozen', so that
    one example's outputs do not depend on the others.
    """
    if objective.bn != "frozen":
        raise LandscapeError(f"the NTK needs bn='frozen' (per-example outputs), not {objective.bn!r}")
    theta = objective._theta(theta).detach()
    rows = []
    n = objective.num_examples if examples is None else min(examples, objective.num_examples)
    for start in range(0, n, chunk):
        x = objective.images[start:min(start + chunk, n)]
        if projection is None:
            jac = jacrev(lambda t: objective._forward(t, x))(theta)  # chunk × k × P (or chunk × P)
        else:
            u = projection.to(objective.device, objective.dtype)
            jac = jacrev(lambda t: objective._forward(t, x) @ u)(theta)  # chunk × P
        rows.append(jac.reshape(-1, objective.dim).to(torch.float64))
    return torch.cat(rows)


def ntk(objective, theta: torch.Tensor | None = None, chunk: int = 64,
        projection: torch.Tensor | None = None, examples: int | None = None) -> torch.Tensor:
    """The empirical NTK K = J Jᵀ at θ (float64, (n·k) × (n·k); see ``jacobian`` for the layout).

    For one output (k = 1) K is n × n with K_ij = ⟨∇_θ f(x_i), ∇_θ f(x_j)⟩; with k outputs it holds
    every pair of output coordinates, K_{(i,a),(j,b)} = ⟨∇_θ f(x_i)_a, ∇_θ f(x_j)_b⟩.
    """
    j = jacobian(objective, theta, chunk, projection, examples)
    return j @ j.T


def ntk_drift(kernel: torch.Tensor, kernel0: torch.Tensor) -> float:
    """‖K − K₀‖_F / ‖K₀‖_F: the relative change of the kernel since initialization."""
    if kernel.shape != kernel0.shape:
        raise LandscapeError(f"kernels of shapes {tuple(kernel.shape)} and {tuple(kernel0.shape)} cannot be compared")
    base = float(torch.linalg.matrix_norm(kernel0.to(torch.float64)))
    if base == 0:
        raise LandscapeError("the initial kernel is zero: its relative drift is undefined")
    return float(torch.linalg.matrix_norm((kernel - kernel0).to(torch.float64))) / base


@dataclass
class LogFit:
    """log g = intercept + slope·t, fitted by least squares; ``rms`` of the residuals in log g."""

    intercept: float
    slope: float
    rms: float


@dataclass
class DepthFit:
    """Both fits of gradient norm against depth and which one fits better (smaller residual).

    polynomial: log g = a + p·log L (g ∝ L^p); exponential: log g = a + r·L (g ∝ e^{rL}).
    Both have two parameters, so their residuals compare directly.
    """

    polynomial: LogFit
    exponential: LogFit
    better: str

    @property
    def power(self) -> float:
        return self.polynomial.slope

    @property
    def rate(self) -> float:
        return self.exponential.slope


def _log_fit(t: np.ndarray, y: np.ndarray) -> LogFit:
    design = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return LogFit(float(coef[0]), float(coef[1]), float(np.sqrt(np.mean(resid ** 2))))


def depth_scaling_fit(depths, grad_norms) -> DepthFit:
    """Fit the gradient norms at initialization against depth, polynomially and exponentially.

    Needs at least three distinct depths ≥ 1 (two points fit any two-parameter curve exactly) and
    positive norms. ``better`` is the fit with the smaller rms residual in log g, or 'tie'.
    """
    L = np.asarray(depths, dtype=np.float64)
    g = np.asarray(grad_norms, dtype=np.float64)
    if L.shape != g.shape or L.ndim != 1:
        raise LandscapeError(f"need one gradient norm per depth, got {L.shape} depths and {g.shape} norms")
    if len(np.unique(L)) < 3:
        raise LandscapeError("a depth fit needs at least three distinct depths")
    if not (np.all(L >= 1) and np.all(np.isfinite(g)) and np.all(g > 0)):
        raise LandscapeError("depths must be ≥ 1 and gradient norms finite and > 0")
    poly = _log_fit(np.log(L), np.log(g))
    expo = _log_fit(L, np.log(g))
    scale = max(poly.rms, expo.rms)
    better = "tie" if abs(poly.rms - expo.rms) <= 1e-12 * max(scale, 1.0) else \
        "polynomial" if poly.rms < expo.rms else "exponential"
    return DepthFit(poly, expo, better)


@dataclass
class DominanceComparison:
    """The measured gradient-dominance constant beside the shape of the paper's lower bound.

    ``c_mean`` = min_t ‖∇F‖²/F with F the objective's *mean* loss (½‖f − y‖² averaged over the
    n examples). The paper's F is the *sum* over examples, and F_sum = n·F_mean,
    ∇F_sum = n·∇F_mean, so ``c_sum`` = n·c_mean. Its bound reads c_sum ≥ Ω(δ·m/(d·n²)) with m the
    width and d the output dimension, so ``c_scaled`` = c_sum·d/m is the number to hold against
    ``lemma`` = δ/n². The Ω hides constants (and log factors): ``ratio`` = c_scaled/lemma says
    how much room the measurement leaves, and is meaningful across n and δ, not as a single value.
    """

    c_mean: float
    c_sum: float
    c_scaled: float | None
    lemma: float
    ratio: float | None
    n: int
    delta: float


def dominance_against_lemma(losses, grad_sqs, n: int, delta: float, width: int | None = None,
                            outputs: int = 1) -> DominanceComparison:
    """Compare min ‖∇F‖²/F over the points given (mean-loss normalization) with δ/n² (see the class doc).

    ``losses`` and ``grad_sqs`` are F and ‖∇F‖² (mean loss, gradient over the trained hidden
    layers, as the lemma states it) at the same points; points with F = 0 are skipped.
    ``width`` m and ``outputs`` d scale the constant as in the lemma; without ``width`` only the
    unscaled constants are given.
    """
    f = np.asarray(losses, dtype=np.float64)
    g2 = np.asarray(grad_sqs, dtype=np.float64)
    if f.shape != g2.shape or f.size == 0:
        raise LandscapeError("need as many gradient norms as losses, and at least one")
    if n < 1 or not delta > 0:
        raise LandscapeError(f"need n ≥ 1 and δ > 0, got n={n}, δ={delta}")
    keep = f > 0
    if not keep.any():
        raise LandscapeError("every loss is zero: the dominance constant is undefined")
    c_mean = float(np.min(g2[keep] / f[keep]))
    c_sum = n * c_mean
    lemma = delta / n ** 2
    c_scaled = c_sum * outputs / width if width else None
    return DominanceComparison(c_mean, c_sum, c_scaled, lemma,
                               c_scaled / lemma if c_scaled is not None else None, n, float(delta))
