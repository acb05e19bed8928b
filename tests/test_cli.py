"""The command line's guard rails: every numeric option is checked before anything runs, and the
error boundary turns file-system and unpickling errors into one line naming the file."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
from click.testing import CliRunner

from landscape.cli import main


def _one_line_failure(result, *phrases, code=None):
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    assert isinstance(result.exception, SystemExit), f"crashed with {result.exception!r}"
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error")] == [last]
    for phrase in phrases:
        assert phrase in last, f"{phrase!r} not in {last!r}"
    return last


# ----------------------------------------------------------------------------- option tables
TRAIN_BAD = [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"), ("--lr", "x"),
             ("--momentum", "-0.1"), ("--momentum", "1"), ("--momentum", "nan"),
             ("--wd", "-1e-4"), ("--wd", "inf"), ("--wd", "nan"),
             ("--epochs", "0"), ("--epochs", "-3"), ("--width", "0"), ("--batch-size", "0"),
             ("--seed", "-1"), ("--train-subset", "0"), ("--test-subset", "-1"),
             ("--label-noise", "nan"), ("--label-noise", "inf"),
             ("--track-every", "-1"), ("--track-subset", "0"),
             ("--milestones", "0.5,nan"), ("--milestones", "-2"), ("--milestones", "0.5,inf"),
             ("--save-at", "-1,3")]


@pytest.mark.parametrize("option,value", TRAIN_BAD)
def test_train_refuses_a_bad_number_before_creating_anything(tmp_path, option, value):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--arch", "resnet8", "--dataset", "folder:x", "--out", str(out),
                                       option, value])
    _one_line_failure(result, option, code=2)
    assert not out.exists()


ANALYZE_BAD = [("--probe-steps", "0"), ("--probe-steps", "-2"), ("--eig-max-matvecs", "0"),
               ("--surface-range", "0"), ("--surface-range", "-1"), ("--surface-range", "nan"),
               ("--surface-range", "inf"), ("--probe-range", "1e-5,inf"), ("--probe-range", "nan,0.05"),
               ("--probe-range", "0.05,1e-5"), ("--probe-range", "0,0.05"), ("--probe-range", "1e-5"),
               ("--grid", "2"), ("--grid", "-21"), ("--interp-points", "1"), ("--subset", "0"),
               ("--test-subset", "-1"), ("--seed", "-1"), ("--batch-size", "0"), ("--gaussian", "-1"),
               ("--filter", "-1"), ("--top", "0"), ("--curvature-subset", "-1"), ("--sigma", "-0.1"),
               ("--sigma", "nan"), ("--smoothing-samples", "0"), ("--eig-tol", "-1"), ("--eig-tol", "inf"),
               ("--trace-samples", "-1"), ("--epochs", "-1")]


@pytest.mark.parametrize("option,value", ANALYZE_BAD)
def test_analyze_refuses_a_bad_number_before_reading_anything(tmp_path, option, value):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path), option, value])
    _one_line_failure(result, option.split()[0], code=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["figures", "RUN", "--floor", "nan"], ["figures", "RUN", "--floor", "-1"],
                                     ["report", "RUN", "--floor", "inf"],
                                     ["reproduce", "--out", "RUN", "--seed", "-1"]])
def test_other_commands_check_their_numbers(tmp_path, command):
    result = CliRunner().invoke(main, [str(tmp_path) if c == "RUN" else c for c in command])
    _one_line_failure(result, command[-2], code=2)


# ----------------------------------------------------------------------------- the error boundary
def _raising(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


@pytest.mark.parametrize("command,target", [
    (["figures", "RUN"], "landscape.plots.make_figures"),
    (["report", "RUN"], "landscape.report.write_report"),
    (["analyze", "RUN", "--measure", "dominance"], "landscape.analysis.Analysis.__init__"),
    (["train", "--arch", "resnet8", "--dataset", "folder:x", "--out", "RUN/new"], "landscape.train.train")])
def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path, monkeypatch, command, target):
    """Tests run as root, for whom chmod does not bite: the failure is injected where the write happens."""
    denied = tmp_path / "figures" / "dominance.png"
    monkeypatch.setattr(target, _raising(PermissionError(errno.EACCES, "Permission denied", str(denied))))
    result = CliRunner().invoke(main, [str(tmp_path) if c == "RUN" else c.replace("RUN", str(tmp_path))
                                       for c in command])
    _one_line_failure(result, f"cannot access {denied}: Permission denied", code=1)


def test_a_full_disk_or_an_unpickling_error_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "analysis" / "epoch_0001" / "surface.npz"
    monkeypatch.setattr("landscape.plots.make_figures",
                        _raising(OSError(errno.ENOSPC, "No space left on device", str(path))))
    _one_line_failure(CliRunner().invoke(main, ["figures", str(tmp_path)]), str(path), "No space left on device")
    monkeypatch.setattr("landscape.plots.make_figures", _raising(pickle.UnpicklingError("invalid load key, 'x'.")))
    _one_line_failure(CliRunner().invoke(main, ["figures", str(tmp_path)]), "damaged or unsafe file",
                      "invalid load key")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_folder(tmp_path, make_image_folder, cache_dir):
    root = make_image_folder("tiny", classes=("a", "b"), train_per_class=4, test_per_class=2)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        result = CliRunner().invoke(main, ["train", "--arch", "resnet8", "--dataset", "folder:tiny", "--data-root",
                                           str(root.parent), "--cache-dir", str(cache_dir), "--epochs", "1",
                                           "--out", str(tmp_path / "ro" / "run"), "--quiet"])
        _one_line_failure(result, str(tmp_path / "ro" / "run"), "Permission denied")
    finally:
        (tmp_path / "ro").chmod(0o755)
