"""The width sweep: slopes and judgements by hand, and a tiny sweep end to end whose trajectory
numbers equal an independent computation from its checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from landscape.checkpoint import load_model
from landscape.data import load_dataset
from landscape.objective import Objective
from landscape.settings import AnalysisSettings
from landscape.sweep import SweepConfig, arch_at_depth, fit_slope, judge, run_sweep

SEPARATED = "synthetic:separated?n=16&d=8&delta=0.5&classes=2&test=8"


def test_slopes_are_log_log_least_squares_and_judged_by_every_seed():
    widths = [1, 2, 4, 8]
    assert fit_slope(widths, [3 * w ** -0.5 for w in widths]) == pytest.approx(-0.5)
    assert fit_slope(widths, [5.0, 0.0, 20.0, float("nan")]) == pytest.approx(1.0)  # zeros and NaN left out
    assert math.isnan(fit_slope(widths, [1.0, 0, 0, 0]))
    assert judge("decreases", [-0.5, -0.1]) == "agrees"
    assert judge("decreases", [0.2, 0.1]) == "disagrees"
    assert judge("increases", [0.2, -0.1]) == "inconclusive"
    assert judge("does not increase", [0.05, -1.0]) == "agrees" and judge("does not increase", [0.3, 0.2]) == "disagrees"
    assert judge("decreases", [float("nan")], all_zero=True) == "agrees"
    assert arch_at_depth("resnet20", 32) == "resnet32" and arch_at_depth("mlp3_d16", 1) == "mlp1_d16"


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    config = SweepConfig(arch="mlp1_d8", dataset=SEPARATED, widths=[1, 2], seeds=[0, 1], target_loss=0.08,
                         max_epochs=80, lr=0.1, momentum=0.0, batch_size=16, test_subset=8, loss="mse",
                         train_params="hidden", checkpoints=2,
                         analysis=AnalysisSettings(measurements=["dominance", "trajectory", "interpolation"],
                                                   params="hidden", interpolation_points=5,
                                                   interpolation_pairs="init-final", curvature_max_matvecs=20,
                                                   ntk_examples=16))
    out = tmp_path_factory.mktemp("sweep")
    summary = run_sweep(config, out, progress=False, echo=lambda *a: None)
    return config, out, summary


def test_every_cell_reaches_the_target_and_the_slopes_come_from_the_cells(tiny_sweep):
    config, out, summary = tiny_sweep
    assert json.loads((out / "sweep.json").read_text())["quantities"].keys() == summary["quantities"].keys()
    cells = summary["cells"]
    assert len(cells) == 4 and all(c["reached_target"] for c in cells)
    for q, info in summary["quantities"].items():
        for seed in config.seeds:
            sel = [c for c in cells if c["seed"] == seed]
            expected = fit_slope([c["width"] for c in sel], [c[q] for c in sel])
            got = info["per_depth"]["1"]["slopes"][seed]
            assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected)
    report = (out / "report.md").read_text()
    assert "Predicted trends" in report and "theory: with width it" in report
    assert (out / "figures" / "sweep_travelled.png").is_file()
    lemma = cells[0]["lemma"]  # the synthetic data's δ and n are carried to the lemma's comparison
    assert lemma["delta"] == 0.5 and lemma["n"] == 16 and lemma["lemma"] == pytest.approx(0.5 / 16 ** 2)


def test_trajectory_numbers_equal_a_direct_computation(tiny_sweep):
    _, out, summary = tiny_sweep
    run = out / summary["cells"][1]["folder"]
    stored = np.load(run / "analysis" / "trajectory" / "repeat_0.npz")
    epochs = [int(e) for e in stored["epoch"]]
    data = load_dataset(SEPARATED)
    thetas, values, grads = {}, {}, {}
    for e in epochs:  # no batch norm: F at θ_t needs nothing but the checkpoint
        model, _, _ = load_model(run / "checkpoints" / f"epoch_{e:04d}.pt")
        obj = Objective(model, data.train_images, data.train_labels, loss="mse", precision="fp64")
        values[e], grads[e] = obj.value_and_grad()
        thetas[e] = obj.theta0
    final, first = epochs[-1], epochs[0]
    np.testing.assert_allclose(stored["F"], [values[e] for e in epochs], rtol=1e-5)
    inner = [float(grads[e] @ (thetas[e] - thetas[final])) for e in epochs[:-1]]
    np.testing.assert_allclose(stored["star_inner"], inner, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(stored["star_gap"], [values[e] - values[final] for e in epochs[:-1]], rtol=1e-4,
                               atol=1e-9)
    travelled = [float((thetas[e] - thetas[first]).norm() / thetas[first].norm()) for e in epochs]
    np.testing.assert_allclose(stored["travelled"], travelled, rtol=1e-5, atol=1e-12)
    assert stored["ntk_drift"][0] == 0 and np.all(stored["ntk_drift"][1:] > 0)
    assert torch.isfinite(grads[final]).all()
