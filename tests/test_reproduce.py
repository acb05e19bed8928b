"""landscape reproduce: the smoke preset end to end on real images, and its resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import landscape.reproduce as reproduce_module
from landscape.cells import STAGES
from landscape.cli import main
from landscape.reproduce import Cell, Preset, get_preset, select_cells
from landscape.errors import LandscapeError
from landscape.settings import AnalysisSettings

from cases import REAL_FOLDER

slow = pytest.mark.slow  # real images, trained runs: `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_root, cache_dir):
    out = tmp_path_factory.mktemp("smoke")
    args = ["reproduce", "--preset", "smoke", "--cifar10", f"folder:{REAL_FOLDER}", "--data-root",
            str(data_root), "--cache-dir", str(cache_dir), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, args, result.output


@slow
def test_smoke_preset_writes_every_stage(smoke):
    out, _, output = smoke
    cell = out / "resnet8_cifar10"
    assert (cell / "checkpoints" / "epoch_0002.pt").is_file()
    for epoch in (0, 1, 2):
        names = {p.name for p in (cell / "analysis" / f"epoch_{epoch:04d}").iterdir()}
        assert {"dominance.json", "curvature.json", "surface.json", "probe_neg_gradient.json"} <= names
    assert (cell / "analysis" / "interpolation" / "epoch_0000_to_0002.json").is_file()
    figures = sorted(p.name for p in (cell / "figures").glob("*.png"))
    assert figures == ["dominance.png", "interpolation.png", "interpolation_accuracy.png", "second_order.png",
                       "smoothness.png", "surface_3d.png",
                       "surface_contour.png", "training.png"]
    report = (out / "report.md").read_text()
    assert "Gradient dominance" in report and "resnet8_cifar10" in report
    timings = json.loads((out / "timings.json").read_text())["resnet8/cifar10"]
    assert timings["train_s"] > 0 and timings["analysis_s"] > 0
    assert "report:" in output


@slow
def test_rerun_resumes_without_training_or_measuring_again(smoke):
    out, args, _ = smoke
    cell = out / "resnet8_cifar10"
    stamps = {p: p.stat().st_mtime_ns for p in cell.rglob("*") if p.suffix in (".pt", ".json", ".npz")
              and "figures" not in p.parts and not p.name.startswith("report")}
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" not in result.output  # no training epoch ran again
    changed = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == []


def test_cells_and_presets():
    assert len(get_preset("paper").cells) == 9
    assert [c.name for c in select_cells(get_preset("paper"), ["resnet32/cifar10_noisy20"])] == ["resnet32/cifar10_noisy20"]
    with pytest.raises(LandscapeError, match="no cell"):
        select_cells(get_preset("paper"), ["resnet50/cifar10"])
    with pytest.raises(LandscapeError, match="unknown preset"):
        get_preset("huge")


def test_shards_split_the_cells_without_coordination():
    from landscape.reproduce import parse_shard, shard_cells

    cells = get_preset("paper").cells
    for k in (1, 2, 3, 4, 9, 12):
        shares = [shard_cells(cells, i, k) for i in range(1, k + 1)]
        assert sorted(c.name for share in shares for c in share) == sorted(c.name for c in cells)  # each cell once
        assert shares == [shard_cells(cells, i, k) for i in range(1, k + 1)]  # the same on every machine
    assert [len(s) for s in (shard_cells(cells, i, 9) for i in range(1, 10))] == [1] * 9
    # three machines: one cell of each network each (the costs balance)
    assert {c.arch for c in shard_cells(cells, 2, 3)} == {"vgg19_bn", "resnet32", "resnet110"}
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/2/3"):
        with pytest.raises(LandscapeError, match="--shard"):
            parse_shard(bad)


def test_paper_cpu_derives_from_the_recipe():
    from landscape.recipe import PAPER_BATCH_SIZE, PAPER_LR, PAPER_MILESTONES, scaled_epoch, scaled_figure_epochs
    from landscape.reproduce import PAPER_ARCHS, paper_cells
    from landscape.train import TrainConfig

    full, tiny, paper = get_preset("paper-cpu"), get_preset("paper-cpu-tiny"), get_preset("paper")
    assert [(c.arch, c.dataset, c.label_noise) for c in full.cells] == \
        [(c.arch, c.dataset, c.label_noise) for c in paper.cells]
    assert {c.arch for c in full.cells} == set(PAPER_ARCHS) and all(c.width == 0.25 for c in tiny.cells)
    assert full.train_for(full.cells[0])["lr"] < PAPER_LR  # VGG19-BN: see reproduce.PAPER_CPU_LR
    assert {c.name for c in tiny.cells} <= {c.name for c in paper_cells(0.25)}
    assert {c.arch for c in tiny.cells} == set(PAPER_ARCHS)
    assert tiny.analysis.measurements == full.analysis.measurements
    for preset in (full, tiny):
        epochs = preset.train["epochs"]
        config = TrainConfig(arch="resnet32", dataset="cifar10", **preset.train).resolved()
        # the paper's schedule shape: lr 0.1 dropped at the same fractions of the run
        assert config.lr == PAPER_LR and config.batch_size == preset.train.get("batch_size", PAPER_BATCH_SIZE)
        assert config.milestones == [scaled_epoch(m, epochs) for m in PAPER_MILESTONES]
        assert preset.figure_epochs == scaled_figure_epochs(epochs) == preset.analysis.epochs
    vgg = full.analysis_for(full.cells[0])
    assert full.cells[0].arch == "vgg19_bn" and vgg.curvature_max_basis < full.analysis.curvature_max_basis
    assert vgg.curvature_max_matvecs < full.analysis.curvature_max_matvecs


@pytest.fixture(scope="module")
def paper_cpu_tiny(tmp_path_factory, data_root, cache_dir):
    out = tmp_path_factory.mktemp("paper-cpu-tiny")
    args = ["reproduce", "--preset", "paper-cpu-tiny", "--cifar10", f"folder:{REAL_FOLDER}",
            "--cifar100", "folder:no-cifar100-here", "--data-root", str(data_root), "--cache-dir", str(cache_dir),
            "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


@slow
def test_paper_cpu_tiny_runs_every_network_and_skips_absent_data(paper_cpu_tiny):
    out, output = paper_cpu_tiny
    preset = get_preset("paper-cpu-tiny")
    ran = [c for c in preset.cells if c.dataset == "cifar10"]
    assert {c.arch for c in ran} == {"vgg19_bn", "resnet32", "resnet110"} and {c.label_noise for c in ran} == {0, 0.2}
    for cell in ran:
        folder = out / cell.folder
        last = preset.figure_epochs[-1]
        curvature = json.loads((folder / "analysis" / f"epoch_{last:04d}" / "curvature.json").read_text())
        assert curvature["result"]["top"][0]["eigenvalue"] > 0
        assert (folder / "figures" / "surface_contour.png").is_file()
        config = json.loads((folder / "config.json").read_text())["train"]
        assert config["width"] == 0.25 and config["label_noise"] == cell.label_noise
        assert config["lr"] == preset.train_for(cell).get("lr", 0.1)
    for cell in preset.cells:
        if cell.dataset == "cifar100":
            assert f"{cell.name}: skipped" in output and not (out / cell.folder).exists()
    report = json.loads((out / "report.json").read_text())
    assert [c["cell"] for c in report["cells"]] == [c.folder for c in ran]
    assert set(report["skipped"]) == {c.name for c in preset.cells if c.dataset == "cifar100"}
    assert "Skipped resnet32_w0.25/cifar100" in (out / "report.md").read_text()


def test_a_cell_asked_for_by_name_without_its_data_is_an_error(tmp_path, data_root):
    result = CliRunner().invoke(main, ["reproduce", "--preset", "paper-cpu-tiny", "--only",
                                       "resnet32_w0.25/cifar100", "--cifar100", "folder:no-cifar100-here",
                                       "--data-root", str(data_root), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "resnet32_w0.25/cifar100: image folder" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------- a synthetic cell, in seconds
SEPARATED = "synthetic:separated?n=16&d=8&delta=0.5&classes=2&test=8"


def _tiny_preset(**train) -> Preset:
    """One mlp cell on δ-separated vectors (standing for CIFAR-10 through --cifar10): 2 epochs, dominance only."""
    analysis = AnalysisSettings(measurements=["dominance"], subset=16, test_subset=8, params="hidden")
    settings = {"epochs": 2, "save_at": [0, 1, 2], "augment": False, "loss": "mse", "batch_size": 8,
                "train_params": "hidden", "test_subset": 8, "track_subset": 8, **train}
    return Preset([Cell("mlp1_d8", "cifar10")], settings, analysis, "a synthetic cell for the tests", [1, 2])


def _tiny(monkeypatch, out, *args, **train):
    """``reproduce --preset smoke`` with the smoke preset replaced by ``_tiny_preset(**train)``."""
    monkeypatch.setitem(reproduce_module.PRESETS, "smoke", lambda: _tiny_preset(**train))
    return CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--cifar10", SEPARATED, "--out", str(out),
                                     "--quiet", *args])


@pytest.fixture(scope="module")
def tiny_reproduced(tmp_path_factory) -> Path:
    """The tiny preset reproduced once (tests copy it before running into it again)."""
    out = tmp_path_factory.mktemp("tiny") / "R"
    with pytest.MonkeyPatch.context() as monkeypatch:
        result = _tiny(monkeypatch, out)
    assert result.exit_code == 0, result.output
    return out


def _files(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, train, expected", [(["--seed", "1"], {}, "seed: stored 0, requested 1"),
                                                   ([], {"lr": 0.05}, "lr: stored 0.1, requested 0.05")])
def test_a_rerun_with_another_training_setting_is_refused_and_another_out_works(tiny_reproduced, monkeypatch,
                                                                                  tmp_path, args, train, expected):
    out = shutil.copytree(tiny_reproduced, tmp_path / "R")
    before = _files(out)
    refused = _tiny(monkeypatch, out, *args, **train)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "mlp1_d8/cifar10" not in lines[0], refused.output  # refused before the cell starts
    assert "mlp1_d8_cifar10 holds a run" in lines[0] and expected in lines[0] and "choose another --out" in lines[0]
    assert _files(out) == before  # nothing written, nothing deleted
    again = _tiny(monkeypatch, tmp_path / "R2", *args, **train)
    assert again.exit_code == 0, again.output
    stored = json.loads((tmp_path / "R2" / "mlp1_d8_cifar10" / "config.json").read_text())["train"]
    assert stored[expected.split(":")[0]] == float(expected.rsplit(" ", 1)[1])


def test_an_empty_shard_says_so_and_names_no_report(tmp_path):
    out = tmp_path / "R"
    result = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--shard", "2/2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == ["shard 2/2: no cell (the 1 selected fall to other shards); "
                                                  "nothing to do"]
    assert not out.exists()


def _timings_format(record: dict) -> list[set]:
    """The shape of one cell's timings record (the stage names of each invocation), after checking its totals."""
    assert set(record) <= {"invocations", *STAGES}
    for stage in set(record) - {"invocations"}:
        assert record[stage] == pytest.approx(sum(i.get(stage, 0.0) for i in record["invocations"]))
    return [set(i) for i in record["invocations"]]


def test_reproduce_and_sweep_record_their_timings_alike(tiny_reproduced, monkeypatch, tmp_path):
    """Both run cells through cells.run_cell: a first run trains and analyzes, a rerun only analyzes."""
    shutil.copytree(tiny_reproduced, tmp_path / "R")
    assert _tiny(monkeypatch, tmp_path / "R").exit_code == 0
    sweep = ["sweep", "--preset", "smoke", "--widths", "1", "--depths", "1", "--seeds", "0", "--max-epochs", "4",
             "--quiet", "--out", str(tmp_path / "S")]
    for _ in range(2):
        result = CliRunner().invoke(main, sweep)
        assert result.exit_code == 0, result.output
    reproduced = json.loads((tmp_path / "R" / "timings.json").read_text())
    swept = json.loads((tmp_path / "S" / "timings.json").read_text())
    assert list(reproduced) == ["mlp1_d8/cifar10"] and list(swept) == ["mlp1_d8_w1_s0"]
    assert _timings_format(reproduced["mlp1_d8/cifar10"]) == [set(STAGES), {"analysis_s", "figures_report_s"}]
    assert _timings_format(swept["mlp1_d8_w1_s0"]) == [{"train_s", "analysis_s"}, {"analysis_s"}]


def test_plan_trains_and_analyzes_nothing_and_prints_every_cell_and_a_total(monkeypatch, tmp_path):
    import landscape.cells as cells_module

    def refuse(*args, **kwargs):
        raise AssertionError("--plan must not train or analyze")

    monkeypatch.setattr(cells_module, "train", refuse)
    monkeypatch.setattr(reproduce_module, "run_cell", refuse)
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["reproduce", "--preset", "paper", "--plan", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not out.exists()
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and "/" in line.split("|")[1]]
    assert [r.split("|")[1].strip() for r in rows] == [c.name for c in get_preset("paper").cells]
    assert "| **total** |" in result.output and "GPU-hours on one NVIDIA H100" in result.output
    assert "TFLOP/s achieved" in result.output  # the assumptions are stated
    result = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--calibrate", "--out", str(out)])
    assert result.exit_code != 0 and "--calibrate goes with --plan" in result.output and not out.exists()


def test_the_paper_preset_fits_a_day_of_one_gpu():
    from landscape.planning import plan_cells

    preset = get_preset("paper")
    planned = plan_cells(preset.cells, preset.train_for, preset.analysis_for)
    assert planned.total_s <= 24 * 3600
    for cell in planned.cells:
        assert cell.epochs == 164 and cell.train_examples == 50_000  # the paper's recipe, every cell
        assert cell.sizes.train == 50_000 and cell.sizes.curvature == 2048
    assert preset.analysis.curvature_sigma == 0 and preset.analysis.surface_points == 21
    assert preset.analysis.interpolation_points == 21  # 21 in [0, 1]: the paper's 41-point grid over [-0.5, 1.5]


def test_calibrate_measures_the_unit_costs_on_this_device(monkeypatch):
    import landscape.planning as planning

    timed = []

    def spy(objective, repeats=2):
        timed.append((objective.num_examples, objective.device.type))
        return real(objective, repeats)

    real = planning.measure_unit_costs
    monkeypatch.setattr(planning, "measure_unit_costs", spy)
    result = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--plan", "--calibrate"])
    assert result.exit_code == 0, result.output
    assert timed == [(16, "cpu")]  # one network, timed on 16 images on this machine's device
    assert "measured on this machine's CPU" in result.output and "FLOP-based" not in result.output
    assert "resnet8/cifar10" in result.output and "hours on this machine's CPU" in result.output


def test_calibrating_on_a_missing_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--plan", "--calibrate", "--device", "cuda"])
    assert result.exit_code == 1 and "no CUDA device" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------------- training seeds
def _seeded_preset() -> Preset:
    """``_tiny_preset`` trained with seeds 0 and 1: seed 0 measures dominance and the interpolation, seed 1
    dominance only."""
    preset = _tiny_preset()
    preset.analysis.measurements = ["dominance", "interpolation"]
    preset.analysis.interpolation_points, preset.analysis.interpolation_pairs = 3, "init-final"
    preset.seeds, preset.seed_measurements = [0, 1], ["dominance"]
    return preset


def test_cells_are_named_by_seed_and_later_seeds_measure_their_own_list():
    preset = _seeded_preset()
    cells = preset.seeded_cells()
    assert [c.name for c in cells] == ["mlp1_d8/cifar10", "mlp1_d8/cifar10/seed1"]
    assert [c.folder for c in cells] == ["mlp1_d8_cifar10", "mlp1_d8_cifar10_seed1"]
    assert [preset.analysis_for(c).measurements for c in cells] == [["dominance", "interpolation"], ["dominance"]]
    assert [preset.analysis_for(c).seed for c in cells] == [0, 1]
    assert [c.name for c in select_cells(preset, ["mlp1_d8/cifar10/seed1"])] == ["mlp1_d8/cifar10/seed1"]
    with pytest.raises(LandscapeError, match="no cell"):
        select_cells(preset, ["mlp1_d8/cifar10/seed2"])
    # the paper preset keeps its names (seed 0 only)
    assert [c.name for c in get_preset("paper").seeded_cells()] == [c.name for c in get_preset("paper").cells]
    # paper-cpu given seeds: VGG keeps its own curvature settings on every seed, later seeds their list
    cpu = get_preset("paper-cpu")
    cpu.seeds, cpu.seed_measurements = [0, 3], ["dominance", "probes"]
    vgg = [c for c in cpu.seeded_cells() if c.arch == "vgg19_bn"][:2]
    assert [c.name for c in vgg] == ["vgg19_bn/cifar10", "vgg19_bn/cifar10/seed3"]
    first, later = (cpu.analysis_for(c) for c in vgg)
    assert first.curvature_max_basis == later.curvature_max_basis < cpu.analysis.curvature_max_basis
    assert first.measurements == cpu.analysis.measurements and later.measurements == ["dominance", "probes"]
    assert len(cpu.seeded_cells()) == 2 * len(cpu.cells)


def test_the_quick_preset_trains_three_seeds_at_the_issue_sizes():
    from landscape.recipe import scaled_figure_epochs

    quick = get_preset("quick")
    assert quick.seeds == [0, 1, 2] and len(quick.seeded_cells()) == 3
    assert {k: quick.train[k] for k in ("epochs", "train_subset", "batch_size", "augment")} == \
        {"epochs": 164, "train_subset": 100, "batch_size": 16, "augment": False}
    assert quick.figure_epochs == [5, 40, 90, 120, 130, 160] == quick.analysis.epochs
    assert quick.analysis.subset is None and quick.analysis.probe_filter == 0
    later = quick.analysis_for(quick.seeded_cells()[2])
    assert later.seed == 2 and set(later.measurements) == {"dominance", "probes", "curvature", "second_order",
                                                             "trajectory"}


def test_the_plan_counts_later_seeds_at_their_reduced_list():
    from landscape.planning import plan_cells

    quick = get_preset("quick")
    planned = plan_cells(quick.seeded_cells(), quick.train_for, quick.analysis_for)
    first, *later = planned.cells
    assert [c.name for c in planned.cells] == ["resnet32/cifar10", "resnet32/cifar10/seed1", "resnet32/cifar10/seed2"]
    assert {"spectrum", "surface", "interpolation"} <= set(first.analysis_s)
    for cell in later:
        assert set(cell.analysis_s) - {"statistics of θ"} == set(quick.seed_measurements)
        assert cell.analysis_total_s < first.analysis_total_s and cell.training_s == first.training_s
    assert planned.total_s == pytest.approx(sum(c.total_s for c in planned.cells))


def test_a_preset_with_two_seeds_trains_both_and_judges_across_them(monkeypatch, tmp_path):
    monkeypatch.setitem(reproduce_module.PRESETS, "smoke", _seeded_preset)
    out = tmp_path / "R"
    result = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--cifar10", SEPARATED, "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    first, second = out / "mlp1_d8_cifar10", out / "mlp1_d8_cifar10_seed1"
    for folder, seed in ((first, 0), (second, 1)):
        assert json.loads((folder / "config.json").read_text())["train"]["seed"] == seed
        assert (folder / "analysis" / "epoch_0002" / "dominance.json").is_file()
    assert (first / "analysis" / "interpolation").is_dir() and not (second / "analysis" / "interpolation").exists()
    assert list(json.loads((out / "timings.json").read_text())) == ["mlp1_d8/cifar10", "mlp1_d8/cifar10/seed1"]
    report = json.loads((out / "report.json").read_text())
    [group] = report["across_seeds"]
    assert group["cell"] == "mlp1_d8_cifar10" and group["seeds"] == [0, 1]
    claims = {c["id"]: c for c in group["claims"]}
    assert claims["interpolation"]["why"] == "seed 0 only"
    assert "Across training seeds: mlp1_d8_cifar10" in (out / "report.md").read_text()
    # --only names one seed's cell
    alone = CliRunner().invoke(main, ["reproduce", "--preset", "smoke", "--cifar10", SEPARATED, "--out",
                                      str(tmp_path / "S"), "--quiet", "--only", "mlp1_d8/cifar10/seed1"])
    assert alone.exit_code == 0, alone.output
    assert sorted(p.name for p in (tmp_path / "S").iterdir() if p.is_dir()) == ["mlp1_d8_cifar10_seed1"]
