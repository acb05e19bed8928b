"""The sweep's figures, drawn from the summary ``sweep_fits.fit_summary`` made (nothing is fitted here).

Every line drawn is a stored ``scaling.Slope``: its points ``width_values``/``centers`` (the
seeds' geometric mean at each x) and its line exp(intercept)·x^slope, the very slope the tables
print and judge; the shaded fan is its 95 % interval (the lines of slope ``low`` and ``high``
through the fit at the centre of the log x values). Each cell is a marker whose shape names its
seed; a value 0 (which a log axis cannot show) is drawn at the axis floor as ▼ and named in the
caption. A PNG carries a one-line title; what the numbers were computed on is its caption
(``plots.Drawn.caption``), which the report prints under it.

* ``plot_width_figures``  sweep_<quantity>: each quantity against width, one colour per (depth, n)
                          group (only with ``scaling.MIN_WIDTHS`` widths or more);
* ``plot_paths``          sweep_paths: c_t, a/√F, flip fraction and spectral movement along training,
                          one colour per value of the sweep's axis (width, else depth, else n);
* ``plot_axes``           sweep_depth / sweep_sizes: the depth and sample-size axes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .plots import COLORS, Drawn, pyplot, save_figure, tick_format, wrap_text
from .scaling import MIN_WIDTHS
from .text import fmt, fmt_tick

SEED_MARKERS = ("o", "^", "D", "P", "X", "<", ">", "*")  # no square (the means) and no ▼ (zeros)
ZERO_MARKER = "v"
PATH_PANELS = {"c": "c_t = ‖∇F‖²/F", "a_over_sqrt_F": "max a/√F of the probes (bounds where unresolved)", "activation_flips":
               "largest flip fraction", "spectral_movement": "largest ‖W_l(t) − W_l(0)‖₂/‖W_l(0)‖₂"}
AXIS_WORDS = {"width": "width", "depth": "L", "n": "n"}


# ---------------------------------------------------------------------------------------------- words
def family(config: dict, cells: list[dict]) -> str:
    """The architecture family the cells span: 'mlp2_d16', or 'mlpL_d16, L ∈ {1, 2, 4}' over depths."""
    depths = sorted({c["depth"] for c in cells})
    if len(depths) < 2:
        return cells[0].get("arch", config["arch"]) if cells else config["arch"]
    m = re.fullmatch(r"(mlp|resnet)\d+(.*)", config["arch"])
    if not m:
        return config["arch"]
    letter = "L" if m.group(1) == "mlp" else "D"
    return f"{m.group(1)}{letter}{m.group(2)}, {letter} ∈ {{{', '.join(str(d) for d in depths)}}}"


def dataset_name(config: dict, cells: list[dict]) -> str:
    """The dataset, with its sample size written N ∈ {…} when the cells span several."""
    sizes = sorted({c["n"] for c in cells if c.get("n") is not None})
    if len(sizes) < 2:
        return config["dataset"]
    return re.sub(r"([?&])n=\d+", r"\1n=N", config["dataset"]) + f" (N ∈ {{{', '.join(map(str, sizes))}}})"


def full_batch(config: dict, cells: list[dict]) -> bool:
    """Whether every batch is the cell's whole training set (gradient descent, not SGD)."""
    batch, subset = config.get("batch_size"), config.get("train_subset")
    return bool(config.get("full_batch") or (batch is not None and cells and all(
        (subset or c.get("n")) and batch >= (subset or c["n"]) for c in cells)))


def steps_word(config: dict, cells: list[dict]) -> str:
    """'gradient-descent steps' for full-batch training, else 'SGD steps'."""
    return "gradient-descent steps" if full_batch(config, cells) else "SGD steps"


def quantity_label(label: str, config: dict, cells: list[dict]) -> str:
    """A quantity's label with 'steps' made 'gradient-descent steps' or 'SGD steps'."""
    return steps_word(config, cells) + label[len("steps"):] if label.startswith("steps") else label


def provenance(config: dict, cells: list[dict]) -> str:
    """What every cell of the sweep was computed on, for a caption."""
    lr = (f"η ∝ 1/width from {fmt(config['lr'])} at the smallest width" if config.get("lr_scaling") == "theorem"
          else f"η = {fmt(config['lr'])}")
    return (f"{family(config, cells)} on {dataset_name(config, cells)}; seeds {config['seeds']}; each cell "
            f"trained to training loss ≤ {fmt(config['target_loss'])} ({config['loss']}) by "
            + ("full-batch gradient descent" if full_batch(config, cells)
               else f"SGD (batch {config.get('batch_size')})")
            + f" at {lr}, momentum {fmt(config['momentum'])}.")


def width_label(config: dict) -> str:
    """The width axis: the multiplier, and an mlp's hidden width m it sets."""
    from .models import MLP_BASE_WIDTH

    mlp = str(config["arch"]).startswith("mlp")
    return "width multiplier w" + (f" (m = {MLP_BASE_WIDTH}·w hidden units)" if mlp else "")


def sweep_values(summary: dict, key: str) -> list:
    """The distinct values of ``key`` ('width', 'depth', 'n') over the sweep's cells."""
    return sorted({c[key] for c in summary["cells"] if c.get(key) is not None})


# ---------------------------------------------------------------------------------------------- drawing
def slope_line(slope: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, centers, line) of a stored Slope: the points a figure draws and its fitted line there."""
    x, centers = np.asarray(slope["width_values"], float), np.asarray(slope["centers"], float)
    finite = math.isfinite(slope["slope"])
    line = np.exp(slope["intercept"]) * x ** slope["slope"] if finite else np.full_like(x, np.nan)
    return x, centers, line


def slope_fan(slope: dict, x) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the slope's 95 % interval at ``x``: the lines of slope ``low`` and ``high``
    through the fit at the centre of the log x values (NaN without an interval)."""
    x = np.asarray(x, float)
    if not all(math.isfinite(slope[k]) for k in ("slope", "low", "high")) or not slope["width_values"]:
        return np.full_like(x, np.nan), np.full_like(x, np.nan)
    centre = float(np.mean(np.log(slope["width_values"])))
    at = slope["intercept"] + slope["slope"] * centre
    a, b = (np.exp(at + slope[k] * (np.log(x) - centre)) for k in ("low", "high"))
    return np.minimum(a, b), np.maximum(a, b)


def number(value) -> float:
    """A stored value as a float: NaN for None or what is not a number (sweep.json spells NaN 'nan')."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def draw_cells(ax, xs, values, seeds, seed_list, *, color, zeros: list) -> None:
    """Each cell's value, marker by seed; values 0 are appended to ``zeros`` (drawn by ``mark_zeros``)."""
    for x, v, s in zip(xs, values, seeds):
        v = number(v)
        if not math.isfinite(v):
            continue
        marker = SEED_MARKERS[seed_list.index(s) % len(SEED_MARKERS)] if s in seed_list else "o"
        if v > 0:
            ax.plot(x, v, marker, color=color, ms=3.5, alpha=0.55, ls="none")
        else:
            zeros.append((x, s, color))


def mark_zeros(ax, zeros: list) -> None:
    """Values ≤ 0 at the floor of a log y axis (▼, unclipped), after every positive value is drawn."""
    if not zeros:
        return
    floor = ax.get_ylim()[0]
    ax.set_ylim(bottom=floor)
    for x, _, color in zeros:
        ax.plot(x, floor, ZERO_MARKER, color=color, ms=5, clip_on=False, ls="none")


def zeros_text(zeros: list, axis: str) -> str:
    """'0 at width 2 (seed 1), width 4 (seed 0)' for a caption ('' when none)."""
    if not zeros:
        return ""
    word = AXIS_WORDS.get(axis, axis)
    return "0 (▼ at the axis floor) at " + ", ".join(f"{word} {fmt_tick(x)} (seed {s})" for x, s, _ in zeros) + ". "


def missing_text(cells: list[dict], values: list, key: str) -> str:
    """'Undefined (not drawn) at width 0.5 (4 of 4 cells). ' for a caption ('' when every cell has a value)."""
    total, missing = {}, {}
    for c, v in zip(cells, values):
        total[c[key]] = total.get(c[key], 0) + 1
        if not math.isfinite(number(v)):
            missing[c[key]] = missing.get(c[key], 0) + 1
    if not missing:
        return ""
    word = AXIS_WORDS.get(key, key)
    return ("Undefined (not drawn) at " + ", ".join(f"{word} {fmt_tick(x)} ({k} of {total[x]} cells)"
                                                   for x, k in sorted(missing.items())) + ". ")


def value_ticks(ax, values, axis: str = "x") -> None:
    """Ticks at the sweep's own values (widths, depths, sizes), written by text.fmt_tick."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    a = getattr(ax, f"{axis}axis")
    lo, hi = min(values), max(values)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo / 1.15, hi * 1.15)  # every value of the sweep in view
    a.set_major_locator(FixedLocator([float(v) for v in values]))
    a.set_major_formatter(FuncFormatter(lambda v, _: fmt_tick(v)))
    a.set_minor_locator(NullLocator())


def legend_handles(seed_list: list, groups: list[tuple[str, str]], zeros: bool, fan: bool = True) -> list:
    """The legend: one line per group (label, colour), a grey marker per seed, the means, the fan, zeros."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=color, lw=1.2, label=label) for label, color in groups]
    handles += [Line2D([], [], marker=SEED_MARKERS[i % len(SEED_MARKERS)], color="0.4", ls="none", ms=4,
                       label=f"seed {s}") for i, s in enumerate(seed_list)]
    handles.append(Line2D([], [], marker="s", mfc="white", mec="k", ls="none", ms=5,
                          label="geometric mean of the seeds"))
    if fan:
        handles.append(Patch(color="0.5", alpha=0.25, label="95 % interval of the exponent"))
    if zeros:
        handles.append(Line2D([], [], marker=ZERO_MARKER, color="0.4", ls="none", ms=5, label="value 0 (at the floor)"))
    return handles


def draw_width_scaling(ax, cells: list[dict], quantity: str, group: dict, *, color="k", seeds=None,
                       zeros: list | None = None) -> float:
    """One group's cells against width (log-log): each cell's value (marker by seed), the seeds'
    geometric mean per width, the fitted line and its 95 % fan, all from the group's stored Slope.
    Returns the slope (NaN when undefined)."""
    seed_list = list(seeds) if seeds is not None else sorted({c["seed"] for c in cells})
    draw_cells(ax, [c["width"] for c in cells], [c.get(quantity) for c in cells], [c["seed"] for c in cells],
               seed_list, color=color, zeros=zeros if zeros is not None else [])
    slope = group["slope"]
    x, centers, line = slope_line(slope)
    ax.plot(x, centers, "s", mfc="white", mec=color, ms=5.5, mew=1.2, ls="none")
    low, high = slope_fan(slope, x)
    if np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=0.15, lw=0)
    text = slope["describe"] if math.isfinite(slope["slope"]) else slope["reason"]
    ax.plot(x, line, "-", color=color, lw=1.2, label=f"slope {text} — {group['judgement']}")
    return slope["slope"]


# ---------------------------------------------------------------------------------------------- figures
def width_caption(q: str, info: dict, label: str, zeros: list, summary: dict) -> str:
    cells = summary["cells"]
    return (f"{label} of each cell against width (marker: seed); white squares: the seeds' geometric mean at "
            f"each width; line: the slope fitted per group (scaling.fit_slope), shaded: its 95 % interval; "
            f"predicted {info['predicted']}, measured: {info['judgement']}. " + zeros_text(zeros, "width")
            + missing_text(cells, [c.get(q) for c in cells], "width") + provenance(summary["config"], cells))


def plot_width_figures(summary: dict, out_dir: Path, plt, style) -> list[Drawn]:
    """sweep_<quantity>.png/.pdf for every quantity with a positive value (only with MIN_WIDTHS widths or more)."""
    cells, config = summary["cells"], summary["config"]
    widths, seeds = sweep_values(summary, "width"), list(config["seeds"])
    if len(widths) < MIN_WIDTHS:
        return []
    written = []
    for q, info in summary["quantities"].items():
        values = np.array([number(c.get(q)) for c in cells], float)
        if not (np.isfinite(values) & (values > 0)).any():
            continue
        label = quantity_label(info["label"], config, cells)
        with plt.rc_context(style):
            fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
            zeros, groups = [], []
            for k, (name, group) in enumerate(info["groups"].items()):
                color = COLORS[k % len(COLORS)]
                sel = [c for c in cells if c["depth"] == group["depth"] and c.get("n") == group["n"]]
                draw_width_scaling(ax, sel, q, group, color=color, seeds=seeds, zeros=zeros)
                text = f"slope {group['slope']['describe']} → {group['judgement']}"
                groups.append(((f"{name}: " if len(info["groups"]) > 1 else "") + text, color))
            ax.set_xscale("log"); ax.set_yscale("log")
            value_ticks(ax, widths); tick_format(ax, "y")
            mark_zeros(ax, zeros)
            ax.set_xlabel(width_label(config))
            ax.set_ylabel(wrap_text(label, 4.0, 9))
            ax.set_title(f"predicted {info['predicted']}; measured: {info['judgement']}", fontsize=8.5)
            ax.legend(handles=legend_handles(seeds, groups, bool(zeros)), fontsize=6.5)
            fig.suptitle(wrap_text(f"{family(config, cells)}: {label} against width", 6.4, 10.5))
            written.append(save_figure(fig, out_dir, f"sweep_{q}", width_caption(q, info, label, zeros, summary)))
    return written


def path_axis(summary: dict) -> tuple[str, list[dict]]:
    """The sweep's axis that colours the paths (width, else depth, else n) and the cells drawn: those
    sharing the first cell's values of the other keys."""
    cells = summary["cells"]
    key = next((k for k in ("width", "depth", "n") if len(sweep_values(summary, k)) > 1), "width")
    fixed = {k: cells[0].get(k) for k in ("width", "depth", "n") if k != key}
    return key, [c for c in cells if all(c.get(k) == v for k, v in fixed.items())]


def axis_value_text(key: str, value) -> str:
    return {"width": f"width {fmt_tick(value)}", "depth": f"L = {value}", "n": f"n = {value}"}[key]


def draw_path_panel(ax, cells: list[dict], key: str, quantity: str, values: list, seeds: list) -> list:
    """One panel of sweep_paths; returns the values 0 it drew at the floor."""
    zeros = []
    for c in cells:
        path = c.get("path") or {}
        if quantity not in path:
            continue
        step, v = np.asarray(path["step"], float), np.asarray(path[quantity], float)
        color = COLORS[values.index(c[key]) % len(COLORS)]
        marker = SEED_MARKERS[seeds.index(c["seed"]) % len(SEED_MARKERS)] if c["seed"] in seeds else "o"
        ok = np.isfinite(step) & (step > 0) & np.isfinite(v) & (v > 0)
        ax.plot(step[ok], v[ok], "-", marker=marker, ms=2.5, lw=0.8, color=color)
        zeros += [(s, c["seed"], color) for s in step[np.isfinite(step) & (step > 0) & (v == 0)]]
    return zeros


def plot_paths(summary: dict, out_dir: Path, plt, style) -> list[Drawn]:
    """sweep_paths: c_t, a/√F, flip fraction and spectral movement along training (against steps), one
    colour per value of the sweep's axis, marker by seed."""
    if not summary["cells"]:
        return []
    from matplotlib.lines import Line2D

    config = summary["config"]
    key, cells = path_axis(summary)
    values, seeds = sorted({c[key] for c in cells}), list(config["seeds"])
    word = steps_word(config, summary["cells"])
    notes = []
    with plt.rc_context(style):
        fig, axes = plt.subplots(2, 2, figsize=(8, 6), layout="constrained")
        for ax, (q, label) in zip(axes.flat, PATH_PANELS.items()):
            ax.set_title(label, fontsize=8.5)
            if not any(np.isfinite(np.asarray((c.get("path") or {}).get(q, []), float)).any() for c in cells):
                ax.set_axis_off()
                ax.text(0.5, 0.5, "not measured in this sweep", ha="center", va="center", fontsize=8,
                        transform=ax.transAxes)
                continue
            zeros = draw_path_panel(ax, cells, key, q, values, seeds)
            ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel(word)
            tick_format(ax)
            mark_zeros(ax, zeros)
            if zeros:
                notes.append(f"{label}: 0 at {len(zeros)} checkpoint{'s' * (len(zeros) != 1)} (▼ at the floor)")
        handles = [Line2D([], [], color=COLORS[i % len(COLORS)], lw=1.2, label=axis_value_text(key, v))
                   for i, v in enumerate(values)]
        handles += [Line2D([], [], marker=SEED_MARKERS[i % len(SEED_MARKERS)], color="0.4", ls="none", ms=4,
                           label=f"seed {s}") for i, s in enumerate(seeds)]
        if notes:
            handles.append(Line2D([], [], marker=ZERO_MARKER, color="0.4", ls="none", ms=5, label="0 (at the floor)"))
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
        fixed = [axis_value_text(k, cells[0][k]) for k in ("width", "depth", "n")
                 if k != key and cells[0].get(k) is not None and len(sweep_values(summary, k)) > 1]
        fig.suptitle(f"{family(config, cells)}: along training" + (f" ({', '.join(fixed)})" if fixed else ""))
        caption = (f"Each analyzed checkpoint of each cell against its {word} (log axis: θ_0, step 0, is left off), "
                   f"one colour per {AXIS_WORDS[key]}, marker by seed" + (f", at {', '.join(fixed)}" if fixed else "")
                   + ". " + "; ".join(notes) + (". " if notes else "") + provenance(config, summary["cells"]))
        return [save_figure(fig, out_dir, "sweep_paths", caption)]


def axis_value(cell: dict, quantity: str):
    """A cell's value of an axis quantity (c_lemma: the lemma's c·d/m over the hidden layers)."""
    return (cell.get("lemma") or {}).get("c_scaled") if quantity == "c_lemma" else cell.get(quantity)


AXES = {  # figure: (summary key, the cells' key, the group's fixed keys, quantities, x label)
    "depth": ("depths", "depth", ("width", "n"), ("grad_norm_init", "steps"), "depth L (hidden layers)"),
    "sizes": ("sizes", "n", ("depth", "width"), ("c_lemma", "steps"), "sample size n"),
}


def draw_axis_panel(ax, name: str, entries: dict, q: str, cells: list[dict], seeds: list) -> list:
    """One quantity against depth or n: cells by seed, the seeds' geometric means, the power fit with its
    fan (solid) and, for depth, the exponential fit e^{rL} with its fan (dotted). Returns the zeros."""
    _, key, fixed, _, _ = AXES[name]
    zeros = []
    for k, e in enumerate(entries.values()):
        color = COLORS[k % len(COLORS)]
        sel = [c for c in cells if all(c.get(f) == e.get(f) for f in fixed)]
        draw_cells(ax, [c[key] for c in sel], [axis_value(c, q) for c in sel], [c["seed"] for c in sel], seeds,
                   color=color, zeros=zeros)
        fits = ([(e[q]["power"], "-", False), (e[q]["rate"], ":", True)] if name == "depth"
                else [(e[q]["slope"], "-", False)])
        for slope, ls, exponential in fits:
            x, centers, _ = slope_line(slope)
            if not len(x) or not math.isfinite(slope["slope"]):
                continue
            at = np.linspace(min(x), max(x), 60) if not exponential else np.linspace(*np.log([min(x), max(x)]), 60)
            fit_x = np.exp(at) if exponential else at
            low, high = slope_fan(slope, fit_x)
            ax.plot(at, np.exp(slope["intercept"]) * fit_x ** slope["slope"], ls, color=color, lw=1.2)
            ax.fill_between(at, low, high, color=color, alpha=0.08 if exponential else 0.18, lw=0,
                            hatch="...." if exponential else None)
            if not exponential:
                ax.plot(x, centers, "s", mfc="white", mec=color, ms=5.5, mew=1.2, ls="none")
    return zeros


def axis_legend(name: str, entries: dict, q: str) -> list:
    """The fits of one axis panel, each with its interval (the seeds, means and fan: ``legend_handles``)."""
    from matplotlib.lines import Line2D

    handles = []
    for k, (group, e) in enumerate(entries.items()):
        color, head = COLORS[k % len(COLORS)], f"{group}: " if len(entries) > 1 else ""
        if name == "depth":
            handles.append(Line2D([], [], color=color, lw=1.2, label=f"{head}L^p: p = {e[q]['power']['describe']}"))
            handles.append(Line2D([], [], color=color, lw=1.2, ls=":",
                                  label=f"{head}e^(rL): r = {e[q]['rate']['describe']}"))
        else:
            handles.append(Line2D([], [], color=color, lw=1.2, label=f"{head}n^p: p = {e[q]['slope']['describe']}"))
    return handles


def axis_caption(name: str, entries: dict, labels: list[str], zeros: list, summary: dict) -> str:
    first = next(iter(entries.values()))
    if name == "depth":
        fits = "; ".join(f"{labels[i]}: better fit {first[q]['better']}" for i, q in enumerate(AXES[name][3]))
        head = (f"{' and '.join(labels)} of each cell against the depth L (marker: seed; white squares: the seeds' "
                f"geometric mean), with the power law q ∝ L^p (solid) and the exponential q ∝ e^(rL) (dotted) "
                f"fitted "
                f"over every cell (scaling.fit_slope against L and e^L), shaded: each fit's 95 % interval; {fits}. ")
    else:
        head = (f"{' and '.join(labels)} of each cell against the sample size n (marker: seed; white squares: the "
                f"seeds' geometric mean), with the slope fitted over every cell (scaling.fit_slope), shaded: its "
                f"95 % interval; c·d/m predicted {first['c_lemma']['predicted']}, measured: "
                f"{first['c_lemma']['judgement']}. ")
    _, key, fixed, _, _ = AXES[name]
    cells = [c for c in summary["cells"] if c.get(key) is not None
             and any(all(c.get(f) == e.get(f) for f in fixed) for e in entries.values())]
    missing = [missing_text(cells, [axis_value(c, q) for c in cells], key) for q in AXES[name][3]]
    missing = "".join(f"{label}: {text}" for label, text in zip(labels, missing) if text)
    return head + zeros_text(zeros, key) + missing + provenance(summary["config"], cells)


def plot_axes(summary: dict, out_dir: Path, plt, style) -> list[Drawn]:
    """sweep_depth (q against L: the stored power fit, solid, and exponential fit, dotted) and sweep_sizes
    (q against n with its stored slope), one panel per quantity, when the sweep has those axes."""
    written = []
    config, cells, seeds = summary["config"], summary["cells"], list(summary["config"]["seeds"])
    for name, (entry_key, key, _, quantities, xlabel) in AXES.items():
        entries = summary.get(entry_key) or {}
        if not entries:
            continue
        labels = [quantity_label(next(iter(entries.values()))[q]["label"], config, cells) for q in quantities]
        zeros_all = []
        with plt.rc_context(style):
            fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
            for ax, q, label in zip(axes, quantities, labels):
                zeros = draw_axis_panel(ax, name, entries, q, cells, seeds)
                first = next(iter(entries.values()))[q]
                verdict = (f"better fit: {first['better']}" if name == "depth" else "reported, not judged"
                           if first["judgement"] == "—" else f"measured: {first['judgement']}")
                ax.set_title(f"{label} ({verdict})" if len(entries) == 1 else label, fontsize=9)
                if not ax.get_lines():
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, "no value > 0", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                    continue
                ax.set_xscale("log"); ax.set_yscale("log")
                value_ticks(ax, sweep_values(summary, key)); tick_format(ax, "y")
                mark_zeros(ax, zeros)
                ax.set_xlabel(xlabel)
                ax.legend(handles=axis_legend(name, entries, q), fontsize=6.5)
                zeros_all += zeros
            fig.legend(handles=legend_handles(seeds, [], bool(zeros_all)), loc="outside lower center",
                       ncols=len(seeds) + 3, fontsize=7)
            fig.suptitle(f"{family(config, cells)}: against {xlabel.split(' (')[0]}")
            written.append(save_figure(fig, out_dir, f"sweep_{name}",
                                       axis_caption(name, entries, labels, zeros_all, summary)))
    return written


def plot_sweep(summary: dict, out_dir: Path) -> list[Drawn]:
    """Every figure of the sweep: one per quantity against width (with enough widths), the paths along
    training, the depth and sample-size axes."""
    plt, style = pyplot()
    return (plot_width_figures(summary, out_dir, plt, style) + plot_paths(summary, out_dir, plt, style)
            + plot_axes(summary, out_dir, plt, style))
