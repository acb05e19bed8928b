"""The sweep's figures (one per quantity against width, log-log, with fitted slopes) and its report.

Reads only the summary ``sweep.summarize`` made from the cells' result files; nothing is computed
here but the lines of the fits it already holds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .plots import COLORS, pyplot, save_figure, wrap_text
from .report import report_header, render_html, render_markdown
from .results import atomic_write_text
from .text import fmt


def draw_width_scaling(ax, widths: np.ndarray, values: np.ndarray, seeds: np.ndarray, means: dict, *,
                       color="k", label: str = "") -> float:
    """One depth's values against width (log-log): each seed's points, their mean joined, and the
    least-squares line through the means (``means``: ``sweep.fit_means`` of the values, from the
    summary). Returns the slope of that line (NaN below two points)."""
    for k, seed in enumerate(sorted(set(seeds.tolist()))):
        sel = seeds == seed
        ax.plot(widths[sel], values[sel], "o" if k == 0 else "s", color=color, ms=4, alpha=0.55, ls="none")
    uniq, mean = np.array(means["widths"], float), np.array(means["means"], float)
    slope = means["slope"]
    ok = np.isfinite(mean) & (mean > 0)
    ax.plot(uniq[ok], mean[ok], "-", color=color, lw=1.2,
            label=f"{label}: slope of the seeds' mean {fmt(slope, 3)}" if math.isfinite(slope)
            else f"{label}: slope undefined")
    if math.isfinite(slope):
        ax.plot(uniq[ok], np.exp(means["intercept"]) * uniq[ok] ** slope, ":", color=color, lw=1.0)
    return slope


def plot_sweep(summary: dict, out_dir: Path) -> list[Path]:
    """sweep_<quantity>.png/.pdf for every quantity with a positive value, and sweep_depth for
    the gradient norm at initialization against depth when three or more depths were run."""
    plt, style = pyplot()
    cells = summary["cells"]
    config = summary["config"]
    depths = sorted({c["depth"] for c in cells})
    written = []
    caption = (f"{config['arch']} on {config['dataset']}, widths {config['widths']}, seeds {config['seeds']}, "
               f"trained to loss {fmt(config['target_loss'])} ({config['loss']}, lr {config['lr']}, "
               f"momentum {config['momentum']}, batch {config['batch_size']}); points: seeds; line: their mean")
    for q, info in summary["quantities"].items():
        values = np.array([c[q] for c in cells], float)
        if not (np.isfinite(values) & (values > 0)).any():
            continue
        with plt.rc_context(style):
            fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
            for k, depth in enumerate(depths):
                sel = [c for c in cells if c["depth"] == depth]
                draw_width_scaling(ax, np.array([c["width"] for c in sel], float), np.array([c[q] for c in sel], float),
                                   np.array([c["seed"] for c in sel]), info["per_depth"][str(depth)]["means"],
                                   color=COLORS[k % len(COLORS)],
                                   label=f"depth {depth}")
            ax.set_xscale("log", base=2); ax.set_yscale("log")
            ax.set_xlabel("width multiplier")
            ax.set_ylabel(info["label"])
            ax.set_title(f"{info['label']}: theory says it {info['predicted']} with width — {info['judgement']}")
            ax.legend(fontsize=7)
            fig.suptitle(wrap_text(caption, 6.4, 7), fontsize=7)
            written += save_figure(fig, out_dir, f"sweep_{q}")
    fits = {w: f for w, f in summary.get("depth_fits", {}).items() if "error" not in f}
    if fits:
        with plt.rc_context(style):
            fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
            for k, (width, f) in enumerate(fits.items()):
                color = COLORS[k % len(COLORS)]
                L, g = np.array(f["depths"], float), np.array(f["grad_norm_init"], float)
                ax.plot(L, g, "o", color=color, label=f"width {width}: better fit {f['better']} "
                                                     f"(power {fmt(f['power'], 3)}, rate {fmt(f['rate'], 3)})")
                grid = np.linspace(L.min(), L.max(), 50)
                a_p = np.mean(np.log(g) - f["power"] * np.log(L))
                a_e = np.mean(np.log(g) - f["rate"] * L)
                ax.plot(grid, np.exp(a_p) * grid ** f["power"], "-", color=color, lw=1)
                ax.plot(grid, np.exp(a_e + f["rate"] * grid), ":", color=color, lw=1)
            ax.set_xscale("log"); ax.set_yscale("log")
            ax.set_xlabel("depth"); ax.set_ylabel("‖∇F(θ_0)‖")
            ax.set_title("gradient at initialization against depth: power (solid) vs exponential (dotted)")
            ax.legend(fontsize=7)
            fig.suptitle(wrap_text(caption, 6.4, 7), fontsize=7)
            written += save_figure(fig, out_dir, "sweep_depth")
    return written


def write_sweep_report(out: Path, summary: dict) -> dict:
    """report.md and a self-contained report.html in ``out``, with the figures in ``out``/figures."""
    out = Path(out)
    figures = plot_sweep(summary, out / "figures")
    config = summary["config"]
    blocks = report_header(f"Over-parameterization sweep: {config['arch']} on {config['dataset']}")
    blocks.append(("p", f"Cells: depths {sorted({c['depth'] for c in summary['cells']})} × widths {config['widths']} "
                        f"× seeds {config['seeds']}; each trained until its epoch training loss ≤ "
                        f"{fmt(config['target_loss'])} (at most {config['max_epochs']} epochs), then analyzed. "
                        f"A slope agrees when every seed's slope has the predicted sign, disagrees when every "
                        f"seed's has the other sign ('does not increase': slope ≤ {summary['flat_slope']}), and is "
                        f"inconclusive otherwise."))
    blocks.append(("h", 2, "Predicted trends"))
    rows = []
    for q, info in summary["quantities"].items():
        per = info["per_depth"]
        slopes = "; ".join(f"depth {d}: " + ("0 at every width and seed" if p.get("all_zero") else
                                             f"{fmt(p['mean_slope'], 3)} (seeds {fmt(p['min_slope'], 3)} to "
                                             f"{fmt(p['max_slope'], 3)})") + f", {p['judgement']}"
                           for d, p in per.items())
        rows.append([info["label"], info["predicted"], slopes or "—", info["judgement"]])
    blocks.append(("table", ["quantity", "theory: with width it", "measured slope d log q / d log width", "verdict"],
                   rows))
    fits = summary.get("depth_fits", {})
    if fits:
        blocks.append(("h", 2, "Depth"))
        blocks.append(("table", ["width", "depths", "‖∇F(θ_0)‖", "better fit", "power p (g ∝ L^p)",
                                 "rate r (g ∝ e^{rL})"],
                       [[w, f.get("depths", "—"), ", ".join(fmt(x, 4) for x in f.get("grad_norm_init", [])),
                         f.get("better", f.get("error")), fmt(f.get("power", float("nan")), 3),
                         fmt(f.get("rate", float("nan")), 3)] for w, f in fits.items()]))
    blocks.append(("h", 2, "Cells"))
    cols = ["folder", "width", "seed", "parameters", "reached_target", "steps", "final_train_loss", "c",
            "a_over_sqrt_F", "lambda_ratio", "travelled", "ntk_drift", "interpolation_bump", "star_holds_fraction"]
    blocks.append(("table", cols, [[_cell(c.get(k)) for k in cols] for c in summary["cells"]]))
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
