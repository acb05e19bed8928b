"""Verdicts with margins, spread and 'inconclusive', judged on hand-written result files that land
on each side of every threshold (no training involved)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from landscape import measure, readers
from landscape import report as R
from landscape import verdicts as V

CONTEXT = {"dataset": "folder:x", "split": "train", "arch": "resnet8", "examples": 32, "loss": "cross_entropy",
           "bn_policy": "frozen", "param_subset": "all", "num_params": 100, "precision": "fp32",
           "subset_seed": 0, "repeats": 3, "repeat_mode": "disjoint subsets",
           "bn_statistics": "recomputed at θ over the 32 analyzed training examples"}


def _write(path: Path, result: dict, context: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": {}, "context": {**CONTEXT, **(context or {})}, "settings": {},
                                "result": result}))


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"arch": "resnet8", "epochs": 2},
                                                 "data": {"dataset": "folder:x", "train_examples": 100}}))
    return run


def _folder(run: Path, epoch: int, repeat: int) -> Path:
    base = run / "analysis" / f"epoch_{epoch:04d}"
    return base if repeat == 0 else base / f"repeat_{repeat}"


def _dominance(run, epoch, repeat, F, grad_sq, bn_stats="recompute", F_other=None):
    _write(_folder(run, epoch, repeat) / "dominance.json", {
        "F": F, "grad_sq": grad_sq, "grad_sq_hidden": grad_sq / 2, "ratio": grad_sq / F,
        "ratio_hidden": grad_sq / 2 / F, "bn_stats": bn_stats,
        "F_checkpoint_stats": F if bn_stats == "checkpoint" else (F_other or F),
        "F_recomputed_stats": F if bn_stats == "recompute" else (F_other or F)})


def _direction(d_grad, extra_fraction, d_dir=0.01):
    d_plane = d_grad * (1 + extra_fraction)
    return {"d_dir": d_dir, "d_plane": d_plane, "extra": d_plane - d_grad, "extra_fraction": extra_fraction}


def _second_order(run, epoch, repeat, d_grad, d_plane, converged=True, residual=0.0, lam=-1.0, controls=(0.0,),
                  top=0.0, F=1.0, d_curv=0.0):
    """A second_order.json: the most negative direction's numbers and controls random_k (extra fractions)
    and top; any number may be given as an unresolved record."""
    extra_fraction = (d_plane - d_grad) / d_grad
    ctrl = {f"random_{k}": _direction(d_grad, x) for k, x in enumerate(controls)}
    if top is not None:
        ctrl["top"] = _direction(d_grad, top)
    _write(_folder(run, epoch, repeat) / "second_order.json", {
        "F": F, "d_grad": d_grad, "d_curv": d_curv, "d_plane": d_plane, "extra": d_plane - d_grad,
        "extra_fraction": extra_fraction, "lambda_min": lam, "lambda_min_converged": converged,
        "lambda_min_residual": residual, "bracketed": True, "evaluations": 50, "line_search_rtol": 1e-3,
        "controls": ctrl})


def _probe(run, epoch, repeat, a, F=1.0, rel_rms=0.1, grad_norm=1.0, name=None, resolved=True, a_resolution=None):
    """A probe file as the adaptive probe writes it: a resolved envelope on 12 |t| over 3 decades (its looseness
    rel_rms; a resolved a, with a_resolution = a, or given a_resolution > 2a an a the probe cannot resolve), or
    'not measured'."""
    folder = _folder(run, epoch, repeat)
    name = name or f"gaussian_{1000 * repeat}"
    mags = np.geomspace(1e-3, 1.0, 12)
    t = np.concatenate([-mags[::-1], [0.0], mags])
    a_res = a if a_resolution is None else a_resolution
    fit = ({"resolved": True, "a": a, "b": 0.1, "rel_rms": rel_rms, "envelope": 1.0, "active": 2,
            "a_resolution": a_res, "a_resolved": measure.kink_resolved(a, a_res), "points": 24, "distinct_t": 12,
            "sides": {"+": {"a": a, "b": 0.1}, "-": {"a": a, "b": 0.1}},
            "t_range": [1e-3, 1.0], "decades": 3.0, "reason": None} if resolved else
           {"resolved": False, "reason": "1 distinct |t| spanning 0 decades", "a": None, "b": None, "rel_rms": None,
            "envelope": None, "active": None, "a_resolution": None, "a_resolved": None, "points": 2, "distinct_t": 1,
            "t_range": [1.0, 1.0], "decades": 0.0})
    _write(folder / f"probe_{name}.json", {
        "F": F, "noise_floor": 1e-6, "fit_ceiling": F, "slope": -grad_norm, "grad_norm": grad_norm,
        "a_over_sqrt_F": a / np.sqrt(F) if resolved else None, "a_over_grad_norm": a / grad_norm if resolved else None,
        "direction": {"kind": "gaussian", "seed": 1000 * repeat}, "fit": fit})
    np.savez(folder / f"probe_{name}.npz", t=t, f=F + 0.1 * t ** 2, r=0.1 * t ** 2)


def _track(run, rows):
    from landscape.train import TRACK_BN_POLICY

    (run / "track.jsonl").write_text("".join(json.dumps({"step": i, "epoch": i, "F": F, "grad_sq": G,
                                                          "grad_sq_hidden": G / 2, "bn_policy": TRACK_BN_POLICY}) + "\n"
                                             for i, (F, G) in enumerate(rows)))


@pytest.mark.parametrize("ratios, verdict", [((2.0, 1.0, 3.0), V.HOLDS), ((2.0, 5e-4, 3.0), V.FAILS)])
def test_dominance_uses_the_worst_repeat_and_gives_its_margin_and_spread(tmp_path, ratios, verdict):
    run = _run(tmp_path)
    for r, ratio in enumerate(ratios):
        _dominance(run, 1, r, F=1.0, grad_sq=ratio)
        _dominance(run, 2, r, F=0.5, grad_sq=0.5 * ratio * 4)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["gradient_dominance"]
    assert claim.verdict == verdict
    assert claim.numbers["c"] == pytest.approx(min(ratios))
    assert claim.numbers["margin"] == pytest.approx(min(ratios) / V.DOMINANCE_MIN_C)
    sp = claim.numbers["c_spread"]
    assert (sp["min"], sp["max"], sp["n"]) == (pytest.approx(min(ratios)), pytest.approx(max(ratios)), 3)
    assert sp["std"] == pytest.approx(np.std(ratios, ddof=1))
    assert f"{V.fmt(min(ratios) / V.DOMINANCE_MIN_C, 3)}× the threshold {V.fmt(V.DOMINANCE_MIN_C)}" in claim.summary


def test_lagging_checkpoint_statistics_make_dominance_inconclusive(tmp_path):
    run = _run(tmp_path)
    _dominance(run, 1, 0, F=21.8, grad_sq=30.0, bn_stats="checkpoint", F_other=2.3)
    _dominance(run, 2, 0, F=0.5, grad_sq=1.0, bn_stats="checkpoint", F_other=0.5)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["gradient_dominance"]
    assert claim.verdict == V.INCONCLUSIVE and "epoch 1" in claim.note and "--bn-stats recompute" in claim.note
    assert claim.numbers["bn_lag_epochs"] == [1]


@pytest.mark.parametrize("extras, controls, converged, verdict", [
    ((0.05, 0.08, 0.02), 0.01, True, V.HOLDS),        # attributable 0.04 ± 0.03: mean + sd ≤ 0.1
    ((0.30, 0.35, 0.32), 0.02, True, V.FAILS),        # 0.30 ± 0.025 above the controls: help
    ((0.30, 0.35, 0.32), 0.30, True, V.HOLDS),        # as large as a random direction's: not negative curvature
    ((0.05, 0.08, 0.02), 0.01, False, V.INCONCLUSIVE),  # unresolved eigenpair behind a 'holds'
    ((0.30, 0.35, 0.32), 0.02, False, V.FAILS),       # a direction that helps is help, resolved or not
    ((0.02, 0.20, 0.05), 0.0, True, V.INCONCLUSIVE),  # 0.09 ± 0.096 straddles the limit
])
def test_second_order_verdict_judges_the_help_beyond_the_controls(tmp_path, extras, controls, converged, verdict):
    run = _run(tmp_path)
    for r, extra in enumerate(extras):
        _second_order(run, 3, r, d_grad=0.2, d_plane=0.2 * (1 + extra), converged=converged,
                      residual=0.5 if not converged else 0.0, controls=(controls, controls / 2, 0.0), top=controls / 3)
        _second_order(run, 5, r, d_grad=0.1, d_plane=0.1, F=0.5)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["second_order"]
    assert claim.verdict == verdict
    attributable = np.array(extras) - controls
    row = next(r for r in claim.rows if r["epoch"] == 3)
    assert row["attributable mean"] == pytest.approx(attributable.mean())
    assert row["attributable sd"] == pytest.approx(attributable.std(ddof=1))
    assert claim.numbers["worst_epoch"] == 3
    assert claim.numbers["margin"] == pytest.approx(attributable.mean() / V.SECOND_ORDER_MAX_EXTRA_FRACTION)
    five = next(r for r in claim.rows if r["epoch"] == 5)
    assert five["status"] == "little help" and five["F"] == 0.5
    assert ("epoch 5 (F = 0.5)" in claim.summary) and ("epoch 3 (F = 1)" in claim.summary)


def test_a_small_residual_resolves_an_eigenpair_that_ran_out_of_products(tmp_path):
    run = _run(tmp_path)
    _second_order(run, 3, 0, d_grad=0.2, d_plane=0.201, converged=False, residual=0.05, lam=-1.0)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["second_order"]
    assert claim.verdict == V.HOLDS


@pytest.mark.parametrize("a, rel_rms, verdict", [
    (0.05, 0.1, V.HOLDS), (0.3, 0.1, V.FAILS),
    (0.05, 0.8, V.HOLDS), (0.3, 0.8, V.FAILS),  # a loose envelope counts: a/‖∇F‖ alone decides
])
def test_smoothness_verdict_judges_a_over_grad_norm_on_every_resolved_envelope(tmp_path, a, rel_rms, verdict):
    run = _run(tmp_path)
    _probe(run, 1, 0, 0.02)
    _probe(run, 1, 1, a, rel_rms=rel_rms)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["semi_smoothness"]
    assert claim.verdict == verdict
    assert claim.numbers["judged"] == 2 and claim.numbers["max_a_over_grad_norm"] == pytest.approx(a)
    assert claim.numbers["per_repeat"]["n"] == 2 and claim.numbers["max_rel_rms"] == pytest.approx(rel_rms)
    assert "judged on 2 of 2 probes" in claim.summary and f"up to {V.fmt(rel_rms, 2)}" in claim.summary


def test_a_over_grad_norm_is_judged_and_a_over_sqrt_F_shown_beside_it(tmp_path):
    """Near a minimum F is small and ‖∇F‖ large (or the reverse): the two normalizations disagree."""
    run = _run(tmp_path)
    _probe(run, 1, 0, a=0.05, F=0.01, grad_norm=1.0)   # a/√F = 0.5, a/‖∇F‖ = 0.05: holds
    claim = V.smoothness_verdict(V.as_run(run))
    assert claim.verdict == V.HOLDS
    assert claim.numbers["max_a_over_grad_norm"] == pytest.approx(0.05)
    assert claim.numbers["max_a_over_sqrt_F"] == pytest.approx(0.5)
    assert "a/√F = 0.5" in claim.summary and claim.rows[0]["a/√F"] == pytest.approx(0.5)
    _probe(run, 2, 0, a=0.05, F=4.0, grad_norm=0.1)    # a/√F = 0.025, a/‖∇F‖ = 0.5: fails
    assert V.smoothness_verdict(V.as_run(run)).verdict == V.FAILS


def test_every_probe_over_the_threshold_is_listed_with_its_fitted_points_and_looseness(tmp_path):
    run = _run(tmp_path)
    over = [(1, "gaussian_1", 0.2, 0.1), (2, "gaussian_2", 0.3, 0.8), (3, "gaussian_3", 0.15, 0.2)]
    for epoch, name, a, rms in over:
        _probe(run, epoch, 0, a, rel_rms=rms, name=name)
    _probe(run, 4, 0, 0.01, name="gaussian_4")
    claim = V.smoothness_verdict(V.as_run(run))
    assert claim.verdict == V.FAILS
    listed = claim.numbers["over_threshold"]
    assert sorted((o["epoch"], o["direction"], o["a_over_grad_norm"], o["rel_rms"], o["points"]) for o in listed) == \
        sorted((e, n, pytest.approx(a), pytest.approx(rms), 12) for e, n, a, rms in over)
    for epoch, name, a, rms in over:  # the note names each, with points and looseness
        assert f"epoch {epoch} repeat 0 {name}: a/‖∇F‖ = {V.fmt(a, 3)}" in claim.note
        assert f"looseness (rel. RMS) {V.fmt(rms, 2)}" in claim.note
    assert "poor" not in claim.note and "12 fitted |t|" in claim.note


@pytest.mark.parametrize("missing", [("active", "a_resolution", "a_resolved", "sides"),
                                     ("a_resolution", "a_resolved", "sides"), ("sides",)])
def test_a_fit_stored_without_a_resolution_is_refitted_from_its_arrays(tmp_path, missing):
    """A fit with no 'active' (a least-squares curve, before the envelope), no 'a_resolution' (an envelope from
    before the resolution) or no 'sides' (one envelope for both sides) is refitted by the reader from its stored t and r: here r = 0.1·t² (stored a = 0.5 is
    replaced by a = 0, b = 0.1 − floor), the smallest fitted |t| is the third step (0.1·t² ≤ floor = 1e-6 below
    it), so a is not resolved and a_resolution = 0.1·t_lo; the verdict holds on that bound, never on 0."""
    run = _run(tmp_path)
    _probe(run, 1, 0, 0.5, F=4.0, grad_norm=2.0, rel_rms=0.8, name="gaussian_1")
    path = _folder(run, 1, 0) / "probe_gaussian_1.json"
    stored = json.loads(path.read_text())
    for key in missing:
        del stored["result"]["fit"][key]
    path.write_text(json.dumps(stored))
    (probe,) = readers.load_probes(readers.as_run(run), 1)
    assert probe["a"] == pytest.approx(0.0, abs=1e-12) and probe["b"] == pytest.approx(0.1 - 1e-6, rel=1e-9)
    assert probe["a_over_grad_norm"] == pytest.approx(0.0, abs=1e-12)
    assert 1.0 < probe["envelope"] <= 1.0 + 1e-4 and probe["rel_rms"] < 1e-3  # κ ≤ max |r|/(|r| − floor)
    t_lo = np.geomspace(1e-3, 1.0, 12)[2]
    assert 0.1 * t_lo ** 2 > 1e-6 > 0.1 * np.geomspace(1e-3, 1.0, 12)[1] ** 2
    assert probe["a_resolved"] is False and probe["a_resolution"] == pytest.approx(0.1 * t_lo, rel=1e-9)
    assert probe["a_resolution_over_grad_norm"] == pytest.approx(0.1 * t_lo / 2.0, rel=1e-9)
    assert probe["a_resolution_over_sqrt_F"] == pytest.approx(0.1 * t_lo / 2.0, rel=1e-9)
    claim = V.smoothness_verdict(V.as_run(run))
    assert claim.verdict == V.HOLDS and claim.numbers["max_is_bound"] is True
    assert claim.numbers["max_a_over_grad_norm"] == pytest.approx(0.05 * t_lo, rel=1e-9)
    assert f"max a/‖∇F‖ ≤ {V.fmt(0.05 * t_lo, 4)}" in claim.summary
    assert claim.rows[0]["a/‖∇F‖"] == f"< {V.fmt(0.05 * t_lo, 3)} (not resolved)"


@pytest.mark.parametrize("bounds, resolved, verdict", [
    ((0.02, 0.05, 0.08), (), V.HOLDS),             # every a below its probe's resolution, every bound ≤ 0.1
    ((0.02, 0.08), (0.09,), V.HOLDS),              # the largest value is a measured a: '='
    ((0.3,), (0.05,), V.INCONCLUSIVE),             # only a bound is over 0.1: the probe cannot resolve that kink
    ((0.5,), (0.3, 0.05), V.FAILS),                # a resolved a/‖∇F‖ over 0.1 fails, whatever the bounds
])
def test_an_unresolved_a_enters_the_verdict_as_its_bound(tmp_path, bounds, resolved, verdict):
    """a/‖∇F‖ where a is resolved, a_resolution/‖∇F‖ (an upper bound) where it is not (a = 0 < ½·a_resolution):
    holds when the max of those is ≤ 0.1, fails on a resolved one over it, inconclusive on a bound over it."""
    run = _run(tmp_path)
    for i, bound in enumerate(bounds):
        _probe(run, 1, 0, 0.0, a_resolution=2 * bound, grad_norm=2.0, F=4.0, name=f"gaussian_{i}")
    for i, a in enumerate(resolved):
        _probe(run, 2, 0, 2 * a, grad_norm=2.0, F=4.0, name=f"gaussian_{10 + i}")
    claim = V.smoothness_verdict(V.as_run(run))
    assert claim.verdict == verdict
    n = claim.numbers
    assert n["bounds"] == len(bounds) and n["judged"] == len(bounds) + len(resolved)
    over = [a for a in resolved if a > 0.1]
    value, is_bound = (max(over), False) if over else max([(b, True) for b in bounds] + [(a, False) for a in resolved])
    assert n["max_a_over_grad_norm"] == pytest.approx(value) and n["max_is_bound"] is is_bound
    assert n["max_a_over_sqrt_F"] == pytest.approx(max(bounds + resolved))  # √F = ‖∇F‖ = 2 here
    assert n["max_a_over_sqrt_F_is_bound"] is (max(bounds) > max(resolved, default=-1.0))
    headline = R.claim_headline({"id": "semi_smoothness", "verdict": claim.verdict, "numbers": n})[2]
    assert headline == f"max a/‖∇F‖ {'≤' if is_bound else '='} {V.fmt(value)}"
    assert f"{len(bounds)} of {n['judged']} judged probes rest on bounds" in claim.summary
    rows = {r["direction"]: r for r in claim.rows}
    for i, bound in enumerate(bounds):  # never 0: the bound, marked
        row = rows[f"gaussian_{i}"]
        assert row["a/‖∇F‖"] == f"< {V.fmt(bound, 3)} (not resolved)" and row["a/√F"] == row["a/‖∇F‖"]
        assert row["a"] == f"< {V.fmt(2 * bound, 3)} (not resolved)"
    for i, a in enumerate(resolved):
        assert rows[f"gaussian_{10 + i}"]["a/‖∇F‖"] == pytest.approx(a)
    if verdict == V.INCONCLUSIVE:
        assert "is only a bound" in claim.summary and "cannot resolve a kink that large" in claim.note
        assert n["over_threshold"] == [dict(n["over_threshold"][0], bound=True)]
    if verdict == V.FAILS:
        assert claim.summary.startswith(f"max resolved a/‖∇F‖ = {V.fmt(0.3, 4)}")
        assert "epoch 2 repeat 0 gaussian_10: a/‖∇F‖ = 0.3" in claim.note
        assert "epoch 1 repeat 0 gaussian_0: a/‖∇F‖ < 0.5 (not resolved)" in claim.note


def test_an_unresolved_probe_is_not_measured_never_zero(tmp_path):
    run = _run(tmp_path)
    _probe(run, 1, 0, 0.02, name="gaussian_1")
    _probe(run, 1, 0, 0.0, name="gaussian_2", resolved=False)
    # a file from before the resolution check: a = b = 0 on two points; the reader applies the gate
    folder = _folder(run, 1, 0)
    _write(folder / "probe_gaussian_3.json", {"F": 1.0, "noise_floor": 1e-6, "a_over_sqrt_F": 0.0,
                                              "direction": {"kind": "gaussian", "seed": 3},
                                              "fit": {"a": 0.0, "b": 0.0, "rel_rms": 0.0, "envelope": 1.0, "points": 2}})
    t = np.array([-1e-3, 0.0, 1e-3, 1.0])
    np.savez(folder / "probe_gaussian_3.npz", t=t, f=1.0 + t, r=np.array([1e-9, 0.0, 1e-9, 0.5]))
    claim = V.smoothness_verdict(V.as_run(run))
    rows = {r["direction"]: r for r in claim.rows}
    for name in ("gaussian_2", "gaussian_3"):
        row = rows[name]
        assert row["a"] is None and row["b"] is None and row["a/√F"] is None and row["a/‖∇F‖"] is None
        assert row["fit"].startswith("not measured")
    assert sorted(n["direction"] for n in claim.numbers["not_measured"]) == ["gaussian_2", "gaussian_3"]
    assert claim.numbers["judged"] == 1 and claim.numbers["max_a_over_grad_norm"] == pytest.approx(0.02)
    assert "2 not measured" in claim.summary
    (tmp_path / "only").mkdir()
    only = _run(tmp_path / "only")
    _probe(only, 1, 0, 0.0, resolved=False)
    claim = V.smoothness_verdict(V.as_run(only))
    assert claim.verdict == V.INCONCLUSIVE and "max_a_over_grad_norm" not in claim.numbers


def test_dominance_reports_c_over_all_points_and_the_exponent(tmp_path):
    """A cross-entropy-like track: ‖∇F‖² = F above 0.01 (PL, p = 1), ‖∇F‖² = 100·F² below (p = 2)."""
    run = _run(tmp_path)
    high = np.geomspace(2.0, 0.011, 12)
    low = np.geomspace(0.01, 1e-5, 12)
    _track(run, [(F, F) for F in high] + [(F, 100 * F ** 2) for F in low])
    _dominance(run, 1, 0, F=0.5, grad_sq=0.5)
    claim = V.dominance_verdict(V.as_run(run))
    n = claim.numbers
    assert claim.verdict == V.HOLDS and n["c"] == pytest.approx(1.0)
    assert n["c_all"] == pytest.approx(100 * 1e-5) and n["c_all_at_F"] == pytest.approx(1e-5)
    assert n["points_all"] == 25
    assert n["p_pl_regime"]["p"] == pytest.approx(1.0) and n["p_pl_regime"]["n"] == 13
    assert n["p_converged"]["p"] == pytest.approx(2.0) and n["p_converged"]["n"] == 12
    assert n["p_all"]["n"] == 25 and 1.0 < n["p_all"]["p"] < 2.0
    assert "collapses" in claim.summary and "F > 0.01" in claim.summary


def test_the_readme_threshold_table_names_every_gate():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Verdicts"):readme.index("## Results")]
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    smooth, dom = rows["semi-smoothness"], rows["gradient dominance"]
    assert f"a/‖∇F‖ ≤ {V.fmt(V.SMOOTHNESS_MAX_A_OVER_GRAD_NORM)}" in smooth
    assert not hasattr(V, "FIT_MAX_REL_RMS") and "RMS error ≤" not in smooth  # looseness is no gate
    assert "only gates" in smooth and "envelope" in smooth
    assert f"{V.PROBE_MIN_POINTS} distinct \\|t\\|" in smooth and f"{V.PROBE_MIN_DECADES:g} decade" in smooth
    assert "64 machine epsilons" in smooth and "\\|r\\| ≤ F" in smooth  # pipes escaped in a table cell
    spelled = lambda x: {V.fmt(x), f"{x:g}", f"{x:.0e}".replace("e-0", "e-")}  # 0.001, 1e-3
    assert any(f"F > {v}" in dom for v in spelled(V.DOMINANCE_F_FLOOR))
    assert any(f"≥ {v}" in dom for v in spelled(V.DOMINANCE_MIN_C))
    assert f"{V.fmt(100 * V.DOMINANCE_P_LEVEL)} % t-interval" in dom
    assert "all points" in dom and "F^p" in dom


def test_unresolved_numbers_are_shown_as_bounds_never_as_values(tmp_path):
    run = _run(tmp_path)
    floor = 64 * float(np.finfo(np.float32).eps)
    below = {"resolved": False, "bound": floor, "side": "below", "why": "below the rounding floor of F"}
    for r in range(2):
        _second_order(run, 3, r, d_grad=0.2, d_plane=0.2, d_curv=below, controls=(0.0, 0.0, 0.0))
    claim = {c.id: c for c in V.run_verdicts(run).claims}["second_order"]
    row = claim.rows[0]
    assert row["d_curv"] == f"not resolved (< {V.fmt(floor, 2)})" and "0" not in row["d_curv"].split("(")[0]
    assert claim.verdict == V.HOLDS
    # d_grad never bracketed: the extra has no denominator, the checkpoint is not judged
    falling = {"resolved": False, "bound": 0.3, "side": "above", "why": "still falling"}
    _write(_folder(run, 4, 0) / "second_order.json", {
        "F": 1.0, "d_grad": falling, "d_curv": 0.01, "d_plane": 0.31, "extra": 0.01,
        "extra_fraction": {"resolved": False, "bound": None, "side": "below", "why": "d_grad"},
        "lambda_min": -1.0, "lambda_min_converged": True, "bracketed": False,
        "controls": {"random_0": _direction(0.3, 0.0)}})
    claim = {c.id: c for c in V.run_verdicts(run).claims}["second_order"]
    row = next(r for r in claim.rows if r["epoch"] == 4)
    assert row["d_grad"] == "not resolved (≥ 0.3)" and row["status"] == "not judged"
    assert claim.verdict == V.INCONCLUSIVE and claim.numbers["unjudged_epochs"] == [4]


def _trajectory(run, repeat, margins, tolerance=1e-6, gap=1e-3):
    """A trajectory file of checkpoints 0, 1, 2, … toward the last, with the given margins inner − gap."""
    folder = run / "analysis" / "trajectory"
    folder.mkdir(parents=True, exist_ok=True)
    n = len(margins)
    epochs = np.arange(n + 1, dtype=float)
    status = np.where(np.array(margins) >= tolerance, 1.0, np.where(np.array(margins) < -tolerance, -1.0, 0.0))
    inner = gap + np.array(margins)
    (folder / f"repeat_{repeat}.json").write_text(json.dumps({
        "key": {}, "context": {**CONTEXT, "epoch": f"0..{n}"}, "settings": {},
        "result": {"target_epoch": n, "star_holds_fraction": float(np.mean(status == 1.0))}}))
    np.savez(folder / f"repeat_{repeat}.npz", epoch=epochs, F=np.linspace(2, 1, n + 1), grad_sq=np.ones(n + 1),
             star_epoch=epochs[:-1], star_inner=inner, star_gap=np.full(n, gap), star_ratio=inner / gap,
             star_holds=(status == 1.0).astype(float), star_status=status, star_tolerance=np.full(n, tolerance),
             star_target_F=np.ones(n), star_margin=np.array(margins, float), pl_zero=np.ones(n + 1),
             pl_min=np.ones(n + 1), travelled=np.linspace(0, 1, n + 1), distance_to_final=np.linspace(1, 0, n + 1))


@pytest.mark.parametrize("margins, verdict, failing", [
    ([[1e-3, 2e-3, 5e-4]], V.HOLDS, []),
    ([[1e-3, -5e-7, 5e-4]], V.INCONCLUSIVE, []),                 # a failure inside the rounding tolerance
    ([[1e-3, -5e-3, 5e-4]], V.FAILS, [1]),                        # beyond it
    ([[1e-3, -5e-3, 5e-4], [1e-3, 1e-3, 5e-4], [1e-3, 2e-3, 1e-3]], V.INCONCLUSIVE, []),  # fails in 1 repeat of 3
    ([[1e-3, -5e-3, 5e-4], [1e-3, -1e-3, 5e-4], [1e-3, 2e-3, 1e-3]], V.FAILS, [1]),       # in 2 of 3
])
def test_star_convexity_verdict_counts_failures_beyond_rounding_in_most_repeats(tmp_path, margins, verdict, failing):
    run = _run(tmp_path)
    for r, m in enumerate(margins):
        _trajectory(run, r, m)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["star_convexity"]
    assert claim.verdict == verdict and claim.numbers["failing_epochs"] == failing
    flat = np.array(margins).ravel()
    assert claim.numbers["holds_fraction"] == pytest.approx(np.mean(flat >= 1e-6))
    assert [f[2] for f in claim.numbers["failing"]] == pytest.approx(list(flat[flat < -1e-6]))
    if len(margins) > 1:
        assert claim.numbers["holds_fraction_per_repeat"]["n"] == len(margins)
    if verdict == V.INCONCLUSIVE and len(margins) == 1:
        assert "inside the rounding tolerance" in claim.note
