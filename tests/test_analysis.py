"""`landscape analyze` end to end on real CIFAR-10 JPEGs: a small trained ResNet, the stored
results, resumption without recomputation, and an external (bearpaw-style) checkpoint."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.checkpoint import load_model
from landscape.cli import main
from landscape.data import balanced_subset
from landscape.models import build_model
from landscape.objective import Objective
from landscape.results import atomic_write_json, read_json, read_npz
from landscape.runtime import Runtime

from cases import REAL_FOLDER

pytestmark = pytest.mark.slow  # real images, trained runs: `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_root, cache_dir):
    """resnet8 trained 2 epochs on 300 real training images; checkpoints at epochs 0 and 2."""
    from landscape.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run") / "resnet8"
    config = TrainConfig(arch="resnet8", dataset=f"folder:{REAL_FOLDER}", epochs=2, train_subset=300,
                         test_subset=100, batch_size=64, seed=0, save_at=[0, 2])
    train(config, out, Runtime(data_root, cache_dir, progress=False, echo=lambda *a: None))
    return out


def _copy_run(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("analysis"))
    return dest


class _Counter:
    """Counts calls of Objective's evaluating methods (monkeypatched on the class)."""

    def __init__(self, monkeypatch):
        self.calls = {"evaluate": 0, "value_and_grad": 0, "hvp": 0, "recomputed_buffers": 0}
        for name in self.calls:
            original = getattr(Objective, name)

            def wrapped(obj, *args, _original=original, _name=name, **kwargs):
                self.calls[_name] += 1
                return _original(obj, *args, **kwargs)

            monkeypatch.setattr(Objective, name, wrapped)

    def reset(self):
        for k in self.calls:
            self.calls[k] = 0


def _analyze(args, data_root, cache_dir):
    result = CliRunner().invoke(main, ["analyze", *map(str, args), "--quiet", "--data-root", str(data_root),
                                       "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _finite_numbers(obj, where=""):
    """Every number in a JSON-like tree, with its path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _finite_numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _finite_numbers(v, f"{where}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield where, obj


PROBE_ARGS = ["--measure", "dominance,probes", "--subset", "128", "--test-subset", "100",
              "--gaussian", "1", "--filter", "1", "--probe-steps", "3"]


@pytest.fixture(scope="module")
def probed_run(trained_run, tmp_path_factory, data_root, cache_dir):
    run = _copy_run(trained_run, tmp_path_factory.mktemp("probed"))
    _analyze([run, *PROBE_ARGS], data_root, cache_dir)
    return run


def test_dominance_and_probes_on_real_images(probed_run, data_root, cache_dir, cifar10):
    analysis = probed_run / "analysis"
    names = {"dominance.json", "probe_neg_gradient.json", "probe_neg_gradient.npz", "probe_gaussian_0.json",
             "probe_gaussian_0.npz", "probe_filter_normalized_0.json", "probe_filter_normalized_0.npz"}
    assert sorted(p.name for p in analysis.iterdir()) == ["epoch_0000", "epoch_0002"]
    for epoch in (0, 2):
        folder = analysis / f"epoch_{epoch:04d}"
        assert names <= {p.name for p in folder.iterdir()}, folder
        dom = read_json(folder / "dominance.json")
        res = dom["result"]
        assert res["grad_sq"] > 0 and res["grad_sq_hidden"] > 0 and res["F"] > 0
        assert res["ratio"] == pytest.approx(res["grad_sq"] / res["F"])
        assert dom["key"]["context"]["examples"] == 128 and dom["key"]["context"]["epoch"] == epoch
        for where, value in _finite_numbers(dom):
            assert math.isfinite(value), where
        for probe in ("neg_gradient", "gaussian_0", "filter_normalized_0"):
            summary = read_json(folder / f"probe_{probe}.json")
            for where, value in _finite_numbers(summary["result"]):
                assert math.isfinite(value), (probe, where)
            arrays = read_npz(folder / f"probe_{probe}.npz")
            # the adaptive probe: every evaluated point is stored (scout, bisections, 3 ladder steps per side)
            assert set(arrays) == {"t", "f", "r", "acc"} and len(arrays["t"]) == summary["result"]["evaluations"] >= 7
            assert {"resolved", "points", "distinct_t", "t_range"} <= set(summary["result"]["fit"])
            for k, a in arrays.items():
                assert np.isfinite(a).all(), (probe, k)
            # the probe's f(0) is F of the same checkpoint, same examples
            assert summary["result"]["F"] == pytest.approx(res["F"], rel=1e-5)
            assert not list(folder.glob("*.partial.npz"))
        # F is the mean loss of the checkpoint on the run's own (possibly noisy) labels,
        # over the seeded balanced subset of 128 of its 300 training examples
        model, _, _ = load_model(probed_run / "checkpoints" / f"epoch_{epoch:04d}.pt")
        saved = torch.load(probed_run / "labels.pt", weights_only=True)
        idx = balanced_subset(saved["labels"], 128, 0)
        config = read_json(probed_run / "config.json")
        obj = Objective(model, cifar10.train_images[saved["indices"]][idx], saved["labels"][idx],
                        mean=config["data"]["mean"], std=config["data"]["std"], bn="recompute")
        assert res["F"] == pytest.approx(obj.value(), rel=1e-5)  # with the statistics of θ on those examples
    # training moved the weights: the checkpoints give different numbers
    fs = [read_json(analysis / f"epoch_{e:04d}" / "dominance.json")["result"]["F"] for e in (0, 2)]
    assert fs[0] != fs[1]


@pytest.fixture(scope="module")
def rerun(probed_run, data_root, cache_dir):
    """The same command again: (calls to Objective's methods, files before, files after)."""
    before = _snapshot(probed_run / "analysis")
    loaded = _load_all(probed_run / "analysis")
    with pytest.MonkeyPatch.context() as mp:
        counter = _Counter(mp)
        _analyze([probed_run, *PROBE_ARGS], data_root, cache_dir)
    return dict(counter.calls), before, loaded, _snapshot(probed_run / "analysis")


def _load_all(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (read_json(p) if p.suffix == ".json" else read_npz(p))
            for p in sorted(folder.rglob("*")) if p.suffix in (".json", ".npz")}


def test_rerun_reuses_every_stored_point_and_file(probed_run, rerun):
    calls, before, loaded, after = rerun
    assert calls["evaluate"] == 0 and calls["hvp"] == 0
    assert after == before  # same files, same bytes, same modification times
    # and what was stored reloads to the same numbers
    again = _load_all(probed_run / "analysis")
    assert again.keys() == loaded.keys()
    for name, value in loaded.items():
        if name.endswith(".json"):
            assert again[name] == value
        else:
            assert again[name].keys() == value.keys()
            for k in value:
                np.testing.assert_array_equal(again[name][k], value[k])


def test_rerun_computes_no_gradient(rerun):
    """Every probe of every epoch is stored, so the rerun needs no ∇F either.

    Fails while analysis.Analysis.analyze_epoch computes ``obj.value_and_grad(theta)`` before
    it knows whether any probe still needs it.
    """
    calls, *_ = rerun
    assert calls["value_and_grad"] == 0


CURVATURE_ARGS = ["--measure", "curvature,surface,interpolation", "--subset", "16", "--test-subset", "16",
                  "--epochs", "2", "--grid", "5", "--eig-tol", "1e-2", "--eig-max-matvecs", "8",
                  "--interp-points", "5", "--interp-pairs", "init-final"]


def test_curvature_surface_and_interpolation_on_real_images(trained_run, tmp_path, data_root, cache_dir, monkeypatch):
    run = _copy_run(trained_run, tmp_path)
    _analyze([run, *CURVATURE_ARGS], data_root, cache_dir)
    folder = run / "analysis" / "epoch_0002"
    curv = read_json(folder / "curvature.json")["result"]
    assert curv["top"][0]["eigenvalue"] > 0 and curv["most_negative"]["eigenvalue"] < curv["top"][0]["eigenvalue"]
    vectors = read_npz(folder / "curvature.npz")
    assert np.linalg.norm(vectors["top_vectors"][0]) == pytest.approx(1.0, rel=1e-4)
    surface = read_json(folder / "surface.json")
    grid = read_npz(folder / "surface.npz")
    assert grid["loss"].shape == (5, 5) and np.isfinite(grid["loss"]).all() and np.isfinite(grid["acc"]).all()
    np.testing.assert_array_equal(grid["xs"], grid["ys"])
    assert grid["xs"][2] == 0.0 and grid["xs"][-1] == surface["result"]["extent_rule"]["half_width"]
    assert surface["result"]["F"] == grid["loss"][2, 2]
    for where, value in _finite_numbers(surface["result"]):
        assert math.isfinite(value), where
    interp = read_npz(run / "analysis" / "interpolation" / "epoch_0000_to_0002.npz")
    # --interp-points 5: five points in [0, 1] (α = 0 and 1 exactly), the same spacing out to −0.5 and 1.5
    assert interp["alpha"].tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    for split in ("train", "test"):
        assert np.isfinite(interp[f"{split}_loss"]).all()
    assert not list(run.rglob("*.partial.npz"))
    # a second invocation: no Hessian products, no surface or interpolation points
    before = _snapshot(run / "analysis")
    counter = _Counter(monkeypatch)
    _analyze([run, *CURVATURE_ARGS], data_root, cache_dir)
    assert counter.calls["hvp"] == 0 and counter.calls["recomputed_buffers"] == 0
    assert counter.calls["evaluate"] <= 1  # F(θ) for the surface's extent rule, not a grid point
    assert _snapshot(run / "analysis") == before


# ----------------------------------------------------------------------------- external checkpoints
def _bearpaw_checkpoint(path: Path, epoch=7):
    torch.manual_seed(3)
    model = build_model("resnet8")
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": epoch, "state_dict": state, "acc": 11.0, "best_acc": 12.5,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9,
                                                             "params": list(range(len(state)))}]}}, path)
    return model


def test_external_bearpaw_checkpoint(tmp_path, data_root, cache_dir, cifar10):
    ckpt = tmp_path / "checkpoint.pth.tar"
    model = _bearpaw_checkpoint(ckpt)
    out = tmp_path / "ext"
    result = _analyze([ckpt, "--arch", "resnet8", "--dataset", f"folder:{REAL_FOLDER}", "--out", out,
                       "--measure", "dominance", "--subset", "64", "--test-subset", "50"], data_root, cache_dir)
    assert "results in" in result.output
    dom = read_json(out / "analysis" / "epoch_0007" / "dominance.json")
    config = read_json(out / "config.json")
    assert config["external_checkpoint"] == str(ckpt.resolve()) and config["model"]["arch"] == "resnet8"
    idx = balanced_subset(cifar10.train_labels, 64, 0)
    obj = Objective(model, cifar10.train_images[idx], cifar10.train_labels[idx], mean=cifar10.mean, std=cifar10.std)
    assert dom["result"]["F_checkpoint_stats"] == pytest.approx(obj.value(), rel=1e-5)  # its own statistics
    stats_of_theta = Objective(model, cifar10.train_images[idx], cifar10.train_labels[idx], mean=cifar10.mean,
                               std=cifar10.std, bn="recompute")
    assert dom["result"]["F"] == pytest.approx(stats_of_theta.value(), rel=1e-5)
    assert dom["result"]["grad_sq"] > 0 and math.isfinite(dom["result"]["grad_sq"])
    test_idx = balanced_subset(cifar10.test_labels, 50, 1)
    test_obj = Objective(model, cifar10.test_images[test_idx], cifar10.test_labels[test_idx], mean=cifar10.mean,
                         std=cifar10.std, bn="recompute", recompute_images=cifar10.train_images[idx])
    assert dom["result"]["test_loss"] == pytest.approx(test_obj.value(), rel=1e-5)  # training statistics
    # the architecture can be read off the keys; a wrong one is a one-line error
    _analyze([ckpt, "--dataset", f"folder:{REAL_FOLDER}", "--out", tmp_path / "inferred",
              "--measure", "dominance", "--subset", "20", "--test-subset", "20"], data_root, cache_dir)
    assert (tmp_path / "inferred" / "analysis" / "epoch_0007" / "dominance.json").is_file()
    bad = CliRunner().invoke(main, ["analyze", str(ckpt), "--arch", "resnet20", "--dataset", f"folder:{REAL_FOLDER}",
                                    "--out", str(tmp_path / "bad"), "--measure", "dominance", "--quiet",
                                    "--data-root", str(data_root), "--cache-dir", str(cache_dir)])
    assert bad.exit_code == 1 and "resnet8" in bad.output and "Traceback" not in bad.output


# ----------------------------------------------------------------------------- changed settings, moved runs
def test_changed_settings_recompute_only_what_they_touch(probed_run, data_root, cache_dir, monkeypatch):
    counter = _Counter(monkeypatch)
    # one more Gaussian direction: only its probes are evaluated (each of its points once, at each of 2 epochs)
    _analyze([probed_run, *PROBE_ARGS[:-6], "--gaussian", "2", "--filter", "1", "--probe-steps", "3"],
             data_root, cache_dir)
    assert counter.calls["evaluate"] == sum(len(read_npz(probed_run / "analysis" / f"epoch_{e:04d}" / "probe_gaussian_1.npz")["t"])
                                            for e in (0, 2))
    for epoch in (0, 2):
        assert (probed_run / "analysis" / f"epoch_{epoch:04d}" / "probe_gaussian_1.npz").is_file()


def test_a_moved_run_keeps_its_results(probed_run, tmp_path, data_root, cache_dir, monkeypatch):
    """Copying a run elsewhere (another machine, another disk) must not invalidate its analysis.

    Fails while Analysis.context keys every result on the checkpoint's absolute path.
    """
    moved = tmp_path / "moved"
    shutil.copytree(probed_run, moved)

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a stored result was computed again")

    monkeypatch.setattr(Objective, "evaluate", no_evaluation)
    result = CliRunner().invoke(main, ["analyze", str(moved), *PROBE_ARGS, "--quiet", "--data-root", str(data_root),
                                       "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.exception


# ----------------------------------------------------------------------------- statistics of θ, repeats
REPEAT_ARGS = ["--measure", "dominance,curvature,second_order", "--subset", "24", "--test-subset", "16",
               "--epochs", "2", "--repeats", "2", "--curvature-subset", "8", "--eig-tol", "1e-1",
               "--eig-max-matvecs", "6"]


def _spoil_statistics(checkpoint: Path) -> None:
    blob = torch.load(checkpoint, weights_only=True)
    for name, value in blob["state_dict"].items():
        if name.endswith("running_mean"):
            value.add_(3.0)
        elif name.endswith("running_var"):
            value.mul_(7.0)
    torch.save(blob, checkpoint)


def test_statistics_of_theta_ignore_the_checkpoints_and_repeats_use_disjoint_subsets(trained_run, tmp_path,
                                                                                     data_root, cache_dir):
    clean = _copy_run(trained_run, tmp_path / "clean")
    spoiled = _copy_run(trained_run, tmp_path / "spoiled")
    _spoil_statistics(spoiled / "checkpoints" / "epoch_0002.pt")
    for run in (clean, spoiled):
        _analyze([run, *REPEAT_ARGS], data_root, cache_dir)
    folder = "analysis/epoch_0002"
    for sub in ("", "repeat_1"):
        a = read_json(clean / folder / sub / "dominance.json")
        b = read_json(spoiled / folder / sub / "dominance.json")
        assert a["result"]["F"] == pytest.approx(b["result"]["F"], rel=1e-6)  # same θ, same statistics of θ
        assert abs(b["result"]["F_checkpoint_stats"] - b["result"]["F"]) > 0.03 * b["result"]["F"]  # spoiled averages
        assert a["result"]["F_recomputed_stats"] == a["result"]["F"] and a["result"]["bn_stats"] == "recompute"
        assert a["context"]["bn_statistics"].startswith("recomputed at θ over the 24")
        so = read_json(clean / folder / sub / "second_order.json")["result"]
        resolved = [v for v in (so["d_grad"], so["d_curv"]) if not isinstance(v, dict)]  # unresolved: bounds
        assert so["d_plane"] >= max(resolved, default=0.0) >= 0 and len(so["controls"]) == 4
    r0 = read_json(clean / folder / "dominance.json")
    r1 = read_json(clean / folder / "repeat_1" / "dominance.json")
    assert r1["context"]["repeat"] == 1 and r1["context"]["repeat_mode"] == "disjoint subsets"
    assert r0["result"]["F"] != r1["result"]["F"]  # different examples
    # --bn-stats checkpoint keeps the stored averages, and says so
    _analyze([spoiled, *REPEAT_ARGS, "--bn-stats", "checkpoint", "--measure", "dominance"], data_root, cache_dir)
    kept = read_json(spoiled / folder / "dominance.json")["result"]
    assert kept["bn_stats"] == "checkpoint" and kept["F"] == kept["F_checkpoint_stats"]
    assert kept["F_recomputed_stats"] == pytest.approx(read_json(clean / folder / "dominance.json")["result"]["F"], rel=1e-6)


# ----------------------------------------------------------------------------- kills, reruns, concurrent writers
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    """resnet8 trained 1 epoch on 24 random 32x32 images of 3 classes; checkpoints at epochs 0 and 1."""
    from cases import write_image_folder
    from landscape.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tinydata")
    write_image_folder(root / "tiny", {c: 8 for c in "abc"}, {c: 4 for c in "abc"})
    out = tmp_path_factory.mktemp("tinyrun") / "run"
    train(TrainConfig(arch="resnet8", dataset="folder:tiny", epochs=1, batch_size=8, save_at=[0, 1]), out,
          Runtime(root, cache_dir, progress=False, echo=lambda *a: None))
    return out, root


TINY_ARGS = ["--measure", "dominance,probes,random_surface,interpolation", "--subset", "12", "--test-subset", "6",
             "--gaussian", "1", "--filter", "1", "--probe-steps", "2", "--grid", "3", "--interp-points", "5"]


def _tiny_analyze(run, root, cache_dir, *args):
    return CliRunner().invoke(main, ["analyze", str(run), *map(str, args), "--quiet", "--data-root", str(root),
                                     "--cache-dir", str(cache_dir)])


class _Killer:
    """Objective.evaluate raising KeyboardInterrupt (Ctrl-C) on its ``at``-th call from now."""

    def __init__(self, monkeypatch):
        self.real, self.calls, self.at = Objective.evaluate, 0, None
        killer = self

        def evaluate(obj, *args, **kwargs):
            killer.calls += 1
            if killer.at is not None and killer.calls >= killer.at:
                killer.at = None
                raise KeyboardInterrupt
            return killer.real(obj, *args, **kwargs)

        monkeypatch.setattr(Objective, "evaluate", evaluate)

    def arm(self, at: int | None):
        self.calls, self.at = 0, at


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _assert_same_results(a: Path, b: Path):
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert not [f for f in files_a if "partial" in f or f.endswith(".tmp") or f.endswith(".lock")]
    for name in files_a:
        if name.endswith(".json"):
            assert _without_timings(read_json(a / name)) == _without_timings(read_json(b / name)), name
        else:
            za, zb = read_npz(a / name), read_npz(b / name)
            assert za.keys() == zb.keys(), name
            for k in za:
                assert za[k].dtype == zb[k].dtype and np.array_equal(za[k], zb[k], equal_nan=True), (name, k)


def test_analyze_killed_at_random_points_then_rerun_equals_an_uninterrupted_run(tiny_run, tmp_path, cache_dir,
                                                                                 monkeypatch):
    run, root = tiny_run
    reference = _copy_run(run, tmp_path / "ref")
    killer = _Killer(monkeypatch)
    assert _tiny_analyze(reference, root, cache_dir, *TINY_ARGS).exit_code == 0
    total = killer.calls  # evaluations an uninterrupted analysis makes
    assert total > 40
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        copy = _copy_run(run, tmp_path / f"killed{seed}")
        for attempt in range(12):
            killer.arm(int(rng.integers(1, total // 3)))
            result = _tiny_analyze(copy, root, cache_dir, *TINY_ARGS)
            if result.exit_code == 0:
                break
            assert result.exit_code == 130 and "interrupted" in result.output, result.output
        else:
            pytest.fail("the analysis never finished")
        assert attempt >= 2  # it was really interrupted, more than once
        _assert_same_results(reference / "analysis", copy / "analysis")
        assert not (copy / ".landscape.lock").exists()


def test_saved_points_of_other_settings_are_discarded(tiny_run, tmp_path, cache_dir, monkeypatch):
    """`--grid 9 --measure random_surface --subset 128` killed, rerun with `--subset 64 --loss mse`."""
    run, root = tiny_run
    copy = _copy_run(run, tmp_path / "a")
    killer = _Killer(monkeypatch)
    args = ["--measure", "random_surface", "--grid", "3", "--epochs", "1"]
    killer.arm(6)
    assert _tiny_analyze(copy, root, cache_dir, *args, "--subset", "12").exit_code == 130
    partial = copy / "analysis" / "epoch_0001" / "random_surface.partial.npz"
    assert read_npz(partial)["done"].sum() == 5
    killer.arm(None)
    result = _tiny_analyze(copy, root, cache_dir, *args, "--subset", "6", "--loss", "mse")
    assert result.exit_code == 0, result.output
    assert killer.calls == 9  # every point again
    assert "discarding 5 saved point(s)" in result.output and "examples: 12 -> 6" in result.output
    fresh = _copy_run(run, tmp_path / "b")
    assert _tiny_analyze(fresh, root, cache_dir, *args, "--subset", "6", "--loss", "mse").exit_code == 0
    _assert_same_results(fresh / "analysis", copy / "analysis")
    assert read_json(copy / "analysis" / "epoch_0001" / "random_surface.json")["context"]["loss"] == "mse"


def test_interpolation_keeps_the_finished_split_until_its_result_is_written(tiny_run, tmp_path, cache_dir,
                                                                            monkeypatch):
    run, root = tiny_run
    copy = _copy_run(run, tmp_path / "a")
    killer = _Killer(monkeypatch)
    # 3 points in [0, 1] and one more past each end: 5 points per split
    args = ["--measure", "interpolation", "--interp-points", "3", "--subset", "12", "--test-subset", "6"]
    killer.arm(8)  # the train split's 5 points, then the test split's 7th evaluation overall
    assert _tiny_analyze(copy, root, cache_dir, *args).exit_code == 130
    killer.arm(None)
    assert _tiny_analyze(copy, root, cache_dir, *args).exit_code == 0
    assert killer.calls == 3  # only the test split's remaining points
    assert not list(copy.rglob("*.partial.npz"))


def test_a_second_analysis_of_a_locked_run_is_refused(tiny_run, tmp_path, cache_dir):
    import os
    import socket

    from landscape.results import run_lock

    run, root = tiny_run
    copy = _copy_run(run, tmp_path / "a")
    with run_lock(copy, print, "landscape analyze (the first)"):
        result = _tiny_analyze(copy, root, cache_dir, "--measure", "dominance")
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and f"in use by pid {os.getpid()} on host {socket.gethostname()}" in line
    assert not (copy / "analysis").exists()
    # a lock its holder left behind (killed) is taken over, with a message
    from cases import dead_pid

    (copy / ".landscape.lock").write_text(f'{{"pid": {dead_pid()}, "host": "{socket.gethostname()}"}}')
    result = _tiny_analyze(copy, root, cache_dir, "--measure", "dominance", "--subset", "6", "--test-subset", "3")
    assert result.exit_code == 0, result.output
    assert "taking over the stale lock" in result.output and not (copy / ".landscape.lock").exists()


# ----------------------------------------------------------------------------- results keyed by resolved settings
SURFACE_ARGS = ["--measure", "curvature,surface", "--epochs", "1", "--subset", "6", "--grid", "3",
                "--eig-max-matvecs", "4", "--eig-tol", "1e-1"]


def test_a_surface_of_an_explicit_range_is_not_reused_for_the_rule_and_back(tiny_run, tmp_path, cache_dir,
                                                                            monkeypatch):
    run, root = tiny_run
    copy = _copy_run(run, tmp_path / "a")
    path = copy / "analysis" / "epoch_0001" / "surface.json"
    killer = _Killer(monkeypatch)
    assert _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS, "--surface-range", "0.01").exit_code == 0
    assert read_json(path)["result"]["half_width"] == 0.01
    killer.arm(None)
    assert _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS).exit_code == 0  # the documented rule
    rule = read_json(path)
    assert killer.calls >= 9 and rule["result"]["half_width"] == rule["result"]["extent_rule"]["half_width"] != 0.01
    assert rule["settings"]["range"]["rule"] == "surface_extent"
    killer.arm(None)
    assert _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS).exit_code == 0
    assert killer.calls <= 1  # the same rule with the same inputs: kept
    # a gradient probe appears, so the rule's input changes: computed again
    assert _tiny_analyze(copy, root, cache_dir, "--measure", "probes", "--epochs", "1", "--subset", "6",
                         "--gaussian", "0", "--filter", "0", "--probe-steps", "2",
                         "--eig-max-matvecs", "4", "--eig-tol", "1e-1").exit_code == 0
    killer.arm(None)
    assert _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS).exit_code == 0
    assert killer.calls >= 9 and read_json(path)["result"]["extent_rule"]["rule"] == "3 x best gradient step"
    # the stored probe's best step changes (as a probe redone over other steps would): the grid changes.
    # (The adaptive probe finds its window itself, so another scouting range may find the same best step.)
    before = read_json(path)["settings"]["range"]["best_gradient_step"]
    probe = copy / "analysis" / "epoch_0001" / "probe_neg_gradient.json"
    stored = read_json(probe)
    stored["result"]["descent"]["best_eta"] = 0.5 * before
    atomic_write_json(stored, probe)
    killer.arm(None)
    assert _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS).exit_code == 0
    after = read_json(path)
    assert killer.calls >= 9 and after["settings"]["range"]["best_gradient_step"] != before
    assert after["result"]["extent_rule"]["best_gradient_step"] == after["settings"]["range"]["best_gradient_step"]


def test_a_stored_non_finite_best_step_is_not_used(tiny_run, tmp_path, cache_dir):
    """An older version stored best_eta "inf" for --probe-range 1e-5,inf; a surface must not crash on it."""
    run, root = tiny_run
    copy = _copy_run(run, tmp_path / "a")
    folder = copy / "analysis" / "epoch_0001"
    folder.mkdir(parents=True)
    (folder / "probe_neg_gradient.json").write_text('{"result": {"descent": {"best_eta": "inf"}}}')
    result = _tiny_analyze(copy, root, cache_dir, *SURFACE_ARGS)
    assert result.exit_code == 0, result.output
    surface = read_json(folder / "surface.json")
    assert surface["result"]["extent_rule"]["rule"] != "3 x best gradient step"
    assert surface["settings"]["range"]["best_gradient_step"] is None
    assert math.isfinite(surface["result"]["half_width"]) and surface["result"]["half_width"] > 0


# ----------------------------------------------------------------------------- a zero gradient
def test_a_zero_gradient_makes_the_gradient_direction_undefined_not_a_crash(tmp_path, make_image_folder, cache_dir):
    """One class: the loss is 0 for every network, ∇F = 0 and the Hessian is 0."""
    from landscape.readers import load_probes, load_surface
    from landscape.results import RunDir
    from landscape.train import TrainConfig, train

    root = make_image_folder("one", classes=("only",), train_per_class=8, test_per_class=2)
    out = tmp_path / "run"
    train(TrainConfig(arch="resnet8", dataset="folder:one", epochs=1, batch_size=8, save_at=[1]), out,
          Runtime(root.parent, cache_dir, progress=False, echo=lambda *a: None))
    args = ["--measure", "dominance,curvature,probes,surface", "--subset", "4", "--test-subset", "2",
            "--gaussian", "1", "--filter", "0", "--probe-steps", "2", "--grid", "3", "--eig-max-matvecs", "4"]
    result = _tiny_analyze(out, root.parent, cache_dir, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "probe neg_gradient: undefined (the gradient direction is undefined" in result.output
    folder = out / "analysis" / "epoch_0001"
    assert read_json(folder / "dominance.json")["result"]["grad_sq"] == 0
    curvature = read_json(folder / "curvature.json")["result"]
    assert curvature["top"][0]["eigenvalue"] == 0 and curvature["most_negative"]["eigenvalue"] == 0
    for name in ("probe_neg_gradient", "surface"):
        stored = read_json(folder / f"{name}.json")
        assert "gradient direction is undefined" in stored["result"]["undefined"]
        assert not (folder / f"{name}.npz").exists()
    # the other probes are measured; readers skip the undefined pieces; a rerun recomputes nothing
    assert [p["name"] for p in load_probes(RunDir(out), 1)] == ["gaussian_0", "hessian_top", "hessian_most_negative"]
    assert load_surface(RunDir(out), 1) is None
    before = _snapshot(out / "analysis")
    assert _tiny_analyze(out, root.parent, cache_dir, *args).exit_code == 0
    assert _snapshot(out / "analysis") == before
    report = CliRunner().invoke(main, ["report", str(out), "--figures", "keep"])
    assert report.exit_code == 0, (report.output, report.exception)
