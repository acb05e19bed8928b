"""Verdicts with margins, spread and 'inconclusive', judged on hand-written result files that land
on each side of every threshold (no training involved)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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


def _probe(run, epoch, repeat, a, F=1.0, rel_rms=0.1):
    folder = _folder(run, epoch, repeat)
    name = f"gaussian_{1000 * repeat}"
    _write(folder / f"probe_{name}.json", {
        "F": F, "noise_floor": 1e-6, "a_over_sqrt_F": a / np.sqrt(F),
        "direction": {"kind": "gaussian", "seed": 1000 * repeat},
        "fit": {"a": a, "b": 0.1, "rel_rms": rel_rms, "envelope": 1.2, "points": 8}})
    t = np.linspace(-1, 1, 5)
    np.savez(folder / f"probe_{name}.npz", t=t, f=t ** 2, r=t ** 2)


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
    (0.3, 0.9, V.INCONCLUSIVE),  # over the threshold only where the fit is poor
])
def test_smoothness_verdict_and_poor_fits(tmp_path, a, rel_rms, verdict):
    run = _run(tmp_path)
    _probe(run, 1, 0, 0.02)
    _probe(run, 1, 1, a, rel_rms=rel_rms)
    claim = {c.id: c for c in V.run_verdicts(run).claims}["semi_smoothness"]
    assert claim.verdict == verdict
    if verdict == V.HOLDS:
        assert claim.numbers["max_a_over_sqrt_F"] == pytest.approx(a)
        assert claim.numbers["per_repeat"]["n"] == 2


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
