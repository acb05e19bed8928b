"""CIFAR ResNets with BasicBlocks (depth 6n+2), laid out like bearpaw/pytorch-classification.

Parameter names, shapes and initialization match that code (the one the paper's
experiments used), so its state_dicts load here: ``conv1``/``bn1``/``layer1..3``/``fc``,
projection shortcuts as ``downsample`` = 1x1 convolution + batch norm.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .channels import scaled_channels


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity or projection shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        """``downsample`` (a projection), when given, replaces the identity shortcut."""
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: three stages of n blocks at 16k, 32k, 64k channels."""

    def __init__(self, depth: int, num_classes: int = 10, width: float = 1):
        """ResNet-(6n+2) for CIFAR as in bearpaw/pytorch-classification, channels ×``width``."""
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.inplanes = scaled_channels(16, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(scaled_channels(16, width), n, stride=1)
        self.layer2 = self._make_layer(scaled_channels(32, width), n, stride=2)
        self.layer3 = self._make_layer(scaled_channels(64, width), n, stride=2)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(scaled_channels(64, width), num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage of ``blocks`` basic blocks; the first may downsample."""
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        return self.fc(torch.flatten(x, 1))
