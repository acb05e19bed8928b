"""A hostile user's cases (issue 22): never a stale number, never a user's file touched, one line
instead of a traceback, and a corrected rerun that works without deleting anything.

Everything runs through the command line on tiny synthetic data (an mlp on 32 vectors) or a
tiny image folder, so each case takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

import landscape.train as train_module
from landscape.checkpoint import fingerprint
from landscape.cli import main
from landscape.readers import FIELD_DOMAINS, load_dominance
from landscape.results import RunDir, read_json, read_jsonl, read_npz, run_lock

SYN = "synthetic:separated?n=32&d=8&delta=0.3"
SYN3 = "synthetic:separated?n=30&d=8&delta=0.3&classes=3"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_failure(result, *phrases):
    """Non-zero exit, no traceback, one 'Error:' line (the last) holding every phrase."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed with {result.exception!r}"
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert [line for line in lines if line.startswith("Error")] == [lines[-1]], result.output
    for phrase in phrases:
        assert phrase in lines[-1], f"{phrase!r} not in {lines[-1]!r}"
    return lines[-1]


def train(out, *extra, dataset=SYN, arch="mlp1_d8", epochs=1, seed=0):
    result = invoke("train", "--arch", arch, "--dataset", dataset, "--no-augment", "--epochs", epochs,
                    "--batch-size", 8, "--seed", seed, "--out", out, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return RunDir(out)


def analyze(target, *extra):
    result = invoke("analyze", target, "--subset", 16, "--test-subset", 10, "--quiet", *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def dominance_F(folder, epoch=1) -> float:
    return read_json(RunDir(folder).analysis_dir(epoch) / "dominance.json")["result"]["F"]


def snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- 2. keys hold the content
def test_fingerprint_is_the_sha256_of_the_content_and_follows_a_rewrite(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"first")
    assert fingerprint(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"other")  # same size: the cache is keyed by (size, mtime_ns) too
    os.utime(path, ns=(1, 10**18))
    assert fingerprint(path) == hashlib.sha256(b"other").hexdigest()


def test_a_checkpoint_replaced_at_the_same_path_is_analyzed_again(tmp_path):
    a, b = train(tmp_path / "a"), train(tmp_path / "b", seed=1)
    model = tmp_path / "ext" / "model.pt"
    model.parent.mkdir()
    shutil.copy(a.checkpoint(1), model)
    out = tmp_path / "c8g"
    analyze(model, "--dataset", SYN, "--measure", "dominance", "--out", out)
    first = dominance_F(out)
    shutil.copy(b.checkpoint(1), model)  # another network, same file name
    analyze(model, "--dataset", SYN, "--measure", "dominance", "--out", out)
    analyze(b.checkpoint(1), "--dataset", SYN, "--measure", "dominance", "--out", tmp_path / "direct")
    assert dominance_F(out) != first and dominance_F(out) == dominance_F(tmp_path / "direct")
    stored = read_json(RunDir(out).analysis_dir(1) / "dominance.json")["context"]
    assert stored["checkpoint_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_a_retrained_run_gets_new_interpolations_and_trajectory(tmp_path):
    run = train(tmp_path / "run", "--save-at", "0,1,2", epochs=2)
    other = train(tmp_path / "other", "--save-at", "0,1,2", epochs=2, seed=3)
    args = ("--measure", "dominance,interpolation,trajectory", "--interp-pairs", "init-final", "--interp-points", 3)
    analyze(run.path, *args)
    interp, trajectory = run.analysis / "interpolation" / "epoch_0000_to_0002.json", run.analysis / "trajectory" / "repeat_0.json"
    before = {p: read_json(p) for p in (interp, trajectory)}
    loss_before = read_npz(interp.with_suffix(".npz"))["train_loss"]
    unchanged = snapshot(run.analysis)
    analyze(run.path, *args)  # nothing changed: nothing recomputed
    assert snapshot(run.analysis) == unchanged
    shutil.copy(other.checkpoint(2), run.checkpoint(2))  # the final checkpoint rewritten (a retrain)
    analyze(run.path, *args)
    sha = hashlib.sha256(run.checkpoint(2).read_bytes()).hexdigest()
    assert read_json(run.analysis_dir(2) / "dominance.json")["context"]["checkpoint_sha256"] == sha
    for path, old in before.items():
        context = read_json(path)["context"]
        new_sha, old_sha = ((context["train"], old["context"]["train"]) if path == interp
                            else (context, old["context"]))
        assert new_sha["checkpoint_sha256"] != old_sha["checkpoint_sha256"], path
    loss_after = read_npz(interp.with_suffix(".npz"))["train_loss"]
    # 3 points in [0, 1]: α = -0.5, 0, 0.5, 1, 1.5: the same start (epoch 0), a new end
    assert loss_after[1] == pytest.approx(loss_before[1]) and loss_after[3] != loss_before[3]


# ----------------------------------------------------------------------------- 4. impossible stored values
@pytest.mark.parametrize("field,value,phrase", [("grad_sq", -5, "-5, outside its domain (≥ 0: a squared norm)"),
                                                ("F", -1, "-1, outside its domain (≥ 0: a loss)"),
                                                ("F", "nan", "NaN where a number is required"),
                                                ("train_acc", 1.5, "1.5, outside its domain (a fraction in [0, 1])")])
def test_report_refuses_an_impossible_stored_value(tmp_path, field, value, phrase):
    run = train(tmp_path / "run")
    analyze(run.path, "--measure", "dominance")
    assert invoke("report", run.path, "--figures", "keep").exit_code == 0
    path = run.analysis_dir(1) / "dominance.json"
    stored = read_json(path)
    stored["result"][field] = value
    path.write_text(json.dumps(stored))
    before = snapshot(run.path)
    for command in ("report", "figures"):
        one_line_failure(invoke(command, run.path), str(path), f"'result.{field}' is {phrase}")
    assert snapshot(run.path) == before


def test_every_domain_is_checked_where_the_readers_read(tmp_path):
    assert {"F", "grad_sq", "grad_sq_hidden", "ratio", "train_loss", "test_acc", "lr"} <= set(FIELD_DOMAINS)
    assert FIELD_DOMAINS["ratio"].reject(math.nan) is None  # 0/0: undefined, stored as 'nan'
    assert FIELD_DOMAINS["ratio"].reject(-1.0) and FIELD_DOMAINS["grad_sq"].reject(math.inf)
    run = train(tmp_path / "run")
    rows = read_jsonl(run.log)
    rows[0]["train_loss"] = -0.5
    run.log.write_text(json.dumps(rows[0]) + "\n")
    one_line_failure(invoke("report", run.path), str(run.log), "'line 1: train_loss' is -0.5, outside its domain (≥ 0: a loss)")


def test_a_one_class_run_stores_an_undefined_ratio_not_inf(tmp_path, make_image_folder, cache_dir):
    root = make_image_folder("one", classes=("only",), train_per_class=8, test_per_class=2)
    out = tmp_path / "run"
    result = invoke("train", "--arch", "resnet8", "--width", "0.25", "--dataset", "folder:one", "--data-root",
                    root.parent, "--cache-dir", cache_dir, "--epochs", 1, "--batch-size", 8, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    analyze(out, "--measure", "dominance", "--subset", 8, "--data-root", root.parent, "--cache-dir", cache_dir)
    stored = read_json(out / "analysis" / "epoch_0001" / "dominance.json")["result"]
    assert stored["F"] == 0 and stored["grad_sq"] == 0 and stored["ratio"] == "nan"  # 0/0, not inf
    assert math.isnan(load_dominance(RunDir(out))[0]["ratio"])


# ----------------------------------------------------------------------------- 5. small refusals
def test_save_at_beyond_the_last_epoch_is_one_line(tmp_path):
    out = tmp_path / "run"
    one_line_failure(invoke("train", "--arch", "mlp1_d8", "--dataset", SYN, "--no-augment", "--epochs", 1,
                            "--save-at", 5, "--out", out), "--save-at 5 is beyond --epochs 1")
    assert not out.exists()


def test_report_and_figures_refuse_while_an_analysis_holds_the_run(tmp_path):
    run = train(tmp_path / "run")
    analyze(run.path, "--measure", "dominance")
    before = snapshot(run.path)
    with run_lock(run.path, print, "landscape analyze"):
        for command in ("report", "figures"):
            one_line_failure(invoke(command, run.path), str(run.path), f"in use by pid {os.getpid()}",
                             "landscape analyze")
        snapshot_during = {k: v for k, v in snapshot(run.path).items() if k != ".landscape.lock"}
        assert snapshot_during == before
    assert invoke("report", run.path).exit_code == 0  # free again: the same command works
    assert (run.path / "report.md").is_file() and not (run.path / ".landscape.lock").exists()


@pytest.mark.parametrize("measure", ["", ",", "dominance,,probes"])
def test_an_empty_measurement_list_is_one_line(tmp_path, measure):
    run = train(tmp_path / "run")
    one_line_failure(invoke("analyze", run.path, "--measure", measure), "--measure needs measurement names")
    assert not run.analysis.exists()


@pytest.mark.parametrize("pairs", ["foo", "init-final,foo", "2-2", "1-x", "init-final,"])
def test_bad_interpolation_pairs_are_refused_before_any_work(tmp_path, pairs):
    run = train(tmp_path / "run")
    one_line_failure(invoke("analyze", run.path, "--interp-pairs", pairs), "--interp-pairs")
    assert not run.analysis.exists()


# ----------------------------------------------------------------------------- 6-9. one line, not a traceback
def test_an_architecture_that_does_not_take_the_data_leaves_nothing_behind(tmp_path):
    out = tmp_path / "Y"
    command = ["train", "--arch", "mlp2_d16", "--loss", "mse", "--no-augment", "--epochs", 1,
               "--dataset", "synthetic:separated?n=64&d=8&delta=0.5", "--out", out, "--quiet"]
    one_line_failure(invoke(*command), "mlp2_d16 does not fit", "shape (8,)", "--arch mlp2_d8")
    assert not out.exists()
    result = invoke(*["mlp2_d8" if c == "mlp2_d16" else c for c in command])  # the corrected command
    assert result.exit_code == 0, result.output
    one_line_failure(invoke("train", "--arch", "resnet8", "--no-augment", "--epochs", 1, "--dataset", SYN,
                            "--out", tmp_path / "Z"), "resnet8 does not fit")
    assert not (tmp_path / "Z").exists()


def test_a_checkpoint_of_another_class_count_in_a_run_is_one_line(tmp_path):
    three = train(tmp_path / "three", dataset=SYN3)
    run = train(tmp_path / "run")
    shutil.copy(three.checkpoint(1), run.checkpoint(1))
    one_line_failure(invoke("analyze", run.path, "--measure", "dominance", "--quiet"),
                     str(run.checkpoint(1)), "has 3 outputs", "2 classes")


def test_the_class_count_is_read_off_any_checkpoint_without_loading_it(tmp_path):
    from landscape.checkpoint import checkpoint_classes
    from landscape.models import build_model

    state = build_model("resnet8", 3, 0.25).state_dict()
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "bare.pt")  # DataParallel keys
    torch.save({"state_dict": state, "epoch": 4}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert checkpoint_classes(tmp_path / "bare.pt") == checkpoint_classes(tmp_path / "legacy.pt") == 3
    assert checkpoint_classes(tmp_path / "junk.pt") is None  # its damage is reported when it is loaded


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_synthetic_seed_out_of_range_is_one_line(tmp_path, seed):
    out = tmp_path / "run"
    one_line_failure(invoke("train", "--arch", "mlp1_d16", "--no-augment", "--epochs", 1, "--out", out,
                            "--dataset", f"synthetic:separated?n=64&d=16&delta=0.5&seed={seed}"),
                     f"seed must be a whole number from 0 to {2**32 - 1}, got {seed}")
    assert not out.exists()


@pytest.mark.parametrize("arch,width,dataset,phrase", [
    ("mlp2_d8", "1e9", SYN, "more parameters than torch can allocate"),
    ("mlp2_d8", "400", SYN, "has 1,310,976,000 parameters"),  # m = 64·400: 8m + 2m² + 2m, over the limit
])
def test_a_network_too_large_is_refused_with_its_size(tmp_path, arch, width, dataset, phrase):
    out = tmp_path / "run"
    one_line_failure(invoke("train", "--arch", arch, "--width", width, "--no-augment", "--dataset", dataset,
                            "--epochs", 1, "--out", out), phrase, "the limit is 1,000,000,000", "--width")
    assert not out.exists()


def test_counts_have_stated_upper_limits(tmp_path):
    result = invoke("train", "--arch", "mlp1_d8", "--dataset", SYN, "--epochs", "99999999999", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--epochs" in result.output and "100000" in result.output
    result = invoke("train", "--arch", "mlp1_d8", "--dataset", SYN, "--batch-size", "10000000", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--batch-size" in result.output
    assert not (tmp_path / "r").exists()
    help_text = invoke("train", "--help").output
    assert "at most 100,000" in help_text and "at most 1,000,000)" in help_text


# ----------------------------------------------------------------------------- 10. divergence
def _finite(path) -> bool:
    blob = torch.load(path, weights_only=True)
    metrics = blob.get("metrics") or {}
    return (all(torch.isfinite(v).all() for v in blob["state_dict"].values() if v.is_floating_point())
            and all(math.isfinite(metrics[k]) for k in ("train_loss", "test_loss") if k in metrics))


def test_a_non_finite_test_loss_stops_the_run_at_the_last_finite_checkpoint(tmp_path, monkeypatch):
    real = train_module._evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):  # the initial network's test loss is finite; epoch 1's is not
        calls["n"] += 1
        loss, acc = real(*args, **kwargs)
        return (math.nan if calls["n"] == 2 else loss), acc

    monkeypatch.setattr(train_module, "_evaluate", evaluate)
    out = tmp_path / "d6"
    result = invoke("train", "--arch", "mlp1_d8", "--dataset", SYN, "--no-augment", "--epochs", 4,
                    "--save-at", "0,1,2,3,4", "--out", out, "--quiet")
    run = RunDir(out)
    one_line_failure(result, "the test loss became nan in epoch 1", f"last good checkpoint: {run.last_checkpoint} (epoch 0)")
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 0 and _finite(run.last_checkpoint)
    assert run.checkpoint_epochs() == [0] and read_jsonl(run.log) == []


def test_the_named_last_good_checkpoint_is_verified(tmp_path, monkeypatch):
    """A resumed run whose last.pt records a NaN test loss (written before this check existed): the
    divergence names the older checkpoint whose weights and losses are finite, not last.pt."""
    real_step = train_module.train_step
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # 32 vectors / batch 8 = 4 steps: epoch 2, first step
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupted)
    out = tmp_path / "run"
    command = ["train", "--arch", "mlp1_d8", "--dataset", SYN, "--no-augment", "--epochs", 3, "--batch-size", 8,
               "--save-at", "0,1", "--out", out, "--quiet"]
    assert invoke(*command).exit_code == 130
    run = RunDir(out)
    for path in (run.last_checkpoint, run.checkpoint(1)):  # as an older version wrote them
        blob = torch.load(path, weights_only=True)
        blob["metrics"]["test_loss"] = math.nan
        torch.save(blob, path)

    def poisoned(*args, **kwargs):
        loss, correct = real_step(*args, **kwargs)
        return loss * math.nan, correct

    monkeypatch.setattr(train_module, "train_step", poisoned)
    line = one_line_failure(invoke(*command, "--resume"), "loss became nan at epoch 2")
    assert f"last good checkpoint: {run.checkpoint(0)} (epoch 0)" in line and _finite(run.checkpoint(0))


def test_a_non_finite_tracked_loss_stops_the_run_before_it_is_written(tmp_path, monkeypatch):
    real = train_module._track
    calls = {"n": 0}

    def track(*args, **kwargs):  # the second tracked point (step 2) overflows
        calls["n"] += 1
        row = real(*args, **kwargs)
        return {**row, "F": math.inf} if calls["n"] == 2 else row

    monkeypatch.setattr(train_module, "_track", track)
    out = tmp_path / "run"
    result = invoke("train", "--arch", "mlp1_d8", "--dataset", SYN, "--no-augment", "--epochs", 2, "--batch-size", 8,
                    "--track-every", 1, "--out", out, "--quiet")
    one_line_failure(result, "the tracked loss became inf at step 2 (epoch 1)", "(epoch 0)")
    rows = read_jsonl(RunDir(out).track)
    assert [r["step"] for r in rows] == [1] and all(math.isfinite(r["F"]) for r in rows)
