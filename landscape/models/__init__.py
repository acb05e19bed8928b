"""The paper's networks by name, and the split of their parameters into first/hidden/last."""

from __future__ import annotations

import re

from torch import nn

from ..errors import LandscapeError
from .resnet import CifarResNet
from .vgg import VGG, VGG19_LAYOUT

ARCHITECTURES = "vgg19_bn, resnet32, resnet110, or resnetD for any depth D = 6n+2"


def check_architecture(arch: str) -> int | None:
    """Raise for an unknown name; returns the ResNet depth, or None for VGG19-BN."""
    if arch == "vgg19_bn":
        return None
    match = re.fullmatch(r"resnet(\d+)", arch)
    if match and int(match.group(1)) >= 8 and (int(match.group(1)) - 2) % 6 == 0:
        return int(match.group(1))
    raise LandscapeError(f"unknown architecture {arch!r}: use {ARCHITECTURES}")


def build_model(arch: str, num_classes: int = 10, width: int = 1) -> nn.Module:
    """``vgg19_bn`` or ``resnet<6n+2>`` (e.g. resnet20, resnet32, resnet110); width scales channels."""
    if width < 1:
        raise LandscapeError(f"width must be a positive integer, got {width}")
    depth = check_architecture(arch)
    return VGG(VGG19_LAYOUT, num_classes, width) if depth is None else CifarResNet(depth, num_classes, width)


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Split parameter names into 'first', 'hidden' and 'last' layers.

    'first' is the first module holding parameters (the input convolution) together with a
    batch norm registered right after it; 'last' is the last module holding parameters (the
    classifier). 'hidden' is everything else: the layers the theorem trains.
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
