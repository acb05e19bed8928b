"""Verdicts on the paper's claims, read from a run's result files, as Markdown and HTML.

``run_verdicts(run_dir)`` returns plain data: one entry per claim with its verdict
('holds', 'fails', 'not measured', or 'measured' for numbers without a threshold), the numbers
behind it, the threshold it was judged by and what it was computed on. ``write_report`` turns
that into RUN/report.md, a self-contained RUN/report.html (figures embedded as base64 PNG) and
RUN/report.json (the same data); ``write_combined_report`` does the same for several runs
(the cells of a reproduction), one section per cell.

Claims and thresholds (named constants below; README "Verdicts" says why each is what it is).
Each verdict is judged on a conservative statistic over the analysis' repeats, shows the spread
and its margin to the threshold, and is 'inconclusive' when it rests on an artefact the run can
detect (lagging batch-norm statistics, a poor probe fit, an unresolved eigenpair):

* gradient dominance: c = min ‖∇F‖²/F over the checkpoints of every repeat and the dense
  track, on points with F > DOMINANCE_F_FLOOR; holds when c ≥ DOMINANCE_MIN_C (a track made
  with the lagging running statistics of older versions is shown, not judged);
* semi-smoothness: |r(t)| ≈ a·|t| + b·t² with a/√F ≤ SMOOTHNESS_MAX_A_OVER_SQRT_F at every
  checkpoint, direction and repeat (the non-smooth part is small next to the loss);
* second-order help: d_plane − d_grad ≤ SECOND_ORDER_MAX_EXTRA_FRACTION · d_grad at every
  checkpoint and repeat, from the grid-free test (second_order.json);
* monotone interpolation: the largest bump of the train loss along init → final is
  ≤ INTERPOLATION_MAX_BUMP_FRACTION · F(init);
* accuracy reached: the final train/test accuracies of log.jsonl (no threshold).
"""

from __future__ import annotations

import base64
import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import __version__
from .errors import LandscapeError
from .plots import (DEFAULT_F_FLOOR, SECOND_ORDER_MAX_EXTRA_FRACTION, read_config, run_title, analyzed_epochs, as_run, envelope_constant, fmt,
                    input_fingerprint, track_uses_statistics_of_theta, load_dominance, load_interpolations, load_log, load_probes,
                    load_second_order, load_surface, load_track, make_figures, read_manifest, readable)
from .results import RunDir, atomic_write_json

DOMINANCE_F_FLOOR = DEFAULT_F_FLOOR          # points with F at or below it do not set c
DOMINANCE_MIN_C = 1e-3                       # dominance holds when c (min over repeats) is at least this
SMOOTHNESS_MAX_A_OVER_SQRT_F = 0.1           # semi-smoothness holds when max a/√F is at most this
INTERPOLATION_MAX_BUMP_FRACTION = 1e-3       # monotone enough when largest bump ≤ this · F(init)
# artefacts the run can detect; a verdict that rests on one is 'inconclusive'
BN_LAG_MAX = 0.25                 # |F(checkpoint statistics) − F(statistics of θ)| / F(statistics of θ)
FIT_MAX_REL_RMS = 0.5             # a probe fit with a larger relative RMS error is poor
EIGEN_MAX_RELATIVE_RESIDUAL = 0.1  # an eigenpair with ‖Hv − λv‖ > this · |λ| is not resolved

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED, MEASURED = "holds", "fails", "inconclusive", "not measured", "measured"
CLAIMS = ("gradient_dominance", "semi_smoothness", "second_order", "interpolation", "accuracy")

_SETTING_KEYS = ("dataset", "arch", "examples", "param_subset", "num_params", "bn_policy", "bn_statistics",
                 "precision", "loss", "subset_seed", "train_seed", "label_noise", "repeats", "repeat_mode")


# ============================================================================ helpers
def _settings(contexts: list[dict], epochs: Iterable | None = None, **extra) -> dict:
    """What a claim's numbers were computed on: each context key with one value, or the list
    of the distinct values when checkpoints differ."""
    out: dict[str, Any] = {}
    for key in _SETTING_KEYS:
        values = []
        for c in contexts:
            v = c.get(key)
            if v is not None and v not in values:
                values.append(v)
        if values:
            out[key] = values[0] if len(values) == 1 else values
    if epochs is not None:
        out["epochs"] = sorted(set(epochs), key=lambda e: (isinstance(e, str), e))
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _settings_text(s: dict) -> str:
    """'cifar10, n=128 (subset seed 0), params all (78,042), BN frozen, fp32, seed 0, epochs 0,1,2'."""
    parts = []
    if "dataset" in s:
        parts.append(str(s["dataset"]))
    if "examples" in s:
        seed = f" (subset seed {s['subset_seed']})" if "subset_seed" in s else ""
        parts.append(f"n={s['examples']}{seed}")
    if "param_subset" in s:
        num = s.get("num_params")
        parts.append(f"params {s['param_subset']}" + (f" ({num:,})" if isinstance(num, int) else ""))
    if "bn_policy" in s:
        parts.append(f"BN {s['bn_policy']}" + (f" ({s['bn_statistics']})" if "bn_statistics" in s else ""))
    if s.get("repeats", 1) != 1:
        parts.append(f"{s['repeats']} repeats ({s.get('repeat_mode', '?')})")
    if "precision" in s:
        parts.append(str(s["precision"]))
    if "train_seed" in s:
        parts.append(f"training seed {s['train_seed']}")
    if s.get("label_noise"):
        parts.append(f"label noise {s['label_noise']}")
    for key, value in s.items():
        if key in _SETTING_KEYS or key == "epochs":
            continue
        parts.append(f"{key.replace('_', ' ')} {value}")
    if "epochs" in s:
        parts.append("epochs " + ", ".join(str(e) for e in s["epochs"]))
    return "; ".join(parts)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def spread(values) -> dict:
    """Mean, standard deviation (ddof 1; 0 for one value), min, max and count of the finite values."""
    v = np.asarray(_finite(values), float)
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def spread_text(st: dict, digits: int = 3) -> str:
    """'1.2 ± 0.1 (min 1.1, max 1.3; 3 repeats)', or the single value."""
    if st["n"] <= 1:
        return fmt(st["mean"], digits)
    return (f"{fmt(st['mean'], digits)} ± {fmt(st['std'], 2)} (min {fmt(st['min'], digits)}, "
            f"max {fmt(st['max'], digits)}; {st['n']} repeats)")


def margin_text(value: float, threshold: float, upper: bool, shown: str | None = None) -> str:
    """'115× the threshold 0.001' (value must reach it) or '0.08× the limit 0.1' (must stay below)."""
    word = "limit" if upper else "threshold"
    shown = fmt(threshold) if shown is None else shown
    if not (math.isfinite(value) and threshold > 0):
        return f"margin to the {word} {shown} undefined"
    return f"{fmt(value / threshold, 3)}× the {word} {shown}"


def bn_lag(points: list[dict]) -> list[tuple[int, float, float, float]]:
    """(epoch, lag, F with checkpoint statistics, F with statistics of θ) where the run used the
    checkpoint's statistics and they lag the weights by more than BN_LAG_MAX."""
    out = []
    for p in points:
        fc, fr = p.get("F_checkpoint_stats"), p.get("F_recomputed_stats")
        if p.get("bn_stats") != "checkpoint" or fc is None or fr is None or not fr > 0:
            continue
        lag = abs(fc - fr) / fr
        if lag > BN_LAG_MAX:
            out.append((p["epoch"], lag, fc, fr))
    return out


def _claim(cid: str, title: str, verdict: str, summary: str, threshold: str, numbers: dict,
           settings: dict, columns: list[str] | None = None, rows: list[list] | None = None,
           sources: list | None = None, note: str = "") -> dict:
    return {"id": cid, "title": title, "verdict": verdict, "summary": summary, "threshold": threshold,
            "numbers": numbers, "settings": settings, "columns": columns or [], "rows": rows or [],
            "sources": [str(s) for s in (sources or [])], "note": note}


# ============================================================================ the claims
def dominance_verdict(run: RunDir, floor: float = DOMINANCE_F_FLOOR) -> dict:
    title = "Gradient dominance: ‖∇F‖² ≥ c·F"
    threshold = (f"holds when c ≥ {fmt(DOMINANCE_MIN_C)}; c = min ‖∇F‖²/F over the checkpoints of every repeat "
                 f"and the dense track, on points with F > {fmt(floor)}")
    points = load_dominance(run, repeats=True)
    track = load_track(run)
    if not points and not track:
        return _claim("gradient_dominance", title, NOT_MEASURED, "no dominance.json and no track.jsonl",
                      threshold, {}, {})
    repeats = sorted({p["repeat"] for p in points})
    per = {r: envelope_constant([p["F"] for p in points if p["repeat"] == r],
                                [p["grad_sq"] for p in points if p["repeat"] == r], floor) for r in repeats}
    per_h = {r: envelope_constant([p["F"] for p in points if p["repeat"] == r],
                                  [p["grad_sq_hidden"] for p in points if p["repeat"] == r], floor) for r in repeats}
    tr = envelope_constant([r["F"] for r in track], [r["grad_sq"] for r in track], floor)
    c_spread = spread(per[r]["c"] for r in repeats)
    h_spread = spread(per_h[r]["c"] for r in repeats)
    c, c_hidden = c_spread["min"], h_spread["min"]
    track_judged = track_uses_statistics_of_theta(track)
    if track_judged:  # the dense track counts too, once its F is the loss of the network at θ
        tr_h = envelope_constant([r["F"] for r in track], [r["grad_sq_hidden"] for r in track], floor)
        c = min(_finite([c, tr["c"]]), default=float("nan"))
        c_hidden = min(_finite([c_hidden, tr_h["c"]]), default=float("nan"))
    lagging = bn_lag(points)
    numbers = {"c": c, "c_spread": c_spread, "c_hidden": c_hidden, "c_hidden_spread": h_spread,
               "c_track": tr["c"], "threshold": DOMINANCE_MIN_C, "margin": c / DOMINANCE_MIN_C, "floor": floor,
               "checkpoints_used": sum(per[r]["points"] for r in repeats),
               "checkpoints_total": sum(per[r]["total"] for r in repeats),
               "track_used": tr["points"], "track_total": tr["total"], "repeats": len(repeats),
               "bn_lag_epochs": [e for e, *_ in lagging]}
    settings = _settings([p["context"] for p in points], [p["epoch"] for p in points])
    if track:
        settings["track"] = (f"{len(track)} points during training on {int(track[0].get('examples', 0)) or '?'} "
                             f"training examples, " + ("BN statistics of θ" if track_judged else
                                                       "running BN statistics of the moment (not judged)"))
    note = ""
    if not math.isfinite(c):
        verdict, summary = NOT_MEASURED, f"no checkpoint with F > {fmt(floor)} (every F is at or below the floor)"
    else:
        verdict = HOLDS if c >= DOMINANCE_MIN_C else FAILS
        summary = (f"c = {fmt(c, 4)}, {margin_text(c, DOMINANCE_MIN_C, upper=False)}; "
                   f"checkpoints, per repeat {spread_text(c_spread)}; "
                   + (f"dense track {'' if track_judged else '(lagging statistics, not judged) '}"
                      f"c = {fmt(tr['c'], 4)}; " if track else "")
                   + f"hidden layers c = {fmt(c_hidden, 4)}")
        if lagging:
            verdict = INCONCLUSIVE
            e, lag, fc, fr = max(lagging, key=lambda x: x[1])
            note = (f"the checkpoint's batch-norm statistics lag its weights at epoch(s) "
                    f"{', '.join(str(x[0]) for x in lagging)} (epoch {e}: F = {fmt(fc, 4)} with them, {fmt(fr, 4)} "
                    f"with the statistics of θ): rerun the analysis with --bn-stats recompute")
    rows = [[p["epoch"], p["repeat"], p["F"], p.get("F_checkpoint_stats"), p["grad_sq"], p["ratio"],
             p["grad_sq_hidden"], p["ratio_hidden"], "yes" if p["F"] > floor else "no (below floor)"] for p in points]
    return _claim("gradient_dominance", title, verdict, summary, threshold, numbers, settings,
                  ["epoch", "repeat", "F", "F (checkpoint BN statistics)", "‖∇F‖²", "‖∇F‖²/F", "‖∇F‖² hidden",
                   "ratio hidden", "sets c"], rows,
                  [p["path"] for p in points] + ([run.track] if track else []), note)


def _good_fit(p: dict) -> bool:
    return (p.get("points") or 0) >= 3 and math.isfinite(p["rel_rms"]) and p["rel_rms"] <= FIT_MAX_REL_RMS


def smoothness_verdict(run: RunDir, threshold_value: float = SMOOTHNESS_MAX_A_OVER_SQRT_F) -> dict:
    title = "Semi-smoothness: |r(t)| ≤ a·|t| + b·t² with a small next to √F"
    threshold = (f"holds when max a/√F ≤ {fmt(threshold_value)} over checkpoints and directions, worst repeat, "
                 f"on fits with relative RMS error ≤ {fmt(FIT_MAX_REL_RMS)}")
    probes = [p for e in analyzed_epochs(run) for p in load_probes(run, e, repeats=True)]
    if not probes:
        return _claim("semi_smoothness", title, NOT_MEASURED, "no probe_*.json", threshold, {}, {})
    rows = [[p["epoch"], p["repeat"], p["name"], p["F"], p["a"], p["b"], p["a_over_sqrt_F"], p["rel_rms"],
             p["envelope"], p["noise_floor"], float(np.abs(p["t"]).max())] for p in probes]
    settings = _settings([p["context"] for p in probes], [p["epoch"] for p in probes])
    good = [p for p in probes if _good_fit(p) and math.isfinite(p["a_over_sqrt_F"])]
    poor_over = [p for p in probes if not _good_fit(p) and math.isfinite(p["a_over_sqrt_F"])
                 and p["a_over_sqrt_F"] > threshold_value]
    if not good:
        verdict = INCONCLUSIVE if probes else NOT_MEASURED
        return _claim("semi_smoothness", title, verdict, "no probe has a good fit (or F = 0 everywhere)",
                      threshold, {}, settings, [], [], [p["path"] for p in probes])
    repeats = sorted({p["repeat"] for p in good})
    per_repeat = spread(max(p["a_over_sqrt_F"] for p in good if p["repeat"] == r) for r in repeats)
    worst = max(good, key=lambda p: p["a_over_sqrt_F"])
    max_b = max(good, key=lambda p: p["b"])
    value = worst["a_over_sqrt_F"]
    numbers = {"max_a_over_sqrt_F": value, "per_repeat": per_repeat, "at_epoch": worst["epoch"],
               "direction": worst["name"], "repeat": worst["repeat"], "max_b": max_b["b"],
               "max_b_epoch": max_b["epoch"], "max_b_direction": max_b["name"], "threshold": threshold_value,
               "margin": value / threshold_value if threshold_value > 0 else float("nan"),
               "probes": len(probes), "good_fits": len(good),
               "poor_fits_over_threshold": [[p["epoch"], p["repeat"], p["name"]] for p in poor_over]}
    verdict = HOLDS if value <= threshold_value else FAILS
    summary = (f"max a/√F = {fmt(value, 4)} ({margin_text(value, threshold_value, upper=True)}; "
               f"epoch {worst['epoch']}, {worst['name']}); worst per repeat {spread_text(per_repeat)}; "
               f"max b = {fmt(max_b['b'], 4)} (epoch {max_b['epoch']}, {max_b['name']})")
    note = ""
    if verdict == HOLDS and poor_over:
        verdict = INCONCLUSIVE
        p = max(poor_over, key=lambda q: q["a_over_sqrt_F"])
        note = (f"{len(poor_over)} probe(s) with a poor fit (relative RMS > {fmt(FIT_MAX_REL_RMS)}) exceed the "
                f"threshold, e.g. epoch {p['epoch']} repeat {p['repeat']} {p['name']}: a/√F = "
                f"{fmt(p['a_over_sqrt_F'], 4)}, fit error {fmt(p['rel_rms'], 3)}")
    return _claim("semi_smoothness", title, verdict, summary, threshold, numbers, settings,
                  ["epoch", "repeat", "direction", "F", "a", "b", "a/√F", "fit rel. RMS", "envelope κ", "noise floor",
                   "max |t|"], rows, [p["path"] for p in probes], note)


def second_order_verdict(run: RunDir, fraction: float = SECOND_ORDER_MAX_EXTRA_FRACTION) -> dict:
    title = "Second-order information gives little help (negative curvature vs gradient)"
    threshold = (f"holds when, at every checkpoint and in every repeat, d_plane − d_grad ≤ {fmt(fraction)} × d_grad "
                 f"(second_order.json: line searches and a local search in the plane, no grid)")
    tests = load_second_order(run)
    if not tests:
        return _claim("second_order", title, NOT_MEASURED, "no second_order.json", threshold, {}, {})
    epochs = sorted({t["epoch"] for t in tests})
    rows, per_epoch = [], {}
    for e in epochs:
        here = [t for t in tests if t["epoch"] == e]
        per_epoch[e] = {k: spread(t[k] for t in here) for k in ("d_grad", "d_curv", "d_plane", "extra_fraction")}
        st = per_epoch[e]
        rows.append([e, len(here), spread(t["F"] for t in here)["mean"], spread_text(st["d_grad"]),
                     spread_text(st["d_curv"]), spread_text(st["d_plane"]), spread_text(st["extra_fraction"]),
                     st["extra_fraction"]["max"], spread_text(spread(t["lambda_min"] for t in here)),
                     "yes" if st["extra_fraction"]["max"] <= fraction else "no"])
    worst = max(tests, key=lambda t: t["extra_fraction"])
    value = worst["extra_fraction"]
    unresolved = [t for t in tests if not _eigen_resolved(t)]
    numbers = {"worst_extra_fraction": value, "worst_epoch": worst["epoch"], "worst_repeat": worst["repeat"],
               "fraction": fraction, "margin": value / fraction if fraction > 0 else float("nan"),
               "checkpoints": len(epochs), "failing_epochs": [r[0] for r in rows if r[-1] == "no"],
               "per_epoch": {str(e): v for e, v in per_epoch.items()},
               "evaluations": spread(t["evaluations"] for t in tests),
               "unresolved_eigenpairs": [[t["epoch"], t["repeat"]] for t in unresolved]}
    verdict = HOLDS if value <= fraction else FAILS
    summary = (f"worst: epoch {worst['epoch']} (repeat {worst['repeat']}), the curvature direction adds "
               f"{fmt(100 * value, 3)}% of d_grad = {fmt(worst['d_grad'], 4)} "
               f"({margin_text(value, fraction, upper=True, shown=f'{fmt(100 * fraction)}%')})")
    note = ""
    if verdict == HOLDS and unresolved:
        verdict = INCONCLUSIVE
        note = (f"the most negative eigenpair is not resolved (‖Hv − λv‖ > {fmt(EIGEN_MAX_RELATIVE_RESIDUAL)}·|λ|) at "
                + ", ".join(f"epoch {t['epoch']} repeat {t['repeat']}" for t in unresolved[:6])
                + ": a better-resolved direction of negative curvature could help more; raise --eig-max-matvecs")
    if verdict == HOLDS and not all(t["bracketed"] for t in tests):
        verdict = INCONCLUSIVE
        note = "a gradient line search ran out of evaluations before bracketing its best step"
    surfaces = [s for e in analyzed_epochs(run) if (s := load_surface(run, e)) is not None]
    return _claim("second_order", title, verdict, summary, threshold, numbers,
                  _settings([t["context"] for t in tests], [t["epoch"] for t in tests],
                            grid_pictures=(f"{len(surfaces[0]['xs'])}×{len(surfaces[0]['ys'])} (figures only)"
                                           if surfaces else None)),
                  ["epoch", "repeats", "F", "d_grad (along −∇F)", "d_curv (along y)", "d_plane", "extra / d_grad",
                   "worst extra / d_grad", "λ_min", "little help"],
                  rows, [t["path"] for t in tests], note)


def _eigen_resolved(test: dict) -> bool:
    """The eigenpair behind y is resolved: converged, or its residual is small next to |λ|."""
    if test["lambda_min_converged"]:
        return True
    residual = test["result"].get("lambda_min_residual")
    lam = test["lambda_min"]
    return residual is not None and math.isfinite(lam) and float(residual) <= EIGEN_MAX_RELATIVE_RESIDUAL * abs(lam)


def interpolation_verdict(run: RunDir, fraction: float = INTERPOLATION_MAX_BUMP_FRACTION) -> dict:
    title = "Monotone interpolation from initialization to the solution (train loss)"
    threshold = f"holds when the largest bump on α ∈ [0, 1] ≤ {fmt(fraction)} × F(init)"
    items = load_interpolations(run)
    if not items:
        return _claim("interpolation", title, NOT_MEASURED, "no analysis/interpolation/*.json", threshold, {}, {})
    main = items[0]  # the widest span: init → final
    alpha = main["alpha"]
    i0, i1 = int(np.argmin(np.abs(alpha))), int(np.argmin(np.abs(alpha - 1)))
    f_init, f_final = float(main["train_loss"][i0]), float(main["train_loss"][i1])
    res = main["result"]["train"]
    bump = float(res["largest_bump"])
    limit = fraction * f_init
    numbers = {"from_epoch": main["from"], "to_epoch": main["to"], "monotone": bool(res["monotone"]),
               "largest_bump": bump, "bump_at": float(res.get("bump_at", float("nan"))), "F_init": f_init,
               "F_final": f_final, "limit": limit, "fraction": fraction,
               "test_largest_bump": float(main["result"].get("test", {}).get("largest_bump", float("nan"))),
               "bn_interpolation": main["bn"]}
    verdict = HOLDS if bump <= limit else FAILS
    numbers["margin"] = bump / limit if limit > 0 else float("nan")
    summary = (f"epoch {main['from']} → {main['to']}: {'monotone' if res['monotone'] else 'not monotone'}, "
               f"largest bump {fmt(bump, 4)} ({margin_text(bump, limit, upper=True, shown=fmt(limit, 4))} = "
               f"{fmt(fraction)}·F(init), F(init) = {fmt(f_init, 4)})")
    rows = []
    for it in items:
        tr, te = it["result"]["train"], it["result"].get("test", {})
        rows.append([f"{it['from']} → {it['to']}", "yes" if tr["monotone"] else "no", float(tr["largest_bump"]),
                     float(tr.get("bump_at", float("nan"))), "yes" if te.get("monotone") else "no",
                     float(te.get("largest_bump", float("nan"))), it["bn"]])
    ctx = main["context"].get("train", {}) if isinstance(main["context"], dict) else {}
    test_n = main["context"].get("test", {}).get("examples") if isinstance(main["context"], dict) else None
    return _claim("interpolation", title, verdict, summary, threshold, numbers,
                  _settings([ctx], [main["from"], main["to"]], interpolation_bn=main["bn"], test_examples=test_n,
                            points=len(alpha)),
                  ["pair (epochs)", "train monotone", "train largest bump", "bump at α", "test monotone",
                   "test largest bump", "BN"], rows, [it["path"] for it in items])


def accuracy_verdict(run: RunDir, config: dict) -> dict:
    title = "Accuracy reached"
    threshold = "no threshold (reported)"
    log = load_log(run)
    points = load_dominance(run)
    numbers, rows, sources = {}, [], []
    if log:
        last = log[-1]
        numbers.update({"epoch": int(last["epoch"]), "train_acc": last["train_acc"], "test_acc": last["test_acc"],
                        "train_loss": last["train_loss"], "test_loss": last["test_loss"]})
        rows.append([f"log.jsonl, epoch {int(last['epoch'])}", "training set (running mean, augmented)",
                     last["train_loss"], last["train_acc"], last["test_loss"], last["test_acc"]])
        sources.append(run.log)
    final = next((p for p in reversed(points) if "train_acc" in p), None)
    if final is not None:
        numbers.update({"checkpoint_epoch": final["epoch"], "checkpoint_train_acc": final["train_acc"],
                        "checkpoint_test_acc": final.get("test_acc"), "checkpoint_F": final["F"]})
        rows.append([f"dominance.json, epoch {final['epoch']}",
                     f"analysis subset n={final['context'].get('examples', '?')}", final["F"], final["train_acc"],
                     final.get("test_loss"), final.get("test_acc")])
        sources.append(final["path"])
    if not numbers:
        return _claim("accuracy", title, NOT_MEASURED, "no log.jsonl and no dominance.json", threshold, {}, {})
    data = config.get("data", {})
    if log:
        summary = (f"epoch {numbers['epoch']}: train {numbers['train_acc']:.4f}, test {numbers['test_acc']:.4f}")
    else:
        summary = (f"checkpoint epoch {numbers['checkpoint_epoch']}: train {numbers['checkpoint_train_acc']:.4f}"
                   + (f", test {numbers['checkpoint_test_acc']:.4f}" if numbers.get("checkpoint_test_acc") is not None else ""))
    train = config.get("train") or {}
    settings = {"dataset": data.get("dataset"), "train_examples": data.get("train_examples"),
                "test_examples": data.get("test_examples"), "train_seed": train.get("seed"),
                "label_noise": train.get("label_noise") or None}
    settings = {k: v for k, v in settings.items() if v is not None}
    if log:
        settings["epochs"] = [int(log[-1]["epoch"])]
    return _claim("accuracy", title, MEASURED, summary, threshold, numbers, settings,
                  ["source", "on", "train loss", "train acc", "test loss", "test acc"], rows, sources)


def run_verdicts(run_dir, *, floor: float = DOMINANCE_F_FLOOR) -> dict:
    """The verdict on each claim for one run directory, as plain data (see the module doc)."""
    run = as_run(run_dir)
    config = read_config(run)
    train = config.get("train") or {}
    claims = [dominance_verdict(run, floor), smoothness_verdict(run), second_order_verdict(run),
              interpolation_verdict(run), accuracy_verdict(run, config)]
    return {"run": str(run.path), "name": run.path.name, "title": run_title(run, config),
            "train": train, "data": {k: v for k, v in config.get("data", {}).items() if k != "classes"},
            "analyzed_epochs": analyzed_epochs(run),
            "thresholds": {"DOMINANCE_F_FLOOR": floor, "DOMINANCE_MIN_C": DOMINANCE_MIN_C,
                           "SMOOTHNESS_MAX_A_OVER_SQRT_F": SMOOTHNESS_MAX_A_OVER_SQRT_F,
                           "FIT_MAX_REL_RMS": FIT_MAX_REL_RMS, "EIGEN_MAX_RELATIVE_RESIDUAL": EIGEN_MAX_RELATIVE_RESIDUAL,
                           "BN_LAG_MAX": BN_LAG_MAX,
                           "SECOND_ORDER_MAX_EXTRA_FRACTION": SECOND_ORDER_MAX_EXTRA_FRACTION,
                           "INTERPOLATION_MAX_BUMP_FRACTION": INTERPOLATION_MAX_BUMP_FRACTION},
            "claims": claims}


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
    "training": "Training curves (loss, accuracy, learning rate) and the extreme Hessian eigenvalues at the "
                "checkpoints.",
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


def _run_blocks(data: dict, figures: list[Path], level: int, base: Path) -> list[tuple]:
    """The document of one run as blocks: ('h', level, text), ('p', text), ('table', head, rows),
    ('img', path, caption, relpath)."""
    blocks: list[tuple] = [("p", data["title"]), ("p", f"Result files: `{data['run']}`")]
    train = data.get("train") or {}
    d = data.get("data") or {}
    facts = [["dataset", d.get("dataset")], ["training examples", d.get("train_examples")],
             ["test examples", d.get("test_examples")]]
    if train:
        facts += [["architecture", train.get("arch")], ["width", train.get("width")],
                  ["epochs", train.get("epochs")], ["lr / milestones", f"{train.get('lr')} / {train.get('milestones')}"],
                  ["batch size", train.get("batch_size")], ["weight decay", train.get("weight_decay")],
                  ["training seed", train.get("seed")], ["label noise", train.get("label_noise")],
                  ["trained parameters", train.get("train_params")], ["training precision", train.get("precision")]]
    facts.append(["analyzed checkpoints", ", ".join(str(e) for e in data["analyzed_epochs"]) or "none"])
    blocks.append(("h", level + 1, "Run"))
    blocks.append(("table", ["setting", "value"], [[k, _cell(v)] for k, v in facts]))
    blocks.append(("h", level + 1, "Verdicts"))
    blocks.append(("table", ["claim", "verdict", "numbers", "threshold", "computed on"],
                   [[c["title"], c["verdict"].upper() if c["verdict"] in (HOLDS, FAILS) else c["verdict"],
                     c["summary"], c["threshold"], _settings_text(c["settings"]) or "—"] for c in data["claims"]]))
    blocks.append(("p", "Thresholds: " + ", ".join(f"{k} = {fmt(v)}" for k, v in data["thresholds"].items())
                   + ". A claim whose result files are absent is 'not measured'; one that misses its threshold "
                     "'fails', with its numbers."))
    blocks.append(("h", level + 1, "Details"))
    for c in data["claims"]:
        blocks.append(("h", level + 2, f"{c['title']}: {c['verdict']}"))
        blocks.append(("p", c["summary"] + (f" — {c['note']}" if c["note"] else "")))
        if c["settings"]:
            blocks.append(("p", f"Computed on: {_settings_text(c['settings'])}."))
        if c["rows"]:
            blocks.append(("table", c["columns"], [[_cell(v) for v in row] for row in c["rows"]]))
        if c["sources"]:
            shown = [os.path.relpath(s, data["run"]) for s in c["sources"]]
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


def _header(title: str) -> list[tuple]:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [("h", 1, title),
            ("p", f"Written by landscape {__version__} on {stamp} from the stored result files only "
                  f"(nothing recomputed). Paper: Allen-Zhu, Li, Song, \"A Convergence Theory for Deep Learning "
                  f"via Over-Parameterization\", ICML 2019.")]


def _write_text(path: Path, text: str) -> None:
    from .results import _atomic

    _atomic(path, lambda fh: fh.write(text.encode("utf-8")))


# ============================================================================ writers
def _figures_for(run_dir, fig_dir: Path, figures, epochs, floor: float) -> list[Path]:
    """The run's figure files for the report: drawn into ``fig_dir`` (figures=True), those
    already there (False), or drawn only when the figures there were not made from the
    current result files ('auto', judged by make_figures' manifest)."""
    run = as_run(run_dir)
    manifest = read_manifest(fig_dir)
    if figures == "auto":
        figures = manifest is None or manifest.get("inputs") != input_fingerprint(run)
    if figures:
        return list(make_figures(run.path, fig_dir, epochs, floor=floor))
    if manifest is not None:
        return [fig_dir / n for names in manifest["written"].values() for n in names if (fig_dir / n).is_file()]
    return sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []


def write_report(run_dirs, out_dir=None, *, figures="auto", epochs=None,
                 floor: float = DOMINANCE_F_FLOOR) -> dict:
    """Write report.md, report.html (self-contained: figures embedded) and report.json.

    ``run_dirs``: one run directory (report in RUN/ unless ``out_dir``; figures in RUN/figures/,
    or ``out_dir``/figures/ when ``out_dir`` is given) or several (a combined report, see
    ``write_combined_report``). ``figures``: True redraws them, False embeds those already
    there, 'auto' (default) redraws only when they were not drawn from the current result files.
    ``epochs`` selects the per-checkpoint figures when they are drawn.
    Returns {"markdown", "html", "json": paths, "verdicts": the plain data}.
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
    blocks = _header(f"Loss-landscape report: {data['name']}") + _run_blocks(data, figs, 1, out)
    return _write_all(out, blocks, f"landscape report: {data['name']}", data)


def write_combined_report(out_dir, run_dirs, *, figures="auto", epochs=None,
                          floor: float = DOMINANCE_F_FLOOR) -> dict:
    """One report over several runs (the reproduction's cells): a summary table of verdicts,
    then a section per cell. Written to ``out_dir`` (default: the runs' common parent); each
    cell's figures stay in its own RUN/figures/ (``figures`` as in ``write_report``)."""
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
        name = data["name"]
        k = 2
        while name in names:
            name, k = f"{data['name']}_{k}", k + 1
        names.add(name)
        cells.append((name, r, data))
    blocks = _header("Loss-landscape report: " + ", ".join(n for n, _, _ in cells))
    blocks.append(("h", 2, "Summary"))
    titles = [c["title"] for c in cells[0][2]["claims"]]
    blocks.append(("table", ["cell"] + titles,
                   [[name] + [f"{c['verdict']}: {c['summary']}" for c in data["claims"]] for name, _, data in cells]))
    for name, r, data in cells:
        figs = _figures_for(r, as_run(r).figures, figures, epochs, floor)
        blocks.append(("h", 2, f"Cell {name}"))
        blocks += _run_blocks(data, figs, 2, out)
    combined = {"cells": [{"cell": name, **data} for name, _, data in cells]}
    return _write_all(out, blocks, "landscape combined report", combined)


def _write_all(out: Path, blocks: list[tuple], title: str, data: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    md, page, js = out / "report.md", out / "report.html", out / "report.json"
    _write_text(md, render_markdown(blocks))
    _write_text(page, render_html(blocks, title))
    atomic_write_json(data, js)
    for path in (md, page, js):
        readable(path)
    return {"markdown": md, "html": page, "json": js, "verdicts": data}
