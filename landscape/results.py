"""The run directory and its files, all written atomically (write to a temp file, then rename).

Layout of a run directory::

    config.json            the run's full configuration (dataset, recipe, seed, ...)
    labels.pt              the training labels actually used (after subset and label noise)
    log.jsonl              one line per epoch: losses, accuracies, lr, seconds
    track.jsonl            dense (F, ||grad F||^2) along training, if --track-every was given
    checkpoints/epoch_XXXX.pt, checkpoints/last.pt
    analysis/epoch_XXXX/<measurement>.json (+ .npz for arrays)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LandscapeError


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf: keep them readable
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(obj: Any, path: Path) -> None:
    data = json.dumps(_jsonable(obj), indent=2, sort_keys=True).encode()
    _atomic(path, lambda fh: fh.write(data + b"\n"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh))


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    _atomic(path, lambda fh: np.savez(fh, **arrays))


def read_json(path: Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise LandscapeError(f"missing result file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LandscapeError(f"damaged result file {path}: {exc}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise LandscapeError(f"missing result file {path}") from None
    except Exception as exc:
        raise LandscapeError(f"damaged result file {path}: {exc}") from None


def append_jsonl(obj: Any, path: Path) -> None:
    """Append one JSON line and fsync it (a line is either fully there or absent on resume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(_jsonable(obj), sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn last line left by a crash."""
    if not Path(path).is_file():
        return []
    rows = []
    with open(path) as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    labels = property(lambda self: self.path / "labels.pt")
    log = property(lambda self: self.path / "log.jsonl")
    track = property(lambda self: self.path / "track.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    analysis = property(lambda self: self.path / "analysis")
    figures = property(lambda self: self.path / "figures")

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    def checkpoint_epochs(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.checkpoints.glob("epoch_*.pt"))

    def analysis_dir(self, epoch: int | str) -> Path:
        name = f"epoch_{epoch:04d}" if isinstance(epoch, int) else str(epoch)
        return self.analysis / name

    def is_run(self) -> bool:
        return self.config.is_file()
