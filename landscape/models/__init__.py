"""The paper's networks by name, and the split of their parameters into first/hidden/last.

Names: ``vgg19_bn``; ``resnet<D>`` for D = 6n+2; ``mlp<L>`` or ``mlp<L>_d<D>``, the theorem's
bias-free ReLU perceptron (``models.mlp``) with L hidden m×m layers, m = MLP_BASE_WIDTH × width,
reading D-dimensional inputs (default 3·32·32: flattened CIFAR images).
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import LandscapeError
from .mlp import MLP
from .resnet import CifarResNet
from .vgg import VGG, VGG19_LAYOUT

MLP_BASE_WIDTH = 64  # hidden width m of an mlp at width multiplier 1
MLP_DEFAULT_INPUT = 3 * 32 * 32  # an mlp without _d<D> reads flattened CIFAR images
ARCHITECTURES = ("vgg19_bn, resnet32, resnet110, resnetD for any depth D = 6n+2, "
                 f"or mlpL / mlpL_dD (L ≥ 1 hidden ReLU layers of width {MLP_BASE_WIDTH}×width, "
                 f"D-dimensional inputs, default {MLP_DEFAULT_INPUT})")


def check_architecture(arch: str) -> tuple[str, dict]:
    """Raise for an unknown name; returns (family, settings): ('vgg', {}), ('resnet', {depth}),
    ('mlp', {depth, in_features})."""
    if arch == "vgg19_bn":
        return "vgg", {}
    match = re.fullmatch(r"resnet(\d+)", arch)
    if match and int(match.group(1)) >= 8 and (int(match.group(1)) - 2) % 6 == 0:
        return "resnet", {"depth": int(match.group(1))}
    match = re.fullmatch(r"mlp(\d+)(?:_d(\d+))?", arch)
    if match and int(match.group(1)) >= 1 and (match.group(2) is None or int(match.group(2)) >= 1):
        return "mlp", {"depth": int(match.group(1)),
                       "in_features": int(match.group(2)) if match.group(2) else MLP_DEFAULT_INPUT}
    raise LandscapeError(f"unknown architecture {arch!r}: use {ARCHITECTURES}")


def check_width(arch: str, width) -> float:
    """``width`` as an int when whole; a positive number, and for an mlp one with 64×width whole."""
    ok = isinstance(width, (int, float)) and not isinstance(width, bool) and 0 < width < float("inf")
    if ok and arch.startswith("mlp"):
        ok = float(MLP_BASE_WIDTH * width).is_integer()
    if not ok:
        need = f"a multiple of 1/{MLP_BASE_WIDTH}" if arch.startswith("mlp") else "a positive number"
        raise LandscapeError(f"width must be {need}, got {width!r}")
    return int(width) if float(width).is_integer() else float(width)


def build_model(arch: str, num_classes: int = 10, width: float = 1) -> nn.Module:
    """``vgg19_bn``, ``resnet<6n+2>`` (e.g. resnet20, resnet32, resnet110) or ``mlp<L>[_d<D>]``.

    ``width`` scales channels (VGG, ResNet; fractions allowed) or sets the mlp's hidden width m = MLP_BASE_WIDTH × width;
    ``num_classes`` is the number of outputs (the regression dimension for float targets).
    """
    family, settings = check_architecture(arch)
    width = check_width(arch, width)
    if family == "vgg":
        return VGG(VGG19_LAYOUT, num_classes, width)
    if family == "resnet":
        return CifarResNet(settings["depth"], num_classes, width)
    return MLP(settings["depth"], settings["in_features"], int(MLP_BASE_WIDTH * width), num_classes)


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Split parameter names into 'first', 'hidden' and 'last' layers.

    'first' is the first module holding parameters (the input convolution, or an mlp's input
    layer A) together with a batch norm registered right after it; 'last' is the last module
    holding parameters (the classifier, or an mlp's output layer B). 'hidden' is everything
    else (an mlp's W_1..W_L): the layers the theorem trains.
    """
    leaves = [(name, m) for name, m in model.named_modules()
              if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    if len(leaves) < 3:
        raise LandscapeError("a first/hidden/last split needs at least three layers with parameters")
    first = [leaves[0][0]]
    if isinstance(leaves[1][1], nn.modules.batchnorm._BatchNorm) and len(leaves) > 3:
        first.append(leaves[1][0])
    last = [leaves[-1][0]]
    groups: dict[str, list[str]] = {"first": [], "hidden": [], "last": []}
    for name, _ in model.named_parameters():
        owner = name.rsplit(".", 1)[0]
        key = "first" if owner in first else "last" if owner in last else "hidden"
        groups[key].append(name)
    return groups


def select_parameters(model: nn.Module, subset: str) -> list[str]:
    """Names of the parameters in ``subset``: 'all' or 'hidden'."""
    if subset == "all":
        return [n for n, _ in model.named_parameters()]
    if subset == "hidden":
        return parameter_groups(model)["hidden"]
    raise LandscapeError(f"unknown parameter subset {subset!r}: use 'all' or 'hidden'")
