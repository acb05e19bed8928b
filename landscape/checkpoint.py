"""Checkpoints: our own format (model + optimizer + metadata) and external state_dicts.

Ours is a plain dict of tensors and JSON-like values, loadable with
``torch.load(weights_only=True)``. External checkpoints (bearpaw/pytorch-classification's
``{'state_dict': ..., 'epoch': ...}``, Lightning's, ``{'model'|'net'|'model_state_dict': ...}``,
a bare state_dict, or a ``.safetensors`` file; keys possibly prefixed ``module.`` by
DataParallel) load when the architecture is given or can be read off the keys, or into the
user's own network (``ModelFactory``: ``--model pkg.mod:fn`` or ``path/file.py:fn``).
"""

from __future__ import annotations

import re
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import LandscapeError
from .models import build_model
from .results import atomic_torch_save, safe_torch_load

FORMAT = "landscape-checkpoint"
VERSION = 1
STATE_KEYS = ("model", "net", "model_state_dict")  # where other training scripts keep the weights


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
    if str(path).endswith(".safetensors"):
        return read_safetensors(path)
    blob = safe_torch_load(Path(path), "checkpoint")
    if not isinstance(blob, dict):
        raise LandscapeError(f"checkpoint {path} holds a {type(blob).__name__}, not a state_dict")
    if "state_dict" not in blob:
        held = [k for k in STATE_KEYS if isinstance(blob.get(k), dict) and blob[k]
                and all(isinstance(v, torch.Tensor) for v in blob[k].values())]
        if held:
            blob = {**blob, "state_dict": blob[held[0]]}
        elif blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            blob = {"state_dict": blob}
        else:
            raise LandscapeError(f"checkpoint {path} holds no 'state_dict' (nor "
                                 f"{', '.join(repr(k) for k in STATE_KEYS)}, nor is it a dict of tensors)")
    blob["state_dict"] = {re.sub(r"^module\.", "", k): v for k, v in blob["state_dict"].items()}
    return blob


def load_error_detail(exc: RuntimeError) -> str:
    """The first problem ``load_state_dict`` names (a missing key, a size mismatch), on one line."""
    return str(exc).split("\n\t")[1].strip() if "\n\t" in str(exc) else str(exc).strip()


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
        detail = load_error_detail(exc)
        guess = f"; it looks like {_describe(*found)}" if found else ""
        raise LandscapeError(f"{source} does not fit {_describe(want_arch, want_classes, want_width)}"
                             f" ({detail[:200]}){guess}") from None
    epoch = blob.get("epoch")
    return model, {"arch": want_arch, "num_classes": want_classes, "width": want_width,
                   "epoch": int(epoch) if isinstance(epoch, (int, float)) else None}


def load_model(path: str | Path, arch: "str | ModelFactory | None" = None, num_classes: int | None = None,
               width: float | None = None) -> tuple[nn.Module, dict, dict]:
    """(model, info, raw checkpoint) from a checkpoint file: a built-in ``arch`` or the user's network."""
    if isinstance(arch, ModelFactory):
        return load_user_model(path, arch)
    blob = read_checkpoint(path)
    model, info = model_from_checkpoint(blob, arch, num_classes, width, source=f"checkpoint {path}")
    return model, info, blob


# ---------------------------------------------------------------- the user's own network and files

def read_safetensors(path: str | Path) -> dict:
    """A ``.safetensors`` file as {'state_dict', 'epoch', 'metadata'} (epoch from its metadata, if any)."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise LandscapeError(f"reading {path} needs the safetensors package: "
                             f"pip install 'landscape-geometry[safetensors]'") from None
    if not Path(path).is_file():
        raise LandscapeError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors reports a damaged header or data in several ways
        raise LandscapeError(f"checkpoint {path} is not a readable safetensors file "
                             f"({str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})"
                             ) from None
    epoch = metadata.get("epoch", "")
    return {"state_dict": state, "epoch": int(epoch) if epoch.strip().isdigit() else None, "metadata": metadata}


@dataclass
class ModelFactory:
    """The user's network: a callable (``pkg.mod:fn`` or ``path/file.py:fn``) returning an ``nn.Module``."""

    spec: str                       # where the callable comes from, as given
    kwargs: dict = field(default_factory=dict)
    fn: Callable[..., nn.Module] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, model: "str | Callable[..., nn.Module] | ModelFactory", kwargs: dict | None = None) -> "ModelFactory":
        """A factory from a ``MODULE:CALLABLE`` / ``FILE.py:CALLABLE`` text, or from the callable itself."""
        if isinstance(model, ModelFactory):
            return model
        if isinstance(model, str):
            return cls(model, dict(kwargs or {}), import_callable(model))
        if not callable(model):
            raise LandscapeError(f"the model must be a callable returning an nn.Module, got {type(model).__name__}")
        name = f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', type(model).__name__)}"
        return cls(name, dict(kwargs or {}), model)

    @property
    def name(self) -> str:
        """What results call the network: the callable (a file by its name only) and its keyword arguments."""
        module, _, attr = self.spec.rpartition(":")
        where = f"{Path(module).name}:{attr}" if _is_file_spec(module) else self.spec
        return where + (json.dumps(self.kwargs, sort_keys=True) if self.kwargs else "")

    def build(self) -> nn.Module:
        """A fresh network; a one-line error if the call fails or returns something else."""
        try:
            model = self.fn(**self.kwargs)
        except Exception as exc:
            raise LandscapeError(f"--model {self.spec} with --model-kwargs {json.dumps(self.kwargs)} failed: "
                                 f"{type(exc).__name__}: {_first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"--model {self.spec} returned a {type(model).__name__}, not a torch.nn.Module")
        return model


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _is_file_spec(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


_FILE_MODULES: dict[Path, object] = {}  # a model file is executed once per process


def _import_file(path: Path):
    """The module defined by a Python file (its folder importable while it runs)."""
    path = path.expanduser().resolve()
    if path in _FILE_MODULES:
        return _FILE_MODULES[path]
    if not path.is_file():
        raise LandscapeError(f"--model: file {path} does not exist")
    name = f"landscape_user_model_{len(_FILE_MODULES)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside the file look themselves up here
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(path.parent))
    _FILE_MODULES[path] = module
    return module


def _import_module(name: str):
    """``importlib.import_module`` with the working directory importable (as ``python -m`` would have it)."""
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(cwd)


def import_callable(spec: str) -> Callable:
    """The callable named by ``pkg.mod:fn`` or ``path/to/file.py:fn`` (``fn`` may be dotted: ``Class.build``)."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise LandscapeError(f"--model {spec!r}: expected MODULE:CALLABLE or FILE.py:CALLABLE")
    try:
        found = _import_file(Path(module)) if _is_file_spec(module) else _import_module(module)
    except LandscapeError:
        raise
    except Exception as exc:  # the user's file may fail in any way while it runs
        raise LandscapeError(f"--model {spec}: importing {module} failed: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from None
    for part in attr.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise LandscapeError(f"--model {spec}: {module} has no callable {attr!r}")
    return found


KEY_PREFIXES = ("module.", "model.", "net.", "_orig_mod.")  # DataParallel, Lightning, wrappers, torch.compile


def fit_state_dict(state: dict, expected: set[str]) -> dict:
    """``state`` with wrapper prefixes removed (keeping the keys that had them) while that matches more keys."""
    current = state
    for _ in range(len(KEY_PREFIXES)):
        if expected <= current.keys():
            break
        candidates = [{k[len(p):]: v for k, v in current.items() if k.startswith(p)} for p in KEY_PREFIXES]
        best = max(candidates, key=lambda c: len(expected & c.keys()))
        if len(expected & best.keys()) <= len(expected & current.keys()):
            break
        current = best
    return current


def load_user_model(path: str | Path, factory: ModelFactory) -> tuple[nn.Module, dict, dict]:
    """(model, info, raw checkpoint): the user's network with a checkpoint's weights, strictly."""
    blob = read_checkpoint(path)
    model = factory.build()
    state = fit_state_dict(blob["state_dict"], set(model.state_dict()))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LandscapeError(f"checkpoint {path} does not fit {factory.name} "
                             f"({load_error_detail(exc)[:200]})") from None
    epoch = blob.get("epoch")
    return model, {"arch": factory.name, "model": factory.spec, "model_kwargs": factory.kwargs,
                   "epoch": int(epoch) if isinstance(epoch, (int, float)) else None}, blob


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt", ".safetensors", ".bin")


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def epoch_in_name(path: Path) -> int | None:
    """The epoch a file name states: ``epoch=3-step=120.ckpt`` → 3, ``ckpt-12.pth`` → 12, else None."""
    stem = path.name[:-len(next(s for s in CHECKPOINT_SUFFIXES if path.name.endswith(s)))] \
        if path.name.endswith(CHECKPOINT_SUFFIXES) else path.stem
    said = re.search(r"epoch[=_\-]?(\d+)", stem, re.IGNORECASE)
    numbers = re.findall(r"\d+", stem)
    return int(said.group(1)) if said else int(numbers[-1]) if numbers else None


def checkpoint_files(folder: str | Path, echo=print) -> dict[int, Path]:
    """{epoch: file} of a folder of checkpoints: the epoch a name states, else the one the file records,
    else (when some file has neither, or two share one) the files' order. A recorded epoch that repeats
    a named file's (``last.pt`` beside ``epoch_0040.pt``) is left out."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(CHECKPOINT_SUFFIXES)),
                   key=_natural)
    if not files:
        raise LandscapeError(f"{folder} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
    named = {p: epoch_in_name(p) for p in files}
    found = {p: e if e is not None else read_checkpoint(p).get("epoch") for p, e in named.items()}
    duplicates = [p for p in files if named[p] is None and found[p] is not None and found[p] in named.values()]
    for p in duplicates:
        echo(f"skipping {p.name}: it records epoch {found[p]}, which {folder.name}/ holds under its own name")
        files.remove(p)
    epochs = [found[p] for p in files]
    if any(not isinstance(e, int) or isinstance(e, bool) for e in epochs) or len(set(epochs)) < len(epochs):
        echo(f"epochs of {folder}: the files' order (not every name or file states a distinct epoch)")
        return {i: p for i, p in enumerate(files)}
    return dict(sorted(zip(epochs, files)))

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
