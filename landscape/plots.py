"""Figures of a run directory, drawn only from its result files (nothing is computed here).

Two layers: ``draw_*`` functions draw arrays on a matplotlib Axes and know nothing of files
(use them for figures of your own); ``plot_*`` functions read a run through ``readers``, lay
out the panels, call the ``draw_*`` functions and caption the figure. The numbers a figure marks
(the envelope constant, thresholds) come from ``verdicts``. Every figure is written as PNG and
PDF in one style and says what its numbers were computed on (dataset, subset size, parameter
subset, batch-norm policy, precision, seed, epoch), read from the ``context`` stored with them.

* ``plot_surfaces``        the paper's Figure 1: F over the plane (gradient, most negative
                           curvature), 3D and contour, one panel per checkpoint epoch;
                           ``kind="random"`` draws the filter-normalized plane instead;
* ``plot_dominance``       ‖∇F‖² against F (log-log): dense track and checkpoints, with the
                           envelope ‖∇F‖² ≥ c·F; all parameters and hidden ones;
* ``plot_second_order``    the grid-free second-order test per checkpoint, with its spread;
* ``plot_smoothness``      |r(t)| against |t| along the probe directions with the a·|t| + b·t² fit
                           and the noise floor, in the fitted range (points beyond F at the top edge);
* ``plot_interpolation``   train/test loss and accuracy along θ(α) = (1−α)·θ_A + α·θ_B;
* ``plot_spectrum``        the Hessian eigenvalue density (stochastic Lanczos quadrature) per
                           checkpoint on a log scale, with the extreme eigenvalues marked;
* ``plot_trajectory``      the star-convexity ratio toward the final point at every checkpoint, PL*
                           ratios, distance travelled and NTK drift along the checkpoints;
* ``plot_training``        training curves, the extreme Hessian eigenvalues against epoch and,
                           when tracked, the sharpness beside the stability limit 2/η.

``make_figures`` draws all of those whose inputs exist. A missing input means the figure is
skipped (and said so); a damaged one (unreadable, truncated, lacking a key) raises
``LandscapeError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import LandscapeError
from .measurements import REGISTRY
from .readers import (checked_number, is_undefined, analyzed_epochs, as_run, holds_runs, load_curvature, load_dominance,
                      load_interpolations, load_log, load_probes, load_second_order, load_sharpness, load_spectrum, load_surface,
                      load_track, load_trajectory, read_config, track_uses_statistics_of_theta)
from .readers import load_hessian_subsets
from .text import common_caption, context_caption, fmt, fmt_tick, run_title
from .trajectory import FAILS, HOLDS, UNRESOLVED
from .recipe import PAPER_FIGURE_EPOCHS
from .results import atomic_save_figure, atomic_write_json
from .verdicts import DOMINANCE_F_FLOOR, SECOND_ORDER_MAX_EXTRA_FRACTION, envelope_constant
FORMATS = ("png", "pdf")
FIGURES = ("surface", "random_surface", "dominance", "second_order", "smoothness", "interpolation", "trajectory",
           "spectrum", "training", "hessian_subsets")

_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")
_STYLE = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 7.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10.5,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.4, "lines.markersize": 4, "savefig.dpi": 150, "figure.dpi": 100,
    "image.cmap": "viridis", "pdf.fonttype": 42, "legend.frameon": False,
    "axes.prop_cycle": None,  # filled in below (colour-blind friendly cycle)
}
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_DIRECTION_COLORS = {"neg_gradient": "#D55E00", "gaussian": "#0072B2", "filter_normalized": "#009E73",
                     "hessian_top": "#CC79A7", "hessian_most_negative": "#E69F00"}
TRAIN_COLOR, TEST_COLOR = "#0072B2", "#D55E00"


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from cycler import cycler

    style = dict(_STYLE, **{"axes.prop_cycle": cycler(color=COLORS)})
    return plt, style


def wrap_text(text: str, width_in: float, fontsize: float = 8.5) -> str:
    """Wrap each line of a caption to the figure width (about 0.55·fontsize points a character)."""
    import textwrap

    chars = max(40, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in text.split("\n"))


def _fmt_formatter():
    """The one tick formatter: text.fmt_tick."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: fmt_tick(v))


def _log_scale(values: np.ndarray) -> bool:
    """Whether positive values span more than a factor 10 (then drawn as log10)."""
    v = values[np.isfinite(values)]
    return bool(len(v)) and float(v.min()) > 0 and float(v.max()) / float(v.min()) > 10


def nice_log_ticks(lo: float, hi: float) -> list[float]:
    """Round values m·10^k between ``lo`` and ``hi`` for a log axis spanning under a decade, where decade ticks
    are too few: m in 1, 1.5, 2, 3, 5, 7 (only 1, 2, 5 when those are more than six; finer steps, thinned to
    at most six, when fewer than two fit)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)

    def between(mantissas) -> list[float]:
        return [v for v in (float(f"{m * 10.0 ** k:.3g}") for k in decades for m in mantissas) if lo <= v <= hi]

    ticks = between((1, 1.5, 2, 3, 5, 7))
    if len(ticks) > 6:
        return between((1, 2, 5))
    for finer in ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9), np.arange(10, 100) / 10):
        if len(ticks) >= 2:
            break
        ticks = between(finer)
    return ticks[::math.ceil(len(ticks) / 6)] if ticks else ticks


def log_value_ticks(lo: float, hi: float) -> list[float]:
    """Round values of a positive quantity between ``lo`` and ``hi`` for an axis drawn in log10 of it (a 3-D
    z axis, a colour bar): ``nice_log_ticks`` under a decade, else the decades, with 2s and 5s under two."""
    if not (0 < lo < hi) or not math.isfinite(hi):
        return []
    if hi / lo < 10:
        return nice_log_ticks(lo, hi)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    mantissas = (1, 2, 5) if hi / lo < 100 else (1,)
    ticks = [v for v in (float(f"{m * 10.0 ** k:.3g}") for k in decades for m in mantissas) if lo <= v <= hi]
    return ticks if len(ticks) <= 7 else ticks[::2]


def _log_ticks(ax, axis: str = "both") -> None:
    """Readable tick labels on log axes (text.fmt_tick): under a decade round values (``nice_log_ticks``; a few
    evenly spaced ones when fewer than two fit), under two decades the minor 2s and 5s too, else at most about
    six labelled decades."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    def leading(v):
        return int(f"{v:.0e}"[0]) if v > 0 else 0

    major = FuncFormatter(lambda v, _: fmt_tick(v))
    minor = FuncFormatter(lambda v, _: fmt_tick(v) if leading(v) in (2, 5) else "")
    for name in ("x", "y") if axis == "both" else (axis,):
        a = getattr(ax, f"{name}axis")
        if a.get_scale() != "log":
            continue
        lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        a.set_major_formatter(major)
        if lo > 0 and hi / lo < 10:
            nice = nice_log_ticks(lo, hi)
            a.set_major_locator(FixedLocator(nice) if len(nice) >= 2 else MaxNLocator(4))
            a.set_minor_locator(NullLocator())
            continue
        a.set_major_locator(LogLocator(numticks=7))
        a.set_minor_formatter(minor if lo > 0 and hi / lo < 100 else NullFormatter())


class Drawn(list):
    """The paths one figure was written to, with its ``caption``: what the numbers were computed on
    (the report prints it under the image; the PNG keeps a one-line title)."""

    def __init__(self, paths=(), caption: str = ""):
        super().__init__(paths)
        self.caption = caption


MAX_HEIGHT_IN = 13.0   # a figure is at most this tall (≈ 1950 px at savefig.dpi 150): small multiples fit one page


def fig_height(rows: int, per_row: float, extra: float = 0.6) -> float:
    """The height of a figure of ``rows`` panel rows, capped at MAX_HEIGHT_IN."""
    return min(MAX_HEIGHT_IN, per_row * rows + extra)


def figure_title(run, what: str) -> str:
    """The one line a PNG carries: 'RUN: what'."""
    return f"{as_run(run).path.name}: {what}"


def epoch_axis(ax) -> None:
    """Whole epochs on the x axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def tick_format(ax, axes: str = "xy") -> None:
    """One tick format everywhere (text.fmt_tick): linear axes directly, log axes through _log_ticks."""
    for name in axes:
        axis = getattr(ax, f"{name}axis")
        if axis.get_scale() == "linear":
            axis.set_major_formatter(_fmt_formatter())
        elif axis.get_scale() == "log":
            _log_ticks(ax, name)


def save_figure(fig, out_dir: Path, name: str, caption: str = "") -> Drawn:
    """Write ``fig`` as PNG and PDF atomically; returns the paths with the caption."""
    import matplotlib.pyplot as plt

    paths = Drawn(caption=caption)
    for ext in FORMATS:
        path = out_dir / f"{name}.{ext}"
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        atomic_save_figure(fig, path, ext, bbox_inches="tight", metadata=meta)
        paths.append(path)
    plt.close(fig)
    return paths


def select_epochs(available: list[int], epochs: Iterable[int] | None, config: dict, what: str = "results") -> list[int]:
    """The checkpoint epochs a per-checkpoint figure shows: the requested ones (all must be
    ``available``), else those of the paper's Figure 1 (recipe.PAPER_FIGURE_EPOCHS) present in a
    full-length run (trained ≥ 160 epochs), else every available one."""
    if epochs is not None:
        epochs = sorted(set(int(e) for e in epochs))
        missing = [e for e in epochs if e not in available]
        if missing:
            raise LandscapeError(f"no {what} for epoch(s) {missing}; available: {available or 'none'}")
        return epochs
    train_epochs = (config.get("train") or {}).get("epochs") or 0
    paper = [e for e in PAPER_FIGURE_EPOCHS if e in available]
    if train_epochs >= max(PAPER_FIGURE_EPOCHS) and paper:
        return paper
    return available


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) of a panel grid: up to 3 columns, 2×2 for four."""
    cols = n if n <= 3 else (2 if n == 4 else 3)
    return math.ceil(n / cols), cols


# ============================================================================ (a) Figure 1
_SURFACES = {
    "paper": ("surface", "gradient direction", "most negative curvature direction"),
    "random": ("random_surface", "filter-normalized direction 1", "filter-normalized direction 2"),
}


def _axis_unit(desc: dict) -> str:
    desc = desc or {}
    norm = desc.get("normalization")
    if norm is None and desc.get("kind") == "filter_normalized":
        norm = "filter"
    if norm in ("unit", None):
        return "‖Δθ‖"
    if str(norm).startswith("filter"):
        return "α, per-filter norms of θ"
    return f"{norm} units"


def plot_surfaces(run_dir, out_dir=None, epochs=None, kind: str = "paper") -> list[Path]:
    """F over a plane through each checkpoint, 3D and contour: Figure 1 of Allen-Zhu et al.

    ``kind="paper"``: x = gradient direction, y = most-negative-curvature eigenvector
    (orthogonalized to x); ``kind="random"``: two filter-normalized directions (Li et al.).
    Writes <name>_3d and <name>_contour; returns the paths ([] when no surface exists).
    """
    run = as_run(run_dir)
    config = read_config(run)
    name, xlabel, ylabel = _SURFACES[kind]
    file = REGISTRY[name].file
    available = [e for e in analyzed_epochs(run) if (run.analysis_dir(e) / file).is_file()
                 and not is_undefined(run.analysis_dir(e) / file)]
    if not available:
        return []
    chosen = select_epochs(available, epochs, config, name.replace("_", " "))
    surfaces = [s for s in (load_surface(run, e, name) for e in chosen) if s is not None]
    if not surfaces:
        return []
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    first = surfaces[0]
    sigma = first["sigma"]
    if kind == "paper":
        ylabel = f"{ylabel} (σ={fmt(sigma) if sigma is not None else '?'})"
    unit_x = _axis_unit(first["x"]); unit_y = _axis_unit(first["y"])
    log = _surfaces_log(surfaces)
    caption = _surface_caption(run_title(run, config), surfaces, kind, log, unit_x)
    what = "F over the (gradient, most negative curvature) plane" if kind == "paper" else "F over a random plane"
    written = Drawn(caption=caption)
    rows, cols = _grid(len(surfaces))
    with plt.rc_context(style):
        # ---- 3D
        width = 4.6 * cols
        fig = plt.figure(figsize=(width, fig_height(rows, 4.2)), layout="constrained")
        for i, s in enumerate(surfaces):
            ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
            Z, zlabel, f0 = _surface_values(s, log)
            draw_surface_3d(ax, s["xs"], s["ys"], Z, f0, log=log)
            ax.set_xlabel("x: " + ("gradient" if kind == "paper" else "direction 1"), fontsize=7.5, labelpad=2)
            ax.set_ylabel("y: " + ("neg. curvature" if kind == "paper" else "direction 2"), fontsize=7.5, labelpad=2)
            ax.set_zlabel("F (log scale)" if log else zlabel, fontsize=7.5, labelpad=4)
            ax.set_title(_surface_title(s, kind), fontsize=8.5)
        fig.suptitle(figure_title(run, what + " (3D)"), fontsize=9.5)
        written += save_figure(fig, out_dir, f"{name}_3d")
        # ---- contour
        width = 4.3 * cols
        fig, axes = plt.subplots(rows, cols, figsize=(width, fig_height(rows, 4.4)), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat[len(surfaces):]:
            ax.set_visible(False)
        for ax, s in zip(axes.flat, surfaces):
            Z, zlabel, _ = _surface_values(s, log)
            ax.set_title(_surface_title(s, kind))
            if draw_surface_contour(ax, s["xs"], s["ys"], Z, zlabel, surface_marks(s["result"], kind)):
                ax.set_xlabel(f"{xlabel} [{unit_x}]")
                ax.set_ylabel(f"{_short(ylabel)} [{unit_y}]", fontsize=8)
        fig.suptitle(figure_title(run, what + " (contours)"), fontsize=9.5)
        written += save_figure(fig, out_dir, f"{name}_contour")
    return written


def _surface_caption(title: str, surfaces: list[dict], kind: str, log: bool, unit: str) -> str:
    """What the surfaces were computed on (repeat 0: a surface is measured once per checkpoint)."""
    contexts = [{k: v for k, v in s["context"].items() if k not in ("repeats", "repeat_mode")} for s in surfaces]
    return (f"{title}. F = training loss on {common_caption(contexts)} (the first subset only: a surface is "
            f"measured once per checkpoint, not per repeat); {len(surfaces[0]['xs'])}×{len(surfaces[0]['ys'])} grid; "
            f"axes in {unit}" + (" (unit directions; y orthogonalized to x)" if kind == "paper" else "")
            + ("; colour and height: log10 F" if log else "; colour and height: F (linear: some F ≤ 0)")
            + "; red: the checkpoint.")


def draw_surface_3d(ax, xs: np.ndarray, ys: np.ndarray, Z: np.ndarray, f0: float, log: bool = False) -> None:
    """Z[j, i] = F at (xs[i], ys[j]) as a 3-D surface on ``ax`` (a 3-D Axes), the point (0, 0, f0) in red;
    with ``log``, Z and f0 are log10 F and the z ticks are labelled with F itself."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    X, Y = np.meshgrid(xs, ys)
    ax.computed_zorder = False
    ax.plot_surface(X, Y, Z, cmap="viridis", linewidth=0.2, edgecolor="k", alpha=0.75,
                    antialiased=True, rstride=1, cstride=1, zorder=1)
    top = float(np.nanmax(Z)) if np.isfinite(Z).any() else f0
    # the checkpoint: a red stem from above the surface down to F(θ), drawn over it
    ax.plot([0, 0], [0, 0], [f0, max(top, f0)], "-", color="#D55E00", lw=1.2, zorder=10)
    ax.scatter([0], [0], [f0], color="#D55E00", s=36, edgecolors="w", depthshade=False, zorder=11)
    ax.tick_params(labelsize=6.5, pad=-1)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    for name in "xyz":
        getattr(ax, f"{name}axis").set_major_formatter(_fmt_formatter())
    if log:
        ax.zaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(float(f"{10 ** v:.3g}"))))
        finite = Z[np.isfinite(Z)]
        ticks = log_value_ticks(10 ** float(finite.min()), 10 ** float(finite.max())) if len(finite) else []
        if len(ticks) >= 2:
            ax.set_zticks(np.log10(ticks))
    ax.view_init(elev=28, azim=-55)
    ax.set_box_aspect(None, zoom=0.88)


def draw_surface_contour(ax, xs: np.ndarray, ys: np.ndarray, Z: np.ndarray, zlabel: str,
                         marks: list[tuple[float, float, dict]]) -> bool:
    """Filled contours of Z[j, i] (F, or log10 F when ``zlabel`` says so) with a colour bar, and
    ``marks``: (x, y, matplotlib style incl. label). False when Z has no finite value."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    Z = np.ma.masked_invalid(Z)
    if Z.count() == 0:
        ax.text(0.5, 0.5, "no finite F on this grid", ha="center", va="center", transform=ax.transAxes)
        return False
    lo, hi = float(Z.min()), float(Z.max())
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-12, 16)
    cs = ax.contourf(xs, ys, Z, levels=levels, cmap="viridis")
    ax.contour(xs, ys, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    cb = ax.figure.colorbar(cs, ax=ax, shrink=0.9, pad=0.02)
    if zlabel.startswith("log10"):  # colours in log F, ticks labelled with F itself
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(float(f"{10 ** v:.3g}"))))
        ticks = log_value_ticks(10 ** lo, 10 ** hi)
        if len(ticks) >= 2:
            cb.set_ticks(np.log10(ticks))
        zlabel = "F (train loss, log scale)"
    cb.set_label(zlabel, fontsize=7.5)
    cb.ax.tick_params(labelsize=6.5)
    for x, y, style in marks:
        ax.plot(x, y, clip_on=False, zorder=5, **style)
    ax.axhline(0, color="w", lw=0.6, alpha=0.7)
    ax.axvline(0, color="w", lw=0.6, alpha=0.7)
    ax.xaxis.set_major_locator(MaxNLocator(5)); ax.yaxis.set_major_locator(MaxNLocator(5))
    tick_format(ax)
    ax.grid(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=6.5,
              handletextpad=0.3, columnspacing=0.8)
    return True


def surface_marks(res: dict, kind: str) -> list[tuple[float, float, dict]]:
    """The checkpoint and the lowest points found (on each axis for the paper's plane, on the grid); a lowest
    point that is the checkpoint itself (no decrease) says so instead of 'F − 0'."""
    def lowest(where: str, found: dict) -> str:
        d = found.get("decrease")
        if d is None or not math.isfinite(float(d)):
            return f"lowest {where}: not measured"
        return f"lowest {where}: F − {fmt(d)}" if d > 0 else f"lowest {where}: the checkpoint"

    marks = [(0, 0, dict(marker="o", color="#D55E00", ms=7, mec="w", label=f"checkpoint, F = {fmt(res['F'])}"))]
    if kind == "paper":
        marks += [(res["along_x"]["at"], 0, dict(marker="s", color="w", mec="k", ms=5,
                                                 label=lowest("on x-axis", res["along_x"]))),
                  (0, res["along_y"]["at"], dict(marker="^", color="w", mec="k", ms=5,
                                                 label=lowest("on y-axis", res["along_y"])))]
    at = res["anywhere"]["at"]
    marks.append((at[0], at[1], dict(marker="*", color="#E69F00", mec="k", ms=10,
                                     label=lowest("on grid", res["anywhere"]))))
    return marks


def _short(label: str) -> str:
    return label.replace("most negative curvature direction", "most neg. curvature direction")


def _surface_values(s: dict, log: bool) -> tuple[np.ndarray, str, float]:
    """The grid's F (as log10 F if ``log``), its label, and the value at the checkpoint."""
    Z = np.where(np.isfinite(s["loss"]), s["loss"], np.nan)
    f0 = checked_number(s["result"]["F"], s["path"], "result.F")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(np.where(Z > 0, Z, np.nan)), "log10 F (train loss)", math.log10(f0) if f0 > 0 else np.nan
    return Z, "F (train loss)", f0


def _surfaces_log(surfaces: list[dict]) -> bool:
    """One z scale for every run and panel: log10 F whenever every finite F is positive (a loss, so
    always for cross-entropy), so that quick and full runs read alike; linear F otherwise."""
    return all(np.nanmin(np.where(np.isfinite(s["loss"]), s["loss"], np.nan)) > 0 for s in surfaces
               if np.isfinite(s["loss"]).any())


def _surface_title(s: dict, kind: str) -> str:
    res = s["result"]
    title = f"epoch {s['epoch']}: F(θ)={fmt(res['F'])}"
    if kind == "paper":
        lam = s["y"].get("eigenvalue")
        if lam is not None:
            title += f", λ_min={fmt(lam)}"
        if "extra_from_y" in res:
            title += f"\nextra decrease from y beyond the x-axis: {fmt(res['extra_from_y'])}"
    return title


# ============================================================================ (b) gradient dominance
def plot_dominance(run_dir, out_dir=None, floor: float = DOMINANCE_F_FLOOR) -> list[Path]:
    """‖∇F‖² against F (log-log): the dense track coloured by epoch, checkpoints marked, and
    the envelope ‖∇F‖² = c·F (c = min ratio over the points with F > floor, in each panel's title). Two
    panels, all parameters and hidden ones, with one legend. [] when neither track nor dominance results exist."""
    from matplotlib import cm, colors as mcolors

    run = as_run(run_dir)
    config = read_config(run)
    track = load_track(run)
    points = load_dominance(run, repeats=True)
    if not track and not points:
        return []
    repeats = len({p["repeat"] for p in points})
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    max_epoch = max([r["epoch"] for r in track] + [p["epoch"] for p in points] + [1])
    norm = mcolors.Normalize(0, max_epoch)
    cmap = plt.get_cmap("viridis")
    with plt.rc_context(style):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), squeeze=False, layout="constrained")
        track_label = f"dense track during training ({len(track)} points)"
        points_label = (f"checkpoints ({len({p['epoch'] for p in points})} epochs" +
                        (f" × {repeats} repeats)" if repeats > 1 else ")"))
        for ax, (key, label) in zip(axes[0], (("grad_sq", "all parameters"), ("grad_sq_hidden", "hidden layers"))):
            env = draw_dominance(ax, *(_columns(track, "F", key, "epoch") if track else (None, None, None)),
                                 *(_columns(points, "F", key, "epoch", "repeat") if points else (None,) * 4),
                                 floor=floor, cmap=cmap, norm=norm, track_label=track_label,
                                 points_label=points_label, labels=False)
            ax.set_xlabel("F (training loss)")
            ax.set_ylabel(f"‖∇F‖² ({label})")
            c = env["c"]
            ax.set_title(f"{label}: c = {fmt(c)} over F > {fmt(floor)}" if math.isfinite(c) and c > 0
                         else f"{label}: c undefined (no F > {fmt(floor)})")
        shared_legend(fig, axes[0], ncol=2)
        cb = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), shrink=0.8, pad=0.01,
                          aspect=30)
        cb.set_label("epoch")
        tick_format(cb.ax, "y")
        fig.suptitle(figure_title(run, "gradient dominance ‖∇F‖² against F"), fontsize=9.5)
        if points:
            fig.draw_without_rendering()  # the layout first: labels are placed where they will be drawn
            fig.set_layout_engine("none")
            for ax, key in zip(axes[0], ("grad_sq", "grad_sq_hidden")):
                label_epochs(ax, *_columns(points, "F", key, "epoch", "repeat"))
        return save_figure(fig, out_dir, "dominance", _dominance_caption(run, config, track, points, floor))


def _dominance_caption(run, config: dict, track: list[dict], points: list[dict], floor: float) -> str:
    """What the dominance figure's points were computed on, and what its lines are."""
    train = config.get("train") or {}
    caption = run_title(run, config) + "."
    if points:
        caption += f" Checkpoints: {common_caption([p['context'] for p in points])}."
    if track:
        caption += (f" Track: every {train.get('track_every', '?')} iterations during training ({len(track)} points), "
                    f"on {track[0].get('examples', '?')} training examples ({_track_bn_words(track)}, fp32, "
                    f"all parameters).")
    return caption + (f" Dashed: the envelope ‖∇F‖² = c·F, c the smallest ratio ‖∇F‖²/F over the points with "
                      f"F > {fmt(floor)} (the PL regime judged; c in each panel's title); dotted: F = {fmt(floor)}, "
                      f"left of it the converged regime (reported by its exponent p, not judged). Labels name "
                      f"the epoch of repeat 0's checkpoints where they do not overlap; colour: epoch.")


def shared_legend(fig, axes, ncol: int = 2) -> None:
    """One legend under the figure for the entries of every panel in ``axes`` (each label once)."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=ncol, fontsize=7.5)


def _columns(records: list[dict], *keys: str) -> list[np.ndarray]:
    """One float array per key over the records."""
    return [np.array([r[k] for r in records], float) for k in keys]


def draw_dominance(ax, track_F, track_G, track_epoch, F, G, epoch, repeat, *, floor: float, cmap, norm,
                   track_label: str = "track", points_label: str = "checkpoints", labels: bool = True) -> dict:
    """‖∇F‖² (G) against F on log-log axes: the track (a line coloured by epoch, or None), the
    checkpoints (diamonds, repeat 0 labelled unless ``labels`` is False; or None), and the envelope
    G = c·F of ``envelope_constant`` over all of them. Returns that envelope."""
    Fs, Gs = [], []
    if track_F is not None:
        ok = (track_F > 0) & (track_G > 0)
        ax.plot(track_F[ok], track_G[ok], "-", color="0.75", lw=0.6, zorder=1)
        ax.scatter(track_F[ok], track_G[ok], c=track_epoch[ok], cmap=cmap, norm=norm, s=10, zorder=2, label=track_label)
        Fs += list(track_F); Gs += list(track_G)
    if F is not None:
        ok = (F > 0) & (G > 0)
        ax.scatter(F[ok], G[ok], c=[cmap(norm(e)) for e in epoch[ok]], marker="D", s=45, edgecolors="k",
                   linewidths=0.9, zorder=3, label=points_label)
        Fs += list(F); Gs += list(G)
    env = envelope_constant(Fs, Gs, floor)
    Fa, Ga = np.array(Fs), np.array(Gs)
    pos = (Fa > 0) & (Ga > 0)
    if pos.any():
        ax.set_xscale("log"); ax.set_yscale("log")
        lo, hi = Fa[pos].min(), Fa[pos].max()
        span = np.geomspace(lo / 1.3, hi * 1.3, 50)
        if np.isfinite(env["c"]) and env["c"] > 0:
            ax.plot(span, env["c"] * span, "--", color="#D55E00", lw=1.3, zorder=0, label="envelope ‖∇F‖² = c·F")
        else:
            ax.plot([], [], " ", label=f"c undefined: no point with F > {fmt(floor)}")
        if lo < floor * 3:
            ax.axvline(floor, color="0.4", ls=":", lw=1, label=f"F = {fmt(floor)}: the judged range's floor")
        _log_ticks(ax)
    if F is not None and labels:
        label_epochs(ax, F, G, epoch, repeat)
    return env


def label_epochs(ax, F: np.ndarray, G: np.ndarray, epoch: np.ndarray, repeat: np.ndarray) -> None:
    """'ep N' beside repeat 0's checkpoints (right of the point, else left, above, below), leaving out a label
    whose box would overlap one already placed (their drawn extents compared: call it once the layout is fixed)."""
    ax.autoscale_view()
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for f, g, e, r in sorted(zip(F, G, epoch, repeat), key=lambda row: row[2]):
        if r != 0 or not (f > 0 and g > 0):
            continue
        for offset, ha in (((6, -3), "left"), ((-6, -3), "right"), ((4, 5), "left"), ((-4, -11), "right")):
            text = ax.annotate(f"ep {int(e)}", (f, g), textcoords="offset points", xytext=offset, fontsize=7, ha=ha)
            box = text.get_window_extent(renderer).expanded(1.08, 1.15)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            text.remove()


# ============================================================================ (c) semi-smoothness
def probe_resolved(p: dict) -> bool:
    """Whether a probe's fit a·|t| + b·t² was measured: the fit says so (fit.resolved), a and b are finite,
    and (when the record holds its steps) some nonzero step's residual stands above the noise floor."""
    if p.get("resolved") is False:
        return False
    if not all(p.get(k) is not None and math.isfinite(float(p[k])) for k in ("a", "b")):
        return False
    if "t" in p and "r" in p and "noise_floor" in p:
        t, r = np.asarray(p["t"], float), np.asarray(p["r"], float)
        return bool(np.any((t != 0) & (np.abs(r) > p["noise_floor"])))
    return True


def probe_fit_label(p: dict) -> str:
    """The legend text of one probe's fit: a/‖∇F‖ (when the reader gives it), a/√F and b, with the number of
    distinct steps and the envelope's looseness (RMS of model/|r| − 1) when known; or 'not measured' with the reason.
    An a below the probe's resolution (``a_resolved`` False) shows its bound, 'a/‖∇F‖ < 0.003 (bound)', never 0."""
    if not probe_resolved(p):
        why = p.get("reason") or (f"{p['distinct_t']} |t| between floor and F" if p.get("distinct_t") is not None
                                  else "too few steps above the noise floor")
        return f"{p['name']}: not measured ({why})"
    if p.get("a_resolved") is False:
        parts = [f"{name} < {fmt(p[key], 2)} (bound)" for name, key in
                 (("a/‖∇F‖", "a_resolution_over_grad_norm"), ("a/√F", "a_resolution_over_sqrt_F"))
                 if _finite_key(p, key)] or ["a not resolved"]
    else:
        parts = [f"a/‖∇F‖ = {fmt(p['a_over_grad_norm'], 2)}"] if _finite_key(p, "a_over_grad_norm") else []
        parts += [f"a/√F = {fmt(p['a_over_sqrt_F'], 2)}"]
    parts += [f"b = {fmt(p['b'], 2)}"]
    quality = ([f"{p['distinct_t']} |t|"] if p.get("distinct_t") is not None else []) + \
        ([f"looseness {fmt(p['rel_rms'], 2)}"] if _finite_key(p, "rel_rms") else [])
    return f"{p['name']}: " + ", ".join(parts) + (f" ({', '.join(quality)})" if quality else "")


def _finite_key(p: dict, key: str) -> bool:
    try:
        return math.isfinite(float(p.get(key)))
    except (TypeError, ValueError):
        return False


def probe_ceiling(p: dict) -> float:
    """The largest |r| a probe's fit uses (measure.fit_resolution's ceiling, max(F, noise floor)): beyond it
    the step has left the region F(θ) describes, so such points are outside the fit."""
    return float(p.get("fit_ceiling", max(p["F"], p["noise_floor"])))


def probe_ylim(probes: list[dict]) -> tuple[float, float]:
    """The |r| range of one checkpoint's panel: from the smallest noise floor / 100 to 10 × the largest fit
    ceiling, so the fitted range fills the axis; points above it are pinned at the top edge (``draw_probe``)."""
    floors = [p["noise_floor"] for p in probes if p["noise_floor"] > 0]
    top = 10 * max(probe_ceiling(p) for p in probes)
    bottom = min(floors) / 100 if floors else top * 1e-12
    return bottom, top


def plot_smoothness(run_dir, out_dir=None, epochs=None) -> list[Path]:
    """One panel per checkpoint: |r(t)| against |t| (log-log) along every probe direction of repeat 0,
    with the fit a·|t| + b·t² over the steps it was fitted on and the noise floor; the y range is the
    fitted one (``probe_ylim``), points beyond it pinned at the edges. [] without probes."""
    run = as_run(run_dir)
    config = read_config(run)
    available = [e for e in analyzed_epochs(run) if any(run.analysis_dir(e).glob(REGISTRY["probes"].file_glob()))]
    if not available:
        return []
    chosen = select_epochs(available, epochs, config, "semi-smoothness probes")
    per_epoch = [(e, ps) for e, ps in ((e, load_probes(run, e)) for e in chosen) if ps]
    if not per_epoch:
        return []
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    cols = min(2, len(per_epoch))  # two columns: each probe's legend line (a, b, points, looseness) fits its panel
    rows = math.ceil(len(per_epoch) / cols)
    with plt.rc_context(style):
        fig, axes = plt.subplots(rows, cols, figsize=(6.8 * cols, fig_height(rows, 4.3)), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat[len(per_epoch):]:
            ax.set_visible(False)
        for (epoch, probes), ax in zip(per_epoch, axes.flat):
            draw_probe_panel(ax, probes)
            ax.set_title(f"epoch {epoch} (F = {fmt(probes[0]['F'])})")
        caption = (f"{run_title(run, config)}. Semi-smoothness probes on "
                   f"{common_caption([p['context'] for _, ps in per_epoch for p in ps])}; repeat 0 shown (the verdict "
                   f"takes the worst repeat). r(t) = f(t) − f(0) − t·⟨∇F, u⟩ along the unit direction u. Markers: "
                   f"o t > 0, x t < 0; faint dots: below the noise floor (at the bottom edge when below floor/100); "
                   f"grey triangles at the top edge: steps whose |r| passes F(θ), which the fit leaves out; "
                   f"lines: the fit a·|t| + b·t² over the steps it was fitted on.")
        fig.suptitle(figure_title(run, "semi-smoothness: residual |r(t)| against the step |t|"), fontsize=9.5)
        return save_figure(fig, out_dir, "smoothness", caption)


def draw_probe_panel(ax, probes: list[dict]) -> int:
    """Every probe of one checkpoint on ``ax`` with the noise floor, in the range ``probe_ylim``, and one
    legend entry counting the points outside the fit (|r| > F); returns that count."""
    bottom, top = probe_ylim(probes)
    outside = 0
    for p in probes:
        outside += draw_probe(ax, p["t"], p["r"], p["a"], p["b"], p["noise_floor"],
                              color=_DIRECTION_COLORS.get(p["kind"], "0.3"), fit_label=probe_fit_label(p),
                              resolved=probe_resolved(p), ceiling=probe_ceiling(p), bottom=bottom)
    floor = max(p["noise_floor"] for p in probes)
    ax.axhline(floor, color="0.35", ls=":", lw=1, label=f"noise floor {fmt(floor, 2)}")
    if outside:
        ax.plot([], [], "^", color="0.55", ms=5, label=f"|r| > F: outside the fit ({outside} points, top edge)")
    if not any(probe_resolved(p) for p in probes):
        ax.text(0.5, 0.5, "not measured:\nno direction has enough steps\nabove the noise floor",
                ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.3",
                bbox=dict(fc="w", ec="0.7", alpha=0.9))
    ax.set_ylim(bottom, top)
    ax.set_xlabel("|t| [‖Δθ‖]")
    ax.set_ylabel("|r(t)|")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6.5, ncol=1)
    tick_format(ax)
    return outside


def _edge(ax, x: np.ndarray, y_axes: float, marker: str, **style) -> None:
    """Points at data x pinned to an edge of ``ax`` (y in axes fraction: 0 bottom, 1 top), drawn over it."""
    from matplotlib.transforms import blended_transform_factory

    if len(x):
        ax.plot(x, np.full(len(x), y_axes), marker, transform=blended_transform_factory(ax.transData, ax.transAxes),
                clip_on=False, zorder=4, **style)


def draw_probe(ax, t: np.ndarray, r: np.ndarray, a: float | None, b: float | None, noise_floor: float, *,
               color="0.3", fit_label: str = "", resolved: bool = True, ceiling: float = np.inf,
               bottom: float = 0.0) -> int:
    """One probe direction on log-log axes: |r(t)| against |t| (o: t > 0, x: t < 0, faint below
    ``noise_floor``, pinned at the bottom edge below ``bottom``) and, when ``resolved``, the fit a·|t| + b·t²
    over the |t| range of the fitted points (floor < |r| ≤ ``ceiling``; no extrapolation); an unresolved fit
    is a legend entry only. Points with |r| > ``ceiling`` (or not finite) are grey triangles pinned at the
    top edge; returns how many."""
    t, r = np.asarray(t, float), np.asarray(r, float)
    nz = t != 0
    beyond = nz & ~(np.abs(r) <= ceiling)
    keep = nz & ~beyond
    at, ar, pos = np.abs(t[keep]), np.abs(r[keep]), t[keep] > 0
    above = ar > noise_floor
    ax.plot(at[pos & above], ar[pos & above], "o", color=color, ms=4)
    ax.plot(at[~pos & above], ar[~pos & above], "x", color=color, ms=4)
    low = ~above & (ar < bottom)
    ax.plot(at[~above & ~low], ar[~above & ~low], ".", color=color, ms=3, alpha=0.35)
    ax.set_xscale("log"); ax.set_yscale("log")
    if resolved and above.any():
        grid = np.geomspace(at[above].min(), at[above].max(), 60)
        one = grid[0] == grid[-1]  # fitted on one step size: the fit's value there, as a dash
        ax.plot(grid[:1] if one else grid, a * grid[:1] + b * grid[:1] ** 2 if one else a * grid + b * grid ** 2,
                "_" if one else "-", color=color, lw=1.1, ms=14, mew=1.6, alpha=0.85, label=fit_label)
    else:
        ax.plot([], [], "o", color=color, mfc="none", label=fit_label)
    _edge(ax, at[low], 0.0, ".", color=color, ms=3, alpha=0.35)
    _edge(ax, np.abs(t[beyond]), 1.0, "^", color="0.55", ms=5, alpha=0.8)
    return int(beyond.sum())


# ============================================================================ (d) interpolation
_BN_WORDS = {"recompute": "BN statistics recomputed on the training subset at every α",
             "interpolate": "BN running statistics interpolated like the weights",
             "batch": "BN with batch statistics"}


def draw_interpolation(ax, alpha: np.ndarray, train: np.ndarray, test: np.ndarray, epoch_a, epoch_b,
                       log: bool = True) -> None:
    """Train and test values along θ(α) (log y when ``log`` and both are positive and span more than a factor
    10: a loss, never an accuracy); the ends α = 0 and 1 marked, their epochs on the x tick labels."""
    ax.plot(alpha, train, "o-", ms=2.5, color=TRAIN_COLOR, label="train")
    ax.plot(alpha, test, "s--", ms=2.5, color=TEST_COLOR, label="test")
    both = np.concatenate([np.asarray(train, float), np.asarray(test, float)])
    if log and _log_scale(both) and (both[np.isfinite(both)] > 0).all():
        ax.set_yscale("log")
    for x0 in (0, 1):
        ax.axvline(x0, color="0.3", ls=":", lw=1)
    ticks = sorted({0.0, 0.5, 1.0} | {float(a) for a in (alpha.min(), alpha.max())})
    ax.set_xticks(ticks, [f"0\nep {epoch_a}" if v == 0 else f"1\nep {epoch_b}" if v == 1 else fmt_tick(v)
                          for v in ticks])
    tick_format(ax, "y")


def plot_interpolation(run_dir, out_dir=None) -> list[Path]:
    """Loss along θ(α) = (1−α)·θ_A + α·θ_B, one small panel per pair (init → final first, then
    consecutive checkpoints), and the accuracies in a second figure of the same layout
    (interpolation_accuracy). [] when the run has no interpolation."""
    run = as_run(run_dir)
    config = read_config(run)
    items = load_interpolations(run)
    if not items:
        return []
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    first = items[0]
    ctx = first["context"]
    train_ctx = ctx.get("train", ctx) if isinstance(ctx, dict) else {}
    test_n = ctx.get("test", {}).get("examples", "?") if isinstance(ctx, dict) else "?"
    policies = sorted({it["bn"] for it in items})
    caption = (f"{run_title(run, config)}. Linear interpolation; {'; '.join(_BN_WORDS.get(p, f'BN {p}') for p in policies)}; "
               f"train: {context_caption({k: v for k, v in train_ctx.items() if k != 'bn_policy'})}; "
               f"test subset n={test_n}. A loss panel's y axis is logarithmic when its values span more than a factor 10; "
               f"accuracy is linear.")
    written = Drawn(caption=caption)
    with plt.rc_context(style):
        for key, name, what in (("loss", "interpolation", "loss"), ("acc", "interpolation_accuracy", "accuracy")):
            fig, axes = plt.subplots(rows, cols, figsize=(max(5.0, 3.3 * cols), fig_height(rows, 2.7, 0.9)), squeeze=False,
                                     layout="constrained")
            for ax in axes.flat[len(items):]:
                ax.set_visible(False)
            for it, ax in zip(items, axes.flat):
                draw_interpolation(ax, it["alpha"], it[f"train_{key}"], it[f"test_{key}"], it["from"], it["to"],
                                   log=key == "loss")
                res = it["result"]["train"]
                title = f"{it['from']} → {it['to']}"
                if key == "loss":
                    title += (": monotone" if res["monotone"] else f": bump {fmt(res['largest_bump'], 2)}")
                ax.set_title(title, fontsize=8.5)
            axes.flat[0].set_ylabel(what)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7.5)
            fig.suptitle(figure_title(run, f"{what} along θ(α) = (1−α)·θ_A + α·θ_B"), fontsize=9.5)
            written += save_figure(fig, out_dir, name)
    return written


# ============================================================================ spectrum
def draw_density(ax, nodes: np.ndarray, weights: np.ndarray, width: float, *, color="#0072B2",
                 label: str = "", floor: float = 1e-7) -> None:
    """The eigenvalue density: each quadrature node a Gaussian of standard deviation ``width``
    (weights sum to 1), on a log y scale; values below ``floor`` are not drawn (no padding plateau),
    and every node is marked at the bottom with a tick (an outlier's mass is visible however small)."""
    from .density import SpectralQuadrature, spectral_density

    lo, hi = float(nodes.min()), float(nodes.max())
    pad = 5 * width
    grid = np.linspace(lo - pad, hi + pad, 1500)
    q = SpectralQuadrature([nodes], [weights / weights.sum()], 0, 0, 0, 0.0)
    density = spectral_density(q, grid, width)
    ax.plot(grid, np.where(density >= floor, density, np.nan), "-", color=color, lw=1.1, label=label)
    ax.plot(nodes, np.zeros_like(nodes), "|", color=color, ms=9, mew=1.2, transform=ax.get_xaxis_transform(),
            clip_on=False)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.axvline(0, color="0.5", lw=0.6)


def spectrum_label(t: dict, named: bool = True) -> str:
    """'repeat 1: negative mass 2e-6 ± 1e-6' (the ± only when the probes give one; without the repeat unless
    ``named``: a run of one repeat)."""
    err = t.get("negative_mass_stderr")
    pm = f" ± {fmt(err, 2)}" if err is not None and math.isfinite(float(err)) else ""
    return (f"repeat {t['repeat']}: " if named else "") + f"negative mass {fmt(t['negative_mass'], 2)}{pm}"


def plot_spectrum(run_dir, out_dir=None, epochs=None) -> list[Path]:
    """Per checkpoint, the Hessian eigenvalue density (one line per repeat), with λ_max and λ_min
    from the curvature measurement marked. [] without a spectrum result."""
    run = as_run(run_dir)
    config = read_config(run)
    available = sorted({t["epoch"] for t in load_spectrum(run)})
    if not available:
        return []
    chosen = select_epochs(available, epochs, config, "spectra")
    items = load_spectrum(run, chosen)
    curv = {(c["epoch"], c["repeat"]): c for c in load_curvature(run, chosen, repeats=True)}
    named = len({t["repeat"] for t in items}) > 1  # one repeat: no "repeat 0" in the legend
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    rows, cols = _grid(len(chosen))
    with plt.rc_context(style):
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, fig_height(rows, 3.9)), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat[len(chosen):]:
            ax.set_visible(False)
        for ax, epoch in zip(axes.flat, chosen):
            here = [t for t in items if t["epoch"] == epoch]
            for k, t in enumerate(here):
                draw_density(ax, t["nodes"], t["weights"], t["width"], color=COLORS[k % len(COLORS)],
                             label=spectrum_label(t, named=named))
                c = curv.get((epoch, t["repeat"]))
                if c is not None:
                    for value, ls in ((c["top"], "--"), (c["most_negative"], ":")):
                        ax.axvline(value, color=COLORS[k % len(COLORS)], ls=ls, lw=0.9)
            above = [float(t["outliers_above"]) for t in here if math.isfinite(float(t["outliers_above"]))]
            count = (f"{fmt(np.mean(above), 2)}" + (f" (mean of {len(above)} repeats)" if len(above) > 1 else "")
                     if above else "not measured")
            ax.set_title(f"epoch {epoch}: eigenvalues above λ_max/10 ≈ {count}", fontsize=8.5)
            ax.set_xlabel("eigenvalue of H"); ax.set_ylabel("density (log)")
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
            tick_format(ax)
        s0 = items[0]["settings"]
        caption = (f"{run_title(run, config)}. Stochastic Lanczos quadrature, {s0.get('probes')} probe(s) × "
                   f"{s0.get('steps')} steps, Gaussian broadening {fmt(items[0]['width'], 2)}; ticks at the bottom: "
                   f"the quadrature nodes; the density is not drawn below 1e-7. Dashed: λ_max, dotted: λ_min "
                   f"(curvature measurement), in each repeat's colour; negative mass: the weight below −broadening. "
                   f"{common_caption([t['context'] for t in items])}.")
        fig.suptitle(figure_title(run, "Hessian eigenvalue density"), fontsize=9.5)
        return save_figure(fig, out_dir, "spectrum", caption)


def plot_hessian_subsets(run_dir, out_dir=None) -> list[Path]:
    """λ_max and λ_min of the Hessian against the number of examples it is computed on (log x), each with
    its residual bound, at one checkpoint: whether the curvature subset decides the numbers. [] without it."""
    run = as_run(run_dir)
    config = read_config(run)
    found = load_hessian_subsets(run)
    if found is None:
        return []
    rows = found["rows"]
    size = np.array([r["size"] for r in rows])
    plt, style = pyplot()
    with plt.rc_context(style):
        fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
        for key, color, label in (("lambda_max", COLORS[0], "λ_max"), ("lambda_min", COLORS[1], "λ_min")):
            bound = np.array([r[f"{key}_bound"] for r in rows])
            ax.errorbar(size, [r[key] for r in rows], yerr=np.where(np.isfinite(bound), bound, 0.0), marker="o",
                        color=color, capsize=3, label=f"{label} (± residual bound)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(size, [str(int(n)) for n in size])
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xlabel("examples in the Hessian's subset (log)")
        ax.set_ylabel("eigenvalue of H")
        ax.set_title(f"at the checkpoint of epoch {found['epoch']}")
        ax.legend(loc="best")
        stopped = [f"{label} at {r['size']}" for r in rows
                   for key, label in (("lambda_max", "λ_max"), ("lambda_min", "λ_min"))
                   if r.get(f"{key}_converged") is False]
        caption = (f"{run_title(run, config)}. Subsets of the analyzed examples ({context_caption(found['context'])}), "
                   f"drawn as the curvature measurement draws its subset; bars: the Lanczos residual bound"
                   + (f"; stopped before its tolerance: {', '.join(stopped)}" if stopped else "") + ".")
        fig.suptitle(figure_title(run, "Hessian extremes against the subset size"), fontsize=9.5)
        return save_figure(fig, Path(out_dir) if out_dir else run.figures, "hessian_subsets", caption)


# ============================================================================ trajectory
_STAR_LOOK = {HOLDS: ("holds", "#0072B2", "k"), FAILS: ("fails", "#D55E00", "k"),
              UNRESOLVED: ("within rounding", "w", "0.3")}


def star_status(t: dict) -> np.ndarray:
    """Each checkpoint's star-convexity verdict (trajectory.HOLDS / FAILS / UNRESOLVED); files that predate
    ``star_status`` give holds or fails from ``star_holds``."""
    if "star_status" in t:
        return np.asarray(t["star_status"], float)
    return np.where(np.asarray(t["star_holds"], bool), HOLDS, FAILS)


def draw_star_convexity(ax, epoch: np.ndarray, ratio: np.ndarray, status: np.ndarray, *, marker="o",
                        label: str = "") -> int:
    """The star-convexity ratio ⟨∇F(θ_t), θ_t − θ_T⟩ / (F(θ_t) − F(θ_T)) against epoch on a log axis, coloured
    by the verdict ``status`` (blue holds, red fails, open grey within rounding). Every checkpoint is drawn: a
    ratio ≤ 0 at the bottom edge (▼), an undefined one (F(θ_t) ≤ F(θ_T) + rounding: no ratio, the verdict
    compares the two sides directly) at the top edge (▲). Returns the number of points drawn."""
    epoch, ratio, status = (np.asarray(v, float) for v in (epoch, ratio, status))
    defined = np.isfinite(ratio)
    positive = defined & (ratio > 0)
    prefix = f"{label}: " if label else ""
    drawn = 0
    for value, (word, face, edge) in _STAR_LOOK.items():
        sel = status == value
        style = dict(color=face, mec=edge, mew=0.6, ms=6, ls="none")
        for part, where, shape in ((sel & positive, "", marker),
                                   (sel & defined & ~positive, ", ratio ≤ 0 (bottom edge)", "v"),
                                   (sel & ~defined, ", no ratio: F(θ_t) ≤ F(θ_T) (top edge)", "^")):
            if not part.any():
                continue
            if where == "":
                ax.plot(epoch[part], ratio[part], shape, zorder=3, label=f"{prefix}{word}", **style)
            else:
                _edge(ax, epoch[part], 1.0 if shape == "^" else 0.0, shape, label=f"{prefix}{word}{where}", **style)
            drawn += int(part.sum())
    ax.set_yscale("log")
    return drawn


def star_ylim(ratios: np.ndarray) -> tuple[float, float]:
    """A log range holding every positive ratio and 1 (the star-convexity threshold), with a margin."""
    r = np.asarray(ratios, float)
    r = r[np.isfinite(r) & (r > 0)]
    lo, hi = (min(float(r.min()), 1.0), max(float(r.max()), 1.0)) if len(r) else (1.0, 1.0)
    return lo / 1.6, hi * 1.6


def plot_trajectory(run_dir, out_dir=None) -> list[Path]:
    """Convexity along the path: the star-convexity ratio toward θ_T against epoch (left, every checkpoint of
    every repeat), PL* ratios (middle), distance travelled and, when measured, NTK drift (right). [] without
    trajectory/."""
    run = as_run(run_dir)
    config = read_config(run)
    items = load_trajectory(run)
    if not items:
        return []
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    repeats = len(items)
    keys = ("pl_zero", "pl_min", "travelled") + (("ntk_drift",) if all("ntk_drift" in t for t in items) else ())
    records = [{"epoch": float(e), "repeat": t["repeat"], **{k: float(t[k][i]) for k in keys}}
               for t in items for i, e in enumerate(t["epoch"])]
    target = items[0]["result"]["target_epoch"]
    with plt.rc_context(style):
        fig, (ax_s, ax_p, ax_d) = plt.subplots(1, 3, figsize=(14, 4.8), sharex=True, layout="constrained")
        for k, t in enumerate(items):
            draw_star_convexity(ax_s, t["star_epoch"], t["star_ratio"], star_status(t), marker="osD^"[k % 4],
                                label=f"repeat {t['repeat']}" if repeats > 1 else "")
        ax_s.axhline(1, color="k", ls="--", lw=1, label="ratio = 1: star-convex on or above")
        ax_s.set_ylim(*star_ylim(np.concatenate([t["star_ratio"] for t in items])))
        ax_s.set_xlabel("epoch t")
        ax_s.set_ylabel("⟨∇F(θ_t), θ_t − θ_T⟩ / (F(θ_t) − F(θ_T))")
        ax_s.set_title(f"star-convexity toward θ_T (epoch {target})")
        ax_s.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
        draw_pl_panel(ax_p, records)
        draw_spread(ax_d, *epoch_spread(records, "travelled"), marker="o", color="k",
                    label="‖θ_t − θ_0‖/‖θ_0‖")
        if "ntk_drift" in keys:
            draw_spread(ax_d, *epoch_spread(records, "ntk_drift"), marker="D", color="#009E73",
                        label=f"NTK drift ‖K_t − K_0‖_F/‖K_0‖_F ({items[0]['result']['ntk_layout']['rows']})")
        ax_d.set_xlabel("epoch"); ax_d.set_ylabel("relative change")
        ax_d.set_title("distance from the initialization" + (" and NTK drift" if "ntk_drift" in keys else ""))
        ax_d.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        for ax in (ax_s, ax_p, ax_d):
            tick_format(ax)
            epoch_axis(ax)
        fig.suptitle(figure_title(run, "convexity along the trajectory"), fontsize=9.5)
        return save_figure(fig, out_dir, "trajectory", _trajectory_caption(run, config, items, keys))


def draw_pl_panel(ax, records: list[dict]) -> None:
    """The PL* ratios ‖∇F‖²/F and ‖∇F‖²/(F − F*) against epoch (mean, min–max over repeats), side by side."""
    span = max(1.0, max(r["epoch"] for r in records) - min(r["epoch"] for r in records))
    for key, marker, color, shift, label in (
            ("pl_zero", "o", "#0072B2", -0.012, "‖∇F‖²/F  (F* = 0: the paper's ratio)"),
            ("pl_min", "s", "#D55E00", 0.012, "‖∇F‖²/(F − F*)  (F* = lowest F seen)")):
        ok = [r for r in records if np.isfinite(r[key]) and r[key] > 0]
        if ok:  # side by side (shifted by ±1.2 % of the epochs' span): neither series hides the other
            e, mid, lo, hi = epoch_spread(ok, key)
            draw_spread(ax, e + shift * span, mid, lo, hi, marker=marker, color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch"); ax.set_ylabel("PL* ratio")
    ax.set_title("Polyak–Łojasiewicz ratio along training")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))


def _trajectory_caption(run, config: dict, items: list[dict], keys: tuple) -> str:
    """What the trajectory figure was computed on, how its star-convexity panel reads, and which checkpoints
    have no ratio or a verdict within rounding."""
    repeats = len(items)
    no_ratio = sorted({int(e) for t in items for e, r in zip(t["star_epoch"], t["star_ratio"]) if not np.isfinite(r)})
    rounding = sorted({int(e) for t in items for e, s in zip(t["star_epoch"], star_status(t)) if s == UNRESOLVED})
    return (f"{run_title(run, config)}. {common_caption([t['context'] for t in items])}. Left: at each checkpoint θ_t, "
            f"F is the loss with θ_t's batch-norm statistics, at θ_t and at the final point θ_T; star-convex where "
            f"⟨∇F(θ_t), θ_t − θ_T⟩ ≥ F(θ_t) − F(θ_T) (beyond rounding), i.e. ratio ≥ 1 where F(θ_t) > F(θ_T)"
            + (f"; epochs {', '.join(map(str, no_ratio))} have F(θ_t) ≤ F(θ_T) (no ratio: drawn at the top edge, "
               f"coloured by the verdict)" if no_ratio else "")
            + (f"; within rounding (neither holds nor fails): epochs {', '.join(map(str, rounding))}" if rounding else "")
            + (f"; marker shape = repeat" if repeats > 1 else "") + ". Middle and right: "
            + (f"mean over {repeats} repeats, bars min–max" if repeats > 1 else "one repeat")
            + ("" if "ntk_drift" in keys else "; NTK drift not measured in this run") + ".")


# ============================================================================ (e) training curves
def plot_training(run_dir, out_dir=None) -> list[Path]:
    """Train/test loss and accuracy and the learning rate per epoch (log.jsonl), and the top
    and most negative Hessian eigenvalues at the analyzed checkpoints (the curvature measurement).
    [] when there is neither."""
    run = as_run(run_dir)
    config = read_config(run)
    log = load_log(run)
    curv = load_curvature(run, repeats=True)
    sharp = load_sharpness(run)
    if not log and not curv:
        return []
    augmented = "augmented" if (config.get("train") or {}).get("augment", True) else "no augmentation"
    out_dir = Path(out_dir) if out_dir else run.figures
    plt, style = pyplot()
    checkpoints = analyzed_epochs(run)
    with plt.rc_context(style):
        fig, axes = plt.subplots(2, 2, figsize=(10, 7.4), sharex=True, layout="constrained")
        (ax_loss, ax_acc), (ax_lr, ax_eig) = axes
        if log:
            e = np.array([r["epoch"] for r in log])
            mk = "o" if len(log) <= 40 else None
            ax_loss.plot(e, [r["train_loss"] for r in log], "-", marker=mk, ms=3, color=TRAIN_COLOR,
                         label=f"train (running mean over the epoch, {augmented})")
            ax_loss.plot(e, [r["test_loss"] for r in log], "--", marker=mk, ms=3, color=TEST_COLOR, label="test")
            ax_acc.plot(e, [r["train_acc"] for r in log], "-", marker=mk, ms=3, color=TRAIN_COLOR,
                        label="train")
            ax_acc.plot(e, [r["test_acc"] for r in log], "--", marker=mk, ms=3, color=TEST_COLOR, label="test")
            ax_lr.stairs([r["lr"] for r in log], np.r_[e[0] - 1, e], color="k", lw=1.4, baseline=None)
            ax_lr.set_yscale("log")
            losses = np.array([r["train_loss"] for r in log] + [r["test_loss"] for r in log])
            if _log_scale(losses):
                ax_loss.set_yscale("log")
                _log_ticks(ax_loss, "y")
            ax_loss.legend(loc="best"); ax_acc.legend(loc="center right")
            last = log[-1]
            ax_acc.set_title(f"accuracy (epoch {int(last['epoch'])}: train {last['train_acc']:.3f}, "
                             f"test {last['test_acc']:.3f})")
            ax_lr.set_title(f"learning rate (SGD, {len(log)} epochs logged)")
        else:
            for ax in (ax_loss, ax_acc, ax_lr):
                ax.text(0.5, 0.5, "no log.jsonl", ha="center", va="center", transform=ax.transAxes)
            ax_acc.set_title("accuracy"); ax_lr.set_title("learning rate")
        for ax in axes.flat:
            for c in checkpoints:
                ax.axvline(c, color="0.6", lw=0.6, ls=":")
        ax_loss.set_title("loss")
        ax_lr.set_xlabel("epoch"); ax_eig.set_xlabel("epoch")
        ax_loss.set_ylabel({"mse": "½‖f(x) − y‖²"}.get((config.get("train") or {}).get("loss"), "cross-entropy")); ax_acc.set_ylabel("accuracy"); ax_lr.set_ylabel("lr")
        draw_eigen_panel(ax_eig, curv, sharp)
        epoch_axis(ax_eig)
        for ax in axes.flat:
            tick_format(ax, "y")
        data = config.get("data", {})
        caption = (f"{run_title(run, config)}. Training on {data.get('train_examples', '?')} images of "
                   f"{data.get('dataset', '?')}, test on {data.get('test_examples', '?')}; dotted lines: analyzed "
                   f"checkpoints." + (f" Eigenvalues: {common_caption([c['context'] for c in curv])}." if curv else ""))
        fig.suptitle(figure_title(run, "training curves and Hessian extremes"), fontsize=9.5)
        return save_figure(fig, out_dir, "training", caption)


def draw_eigen_panel(ax, curv: list[dict], sharp: list[dict]) -> None:
    """λ_max and λ_min at the checkpoints (mean, min–max over repeats) and the tracked sharpness: on a
    log axis as λ_max and |λ_min| when they span more than a factor 30, else linear; 'not measured' without them."""
    if not curv:
        ax.text(0.5, 0.5, f"no {REGISTRY['curvature'].file}\n(not measured)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_title("Hessian extreme eigenvalues")
        return
    repeats = len({c["repeat"] for c in curv})
    vals = np.abs([c["top"] for c in curv] + [c["most_negative"] for c in curv])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    log = bool(len(vals)) and vals.max() / vals.min() > 30
    suffix = f", mean and min–max over {repeats} repeats" if repeats > 1 else ""
    for key, marker, color, label in (("top", "o-", "#CC79A7", "λ_max (top)"),
                                      ("most_negative", "v-", "#E69F00", "λ_min (most negative)")):
        e, mid, lo, hi = epoch_spread(curv, key)
        if log and key == "most_negative":  # |λ|: the order of the bounds flips with the sign
            mid, lo, hi, label = np.abs(mid), np.minimum(np.abs(lo), np.abs(hi)), np.maximum(np.abs(lo), np.abs(hi)), \
                "|λ_min| (λ_min: the most negative found)"
        draw_spread(ax, e, mid, lo, hi, marker=marker, color=color, label=label + suffix)
    if log:
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="0.5", lw=0.6)
    if sharp:
        draw_sharpness(ax, *_columns(sharp, "epoch", "lambda_max", "limit_gd", "limit_momentum"))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    sig = curv[0]["settings"].get("sigma")
    ax.set_title("Hessian extreme eigenvalues at the checkpoints" + (f" (σ={fmt(sig)})" if sig else ""))
    ax.set_ylabel("|eigenvalue|" if log else "eigenvalue")
    tick_format(ax, "y")


def draw_sharpness(ax, epoch: np.ndarray, sharpness: np.ndarray, limit_gd: np.ndarray,
                   limit_momentum: np.ndarray) -> None:
    """λ_max along training (tracked examples) with the stability limits 2/η and, with momentum β,
    (2+2β)/η (Cohen et al.'s edge of stability)."""
    ax.plot(epoch, sharpness, "-", color="#CC79A7", lw=0.9, alpha=0.8, label="λ_max along training (tracked examples)")
    ax.plot(epoch, limit_gd, ":", color="0.3", lw=1.1, label="2/η (gradient descent's stability limit)")
    if np.any(limit_momentum != limit_gd):
        ax.plot(epoch, limit_momentum, "--", color="0.5", lw=1.0, label="(2+2β)/η (with momentum β)")


def epoch_spread(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, min, max) of ``key`` over the repeats of each epoch."""
    epochs = sorted({r["epoch"] for r in records})
    vals = [np.array([r[key] for r in records if r["epoch"] == e], float) for e in epochs]
    return (np.array(epochs), np.array([v.mean() for v in vals]), np.array([v.min() for v in vals]),
            np.array([v.max() for v in vals]))


def draw_spread(ax, x: np.ndarray, mid: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, marker="o",
                color="k", label: str = "") -> None:
    """Points at ``mid`` with bars from ``lo`` to ``hi`` (the spread over repeats)."""
    # a mean of equal values can exceed their max by rounding: bars never go negative
    ax.errorbar(x, mid, yerr=[np.maximum(mid - lo, 0), np.maximum(hi - mid, 0)], fmt=marker, color=color,
                capsize=3, label=label)


def _track_bn_words(track: list[dict]) -> str:
    return ("BN statistics of θ on those examples" if track_uses_statistics_of_theta(track)
            else "the running BN statistics of the moment, which lag the weights")


_DECREASES = (("d_grad", "o", _DIRECTION_COLORS["neg_gradient"], "d_grad: best decrease along −∇F"),
              ("d_curv", "v", "#E69F00", "d_curv: best decrease along y (most negative curvature ⊥ ∇F)"),
              ("d_plane", "s", "#0072B2", "d_plane: best decrease in the plane (local search)"))


def draw_decreases(ax, tests: list[dict]) -> None:
    """d_grad, d_curv and d_plane against epoch (mean, min–max over repeats, side by side); a decrease below
    the rounding floor of F (unresolved: NaN with its bound) is an open marker at that bound, never left out."""
    span = max(1.0, max(t["epoch"] for t in tests) - min(t["epoch"] for t in tests))
    for k, (key, marker, color, label) in enumerate(_DECREASES):
        shift = (k - 1) * 0.012 * span
        e, mid, lo, hi = epoch_spread(tests, key)
        draw_spread(ax, e + shift, mid, lo, hi, marker=marker, color=color, label=label)
        for side in ("below", "above"):  # an unresolved number: {'bound', 'side'} (readers._maybe_num)
            at = [(t["epoch"], t["unresolved"][key]["bound"]) for t in tests if not math.isfinite(t[key])
                  and t.get("unresolved", {}).get(key, {}).get("side") == side
                  and t["unresolved"][key].get("bound") is not None]
            if at:
                ax.plot([e + shift for e, _ in at], [b for _, b in at], marker, color=color, mfc="w", ls="none",
                        label=f"{key} not resolved: {side} its bound (open marker, at the bound)")
    vals = np.array([t[k] for t in tests for k in ("d_grad", "d_curv", "d_plane")])
    if _log_scale(vals[vals > 0]) and (vals > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("epoch"); ax.set_ylabel("F(θ) − F(best point)")
    ax.set_title("decrease available from θ")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    tick_format(ax)
    epoch_axis(ax)


def plot_second_order(run_dir, out_dir=None, limit: float = SECOND_ORDER_MAX_EXTRA_FRACTION) -> list[Path]:
    """The grid-free second-order test per checkpoint: d_grad, d_curv and d_plane (left) and
    the extra decrease (d_plane − d_grad)/d_grad against the 'little help' limit (right),
    each as the mean with its min–max over the repeats. [] without a second_order result."""
    run = as_run(run_dir)
    config = read_config(run)
    tests = load_second_order(run)
    if not tests:
        return []
    out_dir = Path(out_dir) if out_dir else run.figures
    repeats = len({t["repeat"] for t in tests})
    plt, style = pyplot()
    with plt.rc_context(style):
        fig, (ax, ax_x) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
        draw_decreases(ax, tests)
        e, mid, lo, hi = epoch_spread(tests, "extra_fraction")
        draw_spread(ax_x, e, 100 * mid, 100 * lo, 100 * hi, marker="D", color="k",
                    label="(d_plane − d_grad) / d_grad" + (f", mean and min–max over {repeats} repeats"
                                                           if repeats > 1 else ""))
        ax_x.axhline(100 * limit, color="#D55E00", ls="--", lw=1.2,
                     label=f"'little help' limit: {fmt(100 * limit)}% of d_grad")
        ax_x.set_xlabel("epoch"); ax_x.set_ylabel("(d_plane − d_grad) / d_grad (%)")
        ax_x.set_title("extra decrease in the plane beyond the best step along −∇F")
        ax_x.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        tick_format(ax_x)
        epoch_axis(ax_x)
        rtol = tests[0]["result"].get("line_search_rtol")
        caption = (f"{run_title(run, config)}. {common_caption([t['context'] for t in tests])}; "
                   + (f"line searches to {fmt(rtol)} relative in the step, " if rtol is not None else "line searches, ")
                   + "Nelder–Mead in the plane; no grid. The plane is spanned by −∇F and y (the most negative "
                     "curvature direction, orthogonalized to ∇F): its extra decrease is what the two directions give "
                     "together, d_curv what y gives alone."
                   + (f" Points: mean over {repeats} repeats, bars: min–max." if repeats > 1 else ""))
        fig.suptitle(figure_title(run, "the second-order test"), fontsize=9.5)
        return save_figure(fig, out_dir, "second_order", caption)


# ============================================================================ all of them
MANIFEST = "figures.json"


def input_fingerprint(run_dir) -> list[list]:
    """(path, size, mtime) of every result file the figures read: equal fingerprints, equal figures."""
    run = as_run(run_dir)
    files = [run.config, run.log, run.track, run.sharpness]
    if run.analysis.is_dir():
        files += sorted(p for p in run.analysis.rglob("*")
                        if p.suffix in (".json", ".npz") and ".partial" not in p.name)
    return [[str(p.relative_to(run.path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()]


def read_manifest(out_dir) -> dict | None:
    """What the last ``make_figures`` into ``out_dir`` wrote, or None."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("written"), dict) else None
    except (OSError, ValueError):
        return None


def figures_fresh(run_dir, out_dir, epochs=None, floor: float = DOMINANCE_F_FLOOR) -> bool:
    """Whether ``out_dir`` holds figures drawn from the run's current result files with these settings
    (every input file, the dominance floor and, when given, the selected epochs): the one test of staleness."""
    manifest = read_manifest(out_dir)
    return (manifest is not None and manifest.get("inputs") == input_fingerprint(run_dir)
            and manifest.get("floor") == floor
            and (epochs is None or manifest.get("epochs") == sorted(set(int(e) for e in epochs))))


def check_inputs(run_dir) -> None:
    """Read every result file the figures use, so a damaged one fails before anything is drawn."""
    run = as_run(run_dir)
    read_config(run)
    load_log(run)
    load_track(run)
    load_dominance(run)
    load_curvature(run)
    load_interpolations(run)
    load_trajectory(run)
    load_sharpness(run)
    load_spectrum(run)
    for epoch in analyzed_epochs(run):
        load_probes(run, epoch)
        for name in ("surface", "random_surface"):
            load_surface(run, epoch, name)


class FigureSet(list):
    """The paths ``make_figures`` wrote (a list), with ``written`` (figure name -> its paths),
    ``skipped`` (figure name -> why: its inputs are absent) and ``captions`` (PNG stem -> caption)."""

    def __init__(self):
        super().__init__()
        self.written: dict[str, list[Path]] = {}
        self.skipped: dict[str, str] = {}
        self.captions: dict[str, str] = {}  # PNG stem -> what it was computed on

    @property
    def paths(self) -> list[Path]:
        return list(self)


_SKIP_REASONS = {m.figure: m.hint for m in REGISTRY.values() if m.figure}  # why a figure has no input


@holds_runs("landscape figures")
def make_figures(run_dir, out_dir=None, epochs=None, *, floor: float = DOMINANCE_F_FLOOR,
                 echo=None) -> FigureSet:
    """Draw every figure whose inputs exist into ``out_dir`` (default RUN/figures).

    ``epochs`` restricts the per-checkpoint figures (surfaces, probes). Every input is read
    (and checked) before anything is drawn. Returns a FigureSet (iterable over the written
    paths) whose ``skipped`` says which figures had no inputs; the same goes to
    ``out_dir``/figures.json with a fingerprint of the inputs (the report reuses up-to-date figures).
    """
    run = as_run(run_dir)
    read_config(run)
    out = Path(out_dir) if out_dir else run.figures
    result = FigureSet()
    if epochs is not None:
        epochs = sorted(set(int(e) for e in epochs))
        analyzed = analyzed_epochs(run)
        missing = [e for e in epochs if e not in analyzed]
        if missing:
            raise LandscapeError(f"no analysis for epoch(s) {missing} in {run.analysis}; "
                                 f"analyzed: {analyzed or 'none'}")

    def having(name_glob: str):
        """The requested epochs that hold ``name_glob`` (None: let the figure choose)."""
        if epochs is None:
            return None
        return [e for e in epochs if any(run.analysis_dir(e).glob(name_glob))] or False

    def per_epoch(plot, name_glob, *args):
        chosen = having(name_glob)
        return [] if chosen is False else plot(run.path, out, chosen, *args)

    check_inputs(run)
    fingerprint = input_fingerprint(run)
    makers = {
        "surface": lambda: per_epoch(plot_surfaces, REGISTRY["surface"].file, "paper"),
        "random_surface": lambda: per_epoch(plot_surfaces, REGISTRY["random_surface"].file, "random"),
        "dominance": lambda: plot_dominance(run.path, out, floor),
        "second_order": lambda: plot_second_order(run.path, out),
        "smoothness": lambda: per_epoch(plot_smoothness, REGISTRY["probes"].file_glob()),
        "interpolation": lambda: plot_interpolation(run.path, out),
        "trajectory": lambda: plot_trajectory(run.path, out),
        "spectrum": lambda: per_epoch(plot_spectrum, REGISTRY["spectrum"].file),
        "training": lambda: plot_training(run.path, out),
        "hessian_subsets": lambda: plot_hessian_subsets(run.path, out),
    }
    for name, make in makers.items():
        paths = make()
        result.captions.update({p.stem: getattr(paths, "caption", "") for p in paths if p.suffix == ".png"})
        if paths:
            result.written[name] = paths
            result.extend(paths)
        else:
            result.skipped[name] = _SKIP_REASONS[name] + (f" for epoch(s) {epochs}" if epochs and name in
                                                          ("surface", "random_surface", "smoothness") else "")
        if echo:
            echo(f"{name}: " + (", ".join(p.name for p in paths) if paths else f"skipped ({result.skipped[name]})"))
    if result:
        atomic_write_json({"run": str(run.path), "epochs": epochs, "floor": floor, "inputs": fingerprint,
                           "written": {k: [p.name for p in v] for k, v in result.written.items()},
                           "captions": result.captions, "skipped": result.skipped}, out / MANIFEST)
    return result
