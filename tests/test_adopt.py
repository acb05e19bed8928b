"""Bringing your own network and checkpoints; runs that remember their data; versions; TensorBoard.

The user's network goes through the same pipeline as the built-in ones, and its numbers equal a
direct computation of F and ∇F; a run trained with --data-root is analyzed without it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import landscape
from landscape.checkpoint import ModelFactory, checkpoint_files, fit_state_dict, load_user_model, read_checkpoint
from landscape.cli import main
from landscape.data import balanced_subset, load_dataset, missing_data, normalize
from landscape.errors import LandscapeError
from landscape.objective import Objective
from landscape.results import RunDir
from landscape.runtime import Runtime, silent
from landscape.sources import CheckpointSource, cell_folders
from landscape.versions import versions

from cases import REAL_FOLDER

MODEL_FILE = '''
import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two ReLU convolutions and a linear head: a network landscape has never heard of."""

    def __init__(self, width=4, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.head = nn.Linear(width * 16 * 16, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1))


def make(width=4, classes=10):
    return SmallCNN(width, classes)


def mlp(inputs=8, hidden=16, classes=3):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def not_a_network():
    return 3
'''


def _one_error_line(result, *phrases):
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed with {result.exception!r}"
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    for phrase in phrases:
        assert phrase in last, f"{phrase!r} not in {last!r}"
    return last


@pytest.fixture
def user_module(tmp_path):
    """(path of a model file, the module it defines)."""
    path = tmp_path / "user_net.py"
    path.write_text(MODEL_FILE)
    spec = importlib.util.spec_from_file_location(f"user_net_{abs(hash(str(tmp_path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def _sgd_steps(model, inputs, labels, steps=3, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        opt.step()


def _save_epochs(module, folder: Path, width=3):
    """Folders plain/ (bare state_dicts ckpt-0.pt, ckpt-2.pth) and st/ (model_000/002.safetensors):
    epoch 0 at initialization, epoch 2 after a few SGD steps. Returns the two state_dicts."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = module.make(width=width)
    states = [{k: v.clone() for k, v in model.state_dict().items()}]
    gen = torch.Generator().manual_seed(1)
    _sgd_steps(model, torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen))
    states.append({k: v.clone() for k, v in model.state_dict().items()})
    (folder / "plain").mkdir()
    (folder / "st").mkdir()
    for epoch, state in zip((0, 2), states):
        torch.save(state, folder / "plain" / (f"ckpt-{epoch}.pt" if epoch == 0 else f"ckpt-{epoch}.pth"))
        save_file(state, str(folder / "st" / f"model_{epoch:03d}.safetensors"))
    return states


# ----------------------------------------------------------------------------- your own network, real images
ANALYZE = ["--dataset", f"folder:{REAL_FOLDER}", "--subset", "16", "--test-subset", "16", "--measure",
           "dominance,probes", "--gaussian", "1", "--filter", "0", "--probe-steps", "3", "--quiet"]


def test_user_network_cli_equals_library_and_direct_computation(tmp_path, user_module, data_root, cache_dir, cifar10):
    path, module = user_module
    states = _save_epochs(module, tmp_path)
    where = ["--data-root", str(data_root), "--cache-dir", str(cache_dir)]
    for name in ("plain", "st"):
        result = CliRunner().invoke(main, ["analyze", str(tmp_path / name), "--model", f"{path}:make",
                                           "--model-kwargs", '{"width": 3}', "--out", str(tmp_path / f"cli_{name}"),
                                           *ANALYZE, *where])
        assert result.exit_code == 0, result.output
    runtime = Runtime(data_root, cache_dir, progress=False, echo=silent)
    library = landscape.analyze(module.make, tmp_path / "plain", f"folder:{REAL_FOLDER}", out=tmp_path / "lib",
                                model_kwargs={"width": 3}, runtime=runtime,
                                settings=dict(subset=16, test_subset=16, measurements=["dominance", "probes"],
                                              probe_gaussian=1, probe_filter=0, probe_steps=3))
    idx = balanced_subset(cifar10.train_labels, 16, 0)
    for epoch, state in zip((0, 2), states):
        results = [json.loads((RunDir(tmp_path / f).analysis_dir(epoch) / "dominance.json").read_text())["result"]
                   for f in ("cli_plain", "cli_st", library.path)]
        assert results[0]["F"] == results[1]["F"] == results[2]["F"]  # .pt, .safetensors and the library call
        assert results[0]["grad_sq"] == results[1]["grad_sq"] == results[2]["grad_sq"]
        probes = [np.load(RunDir(tmp_path / f).analysis_dir(epoch) / "probe_neg_gradient.npz")
                  for f in ("cli_plain", "lib")]
        assert set(probes[0].files) == set(probes[1].files)
        for key in probes[0].files:
            np.testing.assert_array_equal(probes[0][key], probes[1][key])
        # directly: the same network and weights, F = mean cross-entropy over the 16 analyzed images
        model = module.make(width=3)
        model.load_state_dict(state)
        objective = Objective(model, cifar10.train_images[idx], cifar10.train_labels[idx], mean=cifar10.mean,
                              std=cifar10.std, loss="cross_entropy")
        value, grad = objective.value_and_grad()
        assert results[0]["F"] == pytest.approx(float(value), rel=1e-9)
        assert results[0]["grad_sq"] == pytest.approx(float(grad @ grad), rel=1e-9)
        model64 = module.make(width=3).double()
        model64.load_state_dict(state)
        x = normalize(cifar10.train_images[idx], cifar10.mean, cifar10.std, torch.float64)
        loss = torch.nn.functional.cross_entropy(model64(x), cifar10.train_labels[idx])
        grads = torch.autograd.grad(loss, list(model64.parameters()))
        assert results[0]["F"] == pytest.approx(loss.item(), rel=1e-5)
        assert results[0]["grad_sq"] == pytest.approx(sum(float(g.pow(2).sum()) for g in grads), rel=1e-4)
    config = json.loads((tmp_path / "cli_st" / "config.json").read_text())
    assert config["model"]["model"] == f"{path}:make" and config["model"]["model_kwargs"] == {"width": 3}
    assert config["versions"] == versions()
    assert sorted(p.name for p in (tmp_path / "cli_st" / "analysis").iterdir()) == ["epoch_0000", "epoch_0002"]


# ----------------------------------------------------------------------------- the library call on tensors
def test_library_call_on_tensors_equals_direct_loss(tmp_path, user_module):
    _, module = user_module
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 8, generator=gen), torch.arange(24) % 3
    torch.manual_seed(0)
    model = module.mlp()
    (tmp_path / "ck").mkdir()
    torch.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "ck" / "a.pt")  # epoch from the file
    _sgd_steps(model, x, y)
    torch.save({"model": model.state_dict(), "epoch": 5}, tmp_path / "ck" / "b.pt")
    run = landscape.analyze(module.mlp, tmp_path / "ck", (x, y), out=tmp_path / "out",
                            settings={"measurements": ["dominance"], "test_subset": None})
    assert sorted(p.name for p in run.analysis.iterdir()) == ["epoch_0001", "epoch_0005"]
    result = json.loads((run.analysis_dir(5) / "dominance.json").read_text())["result"]
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model.double()(x.double()), y).item()
    assert result["F"] == pytest.approx(expected, rel=1e-6)
    assert result["train_acc"] == pytest.approx(float((model(x.double()).argmax(1) == y).float().mean()))
    one = landscape.analyze(module.mlp, tmp_path / "ck" / "b.pt", (x, y, x[:6], y[:6]), out=tmp_path / "one",
                            settings={"measurements": ["dominance"]})  # one file: the epoch it records
    assert json.loads((one.analysis_dir(5) / "dominance.json").read_text())["result"]["F"] == result["F"]
    again = CliRunner().invoke(main, ["analyze", str(run.path)])  # the results folder is not a run
    _one_error_line(again, "holds the analysis of", str((tmp_path / "ck").resolve()))


# ----------------------------------------------------------------------------- checkpoint formats and folders
def test_wrapped_state_dicts_load_into_the_users_network(tmp_path, user_module):
    path, module = user_module
    torch.manual_seed(3)
    state = module.make(width=2).state_dict()
    layouts = {"lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 4,
                                  "hyper_parameters": {"lr": 0.1}},
               "dp.pth": {f"module.{k}": v for k, v in state.items()},
               "bearpaw.pth.tar": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 7},
               "model.pt": {"model": state, "epoch": 2}, "net.pt": {"net": state, "acc": 0.5}}
    factory = ModelFactory.of(f"{path}:make", {"width": 2})
    for name, blob in layouts.items():
        torch.save(blob, tmp_path / name)
        model, info, _ = load_user_model(tmp_path / name, factory)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), (name, key)
        assert info["epoch"] == (blob.get("epoch") if "epoch" in blob else None)
    assert set(fit_state_dict({"model.a": 1, "loss.w": 2}, {"a"})) == {"a"}
    torch.save(module.make(width=5).state_dict(), tmp_path / "other.pt")
    with pytest.raises(LandscapeError, match="does not fit user_net.py:make.*size mismatch") as err:
        load_user_model(tmp_path / "other.pt", factory)
    assert "\n" not in str(err.value)


def test_checkpoint_folder_epochs(tmp_path):
    state = {"w": torch.zeros(2)}
    cases = {"named": {"epoch_3.pt": {"state_dict": state}, "last.pt": {"state_dict": state, "epoch": 3},
                       "epoch_10.pt": {"state_dict": state}},
             "recorded": {"a.pt": {"state_dict": state, "epoch": 7}, "b.pt": {"state_dict": state, "epoch": 5}},
             "order": {"first.pt": state, "second.pt": state, "notes.txt": None}}
    for folder, files in cases.items():
        (tmp_path / folder).mkdir()
        for name, blob in files.items():
            if blob is None:
                (tmp_path / folder / name).write_text("not a checkpoint")
            else:
                torch.save(blob, tmp_path / folder / name)
    said = []
    found = {f: {e: p.name for e, p in checkpoint_files(tmp_path / f, said.append).items()} for f in cases}
    assert found == {"named": {3: "epoch_3.pt", 10: "epoch_10.pt"}, "recorded": {5: "b.pt", 7: "a.pt"},
                     "order": {0: "first.pt", 1: "second.pt"}}
    assert any("last.pt" in line for line in said) and any("order" in line for line in said)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LandscapeError, match="holds no checkpoint files"):
        checkpoint_files(tmp_path / "empty")


def test_model_spec_errors_are_one_line(tmp_path, user_module, monkeypatch):
    path, _ = user_module
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    bad = {"no-colon": "expected MODULE:CALLABLE", f"{tmp_path}/absent.py:make": "does not exist",
           f"{tmp_path}/broken.py:make": "importing", f"{path}:nothere": "no callable 'nothere'",
           f"{path}:not_a_network": "not a torch.nn.Module"}
    for spec, phrase in bad.items():
        with pytest.raises(LandscapeError, match=phrase) as err:
            ModelFactory.of(spec).build()
        assert "\n" not in str(err.value) and "--model" in str(err.value)
    with pytest.raises(LandscapeError, match="TypeError"):
        ModelFactory.of(f"{path}:make", {"depth": 3}).build()
    monkeypatch.chdir(tmp_path)  # pkg.mod:fn is found from the working directory, as `python -m` would
    (tmp_path / "adopt_pkg_mod.py").write_text(MODEL_FILE)
    assert isinstance(ModelFactory.of("adopt_pkg_mod:make").build(), torch.nn.Module)
    assert ModelFactory.of(f"{path}:make", {"width": 2}).name == 'user_net.py:make{"width": 2}'


def test_missing_optional_packages_say_how_to_install(tmp_path, monkeypatch, make_image_folder):
    (tmp_path / "x.safetensors").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(LandscapeError, match=r"pip install 'landscape-geometry\[safetensors\]'"):
        read_checkpoint(tmp_path / "x.safetensors")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    root = make_image_folder("tiny")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--arch", "resnet8", "--dataset", "folder:tiny", "--data-root",
                                       str(root.parent), "--out", str(out), "--tensorboard", str(tmp_path / "tb")])
    _one_error_line(result, "pip install 'landscape-geometry[tensorboard]'")
    assert not out.exists()


def test_corrupt_safetensors_is_one_line(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(LandscapeError, match="not a readable safetensors file") as err:
        read_checkpoint(tmp_path / "x.safetensors")
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- runs remember their data
def test_run_remembers_its_data_versions_and_tensorboard(tmp_path, make_image_folder, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = make_image_folder("tiny")
    monkeypatch.delenv("LANDSCAPE_DATA_ROOT", raising=False)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--arch", "resnet8", "--width", "0.25", "--dataset", "folder:tiny",
                                       "--data-root", str(root.parent), "--epochs", "1", "--batch-size", "12",
                                       "--track-every", "1", "--track-subset", "6", "--track-sharpness-every", "2",
                                       "--no-augment", "--tensorboard", str(tmp_path / "tb"), "--out", str(run),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["location"]["data_root"] == str(root.parent.resolve())
    assert config["versions"]["torch"] == torch.__version__
    assert config["versions"]["landscape"] == landscape.__version__
    head = subprocess.run(["git", "-C", str(Path(landscape.__file__).parent.parent), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    assert config["versions"]["git"] == (head.stdout.strip() if head.returncode == 0 else None)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "test/loss", "test/accuracy", "lr", "track/F", "track/grad_sq",
            "sharpness/lambda_max", "sharpness/limit_gd"} <= tags
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([row["train_loss"] for row in log])
    track = [json.loads(line) for line in (run / "track.jsonl").read_text().splitlines()]
    assert [e.step for e in events.Scalars("track/F")] == [row["step"] for row in track]
    # elsewhere, without --data-root or LANDSCAPE_DATA_ROOT: the run's own data root
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = CliRunner().invoke(main, ["analyze", str(run), "--measure", "dominance", "--subset", "6", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "analysis" / "epoch_0001" / "dominance.json").is_file()
    result = CliRunner().invoke(main, ["analyze", str(run), "--data-root", str(tmp_path / "nowhere"), "--quiet"])
    _one_error_line(result, "--data-root", "LANDSCAPE_DATA_ROOT", str(tmp_path / "nowhere"))


def test_every_missing_data_error_names_both_ways(tmp_path):
    for name in ("folder:absent", "cifar10", "cifar100"):
        reason = missing_data(name, tmp_path)
        assert "--data-root" in reason and "LANDSCAPE_DATA_ROOT" in reason, reason
        with pytest.raises(LandscapeError) as err:
            load_dataset(name, tmp_path, tmp_path / "cache", progress=False)
        assert "--data-root" in str(err.value) and "LANDSCAPE_DATA_ROOT" in str(err.value)


def test_folders_of_runs_list_their_cells(tmp_path):
    for cell in ("resnet8_cifar10", "resnet8_w2_cifar10"):
        (tmp_path / "out" / cell).mkdir(parents=True)
        (tmp_path / "out" / cell / "config.json").write_text(json.dumps({"train": None, "data": {"dataset": "x"}}))
    assert [p.name for p in cell_folders(tmp_path / "out")] == ["resnet8_cifar10", "resnet8_w2_cifar10"]
    for command in ("analyze", "figures", "report"):
        result = CliRunner().invoke(main, [command, str(tmp_path / "out")])
        assert result.exit_code != 0 and "Traceback" not in result.output
        for cell in ("resnet8_cifar10", "resnet8_w2_cifar10"):
            assert f"landscape {command} {tmp_path / 'out' / cell}" in result.output.splitlines()[-2:] \
                or f"  landscape {command} {tmp_path / 'out' / cell}" in result.output.splitlines()


def test_model_options_are_checked(tmp_path, user_module):
    path, _ = user_module
    (tmp_path / "ck").mkdir()
    torch.save({"w": torch.zeros(1)}, tmp_path / "ck" / "epoch_1.pt")
    cases = [(["--model", f"{path}:make", "--arch", "resnet8"], "not both"),
             (["--model", f"{path}:make", "--model-kwargs", "{width: 2}"], "not JSON"),
             (["--model", f"{path}:make", "--model-kwargs", "[2]"], "JSON object"),
             (["--model-kwargs", "{}"], "goes with --model")]
    for options, phrase in cases:
        result = CliRunner().invoke(main, ["analyze", str(tmp_path / "ck"), "--dataset", "cifar10", *options])
        _one_error_line(result, phrase)


def test_source_carries_versions_and_checks_outputs(tmp_path, user_module):
    _, module = user_module
    (tmp_path / "ck").mkdir()
    torch.save(module.mlp(classes=4).state_dict(), tmp_path / "ck" / "epoch_1.pt")
    data = landscape.tensor_dataset((torch.randn(6, 8), torch.arange(6) % 3))
    with pytest.raises(LandscapeError, match="gives 4 outputs per example, but tensors .* has 3 classes"):
        CheckpointSource.load(tmp_path / "ck", ModelFactory.of(module.mlp, {"classes": 4}), data,
                              RunDir(tmp_path / "out"), Runtime(progress=False, echo=silent))
    torch.save(module.mlp().state_dict(), tmp_path / "ck" / "epoch_1.pt")
    source = CheckpointSource.load(tmp_path / "ck", ModelFactory.of(module.mlp), data, RunDir(tmp_path / "out"),
                                   Runtime(progress=False, echo=silent))
    assert source.versions == versions() and source.versions["torch"] == torch.__version__
    model, info, _ = source.load_model(1)
    assert isinstance(model, torch.nn.Sequential) and info["epoch"] is None
