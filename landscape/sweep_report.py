"""The sweep's figures and report, drawn from the summary ``sweep.summarize`` made (sweep_fits.fit_summary).

Nothing is fitted here: every line drawn is a stored ``scaling.Slope`` — its points
``width_values``/``centers`` (the geometric mean of the seeds at each width) and its line
exp(intercept)·width^slope — the very slope the tables print and judge.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .plots import COLORS, pyplot, save_figure, wrap_text
from .report import report_header, render_html, render_markdown
from .results import atomic_write_text
from .text import fmt

PATH_PANELS = {"c": "c_t = ‖∇F‖²/F", "a_over_sqrt_F": "max a/√F of the probes", "activation_flips":
               "largest flip fraction", "spectral_movement": "largest ‖W_l(t) − W_l(0)‖₂/‖W_l(0)‖₂"}


def slope_line(slope: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, centers, line) of a stored Slope: the points a figure draws and its fitted line there."""
    x, centers = np.asarray(slope["width_values"], float), np.asarray(slope["centers"], float)
    line = np.exp(slope["intercept"]) * x ** slope["slope"] if math.isfinite(slope["slope"]) else np.full_like(x, np.nan)
    return x, centers, line


def draw_width_scaling(ax, cells: list[dict], quantity: str, group: dict, *, color="k", label: str = "") -> float:
    """One group's cells against width (log-log): each cell's value, the seeds' geometric mean per width
    and the fitted line, both from the group's stored Slope. Returns the slope (NaN when undefined)."""
    for c in cells:
        v = c.get(quantity)
        if v is not None and math.isfinite(v) and v > 0:
            ax.plot(c["width"], v, "o", color=color, ms=3, alpha=0.4, ls="none")
    slope = group["slope"]
    x, centers, line = slope_line(slope)
    ax.plot(x, centers, "s", color=color, ms=5)
    text = slope["describe"] if math.isfinite(slope["slope"]) else slope["reason"]
    ax.plot(x, line, "-", color=color, lw=1.2, label=f"{label}: slope {text} — {group['judgement']}")
    return slope["slope"]


def _caption(config: dict) -> str:
    return (f"{config['arch']} on {config['dataset']}, widths {config['widths']}, seeds {config['seeds']}, trained to "
            f"loss {fmt(config['target_loss'])} ({config['loss']}, lr {config['lr']} ({config.get('lr_scaling')}), "
            f"momentum {config['momentum']}); dots: cells; squares: geometric mean of the seeds; line: the fit")


def plot_width_figures(summary: dict, out_dir: Path, plt, style) -> list[Path]:
    """sweep_<quantity>.png/.pdf for every quantity with a positive value."""
    written = []
    for q, info in summary["quantities"].items():
        values = np.array([c.get(q) if c.get(q) is not None else np.nan for c in summary["cells"]], float)
        if not (np.isfinite(values) & (values > 0)).any():
            continue
        with plt.rc_context(style):
            fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
            for k, (name, group) in enumerate(info["groups"].items()):
                cells = [c for c in summary["cells"] if c["depth"] == group["depth"] and c.get("n") == group["n"]]
                draw_width_scaling(ax, cells, q, group, color=COLORS[k % len(COLORS)], label=name)
            ax.set_xscale("log", base=2); ax.set_yscale("log")
            ax.set_xlabel("width multiplier"); ax.set_ylabel(info["label"])
            ax.set_title(wrap_text(f"{info['label']}: predicted {info['predicted']} — {info['judgement']}", 6.4, 9))
            ax.legend(fontsize=6)
            fig.suptitle(wrap_text(_caption(summary["config"]), 6.4, 7), fontsize=7)
            written += save_figure(fig, out_dir, f"sweep_{q}")
    return written


def plot_paths(summary: dict, out_dir: Path, plt, style) -> list[Path]:
    """sweep_paths: c_t, a/√F, flip fraction and spectral movement along training (against steps), one
    colour per width, every cell of the first group."""
    cells = summary["cells"]
    if not cells:
        return []
    first = (cells[0]["depth"], cells[0].get("n"))
    cells = [c for c in cells if (c["depth"], c.get("n")) == first]
    widths = sorted({c["width"] for c in cells})
    with plt.rc_context(style):
        fig, axes = plt.subplots(2, 2, figsize=(8, 6), layout="constrained")
        for ax, (key, label) in zip(axes.flat, PATH_PANELS.items()):
            drawn = 0
            for c in cells:
                path = c.get("path") or {}
                if key not in path:
                    continue
                step, v = np.asarray(path["step"], float), np.asarray(path[key], float)
                ok = np.isfinite(step) & (step > 0) & np.isfinite(v) & (v > 0)
                drawn += int(ok.sum())
                color = COLORS[widths.index(c["width"]) % len(COLORS)]
                ax.plot(step[ok], v[ok], "-o", ms=2, lw=0.8, color=color,
                        label=f"width {c['width']:g}" if c["seed"] == cells[0]["seed"] else None)
            ax.set_title(label, fontsize=8)
            if drawn:
                ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("step")
            else:
                ax.set_axis_off()
                ax.text(0.5, 0.5, "not measured (or 0 everywhere)", ha="center", va="center", fontsize=8)
        if axes.flat[0].get_legend_handles_labels()[0]:
            axes.flat[0].legend(fontsize=6)
        fig.suptitle(wrap_text(f"along training (depth {first[0]}): " + _caption(summary["config"]), 8, 7), fontsize=7)
        return save_figure(fig, out_dir, "sweep_paths")


def plot_axes(summary: dict, out_dir: Path, plt, style) -> list[Path]:
    """sweep_depth (q against L: the stored power fit, solid, and exponential fit, dotted) and sweep_sizes
    (q against n with its stored slope), one panel per quantity, when the sweep has those axes."""
    written = []
    for name, entries, quantities in (("depth", summary.get("depths") or {}, ("grad_norm_init", "steps")),
                                      ("sizes", summary.get("sizes") or {}, ("c_lemma", "steps"))):
        if not entries:
            continue
        with plt.rc_context(style):
            fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
            for ax, q in zip(axes, quantities):
                for k, (group, e) in enumerate(entries.items()):
                    color = COLORS[k % len(COLORS)]
                    fits = [(e[q]["power"], "-"), (e[q]["rate"], ":")] if name == "depth" else [(e[q]["slope"], "-")]
                    for slope, ls in fits:
                        x, centers, line = slope_line(slope)
                        x = np.log(x) if ls == ":" else x  # the rate was fitted against e^L
                        ax.plot(x, centers, "o", color=color, ms=4)
                        ax.plot(x, line, ls, color=color, lw=1, label=f"{group}: {slope['describe']}")
                if not any(np.isfinite(line.get_ydata()).any() for line in ax.get_lines()):
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, "no slope", ha="center", va="center", fontsize=8)
                    continue
                ax.set_xscale("log"); ax.set_yscale("log")
                ax.set_xlabel("depth L" if name == "depth" else "sample size n")
                ax.set_title(next(iter(entries.values()))[q]["label"], fontsize=8)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=6)
            fig.suptitle(wrap_text(("power law (solid) and exponential (dotted) in L; " if name == "depth" else "")
                                   + _caption(summary["config"]), 9, 7), fontsize=7)
            written += save_figure(fig, out_dir, f"sweep_{name}")
    return written


def plot_sweep(summary: dict, out_dir: Path) -> list[Path]:
    """Every figure of the sweep: one per quantity against width, the paths along training, the axes."""
    plt, style = pyplot()
    return (plot_width_figures(summary, out_dir, plt, style) + plot_paths(summary, out_dir, plt, style)
            + plot_axes(summary, out_dir, plt, style))


def _intro(summary: dict) -> list[tuple]:
    config = summary["config"]
    lrs = "; ".join(f"width {w}: {', '.join(fmt(x, 4) for x in v)}" for w, v in summary.get("lr", {}).items())
    return [("p", f"Cells: depths {sorted({c['depth'] for c in summary['cells']})} × widths {config['widths']} × "
                  f"seeds {config['seeds']}" + (f" × sample sizes {config['sizes']}" if config.get("sizes") else "")
                  + f"; each trained until its epoch training loss ≤ {fmt(config['target_loss'])} (at most "
                  f"{config['max_epochs']} epochs, {config['checkpoints']} log-spaced checkpoints), then analyzed."),
            ("p", f"Learning rate: {config.get('lr_scaling', 'constant')} ("
                  + ("η = lr·(smallest width)/width, scaling.theorem_lr" if config.get("lr_scaling") == "theorem"
                     else "the same η at every width") + f"); per width: {lrs or '—'}."),
            ("p", "Each slope is the least-squares slope of log q on log width over every (width, seed) cell, "
                  "with its 95 % interval (seed bootstrap ∪ t interval; scaling.fit_slope). Judgement "
                  "(scaling.judge): agrees when the whole interval lies in the band the prediction allows, "
                  "disagrees when it lies wholly outside, inconclusive when it straddles an edge, uninformative "
                  "when there is no slope (0 or undefined everywhere, fewer than 3 widths with a value). Across "
                  "groups: disagrees if any group disagrees, agrees if every informative group agrees, else "
                  "inconclusive.")]


def _width_tables(summary: dict) -> list[tuple]:
    blocks = [("h", 2, "Predictions against width")]
    rows = []
    for q, info in summary["quantities"].items():
        per = "; ".join(f"{name}: {g['slope']['describe']} → {g['judgement']} (sign: {g['sign_judgement']})"
                        for name, g in info["groups"].items())
        rows.append([info["label"], info["predicted"], per or "—", info["judgement"]])
    blocks.append(("table", ["quantity", "prediction", "slope d log q / d log width [95 %] → judgement",
                             "verdict"], rows))
    blocks.append(("h", 3, "Derivations"))
    seen = {}
    for info in summary["quantities"].values():
        seen.setdefault(info["prediction_of"], info["derivation"])
    blocks.append(("table", ["prediction for", "derivation (Allen-Zhu, Li & Song 2019)"],
                   [[k, v] for k, v in seen.items()]))
    levels = summary.get("common_level") or {}
    if levels:
        blocks.append(("h", 3, "Common loss level"))
        blocks.append(("p", "The *_at_F quantities are read where each cell's training first crosses "
                            "F* = √(F_lo·F_hi): F_hi the smallest initial F of the group, F_lo the largest final F "
                            "(interpolated in log F along the dense track and the checkpoints)."))
        blocks.append(("table", ["group", "F*", "F_lo", "F_hi"],
                       [[k, fmt(v["F_star"], 4), fmt(v["F_lo"], 4), fmt(v["F_hi"], 4)] for k, v in levels.items()]))
    return blocks


def _compare_table(summary: dict) -> list[tuple]:
    """Which verdicts change against another sweep (``--compare``), e.g. at the other learning-rate scaling."""
    compare = summary.get("compare")
    if not compare:
        return []
    this = summary["config"].get("lr_scaling", "constant")
    rows = [[r["label"], r["this"], r["other"], "changed" if r["changed"] else "same"]
            for r in compare["quantities"].values()]
    return [("h", 3, f"Against {compare['other']}"),
            ("table", ["quantity", f"this sweep ({this} lr)", f"{compare['other']} ({compare['lr_scaling']} lr)",
                       "verdict"], rows)]


def _axis_tables(summary: dict) -> list[tuple]:
    blocks = []
    if summary.get("sizes"):
        blocks.append(("h", 2, "Sample size"))
        rows = []
        for name, e in summary["sizes"].items():
            for q in ("c_lemma", "steps"):
                rows.append([name, e[q]["label"], e["sizes"], e[q]["predicted"], e[q]["slope"]["describe"],
                             e[q]["judgement"]])
        blocks.append(("table", ["group", "quantity", "n", "prediction", "slope d log q / d log n [95 %]",
                                 "judgement"], rows))
        first = next(iter(summary["sizes"].values()))
        blocks.append(("p", "Derivation: " + first["c_lemma"]["derivation"] + ". Steps: " + first["steps"]["derivation"]))
    if summary.get("depths"):
        blocks.append(("h", 2, "Depth"))
        rows = []
        for name, e in summary["depths"].items():
            for q in ("grad_norm_init", "steps"):
                f = e[q]
                rms = ", ".join(f"{k} {fmt(v, 3)}" for k, v in f["rms"].items()) or "—"
                rows.append([name, f["label"], e["depths"], f["power"]["describe"], f["rate"]["describe"],
                             f"{f['better']} (rms {rms})", f["judgement"]])
        blocks.append(("table", ["group", "quantity", "depths L", "power p (q ∝ L^p) [95 %]",
                                 "rate r (q ∝ e^{rL}) [95 %]", "better fit", "polynomial predicted"], rows))
        first = next(iter(summary["depths"].values()))
        blocks.append(("p", "Derivation: " + first["grad_norm_init"]["derivation"] + "."))
    return blocks


CELL_COLUMNS = ["folder", "width", "seed", "n", "lr", "parameters", "reached_target", "steps", "final_train_loss",
                "c", "a_over_sqrt_F", "lambda_ratio", "travelled", "ntk_drift", "interpolation_bump",
                "activation_flips", "spectral_movement", "ntk_min_eigenvalue", "c_at_F", "steps_to_F",
                "star_holds_fraction"]


def write_sweep_report(out: Path, summary: dict) -> dict:
    """report.md and a self-contained report.html in ``out``, with the figures in ``out``/figures."""
    out = Path(out)
    figures = plot_sweep(summary, out / "figures")
    config = summary["config"]
    blocks = report_header(f"Over-parameterization sweep: {config['arch']} on {config['dataset']}")
    blocks += _intro(summary) + _width_tables(summary) + _compare_table(summary) + _axis_tables(summary)
    blocks.append(("h", 2, "Cells"))
    blocks.append(("table", CELL_COLUMNS, [[_cell(c.get(k)) for k in CELL_COLUMNS] for c in summary["cells"]]))
    lemma = [c for c in summary["cells"] if c.get("lemma")]
    if lemma:
        blocks.append(("h", 2, "The gradient lemma's bound"))
        blocks.append(("p", "c over the hidden layers with the paper's sum loss, scaled by d/m (d outputs, m the "
                            "width), against δ/n² (the bound's shape; Ω hides a constant): ratio = how much room "
                            "the measurement leaves."))
        blocks.append(("table", ["folder", "n", "δ", "c (mean loss)", "c (sum loss)", "c·d/m", "δ/n²", "ratio"],
                       [[c["folder"], c["lemma"]["n"], fmt(c["lemma"]["delta"]), fmt(c["lemma"]["c_mean"], 4),
                         fmt(c["lemma"]["c_sum"], 4), _cell(c["lemma"]["c_scaled"]), fmt(c["lemma"]["lemma"], 4),
                         _cell(c["lemma"]["ratio"])] for c in lemma]))
    provenance = next((c["provenance"] for c in summary["cells"] if c.get("provenance")), None)
    if provenance:
        blocks.append(("p", "Data provenance: " + ", ".join(f"{k} = {v}" for k, v in provenance.items())))
    if figures:
        blocks.append(("h", 2, "Figures"))
        for p in figures:
            if p.suffix == ".png":
                blocks.append(("img", p, p.stem.replace("_", " "), str(p.relative_to(out))))
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(render_markdown(blocks), md)
    atomic_write_text(render_html(blocks, "landscape sweep report"), page)
    return {"markdown": md, "html": page, "figures": figures}


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float):
        return fmt(value, 4)
    return str(value)
