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


def test_epoch_labels_never_overlap(ax):
    F = np.array([1.0, 1.001, 0.999, 1.0, 1.002, 0.01])
    G = F.copy()   # five checkpoints at one spot: at most one label on each side of it, none on another
    plots.draw_dominance(ax, None, None, None, F, G, np.array([5.0, 6.0, 7.0, 8.0, 9.0, 90.0]), np.zeros(6),
                         floor=0.001, cmap=plt.get_cmap("viridis"), norm=mcolors.Normalize(0, 90))
    texts = [t.get_text() for t in ax.texts]
    assert "ep 90" in texts and "ep 5" in texts and len(texts) < 6
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_dominance_panels_share_one_short_legend():
    fig, axes = plt.subplots(1, 2, layout="constrained")
    for ax, G in zip(axes, (np.array([4.0, 1.5]), np.array([3.0, 1.0]))):
        env = plots.draw_dominance(ax, None, None, None, np.array([2.0, 1.0]), G, np.array([0.0, 1.0]), np.zeros(2),
                                   floor=0.01, cmap=plt.get_cmap("viridis"), norm=mcolors.Normalize(0, 1),
                                   labels=False)
        assert not ax.texts and env["c"] == pytest.approx(min(G / np.array([2.0, 1.0])))
    plots.shared_legend(fig, axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["checkpoints", "envelope ‖∇F‖² = c·F"]
    plt.close(fig)


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


def test_accuracy_along_the_interpolation_stays_linear(ax):
    alpha = np.linspace(0, 1, 5)
    plots.draw_interpolation(ax, alpha, np.array([0.05, 0.1, 0.5, 0.9, 1.0]), np.full(5, 0.3), 0, 9, log=False)
    assert ax.get_yscale() == "linear"


def test_an_unresolved_decrease_is_drawn_at_its_bound(ax):
    base = {"d_grad": 0.1, "d_plane": 0.14, "extra_fraction": 0.4}
    below = {"resolved": False, "bound": 1.7e-5, "side": "below"}  # as readers.load_second_order gives it
    tests = [{**base, "epoch": 5, "repeat": 0, "d_curv": float("nan"), "unresolved": {"d_curv": below}},
             {**base, "epoch": 40, "repeat": 0, "d_curv": 0.05, "unresolved": {}}]
    plots.draw_decreases(ax, tests)
    (open_marker,) = [line for line in ax.lines if "not resolved" in line.get_label()]
    assert open_marker.get_label().startswith("d_curv not resolved: below its bound")
    x, y = open_marker.get_data()
    assert y.tolist() == [1.7e-5] and abs(x[0] - 5) < 1  # at its epoch (shifted beside the others)


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



def _probe(F=0.01, floor=1e-6, **extra) -> dict:
    """A probe record whose scout reached |r| far beyond F (as the quick preset's does at |t| ≈ 100)."""
    t = np.array([1e-3, -1e-3, 1e-2, -1e-2, 0.1, -0.1, 30.0, -30.0, 100.0])
    a, b = 0.0, 0.5
    r = a * np.abs(t) + b * t ** 2
    r[6:] = [1e20, 1e18, np.inf]  # beyond the fit's ceiling F (one not even finite)
    return {"name": "neg_gradient", "kind": "neg_gradient", "t": t, "r": r, "a": a, "b": b, "F": F,
            "noise_floor": floor, "resolved": True, "a_over_sqrt_F": 0.0, **extra}


def test_probe_points_beyond_F_are_pinned_at_the_top_and_left_out_of_the_fit_line(ax):
    p = _probe()
    n = plots.draw_probe(ax, p["t"], p["r"], p["a"], p["b"], p["noise_floor"], fit_label="fit", ceiling=p["F"])
    assert n == 3
    fit = next(line for line in ax.lines if line.get_label() == "fit")
    assert fit.get_xdata().max() == pytest.approx(0.1)  # the fitted steps only, not the scout's 30 and 100
    (top,) = [line for line in ax.lines if line.get_transform() != ax.transData]
    np.testing.assert_allclose(top.get_xydata(), [[30.0, 1.0], [30.0, 1.0], [100.0, 1.0]])
    drawn = np.concatenate([line.get_ydata() for line in ax.lines if line.get_transform() == ax.transData])
    assert drawn.max() <= p["F"]


def test_smoothness_panel_range_is_the_fitted_one_and_its_legend_counts_the_points_beyond(ax):
    probes = [_probe(), _probe(floor=2e-6, name="gaussian_0", kind="gaussian")]
    assert plots.probe_ylim(probes) == pytest.approx((1e-8, 0.1))  # smallest floor / 100 … 10 × F
    assert plots.draw_probe_panel(ax, probes) == 6
    assert ax.get_ylim() == pytest.approx((1e-8, 0.1))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "|r| > F: outside the fit (6 points, top edge)" in labels
    # a probe file may name its own ceiling; without points beyond it there is no such entry
    assert plots.probe_ceiling(_probe(fit_ceiling=0.5)) == 0.5
    fig, other = plt.subplots()
    inside = _probe()
    inside["r"] = inside["r"].copy()
    inside["r"][6:] = 1e-3
    assert plots.draw_probe_panel(other, [inside]) == 0
    assert not any("outside the fit" in t.get_text() for t in other.get_legend().get_texts())
    plt.close(fig)


def test_probe_residuals_below_the_axis_are_pinned_at_the_bottom(ax):
    t, r = np.array([1e-4, 1e-2, 0.1]), np.array([1e-14, 1e-4, 1e-2])
    plots.draw_probe(ax, t, r, 0.0, 1.0, 1e-9, fit_label="fit", bottom=1e-11)
    (low,) = [line for line in ax.lines if line.get_transform() != ax.transData]
    np.testing.assert_allclose(low.get_xydata(), [[1e-4, 0.0]])


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


def _drawn(ax) -> dict:
    """label -> [(x, y, 'data' | 'top' | 'bottom')] of the labelled marker lines on ``ax``."""
    out = {}
    for line in ax.lines:
        if line.get_label().startswith("_") or line.get_linestyle() not in ("None", "none", ""):
            continue
        data = line.get_transform() == ax.transData
        out[line.get_label()] = [(x, y, "data" if data else ("top" if y == 1 else "bottom"))
                                 for x, y in line.get_xydata().tolist()]
    return out


def test_star_convexity_draws_every_checkpoint_coloured_by_the_verdict(ax):
    from landscape.trajectory import FAILS, HOLDS, UNRESOLVED

    epoch = np.array([0.0, 5.0, 40.0, 90.0, 120.0, 130.0])
    # 0, 5: F(θ_t) below F(θ_T), no ratio (the verdict compares the sides); 90: ratio ≤ 0; 130: within rounding
    ratio = np.array([np.nan, np.nan, 0.4, -2.0, 1.6, 0.99])
    status = np.array([HOLDS, FAILS, FAILS, FAILS, HOLDS, UNRESOLVED])
    assert plots.draw_star_convexity(ax, epoch, ratio, status) == len(epoch)
    assert _drawn(ax) == {
        "holds": [(120.0, 1.6, "data")], "fails": [(40.0, 0.4, "data")],
        "within rounding": [(130.0, 0.99, "data")],
        "holds, no ratio: F(θ_t) ≤ F(θ_T) (top edge)": [(0.0, 1.0, "top")],
        "fails, no ratio: F(θ_t) ≤ F(θ_T) (top edge)": [(5.0, 1.0, "top")],
        "fails, ratio ≤ 0 (bottom edge)": [(90.0, 0.0, "bottom")]}
    assert ax.get_yscale() == "log"
    # several repeats name theirs; the y range holds 1 and every positive ratio
    plots.draw_star_convexity(ax, epoch[:1], np.array([2.0]), np.array([HOLDS]), label="repeat 1")
    assert "repeat 1: holds" in _drawn(ax)
    lo, hi = plots.star_ylim(ratio)
    assert lo < 0.4 and hi > 1.6 and lo > 0.4 / 2 and hi < 1.6 * 2


def test_star_status_of_files_before_the_rounding_verdict():
    from landscape.trajectory import FAILS, HOLDS

    old = {"star_holds": np.array([1.0, 0.0])}
    np.testing.assert_array_equal(plots.star_status(old), [HOLDS, FAILS])
    np.testing.assert_array_equal(plots.star_status({**old, "star_status": np.array([0.0, 1.0])}), [0.0, 1.0])


def test_spectrum_legend_omits_an_undefined_error():
    base = {"repeat": 1, "negative_mass": 2e-6}
    assert plots.spectrum_label({**base, "negative_mass_stderr": float("nan")}) == "repeat 1: negative mass 2.0e-06"
    assert plots.spectrum_label({**base, "negative_mass_stderr": 1e-6}).endswith("2.0e-06 ± 1.0e-06")
    assert plots.spectrum_label(base, named=False) == "negative mass 2.0e-06"  # one repeat: no 'repeat 0'


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


def test_a_log_axis_under_a_decade_has_round_ticks_with_1_among_them(ax):
    assert plots.nice_log_ticks(0.625, 2.9) == [0.7, 1.0, 1.5, 2.0]
    assert plots.nice_log_ticks(0.0015, 0.009) == [0.0015, 0.002, 0.003, 0.005, 0.007]
    ax.plot([1, 2], [0.7, 1.8])
    ax.set_yscale("log")
    ax.set_ylim(0.625, 2.9)
    plots.tick_format(ax, "y")
    assert [t for t in ax.get_yticks() if 0.625 <= t <= 2.9] == [0.7, 1.0, 1.5, 2.0]


def test_surface_marks_say_when_the_lowest_point_is_the_checkpoint():
    res = {"F": 0.5, "along_x": {"at": -0.1, "decrease": 0.02}, "along_y": {"at": 0.0, "decrease": 0.0},
           "anywhere": {"at": [-0.1, 0.0], "decrease": 0.02}}
    labels = [style["label"] for _, _, style in plots.surface_marks(res, "paper")]
    assert labels == ["checkpoint, F = 0.5", "lowest on x-axis: F − 0.02", "lowest on y-axis: the checkpoint",
                      "lowest on grid: F − 0.02"]
    assert [s["label"] for *_, s in plots.surface_marks({**res, "anywhere": {"at": [0, 0], "decrease": 0.0}},
                                                         "random")][-1] == "lowest on grid: the checkpoint"


def test_log_coloured_values_get_round_ticks():
    assert plots.log_value_ticks(0.0071, 0.213) == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert plots.log_value_ticks(1e-5, 3.0) == [1e-5, 1e-4, 0.001, 0.01, 0.1, 1.0]
    assert plots.log_value_ticks(1.15, 1.93) == [1.2, 1.5]  # finer steps where the round ones are too few
    assert plots.nice_log_ticks(2.28, 2.63) == [2.3, 2.4, 2.5, 2.6]
    assert plots.log_value_ticks(2.0, 2.0) == [] and plots.log_value_ticks(0.0, 1.0) == []
