#!/usr/bin/env python
"""What each of the paper's networks costs on this machine, to plan a run: one JSON line per network.

For VGG19-BN, ResNet-32 and ResNet-110 (or ``--archs``) on real CIFAR-10 images when they are
there (random images otherwise; the costs do not depend on pixel values):

* ``s_per_epoch``: one epoch of the training loop (``train_step``: the preset's batch size, SGD, no
  augmentation) on ``--epoch-images`` images, from the mean step time after a warm-up;
* ``s_per_hvp``: one Hessian-vector product on ``--hvp-images`` images (the analysis's
  ``Objective``: frozen batch-norm statistics, fp32, forward-over-reverse), and its multiple of a
  gradient pass on the same images;
* ``s_per_surface_point``: one loss evaluation on ``--surface-images`` images (one point of a
  landscape or of an interpolation);
* ``s_per_lanczos_step``: one step of the analysis's eigensolve (``spectrum_ends`` with the preset's
  settings for that network: product, reorthogonalization, residuals and the gradient alignment,
  divided by the products it used);
* ``peak_rss_gb``: the process's peak resident memory after that network (cumulative: the networks
  run in the order given, so the largest first shows its own peak).

    python scripts/bench_networks.py                      # 2 threads, the paper-cpu preset's sizes
    python scripts/bench_networks.py --device cuda --epoch-images 4096 --hvp-images 1024

The ``paper-cpu`` preset's sizes are the defaults, so the numbers multiply directly
into that preset's cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landscape.budget import measure_unit_costs  # noqa: E402
from landscape.curvature import HessianOperator, gradient_alignment, spectrum_ends  # noqa: E402
from landscape.data import balanced_subset, load_dataset  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.models import build_model  # noqa: E402
from landscape.objective import Objective  # noqa: E402
from landscape.recipe import PAPER_BATCH_SIZE, PAPER_LR, PAPER_MOMENTUM, paper_weight_decay  # noqa: E402
from landscape.train import train_step, training_autocast  # noqa: E402


def _images(args, count: int):
    root = args.data_root or os.environ.get("LANDSCAPE_DATA_ROOT") or str(REPO.parent / "shared" / "data")
    try:
        ds = load_dataset(args.dataset, root, args.cache_dir, progress=False)
    except LandscapeError as exc:
        gen = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=gen),
                torch.randint(0, 10, (count,), generator=gen), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26),
                f"random images ({exc})")
    idx = balanced_subset(ds.train_labels, count, seed=0)
    return ds.train_images[idx], ds.train_labels[idx], ds.mean, ds.std, f"{args.dataset} under {root}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_epoch(arch: str, images, labels, mean, std, device, steps: int, batch_size: int, lr: float) -> float:
    """Mean time of ``steps`` training steps (after 2 warm-up steps) × steps per epoch."""
    model = build_model(arch).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=PAPER_MOMENTUM,
                                weight_decay=paper_weight_decay(arch))
    autocast = training_autocast(device)
    x, y = images.to(device), labels.to(device)
    mean_t, std_t = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    bs = min(batch_size, len(y))
    batches = [slice(i, i + bs) for i in range(0, len(y) - bs + 1, bs)]
    for step in range(2):
        train_step(model, optimizer, x[batches[step % len(batches)]], y[batches[step % len(batches)]],
                   None, mean_t, std_t, autocast)
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        b = batches[step % len(batches)]
        train_step(model, optimizer, x[b], y[b], None, mean_t, std_t, autocast)
    _sync(device)
    return (time.perf_counter() - start) / steps * math.ceil(len(y) / bs)


def main() -> None:
    from landscape.reproduce import get_preset

    preset = get_preset("paper-cpu")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="vgg19_bn,resnet32,resnet110")
    parser.add_argument("--dataset", default="folder:cifar10-jpeg")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--epoch-images", type=int, default=preset.train["train_subset"])
    parser.add_argument("--hvp-images", type=int, default=preset.analysis.curvature_subset)
    parser.add_argument("--surface-images", type=int, default=preset.analysis.subset)
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images, labels, mean, std, source = _images(args, max(args.epoch_images, args.hvp_images, args.surface_images))
    print(json.dumps({"images": source, "device": str(device), "threads": torch.get_num_threads(),
                      "epoch_images": args.epoch_images, "hvp_images": args.hvp_images,
                      "surface_images": args.surface_images, "precision": "fp32"}), flush=True)
    for arch in args.archs.split(","):
        train_cfg = preset.train_for(next(c for c in preset.cells if c.arch == arch)) \
            if any(c.arch == arch for c in preset.cells) else preset.train
        epoch_s = seconds_per_epoch(arch, images[: args.epoch_images], labels[: args.epoch_images], mean, std,
                                    device, args.steps, args.batch_size or train_cfg.get("batch_size", PAPER_BATCH_SIZE),
                                    train_cfg.get("lr", PAPER_LR))
        model = build_model(arch).eval()
        curvature = Objective(model, images[: args.hvp_images], labels[: args.hvp_images], mean=mean, std=std,
                              device=device)
        costs = measure_unit_costs(curvature, repeats=2)
        surface = Objective(model, images[: args.surface_images], labels[: args.surface_images], mean=mean,
                            std=std, device=device)
        surface_costs = measure_unit_costs(surface, repeats=2)
        settings = preset.analysis_for(next((c for c in preset.cells if c.arch == arch), preset.cells[0]))
        started = time.perf_counter()
        ends = spectrum_ends(HessianOperator(curvature, curvature.theta0), k_top=max(1, settings.alignment_k),
                             k_bottom=1, tol=settings.curvature_tol, max_basis=settings.curvature_max_basis,
                             max_matvecs=settings.curvature_max_matvecs, measured_top=settings.curvature_top)
        if settings.alignment_k:
            gradient_alignment(curvature.value_and_grad()[1], ends.top[:settings.alignment_k])
        step_s = (time.perf_counter() - started) / ends.top[0].matvecs
        del ends
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(json.dumps({
            "arch": arch, "params": curvature.dim, "s_per_epoch": round(epoch_s, 3),
            "s_per_hvp": round(costs.hvp * args.hvp_images, 3),
            "hvp_x_gradient": round(costs.hvp / costs.gradient, 2),
            "s_per_surface_point": round(surface_costs.forward * args.surface_images, 4),
            "s_per_lanczos_step": round(step_s, 3),
            "peak_rss_gb": round(peak, 2)}), flush=True)


if __name__ == "__main__":
    main()
