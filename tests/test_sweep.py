"""The width sweep: one slope for tables and figures, predictions judged end to end, the learning-rate
scaling, the mechanism equal to a direct computation from the checkpoints, and a tiny sweep whose
trajectory numbers equal an independent computation."""

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
from landscape.errors import LandscapeError
from landscape.mechanism import mechanism_path
from landscape.objective import Objective
from landscape.runtime import Runtime
from landscape.scaling import by_seed, fit_slope
from landscape.settings import AnalysisSettings
from landscape.sweep import SweepConfig, arch_at_depth, log_epochs, run_sweep, sweep_preset
from landscape.sweep_fits import at_level, fit_summary, overall
from landscape.sweep_figures import draw_width_scaling, slope_line
from landscape.sweep_report import write_sweep_report
from landscape.theory import activation_flips, ntk, ntk_min_eigenvalue, spectral_movement

SEPARATED = "synthetic:separated?n=16&d=8&delta=0.5&classes=2&test=8"


def test_log_spaced_checkpoints_and_interpolation_at_a_common_level():
    assert log_epochs(100, 5) == [0, 1, 3, 10, 32, 100]
    assert len(log_epochs(60, 10)) == 11 and log_epochs(3, 10) == [0, 1, 2, 3]
    assert at_level([1.0, 0.1, 0.01], [0.0, 10.0, 20.0], 0.1 ** 0.5) == pytest.approx(5.0)  # halfway in log F
    assert at_level([1.0, 0.1], [3.0, 4.0], 2.0) == 3.0 and math.isnan(at_level([1.0, 0.5], [1, 2], 0.1))
    assert overall(["agrees", "uninformative"]) == "agrees" and overall(["agrees", "disagrees"]) == "disagrees"
    assert overall(["agrees", "inconclusive"]) == "inconclusive" and overall(["uninformative"]) == "uninformative"
    assert arch_at_depth("resnet20", 32) == "resnet32" and arch_at_depth("mlp3_d16", 1) == "mlp1_d16"


def test_presets_have_power_and_at_least_ten_checkpoints_before_the_stop():
    theorem = sweep_preset("theorem")
    widths = np.array(theorem.widths, float)
    assert len(widths) >= 6 and np.log10(widths.max() / widths.min()) >= 1.5 - 1e-9 and len(theorem.seeds) >= 5
    assert theorem.lr_scaling == "theorem"
    for name in ("theorem", "theorem-n", "theorem-depth", "resnet20"):
        config = sweep_preset(name)
        arch, _, width, seed, n = config.cells()[0]
        save_at = config.train_config(arch, width, seed, n).save_at
        early = [e for e in save_at if 0 < e <= config.max_epochs // 5]  # a cell stopping at a fifth of its epochs
        assert len(early) >= 10, (name, save_at)
    sizes = sweep_preset("theorem-n")
    assert min(sizes.sizes) <= 16 and max(sizes.sizes) >= 256
    cell = sizes.train_config(sizes.cells()[-1][0], sizes.widths[0], 0, 256)
    assert "n=256" in cell.dataset and cell.batch_size == 256  # full batch at every n
    depth = sweep_preset("theorem-depth")
    assert min(depth.depths) == 1 and max(depth.depths) >= 6
    resnet = sweep_preset("resnet20")
    assert len(resnet.widths) >= 4 and len(resnet.seeds) >= 3
    with pytest.raises(LandscapeError, match="--sizes needs a synthetic dataset"):
        resnet.dataset_at(32)


def _rows(values: dict, widths=(1, 2, 4), seeds=(0, 1)) -> list[dict]:
    """Cell rows of one depth as sweep.summarize makes them, with the given quantity values (by width, seed)."""
    return [{"arch": "mlp1", "depth": 1, "width": w, "seed": s, "n": None, "folder": f"w{w}_s{s}", "lr": 0.1,
             **{q: f(w, s) for q, f in values.items()}} for w in widths for s in seeds]


def test_an_all_zero_quantity_is_uninformative_in_sweep_json_and_the_report(tmp_path):
    rng = np.random.default_rng(0)
    rows = _rows({"interpolation_bump": lambda w, s: 0.0, "c": lambda w, s: 2.0 * w * math.exp(0.1 * rng.standard_normal()),
                  "lambda_ratio": lambda w, s: float("nan")})
    summary = fit_summary({"seeds": [0, 1], "lr_scaling": "constant"}, rows)
    bump = summary["quantities"]["interpolation_bump"]
    assert bump["judgement"] == "uninformative" and bump["groups"]["depth 1"]["judgement"] == "uninformative"
    assert summary["quantities"]["lambda_ratio"]["judgement"] == "uninformative"
    assert summary["quantities"]["c"]["groups"]["depth 1"]["judgement"] in ("agrees", "inconclusive")
    config = {"arch": "mlp1", "dataset": "d", "widths": [1, 2, 4], "seeds": [0, 1], "target_loss": 0.1, "loss": "mse",
              "lr": 0.1, "lr_scaling": "constant", "momentum": 0.0, "max_epochs": 5, "checkpoints": 3}
    write_sweep_report(tmp_path, {**summary, "config": config})
    report = (tmp_path / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("| largest bump init"))
    assert "0 at every cell with a value → uninformative" in line and line.rstrip(" |").endswith("uninformative")
    assert "gradient lemmas" in report  # the derivation of c's prediction is printed


def test_the_figure_draws_the_slope_the_table_judges():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    rows = _rows({"c": lambda w, s: 3.0 * w ** 0.8 * math.exp(0.2 * rng.standard_normal())}, widths=(1, 2, 4, 8))
    summary = fit_summary({"seeds": [0, 1], "lr_scaling": "constant"}, rows)
    group = summary["quantities"]["c"]["groups"]["depth 1"]
    direct = fit_slope([1, 2, 4, 8], by_seed(rows, "c", [1, 2, 4, 8], [0, 1]))
    assert group["slope"]["slope"] == pytest.approx(direct.slope) and group["slope"]["low"] == pytest.approx(direct.low)
    fig, ax = plt.subplots()
    drawn = draw_width_scaling(ax, rows, "c", group)
    line = ax.get_lines()[-1]
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 4, 8])
    np.testing.assert_allclose(line.get_ydata(), np.exp(direct.intercept) * np.array([1, 2, 4, 8.0]) ** direct.slope)
    geo = [math.exp(np.mean([math.log(r["c"]) for r in rows if r["width"] == w])) for w in (1, 2, 4, 8)]
    np.testing.assert_allclose(slope_line(group["slope"])[1], geo)  # the squares: the seeds' geometric means
    assert drawn == direct.slope and direct.describe() in line.get_label()
    plt.close(fig)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    config = SweepConfig(arch="mlp1_d8", dataset=SEPARATED, widths=[0.25, 0.5, 1], seeds=[0], target_loss=0.1,
                         max_epochs=300, lr=0.4, lr_scaling="theorem", momentum=0.0, batch_size=16, test_subset=8,
                         loss="mse", train_params="hidden", checkpoints=4, track_every=1, mechanism_examples=8,
                         final_curvature=False,
                         analysis=AnalysisSettings(measurements=["dominance", "trajectory"], params="hidden",
                                                   ntk_examples=8))
    out = tmp_path_factory.mktemp("sweep")
    summary = run_sweep(config, out, Runtime(progress=False, echo=lambda *a: None))
    return config, out, summary


def test_every_cell_reaches_the_target_and_the_slopes_come_from_the_cells(tiny_sweep):
    config, out, summary = tiny_sweep
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["quantities"].keys() == summary["quantities"].keys()
    cells = summary["cells"]
    assert len(cells) == 3 and all(c["reached_target"] for c in cells)
    for q, info in summary["quantities"].items():
        direct = fit_slope(config.widths, by_seed(cells, q, config.widths, config.seeds))
        got = info["groups"]["depth 1"]["slope"]["slope"]
        assert math.isnan(got) if math.isnan(direct.slope) else got == pytest.approx(direct.slope)
    assert stored["quantities"]["lambda_ratio"]["judgement"] == "uninformative"  # no curvature measured
    report = (out / "report.md").read_text()
    assert "Predictions against width" in report and "Derivations" in report
    assert (out / "figures" / "sweep_travelled.png").is_file() and (out / "figures" / "sweep_paths.png").is_file()
    lemma = cells[0]["lemma"]  # the synthetic data's δ and n are carried to the lemma's comparison
    assert lemma["delta"] == 0.5 and lemma["n"] == 16 and lemma["lemma"] == pytest.approx(0.5 / 16 ** 2)
    level = stored["common_level"]["depth 1"]
    assert level["F_lo"] < level["F_star"] < level["F_hi"]
    assert all(math.isfinite(c["c_at_F"]) and c["steps_to_F"] > 0 for c in cells)


def test_theorem_lr_scaling_gives_lr_proportional_to_one_over_width(tiny_sweep):
    config, out, summary = tiny_sweep
    lrs = {}
    for c in summary["cells"]:
        lrs[c["width"]] = json.loads((out / c["folder"] / "config.json").read_text())["train"]["lr"]
    assert lrs == {w: pytest.approx(0.4 * 0.25 / w) for w in config.widths}
    assert json.loads((out / "sweep_config.json").read_text())["sweep"]["lr_scaling"] == "theorem"
    assert summary["lr"] == {"0.25": [pytest.approx(0.4)], "0.5": [pytest.approx(0.2)], "1": [pytest.approx(0.1)]}


def test_mechanism_equals_a_direct_computation_from_the_checkpoints(tiny_sweep):
    _, out, summary = tiny_sweep
    cell = summary["cells"][2]
    run = out / cell["folder"]
    record = json.loads(mechanism_path(run).read_text())
    epochs = sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("epoch_*.pt"))
    assert record["epoch"] == epochs and len(epochs) >= 4
    data = load_dataset(SEPARATED)
    model0 = load_model(run / "checkpoints" / "epoch_0000.pt")[0]
    for i, e in enumerate(epochs):
        model = load_model(run / "checkpoints" / f"epoch_{e:04d}.pt")[0]
        flips = activation_flips(model0, model, data.train_images)
        assert {k: v[i] for k, v in record["flips"].items()} == pytest.approx(flips)
        moved = spectral_movement(model0, model)
        assert {k: v["relative"][i] for k, v in record["movement"].items()} == \
            pytest.approx({k: m.relative for k, m in moved.items()})
    assert cell["activation_flips"] == pytest.approx(max(flips.values()))
    assert cell["spectral_movement"] == pytest.approx(max(m.relative for m in moved.values()))
    obj = Objective(model0, data.train_images, data.train_labels, loss="mse", params="hidden", precision="fp64")
    assert cell["ntk_min_eigenvalue"] == pytest.approx(ntk_min_eigenvalue(ntk(obj, examples=8)), rel=1e-4)
    assert torch.isfinite(torch.tensor(record["ntk_drift"])).all() and record["ntk_drift"][0] == 0
    assert record["ntk_epochs"] == [epochs[0], epochs[-1]] and len(record["ntk_drift"]) == 2  # kernels at the ends


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


def test_lr_scaling_reaches_the_sweep_configuration(one_cell_sweep):
    """--lr-scaling is part of the sweep's settings: asking a constant-step sweep folder for it is refused."""
    before = _files(one_cell_sweep)
    line = _refusal(CliRunner().invoke(main, ONE_CELL + ["--lr-scaling", "theorem", "--out", str(one_cell_sweep)]))
    assert "lr_scaling: stored 'constant', requested 'theorem'" in line
    assert _files(one_cell_sweep) == before


def test_compare_lists_the_verdicts_that_change_and_refuses_a_folder_without_a_sweep(tmp_path):
    from landscape.sweep_fits import compare_sweeps

    rows = _rows({"steps": lambda w, s: 100.0 * w ** (0.3 + 0.01 * s)})  # rises with width
    constant = fit_summary({"seeds": [0, 1], "lr_scaling": "constant"}, rows)
    theorem = fit_summary({"seeds": [0, 1], "lr_scaling": "theorem"}, rows)
    assert constant["quantities"]["steps"]["judgement"] == theorem["quantities"]["steps"]["judgement"] == "disagrees"
    flat = fit_summary({"seeds": [0, 1], "lr_scaling": "theorem"}, _rows({"steps": lambda w, s: 100.0 / w}))
    compared = compare_sweeps(flat, {**constant, "config": {"lr_scaling": "constant"}}, "runs/c")
    assert compared["quantities"]["steps"] == {"label": "steps to the target loss", "this": "agrees",
                                               "other": "disagrees", "changed": True}
    assert compared["lr_scaling"] == "constant"
    line = _refusal(CliRunner().invoke(main, ONE_CELL + ["--compare", str(tmp_path / "none"),
                                                         "--out", str(tmp_path / "S")]))
    assert "no sweep.json there" in line and not (tmp_path / "S").exists()


def _lemma(n: int, c_scaled: float) -> dict:
    """A cell's lemma record (theory.DominanceComparison) with the given c·d/m."""
    return {"n": n, "delta": 0.5, "c_mean": c_scaled, "c_sum": c_scaled * n, "c_scaled": c_scaled,
            "lemma": 0.5 / n ** 2, "ratio": c_scaled / (0.5 / n ** 2)}


def test_depth_and_sample_size_axes_fit_power_laws_with_intervals(tmp_path):
    rng = np.random.default_rng(2)
    noise = lambda: math.exp(0.05 * rng.standard_normal())  # noqa: E731
    rows = [{"arch": f"mlp{L}", "depth": L, "width": 1, "seed": s, "n": None, "folder": f"L{L}_s{s}", "lr": 0.1,
             "grad_norm_init": 2.0 * L ** 1.5 * noise(), "steps": 50.0 * L * noise()}
            for L in (1, 2, 4, 6, 8) for s in (0, 1, 2)]
    rows += [{"arch": "mlp2", "depth": 2, "width": 2, "seed": s, "n": n, "folder": f"n{n}_s{s}", "lr": 0.1,
              "lemma": _lemma(n, 5.0 * n ** -1.0 * noise()), "steps": 10.0 * n ** 0.5 * noise()}
             for n in (16, 32, 64, 128) for s in (0, 1, 2)]
    summary = fit_summary({"seeds": [0, 1, 2], "lr_scaling": "constant"}, rows)
    depth = summary["depths"]["width 1"]["grad_norm_init"]
    direct = fit_slope([1, 2, 4, 6, 8], by_seed(rows[:15], "grad_norm_init", [1, 2, 4, 6, 8], [0, 1, 2],
                                                width_key="depth"))
    assert depth["power"]["slope"] == pytest.approx(direct.slope) and depth["power"]["low"] < 1.5 < depth["power"]["high"]
    assert depth["better"] == "polynomial" and depth["judgement"] == "agrees"
    sizes = summary["sizes"]["depth 2, width 2"]
    assert sizes["c_lemma"]["slope"]["slope"] == pytest.approx(-1.0, abs=0.1) and sizes["c_lemma"]["judgement"] == "agrees"
    assert sizes["steps"]["judgement"] == "—" and sizes["steps"]["slope"]["slope"] == pytest.approx(0.5, abs=0.1)
    config = {"arch": "mlp", "dataset": "d", "widths": [1, 2], "seeds": [0, 1, 2], "target_loss": 0.1, "loss": "mse",
              "lr": 0.1, "lr_scaling": "constant", "momentum": 0.0, "max_epochs": 5, "checkpoints": 3}
    written = write_sweep_report(tmp_path, {**summary, "config": config})
    assert {p.name for p in written["figures"]} >= {"sweep_depth.png", "sweep_sizes.png"}
    report = (tmp_path / "report.md").read_text()
    assert "## Depth" in report and "## Sample size" in report and depth["power"]["describe"] in report
