"""Figures from a small real run (resnet8 on real CIFAR-10 JPEGs, trained and analyzed once per
session): every figure exists as a valid PNG and PDF, epochs are chosen as documented, absent
inputs skip a figure, damaged inputs give a one-line error naming the file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.plots import FIGURES, input_fingerprint, make_figures, read_manifest, select_epochs
from landscape.readers import analyzed_epochs
from landscape.results import RunDir

from cases import copy_run

pytestmark = pytest.mark.slow  # real images, trained runs: `pytest -m "not slow"` skips them

ALL_FIGURES = ["surface_3d", "surface_contour", "random_surface_3d", "random_surface_contour", "dominance",
               "second_order", "smoothness", "interpolation", "interpolation_accuracy", "trajectory", "spectrum",
               "training"]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 400 and im.height >= 300, (path, im.size)


def assert_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-"), path
    assert data.rstrip().endswith(b"%%EOF"), path
    assert len(data) > 2000, path


def test_run_layout(analyzed_run):
    run = RunDir(analyzed_run)
    assert analyzed_epochs(run) == [0, 1, 2]
    assert (run.analysis_dir(0) / "surface.json").is_file() and not (run.analysis_dir(1) / "surface.json").exists()
    assert len(list((run.analysis / "interpolation").glob("*.json"))) == 3


def test_every_figure_is_a_valid_png_and_pdf(figured_run):
    run, result = figured_run
    # every figure but the Hessian-subset one (not measured on this run; tests/test_resolution.py draws it)
    assert set(result.skipped) == {"hessian_subsets"}
    assert sorted(result.written) == sorted(set(FIGURES) - {"hessian_subsets"})
    expected = sorted(f"{name}.{ext}" for name in ALL_FIGURES for ext in ("png", "pdf"))
    assert sorted(p.name for p in result.paths) == expected
    assert {p.parent for p in result.paths} == {run / "figures"}  # the default folder
    # no temporary files left; the manifest says what was drawn from which inputs
    assert sorted(p.name for p in (run / "figures").iterdir()) == sorted(expected + ["figures.json"])
    manifest = read_manifest(run / "figures")
    assert manifest["inputs"] == input_fingerprint(run) and manifest["skipped"] == result.skipped
    assert sorted(n for names in manifest["written"].values() for n in names) == expected
    # every figure has its caption (what it was computed on) for the report, and no undefined number in it
    assert sorted(manifest["captions"]) == sorted(ALL_FIGURES)
    assert all(len(c) > 40 and not re.search(r"\bnan\b", c) for c in manifest["captions"].values())
    for path in result.paths:
        (assert_png if path.suffix == ".png" else assert_pdf)(path)


def test_epoch_selection():
    short = {"train": {"epochs": 20}}
    full = {"train": {"epochs": 164}}
    assert select_epochs([0, 1, 5, 11, 20], None, short) == [0, 1, 5, 11, 20]
    assert select_epochs([0, 5, 40, 90, 120, 130, 160, 164], None, full) == [5, 40, 90, 120, 130, 160]
    assert select_epochs([0, 164], None, full) == [0, 164]  # none of Figure 1's epochs: all of them
    assert select_epochs([0, 1, 2], None, {"train": None}) == [0, 1, 2]  # external checkpoint
    assert select_epochs([0, 1, 2], [2, 0], short) == [0, 2]
    with pytest.raises(LandscapeError, match=r"epoch\(s\) \[7\]"):
        select_epochs([0, 1, 2], [7], short)


def test_epochs_must_be_analyzed(analyzed_run, tmp_path):
    with pytest.raises(LandscapeError, match=r"no analysis for epoch\(s\) \[7\]"):
        make_figures(analyzed_run, tmp_path, epochs=[7])
    assert not tmp_path.joinpath("dominance.png").exists()


def test_absent_inputs_skip_their_figure(analyzed_run, tmp_path):
    run = copy_run(analyzed_run, tmp_path / "run")
    shutil.rmtree(run / "analysis" / "interpolation")
    for pattern in ("*surface.*", "probe_*"):
        for p in (run / "analysis").rglob(pattern):
            p.unlink()
    (run / "track.jsonl").unlink()
    lines = []
    result = make_figures(run, echo=lines.append)
    assert set(result.skipped) == {"interpolation", "surface", "random_surface", "smoothness", "hessian_subsets"}
    assert "interpolation" in result.skipped["interpolation"]
    assert any(line.startswith("interpolation: skipped") for line in lines)
    assert set(result.written) == {"dominance", "training", "second_order", "trajectory", "spectrum"}  # still there
    for path in result.paths:
        (assert_png if path.suffix == ".png" else assert_pdf)(path)


def test_run_without_results(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": None, "data": {"dataset": "cifar10"}}))
    result = make_figures(run, tmp_path / "figs")
    assert result.paths == [] and set(result.skipped) == set(FIGURES)
    out = CliRunner().invoke(main, ["figures", str(run)])
    assert out.exit_code == 1 and "holds no results" in out.output and "Traceback" not in out.output


def test_not_a_run_directory(tmp_path):
    with pytest.raises(LandscapeError, match="not a run directory"):
        make_figures(tmp_path)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated surface.json": ("analysis/epoch_0002/surface.json", _truncate, "damaged result file"),
    "missing surface.npz": ("analysis/epoch_0002/surface.npz", lambda p: p.unlink(), "missing result file"),
    "garbage probe npz": ("analysis/epoch_0001/probe_gaussian_0.npz", lambda p: p.write_bytes(b"not a zip"),
                          "damaged result file"),
    "dominance without F": ("analysis/epoch_0000/dominance.json",
                            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "result": {}})),
                            "no key 'result.F'"),
    "truncated interpolation": ("analysis/interpolation/epoch_0000_to_0002.json", _truncate, "damaged result file"),
    "truncated curvature": ("analysis/epoch_0000/curvature.json", _truncate, "damaged result file"),
    "bad line in log": ("log.jsonl", lambda p: p.write_text("{oops\n" + p.read_text()), "line 1"),
    "truncated config": ("config.json", _truncate, "damaged result file"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_input_is_a_one_line_error(analyzed_run, tmp_path, case):
    relpath, damage, message = DAMAGE[case]
    run = copy_run(analyzed_run, tmp_path / "run")
    damage(run / relpath)
    with pytest.raises(LandscapeError) as info:
        make_figures(run, tmp_path / "figs")
    text = str(info.value)
    assert message in text and str(run / relpath) in text and "\n" not in text
    result = CliRunner().invoke(main, ["figures", str(run), "--out", str(tmp_path / "figs2")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(run / relpath) in errors[0]


def test_torn_last_log_line_is_tolerated(analyzed_run, tmp_path):
    from landscape.readers import load_log

    run = copy_run(analyzed_run, tmp_path / "run")
    whole = load_log(RunDir(run))
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')
    assert load_log(RunDir(run)) == whole


def test_cli_figures(analyzed_run, tmp_path):
    run = copy_run(analyzed_run, tmp_path / "run")
    shutil.rmtree(run / "analysis" / "interpolation")
    result = CliRunner().invoke(main, ["figures", str(run), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "surface: skipped" in result.output and "interpolation: skipped" in result.output
    drawn = ["dominance", "second_order", "smoothness", "trajectory", "training"]
    assert f"{2 * len(drawn)} files in {run / 'figures'}" in result.output
    assert sorted(p.name for p in (run / "figures").glob("*.p*")) == sorted(f"{n}.{e}" for n in drawn for e in ("pdf", "png"))
    help_text = CliRunner().invoke(main, ["figures", "--help"]).output
    assert "--epochs" in help_text and "--out" in help_text


def test_figure_numbers_come_from_the_files(analyzed_run):
    """The envelope constant drawn is the smallest ratio over the stored points above the floor."""
    from landscape.readers import load_dominance, load_track
    from landscape.verdicts import envelope_constant

    run = RunDir(analyzed_run)
    points, track = load_dominance(run), load_track(run)
    env = envelope_constant([p["F"] for p in points] + [r["F"] for r in track],
                            [p["grad_sq"] for p in points] + [r["grad_sq"] for r in track], 0.01)
    ratios = [json.loads((run.analysis_dir(e) / "dominance.json").read_text())["result"]["ratio"] for e in (0, 1, 2)]
    rows = [json.loads(line) for line in (analyzed_run / "track.jsonl").read_text().splitlines()]
    expected = min(ratios + [r["grad_sq"] / r["F"] for r in rows if r["F"] > 0.01])
    assert env["c"] == pytest.approx(expected, rel=1e-12)
    assert env["points"] == 3 + len(rows)
    assert np.isnan(envelope_constant([0.001], [1.0], 0.01)["c"])


def test_no_figure_shows_nan_and_each_fits_a_page(analyzed_run, tmp_path, monkeypatch):
    """Every text artist of every drawn figure (titles, labels, legends, tick labels, annotations) is free of
    'nan', the PNG carries at most a one-line title, and no figure is taller than MAX_HEIGHT_IN."""
    import landscape.plots as P

    seen = {}
    save = P.save_figure

    def capture(fig, out_dir, name, caption=""):
        fig.canvas.draw()
        from matplotlib.text import Text

        seen[name] = ([t.get_text() for t in fig.findobj(Text)],
                      fig.get_suptitle(), fig.get_size_inches()[1])
        return save(fig, out_dir, name, caption)

    monkeypatch.setattr(P, "save_figure", capture)
    make_figures(copy_run(analyzed_run, tmp_path / "run"))
    assert sorted(seen) == sorted(ALL_FIGURES)
    for name, (texts, title, height) in seen.items():
        bad = [t for t in texts if re.search(r"\bnan\b", t, re.I)]
        assert not bad, (name, bad)
        assert "\n" not in title and height <= P.MAX_HEIGHT_IN + 1e-9, (name, title, height)


def test_every_star_convexity_checkpoint_is_drawn_and_probe_panels_keep_the_fitted_range(analyzed_run, tmp_path,
                                                                                          monkeypatch):
    """On the real run: the star-convexity panel has one marker per stored checkpoint (none lost to an undefined
    ratio), and each smoothness panel's y range ends at 10 × F with every point beyond F pinned at its top."""
    import landscape.plots as P
    from landscape.readers import load_probes, load_trajectory

    figures = {}
    save = P.save_figure

    def capture(fig, out_dir, name, caption=""):
        fig.canvas.draw()
        markers = [(ax, [ln for ln in ax.lines if ln.get_linestyle() in ("None", "none")]) for ax in fig.axes]
        figures[name] = markers
        return save(fig, out_dir, name, caption)

    monkeypatch.setattr(P, "save_figure", capture)
    run = copy_run(analyzed_run, tmp_path / "run")
    make_figures(run)
    items = load_trajectory(RunDir(run))
    star_ax, star_lines = figures["trajectory"][0]
    assert sum(len(ln.get_xdata()) for ln in star_lines) == sum(len(t["star_epoch"]) for t in items)
    for (ax, _), epoch in zip(figures["smoothness"], analyzed_epochs(RunDir(run))):
        probes = load_probes(RunDir(run), epoch)
        ceiling = max(P.probe_ceiling(p) for p in probes)
        assert ax.get_ylim()[1] == pytest.approx(10 * ceiling)
        beyond = sum(int(np.sum((p["t"] != 0) & ~(np.abs(p["r"]) <= P.probe_ceiling(p)))) for p in probes)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert (f"|r| > F: outside the fit ({beyond} points, top edge)" in labels) == (beyond > 0)
