"""landscape.scaling: the slope of log q on log width, its interval, the verdicts, the theory's table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.scaling import (PREDICTIONS, Prediction, by_seed, fit_slope, judge, predictions,
                               theorem_lr)

WIDTHS = np.array([1.0, 2, 4, 8, 16, 32])


def _power_law(exponent: float, sigma: float, seeds: int, rng_seed: int, widths=WIDTHS) -> np.ndarray:
    """q = 3·m^exponent·lognormal(σ), seeds × widths."""
    rng = np.random.default_rng(rng_seed)
    return 3.0 * widths ** exponent * np.exp(sigma * rng.standard_normal((seeds, len(widths))))


def test_slope_is_the_pooled_least_squares_fit_and_its_interval_covers_the_exponent():
    q = _power_law(0.7, 0.3, seeds=5, rng_seed=0)
    s = fit_slope(WIDTHS, {10 + k: row for k, row in enumerate(q)})
    x, y = np.broadcast_to(np.log(WIDTHS), q.shape).ravel(), np.log(q).ravel()
    slope, intercept = np.polyfit(x, y, 1)
    assert s.slope == pytest.approx(slope, rel=1e-12) and s.intercept == pytest.approx(intercept, rel=1e-12)
    assert (s.points, s.widths, s.seeds, s.dropped, s.missing) == (30, 6, 5, 0, 0)
    # balanced: the pooled slope is the mean of the seeds' slopes and the slope through the geometric means
    assert np.mean(list(s.per_seed.values())) == pytest.approx(s.slope, rel=1e-10)
    assert np.polyfit(np.log(s.width_values), np.log(s.centers), 1)[0] == pytest.approx(s.slope, rel=1e-10)
    assert s.low < 0.7 < s.high and s.high - s.low < 0.3
    assert s.low <= min(s.boot_low, s.t_low) + 1e-15 and s.high >= max(s.boot_high, s.t_high) - 1e-15
    assert s.resamples == 2000
    assert judge(s, Prediction("increases", 0.7, "equal", tolerance=0.2)) == "agrees"
    assert judge(s, "increases") == "agrees" and judge(s, "decreases") == "disagrees"
    assert judge(s, Prediction("increases", 1.0, "at_least", tolerance=0.1)) == "disagrees"
    assert fit_slope(WIDTHS, q).slope == s.slope  # an array reads as seeds × widths
    assert fit_slope(WIDTHS, q, seed=0).boot_low == fit_slope(WIDTHS, q, seed=0).boot_low  # seeded


def test_interval_covers_the_true_exponent_about_95_percent_of_the_time():
    widths = WIDTHS[:4]
    hits = sum(s.low <= 0.7 <= s.high for s in
               (fit_slope(widths, _power_law(0.7, 0.3, seeds=2, rng_seed=100 + r, widths=widths), resamples=200) for r in range(100)))
    assert hits >= 88  # the seed bootstrap alone covers about half the time with two seeds


def test_the_seed_bootstrap_is_the_spread_of_whole_curves():
    # two seeds, each an exact power law: the bootstrap draws {a, a}, {b, b}, {a, b} give slopes 0.5, 1.0 and
    # (with equal x) their mean 0.75; the percentile interval spans the two seeds' slopes
    s = fit_slope([1, 2, 4, 8], {0: [1, 2 ** 0.5, 2, 8 ** 0.5], 1: [1, 2, 4, 8]})
    assert s.per_seed == {0: pytest.approx(0.5), 1: pytest.approx(1.0)} and s.slope == pytest.approx(0.75)
    assert s.boot_low == pytest.approx(0.5) and s.boot_high == pytest.approx(1.0)


def test_an_all_zero_or_undefined_quantity_is_uninformative():
    zero = fit_slope([1, 2, 4], {0: [0.0, 0.0, 0.0], 1: [0.0, float("nan"), 0.0]})
    assert not zero.informative and "0 at every cell" in zero.reason
    assert (zero.dropped, zero.missing) == (5, 1)
    assert judge(zero, "decreases") == "uninformative" and judge(zero, "increases") == "uninformative"
    undefined = fit_slope([1, 2, 4], [[float("nan")] * 3])
    assert judge(undefined, "decreases") == "uninformative" and "undefined" in undefined.reason


def test_non_positive_values_are_dropped_and_counted_and_too_few_widths_refuse_a_slope():
    s = fit_slope([1, 2, 4, 8], {0: [4.0, 2.0, 1.0, 0.0], 1: [4.0, 2.0, 1.0, -1.0]})
    assert s.informative and s.dropped == 2 and s.widths == 3 and s.points == 6
    assert s.slope == pytest.approx(-1.0) and "2 values ≤ 0 dropped" in s.describe()
    refused = fit_slope([1, 2, 4, 8], {0: [1.0, 0.5, 0.0, 0.0], 1: [1.0, 0.4, 0.0, float("nan")]})
    assert not refused.informative and "only 2 widths" in refused.reason and refused.missing == 1
    assert judge(refused, "decreases") == "uninformative"
    assert not fit_slope([1, 2], [[1.0, 2.0]]).informative  # two widths fit any line


def test_pure_noise_is_inconclusive():
    noise = fit_slope([1, 2, 4, 8], np.exp(np.random.default_rng(0).standard_normal((3, 4))))
    assert noise.low < 0 < noise.high and noise.high - noise.low > 1.0
    assert judge(noise, "decreases") == "inconclusive" and judge(noise, "increases") == "inconclusive"
    # over many noise sweeps, a direction claim is wrongly decided about 2.5 % of the time
    agrees = sum(judge(fit_slope([1, 2, 4, 8], np.exp(np.random.default_rng(r).standard_normal((3, 4))),
                                 resamples=200), "decreases") == "agrees" for r in range(1, 101))
    assert agrees <= 8


def test_a_clearly_wrong_sign_disagrees():
    s = fit_slope(WIDTHS[:4], _power_law(1.0, 0.1, seeds=2, rng_seed=3, widths=WIDTHS[:4]))
    assert s.low > 0.5
    assert judge(s, "decreases") == "disagrees" and judge(s, "does not increase") == "disagrees"
    assert judge(s, PREDICTIONS["travelled"]) == "disagrees"


def test_judge_rule_on_the_band_edges():
    def slope(low, high):
        s = fit_slope([1, 2, 4], [[1.0, 2.0, 4.0]])
        s.low, s.high = low, high
        return s

    assert judge(slope(0.0, 1.0), "increases") == "inconclusive"  # touches 0: not shown to increase
    assert judge(slope(-1.0, 0.0), "increases") == "disagrees"
    assert judge(slope(-0.5, 0.1), "does not increase") == "agrees"  # within the flat tolerance
    assert judge(slope(-0.5, 0.3), "does not increase") == "inconclusive"
    at_most = Prediction("decreases", -0.5, "at_most", tolerance=0.25)
    assert judge(slope(-2.0, -0.3), at_most) == "agrees"
    assert judge(slope(-0.4, 0.0), at_most) == "inconclusive"
    assert judge(slope(-0.2, 0.0), at_most) == "disagrees"
    equal = Prediction("increases", 1.0, tolerance=0.25)
    assert judge(slope(0.8, 1.2), equal) == "agrees"
    assert judge(slope(0.5, 1.5), equal) == "inconclusive"  # wide: overlapping the band is not agreeing
    assert judge(slope(1.3, 2.0), equal) == "disagrees"
    assert judge(slope(0.8, 1.2), equal.sign()) == "agrees"
    assert judge(slope(0.5, 1.5), equal.sign()) == "agrees"
    capped = Prediction("decreases", -1 / 6, "at_most", tolerance=0.25)  # e + tol > 0: the sign still binds
    assert capped.band() == (-math.inf, 0.0, False, True)
    assert judge(slope(0.01, 0.05), capped) == "disagrees"
    with pytest.raises(LandscapeError, match="direction"):
        Prediction("grows")


def test_predictions_cover_the_sweep_quantities_and_the_mechanism_quantities():
    from landscape.sweep_fits import QUANTITIES

    assert {key for _, key in QUANTITIES.values()} <= set(PREDICTIONS)  # every sweep quantity is judged
    assert {"activation_flips", "spectral_movement", "ntk_min_eigenvalue"} <= set(PREDICTIONS)
    assert all(p.derivation for p in PREDICTIONS.values())
    assert PREDICTIONS["c"].exponent == 1.0 and PREDICTIONS["c"].direction == "increases"
    for q in ("travelled", "ntk_drift", "activation_flips", "spectral_movement"):
        high, high_open = PREDICTIONS[q].band()[1::2]
        assert PREDICTIONS[q].direction == "decreases" and (high < 0 or (high == 0 and high_open))
    theorem = predictions("theorem")
    assert theorem["steps"].band()[:2] == (-math.inf, 0.1) and theorem["c"] is PREDICTIONS["c"]
    assert theorem["steps"].exponent == 0.0 and "free of m" in theorem["steps"].derivation
    assert predictions("constant") == PREDICTIONS
    with pytest.raises(LandscapeError, match="learning-rate scaling"):
        predictions("sqrt")


def test_theorem_lr_shrinks_as_one_over_width():
    assert theorem_lr(0.05, 1, 1) == 0.05
    assert theorem_lr(0.05, 8, 1) == pytest.approx(0.05 / 8)
    assert theorem_lr(0.1, 512, 64) == pytest.approx(0.1 * 64 / 512)
    assert all(math.isclose(theorem_lr(0.2, w, 2) * w, 0.4) for w in (1, 2, 3, 7.5))  # η·m constant
    with pytest.raises(LandscapeError):
        theorem_lr(0.1, 0, 1)


def test_by_seed_aligns_rows_with_widths():
    rows = [{"width": 1, "seed": 0, "c": 2.0}, {"width": 2, "seed": 0, "c": 4.0}, {"width": 2, "seed": 1, "c": None}]
    table = by_seed(rows, "c", [1, 2], [0, 1])
    assert table[0] == [2.0, 4.0] and all(math.isnan(v) for v in table[1])
