"""`landscape train` through the command line: a real run, and one clean line for each bad input."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from click.testing import CliRunner

import landscape.train as train_module
from landscape.checkpoint import load_model
from landscape.cli import main
from landscape.results import RunDir, read_json, read_jsonl

from conftest import REAL_FOLDER


def invoke(*args):
    return CliRunner().invoke(main, ["train", *[str(a) for a in args]])


def assert_clean_failure(result, *phrases):
    """Non-zero exit, no traceback, one 'Error:' line (the last) naming every phrase.

    Lines before it may be progress the run printed before it stopped.
    """
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed with {result.exception!r}"
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == [lines[-1]] and lines[-1].startswith("Error: "), result.output
    for phrase in phrases:
        assert phrase in lines[-1], f"{phrase!r} not in {lines[-1]!r}"
    return lines[-1]


@pytest.fixture
def tiny(make_image_folder, tmp_path, cache_dir):
    """Common options for a fast run on a tiny 3-class folder of random PNGs."""
    root = make_image_folder("tiny", classes=("a", "b", "c"), train_per_class=8, test_per_class=4)
    return ["--dataset", "folder:tiny", "--data-root", root.parent, "--cache-dir", cache_dir,
            "--batch-size", 8, "--quiet"]


# ----------------------------------------------------------------------------- a real run
def test_train_on_real_images_through_the_cli(tmp_path, data_root, cache_dir):
    out = tmp_path / "run"
    result = invoke("--arch", "resnet8", "--dataset", f"folder:{REAL_FOLDER}", "--data-root", data_root,
                    "--cache-dir", cache_dir, "--out", out, "--epochs", 2, "--train-subset", 64,
                    "--test-subset", 50, "--batch-size", 32, "--label-noise", 0.125, "--save-at", "1",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output
    assert f"checkpoints in {out / 'checkpoints'}" in result.output
    run = RunDir(out)
    assert run.checkpoint_epochs() == [1, 2]
    model, info, blob = load_model(run.last_checkpoint)
    assert info == {"arch": "resnet8", "num_classes": 10, "width": 1, "epoch": 2}
    config = read_json(run.config)["train"]
    assert config["label_noise"] == 0.125 and config["train_subset"] == 64
    assert config["weight_decay"] == 1e-4 and config["milestones"] == [1, 1]
    log = read_jsonl(run.log)
    assert [r["epoch"] for r in log] == [1, 2] and [r["lr"] for r in log] == pytest.approx([0.1, 0.001])


# ----------------------------------------------------------------------------- bad input
def test_unknown_dataset(tmp_path, data_root):
    out = tmp_path / "run"
    result = invoke("--arch", "resnet8", "--dataset", "imagenet", "--data-root", data_root, "--out", out)
    assert_clean_failure(result, "unknown dataset 'imagenet'", "cifar10, cifar100 or folder:PATH")
    assert not out.exists()


def test_unknown_architecture(tmp_path, tiny):
    out = tmp_path / "run"
    result = invoke("--arch", "resnet9", "--out", out, *tiny)
    assert_clean_failure(result, "unknown architecture 'resnet9'", "resnet32")
    assert not out.exists()


def test_missing_image_folder(tmp_path):
    result = invoke("--arch", "resnet8", "--dataset", "folder:nowhere", "--data-root", tmp_path,
                    "--out", tmp_path / "run")
    assert_clean_failure(result, str(tmp_path / "nowhere"), "does not exist")


def test_missing_cifar10_without_download(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("--arch", "resnet8", "--dataset", "cifar10", "--data-root", empty, "--out", tmp_path / "run")
    assert_clean_failure(result, "CIFAR-10 not found", str(empty / "cifar-10-batches-py"), "--download")


def test_image_folder_whose_classes_differ(tmp_path, make_image_folder, cache_dir):
    root = make_image_folder("odd", classes=("cat", "dog"), test_classes=("cat", "dog", "emu"))
    result = invoke("--arch", "resnet8", "--dataset", "folder:odd", "--data-root", root.parent,
                    "--cache-dir", cache_dir, "--out", tmp_path / "run")
    assert_clean_failure(result, "train and test classes differ", "only in test: ['emu']")


@pytest.mark.parametrize("noise", ["1.0", "-0.1", "1.5"])
def test_label_noise_outside_unit_interval(tmp_path, tiny, noise):
    result = invoke("--arch", "resnet8", "--out", tmp_path / "run", "--label-noise", noise, *tiny)
    assert_clean_failure(result, "label noise must be in [0, 1)", noise)


def _tiny_run(out, tiny, arch="resnet8", extra=()):
    result = invoke("--arch", arch, "--out", out, "--epochs", 1, *extra, *tiny)
    assert result.exit_code == 0, result.output
    return RunDir(out)


def test_checkpoint_of_another_architecture_or_class_count(tmp_path, tiny, make_image_folder, cache_dir):
    run = _tiny_run(tmp_path / "a", tiny)
    other_arch = _tiny_run(tmp_path / "b", tiny, arch="resnet14")
    four = make_image_folder("four", classes=("a", "b", "c", "d"), train_per_class=4, test_per_class=2)
    four_opts = ["--dataset", "folder:four", "--data-root", four.parent, "--cache-dir", cache_dir,
                 "--batch-size", 8, "--quiet"]
    other_classes = _tiny_run(tmp_path / "c", four_opts)

    shutil.copy(other_arch.last_checkpoint, run.last_checkpoint)
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, "resnet14 with 3 classes", "resnet8 with 3 classes", str(run.last_checkpoint))

    shutil.copy(other_classes.last_checkpoint, run.last_checkpoint)
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, "resnet8 with 4 classes", "resnet8 with 3 classes")


def test_truncated_checkpoint(tmp_path, tiny):
    run = _tiny_run(tmp_path / "a", tiny)
    raw = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(raw[: len(raw) // 2])
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, str(run.last_checkpoint), "corrupt or truncated")


def test_output_directory_holding_another_run(tmp_path, tiny):
    run = _tiny_run(tmp_path / "a", tiny)
    before = run.last_checkpoint.read_bytes()
    result = invoke("--arch", "resnet14", "--out", run.path, "--epochs", 1, *tiny)
    assert_clean_failure(result, str(run.path), "already holds a run", "--resume")
    assert run.last_checkpoint.read_bytes() == before
    result = invoke("--arch", "resnet14", "--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, "was trained with arch='resnet8', not 'resnet14'")


def test_resume_of_nothing_and_missing_options(tmp_path):
    result = invoke("--out", tmp_path / "none", "--resume")
    assert_clean_failure(result, "holds no run to resume", "--arch")
    result = invoke("--out", tmp_path / "none", "--arch", "resnet8")
    assert result.exit_code == 2 and "--arch and --dataset are required" in result.output


def _finite_state(path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
    out = tmp_path / "diverged"
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 3, "--lr", "1e12", *tiny)
    line = assert_clean_failure(result, "loss became nan", "epoch 1", "step ", "iteration ",
                                str(RunDir(out).last_checkpoint), "(epoch 0)")
    assert "Traceback" not in line
    run = RunDir(out)
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 0
    assert _finite_state(run.last_checkpoint)
    assert read_jsonl(run.log) == []


def test_nan_loss_in_a_later_epoch(tmp_path, tiny, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(*args, **kwargs):  # 24 images / batch 8 = 3 steps per epoch; poison epoch 2, step 2
        calls["n"] += 1
        loss, correct = real_step(*args, **kwargs)
        return (loss * math.nan if calls["n"] == 5 else loss), correct

    monkeypatch.setattr(train_module, "train_step", step)
    out = tmp_path / "later"
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 3, *tiny)
    assert_clean_failure(result, "loss became nan at epoch 2, step 2 (iteration 5)", "(epoch 1)")
    run = RunDir(out)
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    assert _finite_state(run.last_checkpoint)
    assert [r["epoch"] for r in read_jsonl(run.log)] == [1]


# ----------------------------------------------------------------------------- interrupt and resume
def test_ctrl_c_then_the_same_command_with_resume_finishes_the_run(tmp_path, tiny, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 2, first step
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    out = tmp_path / "run"
    command = ["--arch", "resnet8", "--out", out, "--epochs", 4, "--milestones", "0.5,0.75",
               "--save-at", "1,2", "--seed", 7, *tiny]
    monkeypatch.setattr(train_module, "train_step", step)
    result = invoke(*command)
    assert result.exit_code == 130
    assert "interrupted" in result.output and "resume" in result.output
    assert "Traceback" not in result.output
    run = RunDir(out)
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1

    monkeypatch.setattr(train_module, "train_step", real_step)
    result = invoke(*command, "--resume")  # the very same options, fractions and lists included
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "after epoch 1" in result.output
    assert [r["epoch"] for r in read_jsonl(run.log)] == [1, 2, 3, 4]
    assert run.checkpoint_epochs() == [1, 2, 4]
    stored = read_json(run.config)["train"]
    assert stored["milestones"] == [2, 3] and stored["save_at"] == [1, 2, 4] and stored["seed"] == 7
    result = invoke(*command, "--resume", "--seed", 8)
    assert_clean_failure(result, "was trained with seed=7, not 8")
