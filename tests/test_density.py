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


def _outlier_spectrum(n=600, k=6, seed=0):
    """k eigenvalues in [8, 40] above a bulk in [−0.3, 0.6], far below λ_max/10 = 4."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.uniform(-0.3, 0.6, n - k), np.linspace(8, 40, k)], rng


def test_outlier_count_recovers_the_number_of_outliers_within_its_standard_error():
    """Random eigenvectors: each probe's count varies ((zᵀu)² has mean 1, variance about 2 per outlier)."""
    eigenvalues, rng = _outlier_spectrum()
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    q = lanczos_quadrature(aslinearoperator((Q * eigenvalues) @ Q.T), probes=32, steps=30, seed=0)
    out = outlier_count(q)
    assert out.edge == pytest.approx(4.0, rel=1e-9) and out.probes == 32
    assert 0.1 < out.stderr < 1.0  # small enough to tell 6 from 4 or 8
    assert abs(out.value - 6) <= 3 * out.stderr
    assert out.as_dict() == {"value": out.value, "stderr": out.stderr, "probes": 32, "edge": out.edge}


def test_outlier_count_is_exact_on_a_diagonal_operator_and_has_no_stderr_with_one_probe():
    """Rademacher probes put exactly 1/n on every coordinate eigenvector: every probe counts the 6."""
    eigenvalues, _ = _outlier_spectrum()
    op = aslinearoperator(np.diag(eigenvalues))
    out = outlier_count(lanczos_quadrature(op, probes=4, steps=30, seed=0))
    assert out.value == pytest.approx(6, abs=1e-9) and out.stderr < 1e-9
    one = outlier_count(lanczos_quadrature(op, probes=1, steps=30, seed=0))
    assert one.value == pytest.approx(6, abs=1e-9) and one.stderr is None and one.probes == 1
    # nothing stands out of a spectrum without a positive top: the count is 0, not NaN
    flat = outlier_count(lanczos_quadrature(aslinearoperator(np.diag(-1 - np.abs(eigenvalues))), probes=3, steps=10))
    assert flat.value == 0 and flat.stderr == 0


def test_an_invariant_krylov_space_ends_a_probe_early():
    op = aslinearoperator(np.diag(np.r_[[1.0] * 50, [-2.0] * 50]))
    q = lanczos_quadrature(op, probes=3, steps=10)
    assert q.matvecs == 3 * 2
    assert negative_mass(q).value == pytest.approx(0.5)  # Rademacher probes weigh ±1 coordinates equally
    with pytest.raises(LandscapeError):
        lanczos_quadrature(op, probes=0)
