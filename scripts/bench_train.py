#!/usr/bin/env python
"""Training throughput of landscape's loop beside a plain torchvision DataLoader loop.

Both train the same network (same initial weights) with SGD at the same batch size on the
same images, and are timed over the same number of steps after a warm-up:

* landscape: the code path of ``landscape.train`` (``train_step``): the images resident on the
  device as a uint8 tensor, pad-4 crop + flip done on whole batches on the device,
  channels_last, bf16 autocast on CUDA (``--precision auto``), deterministic cuDNN, a
  finiteness check of the loss every step on the CPU / every 25 steps on CUDA, as in ``train()``;
* reference: a ``torch.utils.data.DataLoader`` over a dataset of uint8 HWC arrays with per-image
  transforms RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize,
  eager fp32, NCHW (the usual CIFAR recipe, e.g. bearpaw/pytorch-classification).

Usage::

    python scripts/bench_train.py --device cpu --images 1024
    python scripts/bench_train.py --device cuda --images 8192 --steps 50

Images come from ``--dataset`` under ``--data-root`` (default ``LANDSCAPE_DATA_ROOT``, else
``../shared/data`` next to the repository); if that is missing, random images are used
(throughput does not depend on pixel values) and the output says so.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landscape.data import balanced_subset, draw_augmentation, load_dataset  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.models import build_model  # noqa: E402
from reference_data import ArrayDataset  # noqa: E402
from landscape.train import deterministic_cudnn, train_step, training_autocast  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(args) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple, int, str]:
    root = args.data_root or os.environ.get("LANDSCAPE_DATA_ROOT") or str(REPO.parent / "shared" / "data")
    try:
        ds = load_dataset(args.dataset, root, args.cache_dir, progress=False)
    except LandscapeError as exc:
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, 10, (args.images,), generator=gen)
        return images, labels, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 10, f"random images ({exc})"
    idx = balanced_subset(ds.train_labels, min(args.images, len(ds.train_labels)), seed=0)
    return (ds.train_images[idx].contiguous(), ds.train_labels[idx], ds.mean, ds.std, ds.num_classes,
            f"{args.dataset} under {root}")


def _optimizer(model: nn.Module, args) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.wd)


def bench_landscape(model, images, labels, mean, std, device, args, warmup: int, steps: int) -> float:
    """img/s of landscape.train's inner loop (with train()'s deterministic cuDNN on CUDA)."""
    if args.cudnn_benchmark:
        return _bench_landscape(model, images, labels, mean, std, device, args, warmup, steps)
    with deterministic_cudnn(device):
        return _bench_landscape(model, images, labels, mean, std, device, args, warmup, steps)


def _bench_landscape(model, images, labels, mean, std, device, args, warmup: int, steps: int) -> float:
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = _optimizer(model, args)
    autocast = training_autocast(device, args.precision)
    x, y = images.to(device), labels.to(device)
    mean, std = torch.tensor(mean, device=device), torch.tensor(std, device=device)  # as train() does
    n, bs = len(y), args.batch_size
    per_epoch = math.ceil(n / bs)
    sync_every = 1 if device.type == "cpu" else 25
    gen = torch.Generator().manual_seed(1)
    order, losses = None, torch.zeros(per_epoch, device=device)
    done, start, timed_images = 0, None, 0
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        i = step % per_epoch
        if i == 0:  # a new epoch: a new shuffle and the epoch's augmentation draws, as in train()
            order = torch.randperm(n, generator=gen).to(device)
            draws = [t.to(device) for t in draw_augmentation(n, gen)]
        batch = slice(i * bs, (i + 1) * bs)
        idx = order[batch]
        loss, _ = train_step(model, optimizer, x[idx], y[idx], [t[batch] for t in draws], mean, std, autocast)
        losses[i] = loss
        done += 1
        if done % sync_every == 0 and not bool(torch.isfinite(losses[: i + 1]).all()):
            raise RuntimeError("loss became non-finite during the benchmark")
        if step >= warmup:
            timed_images += len(idx)
    _sync(device)
    return timed_images / (time.perf_counter() - start)


def bench_reference(model, images, labels, mean, std, device, args, warmup: int, steps: int) -> float:
    """img/s of a plain DataLoader + per-image transforms + eager fp32 NCHW loop."""
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(mean, std)])
    dataset = ArrayDataset.from_tensors(images, labels, transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(1))
    model = model.to(device).train()
    optimizer = _optimizer(model, args)
    step, start, timed_images = 0, None, 0
    while step < warmup + steps:
        for x, y in loader:
            if step == warmup:
                _sync(device)
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= warmup:
                timed_images += len(y)
            step += 1
            if step == warmup + steps:
                break
    _sync(device)
    return timed_images / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--arch", default="resnet32")
    ap.add_argument("--width", type=int, default=1)
    ap.add_argument("--images", type=int, default=2048, help="training images (a balanced subset)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: one epoch)")
    ap.add_argument("--epochs", type=float, default=None, help="timed epochs (instead of --steps)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, workers)")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                    help="DataLoader workers of the reference loop")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="landscape loop's precision (auto: bf16 autocast on CUDA)")
    ap.add_argument("--dataset", default="folder:cifar10-jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN pick algorithms by timing, in both loops (train() does not: "
                         "it keeps cuDNN deterministic so that resumed runs are exact)")
    ap.add_argument("--only", choices=["landscape", "reference"], default=None)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            ap.error("--device cuda, but no CUDA device is available")
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels, mean, std, classes, source = _images(args)
    n = len(labels)
    per_epoch = math.ceil(n / args.batch_size)
    steps = args.steps or (max(1, round(args.epochs * per_epoch)) if args.epochs else per_epoch)

    torch.manual_seed(0)
    initial = build_model(args.arch, classes, args.width).state_dict()

    def fresh():
        model = build_model(args.arch, classes, args.width)
        model.load_state_dict(initial)
        return model

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device {device} ({name}); {args.arch} width {args.width}; batch {args.batch_size}; "
          f"{n} images from {source}")
    print(f"{steps} timed steps after {args.warmup} warm-up steps; torch {torch.__version__}")
    results = {}
    if args.only in (None, "landscape"):
        precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        results["landscape"] = bench_landscape(fresh(), images, labels, mean, std, device, args,
                                               args.warmup, steps)
        print(f"  landscape loop  (uint8 resident, batched augment on {device.type}, channels_last, "
              f"{precision}):  {results['landscape']:9.1f} img/s", flush=True)
    if args.only in (None, "reference"):
        results["reference"] = bench_reference(fresh(), images, labels, mean, std, device, args,
                                               args.warmup, steps)
        print(f"  reference loop  (DataLoader, {args.workers} workers, per-image PIL transforms, "
              f"fp32 NCHW):  {results['reference']:9.1f} img/s", flush=True)
    if len(results) == 2:
        print(f"  ratio landscape / reference: {results['landscape'] / results['reference']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
