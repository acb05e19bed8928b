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
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "0\nep 0" in labels and "1\nep 40" in labels
    assert ax.get_yscale() == "linear"  # a zero among the values: no log axis


def test_interpolation_axis_is_logarithmic_when_the_loss_spans_decades(ax):
    alpha = np.linspace(0, 1, 5)
    plots.draw_interpolation(ax, alpha, 10.0 ** -(4 * alpha), 10.0 ** -(2 * alpha), 0, 9)
    assert ax.get_yscale() == "log"


def test_probe_draws_the_residuals_and_the_fit_over_the_measured_steps_only(ax):
    t = np.array([0.1, -0.1, 0.0, 0.01, -0.01, 1e-4, -1e-4])
    a, b = 0.3, 2.0
    r = a * np.abs(t) + b * t ** 2
    r[5:] = 1e-12                      # the smallest steps sit below the noise floor
    plots.draw_probe(ax, t, r, a, b, noise_floor=1e-9, fit_label="fit")
    pos, neg = ax.lines[0].get_xydata(), ax.lines[1].get_xydata()
    np.testing.assert_allclose(pos, [[0.1, r[0]], [0.01, r[3]]])
    np.testing.assert_allclose(neg, [[0.1, r[1]], [0.01, r[4]]])
    gx, gy = ax.lines[3].get_data()
    np.testing.assert_allclose(gy, a * gx + b * gx ** 2)
    # the fit is drawn where it was measured (the points above the floor), never extrapolated
    assert gx.min() == pytest.approx(0.01) and gx.max() == pytest.approx(0.1)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_an_unresolved_probe_fit_is_shown_as_not_measured(ax):
    t = np.array([0.1, -0.1, 0.01, -0.01])
    probe = {"name": "gaussian_0", "a": None, "b": None, "resolved": False, "a_over_sqrt_F": None}
    assert not plots.probe_resolved(probe)
    assert not plots.probe_resolved({"name": "x", "a": float("nan"), "b": 1.0})
    # an old fit of a = b = 0 on residuals that all sit below the noise floor is not a measurement either
    flat = {"name": "x", "a": 0.0, "b": 0.0, "t": t, "r": np.full(4, 1e-12), "noise_floor": 1e-9}
    assert not plots.probe_resolved(flat) and plots.probe_resolved({**flat, "r": np.full(4, 1e-6)})
    label = plots.probe_fit_label(probe)
    assert "not measured" in label and "nan" not in label and "=" not in label
    plots.draw_probe(ax, t, np.full(4, 1e-3), None, None, noise_floor=1e-9, fit_label=label, resolved=False)
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == [label]
    assert all(len(line.get_xdata()) == 2 for line in ax.lines[:2])  # points drawn, no fit line
    resolved = {"name": "neg_gradient", "a": 0.1, "b": 2.0, "a_over_sqrt_F": 0.05}
    assert plots.probe_fit_label(resolved) == "neg_gradient: a/√F = 0.05, b = 2"


def test_star_convexity_is_a_ratio_coloured_by_the_verdict(ax):
    epoch = np.array([0.0, 1.0, 2.0, 3.0])
    ratio = np.array([3.0, 0.4, -2.0, np.nan])
    holds = np.array([True, False, False, False])
    plots.draw_star_convexity(ax, epoch, ratio, holds, label="repeat 0", floor=0.1)
    by_label = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert by_label == {"repeat 0: holds": [[0.0, 3.0]], "repeat 0: fails": [[1.0, 0.4]],
                        "repeat 0: fails, ratio ≤ 0 (at the bottom)": [[2.0, 0.1]]}
    assert ax.get_yscale() == "log"


def test_spectrum_legend_omits_an_undefined_error():
    base = {"repeat": 1, "negative_mass": 2e-6}
    assert plots.spectrum_label({**base, "negative_mass_stderr": float("nan")}) == "repeat 1: negative mass 2.0e-06"
    assert plots.spectrum_label({**base, "negative_mass_stderr": 1e-6}).endswith("2.0e-06 ± 1.0e-06")


def test_tick_labels_share_one_format():
    from landscape.text import fmt_tick

    assert [fmt_tick(v) for v in (100, 1e-4, 0.001, 1000, 2.5e-5, 0.5, 1e4)] == \
        ["100", "1e-4", "0.001", "1000", "2.5e-5", "0.5", "1e4"]


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


def test_captions_do_not_flag_per_checkpoint_keys_as_differing_settings():
    from landscape.text import common_caption

    base = {"arch": "resnet8", "examples": 32, "precision": "fp32"}
    same = [dict(base, epoch=e, checkpoint=f"c{e}", checkpoint_sha256=str(e) * 8) for e in range(3)]
    assert "differ" not in common_caption(same)
    assert "differ" in common_caption(same + [dict(base, examples=64)])


def test_probe_label_gives_the_judged_ratio_and_the_fit_quality_when_the_reader_has_them():
    p = {"name": "hessian_top", "a": 0.2, "b": 3.0, "a_over_sqrt_F": 0.1, "a_over_grad_norm": 0.4,
         "distinct_t": 12, "rel_rms": 0.05, "resolved": True}
    assert plots.probe_fit_label(p) == "hessian_top: a/‖∇F‖ = 0.4, a/√F = 0.1, b = 3 (12 |t|, looseness 0.05)"
    gone = {**p, "resolved": False, "reason": "3 |t| between floor and F"}
    assert plots.probe_fit_label(gone) == "hessian_top: not measured (3 |t| between floor and F)"
    assert "nan" not in plots.probe_fit_label({**p, "rel_rms": float("nan"), "a_over_grad_norm": None})
    # an a below the probe's resolution (the envelope's a = 0) shows its bound, never 'a/‖∇F‖ = 0'
    hidden = {**p, "a": 0.0, "a_over_grad_norm": 0.0, "a_over_sqrt_F": 0.0, "a_resolved": False,
              "a_resolution_over_grad_norm": 0.0031, "a_resolution_over_sqrt_F": 0.0012}
    label = plots.probe_fit_label(hidden)
    assert label == "hessian_top: a/‖∇F‖ < 0.0031 (bound), a/√F < 0.0012 (bound), b = 3 (12 |t|, looseness 0.05)"
    assert "= 0" not in label
    unknown = {**hidden, "a_resolution_over_grad_norm": float("nan"), "a_resolution_over_sqrt_F": None}
    assert plots.probe_fit_label(unknown) == "hessian_top: a not resolved, b = 3 (12 |t|, looseness 0.05)"
