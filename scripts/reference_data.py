"""The plain reference the benchmarks compare against: a torchvision-style in-memory dataset.

Like ``torchvision.datasets.CIFAR10``: uint8 HWC arrays, each image turned into a PIL image and
sent through per-image transforms by a DataLoader — the way existing loss-landscape tools read
their data.
"""

from __future__ import annotations

import numpy as np
import torch


class ArrayDataset(torch.utils.data.Dataset):
    """uint8 HWC arrays + labels, each image through a per-image PIL transform."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    @classmethod
    def from_tensors(cls, images_nchw: torch.Tensor, labels: torch.Tensor, transform) -> "ArrayDataset":
        return cls(np.ascontiguousarray(images_nchw.permute(0, 2, 3, 1).numpy()), labels.numpy(), transform)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])
