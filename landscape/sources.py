"""What an analysis reads: a run's examples, labels and checkpoints, or external checkpoints.

External checkpoints are one file or a folder of them, of a built-in architecture (``--arch``, or
read off the keys) or of the user's own network (a ``ModelFactory``), on a named dataset or on
tensors; the Source builds each checkpoint's network, so the analysis never needs to know which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CHECKPOINT_SUFFIXES, ModelFactory, checkpoint_classes, checkpoint_files, fingerprint, load_model
from .data import Dataset, normalize
from .errors import LandscapeError
from .results import RunDir, atomic_write_json, read_json, read_labels
from .runtime import Runtime
from .versions import versions


@dataclasses.dataclass
class Source:
    """What an analysis reads: the training and test examples, the checkpoints and how they were made."""

    dataset_name: str
    images: torch.Tensor          # the run's training examples (uint8), in the run's order
    labels: torch.Tensor          # their labels as trained on (noisy labels included)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple
    std: tuple
    checkpoints: dict[int, Path]  # epoch → checkpoint file
    arch: str | None              # what results call the network (a built-in name, or the user's callable)
    train_config: dict            # the run's training settings ({} for an external checkpoint)
    model_factory: ModelFactory | None = None  # the user's network; None: the built-in ``arch``
    versions: dict = dataclasses.field(default_factory=versions)  # the code doing the analysis

    def load_model(self, epoch: int) -> tuple[nn.Module, dict, dict]:
        """(model, info, raw checkpoint) of the checkpoint of ``epoch``, whichever network it is."""
        return load_model(self.checkpoints[epoch], self.model_factory or self.arch)

    def fingerprint(self, epoch: int | str) -> str:
        """The sha256 of the checkpoint content a result at ``epoch`` rests on ('' if none).

        ``epoch`` as analysis contexts name it: an epoch, 'A->B' (an interpolation: both ends) or
        'A..B' (the trajectory: every checkpoint from A to B); several files give the sha256 of
        their 'epoch:sha256' lines.
        """
        if isinstance(epoch, int):
            path = self.checkpoints.get(epoch)
            return fingerprint(path) if path is not None else ""
        ends = [int(e) for e in re.findall(r"\d+", str(epoch))]
        if "->" in str(epoch):
            epochs = ends
        elif ".." in str(epoch) and len(ends) == 2:
            epochs = [e for e in sorted(self.checkpoints) if ends[0] <= e <= ends[1]]
        else:
            return ""
        lines = "".join(f"{e}:{self.fingerprint(e)}\n" for e in epochs)
        return hashlib.sha256(lines.encode()).hexdigest()


def cell_folders(path: str | os.PathLike) -> list[Path]:
    """The run folders (cells) directly inside a reproduce or sweep output folder; [] for anything else."""
    path = Path(path)
    if not path.is_dir() or (path / "config.json").is_file():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / "config.json").is_file())


def refuse_cell_folder(path: str | os.PathLike, command: str) -> None:
    """Raise, listing one ``landscape COMMAND CELL`` line per cell, if ``path`` is a folder of runs."""
    cells = cell_folders(path)
    if cells:
        lines = "\n".join(f"  landscape {command} {cell}" for cell in cells)
        if (Path(path) / "report.md").is_file():
            lines += f"\n(their combined report: {Path(path) / 'report.md'})"
        raise LandscapeError(f"{path} holds {len(cells)} runs (a reproduce or sweep output), not one; "
                             f"run the command on each:\n{lines}")


def is_checkpoint_target(path: str | os.PathLike) -> bool:
    """Whether `analyze PATH` reads external checkpoints (a file, or a folder of them that is no run);
    a folder of runs is refused with the command for each."""
    path = Path(path)
    if path.is_file():
        return True
    if not path.is_dir() or (path / "config.json").is_file():
        return False
    refuse_cell_folder(path, "analyze")
    return any(p.is_file() and p.name.endswith(CHECKPOINT_SUFFIXES) for p in path.iterdir())


def with_stored_data(runtime: Runtime, location: dict | None) -> Runtime:
    """``runtime`` reading data from where the run was trained, unless --data-root/--cache-dir or the
    environment (LANDSCAPE_DATA_ROOT, LANDSCAPE_CACHE_DIR) say otherwise."""
    location = location or {}
    changes = {}
    if runtime.data_root is None and not os.environ.get("LANDSCAPE_DATA_ROOT") and location.get("data_root"):
        changes["data_root"] = location["data_root"]
    if runtime.cache_dir is None and not os.environ.get("LANDSCAPE_CACHE_DIR") and location.get("cache_dir"):
        changes["cache_dir"] = location["cache_dir"]
    return runtime.with_(**changes) if changes else runtime

class RunSource(Source):
    """A run directory made by `landscape train`: its data subset, labels and checkpoints."""

    @classmethod
    def load(cls, run: RunDir, runtime: Runtime) -> "RunSource":
        """Read config.json, labels.pt and the checkpoint list; load the run's dataset from where it was trained."""
        if not run.is_run():
            refuse_cell_folder(run.path, "analyze")
            raise LandscapeError(f"{run.path} is not a run directory (no config.json); "
                                 f"train one with `landscape train`, or give a checkpoint file or folder")
        config = read_json(run.config)
        if config.get("train") is None and config.get("external_checkpoint"):
            raise LandscapeError(f"{run.path} holds the analysis of {config['external_checkpoint']}, not a run; "
                                 f"analyze that with --out {run.path} (and its --dataset, --arch or --model)")
        name = config["data"]["dataset"]
        dataset = with_stored_data(runtime, config["data"].get("location")).load_dataset(name)
        saved = read_labels(run.labels)
        checkpoints = {e: run.checkpoint(e) for e in run.checkpoint_epochs()}
        if not checkpoints:
            raise LandscapeError(f"{run.checkpoints} holds no checkpoints")
        classes = config["data"].get("num_classes")
        for path in checkpoints.values():  # a checkpoint of another task would fail deep inside the loss
            found = checkpoint_classes(path)
            if isinstance(classes, int) and found is not None and found != classes:
                raise LandscapeError(f"checkpoint {path} has {found} outputs, but the run's dataset {name} has "
                                     f"{classes} classes: it is not a checkpoint of this run")
        train_config = config.get("train") or {}
        return cls(name, dataset.train_images[saved["indices"]], saved["labels"], dataset.test_images,
                   dataset.test_labels, tuple(config["data"]["mean"]), tuple(config["data"]["std"]),
                   checkpoints, train_config.get("arch"), train_config)


def tensor_dataset(train: tuple, test: tuple | None = None, name: str = "tensors") -> Dataset:
    """A Dataset from (inputs, labels) tensors, and optionally test ones (else the training ones again).

    uint8 images are scaled to [0, 1]; float inputs are used as they are (normalize them yourself).
    """
    images, labels = (torch.as_tensor(t) for t in train)
    test_images, test_labels = (torch.as_tensor(t) for t in test) if test is not None else (images, labels)
    for x, y in ((images, labels), (test_images, test_labels)):
        if x.dim() < 2 or len(x) != len(y) or len(x) == 0:
            raise LandscapeError(f"data: need equal, non-zero numbers of inputs and labels, got "
                                 f"{tuple(x.shape)} inputs and {tuple(y.shape)} labels")
    if labels.is_floating_point():
        classes = [str(i) for i in range(labels.shape[-1] if labels.dim() > 1 else 1)]
    else:
        labels, test_labels = labels.long(), test_labels.long()
        classes = [str(i) for i in range(int(max(labels.max(), test_labels.max())) + 1)]
    channels = images.shape[1] if images.dim() == 4 else 1
    return Dataset(name if test is not None else f"{name} (test = train)", images, labels, test_images,
                   test_labels, classes, (0.0,) * channels, (1.0,) * channels)


def _outputs(model: nn.Module, dataset: Dataset) -> int:
    """How many numbers the network gives per example (one forward of two examples)."""
    x = normalize(dataset.train_images[:2], dataset.mean, dataset.std)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # the user's network may reject the inputs in any way
        raise LandscapeError(f"the network fails on {dataset.name}'s inputs {tuple(x.shape[1:])}: "
                             f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}") from None
    return int(out.reshape(len(x), -1).shape[1])


class CheckpointSource(Source):
    """A checkpoint file or a folder of them (ours, bearpaw's, or the user's network's) on a dataset;
    the results go to ``run``."""

    @classmethod
    def load(cls, path: Path, arch: str | ModelFactory | None, dataset: str | Dataset | None, run: RunDir,
             runtime: Runtime) -> "CheckpointSource":
        """Find the checkpoints, check the first fits the dataset, write ``run``'s config.json once."""
        if dataset is None:
            raise LandscapeError("analyzing a checkpoint file or folder needs --dataset")
        path = Path(path)
        checkpoints = checkpoint_files(path, runtime.echo) if path.is_dir() else None
        model, info, _ = load_model(checkpoints[min(checkpoints)] if checkpoints else path, arch)
        data = runtime.load_dataset(dataset) if isinstance(dataset, str) else dataset
        factory = arch if isinstance(arch, ModelFactory) else None
        classes = _outputs(model, data) if factory else info["num_classes"]
        if classes != data.num_classes:
            raise LandscapeError(f"{'the network gives' if factory else f'checkpoint {path} has'} {classes} "
                                 f"{'outputs per example' if factory else 'classes'}, but {data.name} has "
                                 f"{data.num_classes} classes")
        if not run.config.is_file() and runtime.is_writer:
            atomic_write_json({"train": None, "external_checkpoint": str(path.resolve()), "data": {
                "dataset": data.name, "classes": data.classes, "num_classes": data.num_classes,
                "train_examples": len(data.train_labels), "test_examples": len(data.test_labels),
                "mean": data.mean, "std": data.std}, "model": info, "versions": versions()}, run.config)
        if checkpoints is None:
            checkpoints = {info["epoch"] if info["epoch"] is not None else 0: path}
        return cls(data.name, data.train_images, data.train_labels, data.test_images, data.test_labels,
                   data.mean, data.std, checkpoints, info["arch"], {}, factory)
