"""The network of Allen-Zhu, Li & Song (2019): a deep ReLU perceptron without biases.

    h_0 = ReLU(A x),   h_l = ReLU(W_l h_{l−1}) for l = 1..L,   f(x) = B h_L

A ∈ R^{m×d} and W_l ∈ R^{m×m} have entries N(0, 2/m), B ∈ R^{k×m} entries N(0, 1/k) (k outputs),
as in the paper's random initialization. The paper has no biases (a fixed input coordinate
1/√2 plays that part there); neither does this network, so that the parameters are exactly
A, W_1..W_L, B and the theorem's hidden layers are exactly W_1..W_L.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """``depth`` hidden m×m ReLU layers between an input layer A and an output layer B (no biases)."""

    def __init__(self, depth: int, in_features: int, width: int, out_features: int):
        """L = ``depth`` ≥ 1 hidden layers of ``width`` m, inputs flattened to ``in_features`` d."""
        super().__init__()
        self.input = nn.Linear(in_features, width, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.output = nn.Linear(width, out_features, bias=False)
        with torch.no_grad():
            self.input.weight.normal_(0.0, math.sqrt(2.0 / width))
            for layer in self.hidden:
                layer.weight.normal_(0.0, math.sqrt(2.0 / width))
            self.output.weight.normal_(0.0, math.sqrt(1.0 / out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.input(x.flatten(1)))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h)
