"""landscape.train: the recipe's configuration, training on real images, and exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

import landscape.train as train_module
from landscape.checkpoint import load_model
from landscape.data import normalize
from landscape.errors import LandscapeError
from landscape.objective import Objective
from landscape.results import RunDir, read_json, read_jsonl
from landscape.runtime import Runtime
from landscape.train import TrainConfig, train

from cases import REAL_FOLDER

DATASET = f"folder:{REAL_FOLDER}"


# ----------------------------------------------------------------------------- configuration
def test_paper_recipe_defaults():
    c = TrainConfig(arch="resnet32", dataset="cifar10").resolved()
    assert (c.epochs, c.lr, c.momentum, c.batch_size, c.weight_decay) == (164, 0.1, 0.9, 128, 1e-4)
    assert c.milestones == [81, 122]
    assert c.save_at == [0, 5, 40, 90, 120, 130, 160, 164]
    assert [c.lr_at(e) for e in (1, 81, 82, 122, 123, 164)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert TrainConfig(arch="vgg19_bn", dataset="cifar10").resolved().weight_decay == 5e-4


def test_schedule_scales_with_epochs():
    c = TrainConfig(arch="resnet8", dataset="x", epochs=16).resolved()
    assert c.milestones == [8, 12]  # 81/164 and 122/164 of 16 epochs
    assert c.save_at == [0, 4, 9, 12, 13, 16]
    frac = TrainConfig(arch="resnet8", dataset="x", epochs=10, milestones=[0.5, 0.75], save_at=[3]).resolved()
    assert frac.milestones == [5, 8] and frac.save_at == [3, 10]
    with pytest.raises(LandscapeError, match="--save-at 99 is beyond --epochs 10"):  # never silently dropped
        TrainConfig(arch="resnet8", dataset="x", epochs=10, save_at=[3, 99]).resolved()
    assert [frac.lr_at(e) for e in (5, 6, 8, 9)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert TrainConfig(arch="resnet8", dataset="x", epochs=3, milestones=[]).resolved().lr_at(3) == 0.1
    assert frac.resolved() == frac  # resolving is idempotent (resume re-resolves the stored config)


@pytest.mark.parametrize("field,value,phrase", [
    ("epochs", 0, "--epochs must be at least 1"), ("batch_size", 0, "--batch-size must be at least 1"),
    ("label_noise", 1.0, "label noise must be in"), ("label_noise", -0.5, "label noise must be in"),
    ("label_noise", math.nan, "label noise must be in"),
    ("train_params", "first", "--train must be 'all' or 'hidden'"),
    ("lr", math.nan, "--lr must be a finite number > 0"), ("lr", math.inf, "--lr must be a finite number > 0"),
    ("lr", -1.0, "--lr must be a finite number > 0"), ("lr", 0.0, "--lr must be a finite number > 0"),
    ("lr", "nan", "--lr must be a finite number > 0, got 'nan'"),  # as a stored config.json holds it
    ("momentum", -0.1, "--momentum must be a finite number ≥ 0 and < 1"), ("momentum", 1.0, "--momentum"),
    ("momentum", math.nan, "--momentum"), ("weight_decay", -1e-4, "--wd must be a finite number ≥ 0"),
    ("weight_decay", math.inf, "--wd"), ("gamma", 0.0, "gamma must be a finite number > 0"),
    ("width", 0, "width must be a positive number"), ("width", math.inf, "width must be a positive number"),
    ("seed", -1, "--seed must be at least 0"),
    ("train_subset", 0, "--train-subset must be at least 1"), ("test_subset", -5, "--test-subset"),
    ("track_every", -1, "--track-every must be at least 0"), ("track_subset", 0, "--track-subset"),
    ("milestones", [0.5, math.nan], "--milestones must be a finite number > 0"),
    ("milestones", [-3], "--milestones"), ("save_at", [-1, 2], "--save-at must be at least 0"),
    ("epochs", 2.5, "a whole number")])
def test_bad_configuration_is_refused(field, value, phrase):
    with pytest.raises(LandscapeError, match=phrase):
        TrainConfig(arch="resnet8", dataset="x", **{field: value}).resolved()


# ----------------------------------------------------------------------------- training
def _run(tmp_path, data_root, cache_dir, name, **overrides):
    settings = dict(arch="resnet8", dataset=DATASET, epochs=3, batch_size=32, train_subset=96,
                    test_subset=50, seed=3)
    settings.update(overrides)
    config = TrainConfig(**settings)
    out = tmp_path / name
    return config, out


def _train(config, out, data_root, cache_dir, **kwargs):
    return train(config, out, Runtime(data_root, cache_dir, progress=False, echo=lambda *a: None), **kwargs)


def _batch_stat_loss(model, images, labels, mean, std) -> float:
    """Cross-entropy over the whole set in train mode (batch statistics), without side effects."""
    import copy

    m = copy.deepcopy(model).train()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(m(normalize(images, mean, std)), labels))


@pytest.mark.slow
def test_a_few_epochs_on_real_images_lower_the_training_loss(tmp_path, data_root, cache_dir):
    config, out = _run(tmp_path, data_root, cache_dir, "learn", train_subset=256, batch_size=32,
                       epochs=3, lr=0.05, milestones=[], save_at=[0])
    run = _train(config, out, data_root, cache_dir)
    log = read_jsonl(run.log)
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert all(math.isfinite(row["train_loss"]) for row in log)
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.05
    assert log[-1]["train_acc"] > 0.15  # chance is 0.1
    # the loss of the saved weights over the training images went down, too
    labels = torch.load(run.labels, weights_only=True)
    from landscape.data import load_dataset

    ds = load_dataset(DATASET, data_root, cache_dir, progress=False)
    images = ds.train_images[labels["indices"]]
    first, _, _ = load_model(run.checkpoint(0))
    last, info, _ = load_model(run.last_checkpoint)
    assert info["epoch"] == 3
    before = _batch_stat_loss(first, images, labels["labels"], ds.mean, ds.std)
    after = _batch_stat_loss(last, images, labels["labels"], ds.mean, ds.std)
    assert after < before - 0.05
    assert run.checkpoint_epochs() == [0, 3]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_root, cache_dir):
    """An uninterrupted 3-epoch run with label noise and dense tracking."""
    tmp = tmp_path_factory.mktemp("reference")
    config, out = _run(tmp, data_root, cache_dir, "ref", label_noise=0.25, save_at=[0, 1, 2],
                       track_every=2, track_subset=32)
    return config, _train(config, out, data_root, cache_dir)


def _strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "img_per_s")} for r in rows]


def _assert_same_run(a: RunDir, b: RunDir):
    assert a.checkpoint_epochs() == b.checkpoint_epochs() == [0, 1, 2, 3]
    for epoch in (0, 1, 2, 3):
        ca = torch.load(a.checkpoint(epoch), weights_only=True)
        cb = torch.load(b.checkpoint(epoch), weights_only=True)
        assert ca["step"] == cb["step"]
        for k, v in ca["state_dict"].items():
            assert torch.equal(v, cb["state_dict"][k]), f"epoch {epoch}: {k} differs"
    la = torch.load(a.last_checkpoint, weights_only=True)
    lb = torch.load(b.last_checkpoint, weights_only=True)
    assert la["epoch"] == lb["epoch"] == 3 and la["step"] == lb["step"] == 9
    assert la["state_dict"].keys() == lb["state_dict"].keys()
    for k, v in la["state_dict"].items():
        assert torch.equal(v, lb["state_dict"][k]), k
    sa, sb = la["optimizer"]["state"], lb["optimizer"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    for i in sa:
        assert torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"])
    assert _strip_timing(read_jsonl(a.log)) == _strip_timing(read_jsonl(b.log))
    track_a, track_b = read_jsonl(a.track), read_jsonl(b.track)
    assert [r["step"] for r in track_a] == [2, 4, 6, 8]
    assert track_a == track_b


def test_reference_run_layout_and_label_noise(reference_run, cifar10):
    config, run = reference_run
    stored = read_json(run.config)
    assert stored["train"]["label_noise"] == 0.25 and stored["train"]["save_at"] == [0, 1, 2, 3]
    assert stored["data"]["train_examples"] == 96 and stored["data"]["test_examples"] == 50
    assert stored["data"]["classes"] == cifar10.classes
    labels = torch.load(run.labels, weights_only=True)
    true = cifar10.train_labels[labels["indices"]]
    counts = torch.bincount(true, minlength=10)
    assert counts.max() - counts.min() <= 1
    changed = labels["labels"] != true
    assert int(changed.sum()) == round(0.25 * 96)
    assert len(read_jsonl(run.log)) == 3


def test_initial_checkpoint_carries_batchnorm_statistics_of_the_initial_network(reference_run, cifar10):
    """Epoch 0 holds running statistics measured at θ_0 (not PyTorch's 0/1 defaults)."""
    from landscape.objective import Objective

    config, run = reference_run
    blob = torch.load(run.checkpoint(0), weights_only=True)
    model, _, _ = load_model(run.checkpoint(0))
    labels = torch.load(run.labels, weights_only=True)
    images = cifar10.train_images[labels["indices"]]
    manual = Objective(model, images, labels["labels"], mean=cifar10.mean, std=cifar10.std,
                       bn="recompute").recomputed_buffers()
    for name in ("bn1.running_mean", "bn1.running_var", "layer1.0.bn2.running_var"):
        assert not torch.allclose(blob["state_dict"][name], torch.full_like(blob["state_dict"][name], float(name.endswith("var"))))
        torch.testing.assert_close(blob["state_dict"][name], manual[name], rtol=1e-5, atol=1e-6)
    assert "estimated at initialization" in blob["metrics"]["bn_statistics"]


def test_interrupted_mid_epoch_then_resumed_equals_uninterrupted(reference_run, tmp_path, data_root,
                                                                 cache_dir, monkeypatch):
    config, ref = reference_run
    real_step = train_module.train_step
    calls = {"n": 0}

    def interrupting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, second of three steps
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupting_step)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        _train(config, out, data_root, cache_dir)
    run = RunDir(out)
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    assert [r["step"] for r in read_jsonl(run.track)] == [2, 4]
    monkeypatch.setattr(train_module, "train_step", real_step)
    with pytest.raises(LandscapeError, match="already holds a run; pass --resume"):
        _train(config, out, data_root, cache_dir)
    _train(config, out, data_root, cache_dir, resume=True)
    _assert_same_run(ref, run)


def test_crash_between_log_line_and_checkpoint_then_resumed_equals_uninterrupted(
        reference_run, tmp_path, data_root, cache_dir, monkeypatch):
    config, ref = reference_run
    real_save = train_module.save_checkpoint

    def crashing_save(path, model, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return real_save(path, model, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", crashing_save)
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        _train(config, out, data_root, cache_dir)
    run = RunDir(out)
    assert [r["epoch"] for r in read_jsonl(run.log)] == [1, 2]  # epoch 2 logged, not checkpointed
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    # resuming repeats the run's own command; fractions and epoch lists compare after resolving
    _train(config, out, data_root, cache_dir, resume=True,
           overrides={"arch": "resnet8", "epochs": 3, "save_at": [0, 1, 2], "label_noise": 0.25,
                      "milestones": [81 / 164, 122 / 164]})
    _assert_same_run(ref, run)


def test_resume_refuses_other_settings_and_finished_run_is_left_alone(reference_run, data_root, cache_dir):
    config, run = reference_run
    before = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    for key, value in (("lr", 0.2), ("arch", "resnet14"), ("label_noise", 0.5), ("milestones", [1, 3])):
        with pytest.raises(LandscapeError) as err:
            _train(config, run.path, data_root, cache_dir, resume=True, overrides={key: value})
        assert f"was trained with {key}=" in str(err.value) and repr(value) in str(err.value)
    _train(config, run.path, data_root, cache_dir, resume=True, overrides={"epochs": 3, "lr": 0.1})
    after = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(read_jsonl(run.log)) == 3


def test_resume_without_a_run_or_settings(tmp_path, data_root, cache_dir):
    with pytest.raises(LandscapeError, match="holds no run to resume"):
        _train(TrainConfig(arch="", dataset=""), tmp_path / "empty", data_root, cache_dir, resume=True)


def test_training_hidden_layers_only_freezes_first_and_last(tmp_path, data_root, cache_dir):
    config, out = _run(tmp_path, data_root, cache_dir, "hidden", train_params="hidden", epochs=1,
                       train_subset=64, save_at=[0])
    run = _train(config, out, data_root, cache_dir)
    start = torch.load(run.checkpoint(0), weights_only=True)["state_dict"]
    end = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    for name in ("conv1.weight", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"):
        assert torch.equal(start[name], end[name]), name
    for name in ("layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer3.0.bn2.bias"):
        assert not torch.equal(start[name], end[name]), name
    assert json.loads(run.config.read_text())["train"]["train_params"] == "hidden"


def test_training_on_cuda_keeps_cudnn_deterministic(monkeypatch, tmp_path):
    """Identical fp32 CUDA runs differ unless cuDNN is deterministic (seen on an H200)."""
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark)
    with train_module.deterministic_cudnn("cuda"):
        assert cudnn.deterministic and not cudnn.benchmark
    assert (cudnn.deterministic, cudnn.benchmark) == before
    with train_module.deterministic_cudnn("cpu"):
        assert (cudnn.deterministic, cudnn.benchmark) == before
    seen = {}

    def fake_train(config, out, runtime, **kwargs):
        seen["flags"] = (cudnn.deterministic, cudnn.benchmark)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_train", fake_train)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA runtime on any machine
    on_cuda = Runtime(device="cuda")
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(arch="resnet8", dataset="x"), tmp_path / "r", on_cuda)
    assert seen["flags"] == (True, False)
    assert (cudnn.deterministic, cudnn.benchmark) == before


# ----------------------------------------------------------------------------- kills between writes, lost files
def test_a_stop_between_the_epoch_checkpoint_and_last_pt_resumes_from_the_newer(reference_run, tmp_path, data_root,
                                                                                cache_dir, monkeypatch):
    """epoch_N.pt is written before last.pt; a stop between the two resumes after epoch N."""
    config, ref = reference_run
    real_save = train_module.save_checkpoint
    written = []

    def crashing_save(path, model, **kwargs):
        if kwargs["epoch"] == 2 and path.name == "last.pt":
            raise KeyboardInterrupt
        written.append(path.name)
        return real_save(path, model, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", crashing_save)
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        _train(config, out, data_root, cache_dir)
    run = RunDir(out)
    assert written[-3:] == ["epoch_0001.pt", "last.pt", "epoch_0002.pt"]  # epoch 2's last.pt never came
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1
    leftover = run.checkpoints / ".last.pt.k2j3h4g5.tmp"  # what a kill inside the write leaves
    leftover.write_bytes(b"half a checkpoint")
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    messages = []
    train(config, out, Runtime(data_root, cache_dir, progress=False, echo=messages.append), resume=True)
    assert any("resuming" in m and "after epoch 2 (from epoch_0002.pt)" in m for m in messages), messages
    assert not leftover.exists()
    _assert_same_run(ref, run)


def _interrupted_after_epoch_2(config, out, data_root, cache_dir, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 3, first step
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        _train(config, out, data_root, cache_dir)
    monkeypatch.setattr(train_module, "train_step", real_step)
    return RunDir(out)


def test_resume_after_last_pt_was_deleted_continues_from_the_newest_checkpoint(reference_run, tmp_path, data_root,
                                                                               cache_dir, monkeypatch):
    config, ref = reference_run
    run = _interrupted_after_epoch_2(config, tmp_path / "run", data_root, cache_dir, monkeypatch)
    run.last_checkpoint.unlink()
    messages = []
    train(config, run.path, Runtime(data_root, cache_dir, progress=False, echo=messages.append), resume=True)
    assert any("after epoch 2 (from epoch_0002.pt)" in m for m in messages), messages
    assert [r["epoch"] for r in read_jsonl(run.log)] == [1, 2, 3]  # no epoch trained twice
    _assert_same_run(ref, run)


def test_resume_re_creates_the_scheduled_checkpoint_of_the_resumed_epoch(reference_run, tmp_path, data_root,
                                                                          cache_dir, monkeypatch):
    """A run stopped by the old write order (last.pt of epoch 2 without epoch_0002.pt)."""
    config, ref = reference_run
    run = _interrupted_after_epoch_2(config, tmp_path / "run", data_root, cache_dir, monkeypatch)
    run.checkpoint(2).unlink()
    messages = []
    train(config, run.path, Runtime(data_root, cache_dir, progress=False, echo=messages.append), resume=True)
    assert any(f"re-created {run.checkpoint(2)}" in m for m in messages), messages
    _assert_same_run(ref, run)


def test_resume_skips_damaged_or_non_finite_checkpoints_and_refuses_when_none_is_left(
        reference_run, tmp_path, data_root, cache_dir, monkeypatch):
    config, ref = reference_run
    run = _interrupted_after_epoch_2(config, tmp_path / "run", data_root, cache_dir, monkeypatch)
    blob = torch.load(run.last_checkpoint, weights_only=True)
    blob["state_dict"]["fc.weight"][0, 0] = math.inf
    torch.save(blob, run.last_checkpoint)  # e.g. written by an older version after a divergence
    raw = run.checkpoint(2).read_bytes()
    run.checkpoint(2).write_bytes(raw[: len(raw) // 3])
    messages = []
    train(config, run.path, Runtime(data_root, cache_dir, progress=False, echo=messages.append), resume=True)
    assert any("skipping" in m and "non-finite" in m for m in messages)
    assert any("skipping" in m and "corrupt or truncated" in m for m in messages)
    assert any("after epoch 1 (from epoch_0001.pt)" in m for m in messages), messages
    _assert_same_run(ref, run)
    for path in run.checkpoints.glob("*.pt"):
        raw = path.read_bytes()
        path.write_bytes(raw[:100])
    with pytest.raises(LandscapeError, match="holds no intact checkpoint to resume from"):
        _train(config, run.path, data_root, cache_dir, resume=True)


# ----------------------------------------------------------------------------- the theorem's setting
SEPARATED = "synthetic:separated?n=48&d=8&delta=0.5&classes=2&test=16"


def test_mlp_trains_its_hidden_layers_on_separated_vectors(tmp_path):
    config = TrainConfig(arch="mlp2_d8", dataset=SEPARATED, epochs=3, batch_size=16, lr=0.05, milestones=[],
                         save_at=[0], augment=False, train_params="hidden", track_every=3, track_subset=16)
    run = _train(config, tmp_path / "mlp", None, None)
    log = read_jsonl(run.log)
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert [row["step"] for row in read_jsonl(run.track)] == [3, 6, 9]
    start = torch.load(run.checkpoint(0), weights_only=True)["state_dict"]
    end = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(start["input.weight"], end["input.weight"])
    assert torch.equal(start["output.weight"], end["output.weight"])
    assert not torch.equal(start["hidden.0.weight"], end["hidden.0.weight"])
    model, info, _ = load_model(run.last_checkpoint)
    assert info["arch"] == "mlp2_d8" and model.input.weight.shape == (64, 8)


def test_training_refuses_augmentation_of_vectors_and_regression_targets(tmp_path):
    with pytest.raises(LandscapeError, match="--no-augment"):
        _train(TrainConfig(arch="mlp1_d8", dataset=SEPARATED, epochs=1), tmp_path / "a", None, None)
    regression = "synthetic:separated?n=16&d=8&targets=regression"
    with pytest.raises(LandscapeError, match="regression targets"):
        _train(TrainConfig(arch="mlp1_d8", dataset=regression, epochs=1, augment=False), tmp_path / "b", None, None)


@pytest.mark.slow  # a whole training run
def test_l2_training_stops_at_the_target_loss_and_tracks_the_sharpness(tmp_path):
    from landscape.curvature import top_eigenpairs
    from landscape.data import load_dataset

    config = TrainConfig(arch="mlp1_d8", dataset=SEPARATED, epochs=300, batch_size=48, lr=0.1, momentum=0.0,
                         milestones=[], save_at=[0], augment=False, train_params="hidden", loss="mse",
                         stop_at_loss=0.05, track_sharpness_every=1, track_subset=48)
    run = _train(config, tmp_path / "l2", None, None)
    log = read_jsonl(run.log)
    last = log[-1]
    assert last["reached_target"] and last["train_loss"] <= 0.05 < min(r["train_loss"] for r in log[:-1])
    assert last["epoch"] < 300 and run.checkpoint(last["epoch"]).is_file()  # the stop is a checkpoint
    # full batch: the last sharpness record is λ_max of the ℓ2 loss at the final weights
    rows = read_jsonl(run.sharpness)
    assert rows[-1]["step"] == last["step"] and rows[-1]["limit_gd"] == pytest.approx(2 / 0.1)
    data = load_dataset(SEPARATED)
    model, _, _ = load_model(run.checkpoint(last["epoch"]))
    objective = Objective(model, data.train_images, data.train_labels, loss="mse", precision="fp64")
    assert rows[-1]["lambda_max"] == pytest.approx(top_eigenpairs(objective, tol=1e-10)[0].eigenvalue, rel=1e-3)
    # F of the log is the ℓ2 loss ½‖f(x) − onehot(y)‖², averaged over the examples
    with torch.no_grad():
        out = model.double()(data.train_images.double())
        target = torch.nn.functional.one_hot(data.train_labels, 2).double()
    assert objective.value() == pytest.approx(float(0.5 * ((out - target) ** 2).sum(1).mean()), rel=1e-9)
    messages = []
    train(config, run.path, Runtime(progress=False, echo=messages.append), resume=True)
    assert any("already reached its target loss" in m for m in messages)
    assert read_jsonl(run.log) == log
