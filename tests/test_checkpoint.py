"""landscape.checkpoint: our format, bearpaw/pytorch-classification state_dicts, and bad files.

The bearpaw checkpoints here are built from that code's documented layout by an independent
re-implementation (names, shapes, and a functional forward pass), not by our models.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from landscape.checkpoint import infer_architecture, load_model, read_checkpoint, save_checkpoint
from landscape.errors import LandscapeError
from landscape.models import build_model

VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
             512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


# ----------------------------------------------------------------------------- bearpaw layout
class _Params:
    def __init__(self, seed: int, num_batches_tracked: bool):
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}
        self.nbt = num_batches_tracked

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def conv(self, name, cout, cin, k, bias=False):
        self.sd[f"{name}.weight"] = self.randn(cout, cin, k, k, scale=(2.0 / (k * k * cout)) ** 0.5)
        if bias:
            self.sd[f"{name}.bias"] = self.randn(cout, scale=0.1)

    def bn(self, name, c):
        self.sd[f"{name}.weight"] = 1 + self.randn(c, scale=0.1)
        self.sd[f"{name}.bias"] = self.randn(c, scale=0.1)
        self.sd[f"{name}.running_mean"] = self.randn(c, scale=0.1)
        self.sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
        if self.nbt:
            self.sd[f"{name}.num_batches_tracked"] = torch.tensor(391 * 5)

    def linear(self, name, cout, cin):
        self.sd[f"{name}.weight"] = self.randn(cout, cin, scale=cin ** -0.5)
        self.sd[f"{name}.bias"] = self.randn(cout, scale=0.1)


def bearpaw_resnet_state(depth: int, num_classes: int, seed: int = 0, num_batches_tracked=True):
    """models/cifar/resnet.py (BasicBlock): conv1, bn1, layer{1,2,3}.{i}.conv1/bn1/conv2/bn2,
    layer{2,3}.0.downsample.{0: 1x1 conv, 1: BN}, fc."""
    n = (depth - 2) // 6
    p = _Params(seed, num_batches_tracked)
    p.conv("conv1", 16, 3, 3)
    p.bn("bn1", 16)
    inplanes = 16
    for stage, planes in ((1, 16), (2, 32), (3, 64)):
        for i in range(n):
            stride = 2 if stage > 1 and i == 0 else 1
            prefix = f"layer{stage}.{i}"
            p.conv(f"{prefix}.conv1", planes, inplanes, 3)
            p.bn(f"{prefix}.bn1", planes)
            p.conv(f"{prefix}.conv2", planes, planes, 3)
            p.bn(f"{prefix}.bn2", planes)
            if i == 0 and (stride != 1 or inplanes != planes):
                p.conv(f"{prefix}.downsample.0", planes, inplanes, 1)
                p.bn(f"{prefix}.downsample.1", planes)
            inplanes = planes
    p.linear("fc", num_classes, 64)
    return p.sd


def bearpaw_resnet_forward(sd, x, depth):
    n = (depth - 2) // 6

    def bn(h, name):
        return F.batch_norm(h, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                            sd[f"{name}.weight"], sd[f"{name}.bias"], training=False, eps=1e-5)

    out = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    for stage in (1, 2, 3):
        for i in range(n):
            stride = 2 if stage > 1 and i == 0 else 1
            prefix = f"layer{stage}.{i}"
            h = F.relu(bn(F.conv2d(out, sd[f"{prefix}.conv1.weight"], stride=stride, padding=1), f"{prefix}.bn1"))
            h = bn(F.conv2d(h, sd[f"{prefix}.conv2.weight"], padding=1), f"{prefix}.bn2")
            if f"{prefix}.downsample.0.weight" in sd:
                residual = bn(F.conv2d(out, sd[f"{prefix}.downsample.0.weight"], stride=stride),
                              f"{prefix}.downsample.1")
            else:
                residual = out
            out = F.relu(h + residual)
    out = F.avg_pool2d(out, 8).flatten(1)
    return F.linear(out, sd["fc.weight"], sd["fc.bias"])


def bearpaw_vgg19_bn_state(num_classes: int, seed: int = 0):
    """models/cifar/vgg.py: features.{i} = conv(bias), BN, ReLU per layer, MaxPool per 'M';
    classifier = Linear(512, classes)."""
    p = _Params(seed, True)
    idx, cin = 0, 3
    for v in VGG19_CFG:
        if v == "M":
            idx += 1
            continue
        p.conv(f"features.{idx}", v, cin, 3, bias=True)
        p.bn(f"features.{idx + 1}", v)
        idx, cin = idx + 3, v
    p.linear("classifier", num_classes, 512)
    return p.sd


def bearpaw_vgg_forward(sd, x):
    idx = 0
    for v in VGG19_CFG:
        if v == "M":
            x = F.max_pool2d(x, 2, 2)
            idx += 1
            continue
        x = F.conv2d(x, sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"], padding=1)
        b = f"features.{idx + 1}"
        x = F.relu(F.batch_norm(x, sd[f"{b}.running_mean"], sd[f"{b}.running_var"], sd[f"{b}.weight"],
                                sd[f"{b}.bias"], training=False, eps=1e-5))
        idx += 3
    return F.linear(x.flatten(1), sd["classifier.weight"], sd["classifier.bias"])


def _save_bearpaw(path, sd, epoch=5):
    """As bearpaw's cifar.py saves: DataParallel's 'module.' prefix, plus epoch/acc/optimizer."""
    torch.save({"epoch": epoch, "state_dict": {"module." + k: v for k, v in sd.items()},
                "acc": 91.25, "best_acc": 91.5,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0,
                                                             "weight_decay": 1e-4, "nesterov": False,
                                                             "params": list(range(3))}]}}, path)
    return path


@pytest.mark.parametrize("depth,classes,nbt", [(20, 10, True), (8, 100, False)])
def test_bearpaw_resnet_checkpoint_loads_with_identical_outputs(tmp_path, depth, classes, nbt):
    sd = bearpaw_resnet_state(depth, classes, seed=depth, num_batches_tracked=nbt)
    path = _save_bearpaw(tmp_path / "checkpoint.pth.tar", sd)
    model, info, blob = load_model(path)
    assert info == {"arch": f"resnet{depth}", "num_classes": classes, "width": 1, "epoch": 5}
    assert blob["acc"] == 91.25
    ours = model.state_dict()
    for k, v in sd.items():
        assert torch.equal(ours[k], v), k
    extra = set(ours) - set(sd)
    assert extra == (set() if nbt else {k for k in ours if k.endswith("num_batches_tracked")})
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = bearpaw_resnet_forward(sd, x, depth)
        got = model.eval()(x)
    assert got.shape == (4, classes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # giving the architecture explicitly is the same
    model2, info2, _ = load_model(path, arch=f"resnet{depth}", num_classes=classes)
    with torch.no_grad():
        assert torch.equal(model2.eval()(x), got)


def test_bearpaw_vgg19_bn_checkpoint_loads_with_identical_outputs(tmp_path):
    sd = bearpaw_vgg19_bn_state(10, seed=3)
    path = _save_bearpaw(tmp_path / "vgg.pth.tar", sd, epoch=164)
    model, info, _ = load_model(path)
    assert info == {"arch": "vgg19_bn", "num_classes": 10, "width": 1, "epoch": 164}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), bearpaw_vgg_forward(sd, x), rtol=1e-5, atol=1e-5)


def test_bare_state_dict_and_architecture_inference(tmp_path):
    sd = bearpaw_resnet_state(14, 10)
    torch.save(sd, tmp_path / "bare.pt")
    blob = read_checkpoint(tmp_path / "bare.pt")
    assert set(blob) == {"state_dict"} and set(blob["state_dict"]) == set(sd)
    assert infer_architecture(sd) == ("resnet14", 10, 1)
    wide = build_model("resnet8", 7, width=3).state_dict()
    assert infer_architecture(wide) == ("resnet8", 7, 3)
    assert infer_architecture(build_model("vgg19_bn", 100).state_dict()) == ("vgg19_bn", 100, 1)
    assert infer_architecture({"weight": torch.zeros(1)}) is None


# ----------------------------------------------------------------------------- our format
def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet8", 3, width=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    path = tmp_path / "ck" / "epoch_0003.pt"
    save_checkpoint(path, model, arch="resnet8", num_classes=3, width=2, epoch=3, step=42,
                    config={"lr": 0.1}, metrics={"test_acc": 0.5}, optimizer=opt)
    loaded, info, blob = load_model(path)
    assert info == {"arch": "resnet8", "num_classes": 3, "width": 2, "epoch": 3}
    assert blob["step"] == 42 and blob["metrics"] == {"test_acc": 0.5} and blob["config"] == {"lr": 0.1}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert len(blob["optimizer"]["state"]) == len(list(model.parameters()))
    # the file loads with torch's safe loader alone
    assert torch.load(path, weights_only=True)["format"] == "landscape-checkpoint"
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temp file


def _own_checkpoint(tmp_path, arch="resnet8", classes=10, width=1, name="ck.pt"):
    path = tmp_path / name
    save_checkpoint(path, build_model(arch, classes, width), arch=arch, num_classes=classes,
                    width=width, epoch=1, step=1, config={})
    return path


def test_checkpoint_of_another_architecture_or_class_count_names_both(tmp_path):
    path = _own_checkpoint(tmp_path)
    with pytest.raises(LandscapeError) as err:
        load_model(path, arch="resnet14")
    assert "resnet8 with 10 classes" in str(err.value) and "resnet14 with 10 classes" in str(err.value)
    with pytest.raises(LandscapeError) as err:
        load_model(path, num_classes=100)
    assert "resnet8 with 10 classes" in str(err.value) and "resnet8 with 100 classes" in str(err.value)
    with pytest.raises(LandscapeError, match=r"width 2"):
        load_model(path, width=2)
    # the same for a foreign checkpoint, whose architecture is read off its keys
    bear = _save_bearpaw(tmp_path / "bear.pth.tar", bearpaw_resnet_state(8, 100))
    with pytest.raises(LandscapeError) as err:
        load_model(bear, arch="resnet8", num_classes=10)
    assert "resnet8 with 100 classes" in str(err.value) and "resnet8 with 10 classes" in str(err.value)
    with pytest.raises(LandscapeError) as err:
        load_model(bear, arch="vgg19_bn")
    assert "resnet8 with 100 classes" in str(err.value) and "vgg19_bn" in str(err.value)


def test_unrecognizable_state_dict(tmp_path):
    sd = {"encoder.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)}
    torch.save(sd, tmp_path / "other.pt")
    with pytest.raises(LandscapeError, match="cannot tell its architecture.*--arch"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(LandscapeError, match="does not fit resnet8 with 10 classes"):
        load_model(tmp_path / "other.pt", arch="resnet8")


@pytest.mark.parametrize("keep", [0, 100, 0.5, -20])
def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path, keep):
    path = _own_checkpoint(tmp_path)
    raw = path.read_bytes()
    cut = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    path.write_bytes(raw[:cut])
    with pytest.raises(LandscapeError) as err:
        load_model(path)
    assert f"checkpoint {path} is corrupt or truncated" in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(LandscapeError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello, this is not a checkpoint\n" * 20)
    with pytest.raises(LandscapeError, match="corrupt or truncated"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(LandscapeError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pt")
    torch.save({"epoch": 3, "acc": 1.0}, tmp_path / "nostate.pt")
    with pytest.raises(LandscapeError, match="holds no 'state_dict'"):
        read_checkpoint(tmp_path / "nostate.pt")


class _Malicious:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_with_code_in_it_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Malicious(marker)}, tmp_path / "evil.pt")
    with pytest.raises(LandscapeError, match="refusing to unpickle"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
