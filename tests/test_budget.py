"""The analysis time model: counts of passes by hand, and a budget that shrinks the settings to fit."""

from __future__ import annotations

import pytest

from landscape.budget import SECOND_ORDER_EVALUATIONS, Sizes, UnitCosts, fit_to_budget, plan
from landscape.measurements.surface import SURFACE_WIDENINGS
from landscape.settings import AnalysisSettings


def test_plan_counts_every_pass():
    s = AnalysisSettings(measurements=["dominance", "curvature", "spectrum", "probes", "second_order", "surface"],
                         repeats=2, probe_gaussian=1, probe_filter=1, probe_steps=4, curvature_max_matvecs=30,
                         spectrum_probes=2, spectrum_steps=10, surface_points=5)
    n = Sizes(train=64, test=32, curvature=16, checkpoints=3, all_checkpoints=5, interpolation_pairs=0)
    seconds = plan(s, n, UnitCosts(forward=1.0, gradient=2.0, hvp=3.0))
    runs = 3 * 2  # checkpoints × repeats
    assert seconds["dominance"] == runs * (2 * 64 + (32 + 64))
    # the cap, residuals of the reported top pair and the most negative one, the alignment's ∇F
    assert seconds["curvature"] == runs * ((30 + 1 + 1) * 3 + 2) * 16
    assert seconds["spectrum"] == runs * 2 * 10 * 3 * 16
    assert seconds["probes"] == runs * (1 + 1 + 1 + 2) * 2 * 4 * 64  # −∇F, Gaussian, filter, two Hessian
    assert seconds["second_order"] == runs * SECOND_ORDER_EVALUATIONS * 64
    # once per checkpoint, not per repeat: the grid, and its x line at most 1 + SURFACE_WIDENINGS times before it
    assert seconds["surface"] == 3 * (25 + (1 + SURFACE_WIDENINGS) * 5) * 64


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
