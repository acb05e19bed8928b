"""The sweep's numbers turned into slopes and judgements: width, sample size, depth, and a common loss level.

Every slope is ``scaling.fit_slope`` (one least-squares slope of log q on log x over every
(x, seed) point, its 95 % interval the union of a seed bootstrap and a t interval) and every
judgement ``scaling.judge`` of that interval against ``scaling.predictions(lr_scaling)``: the
figures draw the same stored slope (its ``width_values``/``centers`` and the line
exp(intercept)·x^slope), so a table and a figure never disagree.

Groups: width slopes are fitted per (depth, sample size); a quantity's overall verdict across
groups (``overall``) ignores uninformative groups, is 'disagrees' when any group's interval lies
wholly outside the prediction (the theorems claim every depth, so one clean contradiction is
one), 'agrees' when every informative group agrees, 'inconclusive' otherwise, and
'uninformative' when no group has a slope.

Common loss level (``common_level``): within a group the cells stop at different steps and
losses, so the end-of-training values mix width with progress. Each group's level is
F* = √(F_lo·F_hi), the geometric middle of the band every cell's dense track crosses:
F_hi = the smallest initial F over the group's cells, F_lo = the largest final F; at F* each
cell's ‖∇F‖²/F, steps, distance travelled, largest flip fraction and relative spectral movement
are read at the first crossing of F* (linear in log F between the two samples around it; the
dense track for the first two — or the analyzed checkpoints when training kept no track — and the
checkpoints for the rest). No level (NaN, with ``reason``) when the band is empty: some cell ends
above another's start; the *_at_F quantities of that group are then not measured.

Depth fits (``depth_fits``): a power law and an exponential in L; the one with the smaller rms
residual fits better only when the two rms differ by more than ``RMS_TOLERANCE`` (relative to the
larger), else the two are 'indistinguishable' and the prediction (polynomial) is not decided.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import LandscapeError
from .scaling import Prediction, by_seed, fit_slope, judge, predictions
from .text import fmt

QUANTITIES = {  # name: (label, the prediction it is judged against: a key of scaling.PREDICTIONS)
    "c": ("c = min ‖∇F‖²/F along training", "c"),
    "a_over_sqrt_F": ("max a/√F (semi-smoothness probes; an unresolved kink at its bound)", "a_over_sqrt_F"),
    "lambda_ratio": ("|λ_min/λ_max| at the end of training", "lambda_ratio"),
    "travelled": ("‖θ_T − θ_0‖/‖θ_0‖", "travelled"),
    "ntk_drift": ("NTK drift ‖K_T − K_0‖_F/‖K_0‖_F", "ntk_drift"),
    "interpolation_bump": ("largest bump init → final / F(init)", "interpolation_bump"),
    "steps": ("steps to the target loss", "steps"),
    "activation_flips": ("largest fraction of ReLU signs flipped θ_0 → θ_T", "activation_flips"),
    "spectral_movement": ("largest ‖W_l(T) − W_l(0)‖₂/‖W_l(0)‖₂", "spectral_movement"),
    "ntk_min_eigenvalue": ("λ_min(K_0) of the NTK on the training points", "ntk_min_eigenvalue"),
    "c_at_F": ("‖∇F‖²/F at the common loss F*", "c"),
    "steps_to_F": ("steps to the common loss F*", "steps"),
    "travelled_at_F": ("‖θ − θ_0‖/‖θ_0‖ at F*", "travelled"),
    "flips_at_F": ("largest flip fraction at F*", "activation_flips"),
    "movement_at_F": ("largest relative spectral movement at F*", "spectral_movement"),
}
SIZE_PREDICTIONS = {  # sample-size axis: slope of q against n
    "c_lemma": ("c·d/m over the hidden layers (sum loss)", Prediction(None, -2.0, "at_least", derivation=(
        "gradient lemma: ‖∇F‖² ≥ Ω(δm/(dn²))·F with the paper's sum loss F, so c·d/m ≥ const·δ/n²: "
        "slope in n at least −2 (a lower bound: a shallower fall agrees)"))),
    "steps": ("steps to the target loss", None),
}
RMS_TOLERANCE = 0.10  # two fits whose rms residuals differ by at most 10 % of the larger are indistinguishable
DEPTH_QUANTITIES = {"grad_norm_init": "‖∇F(θ_0)‖", "steps": "steps to the target loss"}
DEPTH_DERIVATION = ("the gradient lemmas bound ‖∇F(θ_0)‖² between poly(L)-factors of m·F/d, and the theorem's "
                    "step count is T = poly(n, L)/δ²·log(1/ε): polynomial in L, never exponential")


def _slope_record(slope, axis: str = "widths") -> dict:
    """A stored Slope with its description; ``axis``: the plural noun of what it was fitted against."""
    return {**dataclasses.asdict(slope), "describe": slope.describe(axis), "axis": axis}


def better_fit(rms: dict[str, float], tolerance: float = RMS_TOLERANCE) -> str:
    """The fit ('polynomial', 'exponential') whose rms residual is smaller by more than ``tolerance``
    of the larger rms, else 'indistinguishable'."""
    (a, ra), (b, rb) = sorted(rms.items(), key=lambda kv: kv[1])
    return "indistinguishable" if rb - ra <= tolerance * rb else a


def group_label(depth, n, multiple_n: bool) -> str:
    return f"depth {depth}" + (f", n {n}" if multiple_n else "")


def overall(judgements: list[str]) -> str:
    """The verdict across groups (see the module doc)."""
    informative = [j for j in judgements if j != "uninformative"]
    if not informative:
        return "uninformative"
    if "disagrees" in informative:
        return "disagrees"
    return "agrees" if all(j == "agrees" for j in informative) else "inconclusive"


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["depth"], r.get("n")), []).append(r)
    return out


def width_fits(rows: list[dict], seeds: list, lr_scaling: str) -> dict:
    """Per quantity: its prediction, and per (depth, n) group the slope against width and its judgement."""
    table = predictions(lr_scaling)
    groups = _groups(rows)
    multiple_n = len({n for _, n in groups}) > 1
    out = {}
    for q, (label, key) in QUANTITIES.items():
        prediction = table[key]
        per_group = {}
        for (depth, n), sel in groups.items():
            widths = sorted({r["width"] for r in sel})
            slope = fit_slope(widths, by_seed(sel, q, widths, seeds))
            sign = prediction.sign()
            per_group[group_label(depth, n, multiple_n)] = {
                "depth": depth, "n": n, "slope": _slope_record(slope), "judgement": judge(slope, prediction),
                "sign_judgement": judge(slope, sign) if sign is not None else "—"}
        out[q] = {"label": label, "prediction_of": key, "predicted": prediction.describe(),
                  "derivation": prediction.derivation, "band": list(prediction.band()[:2]),
                  "groups": per_group, "judgement": overall([g["judgement"] for g in per_group.values()])}
    return out


def size_fits(rows: list[dict], seeds: list) -> dict:
    """The sample-size axis, per (depth, width) with three or more sizes: slopes against n."""
    out = {}
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("n") is not None:
            by.setdefault((r["depth"], r["width"]), []).append(r)
    for (depth, width), sel in by.items():
        sizes = sorted({r["n"] for r in sel})
        if len(sizes) < 3:
            continue
        values = [{**r, "c_lemma": (r.get("lemma") or {}).get("c_scaled")} for r in sel]
        entry = {}
        for q, (label, prediction) in SIZE_PREDICTIONS.items():
            slope = fit_slope(sizes, by_seed(values, q, sizes, seeds, width_key="n"))
            entry[q] = {"label": label, "slope": _slope_record(slope, "sizes"),
                        "predicted": prediction.describe() if prediction else "no exponent at a constant step",
                        "derivation": prediction.derivation if prediction else (
                            "T = poly(n, L)/δ²·log(1/ε) holds at the theorem's η ∝ 1/poly(n); at a constant η "
                            "no exponent is implied: reported, not judged"),
                        "judgement": judge(slope, prediction) if prediction else "—"}
        out[f"depth {depth}, width {width:g}"] = {"depth": depth, "width": width, "sizes": sizes, **entry}
    return out


def depth_fits(rows: list[dict], seeds: list) -> dict:
    """The depth axis, per (width, n) with three or more depths: q ∝ L^p and q ∝ e^{rL}, each with its
    interval (fit_slope against L and against e^L), and which fits the pooled points better."""
    from .theory import depth_scaling_fit

    out = {}
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["width"], r.get("n")), []).append(r)
    for (width, n), sel in by.items():
        depths = sorted({r["depth"] for r in sel})
        if len(depths) < 3:
            continue
        entry = {"width": width, "n": n, "depths": depths}
        for q, label in DEPTH_QUANTITIES.items():
            values = by_seed(sel, q, depths, seeds, width_key="depth")
            power = fit_slope(depths, values)
            rate = fit_slope(np.exp(np.asarray(depths, float)), values)
            pts = [(r["depth"], r[q]) for r in sel if r.get(q) is not None and math.isfinite(r[q]) and r[q] > 0]
            try:
                fit = depth_scaling_fit([d for d, _ in pts], [v for _, v in pts])
                rms = {"polynomial": fit.polynomial.rms, "exponential": fit.exponential.rms}
                better = better_fit(rms)
            except LandscapeError as exc:
                better, rms = f"no fit: {exc}", {}
            entry[q] = {"label": label, "power": _slope_record(power, "depths"),
                        "rate": _slope_record(rate, "depths"), "better": better, "rms": rms,
                        "tolerance": RMS_TOLERANCE, "derivation": DEPTH_DERIVATION,
                        "judgement": {"polynomial": "agrees", "exponential": "disagrees"}.get(better, "inconclusive")
                        if rms else "uninformative"}
        out[f"width {width:g}" + (f", n {n}" if n is not None else "")] = entry
    return out


# ---------------------------------------------------------------------------------------------- common loss
def at_level(F, q, level: float) -> float:
    """q where F first falls to ``level``: linear in log F between the samples either side (NaN if never,
    or where F or q is not finite there). A sequence starting at or below the level gives its first q."""
    F, q = np.asarray(F, float), np.asarray(q, float)
    if not (math.isfinite(level) and level > 0) or len(F) == 0:
        return float("nan")
    below = np.flatnonzero(np.isfinite(F) & (F <= level))
    if len(below) == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(q[0])
    f0, f1 = F[i - 1], F[i]
    if not (f0 > 0 and f1 > 0 and math.isfinite(q[i - 1]) and math.isfinite(q[i])):
        return float("nan")
    t = 1.0 if f0 == f1 else (math.log(f0) - math.log(level)) / (math.log(f0) - math.log(f1))
    return float(q[i - 1] + t * (q[i] - q[i - 1]))


def _dense(path: dict) -> dict:
    """The dense track (step, F, ‖∇F‖²) with the initial point (the checkpoint of epoch 0) in front;
    the analyzed checkpoints themselves when training kept no track."""
    if not (path.get("track") or {}).get("F"):
        F, c = path.get("F") or [], path.get("c") or []
        return {"step": list(path.get("step") or []), "F": list(F), "grad_sq": [a * b for a, b in zip(c, F)]}
    track = path["track"]
    F0, c0 = (path["F"][0], path["c"][0]) if path.get("epoch") and path["epoch"][0] == 0 else (None, None)
    head = ([0.0], [F0], [c0 * F0]) if F0 is not None else ([], [], [])
    return {"step": head[0] + list(track["step"]), "F": head[1] + list(track["F"]),
            "grad_sq": head[2] + list(track["grad_sq"])}


def common_level(rows: list[dict]) -> dict:
    """Per (depth, n) group: F* (module doc) and each cell's quantities at F*, added to its row."""
    out = {}
    groups = _groups(rows)
    multiple_n = len({n for _, n in groups}) > 1
    for (depth, n), sel in groups.items():
        dense = [_dense(r.get("path") or {}) for r in sel]
        starts = [d["F"][0] for d in dense if d["F"]]
        ends = [min(d["F"]) for d in dense if d["F"]]
        lo, hi = (max(ends), min(starts)) if len(starts) == len(sel) and sel else (math.nan, math.nan)
        level = math.sqrt(lo * hi) if lo > 0 and hi > lo else math.nan
        reason = "" if math.isfinite(level) else no_level_reason(lo, hi)
        for r, d in zip(sel, dense):
            path = r.get("path") or {}
            ratio = [g / f if f > 0 else math.nan for g, f in zip(d["grad_sq"], d["F"])]
            r["c_at_F"] = at_level(d["F"], ratio, level)
            r["steps_to_F"] = at_level(d["F"], d["step"], level)
            for q, key in (("travelled_at_F", "travelled"), ("flips_at_F", "activation_flips"),
                           ("movement_at_F", "spectral_movement")):
                r[q] = at_level(path.get("F", []), path[key], level) if key in path else math.nan
        out[group_label(depth, n, multiple_n)] = {"F_star": level, "F_lo": lo, "F_hi": hi, "reason": reason}
    return out


def no_level_reason(lo: float, hi: float) -> str:
    """Why a group has no common loss level F* (the band [F_lo, F_hi] every cell crosses is empty)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no common loss level (a cell without an F along training)"
    if lo <= 0:
        return f"no common loss level (a cell reached F = {fmt(lo, 4)})"
    return f"no common loss level (largest final F {fmt(lo, 4)} ≥ smallest initial F {fmt(hi, 4)})"


def fit_summary(config: dict, rows: list[dict]) -> dict:
    """sweep.json: the configuration, the cells (with their paths), the common loss levels, the width
    fits with predictions, the sample-size and depth axes, and the learning rate of each cell."""
    seeds = config["seeds"]
    level = common_level(rows)
    return {"config": config, "cells": rows, "common_level": level,
            "quantities": width_fits(rows, seeds, config.get("lr_scaling", "constant")),
            "sizes": size_fits(rows, seeds), "depths": depth_fits(rows, seeds),
            "lr": {f"{w:g}": sorted({r["lr"] for r in rows if r["width"] == w and r.get("lr") is not None})
                   for w in sorted({r["width"] for r in rows})}}


def compare_sweeps(summary: dict, other: dict, other_name: str) -> dict:
    """Which width verdicts change between this sweep and ``other`` (e.g. the same grid at the other
    learning-rate scaling): per quantity both verdicts and whether they differ."""
    rows = {}
    for q, info in summary["quantities"].items():
        theirs = (other.get("quantities") or {}).get(q)
        if theirs is None:
            continue
        rows[q] = {"label": info["label"], "this": info["judgement"], "other": theirs.get("judgement"),
                   "changed": info["judgement"] != theirs.get("judgement")}
    return {"other": other_name, "lr_scaling": (other.get("config") or {}).get("lr_scaling", "constant"),
            "quantities": rows}
