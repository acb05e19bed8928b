"""The sweep's report, from the summary ``sweep.summarize`` made (sweep_fits.fit_summary); its figures
are sweep_figures.py. Nothing is fitted here: the tables print the stored slopes and judgements.

The width tables and figures need ``scaling.MIN_WIDTHS`` widths; a sweep along n or depth at fewer
says so once instead of a table of 'uninformative' rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .report import report_header, render_html, render_markdown
from .results import atomic_write_text
from .scaling import MIN_WIDTHS
from .sweep_fits import RMS_TOLERANCE, group_label
from .sweep_figures import dataset_name, family, plot_sweep, sweep_values
from .text import fmt

def width_note(summary: dict) -> str:
    """'' when the sweep has MIN_WIDTHS widths or more, else the one line said instead of the width tables."""
    widths = sweep_values(summary, "width")
    if len(widths) >= MIN_WIDTHS:
        return ""
    axes = [name for key, name in (("depth", "depth"), ("n", "n")) if len(sweep_values(summary, key)) >= MIN_WIDTHS]
    count = "one width" if len(widths) <= 1 else f"{len(widths)} widths"
    return (f"{count}: no width slopes (a slope needs {MIN_WIDTHS} widths"
            + (f"; this sweep's axis is {' and '.join(axes)}" if axes else "") + ").")


def _intro(summary: dict) -> list[tuple]:
    config = summary["config"]
    lrs = "; ".join(f"width {w}: {', '.join(fmt(x, 4) for x in v)}" for w, v in summary.get("lr", {}).items())
    blocks = [("p", f"Cells: depths {sorted({c['depth'] for c in summary['cells']})} × widths {config['widths']} × "
                    f"seeds {config['seeds']}" + (f" × sample sizes {config['sizes']}" if config.get("sizes") else "")
                    + f"; each trained until its epoch training loss ≤ {fmt(config['target_loss'])} (at most "
                    f"{config['max_epochs']} epochs, {config['checkpoints']} log-spaced checkpoints), then analyzed."),
              ("p", f"Learning rate: {config.get('lr_scaling', 'constant')} ("
                    + ("η = lr·(smallest width)/width, scaling.theorem_lr" if config.get("lr_scaling") == "theorem"
                       else "the same η at every width") + f"); per width: {lrs or '—'}.")]
    note = width_note(summary)
    if note:
        return blocks + [("p", note)]
    return blocks + [
        ("p", "Each slope is the least-squares slope of log q on log width over every (width, seed) cell, "
              "with its 95 % interval (seed bootstrap ∪ t interval; scaling.fit_slope). Judgement "
              "(scaling.judge): agrees when the whole interval lies in the band the prediction allows, "
              "disagrees when it lies wholly outside, inconclusive when it straddles an edge, uninformative "
              "when there is no slope (0 or undefined everywhere, fewer than 3 widths with a value). Across "
              "groups: disagrees if any group disagrees, agrees if every informative group agrees, else "
              "inconclusive.")]


def _width_tables(summary: dict) -> list[tuple]:
    if width_note(summary):
        return []
    blocks = [("h", 2, "Predictions against width")]
    rows = []
    for q, info in summary["quantities"].items():
        several = len(info["groups"]) > 1  # one group: no name ('depth 20' of a resnet20 sweep says nothing)
        per = "; ".join(f"{name + ': ' if several else ''}{g['slope']['describe']} → {g['judgement']} "
                        f"(sign: {g['sign_judgement']})" for name, g in info["groups"].items())
        rows.append([info["label"], info["predicted"], per or "—", info["judgement"]])
    blocks.append(("table", ["quantity", "prediction", "slope d log q / d log width [95 %] → judgement",
                             "verdict"], rows))
    blocks.append(("h", 3, "Derivations"))
    seen = {}
    for info in summary["quantities"].values():
        seen.setdefault(info["prediction_of"], info["derivation"])
    blocks.append(("table", ["prediction for", "derivation (Allen-Zhu, Li & Song 2019)"],
                   [[k, v] for k, v in seen.items()]))
    return blocks


def _common_level(summary: dict) -> list[tuple]:
    """F* per group, or why a group has none (then its *_at_F quantities are not measured)."""
    levels = summary.get("common_level") or {}
    if not levels:
        return []
    rows = []
    for k, v in levels.items():
        if math.isfinite(v["F_star"]):
            rows.append([k, fmt(v["F_star"], 4), fmt(v["F_lo"], 4), fmt(v["F_hi"], 4)])
        else:
            reason = v.get("reason") or "no common loss level"
            rows.append([k, f"{reason}: the *_at_F quantities are not measured"]
                        + [fmt(v[f], 4) if math.isfinite(v[f]) else "—" for f in ("F_lo", "F_hi")])
    return [("h", 2, "Common loss level"),
            ("p", "The *_at_F quantities are read where each cell's training first crosses "
                  "F* = √(F_lo·F_hi): F_hi the smallest initial F of the group, F_lo the largest final F "
                  "(interpolated in log F along the dense track, or the checkpoints when training kept none)."),
            ("table", ["group", "F*", "F_lo", "F_hi"], rows)]


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
        blocks.append(("p", "Derivation: " + first["c_lemma"]["derivation"] + ". Steps: "
                            + first["steps"]["derivation"]))
    if summary.get("depths"):
        blocks.append(("h", 2, "Depth"))
        rows = []
        for name, e in summary["depths"].items():
            for q in ("grad_norm_init", "steps"):
                f = e[q]
                rms = ", ".join(f"{k} {fmt(f['rms'][k], 3)}" for k in ("polynomial", "exponential") if k in f["rms"]) or "—"
                tolerance = round(100 * f.get("tolerance", RMS_TOLERANCE))
                within = f": within {tolerance} %" if f["better"] == "indistinguishable" else ""
                rows.append([name, f["label"], e["depths"], f["power"]["describe"], f["rate"]["describe"],
                             f"{f['better']} (rms {rms}{within})", f["judgement"]])
        blocks.append(("table", ["group", "quantity", "depths L", "power p (q ∝ L^p) [95 %]",
                                 "rate r (q ∝ e^{rL}) [95 %]", "better fit", "polynomial predicted"], rows))
        first = next(iter(summary["depths"].values()))
        blocks.append(("p", "Derivation: " + first["grad_norm_init"]["derivation"] + ". Better fit: the one "
                            "with the smaller rms residual of log q (theory.depth_scaling_fit) when the two rms "
                            f"differ by more than {round(100 * RMS_TOLERANCE)} % of the larger; otherwise "
                            "indistinguishable, which leaves the prediction inconclusive."))
    return blocks


CELL_COLUMNS = ["folder", "width", "seed", "n", "lr", "parameters", "reached_target", "steps", "final_train_loss",
                "c", "a_over_sqrt_F", "lambda_ratio", "travelled", "ntk_drift", "interpolation_bump",
                "activation_flips", "spectral_movement", "ntk_min_eigenvalue", "c_at_F", "steps_to_F",
                "star_holds_fraction"]


AT_F_COLUMNS = ("c_at_F", "steps_to_F")


def _cells_table(summary: dict) -> list[tuple]:
    """Every cell's numbers; its *_at_F values 'not measured' in a group without a common loss level."""
    levels = summary.get("common_level") or {}
    unmeasured = {k for k, v in levels.items() if not math.isfinite(v.get("F_star", math.nan))}
    multiple_n = len({c.get("n") for c in summary["cells"]}) > 1
    rows = []
    for c in summary["cells"]:
        group = group_label(c["depth"], c.get("n"), multiple_n)
        rows.append([("not measured" if k in AT_F_COLUMNS and group in unmeasured else _cell(c.get(k)))
                     for k in CELL_COLUMNS])
    return [("h", 2, "Cells"), ("table", CELL_COLUMNS, rows)]


def _lemma_table(summary: dict) -> list[tuple]:
    lemma = [c for c in summary["cells"] if c.get("lemma")]
    if not lemma:
        return []
    return [("h", 2, "The gradient lemma's bound"),
            ("p", "c over the hidden layers with the paper's sum loss, scaled by d/m (d outputs, m the width), "
                  "against δ/n² (the bound's shape; Ω hides a constant): ratio = how much room the measurement "
                  "leaves."),
            ("table", ["folder", "n", "δ", "c (mean loss)", "c (sum loss)", "c·d/m", "δ/n²", "ratio"],
             [[c["folder"], c["lemma"]["n"], fmt(c["lemma"]["delta"]), fmt(c["lemma"]["c_mean"], 4),
               fmt(c["lemma"]["c_sum"], 4), _cell(c["lemma"]["c_scaled"]), fmt(c["lemma"]["lemma"], 4),
               _cell(c["lemma"]["ratio"])] for c in lemma])]


def _figure_blocks(figures: list, out: Path) -> list[tuple]:
    """Each figure's PNG with its caption (plots.Drawn.caption: what it shows and was computed on)."""
    blocks = [("h", 2, "Figures")] if figures else []
    for drawn in figures:
        for p in drawn:
            if p.suffix == ".png":
                blocks.append(("img", p, getattr(drawn, "caption", "") or p.stem, str(p.relative_to(out))))
    return blocks


def sweep_markdown_summary(summary: dict) -> str:
    """The README-ready tables of a sweep.json: each width prediction with its slope, interval and judgement
    (or the one line said instead when the sweep has too few widths), then the sample-size or depth tables."""
    blocks = []
    note = width_note(summary)
    if note:
        blocks.append(("p", note))
    else:
        rows = []
        for info in summary["quantities"].values():
            several = len(info["groups"]) > 1
            for name, g in info["groups"].items():
                rows.append([info["label"] + (f" ({name})" if several else ""), info["predicted"],
                             g["slope"]["describe"], g["judgement"]])
        blocks.append(("table", ["quantity", "prediction", "slope d log q / d log width [95 %]", "judgement"], rows))
    blocks += [b for b in _axis_tables(summary) if b[0] == "table"]
    return render_markdown(blocks).rstrip("\n") + "\n"


def write_sweep_report(out: Path, summary: dict) -> dict:
    """report.md and a self-contained report.html in ``out``, with the figures in ``out``/figures."""
    out = Path(out)
    drawn = plot_sweep(summary, out / "figures")
    config, cells = summary["config"], summary["cells"]
    blocks = report_header(f"Over-parameterization sweep: {family(config, cells)} on {dataset_name(config, cells)}")
    blocks += (_intro(summary) + _width_tables(summary) + _compare_table(summary) + _common_level(summary)
               + _axis_tables(summary) + _cells_table(summary) + _lemma_table(summary))
    provenance = next((c["provenance"] for c in cells if c.get("provenance")), None)
    if provenance:
        blocks.append(("p", f"Data provenance ({cells[0]['folder']}): "
                            + ", ".join(f"{k} = {v}" for k, v in provenance.items())))
    blocks += _figure_blocks(drawn, out)
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(render_markdown(blocks), md)
    atomic_write_text(render_html(blocks, "landscape sweep report"), page)
    return {"markdown": md, "html": page, "figures": [p for d in drawn for p in d]}


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
