"""The paper's training recipe with checkpoints at the epochs the analysis needs, and resume.

SGD (momentum 0.9, lr 0.1, x0.1 at epochs 81 and 122, 164 epochs, batch 128, weight decay
1e-4 for ResNets / 5e-4 for VGG), pad-4 random crops and flips done on whole batches on the
device. Each epoch's shuffle and augmentation come from a generator seeded by (seed, epoch),
so a run resumed from its last checkpoint ends with exactly the weights of an uninterrupted one.

Under torchrun the same loop runs on every rank (see ``ddp``): each takes its part of every
global batch; rank 0 alone decides, resumes and writes (the other ranks write into a scratch
folder that is deleted), and records the layout in ``parallel.jsonl``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from .data import Dataset, add_label_noise, augment, balanced_subset, draw_augmentation, normalize
from .errors import LandscapeError
from .models import build_model, check_architecture, check_width, parameter_groups, select_parameters
from .objective import Objective, exact_bn_statistics, per_example_loss
from .trajectory import SharpnessTracker
from .results import (RunDir, append_jsonl, atomic_copy, atomic_torch_save, atomic_write_json, read_jsonl,
                      read_labels, read_run_config, run_lock, user_entries)

from .ddp import Parallel
from .runtime import Runtime
from .versions import versions
from .recipe import (PAPER_BATCH_SIZE, PAPER_EPOCHS, PAPER_GAMMA, PAPER_LR, PAPER_MILESTONES, PAPER_MOMENTUM,
                     PAPER_SAVE_AT, paper_weight_decay, scaled_epoch)
from .settings import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_PARAMETERS


def _above_bars(echo):
    """``echo`` printing above the progress bars (tqdm clears and redraws them), not onto their line."""
    from tqdm import tqdm

    def write(*args, **kwargs):
        with tqdm.external_write_mode():
            echo(*args, **kwargs)

    return write


def _silent(*args, **kwargs) -> None:
    """The echo of ranks other than 0: one rank speaks for the job."""


class TrainingDiverged(LandscapeError):
    """The loss became NaN or infinite."""


TRAIN_LOSSES = ("cross_entropy", "mse")
SHARPNESS_LANCZOS_STEPS = 8  # products per sharpness estimate, warm-started from the previous eigenvector


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored as config.json in the run directory."""

    arch: str
    dataset: str
    width: float = 1  # channel multiplier; fractions (0.25) make small networks
    epochs: int = PAPER_EPOCHS
    lr: float = PAPER_LR
    momentum: float = PAPER_MOMENTUM
    milestones: list[float] | None = None  # epochs, or fractions of `epochs` if all < 1
    gamma: float = PAPER_GAMMA
    weight_decay: float | None = None  # None: recipe.paper_weight_decay (1e-4 ResNets, 5e-4 VGG)
    batch_size: int = PAPER_BATCH_SIZE
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    label_noise: float = 0.0
    augment: bool = True  # the recipe's pad-4 crop + flip; off lets a small subset be fitted exactly
    train_params: str = "all"
    save_at: list[int] | None = None  # None: the paper's epochs, scaled to `epochs`
    track_every: int = 0
    track_subset: int = 512
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    loss: str = "cross_entropy"  # or 'mse': ½‖f(x) − y‖² (one-hot y for class labels), the theorem's ℓ2 loss
    stop_at_loss: float | None = None  # stop after the first epoch whose training loss is at most this
    track_sharpness_every: int = 0  # λ_max on the tracked examples every this many steps (0: never)
    sync_bn: bool = False  # under torchrun: batch norm over the global batch, not each rank's part

    def resolved(self) -> "TrainConfig":
        """A copy with every default filled in and checked."""
        c = dataclasses.replace(self)
        _check_int("--epochs", c.epochs, 1, MAX_EPOCHS)
        _check_int("--batch-size", c.batch_size, 1, MAX_BATCH_SIZE)
        c.width = check_width(c.arch, c.width)
        _check_int("--seed", c.seed, 0)
        for name, value in (("--train-subset", c.train_subset), ("--test-subset", c.test_subset)):
            if value is not None:
                _check_int(name, value, 1)
        _check_int("--track-every", c.track_every, 0)
        _check_int("--track-sharpness-every", c.track_sharpness_every, 0)
        if c.loss not in TRAIN_LOSSES:
            raise LandscapeError(f"--loss must be one of {', '.join(TRAIN_LOSSES)}, got {c.loss!r}")
        if c.stop_at_loss is not None:
            _check_number("--stop-at-loss", c.stop_at_loss, 0.0)
        _check_int("--track-subset", c.track_subset, 1)
        if not (_is_number(c.label_noise) and 0.0 <= c.label_noise < 1.0):
            raise LandscapeError(f"label noise must be in [0, 1), got {c.label_noise}")
        _check_number("--lr", c.lr, 0.0, strict=True)
        _check_number("--momentum", c.momentum, 0.0, below=1.0)
        _check_number("gamma", c.gamma, 0.0, strict=True)
        if c.weight_decay is not None:
            _check_number("--wd", c.weight_decay, 0.0)
        for m in c.milestones or []:
            _check_number("--milestones", m, 0.0, strict=True)
        for e in c.save_at or []:
            _check_int("--save-at", e, 0)
        beyond = [e for e in c.save_at or [] if e > c.epochs]
        if beyond:
            raise LandscapeError(f"--save-at {beyond[0]} is beyond --epochs {c.epochs}: a run saves epochs "
                                 f"0 to {c.epochs} only")
        if c.train_params not in ("all", "hidden"):
            raise LandscapeError(f"--train must be 'all' or 'hidden', got {c.train_params!r}")
        if c.weight_decay is None:
            c.weight_decay = paper_weight_decay(c.arch)
        if c.milestones is None:
            c.milestones = [m / PAPER_EPOCHS for m in PAPER_MILESTONES] if c.epochs != PAPER_EPOCHS \
                else list(PAPER_MILESTONES)
        if c.milestones and all(0 < m < 1 for m in c.milestones):
            c.milestones = [max(1, round(m * c.epochs)) for m in c.milestones]
        c.milestones = sorted(int(m) for m in c.milestones)
        if c.save_at is None:
            c.save_at = sorted({scaled_epoch(e, c.epochs) for e in PAPER_SAVE_AT})
        c.save_at = sorted({int(e) for e in c.save_at if 0 <= e <= c.epochs} | {c.epochs})
        return c

    def lr_at(self, epoch: int) -> float:
        """Learning rate of (1-based) epoch: x gamma after each milestone epoch."""
        return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch > m)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(name: str, value, low: float, strict: bool = False, below: float | None = None) -> None:
    """``value`` must be a finite number ≥ low (> low if strict) and < below."""
    ok = _is_number(value) and (value > low if strict else value >= low) and (below is None or value < below)
    if not ok:
        bound = f"{'>' if strict else '≥'} {low:g}" + (f" and < {below:g}" if below is not None else "")
        raise LandscapeError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LandscapeError(f"{name} must be at least {low} (a whole number), got {value!r}")
    if high is not None and value > high:
        raise LandscapeError(f"{name} must be at most {high:,}, got {value:,}")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@dataclass
class TrainingData:
    """The tensors a run trains and evaluates on, after subset and label noise."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_indices: torch.Tensor
    mean: tuple
    std: tuple
    num_classes: int
    classes: list
    provenance: dict = dataclasses.field(default_factory=dict)  # how a generated dataset was made


def prepare_data(dataset: Dataset, config: TrainConfig) -> TrainingData:
    if config.label_noise > 0 and dataset.num_classes < 2:
        raise LandscapeError(f"label noise needs at least two classes; {config.dataset} has {dataset.num_classes}")
    idx = balanced_subset(dataset.train_labels, config.train_subset, config.seed)
    labels = add_label_noise(dataset.train_labels[idx], config.label_noise, dataset.num_classes, config.seed)
    test_idx = balanced_subset(dataset.test_labels, config.test_subset, config.seed + 1)
    return TrainingData(dataset.train_images[idx], labels, dataset.test_images[test_idx],
                        dataset.test_labels[test_idx], idx, dataset.mean, dataset.std,
                        dataset.num_classes, dataset.classes, dict(getattr(dataset, "provenance", {}) or {}))


def _check_resume(run: RunDir, config: TrainConfig, overrides: dict) -> TrainConfig:
    """The stored config of the run, after checking the given options agree with it."""
    stored = read_run_config(run.config)["train"]
    if not isinstance(stored, dict):
        raise LandscapeError(f"{run.path} holds the analysis of an external checkpoint, not a training run")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        stored_config = TrainConfig(**{k: v for k, v in stored.items() if k in known})
    except TypeError as exc:
        raise LandscapeError(f"{run.config} is not a complete training configuration ({exc})") from None
    try:
        stored_config.resolved()
    except LandscapeError as exc:
        raise LandscapeError(f"{run.config} holds a setting no run can continue with: {exc}") from None
    # Compare settings after resolving them the way the run did, so that repeating the original
    # command (e.g. --milestones 0.5 or --save-at 5, stored resolved as epochs) is accepted.
    given = {k: v for k, v in overrides.items() if v is not None and k in known}
    asked = dataclasses.replace(stored_config, **given).resolved()
    for key, value in given.items():
        if getattr(asked, key) != stored.get(key):
            raise LandscapeError(f"{run.path} was trained with {key}={stored.get(key)!r}, not {value!r}; "
                                 f"resume with the run's own settings")
    return stored_config


BN_CALIBRATION_IMAGES = 2048


def calibrate_batchnorm(model: nn.Module, data: TrainingData, device, seed: int) -> int:
    """Give a freshly initialized network the running statistics of its own activations.

    At initialization the running statistics are PyTorch's defaults (mean 0, variance 1), so
    eval-mode batch norm is the identity and F(θ_0) would describe a different network. They
    are estimated here over a fixed balanced subset of training images (no augmentation);
    the weights are untouched, and training (which uses batch statistics) is unaffected.
    """
    idx = balanced_subset(data.train_labels, min(BN_CALIBRATION_IMAGES, len(data.train_labels)), seed + 3)
    objective = Objective(model, data.train_images[idx], data.train_labels[idx], mean=data.mean,
                          std=data.std, bn="recompute", device=device)
    with torch.no_grad():
        for name, value in objective.recomputed_buffers().items():
            model.get_buffer(name).copy_(value)
    return len(idx)


def _evaluate(model: nn.Module, images, labels, data: TrainingData, device, loss: str = "cross_entropy") -> tuple[float, float]:
    """(loss, accuracy) of the model as it is (eval mode, its running statistics)."""
    objective = Objective(model, images, labels, mean=data.mean, std=data.std, device=device, loss=loss,
                          bn="frozen")
    return objective.evaluate()


TRACK_BN_POLICY = "frozen (statistics of θ on the tracked examples)"  # what track rows say; readers match it


def _tracked_objective(model, data: TrainingData, track_idx, device, loss: str = "cross_entropy") -> Objective:
    """F on the tracked examples, with the batch-norm statistics of θ on them.

    The running averages lag the weights while the learning rate is large, so they would make F
    the loss of a different network; the statistics are recomputed here as in ``analyze``.
    """
    images = data.train_images[track_idx]
    at_theta = copy.deepcopy(model)
    exact_bn_statistics(at_theta, _channels_last(normalize(images.to(device), data.mean, data.std)))
    return Objective(at_theta, images, data.train_labels[track_idx], mean=data.mean, std=data.std,
                     device=device, loss=loss, bn="frozen")


def _track(model, data: TrainingData, track_idx, hidden: list[str], device, loss: str = "cross_entropy") -> dict:
    """F and ‖∇F‖² (all and hidden parameters) on the tracked examples, statistics of θ."""
    objective = _tracked_objective(model, data, track_idx, device, loss)
    loss, grad = objective.value_and_grad()
    norms = objective.layer_norms(grad)
    return {"F": loss, "grad_sq": float(grad.pow(2).sum()),
            "grad_sq_hidden": sum(norms[n] ** 2 for n in hidden)}


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """Image batches (N×C×H×W) in channels_last; other inputs (synthetic vectors) as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def check_trainable(dataset: Dataset, config: TrainConfig) -> None:
    """Regression targets need the ℓ2 loss, and only images are augmented: refuse the rest."""
    if dataset.train_labels.is_floating_point() and config.loss != "mse":
        raise LandscapeError(f"{config.dataset} has regression targets: train them with --loss mse")
    if config.augment and dataset.train_images.dim() != 4:
        raise LandscapeError(f"{config.dataset} holds vectors, not images: pass --no-augment "
                             f"(the recipe's crop and flip are for images)")


def training_autocast(device: torch.device | str, precision: str = "auto") -> torch.autocast:
    """The training loop's autocast: bf16 on CUDA for 'auto'/'bf16', disabled (fp32) otherwise."""
    device = torch.device(device)
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, augmentation, mean, std,
               autocast: torch.autocast, loss_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a uint8 NCHW batch already on the device.

    Augments the whole batch (``augmentation``: a generator, or the batch's slice of an
    epoch's ``draw_augmentation``; None: no augmentation), standardizes it, runs it in
    channels_last under ``autocast``, takes the optimizer step on the batch mean of ``loss_fn``
    (a per-example loss; default cross-entropy). Returns (loss, number of correct predictions;
    0 for regression targets) as device tensors, without synchronizing.
    """
    x = _channels_last(normalize(augment(images, augmentation) if augmentation is not None else images, mean, std))
    with autocast:
        out = model(x)
        loss = (loss_fn(out.float(), labels).mean() if loss_fn is not None
                else nn.functional.cross_entropy(out.float(), labels))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    correct = (out.argmax(1) == labels).sum() if not labels.is_floating_point() else torch.zeros((), dtype=torch.int64)
    return loss.detach(), correct


@contextmanager
def deterministic_cudnn(device: torch.device | str):
    """On CUDA, restrict cuDNN to deterministic algorithms (and no autotuning) meanwhile.

    Without this, two identical fp32 runs on CUDA end with different weights (some cuDNN
    backward algorithms accumulate with atomics), so a resumed run could not match an
    uninterrupted one. The previous settings are restored afterwards.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def train(config: TrainConfig, out: str | Path, runtime: Runtime | None = None, *, resume: bool = False,
          overrides: dict | None = None, force: bool = False, tensorboard: str | Path | None = None) -> RunDir:
    """Train (or resume) a run in ``out`` with ``runtime``'s data, device and messages (default: ``Runtime()``);
    returns the run directory.

    ``out`` must be new, empty, or hold a landscape run (then ``resume`` continues it); a folder
    holding anything else is refused unless ``force``. The folder is held by one writer at a time.
    ``tensorboard``: a folder for TensorBoard scalars (see ``TensorBoard``).
    """
    runtime = runtime or Runtime()
    with deterministic_cudnn(runtime.device):
        return _train(config, out, runtime, resume=resume, overrides=overrides, force=force,
                      tensorboard=tensorboard)


def _check_folder(run: RunDir, config: TrainConfig, resume: bool, force: bool) -> bool:
    """Whether ``run`` already holds a run; refuses folders a new or resumed run must not touch."""
    if run.path.exists() and not run.path.is_dir():
        raise LandscapeError(f"{run.path} is a file, not a folder")
    exists = run.is_run()  # a foreign config.json raises here
    if exists and not resume:
        raise LandscapeError(f"{run.path} already holds a run; pass --resume to continue it, "
                             f"or choose another --out")
    if exists and not isinstance(read_run_config(run.config).get("train"), dict):
        raise LandscapeError(f"{run.path} holds the analysis of an external checkpoint, not a training run; "
                             f"choose another --out")
    if resume and not exists and not (config.arch and config.dataset):
        raise LandscapeError(f"{run.path} holds no run to resume; pass --arch and --dataset to start one")
    if not exists and not force:
        entries = user_entries(run.path)
        if entries:
            shown = ", ".join(p.name for p in entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise LandscapeError(f"{run.path} is not empty ({shown}) and holds no landscape run (no config.json); "
                                 f"choose a new or empty folder, or pass --force to write into it")
    if not exists and force:
        clashes = [p for p in run_entries(run) if os.path.lexists(p) and not (p.is_dir() and not p.is_symlink()
                                                                             and not user_entries(p))]
        if clashes:
            shown = ", ".join(p.name for p in clashes[:4]) + (", ..." if len(clashes) > 4 else "")
            raise LandscapeError(f"--force writes a run beside the files in {run.path}, never over them, and "
                                 f"{shown} there would be overwritten or mixed with the run's; move them away "
                                 f"or choose another --out")
    return exists


def run_entries(run: RunDir) -> list[Path]:
    """The names at the top of a run folder that the run, its analysis, figures and report write."""
    return [run.config, run.labels, run.log, run.track, run.sharpness, run.path / "parallel.jsonl", run.checkpoints,
            run.analysis, run.figures, *(run.path / f"report.{ext}" for ext in ("md", "html", "json"))]


def _state_is_finite(state: dict, optimizer_state: dict | None = None) -> bool:
    """Every floating tensor of a state_dict (and an optimizer's state) is finite."""
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    for per_param in ((optimizer_state or {}).get("state") or {}).values():
        tensors += [t for t in per_param.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def checkpoint_is_good(path: Path, epoch: int) -> bool:
    """Whether ``path`` holds epoch ``epoch`` with finite weights, optimizer state and recorded losses."""
    if not path.is_file():
        return False
    try:
        blob = read_checkpoint(path)
    except LandscapeError:
        return False
    metrics = blob.get("metrics") or {}
    losses = [metrics[k] for k in ("train_loss", "test_loss") if k in metrics]
    return (blob.get("epoch") == epoch and _state_is_finite(blob["state_dict"], blob.get("optimizer"))
            and all(_is_number(v) for v in losses))


def _resume_checkpoint(run: RunDir, config: TrainConfig, num_classes: int, echo) -> tuple[Path, dict, nn.Module] | None:
    """The newest intact checkpoint of ``run``: readable, finite, with its epoch; None if there is none.

    last.pt normally; an epoch_N.pt newer than it (a stop between the two writes), or, when
    last.pt is missing, damaged or not finite, the newest epoch_N.pt that is intact. A checkpoint
    of another network is an error, not something to skip.
    """
    def load(path: Path):
        """(path, blob, model) of a checkpoint if it is intact and finite, else None with a message."""
        try:
            blob = read_checkpoint(path)
        except LandscapeError as exc:
            echo(f"skipping {path}: {exc}")
            return None
        if not isinstance(blob.get("epoch"), int) or not isinstance(blob.get("step"), int):
            echo(f"skipping {path}: it records no epoch and step")
            return None
        if not _state_is_finite(blob["state_dict"], blob.get("optimizer")):
            echo(f"skipping {path}: it holds non-finite weights")
            return None
        model, _ = model_from_checkpoint(blob, config.arch, num_classes, config.width, source=f"checkpoint {path}")
        return path, blob, model

    last = load(run.last_checkpoint) if run.last_checkpoint.is_file() else None
    last_epoch = last[1]["epoch"] if last else -1
    epochs = sorted(run.checkpoint_epochs(), reverse=True)
    for epoch in [e for e in epochs if e > last_epoch] + [None] + [e for e in epochs if e < last_epoch]:
        found = last if epoch is None else load(run.checkpoint(epoch))
        if found is not None and epoch is not None and found[1]["epoch"] != epoch:
            echo(f"skipping {found[0]}: it holds epoch {found[1]['epoch']}")
            found = None
        if found is not None:
            return found
    return None


def _train(config: TrainConfig, out: str | Path, runtime: Runtime, *, resume: bool, overrides: dict | None,
           force: bool, tensorboard: str | Path | None = None) -> RunDir:
    """Validate, lock the run folder, then train (see ``train``)."""
    run = RunDir(out)
    device, progress, echo = runtime.torch_device, runtime.progress, runtime.echo
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LandscapeError("--device cuda asked for, but no CUDA device is available")
    group = distributed.current()  # one process unless launched by torchrun; rank 0 reads the folder
    if not group.is_writer:
        progress, echo = False, _silent
    if progress:  # messages above the bars, not onto them
        echo = _above_bars(echo)
    note = echo if progress else _silent  # what the run is doing between bars (--quiet: nothing)
    if tensorboard is not None:
        TensorBoard.require()
    # everything is checked before anything is written
    exists = group.from_rank0(lambda: _check_folder(run, config, resume, force), "checking the run folder")
    if exists:
        config = group.from_rank0(lambda: _check_resume(run, config, overrides or {}), "checking the run's settings")
    config = config.resolved()
    check_architecture(config.arch)  # before the (slow) data load
    note(f"loading {config.dataset} …")
    dataset = runtime.with_(progress=progress).load_dataset(config.dataset)
    check_trainable(dataset, config)
    data = prepare_data(dataset, config)
    note(f"{len(data.train_labels):,} training and {len(data.test_labels):,} test images; "
         f"building {config.arch} at width {config.width:g} …")
    check_model(config, data)  # affordable, and takes the data: before the folder is touched
    with group.on_rank0(lambda: run_lock(run.path, echo, "landscape train")):
        if group.from_rank0(lambda: _check_folder(run, config, resume, force)) != exists:
            raise LandscapeError(f"{run.path} changed while this run was starting; run the command again")
        _train_locked(run, config, data, device, exists, progress, echo,
                      location=runtime.data_location(),
                      tensorboard=tensorboard if group.is_writer else None)
    return run


def check_model(config: TrainConfig, data: TrainingData) -> None:
    """Refuse, in one line, a network too large to train or one that does not take the data.

    Parameters are counted on the meta device (no memory); then one training example goes through
    the built network and its loss, so an input size or class count that does not fit fails here,
    before the run folder is created, and not as a shape error inside the first step.
    """
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in build_model(config.arch, data.num_classes, config.width).parameters())
    except RuntimeError:  # a layer too large for torch to describe (its size overflows)
        count = math.inf
    if count > MAX_PARAMETERS:
        size = (f"{count:,} parameters (about {count * 12 / 1e9:,.0f} GB for weights, gradients and momentum)"
                if math.isfinite(count) else "more parameters than torch can allocate")
        raise LandscapeError(f"{config.arch} at width {config.width:g} has {size}; the limit is "
                             f"{MAX_PARAMETERS:,}: choose a smaller --width")
    model = build_model(config.arch, data.num_classes, config.width).eval()
    x = data.train_images[:1]
    loss_fn, _ = per_example_loss(config.loss)
    try:
        with torch.no_grad():
            loss_fn(model(_channels_last(normalize(x, data.mean, data.std))).float(), data.train_labels[:1])
    except (RuntimeError, IndexError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        family, arch = check_architecture(config.arch)
        hint = (f"--arch mlp{arch['depth']}_d{x[0].numel()}" if family == "mlp" else "an architecture for this data")
        raise LandscapeError(f"{config.arch} does not fit {config.dataset}, whose examples have shape "
                             f"{tuple(x.shape[1:])} and {data.num_classes} classes ({first}); choose {hint}") from None


def _train_locked(run: RunDir, config: TrainConfig, data: TrainingData, device: torch.device, exists: bool,
                  progress: bool, echo, location: dict | None = None,
                  tensorboard: str | Path | None = None) -> RunDir:
    """The training run proper, in named steps: resume or start, set up, epochs, checkpoints."""
    if len(torch.unique(data.train_labels)) < 2:
        echo(f"warning: every training label is the same class ({len(data.classes)} class(es) in "
             f"{config.dataset}): the loss reaches 0 and the gradient vanishes, so the analysis has "
             f"no gradient direction to measure")
    group = distributed.current()
    resumed = group.from_rank0(lambda: _resume(run, config, data, echo) if exists else None, "resuming")
    if resumed is not None and resumed.reached_target:
        echo(f"{run.path} already reached its target loss {config.stop_at_loss:g}: nothing to train")
        return run
    with ExitStack() as scratch:
        if not group.is_writer:  # every write of the loop, present or future, lands outside the run
            run = RunDir(scratch.enter_context(tempfile.TemporaryDirectory(prefix=f"landscape-rank{group.rank}-")))
        model = resumed.model if resumed else _start(run, config, data, location)
        training = _Training(run, config, data, device, model, resumed, progress, echo)
        training.board = scratch.enter_context(TensorBoard(tensorboard))
        if group.distributed:
            append_jsonl({"from_epoch": training.epoch, **training.parallel.describe()}, run.path / "parallel.jsonl")
        if resumed is None:
            if progress:
                echo(f"epoch 0: batch-norm statistics and test metrics of the initial network …")
            training.initial_checkpoint()
        _epochs(training, echo)
    return run


def _epochs(training: "_Training", echo) -> None:
    """The epochs left, under one bar with the time remaining; a closing line after the last."""
    from tqdm import tqdm

    config, first, started = training.config, training.epoch, time.perf_counter()
    metrics: dict = {}
    with tqdm(total=config.epochs, initial=first, unit="epoch", desc="training", disable=not training.progress,
              dynamic_ncols=True, position=0, leave=False) as bar:
        for epoch in range(first + 1, config.epochs + 1):
            metrics = training.one_epoch(epoch)
            bar.update(1)
            if metrics.get("reached_target"):
                echo(f"training loss {metrics['train_loss']:.4g} ≤ {config.stop_at_loss:g} after epoch {epoch}: "
                     f"stopped")
                break
    if metrics:
        echo(f"trained epochs {first + 1}–{metrics['epoch']} in {time.perf_counter() - started:.0f} s: "
             f"train loss {metrics['train_loss']:.4f}, test accuracy {metrics['test_acc']:.3f}")


@dataclass
class _Resumed:
    """Where an interrupted run picks up: the epoch and step reached, the model and its checkpoint."""

    epoch: int
    step: int
    model: nn.Module
    blob: dict
    reached_target: bool = False


def _resume(run: RunDir, config: TrainConfig, data: TrainingData, echo) -> _Resumed | None:
    """The newest intact checkpoint of an existing run, with the files a stop left behind repaired;
    None when the folder holds nothing to resume (then the run starts from the beginning)."""
    found = _resume_checkpoint(run, config, data.num_classes, echo)
    if found is None:
        if run.checkpoint_epochs() or run.last_checkpoint.is_file() or read_jsonl(run.log):
            raise LandscapeError(f"{run.path} holds no intact checkpoint to resume from (see above); "
                                 f"start the run again in a new folder")
        echo(f"{run.path} has no checkpoint yet: starting it from the beginning")
        return None
    source, blob, model = found
    epoch, step = int(blob["epoch"]), int(blob["step"])
    saved = read_labels(run.labels)
    if not torch.equal(saved["labels"], data.train_labels):
        raise LandscapeError(f"{run.labels} does not match the labels this configuration gives")
    # re-create what a stop between writes (or a deleted file) left missing at the resumed epoch
    targets = [run.checkpoint(epoch)] if epoch in config.save_at else []
    for target in targets + [run.last_checkpoint]:
        if target != source and (target == run.last_checkpoint or not target.is_file()):
            atomic_copy(source, target)
            if target != run.last_checkpoint:
                echo(f"re-created {target} from {source}")
    lost = [e for e in config.save_at if e < epoch and not run.checkpoint(e).is_file()]
    if lost:
        echo(f"warning: the checkpoint(s) of epoch(s) {lost} are missing and are not re-created "
             f"(that needs training again from before them)")
    # drop log lines of an epoch that was logged but not checkpointed
    for path, key, limit in ((run.log, "epoch", epoch), (run.track, "step", step), (run.sharpness, "step", step)):
        rows = read_jsonl(path)
        if rows:
            kept = [r for r in rows if r[key] <= limit]
            path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    echo(f"resuming {run.path} after epoch {epoch}"
         + (f" (from {source.name})" if source != run.last_checkpoint else ""))
    reached = bool((blob.get("metrics") or {}).get("reached_target"))
    return _Resumed(epoch, step, model, blob, reached)


def _start(run: RunDir, config: TrainConfig, data: TrainingData, location: dict | None = None) -> nn.Module:
    """A new run: the seeded initial model, and config.json (with where its data lives and the code's
    versions) and labels.pt written."""
    torch.manual_seed(config.seed)
    model = build_model(config.arch, data.num_classes, config.width)
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"train": config.to_dict(), "data": {
        "dataset": config.dataset, "classes": data.classes, "num_classes": data.num_classes,
        "train_examples": len(data.train_labels), "test_examples": len(data.test_labels),
        "mean": data.mean, "std": data.std, **({"provenance": data.provenance} if data.provenance else {}),
        **({"location": location} if location else {})}, "versions": versions()},
        run.config)
    atomic_torch_save({"indices": data.train_indices, "labels": data.train_labels}, run.labels)
    return model


class _Training:
    """One run's training state on the device: model, optimizer, data, step; epochs and checkpoints."""

    def __init__(self, run: RunDir, config: TrainConfig, data: TrainingData, device: torch.device,
                 model: nn.Module, resumed: _Resumed | None, progress: bool, echo):
        """Put the model and data on ``device`` and build the optimizer (restored when resuming)."""
        self.run, self.config, self.data, self.device = run, config, data, device
        self.progress, self.echo = progress, echo
        self.epoch, self.step = (resumed.epoch, resumed.step) if resumed else (0, 0)
        self.model = model.to(device, memory_format=torch.channels_last)
        trainable = set(select_parameters(self.model, config.train_params))
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in trainable)
        self.optimizer = torch.optim.SGD([p for n, p in self.model.named_parameters() if n in trainable],
                                         lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        if resumed is not None and resumed.epoch > 0 and resumed.blob.get("optimizer"):
            self.optimizer.load_state_dict(resumed.blob["optimizer"])
        self.autocast = training_autocast(device, config.precision)
        self.loss_fn, _ = per_example_loss(config.loss)
        self.sharpness = SharpnessTracker(config.lr, SHARPNESS_LANCZOS_STEPS, config.seed) \
            if config.track_sharpness_every else None
        self.parallel = Parallel(self.model, device, distributed.current(), config.sync_bn, config.batch_size,
                                 len(data.train_labels))  # one process: the model itself
        self.train_x, self.train_y = data.train_images.to(device), data.train_labels.to(device)
        self.mean = torch.tensor(data.mean, device=device)
        self.std = torch.tensor(data.std, device=device)
        self.hidden = parameter_groups(self.model)["hidden"]
        self.track_idx = balanced_subset(data.train_labels, min(config.track_subset, len(self.train_y)),
                                         config.seed + 2)
        self.meta = dict(arch=config.arch, num_classes=data.num_classes, width=config.width,
                         config=config.to_dict())
        self.last_good = (run.last_checkpoint, self.epoch)
        self.board = TensorBoard(None)  # `train --tensorboard DIR` replaces it

    def _stopped(self, what: str) -> TrainingDiverged:
        """The divergence error, naming the newest checkpoint verified now to be finite."""
        path, epoch = self.last_good
        candidates = [(path, epoch)] + [(self.run.checkpoint(e), e) for e in
                                        sorted(self.run.checkpoint_epochs(), reverse=True) if e <= epoch]
        good = next(((p, e) for p, e in candidates if checkpoint_is_good(p, e)), None)
        where = (f"last good checkpoint: {good[0]} (epoch {good[1]})" if good else
                 "no checkpoint of this run has finite weights and losses")
        return TrainingDiverged(f"{what}; stopped, {where}")

    def require_finite(self, epoch: int) -> None:
        """Refuse to log or save weights (or optimizer state) that became non-finite."""
        if not _state_is_finite(self.model.state_dict(), self.optimizer.state_dict()):
            raise self._stopped(f"the weights became non-finite in epoch {epoch} (the loss stayed finite)")

    def checkpoint(self, epoch: int, metrics: dict, final: bool = False) -> None:
        """Save epoch_N.pt (when scheduled, or ``final``) and then last.pt.

        The scheduled checkpoint first: a stop between the two writes leaves last.pt one epoch
        behind, and resume then starts from the newer epoch_N.pt.
        """
        self.require_finite(epoch)
        run = self.run
        scheduled = epoch in self.config.save_at or final
        for path in ([run.checkpoint(epoch)] if scheduled else []) + [run.last_checkpoint]:
            save_checkpoint(path, self.model, epoch=epoch, step=self.step, metrics=metrics,
                            optimizer=self.optimizer, **self.meta)
        self.last_good = (run.last_checkpoint, epoch)

    def track_sharpness(self, epoch: float, lr: float) -> None:
        """λ_max on the tracked examples (statistics of θ), warm-started Lanczos, beside 2/η and (2+2β)/η."""
        objective = _tracked_objective(self.model, self.data, self.track_idx, self.device, self.config.loss)
        self.sharpness.lr = lr
        record = self.sharpness.update(objective, step=self.step)
        beta = self.config.momentum
        append_jsonl({"step": self.step, "epoch": epoch, "lr": lr, "examples": len(self.track_idx),
                      "lambda_max": record.sharpness, "residual": record.residual, "matvecs": record.matvecs,
                      "limit_gd": 2.0 / lr, "limit_momentum": (2.0 + 2.0 * beta) / lr, "momentum": beta,
                      "bn_policy": TRACK_BN_POLICY, "precision": "fp32"}, self.run.sharpness)
        self.board.add({"sharpness/lambda_max": record.sharpness, "sharpness/limit_gd": 2.0 / lr}, self.step)

    def initial_checkpoint(self) -> None:
        """Epoch 0: batch-norm statistics estimated at initialization, test metrics, checkpoint."""
        calibrated = calibrate_batchnorm(self.model, self.data, self.device, self.config.seed)
        test_loss, test_acc = _evaluate(self.model, self.data.test_images, self.data.test_labels, self.data,
                                        self.device, self.config.loss)
        if not math.isfinite(test_loss):
            raise self._stopped(f"the test loss of the initial network is {test_loss}")
        self.checkpoint(0, {"test_loss": test_loss, "test_acc": test_acc,
                            "bn_statistics": f"estimated at initialization over {calibrated} training images"})
        self.board.add({"test/loss": test_loss, "test/accuracy": test_acc}, 0)  # the tags of EPOCH_TAGS

    def one_epoch(self, epoch: int) -> dict:
        """One pass of SGD over the training set (seeded order and augmentation), the dense track
        every ``track_every`` steps, then the log line and the checkpoint. Returns the metrics."""
        from tqdm import tqdm

        config, device, n = self.config, self.device, len(self.train_y)
        lr = config.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        gen = _epoch_generator(config.seed, epoch)
        order = torch.randperm(n, generator=gen).to(device)
        draws = [t.to(device) for t in draw_augmentation(n, gen)] if config.augment else None
        steps = math.ceil(n / config.batch_size)
        losses = torch.zeros(steps, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        sync_every = 1 if device.type == "cpu" else 25
        self.model.train()
        start, checked = time.perf_counter(), 0
        bar = tqdm(total=n, unit="img", desc=f"epoch {epoch}/{config.epochs}", disable=not self.progress,
                   leave=False, dynamic_ncols=True, position=1)
        for i in range(steps):
            batch = self.parallel.local(i * config.batch_size, min((i + 1) * config.batch_size, n))
            idx = order[batch]
            loss, batch_correct = train_step(self.parallel.net, self.optimizer, self.train_x[idx], self.train_y[idx],
                                             [t[batch] for t in draws] if draws else None,
                                             self.mean, self.std, self.autocast, self.loss_fn)
            self.step += 1
            losses[i] = loss
            correct += batch_correct
            if (i + 1) % sync_every == 0 or i + 1 == steps:
                window = losses[checked: i + 1]
                bad = torch.nonzero(~torch.isfinite(window)).flatten()
                if len(bad):
                    bar.close()
                    first = checked + int(bad[0])
                    raise self._stopped(f"loss became {float(losses[first])} at epoch {epoch}, step {first + 1} "
                                        f"(iteration {self.step - i + first})")
                bar.set_postfix(loss=f"{float(window.mean()):.3f}", lr=f"{lr:g}")
                checked = i + 1
            bar.update(len(idx))
            if config.track_every and self.step % config.track_every == 0:
                row = _track(self.model, self.data, self.track_idx, self.hidden, device, config.loss)
                if not (math.isfinite(row["F"]) and math.isfinite(row["grad_sq"])):
                    raise self._stopped(f"the tracked loss became {row['F']} at step {self.step} (epoch {epoch})")
                append_jsonl({"step": self.step, "epoch": epoch - 1 + (i + 1) / steps, "lr": lr,
                              "examples": len(self.track_idx), "bn_policy": TRACK_BN_POLICY,
                              "precision": "fp32", "param_subset": "all (hidden reported too)", **row},
                             self.run.track)
                self.board.add({f"track/{k}": row[k] for k in ("F", "grad_sq", "grad_sq_hidden")}, self.step)
            if self.sharpness is not None and self.step % config.track_sharpness_every == 0:
                self.track_sharpness(epoch - 1 + (i + 1) / steps, lr)
        bar.set_description(f"epoch {epoch}/{config.epochs}: testing on {len(self.data.test_labels):,} images")
        try:  # the bar stays up while the test set is evaluated
            losses, correct = self.parallel.totals(losses, correct)  # over the global batches
            return self.end_epoch(epoch, lr, float(losses.mean()), correct.item(), time.perf_counter() - start)
        finally:
            bar.close()

    def end_epoch(self, epoch: int, lr: float, train_loss: float, correct: int, seconds: float) -> dict:
        """Check the epoch's weights and losses are finite (else stop: diverged), evaluate on the test
        set, then log, checkpoint and print the epoch. Returns its metrics."""
        config, n = self.config, len(self.train_y)
        self.require_finite(epoch)  # before the epoch is logged or checkpointed
        test_loss, test_acc = _evaluate(self.model, self.data.test_images, self.data.test_labels, self.data,
                                        self.device, config.loss)
        for name, value in (("training loss", train_loss), ("test loss", test_loss)):
            if not math.isfinite(value):  # diverged, even where every step's loss was finite
                raise self._stopped(f"the {name} became {value} in epoch {epoch}")
        train_acc = correct / n if not self.train_y.is_floating_point() else float("nan")
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "test_loss": test_loss, "test_acc": test_acc, "lr": lr, "seconds": seconds,
                   "img_per_s": n / seconds, "step": self.step}
        reached = config.stop_at_loss is not None and metrics["train_loss"] <= config.stop_at_loss
        if reached:
            metrics["reached_target"] = True
        append_jsonl(metrics, self.run.log)
        self.board.add({tag: metrics[key] for key, tag in TensorBoard.EPOCH_TAGS.items()}, epoch)
        self.checkpoint(epoch, metrics, final=reached)
        self.epoch = epoch
        self.echo(f"epoch {epoch}/{config.epochs}  train loss {metrics['train_loss']:.4f} "
                  f"acc {metrics['train_acc']:.3f}  test loss {test_loss:.4f} acc {test_acc:.3f}  "
                  f"lr {lr:g}  {n / seconds:.0f} img/s")
        return metrics


class TensorBoard:
    """Scalars of a run for TensorBoard (`train --tensorboard DIR`): loss, accuracy and lr per epoch
    (step = epoch), the dense F/‖∇F‖² track and the sharpness (step = iteration). Without a folder
    it does nothing. Event files are TensorBoard's own append-only streams, not run results."""

    EPOCH_TAGS = {"train_loss": "train/loss", "train_acc": "train/accuracy", "test_loss": "test/loss",
                  "test_acc": "test/accuracy", "lr": "lr"}  # log.jsonl field → tag

    def __init__(self, folder: str | Path | None):
        self.writer = None
        if folder is not None:
            self.writer = self.require()(log_dir=str(folder))

    @staticmethod
    def require():
        """torch's SummaryWriter, or a one-line error saying how to install tensorboard."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LandscapeError("--tensorboard needs the tensorboard package: "
                                 "pip install 'landscape-geometry[tensorboard]'") from None
        return SummaryWriter

    def add(self, scalars: dict, step: int) -> None:
        """Write each finite number under its tag at ``step``."""
        if self.writer is None:
            return
        for tag, value in scalars.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def __enter__(self) -> "TensorBoard":
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
