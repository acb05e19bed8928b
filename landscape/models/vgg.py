"""VGG19 with batch norm for 32x32 inputs, laid out like bearpaw/pytorch-classification.

``features`` is the usual conv/BN/ReLU/max-pool stack; ``classifier`` is a single
Linear(512k, classes) as in that code, so its state_dicts load here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .channels import scaled_channels

VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class VGG(nn.Module):
    """VGG with batch norm; ``width`` scales every convolution's channels."""

    def __init__(self, layout: list, num_classes: int = 10, width: float = 1):
        """VGG with batch norm from a layout list ('M' = max-pool), channels ×``width``."""
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in layout:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                channels = scaled_channels(v, width)
                layers += [nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
                           nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
                in_channels = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
