"""The paper's claims judged on a run's stored results: numbers, thresholds, margins; no drawing.

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
  checkpoint and repeat, from the grid-free test (the second_order measurement);
* monotone interpolation: the largest bump of the train loss along init → final is
  ≤ INTERPOLATION_MAX_BUMP_FRACTION · F(init);
* star-convexity along the trajectory: ⟨∇F(θ_t), θ_t − θ_T⟩ ≥ F(θ_t) − F(θ_T) toward the final
  checkpoint θ_T at every analyzed checkpoint of every repeat (trajectory/), with the PL* ratios
  and the distance travelled beside it;
* the Hessian: extreme eigenvalues, the gradient's share in the top-k eigenspace, and the
  eigenvalue density's negative mass and eigenvalues above λ_max/10 (reported, no threshold);
* accuracy reached: the final train/test accuracies of log.jsonl (no threshold).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

from .measurements import REGISTRY
from .readers import (analyzed_epochs, as_run, load_curvature, load_dominance, load_interpolations, load_log, load_probes,
                      load_second_order, load_spectrum, load_surface, load_track, load_trajectory, read_config,
                      track_uses_statistics_of_theta)
from .results import RunDir
from .text import fmt, run_title, settings_of

DOMINANCE_F_FLOOR = 0.01                     # points with F at or below it do not set c
SECOND_ORDER_MAX_EXTRA_FRACTION = 0.10       # 'little help' when d_plane − d_grad ≤ this · d_grad
DOMINANCE_MIN_C = 1e-3                       # dominance holds when c (min over repeats) is at least this
SMOOTHNESS_MAX_A_OVER_SQRT_F = 0.1           # semi-smoothness holds when max a/√F is at most this
INTERPOLATION_MAX_BUMP_FRACTION = 1e-3       # monotone enough when largest bump ≤ this · F(init)
# artefacts the run can detect; a verdict that rests on one is 'inconclusive'
BN_LAG_MAX = 0.25                 # |F(checkpoint statistics) − F(statistics of θ)| / F(statistics of θ)
FIT_MAX_REL_RMS = 0.5             # a probe fit with a larger relative RMS error is poor
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
    """‖∇F‖² ≥ c·F: c over every repeat's checkpoints and the dense track, margin to DOMINANCE_MIN_C."""
    title = "Gradient dominance: ‖∇F‖² ≥ c·F"
    threshold = (f"holds when c ≥ {fmt(DOMINANCE_MIN_C)}; c = min ‖∇F‖²/F over the checkpoints of every repeat "
                 f"and the dense track, on points with F > {fmt(floor)}")
    points = load_dominance(run, repeats=True)
    track = load_track(run)
    if not points and not track:
        return Claim("gradient_dominance", title, NOT_MEASURED, f"no {REGISTRY['dominance'].file} and no track.jsonl",
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
    settings = settings_of([p["context"] for p in points], [p["epoch"] for p in points])
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
    rows = [{"epoch": p["epoch"], "repeat": p["repeat"], "F": p["F"],
             "F (checkpoint BN statistics)": p.get("F_checkpoint_stats"), "‖∇F‖²": p["grad_sq"],
             "‖∇F‖²/F": p["ratio"], "‖∇F‖² hidden": p["grad_sq_hidden"], "ratio hidden": p["ratio_hidden"],
             "sets c": "yes" if p["F"] > floor else "no (below floor)"} for p in points]
    return Claim("gradient_dominance", title, verdict, summary, threshold, numbers, settings, rows,
                 [p["path"] for p in points] + ([run.track] if track else []), note)


def _good_fit(p: dict) -> bool:
    return (p.get("points") or 0) >= 3 and math.isfinite(p["rel_rms"]) and p["rel_rms"] <= FIT_MAX_REL_RMS


def smoothness_verdict(run: RunDir, threshold_value: float = SMOOTHNESS_MAX_A_OVER_SQRT_F) -> Claim:
    """Semi-smoothness: the largest a/√F over well-fitted probes, worst repeat, margin to the limit."""
    title = "Semi-smoothness: |r(t)| ≤ a·|t| + b·t² with a small next to √F"
    threshold = (f"holds when max a/√F ≤ {fmt(threshold_value)} over checkpoints and directions, worst repeat, "
                 f"on fits with relative RMS error ≤ {fmt(FIT_MAX_REL_RMS)}")
    probes = [p for e in analyzed_epochs(run) for p in load_probes(run, e, repeats=True)]
    if not probes:
        return Claim("semi_smoothness", title, NOT_MEASURED, f"no {REGISTRY['probes'].file_glob()}", threshold, {}, {})
    rows = [{"epoch": p["epoch"], "repeat": p["repeat"], "direction": p["name"], "F": p["F"], "a": p["a"],
             "b": p["b"], "a/√F": p["a_over_sqrt_F"], "fit rel. RMS": p["rel_rms"], "envelope κ": p["envelope"],
             "noise floor": p["noise_floor"], "max |t|": float(np.abs(p["t"]).max())} for p in probes]
    settings = settings_of([p["context"] for p in probes], [p["epoch"] for p in probes])
    good = [p for p in probes if _good_fit(p) and math.isfinite(p["a_over_sqrt_F"])]
    poor_over = [p for p in probes if not _good_fit(p) and math.isfinite(p["a_over_sqrt_F"])
                 and p["a_over_sqrt_F"] > threshold_value]
    if not good:
        verdict = INCONCLUSIVE if probes else NOT_MEASURED
        return Claim("semi_smoothness", title, verdict, "no probe has a good fit (or F = 0 everywhere)",
                      threshold, {}, settings, [], [p["path"] for p in probes])
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
    return Claim("semi_smoothness", title, verdict, summary, threshold, numbers, settings, rows,
                 [p["path"] for p in probes], note)


def second_order_verdict(run: RunDir, fraction: float = SECOND_ORDER_MAX_EXTRA_FRACTION) -> Claim:
    """Little help from second order: the worst (d_plane − d_grad)/d_grad over checkpoints and repeats."""
    title = "Second-order information gives little help (negative curvature vs gradient)"
    threshold = (f"holds when, at every checkpoint and in every repeat, d_plane − d_grad ≤ {fmt(fraction)} × d_grad "
                 f"({REGISTRY['second_order'].file}: line searches and a local search in the plane, no grid)")
    tests = load_second_order(run)
    if not tests:
        return Claim("second_order", title, NOT_MEASURED, f"no {REGISTRY['second_order'].file}", threshold, {}, {})
    epochs = sorted({t["epoch"] for t in tests})
    rows, per_epoch = [], {}
    for e in epochs:
        here = [t for t in tests if t["epoch"] == e]
        per_epoch[e] = {k: spread(t[k] for t in here) for k in ("d_grad", "d_curv", "d_plane", "extra_fraction")}
        st = per_epoch[e]
        rows.append({"epoch": e, "repeats": len(here), "F": spread(t["F"] for t in here)["mean"],
                     "d_grad (along −∇F)": spread_text(st["d_grad"]), "d_curv (along y)": spread_text(st["d_curv"]),
                     "d_plane": spread_text(st["d_plane"]), "extra / d_grad": spread_text(st["extra_fraction"]),
                     "worst extra / d_grad": st["extra_fraction"]["max"],
                     "λ_min": spread_text(spread(t["lambda_min"] for t in here)),
                     "little help": "yes" if st["extra_fraction"]["max"] <= fraction else "no"})
    worst = max(tests, key=lambda t: t["extra_fraction"])
    value = worst["extra_fraction"]
    unresolved = [t for t in tests if not _eigen_resolved(t)]
    numbers = {"worst_extra_fraction": value, "worst_epoch": worst["epoch"], "worst_repeat": worst["repeat"],
               "fraction": fraction, "margin": value / fraction if fraction > 0 else float("nan"),
               "checkpoints": len(epochs), "failing_epochs": [r["epoch"] for r in rows if r["little help"] == "no"],
               "per_epoch": {str(e): v for e, v in per_epoch.items()},
               "evaluations": spread(t["evaluations"] for t in tests),
               "unresolved_eigenpairs": [[t["epoch"], t["repeat"]] for t in unresolved]}
    verdict = HOLDS if value <= fraction else FAILS
    summary = (f"worst: epoch {worst['epoch']} (repeat {worst['repeat']}), the curvature direction adds "
               f"{fmt(100 * value, 3)}% of d_grad = {fmt(worst['d_grad'], 4)} "
               f"({margin_text(value, fraction, upper=True, shown=f'{fmt(100 * fraction)}%')}); over all checkpoints "
               f"and repeats, extra / d_grad = {spread_text(spread(t['extra_fraction'] for t in tests), unit='tests')}")
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
    return Claim("second_order", title, verdict, summary, threshold, numbers,
                  settings_of([t["context"] for t in tests], [t["epoch"] for t in tests],
                            grid_pictures=(f"{len(surfaces[0]['xs'])}×{len(surfaces[0]['ys'])} (figures only)"
                                           if surfaces else None)),
                 rows, [t["path"] for t in tests], note)


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


def star_convexity_verdict(run: RunDir) -> Claim:
    """Star-convexity toward θ_T at every checkpoint and repeat; PL*, distance and NTK drift reported."""
    title = "Star-convexity along the trajectory: ⟨∇F(θ_t), θ_t − θ_T⟩ ≥ F(θ_t) − F(θ_T)"
    threshold = "holds when the inequality holds at every analyzed checkpoint of every repeat (θ_T: the final checkpoint)"
    items = load_trajectory(run)
    if not items:
        return Claim("star_convexity", title, NOT_MEASURED, f"no analysis/{REGISTRY['trajectory'].name}/*.json", threshold)
    holds = np.concatenate([t["star_holds"] for t in items]).astype(bool)
    failing = [(int(e), t["repeat"]) for t in items for e, h in zip(t["star_epoch"], t["star_holds"]) if not h]
    min_ratio = spread(float(np.nanmin(t["star_ratio"])) for t in items if np.isfinite(t["star_ratio"]).any())
    pl_zero = spread(float(np.nanmin(t["pl_zero"])) for t in items if np.isfinite(t["pl_zero"]).any())
    pl_min = spread(float(np.nanmin(t["pl_min"])) for t in items if np.isfinite(t["pl_min"]).any())
    travelled = spread(float(t["travelled"][-1]) for t in items)
    drift = spread(float(t["ntk_drift"][-1]) for t in items if "ntk_drift" in t)
    fraction = float(holds.mean()) if len(holds) else float("nan")
    target = items[0]["result"]["target_epoch"]
    numbers = {"holds_fraction": fraction, "failing": failing, "min_ratio": min_ratio, "pl_zero_min": pl_zero,
               "pl_min_min": pl_min, "travelled": travelled, "ntk_drift": drift, "target_epoch": target,
               "repeats": len(items), "checkpoints": int(len(holds))}
    verdict = HOLDS if not failing else FAILS
    summary = (f"holds at {fmt(100 * fraction, 3)}% of {len(holds)} checkpoint(s) × repeat(s) toward epoch {target}"
               + (f" (fails at epoch(s) {sorted({e for e, _ in failing})})" if failing else "")
               + f"; smallest ratio ⟨∇F, θ_t − θ_T⟩/(F − F_T) {spread_text(min_ratio)}; "
               f"PL* min ‖∇F‖²/F {spread_text(pl_zero)}; ‖θ_T − θ_0‖/‖θ_0‖ {spread_text(travelled)}"
               + (f"; NTK drift ‖K_T − K_0‖/‖K_0‖ {spread_text(drift)}" if drift["n"] else ""))
    rows = []
    for t in items:
        star = dict(zip(t["star_epoch"].astype(int), zip(t["star_inner"], t["star_gap"], t["star_ratio"], t["star_holds"])))
        for i, e in enumerate(t["epoch"].astype(int)):
            inner, gap, ratio, ok = star.get(e, (None, None, None, None))
            rows.append({"epoch": e, "repeat": t["repeat"], "F": t["F"][i], "⟨∇F, θ_t − θ_T⟩": inner,
                         "F − F(θ_T)": gap, "ratio": ratio,
                         "star-convex": "—" if ok is None else ("yes" if ok else "no"),
                         "‖∇F‖²/F": t["pl_zero"][i], "‖∇F‖²/(F − F_min)": t["pl_min"][i],
                         "‖θ_t − θ_0‖/‖θ_0‖": t["travelled"][i],
                         "NTK drift": t["ntk_drift"][i] if "ntk_drift" in t else None})
    settings = settings_of([t["context"] for t in items], [int(e) for t in items for e in t["epoch"]])
    return Claim("star_convexity", title, verdict, summary, threshold, numbers, settings, rows,
                 [t["path"] for t in items])


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
                     f"∇F in top-{c_here[0]['alignment_k'] if aligned else 'k'}": spread_text(entry["alignment"]) if aligned else "—",
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
                  "SMOOTHNESS_MAX_A_OVER_SQRT_F": SMOOTHNESS_MAX_A_OVER_SQRT_F,
                  "FIT_MAX_REL_RMS": FIT_MAX_REL_RMS, "EIGEN_MAX_RELATIVE_RESIDUAL": EIGEN_MAX_RELATIVE_RESIDUAL,
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


