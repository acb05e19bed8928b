"""Time Lanczos extreme eigenpairs of a CIFAR network's Hessian on real images (CPU by default).

    python scripts/bench_curvature.py --data-root /work/shared/data --n 1024 --tol 1e-3
    python scripts/bench_curvature.py --max-matvecs 10   # time a fixed number of products

With --max-matvecs the run stops early (converged=False) and the total for a converged run can
be extrapolated from the seconds per product printed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from landscape.curvature import HessianOperator, extreme_eigenpairs
from landscape.data import balanced_subset, load_dataset
from landscape.models import build_model
from landscape.objective import Objective


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet32")
    p.add_argument("--dataset", default="folder:cifar10-jpeg")
    p.add_argument("--data-root", default="/work/shared/data")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--n", type=int, default=1024, help="training images in the objective")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--channels-last", type=int, choices=[0, 1], default=None,
                   help="memory format of the images (default: the objective's choice)")
    p.add_argument("--which", default="SA,LA", help="comma-separated: SA (most negative), LA (top)")
    p.add_argument("--recompute-bn", action="store_true",
                   help="freeze batch-norm statistics re-estimated on the images (default: the "
                        "model's own, which at initialization are the defaults 0 and 1)")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--ncv", type=int, default=None)
    p.add_argument("--max-matvecs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    data = load_dataset(args.dataset, data_root=args.data_root, cache_dir=args.cache_dir, progress=False)
    images, labels = data.split("train")
    idx = balanced_subset(labels, args.n, args.seed)
    objective = Objective(build_model(args.arch, data.num_classes), images[idx], labels[idx],
                          mean=data.mean, std=data.std, precision=args.precision,
                          batch_size=args.batch_size, device=args.device,
                          channels_last=None if args.channels_last is None else bool(args.channels_last))
    if args.recompute_bn:
        objective = objective.with_buffers(objective.recomputed_buffers())
    loss, acc = objective.evaluate()
    print(json.dumps({**objective.describe(), "recompute_bn": args.recompute_bn, "loss_value": loss,
                      "accuracy": acc, "device": str(objective.device),
                      "channels_last": objective.channels_last, "threads": torch.get_num_threads()}))

    op = HessianOperator(objective)
    v = torch.randn(objective.dim, dtype=torch.float64)
    op.matvec_torch(v)  # warm-up
    start = time.perf_counter()
    op.matvec_torch(v)
    print(f"one HVP: {time.perf_counter() - start:.2f} s")

    for which in args.which.split(","):
        op = HessianOperator(objective)
        [pair] = extreme_eigenpairs(op, k=1, which=which, tol=args.tol, ncv=args.ncv,
                                    seed=args.seed, max_matvecs=args.max_matvecs)
        out = pair.summary()
        out["seconds_per_hvp"] = pair.seconds / pair.matvecs
        out["relative_residual"] = pair.residual / abs(pair.eigenvalue)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
