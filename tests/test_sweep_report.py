"""The sweep report along other axes than width: no width table with fewer than 3 widths, the axis named in
every points text, two depth fits within the rms tolerance indistinguishable, no NaN common loss level,
and the figures' words (the family, zeros at the floor, gradient-descent steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.scaling import fit_slope
from landscape.sweep_fits import RMS_TOLERANCE, at_level, better_fit, common_level, fit_summary

CONFIG = {"arch": "mlp2_d16", "dataset": "synthetic:separated?n=64&d=16", "widths": [1], "seeds": [0, 1, 2],
          "target_loss": 0.02, "loss": "mse", "lr": 0.05, "lr_scaling": "constant", "momentum": 0.0,
          "max_epochs": 50, "checkpoints": 4, "batch_size": 64, "full_batch": True}


def _path(F: list[float], c: float = 1.0) -> dict:
    """A cell's checkpoints (no dense track): F at steps 0, 10, 20, …, with ‖∇F‖²/F = c throughout."""
    return {"epoch": list(range(len(F))), "step": [10.0 * i for i in range(len(F))], "F": F, "c": [c] * len(F)}


def _depth_rows(noise=0.05, seed=3) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"arch": f"mlp{L}_d16", "depth": L, "width": 1, "seed": s, "n": None, "folder": f"mlp{L}_s{s}",
             "lr": 0.05, "grad_norm_init": 2.0 * L * math.exp(noise * rng.standard_normal()),
             "steps": 80.0 * L ** -0.8 * math.exp(noise * rng.standard_normal()),
             "travelled": 0.05 if L > 1 else 0.0, "path": _path([0.5, 0.1, 0.01 + 0.001 * s])}
            for L in (1, 2, 4) for s in (0, 1, 2)]


def test_one_width_omits_the_width_table_and_figures_and_names_the_family(tmp_path):
    from landscape.sweep_report import write_sweep_report

    summary = fit_summary(CONFIG, _depth_rows())
    written = write_sweep_report(tmp_path, {**summary, "config": CONFIG})
    report = (tmp_path / "report.md").read_text()
    assert report.count("one width: no width slopes (a slope needs 3 widths; this sweep's axis is depth)") == 1
    assert "Predictions against width" not in report and "only 1 width" not in report
    names = {p.name for p in written["figures"]}
    assert "sweep_depth.png" in names and "sweep_paths.png" in names and "sweep_travelled.png" not in names
    assert report.startswith("# Over-parameterization sweep: mlpL_d16, L ∈ {1, 2, 4} on ")
    assert "gradient-descent steps to the target loss" in report  # full batch: not 'SGD steps'
    assert "*sweep " not in report  # no placeholder caption: every figure says what it shows


def test_points_text_names_the_axis():
    summary = fit_summary(CONFIG, _depth_rows())
    power = summary["depths"]["width 1"]["steps"]["power"]
    assert power["describe"].endswith("(9 points, 3 depths × 3 seeds)") and "widths" not in power["describe"]
    slope = fit_slope([16, 32, 64], [[1.0, 2.0, 4.1], [1.1, 2.0, 3.9]])
    assert "(6 points, 3 sizes × 2 seeds)" in slope.describe("sizes") and "3 widths × 2" in slope.describe()
    assert fit_slope([16, 32], [[1.0, 2.0]]).describe("sizes").startswith("only 2 sizes with a value > 0")


def test_two_depth_fits_within_the_rms_tolerance_are_indistinguishable(tmp_path):
    assert better_fit({"polynomial": 0.599, "exponential": 0.6}) == "indistinguishable"
    assert better_fit({"polynomial": 0.245, "exponential": 0.367}) == "polynomial"
    edge = 1.0 - RMS_TOLERANCE
    assert better_fit({"polynomial": 1.0, "exponential": edge}) == "indistinguishable"  # exactly at the tolerance
    assert better_fit({"polynomial": 1.0, "exponential": edge - 1e-6}) == "exponential"
    from landscape.sweep_report import write_sweep_report

    summary = fit_summary(CONFIG, _depth_rows())
    entry = summary["depths"]["width 1"]["grad_norm_init"]
    rms = entry["rms"]
    assert entry["better"] == better_fit(rms) and entry["tolerance"] == RMS_TOLERANCE
    assert entry["judgement"] == {"polynomial": "agrees", "exponential": "disagrees"}.get(entry["better"], "inconclusive")
    entry.update(better="indistinguishable", judgement="inconclusive")
    write_sweep_report(tmp_path, {**summary, "config": CONFIG})
    row = next(x for x in (tmp_path / "report.md").read_text().splitlines() if x.startswith("| width 1") and "θ_0" in x)
    assert f"indistinguishable (rms polynomial" in row and "within 10 %" in row and row.endswith("| inconclusive |")


def test_no_common_level_is_said_not_printed_as_nan(tmp_path):
    rows = _depth_rows()
    for r in rows:
        if r["depth"] == 2 and r["seed"] == 0:
            r["path"] = _path([0.3, 0.2])  # ends at 0.2, above the 0.09 start of another cell
        if r["depth"] == 2 and r["seed"] == 1:
            r["path"] = _path([0.09, 0.01])
    summary = fit_summary(CONFIG, rows)
    level = summary["common_level"]["depth 2"]
    assert math.isnan(level["F_star"]) and "largest final F 0.2 ≥ smallest initial F 0.09" in level["reason"]
    ok = summary["common_level"]["depth 1"]  # checkpoints stand in for a dense track
    assert ok["F_lo"] == pytest.approx(0.012) and ok["F_hi"] == 0.5 and ok["F_star"] == pytest.approx(math.sqrt(0.006))
    cell = next(r for r in summary["cells"] if r["depth"] == 1 and r["seed"] == 0)
    assert cell["steps_to_F"] == pytest.approx(at_level([0.5, 0.1, 0.01], [0, 10, 20], ok["F_star"]))
    assert cell["c_at_F"] == pytest.approx(1.0)
    from landscape.sweep_report import write_sweep_report

    write_sweep_report(tmp_path, {**summary, "config": CONFIG})
    report = (tmp_path / "report.md").read_text()
    table = report[report.index("## Common loss level"):report.index("## Depth")]
    assert "nan" not in table and "no common loss level (largest final F 0.2" in table
    depth2 = [x for x in report.splitlines() if x.startswith("| mlp2_s")]
    assert len(depth2) == 3 and all(x.count("not measured") == 2 for x in depth2)


def test_common_level_with_a_dense_track_reads_it():
    rows = [{"depth": 1, "n": None, "path": {**_path([1.0, 0.5]), "track": {"step": [1, 2, 3], "F": [0.5, 0.1, 0.01],
                                                                            "grad_sq": [1.0, 0.2, 0.02]}}},
            {"depth": 1, "n": None, "path": {**_path([0.8, 0.4]), "track": {"step": [1, 2], "F": [0.4, 0.04],
                                                                            "grad_sq": [0.8, 0.08]}}}]
    level = common_level(rows)["depth 1"]
    assert level["F_hi"] == 0.8 and level["F_lo"] == 0.04 and level["reason"] == ""


def test_a_zero_is_drawn_at_the_floor_and_named_in_the_caption(tmp_path):
    from landscape.sweep_report import write_sweep_report

    rng = np.random.default_rng(0)
    rows = [{"arch": "resnet20", "depth": 20, "width": w, "seed": s, "n": None, "folder": f"w{w}_s{s}", "lr": 0.05,
             "travelled": 0.0 if (w, s) == (2, 1) else 0.1 / w * math.exp(0.1 * rng.standard_normal())}
            for w in (0.5, 1, 2, 4) for s in (0, 1)]
    config = {**CONFIG, "arch": "resnet20", "widths": [0.5, 1, 2, 4], "seeds": [0, 1], "full_batch": False,
              "batch_size": 32, "train_subset": 64}
    written = write_sweep_report(tmp_path, {**fit_summary(config, rows), "config": config})
    assert "sweep_travelled.png" in {p.name for p in written["figures"]}
    report = (tmp_path / "report.md").read_text()
    assert "0 (▼ at the axis floor) at width 2 (seed 1)" in report and "SGD (batch 32)" in report
    assert "depth 20" not in report.split("## Common loss level")[0]  # one depth: no group name in the width table
    assert "depth 20" not in report.split("## Figures")[1]  # nor in the figures' captions


def test_markdown_summary_of_a_sweep_folder_is_its_tables(tmp_path):
    """`landscape report SWEEP --markdown-summary` prints what the README embeds: the one-width line and the
    depth table of a depth sweep, from its sweep.json alone."""
    from click.testing import CliRunner

    from landscape.cli import main
    from landscape.results import atomic_write_json
    from landscape.sweep_report import sweep_markdown_summary

    summary = {**fit_summary(CONFIG, _depth_rows()), "config": CONFIG}
    text = sweep_markdown_summary(summary)
    assert text.startswith("one width: no width slopes") and "| width 1 | ‖∇F(θ_0)‖ |" in text
    assert "3 depths × 3 seeds" in text and text.endswith("|\n")
    atomic_write_json(summary, tmp_path / "sweep.json")
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--markdown-summary"])
    assert result.exit_code == 0 and result.output == text
    result = CliRunner().invoke(main, ["report", str(tmp_path / "none"), "--markdown-summary"])
    assert result.exit_code != 0 and "Traceback" not in result.output
