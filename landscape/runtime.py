"""Where a command runs: data access, device, progress and messages, and the process group.

Built once (by the CLI, or by a library caller) and handed to every function that reads data,
places tensors or talks to the user, instead of six keywords threaded through each signature.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import distributed
from .errors import LandscapeError


def silent(*args, **kwargs) -> None:
    """The echo of a quiet runtime, and of ranks other than 0: one rank speaks for the job."""


@dataclass(frozen=True)
class Runtime:
    """Data root, cache, download permission, device, progress bars, messages and the process group."""

    data_root: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    download: bool = False
    device: str = "cpu"
    progress: bool = True
    echo: Callable[..., None] = print
    group: distributed.Group = field(default_factory=distributed.current)

    def __post_init__(self):
        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise LandscapeError("--device cuda asked for, but no CUDA device is available")
        if not self.group.is_writer:  # one rank speaks for the job
            object.__setattr__(self, "progress", False)
            object.__setattr__(self, "echo", silent)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def is_writer(self) -> bool:
        return self.group.is_writer

    def with_(self, **changes) -> "Runtime":
        """A copy with some fields changed (e.g. ``quiet()``, or another data root)."""
        return dataclasses.replace(self, **changes)

    def quiet(self) -> "Runtime":
        """The same runtime without progress bars or messages (cells of a sweep, helpers' runs)."""
        return self.with_(progress=False, echo=silent)

    def load_dataset(self, name: str):
        """The named dataset through this runtime's data root, cache and download permission."""
        from .data import load_dataset

        return load_dataset(name, self.data_root, self.cache_dir, self.download, self.progress)

    def data_location(self) -> dict:
        """The resolved data root and cache dir, to store in a run so later commands find its data."""
        from .data import resolve_data_root

        return {"data_root": str(resolve_data_root(self.data_root).resolve()),
                "cache_dir": str(Path(self.cache_dir).resolve()) if self.cache_dir else None}
