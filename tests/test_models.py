"""landscape.models: the paper's networks, their sizes, and the first/hidden/last split."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import build_model, parameter_groups, select_parameters


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch,expected", [("resnet32", 466_906), ("resnet110", 1_730_714),
                                           ("vgg19_bn", 20_040_522)])
def test_parameter_counts_for_ten_classes(arch, expected):
    assert _count(build_model(arch, 10)) == expected


def test_parameter_counts_follow_classes_and_width():
    # only the classifier depends on the class count
    assert _count(build_model("resnet32", 100)) - _count(build_model("resnet32", 10)) == 90 * 64 + 90
    assert _count(build_model("vgg19_bn", 100)) - _count(build_model("vgg19_bn", 10)) == 90 * 512 + 90
    wide = build_model("resnet8", 10, width=2)
    assert wide.conv1.weight.shape == (32, 3, 3, 3)
    assert wide.layer3[0].conv2.weight.shape == (128, 128, 3, 3)
    assert wide.fc.weight.shape == (10, 128)


@pytest.mark.parametrize("arch,classes", [("resnet8", 10), ("resnet14", 100), ("vgg19_bn", 10)])
def test_forward_shapes(arch, classes):
    torch.manual_seed(0)
    model = build_model(arch, classes).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, classes) and torch.isfinite(out).all()


def test_resnet_depth_and_shortcuts():
    model = build_model("resnet20")
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [3, 3, 3]
    with_shortcut = [name for name, m in model.named_modules()
                     if getattr(m, "downsample", None) is not None]
    assert with_shortcut == ["layer2.0", "layer3.0"]
    ds = model.layer2[0].downsample
    assert isinstance(ds[0], nn.Conv2d) and ds[0].kernel_size == (1, 1) and ds[0].stride == (2, 2)
    assert isinstance(ds[1], nn.BatchNorm2d)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19  # 6n + 1 convolutions, + the classifier = depth 20


def test_initialization_follows_bearpaw():
    torch.manual_seed(0)
    model = build_model("resnet32")
    w = model.layer3[1].conv2.weight.detach()  # 64 x 64 x 3 x 3: std sqrt(2 / (9 * 64))
    assert float(w.std()) == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.03)
    assert float(w.mean()) == pytest.approx(0.0, abs=0.003)
    assert torch.equal(model.bn1.weight, torch.ones(16)) and torch.equal(model.bn1.bias, torch.zeros(16))


@pytest.mark.parametrize("arch", ["resnet9", "resnet2", "resnet", "vgg16", "ResNet32", "resnet32x"])
def test_unknown_architectures_are_refused(arch):
    with pytest.raises(LandscapeError, match=f"unknown architecture '{arch}'"):
        build_model(arch)


def test_width_must_be_positive():
    with pytest.raises(LandscapeError, match="width"):
        build_model("resnet8", width=0)
    with pytest.raises(LandscapeError, match="multiple of 1/64"):
        build_model("mlp1", width=0.3)  # m = 64 × 0.3 is not whole


def test_fractional_widths_round_every_layer_and_are_read_back_from_a_state_dict():
    from landscape.checkpoint import infer_architecture

    quarter = build_model("vgg19_bn", 10, width=0.25)
    assert [m.out_channels for m in quarter.modules() if isinstance(m, nn.Conv2d)][:3] == [16, 16, 32]
    assert quarter.classifier.weight.shape == (10, 128)
    assert infer_architecture(quarter.state_dict()) == ("vgg19_bn", 10, 0.25)
    small = build_model("resnet110", 10, width=0.25)
    assert small.conv1.weight.shape[0] == 4 and small.fc.weight.shape == (10, 16)
    assert infer_architecture(small.state_dict()) == ("resnet110", 10, 0.25)
    assert infer_architecture(build_model("resnet8", 10, width=2).state_dict()) == ("resnet8", 10, 2)
    assert build_model("mlp1", width=0.5).hidden[0].weight.shape == (32, 32)


def test_parameter_groups_resnet():
    model = build_model("resnet8")
    groups = parameter_groups(model)
    assert groups["first"] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert groups["last"] == ["fc.weight", "fc.bias"]
    names = [n for n, _ in model.named_parameters()]
    assert sorted(groups["first"] + groups["hidden"] + groups["last"]) == sorted(names)
    assert "layer1.0.conv1.weight" in groups["hidden"] and "layer3.0.downsample.1.bias" in groups["hidden"]
    assert select_parameters(model, "hidden") == groups["hidden"]
    assert select_parameters(model, "all") == names
    with pytest.raises(LandscapeError, match="unknown parameter subset"):
        select_parameters(model, "first")


def test_parameter_groups_vgg():
    groups = parameter_groups(build_model("vgg19_bn"))
    assert groups["first"] == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert groups["last"] == ["classifier.weight", "classifier.bias"]
    assert len(groups["hidden"]) == 15 * 4  # 15 more conv + bn pairs, weight and bias each


# ----------------------------------------------------------------------------- the theorem's mlp
def test_mlp_names_depth_input_and_width():
    from landscape.models import MLP_BASE_WIDTH, MLP_DEFAULT_INPUT, check_architecture

    assert check_architecture("mlp3") == ("mlp", {"depth": 3, "in_features": MLP_DEFAULT_INPUT})
    assert check_architecture("mlp2_d16") == ("mlp", {"depth": 2, "in_features": 16})
    model = build_model("mlp2_d16", num_classes=5, width=2)
    m = 2 * MLP_BASE_WIDTH
    assert [tuple(p.shape) for _, p in model.named_parameters()] == [(m, 16), (m, m), (m, m), (5, m)]
    assert all(mod.bias is None for mod in model.modules() if isinstance(mod, nn.Linear))  # no biases, as in the paper
    with torch.no_grad():
        assert build_model("mlp1", 10)(torch.randn(3, 3, 32, 32)).shape == (3, 10)  # flattened images
    for bad in ("mlp0", "mlp", "mlp2_d0", "mlp2_d", "mlp2d16"):
        with pytest.raises(LandscapeError, match=f"unknown architecture '{bad}'"):
            build_model(bad)


def test_mlp_parameter_groups_are_input_hidden_output():
    model = build_model("mlp3_d8", 2)
    groups = parameter_groups(model)
    assert groups == {"first": ["input.weight"], "hidden": [f"hidden.{i}.weight" for i in range(3)],
                      "last": ["output.weight"]}
    assert select_parameters(model, "hidden") == groups["hidden"]


def _assert_gaussian(w: torch.Tensor, var: float, z: float = 5.0):
    """Entries look N(0, var): sample mean and variance within z standard errors for their count."""
    x = w.detach().double().flatten()
    n = len(x)
    assert abs(float(x.mean())) <= z * math.sqrt(var / n)
    assert abs(float(x.var()) / var - 1) <= z * math.sqrt(2 / (n - 1))  # sd of s²/σ² is √(2/(n−1))


def test_mlp_initialization_has_the_papers_variances():
    torch.manual_seed(0)
    model = build_model("mlp2_d16", num_classes=10, width=4)
    m = model.input.weight.shape[0]
    _assert_gaussian(model.input.weight, 2 / m)  # A ~ N(0, 2/m)
    for layer in model.hidden:
        _assert_gaussian(layer.weight, 2 / m)  # W_l ~ N(0, 2/m)
    _assert_gaussian(model.output.weight, 1 / 10)  # B ~ N(0, 1/d_out)
    default = nn.Linear(m, m, bias=False).weight  # PyTorch's own init would fail the test
    with pytest.raises(AssertionError):
        _assert_gaussian(default, 2 / m)
