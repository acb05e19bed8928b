"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao, ICML 2019).

For a unit probe z, m Lanczos steps from z give the m-point Gauss quadrature of the measure
Σ_i (zᵀu_i)² δ(λ − λ_i): nodes = Ritz values, weights = squared first components of T's
eigenvectors. With Rademacher z/√n, E (zᵀu_i)² = 1/n, so the mean over probes estimates the
spectral distribution (1/n) Σ_i δ(λ − λ_i). Everything below reads that list of nodes and weights:
the density, the negative mass and the outlier count (the README's definitions, in one place each).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .curvature import as_operator
from .errors import LandscapeError
from .lanczos import LanczosBasis


@dataclass
class SpectralQuadrature:
    """Per probe, the Gauss-quadrature nodes (Ritz values) and weights (each probe's sum to 1)."""

    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    dim: int
    steps: int
    matvecs: int
    seconds: float

    @property
    def probes(self) -> int:
        return len(self.nodes)

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """All probes' nodes and weights as one distribution (weights sum to 1)."""
        return np.concatenate(self.nodes), np.concatenate(self.weights) / self.probes


def lanczos_quadrature(op, probes: int = 10, steps: int = 80, seed: int = 0) -> SpectralQuadrature:
    """Stochastic Lanczos quadrature: ``steps`` Lanczos steps (full reorthogonalization) from each of ``probes`` Rademacher vectors.

    Costs probes × steps products and holds steps + 1 vectors. A probe whose Krylov space
    becomes invariant early stops there (its quadrature is then exact).
    """
    op = as_operator(op)
    n = op.shape[0]
    if probes < 1 or steps < 1:
        raise LandscapeError(f"need probes >= 1 and steps >= 1, got {probes} and {steps}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    nodes, weights, products = [], [], 0
    for _ in range(probes):
        z = rng.integers(0, 2, n).astype(np.float64) * 2 - 1
        basis = LanczosBasis(lambda x: op.matvec(x), z, steps)
        while basis.extend() and not basis.full:
            pass
        values, S, _ = basis.ritz()
        nodes.append(values)
        weights.append(S[0, :] ** 2 / np.sum(S[0, :] ** 2))
        products += basis.products
    return SpectralQuadrature(nodes, weights, n, steps, products, time.perf_counter() - start)


def default_width(quadrature: SpectralQuadrature) -> float:
    """1% of the span of the nodes: the broadening ``spectral_density`` uses unless told."""
    nodes, _ = quadrature.pooled()
    span = float(nodes.max() - nodes.min())
    return 0.01 * span if span > 0 else 1.0


def spectral_density(quadrature: SpectralQuadrature, grid: np.ndarray, width: float | None = None) -> np.ndarray:
    """The density on ``grid``: each node spread as a Gaussian of standard deviation ``width``.

    ``width`` defaults to ``default_width`` (1% of the span of the nodes). The result
    integrates to 1 over a grid reaching a few widths past the extreme nodes.
    """
    width = default_width(quadrature) if width is None else float(width)
    if width <= 0:
        raise LandscapeError(f"width must be positive, got {width}")
    nodes, weights = quadrature.pooled()
    grid = np.asarray(grid, dtype=np.float64)
    z = (grid[:, None] - nodes[None, :]) / width
    return (np.exp(-0.5 * z ** 2) @ weights) / (width * np.sqrt(2 * np.pi))


OUTLIER_EDGE = 0.1  # an outlier lies above this fraction of the largest node (λ_max/10)


def _stderr(per_probe: np.ndarray) -> float | None:
    """The standard error of the mean over probes; None for one probe (no spread to estimate)."""
    return float(per_probe.std(ddof=1) / np.sqrt(len(per_probe))) if len(per_probe) > 1 else None


@dataclass
class Estimate:
    """A mean over probes and its standard error (None with one probe: never a NaN)."""

    value: float
    stderr: float | None
    probes: int

    def as_dict(self) -> dict:
        """Plain JSON-ready values."""
        return asdict(self)


def negative_mass(quadrature: SpectralQuadrature, below: float = 0.0) -> Estimate:
    """The weight on eigenvalues below ``below`` (default 0): the fraction of negative eigenvalues.

    Per probe, the quadrature weight on nodes < ``below``; reported as the mean over probes and
    its standard error (sample standard deviation / √probes; None for one probe, never NaN). The
    standard error covers the probes' randomness only, not the quadrature's bias, which is small
    when few eigenvalues lie within the node spacing of ``below``.
    """
    per_probe = np.array([w[x < below].sum() for x, w in zip(quadrature.nodes, quadrature.weights)])
    return Estimate(float(per_probe.mean()), _stderr(per_probe), quadrature.probes)


@dataclass
class OutlierCount(Estimate):
    """How many eigenvalues stand out above ``edge`` = λ_max/10 (λ_max: the largest node)."""

    edge: float


def outlier_count(quadrature: SpectralQuadrature) -> OutlierCount:
    """Outliers = dimension × the weight above a tenth of the largest node, with its standard error over probes.

    Each eigenvalue carries 1/dimension of the weight on average over Rademacher probes, so
    dimension × the weight of the nodes above ``edge`` = λ_max/10 estimates how many eigenvalues lie
    above it. Per probe that count is dim × Σ w over its nodes > edge; reported: the mean over
    probes and its standard error (None for one probe), which covers the probes' randomness, not
    the quadrature's bias (small once ``steps`` exceeds the number of outliers, each then a
    converged Ritz value). A spectrum whose largest node is ≤ 0 has no node above λ_max/10: 0.
    """
    nodes, _ = quadrature.pooled()
    edge = OUTLIER_EDGE * float(nodes.max())
    per_probe = np.array([quadrature.dim * w[x > edge].sum() for x, w in zip(quadrature.nodes, quadrature.weights)])
    return OutlierCount(float(per_probe.mean()), _stderr(per_probe), quadrature.probes, edge)
