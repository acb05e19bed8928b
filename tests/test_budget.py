"""The analysis time model: counts of passes by hand, and a budget that shrinks the settings to fit."""

from __future__ import annotations

import pytest

from landscape.budget import SECOND_ORDER_EVALUATIONS, Sizes, UnitCosts, fit_to_budget, plan
from landscape.measurements.second_order import DIRECTION_EVALUATIONS
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
    # the expected Lanczos steps (11 pairs wanted: 10 + 3.2·11 is over the cap 30) in products' time, never
    # more than the cap; residuals of the reported top pair and the most negative one; the alignment's gradient
    assert seconds["curvature"] == runs * ((30 + 1 + 1) * 3 + 2) * 16
    assert seconds["spectrum"] == runs * 2 * 10 * 3 * 16
    # −∇F, Gaussian, filter, two Hessian; each: the scout (t = 0 and ±8 magnitudes, one per decade from
    # 1e-7 to 1), 3 rounds of 4 bisections, and 4 ladder steps per side
    assert seconds["probes"] == runs * (1 + 1 + 1 + 2) * ((2 * 8 + 1) + 3 * 4 + 2 * 4) * 64
    # the test runs on the Hessian's examples: y's searches, then those of 3 random controls and the top eigenvector
    assert seconds["second_order"] == runs * (SECOND_ORDER_EVALUATIONS + DIRECTION_EVALUATIONS * 4) * 16
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


def test_the_flop_unit_cost_of_a_tiny_mlp_is_a_hand_count():
    from landscape.models import build_model
    from landscape.planning import REFERENCE, arch_forward_flops, example_input, flop_unit_costs, forward_flops

    # mlp1_d8 at width 4/64: 8 → 4 → 4 → 10, no biases; a product of (1×k)·(k×m) is 2·k·m FLOPs
    hand = 2 * (8 * 4 + 4 * 4 + 4 * 10)
    assert arch_forward_flops("mlp1_d8", 10, 4 / 64) == hand == 176
    assert forward_flops(build_model("mlp1_d8", 10, 4 / 64), example_input("mlp1_d8")) == hand  # real weights too
    costs = flop_unit_costs(hand, tflops=hand / 1e12)  # one second per forward pass
    assert costs.forward == pytest.approx(1.0)
    assert costs.gradient == pytest.approx(REFERENCE.gradient_forwards)
    assert costs.hvp == pytest.approx(REFERENCE.gradient_forwards * REFERENCE.hvp_gradients)


def test_a_cell_plan_is_its_pass_counts_times_the_unit_costs():
    from landscape.planning import cell_cost
    from landscape.reproduce import Cell

    s = AnalysisSettings(measurements=["dominance", "curvature", "surface", "interpolation"], subset=1000,
                         test_subset=500, repeats=2, curvature_subset=100, curvature_max_matvecs=20,
                         trace_samples=0, alignment_k=0, surface_points=5, interpolation_points=7,
                         interpolation_pairs="init-final,consecutive")
    train = {"epochs": 4, "save_at": [0, 2, 4], "train_subset": 2000}
    costs = UnitCosts(forward=1e-3, gradient=3e-3, hvp=1e-2)
    c = cell_cost(Cell("resnet8", "cifar10"), train, s, costs, training_gradient=5e-3)
    assert (c.sizes.train, c.sizes.test, c.sizes.curvature) == (1000, 500, 100)
    assert (c.sizes.checkpoints, c.sizes.all_checkpoints, c.sizes.interpolation_pairs) == (3, 3, 3)
    assert c.training_s == pytest.approx(4 * 2000 * 5e-3)
    # by hand: per checkpoint × repeat, statistics (1000) + dominance (∇F on 1000, F on 1000 + 500) forwards,
    # (20 + 2) products on 100; a 5×5 surface per checkpoint; 3 pairs × 7 points × (3·1000 + 500)
    runs = 3 * 2
    assert c.hvps == runs * 22 * 100 and c.gradients == runs * 1000
    # the surface's x line is evaluated up to 1 + SURFACE_WIDENINGS times before the grid; 7 points in [0, 1]
    # continue at the same spacing to −0.5 and 1.5: 13 points
    assert c.forwards == runs * (1000 + 1000 + 500) + 3 * (25 + (1 + SURFACE_WIDENINGS) * 5) * 1000 + 3 * 13 * 3500
    assert c.analysis_total_s == pytest.approx(c.forwards * 1e-3 + c.gradients * 3e-3 + c.hvps * 1e-2)


def test_eigensolves_count_their_expected_steps_below_the_cap():
    """Lanczos is counted at 10 + 3.2 steps per wanted pair (measured), two products a step, at most the cap."""
    from landscape.budget import expected_lanczos_steps

    s = AnalysisSettings(curvature_top=1, alignment_k=0, curvature_max_matvecs=80, curvature_subset=16)
    assert expected_lanczos_steps(s) == 10 + 3.2 * 2
    n = Sizes(train=16, test=8, curvature=16, checkpoints=1, all_checkpoints=1, interpolation_pairs=0)
    seconds = plan(s, n, UnitCosts(forward=0.0, gradient=0.0, hvp=1.0))
    assert seconds["curvature"] == (round(2 * 16.4) + 2) * 16  # steps as products, two residuals, no alignment
    assert expected_lanczos_steps(AnalysisSettings(curvature_max_matvecs=8)) == 8
