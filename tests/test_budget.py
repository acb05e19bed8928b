"""The analysis time model: counts of passes by hand, and a budget that shrinks the settings to fit."""

from __future__ import annotations

import pytest

from landscape.budget import SECOND_ORDER_EVALUATIONS, Sizes, UnitCosts, fit_to_budget, plan
from landscape.settings import AnalysisSettings


def test_plan_counts_every_pass():
    s = AnalysisSettings(measurements=["dominance", "curvature", "spectrum", "probes", "second_order", "surface"],
                         repeats=2, probe_gaussian=1, probe_filter=1, probe_steps=4, curvature_max_matvecs=30,
                         spectrum_probes=2, spectrum_steps=10, surface_points=5)
    n = Sizes(train=64, test=32, curvature=16, checkpoints=3, all_checkpoints=5, interpolation_pairs=0)
    seconds = plan(s, n, UnitCosts(forward=1.0, gradient=2.0, hvp=3.0))
    runs = 3 * 2  # checkpoints × repeats
    assert seconds["dominance"] == runs * (2 * 64 + (32 + 64))
    # the expected Lanczos steps (11 pairs wanted: 10 + 3.2·11 is over the cap 30, so 30) at two products each,
    # residuals of the reported top pair and the most negative one, the alignment's gradient
    assert seconds["curvature"] == runs * ((2 * 30 + 1 + 1) * 3 + 2) * 16
    assert seconds["spectrum"] == runs * 2 * 10 * 3 * 16
    assert seconds["probes"] == runs * (1 + 1 + 1 + 2) * 2 * 4 * 64  # −∇F, Gaussian, filter, two Hessian
    assert seconds["second_order"] == runs * SECOND_ORDER_EVALUATIONS * 64
    assert seconds["surface"] == 3 * 25 * 64  # once per checkpoint, not per repeat


def test_a_budget_shrinks_the_expensive_settings_until_the_plan_fits():
    s = AnalysisSettings()
    n = Sizes(train=256, test=256, curvature=256, checkpoints=2, all_checkpoints=2, interpolation_pairs=1)
    costs = UnitCosts(forward=1e-3, gradient=3e-3, hvp=9e-3)
    before = sum(plan(s, n, costs).values())
    chosen, record = fit_to_budget(s, before / 60 / 2, n, costs)
    assert record["fits"] and sum(plan(chosen, n, costs).values()) <= before / 2
    assert record["estimate_before_s"] == pytest.approx(before)
    assert chosen.curvature_max_matvecs < s.curvature_max_matvecs and chosen.surface_points % 2 == 1
    assert record["changed"]["curvature_max_matvecs"] == [s.curvature_max_matvecs, chosen.curvature_max_matvecs]
    same, record = fit_to_budget(s, 2 * before / 60, n, costs)
    assert same == s and record["changed"] == {}


def test_eigensolves_count_their_expected_steps_below_the_cap():
    """Lanczos is counted at 10 + 3.2 steps per wanted pair (measured), two products a step, at most the cap."""
    from landscape.budget import expected_lanczos_steps

    s = AnalysisSettings(curvature_top=1, alignment_k=0, curvature_max_matvecs=80, curvature_subset=16)
    assert expected_lanczos_steps(s) == 10 + 3.2 * 2
    n = Sizes(train=16, test=8, curvature=16, checkpoints=1, all_checkpoints=1, interpolation_pairs=0)
    seconds = plan(s, n, UnitCosts(forward=0.0, gradient=0.0, hvp=1.0))
    assert seconds["curvature"] == (round(2 * 16.4) + 2) * 16  # steps as products, two residuals, no alignment
    assert expected_lanczos_steps(AnalysisSettings(curvature_max_matvecs=8)) == 8
