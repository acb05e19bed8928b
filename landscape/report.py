"""The verdicts of one run, or of the cells of a reproduction, as Markdown, HTML and JSON.

``write_report`` renders ``verdicts.run_verdicts`` (claims, numbers, thresholds, margins, what
they were computed on) and the run's figures into RUN/report.md, RUN/report.html (figures
embedded, downscaled, under EMBED_BUDGET) and RUN/report.json (the same data);
``write_combined_report`` does the same for several runs, one section per cell, its figures
linked by relative path. Every report opens with the compact verdict table (``summary_tables``:
verdict, statistic, margin, spread, n per claim), which ``markdown_summary`` also renders from a
report.json for the README; a cell trained with several seeds adds its "Across training seeds" table
(``across_seeds``: each seed's verdict and statistic, the common verdict or inconclusive). Nothing is judged or drawn here: verdicts come from ``verdicts.py``,
figures from ``plots.py``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
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
from .verdicts import DOMINANCE_F_FLOOR, FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, RunVerdicts, run_verdicts

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
                    "curvature direction and in their plane, and the extra decrease in the plane beyond −∇F (mean, min–max "
                    "over repeats).",
    "smoothness": "Semi-smoothness probes: the residual |r(t)| against the step |t| along each direction, with the "
                  "fit a·|t| + b·t² and the noise floor; steps whose |r| passes F at the top edge.",
    "interpolation": "Linear interpolation between checkpoints: train/test loss against α, one panel per pair.",
    "interpolation_accuracy": "The same interpolations: train/test accuracy against α.",
    "trajectory": "Convexity along the trajectory: the star-convexity ratio ⟨∇F(θ_t), θ_t − θ_T⟩ / (F(θ_t) − F(θ_T)) "
                  "toward the final point at every checkpoint (star-convex at 1 and above), the PL* ratios, the distance "
                  "travelled and the NTK drift.",
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


def _run_blocks(data: RunVerdicts, figures: list[Path], level: int, base: Path,
                captions: dict | None = None) -> list[tuple]:
    """The document of one run as blocks: ('h', level, text), ('p', text), ('table', head, rows),
    ('img', path, caption, relpath); ``captions``: what each figure was computed on (figures.json)."""
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
            caption = " ".join(t for t in (_FIGURE_CAPTIONS.get(stem, stem), (captions or {}).get(stem, "")) if t)
            blocks.append(("img", p, caption + f" (PDF: `{os.path.relpath(p.with_suffix('.pdf'), base)}`)", rel))
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


# ============================================================================ the verdict summary
SUMMARY_COLUMNS = ["claim", "verdict", "statistic", "margin", "spread (mean ± std [min, max])", "n"]
_SHORT_TITLES = {"gradient_dominance": "gradient dominance", "semi_smoothness": "semi-smoothness",
                 "second_order": "second order gives little help", "interpolation": "monotone init → final",
                 "star_convexity": "star-convexity", "spectrum": "Hessian (reported)", "accuracy": "accuracy (reported)"}
VERDICT_CLASSES = {"holds": "holds", "fails": "fails", "inconclusive": "inconclusive",
                   "not measured": "not-measured", "measured": "measured"}


def _num_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def spread_cell(st) -> str:
    """'5.18 ± 0.66 [4.75, 5.95]' from a verdicts.spread dict; '—' for one value or none."""
    if not isinstance(st, dict) or int(st.get("n") or 0) < 2 or not np.isfinite(_num_or_nan(st.get("mean"))):
        return "—"
    return f"{fmt(st['mean'])} ± {fmt(st['std'], 2)} [{fmt(st['min'])}, {fmt(st['max'])}]"


def _count(st, unit: str = "repeats") -> str:
    n = int(st.get("n") or 0) if isinstance(st, dict) else 0
    return f"{n} {unit}" if n else "—"


def _times(value, word: str, limit: str) -> str:
    v = _num_or_nan(value)
    return f"{fmt(v)}× the {word} {limit}" if np.isfinite(v) else "—"


def _headline_dominance(n: dict) -> tuple:
    return (f"c = {fmt(n.get('c'))}", _times(n.get("margin"), "threshold", fmt(n.get("threshold"))),
            spread_cell(n.get("c_spread")), _count(n.get("c_spread")))


def _headline_smoothness(n: dict) -> tuple:
    """a/‖∇F‖ where report.json judges it (since the 'probes' change), else a/√F (older reports); '≤' where
    the maximum is a bound (an a below the probe's resolution), never '= 0'."""
    key, name, bound = (("max_a_over_grad_norm", "a/‖∇F‖", "max_is_bound") if "max_a_over_grad_norm" in n
                        else ("max_a_over_sqrt_F", "a/√F", "max_a_over_sqrt_F_is_bound"))
    rel = "≤" if n.get(bound) else "="
    return (f"max {name} {rel} {fmt(n.get(key))}", _times(n.get("margin"), "limit", fmt(n.get("threshold"))),
            spread_cell(n.get("per_repeat")), _count(n.get("per_repeat")))


def _headline_second_order(n: dict) -> tuple:
    """The largest help attributable to the curvature direction (mean ± sd over repeats) where report.json
    has it, else (older reports) the worst extra fraction over every test."""
    fraction = _num_or_nan(n.get("fraction"))
    if "worst_attributable" in n:
        mean, sd = _num_or_nan(n["worst_attributable"]), _num_or_nan(n.get("worst_attributable_sd"))
        if not np.isfinite(mean):
            return ("—", "—", "—", f"{n.get('checkpoints', '?')} checkpoints")
        return (f"largest attributable help = {fmt(100 * mean)}% of d_grad (epoch {n.get('worst_epoch')})",
                _times(n.get("margin"), "limit", f"{fmt(100 * fraction)}%"),
                f"± {fmt(100 * sd, 2)}% (sd over repeats)" if np.isfinite(sd) else "—",
                f"{n.get('checkpoints', '?')} checkpoints")
    worst = _num_or_nan(n.get("worst_extra_fraction", _num_or_nan(n.get("margin")) * fraction))
    extra = [st.get("extra_fraction") for st in (n.get("per_epoch") or {}).values() if isinstance(st, dict)]
    extra = [st for st in extra if isinstance(st, dict) and int(st.get("n") or 0)]
    tests = sum(int(st["n"]) for st in extra)
    text = "—"
    if extra:  # over every test: the mean weighted by the tests per checkpoint, the extremes of the checkpoints'
        mean = sum(_num_or_nan(st["mean"]) * int(st["n"]) for st in extra) / tests
        lo, hi = min(_num_or_nan(st["min"]) for st in extra), max(_num_or_nan(st["max"]) for st in extra)
        text = f"{fmt(100 * mean)}% [{fmt(100 * lo)}%, {fmt(100 * hi)}%] over all tests"
    return (f"worst extra/d_grad = {fmt(100 * worst)}%", _times(n.get("margin"), "limit", f"{fmt(100 * fraction)}%"),
            text, f"{tests} tests" if tests else "—")


def _headline_interpolation(n: dict) -> tuple:
    return (f"largest bump = {fmt(n.get('largest_bump'))}", _times(n.get("margin"), "limit", fmt(n.get("limit"))),
            "—", f"epoch {n.get('from_epoch', '?')} → {n.get('to_epoch', '?')}")


def _headline_star(n: dict) -> tuple:
    ratio = n.get("min_ratio") or {}
    return (f"holds at {fmt(100 * _num_or_nan(n.get('holds_fraction')))}%",
            f"smallest ratio {fmt(ratio.get('min'))} (≥ 1 needed)" if ratio.get("n") else "—",
            spread_cell(ratio), f"{n.get('checkpoints', '?')} checkpoints × repeats")


def _headline_spectrum(n: dict) -> tuple:
    per = n.get("per_epoch") or {}
    if not per:
        return ("—",) * 4
    epoch = max(per, key=lambda e: int(e) if str(e).isdigit() else -1)
    lam = per[epoch].get("lambda_max") or {}
    return (f"λ_max = {fmt(lam.get('mean'))} at epoch {epoch}", "—", spread_cell(lam), _count(lam))


def _headline_accuracy(n: dict) -> tuple:
    if "train_acc" in n:
        return (f"train {_num_or_nan(n['train_acc']):.3f}, test {_num_or_nan(n.get('test_acc')):.3f} at epoch "
                f"{n.get('epoch')}", "—", "—", "—")
    if "checkpoint_train_acc" in n:
        return (f"train {_num_or_nan(n['checkpoint_train_acc']):.3f} at checkpoint {n.get('checkpoint_epoch')}",
                "—", "—", "—")
    return ("—",) * 4


_HEADLINES = {"gradient_dominance": _headline_dominance, "semi_smoothness": _headline_smoothness,
              "second_order": _headline_second_order, "interpolation": _headline_interpolation,
              "star_convexity": _headline_star, "spectrum": _headline_spectrum, "accuracy": _headline_accuracy}


def claim_headline(claim: dict) -> list[str]:
    """[claim, verdict, statistic, margin, spread, n] of one claim of report.json: the compact summary row
    (a claim not measured, or one this table does not know, gives its summary text as the statistic)."""
    short = _SHORT_TITLES.get(claim.get("id"), str(claim.get("title", "?")).split(":")[0])
    verdict = str(claim.get("verdict", "?"))
    make = _HEADLINES.get(claim.get("id"))
    if verdict == "not measured" or make is None or not claim.get("numbers"):
        return [short, verdict, str(claim.get("summary", "—")).split(";")[0], "—", "—", "—"]
    return [short, verdict, *make(claim["numbers"])]


# ============================================================================ verdicts across training seeds
SEED_SUFFIX = re.compile(r"_seed\d+$")  # reproduce.Cell.folder of a seed after 0


def seed_groups(cells: list[dict]) -> list[tuple[str, list[tuple[int, dict]]]]:
    """The cells of a combined report.json that differ only in their training seed, grouped:
    [(base cell name, [(seed, cell), ...] by seed)] for every group of more than one seed (a cell without
    a training configuration, e.g. an external checkpoint's analysis, is in no group)."""
    groups: dict[str, list[tuple[int, dict]]] = {}
    for cell in cells:
        train = cell.get("train")
        if not isinstance(train, dict) or not isinstance(train.get("seed"), int):
            continue
        key = json.dumps({k: v for k, v in train.items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append((train["seed"], cell))
    found = []
    for members in groups.values():
        if len({seed for seed, _ in members}) > 1:
            members = sorted(members, key=lambda m: m[0])
            found.append((SEED_SUFFIX.sub("", str(members[0][1].get("cell", members[0][1].get("name", "?")))),
                          members))
    return found


def _value(statistic: str, first: str) -> str:
    """A seed's statistic, shortened to its value when it names the same quantity as ``first``'s."""
    name, _, value = statistic.partition(" = ")
    return value if value and first.partition(" = ")[0] == name else statistic


def combined_verdict(per_seed: list[dict]) -> tuple[str, str]:
    """(verdict, why) of one claim over the seeds that measured it ({'seed', 'verdict', 'statistic'} each):
    their common verdict when they agree, else inconclusive with each seed's verdict and statistic; a claim
    measured on one seed keeps its verdict ('seed 0 only')."""
    measured = [p for p in per_seed if p["verdict"] != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED, "on no seed"
    if len(measured) == 1:
        return measured[0]["verdict"], f"seed {measured[0]['seed']} only"
    seeds = ", ".join(str(p["seed"]) for p in measured)
    if len({p["verdict"] for p in measured}) == 1:
        return measured[0]["verdict"], f"seeds {seeds} agree"
    first = measured[0]["statistic"]
    return INCONCLUSIVE, ", ".join(f"seed {p['seed']} {p['verdict']} ({first if k == 0 else _value(p['statistic'], first)})"
                                   for k, p in enumerate(measured))


def across_seeds(cells: list[dict]) -> list[dict]:
    """For every base cell trained with several seeds (``seed_groups``): per claim, each seed's verdict and
    headline statistic, and the combined verdict (``combined_verdict``). What report.json stores as
    'across_seeds' and the summary's "Across training seeds" tables show."""
    out = []
    for base, members in seed_groups(cells):
        ids = list(dict.fromkeys(c.get("id") for _, cell in members for c in cell.get("claims", [])))
        claims = []
        for cid in ids:
            per_seed, short = [], str(cid)
            for seed, cell in members:
                claim = next((c for c in cell.get("claims", []) if c.get("id") == cid), None)
                if claim is not None:
                    head = claim_headline(claim)
                    short = head[0]
                    per_seed.append({"seed": seed, "verdict": head[1], "statistic": head[2]})
            verdict, why = combined_verdict(per_seed)
            claims.append({"id": cid, "claim": short, "verdict": verdict, "why": why, "per_seed": per_seed})
        out.append({"cell": base, "seeds": [s for s, _ in members],
                    "cells": [c.get("cell", c.get("name")) for _, c in members], "claims": claims})
    return out


def across_text(claim: dict) -> str:
    """One claim's combined verdict as the summary shows it: 'holds (seeds 0, 1, 2 agree)', 'holds (seed 0
    only)', or 'inconclusive: seed 0 holds (…), seed 2 fails (…)' when the seeds differ."""
    differ = len({p["verdict"] for p in claim["per_seed"] if p["verdict"] != NOT_MEASURED}) > 1
    return f"{claim['verdict']}: {claim['why']}" if differ else f"{claim['verdict']} ({claim['why']})"


def _seed_text(claim: dict, seed: int) -> str:
    """One seed's verdict and headline statistic of an ``across_seeds`` claim ('not measured' alone)."""
    p = next((p for p in claim["per_seed"] if p["seed"] == seed), None)
    return NOT_MEASURED if p is None or p["verdict"] == NOT_MEASURED else f"{p['verdict']} ({p['statistic']})"


def across_seed_tables(groups: list[dict]) -> list[tuple]:
    """Blocks of ``across_seeds``: per base cell one row per claim, its combined verdict and each seed's."""
    blocks: list[tuple] = []
    for g in groups:
        seeds = g["seeds"]
        blocks.append(("p", f"Across training seeds: {g['cell']} (seeds {', '.join(map(str, seeds))}; the common "
                            f"verdict of the seeds that measured a claim, inconclusive when they differ)"))
        rows = [[c["claim"], across_text(c)] + [_seed_text(c, s) for s in seeds] for c in g["claims"]]
        blocks.append(("table", ["claim", "across seeds"] + [f"seed {s}" for s in seeds], rows))
    return blocks


def summary_tables(report: dict) -> list[tuple]:
    """Table blocks of the verdict summary of report.json's data (one run, or {'cells': [...]}): for
    several cells the across-seed tables of base cells trained with several seeds (``across_seeds``), a
    per-cell table (verdict and statistic per claim) and the verdict table with a cell column."""
    cells = report.get("cells") if "cells" in report else [report]
    if not cells:
        return []
    if len(cells) == 1:
        return [("table", SUMMARY_COLUMNS, [claim_headline(c) for c in cells[0].get("claims", [])])]
    titles = [claim_headline(c)[0] for c in cells[0].get("claims", [])]
    per_cell = []
    for cell in cells:
        heads = [claim_headline(c) for c in cell.get("claims", [])]
        per_cell.append([cell.get("cell", cell.get("name", "?"))] + [f"{h[1]} ({h[2]})" for h in heads])
    rows = [[cell.get("cell", cell.get("name", "?"))] + claim_headline(c) for cell in cells for c in cell.get("claims", [])]
    groups = report["across_seeds"] if "across_seeds" in report else across_seeds(cells)  # as report.json stores it
    return across_seed_tables(groups) + [("table", ["cell"] + titles, per_cell),
                                                      ("table", ["cell"] + SUMMARY_COLUMNS, rows)]


def markdown_summary(report: dict) -> str:
    """The README-ready Markdown of report.json's verdict summary (``summary_tables``)."""
    return render_markdown(summary_tables(report)).rstrip("\n") + "\n"


def read_report_json(folder) -> dict:
    """report.json of ``folder`` (a run or a combined report's folder); a one-line error when absent or damaged."""
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise LandscapeError(f"no report.json in {folder}: write it first with `landscape report {folder}`")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LandscapeError(f"damaged report file {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("claims")), list):
        raise LandscapeError(f"damaged report file {path}: neither 'claims' nor 'cells'")
    return data


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.holds{background:#e3f4e1;font-weight:600}td.fails{background:#fbe3e0;font-weight:600}
td.inconclusive{background:#fff2cc;font-weight:600}td.not-measured{background:#eee;color:#666}td.measured{background:#e6effa}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.88em;color:#444}
code{background:#f5f5f5;padding:0 .2em}
"""


def _inline(text: str) -> str:
    """HTML-escape, turning `code` spans into <code>."""
    parts = str(text).split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def verdict_class(value) -> str | None:
    """The CSS class of a table cell that states a verdict ('holds', 'fails (c = 2)', 'not measured: ...')."""
    low = str(value).lower()
    for word, cls in VERDICT_CLASSES.items():
        if low == word or low.startswith(word + " (") or low.startswith(word + ":"):
            return cls
    return None


EMBED_MAX_WIDTH = 1400          # px: embedded PNGs are downscaled to this width
EMBED_BUDGET = 4_000_000        # bytes of embedded images per page; beyond it figures are linked


def embedded_png(path: Path) -> bytes:
    """The PNG at ``path``, downscaled to EMBED_MAX_WIDTH and re-compressed (what report.html embeds)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > EMBED_MAX_WIDTH:
            im = im.resize((EMBED_MAX_WIDTH, round(im.height * EMBED_MAX_WIDTH / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        im.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
        return buf.getvalue()


def _figure_html(b: tuple, embed: bool, budget: list[int]) -> str:
    """One ('img', path, caption, relpath) block: embedded while ``budget`` (bytes left) allows, else linked."""
    alt = html.escape(Path(b[1]).stem)
    data = embedded_png(Path(b[1])) if embed else b""
    if embed and len(data) * 4 // 3 <= budget[0]:
        budget[0] -= len(data) * 4 // 3
        src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        img = f"<img alt=\"{alt}\" src=\"{src}\">"
    else:
        rel = html.escape(Path(b[3]).as_posix())
        img = f"<a href=\"{rel}\"><img alt=\"{alt}\" src=\"{rel}\" loading=\"lazy\"></a>"
    return f"<figure>{img}<figcaption>{_inline(b[2])}</figcaption></figure>"


def render_html(blocks: list[tuple], title: str, embed: bool = True) -> str:
    """The blocks as one HTML page: figures embedded (downscaled, up to EMBED_BUDGET bytes) when ``embed``,
    else linked by their relative paths."""
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    budget = [EMBED_BUDGET]
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
                    cls = verdict_class(v)
                    cells.append(f"<td class=\"{cls}\">{_inline(v)}</td>" if cls else f"<td>{_inline(v)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif b[0] == "img":
            out.append(_figure_html(b, embed, budget))
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
    """Write report.md, report.html (figures embedded, downscaled, under EMBED_BUDGET) and report.json.

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
    blocks = (report_header(f"Loss-landscape report: {data.name}") + [("h", 2, "Summary")]
              + summary_tables(data.to_json()) + _run_blocks(data, figs, 1, out, figure_captions(fig_dir)))
    return _write_all(out, blocks, f"landscape report: {data.name}", data.to_json(), [(data.name, data)], embed=True)


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
    combined = {"cells": [{"cell": name, **data.to_json()} for name, _, data in cells], "skipped": skipped or {}}
    combined["across_seeds"] = across_seeds(combined["cells"])
    blocks.append(("h", 2, "Summary"))
    blocks += summary_tables(combined)
    blocks.append(("p", "Each cell's figures are linked, not embedded: they stay in the cell's figures/ folder."))
    for name, reason in (skipped or {}).items():
        blocks.append(("p", f"Skipped {name}: {reason}."))
    for name, r, data in cells:
        figs = _figures_for(r, as_run(r).figures, figures, epochs, floor)
        blocks.append(("h", 2, f"Cell {name}"))
        blocks += _run_blocks(data, figs, 2, out, figure_captions(as_run(r).figures))
    return _write_all(out, blocks, "landscape combined report", combined, [(name, data) for name, _, data in cells],
                      embed=False)


def figure_captions(fig_dir: Path) -> dict:
    """Figure name -> what it was computed on, as make_figures recorded it in figures.json."""
    manifest = read_manifest(fig_dir) or {}
    captions = manifest.get("captions")
    return {k: str(v) for k, v in captions.items()} if isinstance(captions, dict) else {}


def _write_all(out: Path, blocks: list[tuple], title: str, data: dict, cells: list, embed: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    md, page, js = out / "report.md", out / "report.html", out / "report.json"
    atomic_write_text(render_markdown(blocks), md)
    atomic_write_text(render_html(blocks, title, embed), page)
    atomic_write_json(data, js)
    return {"markdown": md, "html": page, "json": js, "cells": cells}
