"""The width sweep: slopes and judgements by hand, and a tiny sweep end to end whose trajectory
numbers equal an independent computation from its checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.checkpoint import load_model
from landscape.cli import main
from landscape.data import load_dataset
from landscape.objective import Objective
from landscape.runtime import Runtime
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
    summary = run_sweep(config, out, Runtime(progress=False, echo=lambda *a: None))
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


ONE_CELL = ["sweep", "--preset", "smoke", "--widths", "1", "--depths", "1", "--seeds", "0", "--quiet"]


def _files(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refusal(result) -> str:
    """The one line a refused command prints (and asserts it is one line, without a traceback)."""
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def one_cell_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("one-cell") / "S"
    result = CliRunner().invoke(main, ONE_CELL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("option, value, setting, stored", [("--target-loss", "0.01", "target_loss", 0.05),
                                                             ("--lr", "0.05", "lr", 0.1)])
def test_a_rerun_with_other_training_settings_is_refused_and_another_out_works(one_cell_sweep, tmp_path, option,
                                                                                value, setting, stored):
    before = _files(one_cell_sweep)
    line = _refusal(CliRunner().invoke(main, ONE_CELL + [option, value, "--out", str(one_cell_sweep)]))
    assert f"{setting}: stored {stored!r}, requested {float(value)!r}" in line and "choose another --out" in line
    assert _files(one_cell_sweep) == before  # nothing written, nothing deleted
    fresh = tmp_path / "S2"
    result = CliRunner().invoke(main, ONE_CELL + [option, value, "--out", str(fresh)])
    assert result.exit_code == 0, result.output
    stored_train = json.loads((fresh / "mlp1_d8_w1_s0" / "config.json").read_text())["train"]
    key = {"target_loss": "stop_at_loss"}.get(setting, setting)
    assert stored_train[key] == float(value)
    cell = json.loads((fresh / "sweep.json").read_text())["cells"][0]
    target = json.loads((fresh / "sweep_config.json").read_text())["sweep"]["target_loss"]
    assert cell["reached_target"] == (cell["final_train_loss"] <= target)  # the report's claim matches the cell


def test_a_cell_of_other_settings_is_refused_without_a_sweep_config(one_cell_sweep, tmp_path):
    """The cell's own config.json is checked too (a sweep folder of an older version has no sweep_config.json)."""
    import shutil

    copy = tmp_path / "S"
    shutil.copytree(one_cell_sweep, copy)
    (copy / "sweep_config.json").unlink()
    before = _files(copy)
    line = _refusal(CliRunner().invoke(main, ONE_CELL + ["--lr", "0.05", "--out", str(copy)]))
    assert "mlp1_d8_w1_s0 holds a run" in line and "lr: stored 0.1, requested 0.05" in line
    assert _files(copy) == before


def test_a_rerun_with_the_same_settings_resumes_without_training(one_cell_sweep, tmp_path):
    import shutil

    copy = tmp_path / "S"
    shutil.copytree(one_cell_sweep, copy)
    checkpoints = {p: p.stat().st_mtime_ns for p in (copy / "mlp1_d8_w1_s0" / "checkpoints").iterdir()}
    result = CliRunner().invoke(main, ONE_CELL + ["--out", str(copy)])
    assert result.exit_code == 0, result.output
    assert "mlp1_d8_w1_s0: already trained" in result.output
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints
    record = json.loads((copy / "timings.json").read_text())["mlp1_d8_w1_s0"]
    assert "train_s" in record["invocations"][0] and "train_s" not in record["invocations"][1]
    assert record["analysis_s"] == pytest.approx(sum(i["analysis_s"] for i in record["invocations"]))
