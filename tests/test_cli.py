"""The command line's guard rails: every numeric option is checked before anything runs, and the
error boundary turns file-system and unpickling errors into one line naming the file."""

from __future__ import annotations

import copy
import errno
import json
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


# ----------------------------------------------------------------------------- help, names and aliases
import ast
import warnings
from pathlib import Path

import click
import torch

import landscape
from landscape import cli


def _options(command):
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def test_every_option_has_help_and_a_section_and_shows_its_default():
    for name, command in main.commands.items():
        for param in _options(command):
            assert param.help and param.help.strip(), f"{name} {param.opts[0]} has no help text"
            assert getattr(param, "section", None) in cli.SECTIONS, f"{name} {param.opts[0]} has no --help section"
            if param.default not in (None, False, ()) and not param.is_flag:
                assert param.show_default, f"{name} {param.opts[0]} hides its default {param.default!r}"


def test_help_lists_commands_in_workflow_order_and_options_by_section():
    top = CliRunner().invoke(main, ["--help"]).output
    listed = [line.split()[0] for line in top.split("Commands:")[1].strip().splitlines()]
    assert listed == ["train", "analyze", "figures", "report", "reproduce", "sweep"]
    text = CliRunner().invoke(main, ["analyze", "--help"]).output
    headings = [line.rstrip(":") for line in text.splitlines() if line.endswith("options:")]
    assert headings == ["Data options", "What to measure options", "Sizes options", "Curvature options",
                        "Output options", "Runtime options", "Other options"]
    curvature = text.split("Curvature options:")[1].split("Output options:")[0]
    assert "--eig-tol" in curvature and "--n-top" in curvature and "--grid-points" not in curvature
    assert "[default: 0.001]" in curvature  # --eig-tol's default, shown
    for hidden in ("--gaussian", "--filter", "--top ", "--grid ", "--bn ", "--interp-bn", "--interp-points"):
        assert hidden not in text  # old names work but are not listed
    assert "--wd" not in CliRunner().invoke(main, ["train", "--help"]).output


class _Recorder:
    """Stands in for Analysis: keeps what the command built, runs nothing."""

    seen: list = []

    def __init__(self, target, settings, runtime, **kwargs):
        self.run = type("Run", (), {"analysis": Path(target) / "analysis"})()
        _Recorder.seen.append((settings, runtime, torch.get_num_threads()))

    def run_all(self):
        pass


@pytest.fixture
def recorded(monkeypatch):
    _Recorder.seen = []
    monkeypatch.setattr("landscape.analysis.Analysis", _Recorder)
    threads = torch.get_num_threads()
    yield _Recorder.seen
    torch.set_num_threads(threads)


def test_old_analyze_option_names_still_work(tmp_path, recorded):
    old = ["--gaussian", "1", "--filter", "0", "--top", "2", "--grid", "7", "--bn", "batch", "--interp-bn",
           "interpolate", "--interp-points", "9", "--interp-pairs", "init-final", "--epochs", "1,2",
           "--measure", "second_order,random_surface"]
    new = ["--n-gaussian", "1", "--n-filter", "0", "--n-top", "2", "--grid-points", "7", "--bn-forward", "batch",
           "--bn-interpolation", "interpolate", "--interpolation-points", "9", "--interpolation-pairs", "init-final",
           "--at-epochs", "1,2", "--measure", "second-order,random-surface"]
    for args in (old, new):
        result = CliRunner().invoke(main, ["analyze", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
    (a, _, _), (b, _, _) = recorded
    assert a == b
    assert (b.probe_gaussian, b.probe_filter, b.curvature_top, b.surface_points, b.bn, b.interpolation_bn,
            b.interpolation_points, b.epochs, b.measurements) == (1, 0, 2, 7, "batch", "interpolate", 9, [1, 2],
                                                                  ["second_order", "random_surface"])


def test_old_train_option_names_still_work(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("landscape.train.train", lambda config, out, runtime, **kw: seen.append(config) or
                        type("Run", (), {"checkpoints": Path(out)})())
    for name in ("--wd", "--weight-decay"):
        result = CliRunner().invoke(main, ["train", "--arch", "resnet8", "--dataset", "folder:x", "--out",
                                           str(tmp_path / "r"), name, "3e-4", "--quiet"])
        assert result.exit_code == 0, result.output
    assert [c.weight_decay for c in seen] == [3e-4, 3e-4]


def test_threads_sets_torch_threads(tmp_path, recorded):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert recorded[0][2] == 1
    result = CliRunner().invoke(main, ["analyze", str(tmp_path), "--threads", "0"])
    _one_line_failure(result, "--threads", code=2)


@pytest.mark.parametrize("args,phrase", [
    (["train", "--arch", "resnet9", "--dataset", "cifar10"], "(did you mean resnet8 or resnet14?)"),
    (["train", "--arch", "vgg19", "--dataset", "cifar10"], "(did you mean vgg19_bn?)"),
    (["train", "--arch", "resnet8", "--dataset", "cifar-10"], "(did you mean cifar10?)"),
    (["train", "--arch", "resnet8", "--dataset", "folders:cifar10-jpeg"], "(did you mean folder:cifar10-jpeg?)"),
    (["analyze", "RUN", "--measure", "dominance,curvatur"], "(did you mean curvature?)"),
    (["reproduce", "--preset", "smok"], "(did you mean smoke?)"),
    (["analyze", "RUN", "--bn-stats", "recompte"], "(did you mean recompute?)")])
def test_a_near_miss_gets_a_suggestion_and_nothing_is_written(tmp_path, args, phrase):
    out = tmp_path / "out"
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    if args[0] != "analyze":
        args += ["--out", str(out)]
    result = CliRunner().invoke(main, args)
    _one_line_failure(result, phrase)
    assert not out.exists()


def test_a_bare_run_without_analysis_says_to_analyze_it(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": None, "data": {"dataset": "cifar10"}}))
    result = CliRunner().invoke(main, ["figures", str(run)])
    _one_line_failure(result, f"no analysis yet: run `landscape analyze {run}`", code=1)


# ----------------------------------------------------------------------------- the runtime, once
def test_the_runtime_decorator_builds_one_runtime(monkeypatch):
    from landscape import runtime as runtime_module

    built = []

    class Counting(runtime_module.Runtime):
        def __post_init__(self):
            built.append(self)
            super().__post_init__()

    monkeypatch.setattr(runtime_module, "Runtime", Counting)
    got = []

    @click.command()
    @cli.runtime_options(session=True)
    def command(runtime):
        got.append(runtime)

    result = CliRunner().invoke(command, ["--data-root", "/d", "--cache-dir", "/c", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(built) == 1 and got == built
    runtime = got[0]
    assert (runtime.data_root, runtime.cache_dir, runtime.device, runtime.progress) == ("/d", "/c", "cpu", False)
    assert runtime.group.world_size == 1


def test_data_root_and_cache_dir_are_parameters_of_data_loading_only():
    """Issue 19: the runtime options travel as one Runtime; only data.py's low-level loaders take them."""
    package = Path(landscape.__file__).parent
    taking = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = {a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs}
                if names & {"data_root", "cache_dir"} or (path.name == "cli.py" and "device" in names):
                    taking.append(f"{path.name}:{node.name}")
    assert len(taking) <= 3 and all(t.startswith("data.py:") for t in taking), taking


# ----------------------------------------------------------------------------- batch norm: library and CLI agree
def test_an_objective_left_at_the_default_bn_on_a_batchnorm_model_warns():
    from landscape.models import build_model
    from landscape.objective import Objective, RunningStatisticsWarning, exact_bn_statistics
    from landscape.settings import AnalysisSettings

    assert AnalysisSettings().bn_stats == "recompute"  # the CLI's default: the statistics of θ
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6) % 3
    model = build_model("resnet8", 3, 0.25)
    with pytest.warns(RunningStatisticsWarning, match="running statistics"):
        default = Objective(model, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = Objective(model, x, y, bn="frozen")  # a deliberate choice: no warning
        Objective(build_model("mlp1_d8", 3), torch.randn(4, 8), torch.arange(4) % 3)  # no batch norm
    assert default.bn == explicit.bn == "frozen" and default.evaluate() == explicit.evaluate()
    # the statistics of θ, set as `analyze --bn-stats recompute` sets them, equal bn='recompute'
    at_theta = copy.deepcopy(model)
    exact_bn_statistics(at_theta, x)
    recomputed = Objective(model, x, y, bn="recompute").evaluate()[0]
    assert abs(Objective(at_theta, x, y, bn="frozen").evaluate()[0] - recomputed) < 1e-5
