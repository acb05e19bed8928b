"""Stochastic Lanczos quadrature against dense matrices with known spectra."""

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator
from scipy.stats import wasserstein_distance

from landscape.density import lanczos_quadrature, negative_mass, outlier_count, spectral_density
from landscape.errors import LandscapeError


def _known_spectrum(n=800, seed=0):
    """A bulk (30% of it negative, in a band away from 0) and four outliers above, one below."""
    rng = np.random.default_rng(seed)
    eigenvalues = np.r_[rng.normal(1, 0.5, n - 245), rng.uniform(-1.5, -0.3, 240), [8, 9, 12, 15, -5]]
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return eigenvalues, aslinearoperator((Q * eigenvalues) @ Q.T)


@pytest.fixture(scope="module")
def slq():
    eigenvalues, op = _known_spectrum()
    return eigenvalues, lanczos_quadrature(op, probes=12, steps=50, seed=1)


def test_quadrature_shape_and_cost(slq):
    _, q = slq
    assert q.probes == 12 and q.matvecs == 12 * 50 and q.dim == 800
    for nodes, weights in zip(q.nodes, q.weights):
        assert len(nodes) == len(weights) == 50
        assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    nodes, weights = q.pooled()
    assert weights.sum() == pytest.approx(1.0)


def test_distribution_matches_the_eigenvalue_histogram(slq):
    """Wasserstein-1 distance to the true spectrum within 0.5% of its span (measured: about 0.15%)."""
    eigenvalues, q = slq
    nodes, weights = q.pooled()
    distance = wasserstein_distance(nodes, eigenvalues, u_weights=weights)
    assert distance <= 0.005 * np.ptp(eigenvalues)
    # far fewer steps match it less well, so the test can tell
    coarse_nodes, coarse_weights = lanczos_quadrature(_known_spectrum()[1], probes=12, steps=4, seed=1).pooled()
    assert wasserstein_distance(coarse_nodes, eigenvalues, u_weights=coarse_weights) > 2 * distance


@pytest.mark.parametrize("width", [None, 0.05, 0.5])
def test_density_integrates_to_one(slq, width):
    _, q = slq
    grid = np.linspace(-10, 20, 30001)
    assert np.trapezoid(spectral_density(q, grid, width), grid) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(LandscapeError):
        spectral_density(q, grid, width=0.0)


def test_negative_mass_within_its_standard_error(slq):
    eigenvalues, q = slq
    mass = negative_mass(q)
    assert 0 < mass.stderr < 0.05
    assert abs(mass.value - np.mean(eigenvalues < 0)) <= 4 * mass.stderr
    assert negative_mass(q, below=-100).value == 0 and negative_mass(q, below=100).value == pytest.approx(1.0)


def test_outliers_detached_from_the_bulk(slq):
    _, q = slq
    out = outlier_count(q)
    assert (out.above, out.below) == (4, 1)
    assert -1.6 < out.low < -1.2 and 2.0 < out.high < 3.0


def test_an_invariant_krylov_space_ends_a_probe_early():
    op = aslinearoperator(np.diag(np.r_[[1.0] * 50, [-2.0] * 50]))
    q = lanczos_quadrature(op, probes=3, steps=10)
    assert q.matvecs == 3 * 2
    assert negative_mass(q).value == pytest.approx(0.5)  # Rademacher probes weigh ±1 coordinates equally
    with pytest.raises(LandscapeError):
        lanczos_quadrature(op, probes=0)
