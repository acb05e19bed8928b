"""What an analysis reads: a run's examples, labels and checkpoints, or one external checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import torch

from .checkpoint import checkpoint_classes, fingerprint, load_model
from .errors import LandscapeError
from .results import RunDir, atomic_write_json, read_json, read_labels
from .runtime import Runtime


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
    arch: str | None
    train_config: dict            # the run's training settings ({} for an external checkpoint)

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


class RunSource(Source):
    """A run directory made by `landscape train`: its data subset, labels and checkpoints."""

    @classmethod
    def load(cls, run: RunDir, runtime: Runtime) -> "RunSource":
        """Read config.json, labels.pt and the checkpoint list; load the run's dataset."""
        if not run.is_run():
            raise LandscapeError(f"{run.path} is not a run directory (no config.json); "
                                 f"train one with `landscape train`, or give a checkpoint file")
        config = read_json(run.config)
        name = config["data"]["dataset"]
        dataset = runtime.load_dataset(name)
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


class CheckpointSource(Source):
    """One checkpoint file (ours or bearpaw's) on a named dataset; its results go to ``run``."""

    @classmethod
    def load(cls, path: Path, arch: str | None, dataset_name: str | None, run: RunDir,
             runtime: Runtime) -> "CheckpointSource":
        """Load the checkpoint's metadata and the dataset; write ``run``'s config.json once."""
        if dataset_name is None:
            raise LandscapeError("analyzing a checkpoint file needs --dataset")
        _, info, _ = load_model(path, arch)
        dataset = runtime.load_dataset(dataset_name)
        if info["num_classes"] != dataset.num_classes:
            raise LandscapeError(f"checkpoint {path} has {info['num_classes']} classes, "
                                 f"but {dataset_name} has {dataset.num_classes}")
        if not run.config.is_file() and runtime.is_writer:
            atomic_write_json({"train": None, "external_checkpoint": str(path.resolve()), "data": {
                "dataset": dataset_name, "classes": dataset.classes, "num_classes": dataset.num_classes,
                "train_examples": len(dataset.train_labels), "test_examples": len(dataset.test_labels),
                "mean": dataset.mean, "std": dataset.std}, "model": info}, run.config)
        epoch = info["epoch"] if info["epoch"] is not None else 0
        return cls(dataset_name, dataset.train_images, dataset.train_labels, dataset.test_images,
                   dataset.test_labels, dataset.mean, dataset.std, {epoch: path}, info["arch"], {})
