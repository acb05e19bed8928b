#!/usr/bin/env python
"""Points per second of a 2D loss surface: several points per forward pass against one at a time.

The surface is F(θ0 + a·x + b·y) on a grid × grid lattice (default 21 × 21, the paper's
figure) for a ResNet-32 with realistic BN statistics, over a balanced subset of the real
training images (default 1,024), x and y two filter-normalized directions (Li et al. 2018).
Every evaluator computes the same points in the same run:

* batched: ``landscape.measure.surface`` on an Objective with ``points_per_pass=K`` (a row of
  the grid per forward pass, torch.func.vmap over the points' stacked BN-folded weights);
* one at a time: the same with ``points_per_pass=1`` (Objective.evaluate per point: uint8
  images resident on the device, BN folded, channels_last);
* reference (unless --no-reference): the loop existing tools run per point: load θ into the
  model, a ``DataLoader`` over uint8 HWC arrays with per-image PIL ``ToTensor`` +
  ``Normalize``, eager fp32, ``criterion(...).item() * batch``.

It prints points/s of each, the ratio batched / one at a time, and the largest absolute
difference of F between them over the timed points (fp32 rounding: about 1e-6 of F).

On a CPU a full 441-point grid takes long: ``--max-points K`` times only the first K points of
the grid (in the grid's order, both evaluators the same points) and extrapolates the time of
the whole grid from them; the output says when it did. On CUDA, ``--full`` also times a whole
grid × grid surface over every training image (50,000), in fp32 and in bf16.

Usage::

    python scripts/bench_surface.py --device cpu --arch resnet8 --images 256 --grid 15 --max-points 30 --no-reference
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
        else:  # exactly what measure.surface runs (a row of the grid per pass), on its first k points
            loss, _ = measure.evaluate_points(obj, grid[:k], measure.along(theta, x, y), partial,
                                              chunk=len(coords))
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


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap, images=1024)
    ap.add_argument("--grid", type=int, default=21, help="points per axis (default 21: 441 points)")
    ap.add_argument("--half-width", type=float, default=1.0, help="grid half-width in units of the directions")
    ap.add_argument("--max-points", type=int, default=None,
                    help="time only the first K grid points and extrapolate to the whole grid")
    ap.add_argument("--points-per-pass", type=int, default=None,
                    help="points per forward pass of the batched evaluator (default: a row of the grid, "
                         "within the objective's memory cap)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="time each evaluator this many times, alternating their order; the best counts")
    ap.add_argument("--full", action="store_true",
                    help="also time a whole grid over every training image (CUDA), fp32 and bf16")
    ap.add_argument("--full-budget", type=float, default=None,
                    help="seconds per --full surface; one that runs longer is stopped and its time "
                         "extrapolated from the points it finished (the output says so)")
    ap.add_argument("--no-reference", action="store_true", help="skip the DataLoader reference")
    return ap.parse_args(argv)


def compare(args, model, ds, images, labels, device, coords, grid, k) -> None:
    """Batched against one point at a time (and the reference loop) on the first k grid points."""
    common = dict(mean=ds.mean, std=ds.std, batch_size=args.batch_size, device=device)
    one = Objective(model, images, labels, points_per_pass=1, **common)
    batched = Objective(model, images, labels, points_per_pass=args.points_per_pass or len(coords), **common)
    theta = one.theta0
    x = filter_normalized_direction(one, theta, seed=args.seed)
    y = filter_normalized_direction(one, theta, seed=args.seed + 1)
    evaluators = {"one point at a time (fp32)": one,
                  f"batched, {batched.points_per_pass} points a pass (fp32)": batched}
    if device.type == "cuda":
        evaluators["batched, bf16"] = Objective(model, images, labels, precision="bf16",
                                                 points_per_pass=args.points_per_pass or len(coords), **common)
    for obj in evaluators.values():
        obj.values([theta, theta])  # warm-up (vmap, cuDNN algorithm choice)
    best, losses = {}, {}
    for r in range(args.repeats):
        for label in (list(evaluators) if r % 2 == 0 else list(evaluators)[::-1]):
            t, cpu, losses[label] = time_ours(evaluators[label], theta, x, y, coords, grid, k, device)
            best[label] = min(best.get(label, (t, cpu)), (t, cpu))
    if not args.no_reference:
        ref = ReferenceLoop(model, images, labels, ds.mean, ds.std, device, args.batch_size, args.workers)
        ref.evaluate(theta)  # warm-up
        label = f"reference DataLoader loop ({args.workers} workers)"
        t, cpu, losses[label] = time_reference(ref, theta, x, y, grid, k, device)
        best[label] = (t, cpu)
    report(best, losses, k, len(grid))


def report(best: dict, losses: dict, k: int, total: int) -> None:
    print(f"\n{'evaluator':<44}{'points':>7}{'seconds':>9}{'CPU s':>8}{'points/s':>10}{f'{total}-pt grid, s':>16}")
    for label, (seconds, cpu) in best.items():
        print(f"{label:<44}{k:>7}{seconds:>9.2f}{cpu:>8.2f}{k / seconds:>10.3f}"
              f"{total * seconds / k:>15.1f}{'*' if k < total else ''}")
    if k < total:
        print("* extrapolated from the timed points")
    (one, (t_one, cpu_one)), (many, (t_many, cpu_many)) = list(best.items())[:2]
    diff = float(np.max(np.abs(losses[many] - losses[one])))
    scale = float(np.max(np.abs(losses[one])))
    print(f"\nratio batched/one at a time (points/s, fp32) = {t_one / t_many:.2f} (by CPU time "
          f"{cpu_one / cpu_many:.2f}); max |F_batched - F_one| = {diff:.2e} over the timed points "
          f"({'ok' if diff <= 1e-5 * max(scale, 1.0) else 'MISMATCH'}: fp32 rounding is about 1e-6 of F = {scale:.4g})")
    for label in list(best)[2:]:
        if label.startswith("reference"):
            worst = float(np.max(np.abs(losses[label] - losses[one])))
            print(f"ratio one at a time/reference = {best[label][0] / t_one:.2f}, batched/reference = "
                  f"{best[label][0] / t_many:.2f}; max |F_reference - F_one| = {worst:.2e}")


def full_surfaces(args, model, ds, device, coords, theta_seed) -> None:
    """A whole grid over every training image (CUDA), fp32 and bf16, with the default points per pass."""
    all_images, all_labels = ds.train_images.contiguous(), ds.train_labels
    total = len(coords) ** 2
    print(f"\nfull: {args.grid}x{args.grid} surface over all {len(all_labels)} training images, "
          f"batch {args.batch_size}")
    for precision in ("fp32", "bf16"):
        big = Objective(model, all_images, all_labels, mean=ds.mean, std=ds.std, batch_size=args.batch_size,
                        device=device, precision=precision)
        theta = big.theta0
        x = filter_normalized_direction(big, theta, seed=theta_seed)
        y = filter_normalized_direction(big, theta, seed=theta_seed + 1)
        big.values([theta, theta])
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
        how = f"{big.points_per_pass} points a pass" if big.point_batching else "one point at a time"
        if done == total:
            print(f"  {precision} ({how}): {t:.1f} s for all {total} points, measured ({total / t:.2f} points/s, "
                  f"{total * len(all_labels) / t:,.0f} img/s); F at the centre {centre}")
        else:
            print(f"  {precision} ({how}): {done} of {total} points in {t:.1f} s (budget {args.full_budget:g} s): "
                  f"{total * t / done:.1f} s for the whole grid, EXTRAPOLATED "
                  f"({done / t:.2f} points/s, {done * len(all_labels) / t:,.0f} img/s)")
        del big
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    args = parse(argv)
    device, ds, idx, model, source = setup(args)
    images, labels = ds.train_images[idx].contiguous(), ds.train_labels[idx]
    coords, grid = grid_coords(args.grid, args.half_width)
    total = len(grid)
    k = min(args.max_points or total, total)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.arch}, {args.grid}x{args.grid} surface ({total} points) on {len(labels)} images ({source}); "
          f"batch {args.batch_size}; device {device} ({name}); torch {torch.__version__}")
    if k < total:
        print(f"timing the first {k} of {total} grid points and EXTRAPOLATING to the whole grid")
    compare(args, model, ds, images, labels, device, coords, grid, k)
    if args.full:
        if device.type != "cuda":
            print("\n--full needs CUDA (a whole surface over 50,000 images is hours on a CPU); skipped")
            return 0
        full_surfaces(args, model, ds, device, coords, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
