"""The paper's claims judged on a run's stored results: numbers, thresholds, margins; no drawing.

Claims and thresholds (named constants below; README "Verdicts" says why each is what it is).
Each verdict is judged on a conservative statistic over the analysis' repeats, shows the spread
and its margin to the threshold, and is 'inconclusive' when it rests on an artefact the run can
detect (lagging batch-norm statistics, an unresolved eigenpair):

* gradient dominance: c = min ‖∇F‖²/F over the checkpoints of every repeat and the dense
  track, judged in the PL regime F > DOMINANCE_F_FLOOR; holds when c ≥ DOMINANCE_MIN_C (a track
  made with the lagging running statistics of older versions is shown, not judged); c over all
  points and the exponent p of ‖∇F‖² ∝ F^p (trajectory.gradient_exponent) are reported beside it;
* semi-smoothness: the tightest envelope |r(t)| ≤ a·|t| + b·t² (measure.fit_envelope) with
  a/‖∇F‖ ≤ SMOOTHNESS_MAX_A_OVER_GRAD_NORM at every checkpoint, direction and repeat, on every
  resolved fit (measure.fit_resolution; the kinks cost little of a gradient step's decrease), an a
  below the probe's resolution (measure.kink_resolved) counting as its bound a_resolution/‖∇F‖;
  fails on a resolved a/‖∇F‖ over the limit, inconclusive when only a bound is over it;
  a/√F and each envelope's looseness beside it;
* second-order help: per checkpoint, the extra decrease of the most negative curvature direction
  beyond its controls' (random directions and the top eigenvector, all ⊥ ∇F, same searches), in
  units of d_grad, mean ± sd over repeats against SECOND_ORDER_MAX_EXTRA_FRACTION;
* monotone interpolation: the largest bump of the train loss along init → final is
  ≤ INTERPOLATION_MAX_BUMP_FRACTION · F(init);
* star-convexity along the trajectory: ⟨∇F_B(θ_t), θ_t − θ_T⟩ ≥ F_B(θ_t) − F_B(θ_T), F_B the
  loss with the batch-norm statistics computed at θ itself (one function of θ), beyond the rounding tolerance of the F difference, at
  every analyzed checkpoint in most repeats (trajectory/), with the PL* ratios and the distance
  travelled beside it;
* the Hessian: extreme eigenvalues, the gradient's share in the top-k eigenspace, and the
  eigenvalue density's negative mass and eigenvalues above λ_max/10 (reported, no threshold);
* accuracy reached: the final train/test accuracies of log.jsonl (no threshold).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

from .measure import PROBE_MIN_DECADES, PROBE_MIN_POINTS
from .measurements import REGISTRY
from .readers import (analyzed_epochs, as_run, load_curvature, load_dominance, load_interpolations, load_log, load_probes,
                      load_second_order, load_spectrum, load_surface, load_track, load_trajectory, read_config,
                      track_uses_statistics_of_theta)
from .results import RunDir
from .text import fmt, run_title, settings_of
from .trajectory import gradient_exponent

DOMINANCE_F_FLOOR = 0.01                     # the PL form is judged on points with F above it (the converged
                                             # regime below is reported: c over all points, exponent p)
DOMINANCE_P_LEVEL = 0.95                     # confidence level of the exponent p of ‖∇F‖² ∝ F^p
SECOND_ORDER_MAX_EXTRA_FRACTION = 0.10       # 'little help' when the extra beyond the controls ≤ this · d_grad
DOMINANCE_MIN_C = 1e-3                       # dominance holds when c (min over repeats) is at least this
SMOOTHNESS_MAX_A_OVER_GRAD_NORM = 0.1        # semi-smoothness holds when max a/‖∇F‖ is at most this
SMOOTHNESS_MAX_A_OVER_SQRT_F = 0.1           # the theorem's form a/√F: reported beside it, not judged
INTERPOLATION_MAX_BUMP_FRACTION = 1e-3       # monotone enough when largest bump ≤ this · F(init)
# artefacts the run can detect; a verdict that rests on one is 'inconclusive'
BN_LAG_MAX = 0.25                 # |F(checkpoint statistics) − F(statistics of θ)| / F(statistics of θ)
EIGEN_MAX_RELATIVE_RESIDUAL = 0.1  # an eigenpair with ‖Hv − λv‖ > this · |λ| is not resolved

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED, MEASURED = "holds", "fails", "inconclusive", "not measured", "measured"
CLAIMS = ("gradient_dominance", "semi_smoothness", "second_order", "interpolation", "star_convexity", "spectrum",
          "accuracy")




# ============================================================================ helpers
def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def spread(values) -> dict:
    """Mean, standard deviation (ddof 1; 0 for one value), min, max and count of the finite values."""
    v = np.asarray(_finite(values), float)
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def spread_text(st: dict, digits: int = 3, unit: str = "repeats") -> str:
    """'1.2 ± 0.1 (min 1.1, max 1.3; 3 repeats)', or the single value."""
    if st["n"] <= 1:
        return fmt(st["mean"], digits)
    return (f"{fmt(st['mean'], digits)} ± {fmt(st['std'], 2)} (min {fmt(st['min'], digits)}, "
            f"max {fmt(st['max'], digits)}; {st['n']} {unit})")


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


@dataclass
class Claim:
    """One claim judged on one run: its verdict, the numbers behind it and where they come from.

    ``rows`` is the detail table, one dict per row keyed by column name (the columns are the
    first row's keys, in order); ``sources`` are the result files it was read from.
    """

    id: str
    title: str
    verdict: str
    summary: str
    threshold: str
    numbers: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    note: str = ""

    def __post_init__(self):
        self.sources = [str(s) for s in self.sources]

    @property
    def columns(self) -> list[str]:
        """The detail table's column names."""
        return list(self.rows[0]) if self.rows else []

    def to_json(self) -> dict:
        """Plain data (report.json), with the columns spelled out."""
        return {**asdict(self), "columns": self.columns}


@dataclass
class RunVerdicts:
    """Every claim on one run, with what the run is and the thresholds they were judged by."""

    run: str
    name: str
    title: str
    train: dict
    data: dict
    analyzed_epochs: list[int]
    thresholds: dict
    claims: list[Claim]

    def claim(self, claim_id: str) -> Claim:
        """The claim with id ``claim_id`` (one of CLAIMS)."""
        return next(c for c in self.claims if c.id == claim_id)

    def to_json(self) -> dict:
        """Plain data (report.json)."""
        return {**{k: v for k, v in asdict(self).items() if k != "claims"},
                "claims": [c.to_json() for c in self.claims]}


# ============================================================================ the claims
def dominance_verdict(run: RunDir, floor: float = DOMINANCE_F_FLOOR) -> Claim:
    """‖∇F‖² ≥ c·F judged in the PL regime F > floor (worst repeat, margin to DOMINANCE_MIN_C), beside
    c over every point and the exponent p of ‖∇F‖² ∝ F^p (all points, above and at/below the floor)."""
    title = "Gradient dominance: ‖∇F‖² ≥ c·F"
    threshold = (f"holds when c ≥ {fmt(DOMINANCE_MIN_C)}, c = min ‖∇F‖²/F over the checkpoints of every repeat and "
                 f"the dense track on the points with F > {fmt(floor)} (the PL regime); c over all points and the "
                 f"exponent p of ‖∇F‖² ∝ F^p (log-log least squares, {fmt(100 * DOMINANCE_P_LEVEL)} % t-interval) "
                 f"are reported beside it")
    points = load_dominance(run, repeats=True)
    track = load_track(run)
    if not points and not track:
        return Claim("gradient_dominance", title, NOT_MEASURED, f"no {REGISTRY['dominance'].file} and no track.jsonl",
                      threshold, {}, {})
    track_judged = track_uses_statistics_of_theta(track)
    numbers = _dominance_numbers(points, track, track_judged, floor)
    c = numbers["c"]
    settings = settings_of([p["context"] for p in points], [p["epoch"] for p in points])
    if track:
        settings["track"] = (f"{len(track)} points during training on {int(track[0].get('examples', 0)) or '?'} "
                             f"training examples, " + ("BN statistics of θ" if track_judged else
                                                       "running BN statistics of the moment (not judged)"))
    lagging = bn_lag(points)
    numbers["bn_lag_epochs"] = [e for e, *_ in lagging]
    note = ""
    if not math.isfinite(c):
        verdict = NOT_MEASURED
        summary = (f"no point with F > {fmt(floor)}, the floor of the PL regime (every F is at or below it, in the "
                   f"converged regime); "
                   + _dominance_all_text(numbers, floor))
    else:
        verdict = HOLDS if c >= DOMINANCE_MIN_C else FAILS
        summary = _dominance_summary(numbers, track, track_judged, floor)
        if lagging:
            verdict = INCONCLUSIVE
            e, lag, fc, fr = max(lagging, key=lambda x: x[1])
            note = (f"the checkpoint's batch-norm statistics lag its weights at epoch(s) "
                    f"{', '.join(str(x[0]) for x in lagging)} (epoch {e}: F = {fmt(fc, 4)} with them, {fmt(fr, 4)} "
                    f"with the statistics of θ): rerun the analysis with --bn-stats recompute")
    rows = [{"epoch": p["epoch"], "repeat": p["repeat"], "F": p["F"],
             "F (checkpoint BN statistics)": p.get("F_checkpoint_stats"), "‖∇F‖²": p["grad_sq"],
             "‖∇F‖²/F": p["ratio"], "‖∇F‖² hidden": p["grad_sq_hidden"], "ratio hidden": p["ratio_hidden"],
             "regime": f"PL (F > {fmt(floor)})" if p["F"] > floor else "converged (not judged)"} for p in points]
    return Claim("gradient_dominance", title, verdict, summary, threshold, numbers, settings, rows,
                 [p["path"] for p in points] + ([run.track] if track else []), note)


def _dominance_numbers(points: list[dict], track: list[dict], track_judged: bool, floor: float) -> dict:
    """c in the PL regime (per repeat, track, hidden layers), c over every point, and the exponent fits."""
    repeats = sorted({p["repeat"] for p in points})

    def column(records, key):
        return [r[key] for r in records]
    per = {r: envelope_constant(*(column([p for p in points if p["repeat"] == r], k) for k in ("F", "grad_sq")), floor)
           for r in repeats}
    per_h = {r: envelope_constant(*(column([p for p in points if p["repeat"] == r], k) for k in ("F", "grad_sq_hidden")),
                                  floor) for r in repeats}
    tr = envelope_constant(column(track, "F"), column(track, "grad_sq"), floor)
    c_spread, h_spread = spread(per[r]["c"] for r in repeats), spread(per_h[r]["c"] for r in repeats)
    c, c_hidden = c_spread["min"], h_spread["min"]
    judged = points + (track if track_judged else [])
    if track_judged:  # the dense track counts too, once its F is the loss of the network at θ
        tr_h = envelope_constant(column(track, "F"), column(track, "grad_sq_hidden"), floor)
        c = min(_finite([c, tr["c"]]), default=float("nan"))
        c_hidden = min(_finite([c_hidden, tr_h["c"]]), default=float("nan"))
    F, G = np.array(column(judged, "F"), float), np.array(column(judged, "grad_sq"), float)
    every = envelope_constant(F, G, 0.0)
    return {"c": c, "c_spread": c_spread, "c_hidden": c_hidden, "c_hidden_spread": h_spread,
            "c_track": tr["c"], "threshold": DOMINANCE_MIN_C, "margin": c / DOMINANCE_MIN_C, "floor": floor,
            "c_all": every["c"], "c_all_at_F": every["at_F"], "points_all": every["points"],
            "p_all": gradient_exponent(F, G, DOMINANCE_P_LEVEL),
            "p_pl_regime": gradient_exponent(F[F > floor], G[F > floor], DOMINANCE_P_LEVEL),
            "p_converged": gradient_exponent(F[F <= floor], G[F <= floor], DOMINANCE_P_LEVEL),
            "checkpoints_used": sum(per[r]["points"] for r in repeats),
            "checkpoints_total": sum(per[r]["total"] for r in repeats),
            "track_used": tr["points"], "track_total": tr["total"], "repeats": len(repeats)}


def _exponent_text(fit: dict) -> str:
    """'p = 1.98 [1.9, 2.1] (40 points, F 1e-4 to 2)' or 'p not fitted (why)'."""
    if not math.isfinite(fit["p"]):
        return f"p not fitted ({fit['reason']})"
    lo, hi = fit["F_range"]
    return (f"p = {fmt(fit['p'], 3)} [{fmt(fit['low'], 3)}, {fmt(fit['high'], 3)}] "
            f"({fit['n']} points, F {fmt(lo, 2)} to {fmt(hi, 2)})")


def _dominance_all_text(n: dict, floor: float) -> str:
    """c over every point and where the PL form collapses, in words."""
    text = (f"over all {n['points_all']} points c = {fmt(n['c_all'], 4)} (at F = {fmt(n['c_all_at_F'], 3)}); "
            f"‖∇F‖² ∝ F^p: all points {_exponent_text(n['p_all'])}; F > {fmt(floor)}: "
            f"{_exponent_text(n['p_pl_regime'])}; F ≤ {fmt(floor)}: {_exponent_text(n['p_converged'])}")
    low = n["p_converged"] if math.isfinite(n["p_converged"]["p"]) else n["p_all"]
    if math.isfinite(low["p"]) and low["low"] > 1:
        text += (f". The PL form collapses toward F → 0: with p > 1 the ratio ‖∇F‖²/F ∝ F^(p−1) falls with F, so no "
                 f"c > 0 holds down to the minimum (cross-entropy near interpolation gives p ≈ 2: ‖∇F‖ and F both "
                 f"shrink with the margins); it is judged only on F > {fmt(floor)}")
    return text


def _dominance_summary(n: dict, track: list[dict], track_judged: bool, floor: float) -> str:
    return (f"PL regime F > {fmt(floor)}: c = {fmt(n['c'], 4)}, {margin_text(n['c'], DOMINANCE_MIN_C, upper=False)}; "
            + (f"checkpoints, per repeat {spread_text(n['c_spread'])}; " if n["c_spread"]["n"] else "")
            + (f"dense track {'' if track_judged else '(lagging statistics, not judged) '}"
               f"c = {fmt(n['c_track'], 4)}; " if track else "")
            + f"hidden layers c = {fmt(n['c_hidden'], 4)}; " + _dominance_all_text(n, floor))


def _kink(p: dict, over: str = "grad_norm") -> tuple[float, bool]:
    """A probe's kink statistic a/‖∇F‖ (over='sqrt_F': a/√F) and whether it is a bound: the fitted a where it is
    resolved (measure.kink_resolved), else a_resolution/‖∇F‖ (measure.kink_resolution: the smallest kink its
    points could have shown), an upper bound on the kink — never 0 for a kink the probe cannot see."""
    if p["a_resolved"]:
        return p[f"a_over_{over}"], False
    return p[f"a_resolution_over_{over}"], True


def _judged(p: dict) -> bool:
    """A probe the verdict counts: its envelope fit is resolved (measure.fit_resolution: PROBE_MIN_POINTS
    distinct |t| over PROBE_MIN_DECADES, between the rounding floor and F) and its kink statistic (``_kink``) is
    defined. The envelope's looseness (rel_rms) is reported, never a gate: a bound is a bound however loose."""
    return bool(p.get("resolved")) and math.isfinite(_kink(p)[0])


def _kink_cell(p: dict, over: str | None = None) -> float | str | None:
    """A row's a (over None), a/‖∇F‖ or a/√F: the number where a is resolved, '< bound (not resolved)' where it
    is not, None where the fit itself is not measured."""
    if not p["resolved"]:
        return None
    value, bound = ((p["a"], False) if p["a_resolved"] else (p["a_resolution"], True)) if over is None \
        else _kink(p, over)
    return f"< {fmt(value, 3)} (not resolved)" if bound else value


def _probe_row(p: dict) -> dict:
    """A probe's detail row: both normalizations (bounds where a is not resolved) and the envelope's looseness;
    'not measured' with its reason."""
    span = p.get("t_range")
    return {"epoch": p["epoch"], "repeat": p["repeat"], "direction": p["name"], "F": p["F"], "‖∇F‖": p["grad_norm"],
            "a": _kink_cell(p), "b": p["b"] if p["resolved"] else None,
            "a/‖∇F‖": _kink_cell(p, "grad_norm"), "a/√F": _kink_cell(p, "sqrt_F"),
            "fit": "resolved" if p["resolved"] else f"not measured: {p['reason']}",
            "fitted |t|": p.get("distinct_t"), "|t| range": f"{fmt(span[0], 2)}–{fmt(span[1], 2)}" if span else "—",
            "looseness (rel. RMS)": p["rel_rms"] if p["resolved"] else None,
            "envelope κ": p["envelope"] if p["resolved"] else None,
            "noise floor": p["noise_floor"], "max |t|": float(np.abs(p["t"]).max())}


def _over_text(p: dict) -> str:
    (value, bound), (root, _) = _kink(p), _kink(p, "sqrt_F")
    rel = "<" if bound else "="
    return (f"epoch {p['epoch']} repeat {p['repeat']} {p['name']}: a/‖∇F‖ {rel} {fmt(value, 3)}"
            f"{' (not resolved)' if bound else ''}, a/√F {rel} {fmt(root, 3)}, {p.get('distinct_t')} fitted |t|, "
            f"looseness (rel. RMS) {fmt(p['rel_rms'], 2)}")


def _over_note(over: list[dict], bounds_over: list[dict], threshold_value: float) -> str:
    """Every resolved a/‖∇F‖ over the limit, then every bound over it (a kink that large the probe cannot resolve)."""
    parts = [f"{len(over)} probe(s) over a/‖∇F‖ = {fmt(threshold_value)}: " + "; ".join(map(_over_text, over))] \
        if over else []
    parts += [f"{len(bounds_over)} probe(s) whose a is not resolved, with a bound over {fmt(threshold_value)} (the "
              f"probe cannot resolve a kink that large): " + "; ".join(map(_over_text, bounds_over))] if bounds_over else []
    return ". ".join(parts)


def _smoothness_numbers(judged: list[dict], over: list[dict], threshold_value: float) -> dict:
    """The statistic behind the verdict: the worst resolved a/‖∇F‖ over the limit where there is one (fails),
    else the largest statistic of any probe, measured or bound; a/√F, b and the spread over repeats beside it."""
    def stat(p: dict) -> float:
        return _kink(p)[0]

    decisive = max(over or judged, key=stat)
    value, bound = _kink(decisive)
    root = max(judged, key=lambda p: _finite([_kink(p, "sqrt_F")[0]]) or [-math.inf])
    max_b = max(judged, key=lambda p: p["b"])
    repeats = sorted({p["repeat"] for p in judged})
    return {"max_a_over_grad_norm": value, "max_is_bound": bound,
            "per_repeat": spread(max(stat(p) for p in judged if p["repeat"] == r) for r in repeats),
            "at_epoch": decisive["epoch"], "direction": decisive["name"], "repeat": decisive["repeat"],
            "a_over_sqrt_F_there": _kink(decisive, "sqrt_F")[0], "max_a_over_sqrt_F": _kink(root, "sqrt_F")[0],
            "max_a_over_sqrt_F_is_bound": _kink(root, "sqrt_F")[1],
            "max_a_over_sqrt_F_at": [root["epoch"], root["repeat"], root["name"]],
            "max_resolved_a_over_grad_norm": max((stat(p) for p in judged if p["a_resolved"]), default=float("nan")),
            "max_b": max_b["b"], "max_b_epoch": max_b["epoch"], "max_b_direction": max_b["name"],
            "margin": value / threshold_value if threshold_value > 0 else float("nan"),
            "max_rel_rms": max(_finite(p["rel_rms"] for p in judged), default=float("nan"))}


def _smoothness_summary(n: dict, verdict: str, judged: int, probes: int, unresolved: int) -> str:
    """The verdict's sentence: '=' for a measured maximum, '≤' where it is a bound (``_smoothness_numbers``)."""
    rel, rel_root = ("≤" if n["max_is_bound"] else "="), ("≤" if n["max_a_over_sqrt_F_is_bound"] else "=")
    there = "<" if n["max_is_bound"] else "="
    resolved = n["max_resolved_a_over_grad_norm"]
    head = {FAILS: f"max resolved a/‖∇F‖ = {fmt(n['max_a_over_grad_norm'], 4)}",
            INCONCLUSIVE: f"max a/‖∇F‖ ≤ {fmt(n['max_a_over_grad_norm'], 4)} is only a bound (a not resolved: the "
                          f"probe cannot resolve a kink that large; "
                          + (f"resolved a/‖∇F‖ reach {fmt(resolved, 4)})" if math.isfinite(resolved)
                             else "no a is resolved)")}.get(
        verdict, f"max a/‖∇F‖ {rel} {fmt(n['max_a_over_grad_norm'], 4)}")
    return (f"{head} ({margin_text(n['max_a_over_grad_norm'], n['threshold'], upper=True)}; epoch {n['at_epoch']}, "
            f"{n['direction']}, a/√F {there} {fmt(n['a_over_sqrt_F_there'], 3)} there); {n['bounds']} of {judged} "
            f"judged probes rest on bounds (a below the probe's resolution: a/‖∇F‖ < a_resolution/‖∇F‖, "
            f"a_resolution = min |r|/|t| over the fitted steps); worst per repeat {spread_text(n['per_repeat'])}; "
            f"max a/√F {rel_root} {fmt(n['max_a_over_sqrt_F'], 4)} (epoch {n['max_a_over_sqrt_F_at'][0]}, "
            f"{n['max_a_over_sqrt_F_at'][2]}); max b = {fmt(n['max_b'], 4)}; judged on {judged} of {probes} probes "
            f"({unresolved} not measured); envelope looseness (rel. RMS of model/|r| − 1) up to "
            f"{fmt(n['max_rel_rms'], 2)}")


def smoothness_verdict(run: RunDir, threshold_value: float = SMOOTHNESS_MAX_A_OVER_GRAD_NORM) -> Claim:
    """Semi-smoothness on every resolved probe: a/‖∇F‖ where a is resolved, else its bound
    a_resolution/‖∇F‖ (``_kink``). Holds when the largest of those is ≤ the limit, fails when a resolved
    a/‖∇F‖ exceeds it, inconclusive when only a bound does (or no probe is resolved). a/√F beside it; every
    probe over the limit listed with its fitted points, every unresolved one as 'not measured'."""
    title = "Semi-smoothness: |r(t)| ≤ a·|t| + b·t² with a small next to ‖∇F‖"
    threshold = (f"holds when max a/‖∇F‖ ≤ {fmt(threshold_value)} over checkpoints and directions, worst repeat, "
                 f"of the tightest envelopes |r| ≤ a·|t| + b·t² on every resolved fit (≥ {PROBE_MIN_POINTS} distinct |t| "
                 f"over ≥ {PROBE_MIN_DECADES:g} decade with rounding floor < |r| ≤ F), an a below the probe's "
                 f"resolution counting as its bound a_resolution/‖∇F‖; fails when a resolved a/‖∇F‖ exceeds it, "
                 f"inconclusive when only a bound does; a/√F reported beside it")
    probes = [p for e in analyzed_epochs(run) for p in load_probes(run, e, repeats=True)]
    if not probes:
        return Claim("semi_smoothness", title, NOT_MEASURED, f"no {REGISTRY['probes'].file_glob()}", threshold, {}, {})
    rows = [_probe_row(p) for p in probes]
    settings = settings_of([p["context"] for p in probes], [p["epoch"] for p in probes])
    sources = [p["path"] for p in probes]
    unresolved = [p for p in probes if not p["resolved"]]
    judged = [p for p in probes if _judged(p)]
    over = [p for p in judged if not _kink(p)[1] and _kink(p)[0] > threshold_value]
    bounds_over = [p for p in judged if _kink(p)[1] and _kink(p)[0] > threshold_value]
    listed = {"over_threshold": [{"epoch": p["epoch"], "repeat": p["repeat"], "direction": p["name"],
                                  "a_over_grad_norm": _kink(p)[0], "a_over_sqrt_F": _kink(p, "sqrt_F")[0],
                                  "bound": _kink(p)[1], "points": p.get("distinct_t"), "rel_rms": p["rel_rms"]}
                                 for p in over + bounds_over],
              "not_measured": [{"epoch": p["epoch"], "repeat": p["repeat"], "direction": p["name"],
                                "reason": p["reason"]} for p in unresolved],
              "probes": len(probes), "judged": len(judged), "bounds": sum(_kink(p)[1] for p in judged),
              "threshold": threshold_value}
    over_note = _over_note(over, bounds_over, threshold_value)
    if not judged:
        return Claim("semi_smoothness", title, INCONCLUSIVE,
                     f"no probe has a resolved fit ({len(unresolved)} of {len(probes)} not measured)",
                     threshold, listed, settings, rows, sources, over_note)
    numbers = {**listed, **_smoothness_numbers(judged, over, threshold_value)}
    value = numbers["max_a_over_grad_norm"]
    verdict = FAILS if over else (INCONCLUSIVE if value > threshold_value else HOLDS)
    summary = _smoothness_summary(numbers, verdict, len(judged), len(probes), len(unresolved))
    return Claim("semi_smoothness", title, verdict, summary, threshold, numbers, settings, rows, sources, over_note)


def _upper_fraction(rec: dict) -> float | None:
    """extra/d_grad of one direction, or its upper bound where the search could not resolve it
    (an extra below F's rounding floor), or None where it is undefined (d_grad unresolved)."""
    v = rec["extra_fraction"]
    if math.isfinite(v):
        return float(v)
    bound = rec["unresolved"].get("extra_fraction", {})
    return bound.get("bound") if bound.get("side") == "below" else None


def attributable_extra(test: dict) -> dict | None:
    """The extra decrease of the most negative direction beyond its controls', in units of d_grad:
    {'neg', 'controls' (name → value), 'random_max', 'top', 'control_max', 'attributable' = neg −
    control_max}, or None where undefined (no controls, or d_grad not resolved). An unresolved
    extra counts as its bound for the most negative direction and as 0 for a control: both err
    towards help, against the claim of little help."""
    neg = _upper_fraction(test)
    if neg is None or not test.get("controls"):
        return None
    controls = {}
    for name, c in test["controls"].items():
        value = _upper_fraction(c)
        if value is None:
            return None
        controls[name] = value if math.isfinite(c["extra_fraction"]) else 0.0
    random = [v for n, v in controls.items() if test["controls"][n]["kind"] == "random"]
    top = controls.get("top")
    control_max = max(controls.values())
    return {"neg": neg, "controls": controls, "random_max": max(random) if random else float("nan"),
            "top": float("nan") if top is None else top, "control_max": control_max,
            "attributable": neg - control_max}


def _values_text(tests: list[dict], key: str, digits: int = 3) -> str:
    """The spread of a stored number over repeats, or 'not resolved (< bound)' where it is unresolved."""
    values = [t[key] for t in tests if math.isfinite(t[key])]
    bounds = [t["unresolved"][key] for t in tests if key in t["unresolved"]]
    parts = [spread_text(spread(values), digits)] if values else []
    if bounds:
        below = [b["bound"] for b in bounds if b["side"] == "below" and b["bound"] is not None]
        above = [b["bound"] for b in bounds if b["side"] == "above"]
        text = ("not resolved" + (f" (< {fmt(max(below), 2)})" if below else "")
                + (f" (≥ {fmt(min(above), 2)})" if above else ""))
        parts.append(text if not values else f"{len(bounds)} {text}")
    return "; ".join(parts) or "—"


def _second_order_row(epoch: int, here: list[dict], fraction: float) -> dict:
    """One checkpoint: the decreases, the extras of y and of the controls, and the attributable help."""
    att = [x for t in here if (x := attributable_extra(t)) is not None]
    a = spread(x["attributable"] for x in att)
    if not a["n"]:
        status = "not judged"
    elif a["mean"] - a["std"] > fraction:
        status = "helps"
    elif a["mean"] + a["std"] <= fraction:
        status = "little help"
    else:
        status = "within the spread"
    return {"epoch": epoch, "repeats": len(here), "F": spread(t["F"] for t in here)["mean"],
            "d_grad": _values_text(here, "d_grad", 4), "d_curv": _values_text(here, "d_curv", 4),
            "extra / d_grad, most negative": spread_text(spread(x["neg"] for x in att)) if att else "—",
            "random controls (max of each repeat)": spread_text(spread(x["random_max"] for x in att)) if att else "—",
            "top eigenvector control": spread_text(spread(x["top"] for x in att)) if att else "—",
            "attributable (most negative − max control)": spread_text(a) if att else "—",
            "attributable mean": a["mean"], "attributable sd": a["std"], "status": status}


def second_order_verdict(run: RunDir, fraction: float = SECOND_ORDER_MAX_EXTRA_FRACTION) -> Claim:
    """Little help from negative curvature: per checkpoint, the extra decrease of the most negative
    direction beyond that of its controls, over repeats, against the limit."""
    title = "Second-order information gives little help (negative curvature vs gradient, against controls)"
    threshold = (f"holds when, at every checkpoint, the help attributable to negative curvature — "
                 f"(d_plane − d_grad)/d_grad of the most negative direction minus the largest of its controls' "
                 f"(random directions ⊥ ∇F, the top eigenvector ⊥ ∇F; the same searches) — has mean + sd over "
                 f"repeats ≤ {fmt(fraction)}; fails where mean − sd > {fmt(fraction)}; between: inconclusive "
                 f"({REGISTRY['second_order'].file}: line searches and a local search in the plane, no grid)")
    tests = load_second_order(run)
    if not tests:
        return Claim("second_order", title, NOT_MEASURED, f"no {REGISTRY['second_order'].file}", threshold, {}, {})
    epochs = sorted({t["epoch"] for t in tests})
    rows = [_second_order_row(e, [t for t in tests if t["epoch"] == e], fraction) for e in epochs]
    named = {st: [f"epoch {r['epoch']} (F = {fmt(r['F'], 3)})" for r in rows if r["status"] == st]
             for st in ("helps", "little help", "within the spread", "not judged")}
    judged = [r for r in rows if r["status"] != "not judged"]
    worst = max(judged, key=lambda r: r["attributable mean"], default=None)
    unresolved = [t for t in tests if not _eigen_resolved(t)]
    numbers = {"fraction": fraction, "checkpoints": len(epochs),
               "failing_epochs": [r["epoch"] for r in rows if r["status"] == "helps"],
               "holding_epochs": [r["epoch"] for r in rows if r["status"] == "little help"],
               "unclear_epochs": [r["epoch"] for r in rows if r["status"] == "within the spread"],
               "unjudged_epochs": [r["epoch"] for r in rows if r["status"] == "not judged"],
               "worst_attributable": worst["attributable mean"] if worst else float("nan"),
               "worst_attributable_sd": worst["attributable sd"] if worst else float("nan"),
               "worst_epoch": worst["epoch"] if worst else None,
               "margin": worst["attributable mean"] / fraction if worst and fraction > 0 else float("nan"),
               "evaluations": spread(t["evaluations"] for t in tests),
               "unresolved_eigenpairs": [[t["epoch"], t["repeat"]] for t in unresolved]}
    unclear = named["within the spread"] or named["not judged"]
    verdict = FAILS if named["helps"] else INCONCLUSIVE if unclear else HOLDS
    summary = "; ".join(f"{st}: {', '.join(v)}" for st, v in named.items() if v)
    if worst:
        mean, sd = worst["attributable mean"], worst["attributable sd"]
        summary += (f"; largest attributable help at epoch {worst['epoch']}: {fmt(100 * mean, 3)}% ± "
                    f"{fmt(100 * sd, 2)}% of d_grad ({margin_text(mean, fraction, upper=True, shown=f'{fmt(100 * fraction)}%')})")
    notes = []
    if named["not judged"]:
        notes.append("not judged where the test has no controls (measured before they existed: rerun) or d_grad "
                     "is not resolved")
    if verdict == HOLDS and unresolved:
        verdict = INCONCLUSIVE
        notes.append(f"the most negative eigenpair is not resolved (‖Hv − λv‖ > {fmt(EIGEN_MAX_RELATIVE_RESIDUAL)}·|λ|) "
                     "at " + ", ".join(f"epoch {t['epoch']} repeat {t['repeat']}" for t in unresolved[:6])
                     + ": a better-resolved direction of negative curvature could help more; raise --eig-max-matvecs")
    if verdict == HOLDS and not all(t["bracketed"] for t in tests):
        verdict = INCONCLUSIVE
        notes.append("a gradient line search ran out of evaluations before bracketing its best step")
    surfaces = [s for e in analyzed_epochs(run) if (s := load_surface(run, e)) is not None]
    return Claim("second_order", title, verdict, summary, threshold, numbers,
                 settings_of([t["context"] for t in tests], [t["epoch"] for t in tests],
                             controls=", ".join(tests[0]["controls"]) or "none (measured before controls)",
                             grid_pictures=(f"{len(surfaces[0]['xs'])}×{len(surfaces[0]['ys'])} (figures only)"
                                            if surfaces else None)),
                 rows, [t["path"] for t in tests], "; ".join(notes))


def _eigen_resolved(test: dict) -> bool:
    """The eigenpair behind y is resolved: converged, or its residual is small next to |λ|."""
    if test["lambda_min_converged"]:
        return True
    residual = test["result"].get("lambda_min_residual")
    lam = test["lambda_min"]
    return residual is not None and math.isfinite(lam) and float(residual) <= EIGEN_MAX_RELATIVE_RESIDUAL * abs(lam)


def interpolation_verdict(run: RunDir, fraction: float = INTERPOLATION_MAX_BUMP_FRACTION) -> Claim:
    """Monotone interpolation init → final: the largest bump against a fraction of F(init)."""
    title = "Monotone interpolation from initialization to the solution (train loss)"
    threshold = f"holds when the largest bump on α ∈ [0, 1] ≤ {fmt(fraction)} × F(init)"
    items = load_interpolations(run)
    if not items:
        return Claim("interpolation", title, NOT_MEASURED, f"no analysis/{REGISTRY['interpolation'].name}/*.json", threshold, {}, {})
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
        rows.append({"pair (epochs)": f"{it['from']} → {it['to']}", "train monotone": "yes" if tr["monotone"] else "no",
                     "train largest bump": float(tr["largest_bump"]), "bump at α": float(tr.get("bump_at", float("nan"))),
                     "test monotone": "yes" if te.get("monotone") else "no",
                     "test largest bump": float(te.get("largest_bump", float("nan"))), "BN": it["bn"]})
    ctx = main["context"].get("train", {}) if isinstance(main["context"], dict) else {}
    test_n = main["context"].get("test", {}).get("examples") if isinstance(main["context"], dict) else None
    return Claim("interpolation", title, verdict, summary, threshold, numbers,
                  settings_of([ctx], [main["from"], main["to"]], interpolation_bn=main["bn"], test_examples=test_n,
                            points=len(alpha)),
                 rows, [it["path"] for it in items])


def _star_points(t: dict) -> list[dict]:
    """One repeat's star-convexity per checkpoint: margin, tolerance, ratio and status ('holds',
    'fails', 'unresolved'); files made before the tolerance read with tolerance 0 and their holds."""
    n = len(t["star_epoch"])
    tol = t.get("star_tolerance", np.zeros(n))
    status = t.get("star_status", np.where(t["star_holds"] > 0, 1.0, -1.0))
    words = {1.0: "holds", -1.0: "fails", 0.0: "unresolved"}
    return [{"epoch": int(t["star_epoch"][i]), "repeat": t["repeat"], "inner": float(t["star_inner"][i]),
             "gap": float(t["star_gap"][i]), "ratio": float(t["star_ratio"][i]), "tolerance": float(tol[i]),
             "margin": float(t["star_inner"][i] - t["star_gap"][i]), "status": words[float(status[i])]}
            for i in range(n)]


def _star_checkpoint(epoch: int, points: list[dict]) -> str:
    """A checkpoint over its repeats: FAILS where most repeats fail beyond the rounding tolerance;
    HOLDS where none fails and none falls short inside the tolerance (margin ≥ 0 as measured, even
    if within rounding); else INCONCLUSIVE (a failure inside the tolerance or in a minority of repeats)."""
    fails = sum(p["status"] == "fails" for p in points)
    if fails > len(points) / 2:
        return FAILS
    if not fails and all(p["margin"] >= 0 for p in points):
        return HOLDS
    return INCONCLUSIVE


def star_convexity_verdict(run: RunDir) -> Claim:
    """Star-convexity toward θ_T on one function per checkpoint, beyond the rounding tolerance; the
    fraction that holds, each failure's margin, the spread over repeats; PL*, distance and NTK drift reported."""
    title = "Star-convexity along the trajectory: ⟨∇F_B(θ_t), θ_t − θ_T⟩ ≥ F_B(θ_t) − F_B(θ_T)"
    threshold = ("F_B: the loss with the batch-norm statistics of the analyzed examples computed at θ itself (the "
                 "gradient through them; F_B = F without batch norm), one function at every θ; a checkpoint fails where "
                 "the margin ⟨∇F_B, θ_t − θ_T⟩ − (F_B(θ_t) − F_B(θ_T)) < −tolerance (rounding of the F difference) "
                 "in most repeats; holds when no checkpoint fails or is inconclusive (a failure inside the "
                 "tolerance or in a minority of repeats); θ_T: the final checkpoint")
    items = load_trajectory(run)
    if not items:
        return Claim("star_convexity", title, NOT_MEASURED, f"no analysis/{REGISTRY['trajectory'].name}/*.json", threshold)
    points = [p for t in items for p in _star_points(t)]
    epochs = sorted({p["epoch"] for p in points})
    per = {e: _star_checkpoint(e, [p for p in points if p["epoch"] == e]) for e in epochs}
    failures = [p for p in points if p["status"] == "fails"]
    within = [p for p in points if p["status"] == "unresolved" and p["margin"] < 0]
    fractions = spread(float(np.mean([p["status"] == "holds" for p in _star_points(t)])) for t in items
                       if len(t["star_epoch"]))
    min_ratio = spread(float(np.nanmin(t["star_ratio"])) for t in items if np.isfinite(t["star_ratio"]).any())
    pl_zero = spread(float(np.nanmin(t["pl_zero"])) for t in items if np.isfinite(t["pl_zero"]).any())
    travelled = spread(float(t["travelled"][-1]) for t in items)
    drift = spread(float(t["ntk_drift"][-1]) for t in items if "ntk_drift" in t)
    target = items[0]["result"]["target_epoch"]
    fraction = float(np.mean([p["status"] == "holds" for p in points])) if points else float("nan")
    numbers = {"holds_fraction": fraction, "holds_fraction_per_repeat": fractions,
               "failing": [[p["epoch"], p["repeat"], p["margin"], p["tolerance"]] for p in failures],
               "failing_epochs": [e for e in epochs if per[e] == FAILS],
               "inconclusive_epochs": [e for e in epochs if per[e] == INCONCLUSIVE],
               "within_tolerance": [[p["epoch"], p["repeat"], p["margin"], p["tolerance"]] for p in within],
               "min_ratio": min_ratio, "pl_zero_min": pl_zero, "travelled": travelled, "ntk_drift": drift,
               "target_epoch": target, "repeats": len(items), "checkpoints": len(points)}
    verdict = FAILS if numbers["failing_epochs"] else INCONCLUSIVE if numbers["inconclusive_epochs"] else HOLDS
    summary = (f"holds beyond rounding at {fmt(100 * fraction, 3)}% of {len(points)} checkpoint(s) × repeat(s) "
               f"toward epoch {target} (per repeat {spread_text(fractions)})"
               + (f"; fails at epoch(s) {numbers['failing_epochs']}" if numbers["failing_epochs"] else "")
               + (f"; inconclusive at epoch(s) {numbers['inconclusive_epochs']}"
                  if numbers["inconclusive_epochs"] else "")
               + ("; failure margins " + ", ".join(_failure_text(p) for p in failures[:8]) if failures else "")
               + f"; smallest ratio {spread_text(min_ratio)}; PL* min ‖∇F‖²/F {spread_text(pl_zero)}; "
               f"‖θ_T − θ_0‖/‖θ_0‖ {spread_text(travelled)}"
               + (f"; NTK drift ‖K_T − K_0‖/‖K_0‖ {spread_text(drift)}" if drift["n"] else ""))
    note = (f"{len(within)} failure(s) inside the rounding tolerance (not counted): "
            + ", ".join(f"epoch {p['epoch']} margin {fmt(p['margin'], 2)} vs {fmt(p['tolerance'], 2)}"
                        for p in within[:6])) if within else ""
    settings = settings_of([t["context"] for t in items], [int(e) for t in items for e in t["epoch"]])
    return Claim("star_convexity", title, verdict, summary, threshold, numbers, settings, _star_rows(items),
                 [t["path"] for t in items], note)


def _failure_text(p: dict) -> str:
    """'epoch 3 (repeat 1): −0.002 (40× the tolerance)'."""
    where = f"epoch {p['epoch']}" + (f" (repeat {p['repeat']})" if p["repeat"] else "")
    times = f" ({fmt(-p['margin'] / p['tolerance'], 3)}× the tolerance)" if p["tolerance"] > 0 else ""
    return f"{where}: {fmt(p['margin'], 3)}{times}"


def _star_rows(items: list[dict]) -> list[dict]:
    """The trajectory table: one row per checkpoint and repeat."""
    rows = []
    for t in items:
        star = {p["epoch"]: p for p in _star_points(t)}
        target_f = dict(zip(t["star_epoch"].astype(int), t.get("star_target_F", np.full(len(t["star_epoch"]), np.nan))))
        for i, e in enumerate(t["epoch"].astype(int)):
            p = star.get(e)
            rows.append({"epoch": e, "repeat": t["repeat"], "F": t["F"][i],
                         "F_B(θ_T)": target_f.get(e), "⟨∇F_B, θ_t − θ_T⟩": p["inner"] if p else None,
                         "F_B(θ_t) − F_B(θ_T)": p["gap"] if p else None, "margin": p["margin"] if p else None,
                         "tolerance": p["tolerance"] if p else None, "ratio": p["ratio"] if p else None,
                         "star-convex": "—" if p is None else {"holds": "yes", "fails": "no",
                                                               "unresolved": "within rounding"}[p["status"]],
                         "‖∇F‖²/F": t["pl_zero"][i], "‖∇F‖²/(F − F_min)": t["pl_min"][i],
                         "‖θ_t − θ_0‖/‖θ_0‖": t["travelled"][i],
                         "NTK drift": t["ntk_drift"][i] if "ntk_drift" in t else None})
    return rows


def spectrum_report(run: RunDir) -> Claim:
    """The Hessian per checkpoint: extreme eigenvalues (± their bounds), the gradient's share in the
    top-k eigenspace, and the density's negative mass and eigenvalues above λ_max/10 (reported)."""
    title = "Hessian: extremes, the gradient's alignment and the spectrum"
    threshold = ("no threshold (reported): alignment = ‖P_k ∇F‖²/‖∇F‖² for the top-k eigenvectors; negative mass = "
                 "weight of the density below −w (w the broadening: the cluster at 0 straddles 0); outliers = "
                 "dimension × the weight above λ_max/10, an estimate of how many eigenvalues stand out")
    curv = load_curvature(run, repeats=True)
    spec = load_spectrum(run)
    if not curv and not spec:
        return Claim("spectrum", title, NOT_MEASURED, f"no {REGISTRY['curvature'].file} and no {REGISTRY['spectrum'].file}", threshold)
    epochs = sorted({t["epoch"] for t in curv} | {t["epoch"] for t in spec})
    rows, per_epoch = [], {}
    top_k = f"∇F in top-{next((c['alignment_k'] for c in curv if c.get('alignment') is not None), 'k')}"  # one column
    for e in epochs:
        c_here = [c for c in curv if c["epoch"] == e]
        s_here = [t for t in spec if t["epoch"] == e]
        aligned = [c["alignment"] for c in c_here if c.get("alignment") is not None]
        entry = {"lambda_max": spread(c["top"] for c in c_here), "lambda_min": spread(c["most_negative"] for c in c_here),
                 "alignment": spread(aligned), "negative_mass": spread(t["negative_mass"] for t in s_here),
                 "above_bulk": spread(t["outliers_above"] for t in s_here)}
        per_epoch[str(e)] = entry
        rows.append({"epoch": e, "λ_max": spread_text(entry["lambda_max"]) if c_here else "—",
                     "λ_min": spread_text(entry["lambda_min"]) if c_here else "—",
                     "λ_min bound": max((c["most_negative_bound"] for c in c_here), default=None),
                     top_k: spread_text(entry["alignment"]) if aligned else "—",
                     "negative mass": spread_text(entry["negative_mass"]) if s_here else "—",
                     "± (probes)": max((t["negative_mass_stderr"] for t in s_here
                                         if t["negative_mass_stderr"] is not None), default=None),
                     "eigenvalues above λ_max/10": spread_text(entry["above_bulk"]) if s_here else "—"})
    last = per_epoch[str(epochs[-1])]
    parts = []
    if last["lambda_max"]["n"]:
        parts.append(f"λ_max {spread_text(last['lambda_max'])}, λ_min {spread_text(last['lambda_min'])}")
    if last["alignment"]["n"]:
        parts.append(f"{fmt(100 * last['alignment']['mean'], 3)}% of ‖∇F‖² in the top-{curv[-1]['alignment_k']} "
                     f"eigenspace")
    if last["negative_mass"]["n"]:
        parts.append(f"negative mass {spread_text(last['negative_mass'])}, about "
                     f"{spread_text(last['above_bulk'])} eigenvalue(s) above λ_max/10")
    summary = f"epoch {epochs[-1]}: " + "; ".join(parts)
    extra = {"slq": f"{spec[0]['settings'].get('probes')} probe(s) × {spec[0]['settings'].get('steps')} steps"} if spec else {}
    settings = settings_of([t["context"] for t in curv + spec], [t["epoch"] for t in curv + spec], **extra)
    return Claim("spectrum", title, MEASURED, summary, threshold, {"per_epoch": per_epoch}, settings, rows,
                 [t["path"] for t in curv + spec])


def accuracy_verdict(run: RunDir, config: dict) -> Claim:
    """The final training and test accuracies (reported, not judged)."""
    title = "Accuracy reached"
    threshold = "no threshold (reported)"
    log = load_log(run)
    points = load_dominance(run)
    numbers, rows, sources = {}, [], []
    if log:
        last = log[-1]
        numbers.update({"epoch": int(last["epoch"]), "train_acc": last["train_acc"], "test_acc": last["test_acc"],
                        "train_loss": last["train_loss"], "test_loss": last["test_loss"]})
        rows.append({"source": f"log.jsonl, epoch {int(last['epoch'])}", "on": "training set (running mean, augmented)",
                     "train loss": last["train_loss"], "train acc": last["train_acc"],
                     "test loss": last["test_loss"], "test acc": last["test_acc"]})
        sources.append(run.log)
    final = next((p for p in reversed(points) if "train_acc" in p), None)
    if final is not None:
        numbers.update({"checkpoint_epoch": final["epoch"], "checkpoint_train_acc": final["train_acc"],
                        "checkpoint_test_acc": final.get("test_acc"), "checkpoint_F": final["F"]})
        rows.append({"source": f"{REGISTRY['dominance'].file}, epoch {final['epoch']}",
                     "on": f"analysis subset n={final['context'].get('examples', '?')}", "train loss": final["F"],
                     "train acc": final["train_acc"], "test loss": final.get("test_loss"),
                     "test acc": final.get("test_acc")})
        sources.append(final["path"])
    if not numbers:
        return Claim("accuracy", title, NOT_MEASURED, f"no log.jsonl and no {REGISTRY['dominance'].file}", threshold, {}, {})
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
    return Claim("accuracy", title, MEASURED, summary, threshold, numbers, settings, rows, sources)


def run_verdicts(run_dir, *, floor: float = DOMINANCE_F_FLOOR) -> RunVerdicts:
    """The verdict on each claim for one run directory (see the module doc)."""
    run = as_run(run_dir)
    config = read_config(run)
    claims = [dominance_verdict(run, floor), smoothness_verdict(run), second_order_verdict(run),
              interpolation_verdict(run), star_convexity_verdict(run), spectrum_report(run), accuracy_verdict(run, config)]
    thresholds = {"DOMINANCE_F_FLOOR": floor, "DOMINANCE_MIN_C": DOMINANCE_MIN_C,
                  "SMOOTHNESS_MAX_A_OVER_GRAD_NORM": SMOOTHNESS_MAX_A_OVER_GRAD_NORM,
                  "PROBE_MIN_POINTS": PROBE_MIN_POINTS, "PROBE_MIN_DECADES": PROBE_MIN_DECADES,
                  "DOMINANCE_P_LEVEL": DOMINANCE_P_LEVEL,
                  "EIGEN_MAX_RELATIVE_RESIDUAL": EIGEN_MAX_RELATIVE_RESIDUAL,
                  "BN_LAG_MAX": BN_LAG_MAX, "SECOND_ORDER_MAX_EXTRA_FRACTION": SECOND_ORDER_MAX_EXTRA_FRACTION,
                  "INTERPOLATION_MAX_BUMP_FRACTION": INTERPOLATION_MAX_BUMP_FRACTION}
    return RunVerdicts(str(run.path), run.path.name, run_title(run, config), config.get("train") or {},
                       {k: v for k, v in config.get("data", {}).items() if k != "classes"},
                       analyzed_epochs(run), thresholds, claims)


def envelope_constant(F: Iterable[float], grad_sq: Iterable[float], floor: float = DOMINANCE_F_FLOOR) -> dict:
    """c = min ‖∇F‖²/F over the points with F > floor (‖∇F‖² ≥ c·F holds on all of them).

    Returns c (nan when no point is above the floor), the number of points used and the
    F at which the minimum is attained.
    """
    F = np.asarray(list(F), float)
    g = np.asarray(list(grad_sq), float)
    use = np.isfinite(F) & np.isfinite(g) & (F > floor)
    if not use.any():
        return {"c": float("nan"), "points": 0, "total": int(len(F)), "at_F": float("nan"), "floor": floor}
    ratio = g[use] / F[use]
    i = int(np.argmin(ratio))
    return {"c": float(ratio[i]), "points": int(use.sum()), "total": int(len(F)),
            "at_F": float(F[use][i]), "floor": floor}


