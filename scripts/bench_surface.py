#!/usr/bin/env python
"""Points per second of a 2D loss surface: landscape's measure.surface beside a plain loop.

The surface is F(θ0 + a·x + b·y) on a grid × grid lattice (default 21 × 21, the paper's
figure) for a ResNet-32 with realistic BN statistics, over a balanced subset of the real
training images (default 1,024), x and y two filter-normalized directions (Li et al. 2018).

* ours: ``landscape.measure.surface`` (Objective.values' fast path: uint8 images resident on
  the device, BN folded, channels_last; each finished point saved to a partial file);
* reference: the loop existing tools run per point: load θ into the model, a ``DataLoader``
  over uint8 HWC arrays with per-image PIL ``ToTensor`` + ``Normalize``, eager fp32,
  ``criterion(...).item() * batch``.

On a CPU a full 441-point grid takes long: ``--max-points K`` times only the first K points of
the grid (in the grid's order, both evaluators the same points) and extrapolates the time of
the whole grid from them; the output says when it did. On CUDA, ``--full`` also times a whole
grid × grid surface over every training image (50,000), in fp32 and in bf16.

Usage::

    python scripts/bench_surface.py --device cpu --max-points 6
    python scripts/bench_surface.py --device cuda --full
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_objective import ReferenceLoop, add_common_arguments, setup, sync  # noqa: E402
from landscape import measure  # noqa: E402
from landscape.directions import filter_normalized_direction  # noqa: E402
from landscape.objective import Objective  # noqa: E402
from landscape.results import Partial  # noqa: E402


def grid_coords(points: int, half: float) -> tuple[np.ndarray, np.ndarray]:
    coords = np.linspace(-half, half, points)
    return coords, np.array([(a, b) for b in coords for a in coords], dtype=np.float64)


def time_ours(obj: Objective, theta, x, y, coords, grid, k: int, device) -> tuple[float, float, np.ndarray]:
    """(wall s, CPU s, F) for the first k grid points through measure.surface (evaluate_points for k < all)."""
    with tempfile.TemporaryDirectory() as tmp:
        partial = Partial(Path(tmp) / "surface.partial.npz")
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        if k == len(grid):
            loss = measure.surface(obj, theta, x, y, coords, coords, partial)["loss"].reshape(-1)
        else:  # exactly what measure.surface runs, on its first k points
            loss, _ = measure.evaluate_points(obj, grid[:k], measure.along(theta, x, y), partial)
        sync(device)
        return time.perf_counter() - start, time.process_time() - cpu, loss


def time_reference(ref: ReferenceLoop, theta, x, y, grid, k: int, device) -> tuple[float, float, np.ndarray]:
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    loss = []
    for a, b in grid[:k]:
        point = theta + float(a) * x.vector + float(b) * y.vector
        loss.append(ref.evaluate(point)[0])
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu, np.asarray(loss)


class _OutOfTime(Exception):
    pass


class _Budget:
    """A progress object for measure.surface that stops it once ``seconds`` have passed."""

    def __init__(self, seconds: float | None):
        self.seconds, self.done, self.start = seconds, 0, time.perf_counter()

    def update(self, k: int) -> None:
        self.done += k
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            raise _OutOfTime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap, images=1024)
    ap.add_argument("--grid", type=int, default=21, help="points per axis (default 21: 441 points)")
    ap.add_argument("--half-width", type=float, default=1.0, help="grid half-width in units of the directions")
    ap.add_argument("--max-points", type=int, default=None,
                    help="time only the first K grid points and extrapolate to the whole grid")
    ap.add_argument("--full", action="store_true",
                    help="also time a whole grid over every training image (CUDA), fp32 and bf16")
    ap.add_argument("--full-budget", type=float, default=None,
                    help="seconds per --full surface; one that runs longer is stopped and its time "
                         "extrapolated from the points it finished (the output says so)")
    ap.add_argument("--no-reference", action="store_true", help="skip the DataLoader reference")
    args = ap.parse_args(argv)

    device, ds, idx, model, source = setup(args)
    images, labels = ds.train_images[idx].contiguous(), ds.train_labels[idx]
    n, bs = len(labels), args.batch_size
    coords, grid = grid_coords(args.grid, args.half_width)
    total = len(grid)
    k = min(args.max_points or total, total)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.arch}, {args.grid}x{args.grid} surface ({total} points) on {n} images ({source}); "
          f"batch {bs}; device {device} ({name}); torch {torch.__version__}")
    if k < total:
        print(f"timing the first {k} of {total} grid points and EXTRAPOLATING to the whole grid")

    obj = Objective(model, images, labels, mean=ds.mean, std=ds.std, batch_size=bs, device=device)
    theta = obj.theta0
    x = filter_normalized_direction(obj, theta, seed=args.seed)
    y = filter_normalized_direction(obj, theta, seed=args.seed + 1)
    obj.values([theta])  # warm-up
    rows = []
    t, cpu, ours_loss = time_ours(obj, theta, x, y, coords, grid, k, device)
    rows.append(("ours: measure.surface, fp32", t, cpu))
    if device.type == "cuda":
        bf16 = Objective(model, images, labels, mean=ds.mean, std=ds.std, batch_size=bs, device=device,
                         precision="bf16")
        bf16.values([theta])
        t, cpu, _ = time_ours(bf16, theta, x, y, coords, grid, k, device)
        rows.append(("ours: measure.surface, bf16", t, cpu))
        del bf16
    ref_loss = None
    if not args.no_reference:
        ref = ReferenceLoop(model, images, labels, ds.mean, ds.std, device, bs, args.workers)
        ref.evaluate(theta)  # warm-up
        t, cpu, ref_loss = time_reference(ref, theta, x, y, grid, k, device)
        rows.append((f"reference DataLoader loop ({args.workers} workers)", t, cpu))
        del ref

    print()
    print(f"{'evaluator':<44}{'points':>7}{'seconds':>9}{'CPU s':>8}{'points/s':>10}{f'{total}-pt grid, s':>16}")
    for label, seconds, cpu in rows:
        pps = k / seconds
        grid_s = total / pps
        print(f"{label:<44}{k:>7}{seconds:>9.2f}{cpu:>8.2f}{pps:>10.3f}{grid_s:>15.1f}{'*' if k < total else ''}")
    if k < total:
        print("* extrapolated from the timed points")
    if ref_loss is not None:
        ratio = rows[-1][1] / rows[0][1]  # reference seconds / our seconds, same points
        by_cpu = f" (by CPU time {rows[-1][2] / rows[0][2]:.2f})" if device.type == "cpu" and args.workers == 0 else ""
        worst = float(np.max(np.abs(ours_loss - ref_loss) / np.abs(ref_loss)))
        print(f"\nratio ours/reference (fp32) = {ratio:.2f}{by_cpu}; largest relative difference of F over the "
              f"timed points {worst:.1e} ({'ok' if worst < 1e-4 else 'MISMATCH'})")

    if args.full:
        if device.type != "cuda":
            print("\n--full needs CUDA (a whole surface over 50,000 images is hours on a CPU); skipped")
            return 0
        all_images, all_labels = ds.train_images.contiguous(), ds.train_labels
        print(f"\nfull: {args.grid}x{args.grid} surface over all {len(all_labels)} training images, batch {bs}")
        for precision in ("fp32", "bf16"):
            big = Objective(model, all_images, all_labels, mean=ds.mean, std=ds.std, batch_size=bs,
                            device=device, precision=precision)
            big.values([theta])
            clock = _Budget(args.full_budget)
            with tempfile.TemporaryDirectory() as tmp:
                sync(device)
                clock.start = time.perf_counter()
                try:
                    res = measure.surface(big, theta, x, y, coords, coords, Path(tmp) / "s.partial.npz", clock)
                    done, centre = total, f"{res['loss'][args.grid // 2, args.grid // 2]:.4f}"
                except _OutOfTime:
                    done, centre = clock.done, "n/a"
                sync(device)
                t = time.perf_counter() - clock.start
            if done == total:
                print(f"  {precision}: {t:.1f} s for all {total} points, measured ({total / t:.2f} points/s, "
                      f"{total * len(all_labels) / t:,.0f} img/s); F at the centre {centre}")
            else:
                print(f"  {precision}: {done} of {total} points in {t:.1f} s (budget {args.full_budget:g} s): "
                      f"{total * t / done:.1f} s for the whole grid, EXTRAPOLATED "
                      f"({done / t:.2f} points/s, {done * len(all_labels) / t:,.0f} img/s)")
            del big
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
