"""Measurements that resolve what they report: spectra with standard errors, surfaces whose gradient
line brackets its minimum, interpolations through both checkpoints, Hessians whose subset is shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator

from landscape.analysis import Analysis
from landscape.density import lanczos_quadrature, negative_mass, outlier_count
from landscape.measurements.hessian_subsets import HESSIAN_SUBSETS, subset_sizes
from landscape.measurements.interpolation import interpolation_alphas
from landscape.measurements.surface import bracketing_half_width
from landscape.plots import plot_hessian_subsets
from landscape.readers import load_hessian_subsets, load_spectrum, load_surface
from landscape.results import RunDir, read_json
from landscape.runtime import Runtime
from landscape.settings import AnalysisSettings

DEFAULTS = AnalysisSettings()


# ----------------------------------------------------------------------------- spectrum
def test_the_default_spectrum_counts_the_outliers_of_a_known_operator_with_a_finite_stderr():
    """Six eigenvalues in [8, 40] above a bulk in [−0.3, 0.6], random eigenvectors (so each probe's count varies)."""
    rng = np.random.default_rng(3)
    eigenvalues = np.r_[rng.uniform(-0.3, 0.6, 594), np.linspace(8, 40, 6)]
    Q, _ = np.linalg.qr(rng.standard_normal((600, 600)))
    q = lanczos_quadrature(aslinearoperator((Q * eigenvalues) @ Q.T), DEFAULTS.spectrum_probes,
                           DEFAULTS.spectrum_steps, seed=0)
    out, mass = outlier_count(q), negative_mass(q)
    assert DEFAULTS.spectrum_probes >= 5 and out.probes == DEFAULTS.spectrum_probes
    assert out.stderr is not None and 0 < out.stderr < 2.5  # finite, and small enough to tell 6 from 0 or 12
    assert abs(out.value - 6) <= 3 * out.stderr
    assert mass.stderr is not None and np.isfinite(mass.stderr)
    assert abs(mass.value - np.mean(eigenvalues < 0)) <= 4 * mass.stderr + 0.02


def test_one_probe_gives_no_standard_error_rather_than_nan():
    q = lanczos_quadrature(aslinearoperator(np.diag(np.linspace(-1, 2, 50))), probes=1, steps=10)
    assert negative_mass(q).stderr is None and outlier_count(q).stderr is None
    assert negative_mass(q).as_dict()["probes"] == 1


def test_a_one_probe_spectrum_is_stored_and_read_with_no_standard_error(tmp_path):
    out = _tiny_run(tmp_path)
    for probes in (1, 2):
        settings = AnalysisSettings(measurements=["spectrum"], epochs=[1], spectrum_probes=probes, spectrum_steps=8)
        Analysis(out, settings, Runtime(progress=False, echo=lambda *a: None)).run_all()
        (spectrum,) = load_spectrum(RunDir(out))
        stored = read_json(spectrum["path"])["result"]
        if probes == 1:
            assert stored["negative_mass_stderr"] is None and stored["outliers_above_stderr"] is None
            assert spectrum["negative_mass_stderr"] is None and spectrum["outliers_above_stderr"] is None
        else:
            assert spectrum["negative_mass_stderr"] >= 0 and spectrum["outliers_above_stderr"] >= 0
        assert stored["probes"] == probes


# ----------------------------------------------------------------------------- surfaces
def test_widening_brings_the_minimum_of_the_gradient_line_inside_the_grid():
    """F(c) = (c − 3)²: the minimum at c = 3 is outside the starting half-width 0.5."""
    calls = []

    def line(coords):
        calls.append(coords)
        return (coords - 3.0) ** 2

    found = bracketing_half_width(line, 0.5, cap=100.0, points=9)
    assert found == {"half_width": 4.0, "widenings": 3, "x_line_interior": True}
    coords = np.linspace(-4, 4, 9)
    assert 0 < int(np.argmin((coords - 3.0) ** 2)) < 8 and len(calls) == 4
    # the cap stops the widening: recorded as not interior
    assert bracketing_half_width(line, 0.5, cap=1.5, points=9) == {"half_width": 1.5, "widenings": 2,
                                                                   "x_line_interior": False}
    # already interior: no widening
    assert bracketing_half_width(lambda c: c ** 2, 0.5, cap=100.0, points=9)["widenings"] == 0


# ----------------------------------------------------------------------------- interpolation
@pytest.mark.parametrize("points", [DEFAULTS.interpolation_points, 15, 41])
def test_the_interpolation_grid_holds_both_checkpoints_exactly(points):
    alphas = interpolation_alphas(points)
    inside = alphas[(alphas >= 0) & (alphas <= 1)]
    assert 0.0 in alphas.tolist() and 1.0 in alphas.tolist()
    assert len(inside) == points >= 15
    assert alphas[0] == pytest.approx(-0.5) and alphas[-1] == pytest.approx(1.5)
    assert np.allclose(np.diff(alphas), 1 / (points - 1))


# ----------------------------------------------------------------------------- Hessian subsets
def test_subset_sizes_double_up_to_all_examples():
    assert subset_sizes(300) == [32, 64, 128, 256, 300]
    assert subset_sizes(256) == [32, 64, 128, 256]
    assert subset_sizes(20) == [20] and subset_sizes(300, 8, 40) == [8, 16, 32, 40]


def _dense_hessian(objective) -> np.ndarray:
    eye = torch.eye(objective.dim, dtype=torch.float64)
    H = torch.stack([objective.hvp(objective.theta0, e) for e in eye]).cpu().numpy()
    return (H + H.T) / 2


def _tiny_run(tmp_path):
    """A bias-free mlp (136 weights) trained one epoch on 24 separated vectors; checkpoints at epochs 0 and 1."""
    from landscape.train import TrainConfig, train

    out = tmp_path / "run"
    train(TrainConfig(arch="mlp1_d6", dataset="synthetic:separated?n=24&d=6&delta=0.5&classes=3&seed=0", epochs=1,
                      batch_size=8, augment=False, width=0.125, save_at=[0, 1]),
          out, Runtime(progress=False, echo=lambda *a: None))
    return out


def test_a_surface_records_its_widening_and_whether_its_gradient_line_brackets(tmp_path):
    out = _tiny_run(tmp_path)
    settings = AnalysisSettings(measurements=["curvature", "surface"], epochs=[1], surface_points=5,
                                curvature_max_matvecs=60)
    Analysis(out, settings, Runtime(progress=False, echo=lambda *a: None)).run_all()
    surface = load_surface(RunDir(out), 1)
    extent, row = surface["result"]["extent_rule"], surface["loss"][2]
    assert surface["half_width"] == extent["half_width"] == surface["xs"][-1]
    assert extent["half_width"] == pytest.approx(min(extent["rule_half_width"] * 2 ** extent["widenings"],
                                                     extent["cap"]))
    assert surface["result"]["x_line_interior"] == (0 < int(np.argmin(row)) < 4) == extent["x_line_interior"]
    assert extent["x_line_interior"] or extent["half_width"] == extent["cap"] or extent["widenings"] == 4


def test_hessian_subsets_give_one_row_per_subset_and_the_dense_eigenvalues_on_all_examples(tmp_path):
    out = _tiny_run(tmp_path)
    settings = AnalysisSettings(measurements=["hessian_subsets"], precision="fp64", hessian_subsets_smallest=6,
                                curvature_tol=1e-10, curvature_max_matvecs=400, alignment_k=2)
    analysis = Analysis(out, settings, Runtime(progress=False, echo=lambda *a: None))
    analysis.run_all()
    found = load_hessian_subsets(RunDir(out))
    assert [r["size"] for r in found["rows"]] == [6, 12, 24] and found["epoch"] == 1
    model = analysis.model_at(1, analysis.repeat_indices(0))[0]
    eigenvalues = np.linalg.eigvalsh(_dense_hessian(analysis.objective(model)))
    full = found["rows"][-1]
    assert full["lambda_max"] == pytest.approx(eigenvalues[-1], rel=1e-6, abs=1e-9)
    assert full["lambda_min"] == pytest.approx(eigenvalues[0], rel=1e-6, abs=1e-9)
    assert full["lambda_max_bound"] < 1e-6 and full["alignment_k"] == 2
    assert HESSIAN_SUBSETS.path(RunDir(out)).is_file()
    assert [p.name for p in plot_hessian_subsets(out, tmp_path / "figures")] == ["hessian_subsets.png",
                                                                                   "hessian_subsets.pdf"]


# ----------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", ["quick", "paper-cpu", "paper-cpu-tiny", "smoke"])
def test_every_cpu_preset_measures_F_on_the_whole_training_set(name):
    from landscape.reproduce import get_preset

    preset = get_preset(name)
    s = preset.analysis
    assert s.subset is None  # F over all training images
    assert s.curvature_subset is not None  # the Hessian on a subset
    if name in ("quick", "paper-cpu"):  # quick: 8 steps a side and 30 Lanczos steps keep 3 seeds near 20 min
        assert s.spectrum_probes >= 5 and s.probe_steps >= (8 if name == "quick" else 10)
        assert s.interpolation_points >= 15 and s.spectrum_steps >= 30
    if name == "paper-cpu":
        assert s.spectrum_steps >= 80
    assert ("hessian_subsets" in s.measurements) == (name == "quick")


def test_hessian_subset_settings_out_of_range_are_one_line_errors():
    from landscape.errors import LandscapeError

    for bad in ({"hessian_subsets_smallest": 0}, {"hessian_subsets_smallest": 64, "hessian_subsets_largest": 32},
                {"hessian_subsets_epoch": 3, "epochs": [1, 2]}):
        with pytest.raises(LandscapeError):
            AnalysisSettings(**bad).validate()
