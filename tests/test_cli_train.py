"""`landscape train` through the command line: a real run, and one clean line for each bad input."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from click.testing import CliRunner

import landscape.train as train_module
from landscape.checkpoint import load_model
from landscape.cli import main
from landscape.results import RunDir, read_json, read_jsonl

from cases import REAL_FOLDER


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
@pytest.mark.slow
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
    assert_clean_failure(result, "unknown dataset 'imagenet'", "cifar10, cifar100, folder:PATH or")
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
    result = invoke("--out", run.path, "--resume", *tiny)  # the run's own epoch_0001.pt is intact
    assert result.exit_code == 0, result.output
    assert f"skipping {run.last_checkpoint}" in result.output and "corrupt or truncated" in result.output
    assert "after epoch 1 (from epoch_0001.pt)" in result.output
    assert run.last_checkpoint.read_bytes() == run.checkpoint(1).read_bytes()  # re-created
    for path in run.checkpoints.glob("*.pt"):
        path.write_bytes(path.read_bytes()[:1000])
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, str(run.path), "holds no intact checkpoint to resume from")


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


# ----------------------------------------------------------------------------- folders that are not (only) ours
def test_a_non_empty_folder_that_is_not_a_run_is_refused_unless_forced(tmp_path, tiny):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.pt").write_bytes(b"my own model")
    (out / "log.jsonl").write_text('{"mine": 1}\n')
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, *tiny)
    assert_clean_failure(result, str(out), "is not empty", "holds no landscape run", "--force")
    assert (out / "checkpoints" / "last.pt").read_bytes() == b"my own model"
    assert (out / "log.jsonl").read_text() == '{"mine": 1}\n'
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "log.jsonl"]
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, "--resume", *tiny)
    assert_clean_failure(result, "is not empty")
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, "--force", *tiny)  # never over the user's files
    assert_clean_failure(result, "--force writes a run beside the files", "log.jsonl", "checkpoints")
    assert (out / "checkpoints" / "last.pt").read_bytes() == b"my own model"
    assert (out / "log.jsonl").read_text() == '{"mine": 1}\n'
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "log.jsonl"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "checkpoints").mkdir()  # an empty folder of that name holds nothing to overwrite
    result = invoke("--arch", "resnet8", "--out", other, "--epochs", 1, "--force", *tiny)
    assert result.exit_code == 0, result.output
    assert RunDir(other).is_run() and (other / "notes.txt").read_text() == "mine"


def test_an_empty_folder_or_one_holding_only_leftovers_is_fine(tmp_path, tiny):
    out = tmp_path / "empty"
    out.mkdir()
    (out / ".config.json.a1b2c3.tmp").write_text("{")  # a kill inside the first write
    run = _tiny_run(out, tiny)
    assert not list(run.path.rglob("*.tmp")) and not (run.path / ".landscape.lock").exists()


def test_a_foreign_config_json_is_one_line(tmp_path, tiny):
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text('{"model": "bert", "lr": 3e-5}')
    for extra in ((), ("--resume",), ("--force",)):
        result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, *extra, *tiny)
        assert_clean_failure(result, str(out / "config.json"), "not the config.json of a landscape run")
    assert (out / "config.json").read_text() == '{"model": "bert", "lr": 3e-5}'


def test_a_folder_in_use_by_another_landscape_process_is_refused(tmp_path, tiny):
    import os

    from landscape.results import run_lock

    out = tmp_path / "busy"
    with run_lock(out, print, "landscape train"):
        result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, *tiny)
    assert_clean_failure(result, str(out), f"in use by pid {os.getpid()}")
    assert [p.name for p in out.iterdir()] == []


# ----------------------------------------------------------------------------- bad learning rates, non-finite weights
@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"),
                                          ("--momentum", "-0.5"), ("--momentum", "nan"), ("--wd", "-1"),
                                          ("--wd", "inf")])
def test_a_bad_learning_rate_is_refused_before_anything_is_written(tmp_path, tiny, option, value):
    out = tmp_path / "run"
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 1, option, value, *tiny)
    assert_clean_failure(result, option)
    assert not out.exists()
    _tiny_run(out, tiny)  # the corrected command is not blocked by anything left behind


def test_weights_that_turn_non_finite_under_a_finite_loss_are_never_checkpointed(tmp_path, tiny, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(model, *args, **kwargs):  # 3 steps per epoch: the last step of epoch 2 poisons a weight
        calls["n"] += 1
        loss, correct = real_step(model, *args, **kwargs)
        if calls["n"] == 6:
            with torch.no_grad():
                model.fc.weight[0, 0] = math.inf
        return loss, correct

    monkeypatch.setattr(train_module, "train_step", step)
    out = tmp_path / "poisoned"
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 3, "--save-at", "1,2", *tiny)
    run = RunDir(out)
    assert_clean_failure(result, "weights became non-finite in epoch 2", str(run.last_checkpoint), "(epoch 1)")
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    assert all(_finite_state(p) for p in run.checkpoints.glob("*.pt"))
    assert run.checkpoint_epochs() == [1]  # --save-at 1,2: epoch 2's never written
    assert [r["epoch"] for r in read_jsonl(run.log)] == [1]


def test_resuming_a_run_whose_config_holds_a_nan_learning_rate_is_one_line(tmp_path, tiny):
    run = _tiny_run(tmp_path / "a", tiny)
    config = read_json(run.config)
    config["train"]["lr"] = "nan"  # what an older version stored for --lr nan
    run.config.write_text(json.dumps(config))
    result = invoke("--out", run.path, "--resume", "--epochs", 2, *tiny)
    assert_clean_failure(result, str(run.config), "--lr must be a finite number > 0, got 'nan'")


def test_one_class_data_trains_with_a_warning(tmp_path, make_image_folder, cache_dir):
    root = make_image_folder("one", classes=("only",), train_per_class=8, test_per_class=2)
    result = invoke("--arch", "resnet8", "--dataset", "folder:one", "--data-root", root.parent, "--cache-dir",
                    cache_dir, "--out", tmp_path / "run", "--epochs", 1, "--batch-size", 8, "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning: every training label is the same class" in result.output and "gradient vanishes" in result.output
    result = invoke("--arch", "resnet8", "--dataset", "folder:one", "--data-root", root.parent, "--cache-dir",
                    cache_dir, "--out", tmp_path / "noisy", "--epochs", 1, "--label-noise", "0.5", "--quiet")
    assert_clean_failure(result, "label noise needs at least two classes")


# ----------------------------------------------------------------------------- damaged files, full disks
def test_an_unsafe_or_truncated_labels_file_is_one_line(tmp_path, tiny):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    run = _tiny_run(tmp_path / "a", tiny)
    with open(run.labels, "wb") as fh:
        pickle.dump({"indices": Evil(), "labels": torch.zeros(3)}, fh, protocol=2)
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, str(run.labels), "refusing to unpickle")
    assert "pwned" not in result.output
    run.labels.write_bytes(b"PK\x03\x04 truncated")
    result = invoke("--out", run.path, "--resume", *tiny)
    assert_clean_failure(result, str(run.labels), "corrupt or truncated")


def test_a_full_disk_during_a_checkpoint_write_is_one_line_and_keeps_last_pt(tmp_path, tiny, monkeypatch):
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f.write(b"some bytes")
            raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 6784 vs 6672")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "a"
    result = invoke("--arch", "resnet8", "--out", out, "--epochs", 2, *tiny)
    run = RunDir(out)
    assert_clean_failure(result, "could not write", str(run.checkpoint(2)), "unexpected pos")
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    assert not list(run.path.rglob("*.tmp")) and not (run.path / ".landscape.lock").exists()
    monkeypatch.setattr(torch, "save", real_save)
    result = invoke("--out", out, "--resume", *tiny)  # once there is room again
    assert result.exit_code == 0 and run.checkpoint_epochs() == [0, 1, 2], result.output


# ----------------------------------------------------------------------------- what a person sees
def test_train_says_what_it_does_and_figures_before_analyze_says_to_analyze(tmp_path, tiny):
    out = tmp_path / "run"
    loud = [a for a in tiny if a != "--quiet"]
    result = invoke("--arch", "resnet8", "--width", 0.25, "--out", out, "--epochs", 2, *loud)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[0] == f"landscape train: resnet8 → {out} …"  # printed before torch is imported
    assert "loading folder:tiny …" in lines
    assert any(line.startswith("epoch 0: batch-norm statistics") for line in lines)
    assert any(line.startswith("training:") and "epoch" in line for line in lines)  # the bar over epochs
    closing = [line for line in lines if line.startswith("trained epochs 1–2 in ")]
    assert len(closing) == 1 and "test accuracy" in closing[0]
    assert lines[-1] == f"checkpoints in {out / 'checkpoints'}"
    quiet = invoke("--arch", "resnet8", "--width", 0.25, "--out", tmp_path / "quiet", "--epochs", 1, *tiny)
    assert "loading" not in quiet.output and "landscape train:" not in quiet.output

    drawn = CliRunner().invoke(main, ["figures", str(out)])
    assert drawn.exit_code == 0, drawn.output  # the training curves
    assert f"no analysis yet: run `landscape analyze {out}`" in drawn.output
    reported = CliRunner().invoke(main, ["report", str(out), "--figures", "keep"])
    assert reported.exit_code == 0 and f"no analysis yet: run `landscape analyze {out}`" in reported.output
