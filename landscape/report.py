"""The verdicts of one run, or of the cells of a reproduction, as Markdown, HTML and JSON.

``write_report`` renders ``verdicts.run_verdicts`` (claims, numbers, thresholds, margins, what
they were computed on) and the run's figures into RUN/report.md, a self-contained
RUN/report.html (figures embedded as base64 PNG) and RUN/report.json (the same data);
``write_combined_report`` does the same for several runs, one section per cell. Nothing is
judged or drawn here: verdicts come from ``verdicts.py``, figures from ``plots.py``.
"""

from __future__ import annotations

import base64
import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import LandscapeError
from .plots import figures_fresh, make_figures, read_manifest
from .readers import as_run, holds_runs
from .results import atomic_write_json, atomic_write_text
from .text import fmt, settings_text
from .verdicts import DOMINANCE_F_FLOOR, FAILS, HOLDS, RunVerdicts, run_verdicts

# ============================================================================ document blocks
_FIGURE_CAPTIONS = {
    "surface_3d": "Figure 1 of the paper: F over the plane spanned by the gradient and the most negative "
                  "curvature direction, one panel per checkpoint (3D).",
    "surface_contour": "The same planes as contours; markers: the checkpoint, the lowest point on each axis "
                       "and on the whole grid.",
    "random_surface_3d": "F over two filter-normalized random directions (Li et al.), 3D.",
    "random_surface_contour": "F over two filter-normalized random directions, contours.",
    "dominance": "‖∇F‖² against F (log-log): the dense track during training, the checkpoints, and the "
                 "envelope ‖∇F‖² = c·F.",
    "second_order": "The grid-free second-order test: the best decrease along −∇F, along the most negative "
                    "curvature direction and in their plane, and what the curvature direction adds (mean, min–max "
                    "over repeats).",
    "smoothness": "Semi-smoothness probes: f(t) − f(0) along each direction, and |r(t)| against |t| with the "
                  "fit a·|t| + b·t² and the noise floor.",
    "interpolation": "Linear interpolation between checkpoints: train/test loss and accuracy against α.",
    "trajectory": "Convexity along the trajectory: ⟨∇F(θ_t), θ_t − θ_T⟩ against F(θ_t) − F(θ_T) toward the final "
                  "point (star-convex on and above y = x), the PL* ratios, the distance travelled and the NTK drift.",
    "spectrum": "The Hessian's eigenvalue density by stochastic Lanczos quadrature (log scale), one panel per "
                "checkpoint, with the extreme eigenvalues of the curvature measurement marked.",
    "training": "Training curves (loss, accuracy, learning rate) and the extreme Hessian eigenvalues at the "
                "checkpoints.",
    "hessian_subsets": "λ_max and λ_min of the Hessian (± residual bound) on growing subsets of the analyzed "
                       "examples at one checkpoint: whether the curvature subset decides the numbers.",
}
_FIGURE_ORDER = list(_FIGURE_CAPTIONS)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return fmt(value, 4)
    if value is None:
        return "—"
    return str(value)


def _run_blocks(data: RunVerdicts, figures: list[Path], level: int, base: Path) -> list[tuple]:
    """The document of one run as blocks: ('h', level, text), ('p', text), ('table', head, rows),
    ('img', path, caption, relpath)."""
    blocks: list[tuple] = [("p", data.title), ("p", f"Result files: `{data.run}`")]
    train, d = data.train, data.data
    facts = [["dataset", d.get("dataset")], ["training examples", d.get("train_examples")],
             ["test examples", d.get("test_examples")]]
    if train:
        facts += [["architecture", train.get("arch")], ["width", train.get("width")],
                  ["epochs", train.get("epochs")], ["lr / milestones", f"{train.get('lr')} / {train.get('milestones')}"],
                  ["batch size", train.get("batch_size")], ["weight decay", train.get("weight_decay")],
                  ["training seed", train.get("seed")], ["label noise", train.get("label_noise")],
                  ["trained parameters", train.get("train_params")], ["training precision", train.get("precision")]]
    facts.append(["analyzed checkpoints", ", ".join(str(e) for e in data.analyzed_epochs) or "none"])
    blocks.append(("h", level + 1, "Run"))
    blocks.append(("table", ["setting", "value"], [[k, _cell(v)] for k, v in facts]))
    blocks.append(("h", level + 1, "Verdicts"))
    blocks.append(("table", ["claim", "verdict", "numbers", "threshold", "computed on"],
                   [[c.title, c.verdict.upper() if c.verdict in (HOLDS, FAILS) else c.verdict,
                     c.summary, c.threshold, settings_text(c.settings) or "—"] for c in data.claims]))
    blocks.append(("p", "Thresholds: " + ", ".join(f"{k} = {fmt(v)}" for k, v in data.thresholds.items())
                   + ". A claim whose result files are absent is 'not measured'; one that misses its threshold "
                     "'fails', with its numbers."))
    blocks.append(("h", level + 1, "Details"))
    for c in data.claims:
        blocks.append(("h", level + 2, f"{c.title}: {c.verdict}"))
        blocks.append(("p", c.summary + (f" — {c.note}" if c.note else "")))
        if c.settings:
            blocks.append(("p", f"Computed on: {settings_text(c.settings)}."))
        if c.rows:
            blocks.append(("table", c.columns, [[_cell(row[k]) for k in c.columns] for row in c.rows]))
        if c.sources:
            shown = [os.path.relpath(s, data.run) for s in c.sources]
            blocks.append(("p", "From: " + ", ".join(f"`{s}`" for s in shown[:12])
                           + (f" and {len(shown) - 12} more" if len(shown) > 12 else "")))
    if figures:
        blocks.append(("h", level + 1, "Figures"))
        pngs = {p.stem: p for p in figures if p.suffix == ".png"}
        for stem in sorted(pngs, key=lambda s: _FIGURE_ORDER.index(s) if s in _FIGURE_ORDER else 99):
            p = pngs[stem]
            rel = os.path.relpath(p, base)
            blocks.append(("img", p, _FIGURE_CAPTIONS.get(stem, stem) + f" (PDF: `{os.path.relpath(p.with_suffix('.pdf'), base)}`)", rel))
    return blocks


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple]) -> str:
    """The blocks as Markdown."""
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2] + "\n")
        elif b[0] == "p":
            out.append(b[1] + "\n")
        elif b[0] == "table":
            head, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
            out.append("|" + "|".join("---" for _ in head) + "|")
            out += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in rows]
            out.append("")
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[3]})\n\n*{b[2]}*\n")
    return "\n".join(out)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.holds{background:#e3f4e1;font-weight:600}td.fails{background:#fbe3e0;font-weight:600}
td.not-measured{background:#eee;color:#666}td.measured{background:#e6effa}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.88em;color:#444}
code{background:#f5f5f5;padding:0 .2em}
"""


def _inline(text: str) -> str:
    """HTML-escape, turning `code` spans into <code>."""
    parts = str(text).split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def render_html(blocks: list[tuple], title: str) -> str:
    """The blocks as one self-contained HTML page (figures embedded)."""
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{min(b[1], 6)}>{_inline(b[2])}</h{min(b[1], 6)}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b[1]) + "</tr></thead><tbody>")
            for row in b[2]:
                cells = []
                for v in row:
                    low = str(v).lower().split(":", 1)[0]
                    cls = {"holds": "holds", "fails": "fails", "not measured": "not-measured",
                           "measured": "measured"}.get(low)
                    cells.append(f"<td class=\"{cls}\">{_inline(v)}</td>" if cls else f"<td>{_inline(v)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt=\"{html.escape(Path(b[1]).stem)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{_inline(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def report_header(title: str) -> list[tuple]:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [("h", 1, title),
            ("p", f"Written by landscape {__version__} on {stamp} from the stored result files only "
                  f"(nothing recomputed). Paper: Allen-Zhu, Li, Song, \"A Convergence Theory for Deep Learning "
                  f"via Over-Parameterization\", ICML 2019.")]


# ============================================================================ writers
def _figures_for(run_dir, fig_dir: Path, figures, epochs, floor: float) -> list[Path]:
    """The run's figure files for the report: drawn into ``fig_dir`` (figures=True), those
    already there (False), or drawn only when the figures there were not made from the
    current result files ('auto', judged by make_figures' manifest)."""
    run = as_run(run_dir)
    manifest = read_manifest(fig_dir)
    if figures == "auto":
        figures = not figures_fresh(run, fig_dir, epochs, floor)
    if figures:
        return list(make_figures(run.path, fig_dir, epochs, floor=floor))
    if manifest is not None:
        return [fig_dir / n for names in manifest["written"].values() for n in names if (fig_dir / n).is_file()]
    return sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []


@holds_runs("landscape report")
def write_report(run_dirs, out_dir=None, *, figures="auto", epochs=None,
                 floor: float = DOMINANCE_F_FLOOR) -> dict:
    """Write report.md, report.html (self-contained: figures embedded) and report.json.

    ``run_dirs``: one run directory (report in RUN/ unless ``out_dir``; figures in RUN/figures/,
    or ``out_dir``/figures/ when ``out_dir`` is given) or several (a combined report, see
    ``write_combined_report``). ``figures``: True redraws them, False embeds those already
    there, 'auto' (default) redraws only when they were not drawn from the current result files.
    ``epochs`` selects the per-checkpoint figures when they are drawn.
    Returns {"markdown", "html", "json": paths, "cells": [(name, RunVerdicts), ...]}.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = [Path(r) for r in run_dirs]
    if not run_dirs:
        raise LandscapeError("no run directory given")
    if len(run_dirs) > 1:
        return write_combined_report(out_dir, run_dirs, figures=figures, epochs=epochs, floor=floor)
    run = as_run(run_dirs[0])
    data = run_verdicts(run.path, floor=floor)
    out = Path(out_dir) if out_dir else run.path
    fig_dir = run.figures if out_dir is None else out / "figures"
    figs = _figures_for(run.path, fig_dir, figures, epochs, floor)
    blocks = report_header(f"Loss-landscape report: {data.name}") + _run_blocks(data, figs, 1, out)
    return _write_all(out, blocks, f"landscape report: {data.name}", data.to_json(), [(data.name, data)])


@holds_runs("landscape report", arg=1)
def write_combined_report(out_dir, run_dirs, *, figures="auto", epochs=None,
                          floor: float = DOMINANCE_F_FLOOR, skipped: dict[str, str] | None = None) -> dict:
    """One report over several runs (the reproduction's cells): a summary table of verdicts,
    then a section per cell. Written to ``out_dir`` (default: the runs' common parent); each
    cell's figures stay in its own RUN/figures/ (``figures`` as in ``write_report``). ``skipped``:
    cells not run, with the reason (their data is absent), listed under the summary."""
    run_dirs = [Path(r) for r in run_dirs]
    if not run_dirs:
        raise LandscapeError("no run directory given")
    if out_dir is None:
        out_dir = Path(os.path.commonpath([str(r.resolve()) for r in run_dirs]))
    out = Path(out_dir)
    cells = []
    names: set[str] = set()
    for r in run_dirs:
        data = run_verdicts(r, floor=floor)
        name = data.name
        k = 2
        while name in names:
            name, k = f"{data.name}_{k}", k + 1
        names.add(name)
        cells.append((name, r, data))
    blocks = report_header("Loss-landscape report: " + ", ".join(n for n, _, _ in cells))
    blocks.append(("h", 2, "Summary"))
    titles = [c.title for c in cells[0][2].claims]
    blocks.append(("table", ["cell"] + titles,
                   [[name] + [f"{c.verdict}: {c.summary}" for c in data.claims] for name, _, data in cells]))
    for name, reason in (skipped or {}).items():
        blocks.append(("p", f"Skipped {name}: {reason}."))
    for name, r, data in cells:
        figs = _figures_for(r, as_run(r).figures, figures, epochs, floor)
        blocks.append(("h", 2, f"Cell {name}"))
        blocks += _run_blocks(data, figs, 2, out)
    combined = {"cells": [{"cell": name, **data.to_json()} for name, _, data in cells], "skipped": skipped or {}}
    return _write_all(out, blocks, "landscape combined report", combined, [(name, data) for name, _, data in cells])


def _write_all(out: Path, blocks: list[tuple], title: str, data: dict, cells: list) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    md, page, js = out / "report.md", out / "report.html", out / "report.json"
    atomic_write_text(render_markdown(blocks), md)
    atomic_write_text(render_html(blocks, title), page)
    atomic_write_json(data, js)
    return {"markdown": md, "html": page, "json": js, "cells": cells}
