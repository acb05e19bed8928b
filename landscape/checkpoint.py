"""Checkpoints: our own format (model + optimizer + metadata) and external state_dicts.

Ours is a plain dict of tensors and JSON-like values, loadable with
``torch.load(weights_only=True)``. External checkpoints (bearpaw/pytorch-classification's
``{'state_dict': ..., 'epoch': ...}``, or a bare state_dict, keys possibly prefixed
``module.`` by DataParallel) load when the architecture is given or can be read off the keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .errors import LandscapeError
from .models import build_model
from .results import atomic_torch_save, safe_torch_load

FORMAT = "landscape-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, model: nn.Module, *, arch: str, num_classes: int, width: float,
                    epoch: int, step: int, config: dict, metrics: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    atomic_torch_save({
        "format": FORMAT, "version": VERSION, "arch": arch, "num_classes": num_classes,
        "width": width, "epoch": epoch, "step": step, "config": config,
        "metrics": metrics or {}, "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }, path)


def read_checkpoint(path: str | Path) -> dict:
    """Load any checkpoint file safely; a bare state_dict comes back as {'state_dict': ...}."""
    blob = safe_torch_load(Path(path), "checkpoint")
    if not isinstance(blob, dict):
        raise LandscapeError(f"checkpoint {path} holds a {type(blob).__name__}, not a state_dict")
    if "state_dict" not in blob:
        if blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            blob = {"state_dict": blob}
        else:
            raise LandscapeError(f"checkpoint {path} holds no 'state_dict'")
    blob["state_dict"] = {re.sub(r"^module\.", "", k): v for k, v in blob["state_dict"].items()}
    return blob


def infer_architecture(state_dict: dict) -> tuple[str, int, float] | None:
    """(arch, classes, width) read off a state_dict's keys and shapes, or None if unknown."""
    if "fc.weight" in state_dict and "conv1.weight" in state_dict:
        blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"layer1\.(\d+)\.", k))}
        if not blocks:
            return None
        width = _width(state_dict["conv1.weight"].shape[0], 16)
        return f"resnet{6 * (max(blocks) + 1) + 2}", state_dict["fc.weight"].shape[0], width
    if "classifier.weight" in state_dict and "features.0.weight" in state_dict:
        convs = sum(1 for k, v in state_dict.items() if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4)
        if convs == 16:
            width = _width(state_dict["features.0.weight"].shape[0], 64)
            return "vgg19_bn", state_dict["classifier.weight"].shape[0], width
    return None


def _width(channels: int, base: int) -> float:
    """The width multiplier of a first layer with ``channels`` where width 1 has ``base``."""
    return channels // base if channels % base == 0 else channels / base


def _describe(arch, classes, width) -> str:
    return f"{arch} with {classes} classes" + (f" (width {width})" if width != 1 else "")


def model_from_checkpoint(blob: dict, arch: str | None = None, num_classes: int | None = None,
                          width: float | None = None, source: str = "checkpoint") -> tuple[nn.Module, dict]:
    """Build the checkpoint's network and load its weights; complain, naming both, on a mismatch.

    Returns (model, info) where info holds arch, num_classes, width and epoch.
    """
    state = blob["state_dict"]
    found = (blob["arch"], blob["num_classes"], blob.get("width", 1)) if blob.get("format") == FORMAT \
        else infer_architecture(state)
    want_arch = arch or (found[0] if found else None)
    if want_arch is None:
        raise LandscapeError(f"{source}: cannot tell its architecture from its keys; pass --arch")
    want_classes = num_classes or (found[1] if found else 10)
    want_width = width or (found[2] if found else 1)
    if found and (found[0], found[1], found[2]) != (want_arch, want_classes, want_width):
        raise LandscapeError(f"{source} holds {_describe(*found)}, but "
                             f"{_describe(want_arch, want_classes, want_width)} was asked for")
    model = build_model(want_arch, want_classes, want_width)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = str(exc).split("\n\t")[1].strip() if "\n\t" in str(exc) else str(exc)
        guess = f"; it looks like {_describe(*found)}" if found else ""
        raise LandscapeError(f"{source} does not fit {_describe(want_arch, want_classes, want_width)}"
                             f" ({detail[:200]}){guess}") from None
    epoch = blob.get("epoch")
    return model, {"arch": want_arch, "num_classes": want_classes, "width": want_width,
                   "epoch": int(epoch) if isinstance(epoch, (int, float)) else None}


def load_model(path: str | Path, arch: str | None = None, num_classes: int | None = None,
               width: float | None = None) -> tuple[nn.Module, dict, dict]:
    """(model, info, raw checkpoint) from a checkpoint file."""
    blob = read_checkpoint(path)
    model, info = model_from_checkpoint(blob, arch, num_classes, width, source=f"checkpoint {path}")
    return model, info, blob


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) → sha256, this process


def fingerprint(path: str | Path) -> str:
    """The sha256 of a checkpoint file's content: what analysis keys hold, so that a file replaced
    at the same path (a retrain, another model copied over it) is never taken for the old one.

    Cached by (path, size, mtime_ns) within the process: a file is hashed once per change.
    """
    import hashlib

    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise LandscapeError(f"checkpoint {path} cannot be read ({exc.strerror or exc})") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


def checkpoint_classes(path: str | Path) -> int | None:
    """The number of outputs a checkpoint's network has, read from its metadata or its last layer's
    shape without loading the weights (memory-mapped); None when the file does not tell."""
    blob = None
    for mmap in (True, False):  # files in torch's legacy (non-zip) format cannot be memory-mapped
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception:
            continue  # a damaged file is reported, with its reason, when it is loaded
    if not isinstance(blob, dict):
        return None
    if blob.get("format") == FORMAT and isinstance(blob.get("num_classes"), int):
        return blob["num_classes"]
    state = blob.get("state_dict", blob)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    found = infer_architecture({re.sub(r"^module\.", "", k): v for k, v in state.items()})
    return int(found[1]) if found else None
