"""The drawing layer puts exactly the given numbers on the Axes (no files, no run needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

from landscape import plots  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_dominance_draws_the_points_and_the_envelope_through_the_smallest_ratio(ax):
    F = np.array([2.0, 1.0, 0.5, 0.005])
    G = np.array([4.0, 1.5, 0.9, 1e-6])  # ratios 2, 1.5, 1.8, and one point below the floor
    env = plots.draw_dominance(ax, None, None, None, F, G, np.arange(4.0), np.zeros(4), floor=0.01,
                               cmap=plt.get_cmap("viridis"), norm=mcolors.Normalize(0, 3))
    assert env["c"] == pytest.approx(1.5) and env["points"] == 3
    (diamonds,) = ax.collections
    np.testing.assert_array_equal(diamonds.get_offsets(), np.column_stack([F, G]))
    envelope = next(line for line in ax.lines if line.get_linestyle() == "--")
    x, y = envelope.get_data()
    np.testing.assert_allclose(y / x, 1.5)  # the line G = c·F
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["ep 0", "ep 1", "ep 2", "ep 3"]


def test_interpolation_draws_train_and_test_along_alpha(ax):
    alpha = np.linspace(-0.5, 1.5, 9)
    train, test = alpha ** 2, alpha ** 2 + 1
    plots.draw_interpolation(ax, alpha, train, test, 0, 40)
    np.testing.assert_array_equal(ax.lines[0].get_xydata(), np.column_stack([alpha, train]))
    np.testing.assert_array_equal(ax.lines[1].get_xydata(), np.column_stack([alpha, test]))
    assert [t.get_text() for t in ax.texts] == ["α=0\nepoch 0", "α=1\nepoch 40"]


def test_probe_draws_the_loss_change_the_residuals_and_the_fit():
    fig, (ax_f, ax_r) = plt.subplots(1, 2)
    t = np.array([0.1, -0.1, 0.0, 0.01, -0.01])
    a, b, F = 0.3, 2.0, 1.0
    r = a * np.abs(t) + b * t ** 2
    f = F + 0.5 * t + r
    plots.draw_probe(ax_f, ax_r, t, f, r, F, a, b, noise_floor=1e-9)
    order = np.argsort(t)
    np.testing.assert_allclose(ax_f.lines[0].get_xydata(), np.column_stack([t[order], f[order] - F]))
    pos, neg = ax_r.lines[0].get_xydata(), ax_r.lines[1].get_xydata()
    np.testing.assert_allclose(pos, [[0.01, r[3]], [0.1, r[0]]])  # t > 0, in order of t
    np.testing.assert_allclose(neg, [[0.1, r[1]], [0.01, r[4]]])
    gx, gy = ax_r.lines[3].get_data()
    np.testing.assert_allclose(gy, a * gx + b * gx ** 2)
    assert gx.min() == pytest.approx(0.01) and gx.max() == pytest.approx(0.1)
    plt.close(fig)


def test_spread_bars_span_min_to_max(ax):
    x, mid, lo, hi = np.array([1.0, 2.0]), np.array([0.5, 0.7]), np.array([0.2, 0.7]), np.array([0.9, 1.0])
    plots.draw_spread(ax, x, mid, lo, hi)
    (bars,) = [c for c in ax.collections]
    segments = np.array(bars.get_segments())
    np.testing.assert_allclose(segments[:, :, 1], np.column_stack([lo, hi]))
    np.testing.assert_allclose(ax.lines[0].get_xydata(), np.column_stack([x, mid]))


def test_contour_marks_and_an_all_nan_grid(ax):
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    Z = xs[None, :] ** 2 + ys[:, None] ** 2
    marks = [(0.0, 0.0, dict(marker="o", label="checkpoint")), (0.5, -0.5, dict(marker="*", label="lowest"))]
    assert plots.draw_surface_contour(ax, xs, ys, Z, "F (train loss)", marks)
    drawn = [line.get_xydata()[0].tolist() for line in ax.lines if line.get_marker() in ("o", "*")]
    assert drawn == [[0.0, 0.0], [0.5, -0.5]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["checkpoint", "lowest"]
    fig, other = plt.subplots()
    assert not plots.draw_surface_contour(other, xs, ys, np.full_like(Z, np.nan), "F", [])
    assert other.texts[0].get_text() == "no finite F on this grid"
    plt.close(fig)


def test_spread_of_equal_values_draws_zero_bars(ax):
    values = np.array([0.1, 0.1, 0.1]) * 3  # mean can exceed the max by one rounding step
    mid, lo, hi = np.array([values.mean() + 1e-17]), np.array([values.min()]), np.array([values.max()])
    plots.draw_spread(ax, np.array([1.0]), mid, lo, hi)  # must not raise
