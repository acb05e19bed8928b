"""landscape reproduce: the smoke preset end to end on real images, and its resume."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from landscape.cli import main
from landscape.reproduce import get_preset, select_cells
from landscape.errors import LandscapeError

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
    assert figures == ["dominance.png", "interpolation.png", "second_order.png", "smoothness.png", "surface_3d.png",
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
