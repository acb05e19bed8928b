#!/usr/bin/env python
"""Many-point evaluation speed of landscape's Objective.values beside two plain loops.

One run times, on the same network, images, batch size and points θ_k (θ0 plus small
perturbations):

* ours: ``Objective.values(θs)`` (uint8 images resident on the device, batch norm folded into
  the convolutions, channels_last, loss summed on the device in float64);
* (a) bare: a ``torch.no_grad()`` eager fp32 forward loop over a ready, standardized NCHW
  float tensor already on the device, loss summed on the device: the ceiling of a plain
  evaluation loop;
* (b) reference: how existing loss-landscape tools evaluate a point: a ``DataLoader`` over an
  in-memory dataset of uint8 HWC arrays with per-image transforms (PIL ``Image.fromarray`` ->
  ``ToTensor`` -> ``Normalize``), eager fp32, ``criterion(out, y).item() * batch`` and the
  correct count ``.item()`` per batch.

The evaluators take turns point by point, so a change in the machine's load hits them
alike; on the CPU the process's CPU seconds are printed too (on a shared, oversubscribed
machine they are the steadier comparison). It prints points/s and img/s of each, the ratios ours/(a) (goal >= 0.9) and ours/(b) (goal
>= 1.3), F(θ0) from each (they must agree), and whether memory stays flat in the number of
points (peak RSS on the CPU, peak allocated memory on CUDA, after 2 and after 10 points).
On CUDA it also times ``precision='bf16'`` (the surfaces' --surface-precision bf16).

Usage::

    python scripts/bench_objective.py --device cpu
    python scripts/bench_objective.py --device cuda --images 2048 --points 5

BN running statistics are made realistic by a few train-mode forward passes (a cumulative
average over 1,024 training images) before timing, so folding and evaluation see the
statistics of a trained network rather than the initial (0, 1).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landscape.data import balanced_subset, load_dataset, normalize  # noqa: E402
from landscape.models import build_model  # noqa: E402
from reference_data import ArrayDataset  # noqa: E402
from landscape.objective import Objective  # noqa: E402


# ----------------------------------------------------------------------------- shared set-up
def add_common_arguments(ap: argparse.ArgumentParser, images: int) -> None:
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--arch", default="resnet32")
    ap.add_argument("--images", type=int, default=images, help="training images (a balanced subset)")
    ap.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default 128 CPU, 1024 CUDA)")
    ap.add_argument("--workers", type=int, default=None,
                    help="DataLoader workers of the reference loop (default 0 on the CPU, 4 on CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--dataset", default="folder:cifar10-jpeg")
    ap.add_argument("--data-root", default=None,
                    help="folder holding the dataset (default LANDSCAPE_DATA_ROOT, else ../shared/data)")
    ap.add_argument("--cache-dir", default=None,
                    help="decoded-dataset cache (default LANDSCAPE_CACHE_DIR, else /tmp/landscape-cache)")
    ap.add_argument("--seed", type=int, default=0)


def setup(args):
    """(device, dataset, subset indices, a resnet with realistic BN statistics) from the arguments."""
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda, but no CUDA device is available")
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size is None:
        args.batch_size = 1024 if device.type == "cuda" else 128
    if args.workers is None:
        args.workers = 4 if device.type == "cuda" else 0
    root = args.data_root or os.environ.get("LANDSCAPE_DATA_ROOT") or str(REPO.parent / "shared" / "data")
    cache = args.cache_dir or os.environ.get("LANDSCAPE_CACHE_DIR") or "/tmp/landscape-cache"
    started = time.perf_counter()
    ds = load_dataset(args.dataset, root, cache, progress=False)
    load_s = time.perf_counter() - started
    idx = balanced_subset(ds.train_labels, min(args.images, len(ds.train_labels)), args.seed)
    model = realistic_model(args.arch, ds, device, args.seed)
    return device, ds, idx, model, f"{args.dataset} under {root} (loaded in {load_s:.1f} s)"


def realistic_model(arch: str, ds, device, seed: int, images: int = 1024, batch: int = 256) -> nn.Module:
    """The architecture at its seeded initialization, BN running statistics estimated in train mode."""
    torch.manual_seed(seed)
    model = build_model(arch, ds.num_classes).to(device)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
    idx = balanced_subset(ds.train_labels, images, seed + 123)
    x = normalize(ds.train_images[idx].to(device), ds.mean, ds.std)
    model.train()
    with torch.no_grad():
        for chunk in x.split(batch):
            model(chunk)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model.eval()


def perturbations(theta0: torch.Tensor, count: int, scale: float = 1e-3, seed: int = 1):
    """θ0 + small seeded Gaussian steps, made one at a time (a generator: nothing piles up)."""
    gen = torch.Generator().manual_seed(seed)
    norm = float(theta0.norm())
    for _ in range(count):
        d = torch.randn(theta0.numel(), generator=gen).to(theta0.device, theta0.dtype)
        yield theta0 + d * (scale * norm / float(d.norm()))


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_theta(model: nn.Module, theta: torch.Tensor) -> None:
    torch.nn.utils.vector_to_parameters(theta.to(next(model.parameters()).dtype), model.parameters())


class BareLoop:
    """(a) eager fp32 no_grad forward over a ready standardized NCHW tensor on the device."""

    def __init__(self, model, images_u8, labels, mean, std, device, batch_size):
        self.model = copy.deepcopy(model).to(device).eval()
        self.x = normalize(images_u8.to(device), mean, std).contiguous()
        self.y = labels.to(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def evaluate(self, theta) -> tuple[float, float]:
        load_theta(self.model, theta)
        total = torch.zeros((), dtype=torch.float64, device=self.x.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.x.device)
        for i in range(0, len(self.y), self.batch_size):
            out = self.model(self.x[i:i + self.batch_size])
            y = self.y[i:i + self.batch_size]
            total += nn.functional.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
        return total.item() / len(self.y), correct.item() / len(self.y)


class ReferenceLoop:
    """(b) DataLoader + per-image PIL transforms + eager fp32, .item() per batch (Li et al.'s eval_loss)."""

    def __init__(self, model, images_u8, labels, mean, std, device, batch_size, workers):
        from torchvision import transforms

        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        dataset = ArrayDataset.from_tensors(images_u8, labels, transform)
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                                  num_workers=workers, pin_memory=device.type == "cuda",
                                                  persistent_workers=workers > 0)
        self.model = copy.deepcopy(model).to(device).eval()
        self.device = device
        self.criterion = nn.CrossEntropyLoss()

    @torch.no_grad()
    def evaluate(self, theta) -> tuple[float, float]:
        load_theta(self.model, theta)
        loss, correct, total = 0.0, 0, 0
        for x, y in self.loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            out = self.model(x)
            loss += self.criterion(out, y).item() * x.size(0)
            correct += out.argmax(1).eq(y).sum().item()
            total += x.size(0)
        return loss / total, correct / total


def time_interleaved(evaluators: dict, thetas: list, device, repeats: int) -> dict[str, tuple[float, float]]:
    """{name: (wall seconds, CPU seconds)} for each evaluator over all ``thetas``, best of ``repeats``.

    The evaluators take turns point by point (the order rotating), so a change in the machine's
    load while the benchmark runs hits all of them alike. CPU seconds are this process's
    (all its threads; DataLoader worker processes are not included).
    """
    names = list(evaluators)
    best = {n: (float("inf"), float("inf")) for n in names}
    for _ in range(repeats):
        spent = {n: [0.0, 0.0] for n in names}
        for k, theta in enumerate(thetas):
            for j in range(len(names)):
                name = names[(j + k) % len(names)]
                sync(device)
                wall, cpu = time.perf_counter(), time.process_time()
                evaluators[name](theta)
                sync(device)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.process_time() - cpu
        for n in names:
            if spent[n][0] < best[n][0]:
                best[n] = tuple(spent[n])
    return best


def peak_memory_probe(device):
    """A function returning (peak bytes since the last call, current bytes): GPU or process RSS."""
    if device.type == "cuda":
        def probe():
            peak, now = torch.cuda.max_memory_allocated(device), torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            return peak, now
        probe()
        return probe, "peak CUDA memory allocated"

    def read():
        fields = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    fields[key] = int(rest.split()[0]) * 1024
        return fields

    def reset_hwm() -> bool:
        try:  # Linux >= 4.0: writing 5 resets the peak RSS (VmHWM) to the current RSS
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    resettable = reset_hwm()

    def probe():
        f = read()
        if resettable:
            reset_hwm()
        return f.get("VmHWM", 0), f.get("VmRSS", 0)

    return probe, "peak RSS" + ("" if resettable else " (process high-water mark, not resettable here)")


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


# ----------------------------------------------------------------------------- the benchmark
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap, images=2048)
    ap.add_argument("--points", type=int, default=5, help="points θ timed per evaluator")
    ap.add_argument("--repeats", type=int, default=2, help="time the points this many times, keep each evaluator's best")
    ap.add_argument("--no-reference", action="store_true", help="skip the DataLoader reference (b)")
    args = ap.parse_args(argv)

    device, ds, idx, model, source = setup(args)
    images, labels = ds.train_images[idx].contiguous(), ds.train_labels[idx]
    n, bs = len(labels), args.batch_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.arch} on {n} images ({source}); batch {bs}; device {device} ({name}); torch {torch.__version__}")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
          f"{args.points} points per evaluator, best of {args.repeats}")

    started = time.perf_counter()
    ours = Objective(model, images, labels, mean=ds.mean, std=ds.std, batch_size=bs, device=device)
    setup_s = time.perf_counter() - started
    theta0 = ours.theta0
    evaluators, f0 = {}, {}
    OURS, BARE, BF16 = "ours: Objective.values, fp32", "(a) bare no_grad eager fp32 loop", "ours: Objective.values, bf16"
    REF = f"(b) reference DataLoader, {args.workers} workers"
    evaluators[OURS] = lambda theta: ours.values([theta])
    f0[OURS] = ours.value(theta0)
    bare = BareLoop(model, images, labels, ds.mean, ds.std, device, bs)
    evaluators[BARE] = bare.evaluate
    f0[BARE] = bare.evaluate(theta0)[0]
    if not args.no_reference:
        ref = ReferenceLoop(model, images, labels, ds.mean, ds.std, device, bs, args.workers)
        evaluators[REF] = ref.evaluate
        f0[REF] = ref.evaluate(theta0)[0]
    if device.type == "cuda":
        bf16 = Objective(model, images, labels, mean=ds.mean, std=ds.std, batch_size=bs, device=device,
                         precision="bf16")
        evaluators[BF16] = lambda theta: bf16.values([theta])
        f0[BF16] = bf16.value(theta0)
    for evaluate in evaluators.values():  # warm-up: kernels, allocator, workers
        evaluate(theta0)
    timed = time_interleaved(evaluators, list(perturbations(theta0, args.points)), device, args.repeats)

    print()
    print(f"{'evaluator':<40}{'seconds':>9}{'points/s':>10}{'img/s':>10}{'CPU s':>8}{'F(θ0)':>12}")
    for label, (seconds, cpu) in timed.items():
        pps = args.points / seconds
        print(f"{label:<40}{seconds:>9.3f}{pps:>10.3f}{pps * n:>10,.0f}{cpu:>8.2f}{f0[label]:>12.6f}")
    print()
    print(f"Objective set-up (standardize, fold BN, move to device): {setup_s:.2f} s, once")
    ours_s = timed[OURS][0]
    ra = timed[BARE][0] / ours_s
    print(f"ratio ours/(a) = {ra:.2f}   (goal >= 0.9: {'met' if ra >= 0.9 else 'NOT met'})"
          + (f"; by CPU time {timed[BARE][1] / timed[OURS][1]:.2f}" if device.type == "cpu" else ""))
    if REF in timed:
        rb = timed[REF][0] / ours_s
        print(f"ratio ours/(b) = {rb:.2f}   (goal >= 1.3: {'met' if rb >= 1.3 else 'NOT met'})"
              + (f"; by CPU time {timed[REF][1] / timed[OURS][1]:.2f}" if device.type == "cpu" and args.workers == 0 else ""))
    if BF16 in timed:
        print(f"bf16/fp32 (ours) = {ours_s / timed[BF16][0]:.2f}")
    f0s = [f0[k] for k in (OURS, BARE, REF) if k in f0]
    spread = (max(f0s) - min(f0s)) / abs(f0s[0])
    print(f"F(θ0) agreement across the fp32 evaluators: relative spread {spread:.1e}"
          f" ({'ok' if spread < 1e-4 else 'MISMATCH'})")

    # memory: flat in the number of points (θs come from a generator, one at a time)
    probe, what = peak_memory_probe(device)
    ours.values(perturbations(theta0, 2))
    peak2, now2 = probe()
    ours.values(perturbations(theta0, 10))
    peak10, now10 = probe()
    print(f"memory ({what}): 2 points {mib(peak2)} (now {mib(now2)}), 10 points {mib(peak10)} "
          f"(now {mib(now10)}); growth {mib(peak10 - peak2)}"
          f" ({'flat' if peak10 - peak2 <= max(8 * 2**20, 0.02 * peak2) else 'GROWS'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
