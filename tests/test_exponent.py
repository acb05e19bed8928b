"""trajectory.gradient_exponent: the exponent p of ‖∇F‖² ∝ F^p on synthetic tracks with a known p."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student

from landscape.trajectory import EXPONENT_MIN_POINTS, gradient_exponent


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_the_exponent_of_an_exact_power_law_is_recovered(p):
    F = np.geomspace(3.0, 1e-5, 30)
    fit = gradient_exponent(F, 0.7 * F ** p)
    assert fit["p"] == pytest.approx(p, abs=1e-12) and fit["k"] == pytest.approx(0.7, rel=1e-10)
    assert fit["n"] == 30 and fit["high"] - fit["low"] < 1e-9 and fit["reason"] is None
    assert fit["F_range"] == [pytest.approx(1e-5), pytest.approx(3.0)]


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_the_interval_is_the_t_interval_and_covers_p_under_lognormal_noise(p):
    rng = np.random.default_rng(3)
    F = np.geomspace(2.0, 1e-4, 40)
    hits = 0
    for _ in range(200):
        fit = gradient_exponent(F, F ** p * np.exp(rng.normal(0, 0.3, len(F))))
        hits += fit["low"] <= p <= fit["high"]
    assert 0.9 <= hits / 200 <= 0.99  # a 95 % interval, independent noise
    # the half-width by hand: t quantile × standard error of the slope
    y = np.log(F ** p * np.exp(rng.normal(0, 0.3, len(F))))
    x = np.log(F)
    slope, intercept = np.polyfit(x, y, 1)
    se = np.sqrt(np.sum((y - intercept - slope * x) ** 2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    fit = gradient_exponent(F, np.exp(y))
    assert fit["p"] == pytest.approx(slope, rel=1e-10)
    assert fit["high"] - fit["p"] == pytest.approx(student.ppf(0.975, len(x) - 2) * se, rel=1e-10)


def test_points_that_cannot_go_on_a_log_scale_are_dropped_and_too_few_give_no_fit():
    fit = gradient_exponent([1.0, 0.5, 0.0, 0.25, np.nan], [1.0, 0.25, 0.0, 0.0625, 1.0])
    assert fit["p"] == pytest.approx(2.0) and fit["n"] == 3 and fit["dropped"] == 2
    fit = gradient_exponent([1.0, 0.5], [1.0, 0.25])
    assert np.isnan(fit["p"]) and f"needs {EXPONENT_MIN_POINTS}" in fit["reason"]
    fit = gradient_exponent([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])  # one F: no slope
    assert np.isnan(fit["p"]) and fit["reason"]
