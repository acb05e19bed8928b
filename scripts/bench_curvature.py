"""Cost of curvature on a CIFAR network (CPU by default): gradient, Hessian-vector products, both spectrum ends.

    python scripts/bench_curvature.py                          # random images, ResNet-32 on 64
    python scripts/bench_curvature.py --dataset folder:cifar10-jpeg --data-root /work/shared/data

Prints, one JSON line each: ms per gradient pass; ms per HVP by double backpropagation through
the unfolded network (the method before forward-over-reverse), by double backpropagation and by
forward-over-reverse through the batch-norm-folded network (the default), each as a multiple
of the gradient pass; curvlinops' HessianLinearOperator matvec on the same model and data when
curvlinops is installed; then the products ``spectrum_ends`` needs for the top and the most
negative eigenpair against two runs of the ARPACK reference (``extreme_eigenpairs`` 'LA' then
'SA'), on a network trained a few SGD steps, to the same tolerance.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from landscape.curvature import HessianOperator, extreme_eigenpairs, spectrum_ends
from landscape.models import build_model
from landscape.objective import Objective

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_images(dataset: str, n: int, seed: int, data_root: str | None, cache_dir: str | None):
    """(uint8 images, labels, mean, std, classes): random CIFAR-sized images, or a balanced subset of a dataset."""
    if dataset == "random":
        gen = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
        return images, torch.randint(0, 10, (n,), generator=gen), CIFAR_MEAN, CIFAR_STD, 10
    from landscape.data import balanced_subset, load_dataset

    data = load_dataset(dataset, data_root=data_root, cache_dir=cache_dir, progress=False)
    images, labels = data.split("train")
    idx = balanced_subset(labels, n, seed)
    return images[idx], labels[idx], data.mean, data.std, data.num_classes


def best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def curvlinops_matvec_ms(objective: Objective, v: torch.Tensor, repeats: int) -> float | None:
    """ms per curvlinops HessianLinearOperator matvec on the objective's model and data, or None without curvlinops."""
    try:
        from curvlinops import HessianLinearOperator
    except ImportError:
        return None
    model = objective.model.eval()
    names = objective.param_names
    params = [model.get_parameter(n) for n in names]
    data = [(x, y) for x, y in objective._batches()]
    H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, data, check_deterministic=False)
    vs = list(objective.unflatten(v.to(objective.dtype)).values())
    return best_ms(lambda: H @ vs, repeats)


def sgd_trained(arch: str, images, labels, mean, std, classes: int, steps: int, seed: int):
    """A checkpoint-like model: ``steps`` full-batch SGD steps (lr 0.05, momentum 0.9) from a seeded initialization."""
    from landscape.data import normalize

    torch.manual_seed(seed)
    model = build_model(arch, classes)
    x = normalize(images, mean, std, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), labels).backward()
        opt.step()
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet32", help="network for the HVP timings")
    p.add_argument("--n", type=int, default=64, help="images for the HVP timings")
    p.add_argument("--dataset", default="random", help="'random' (uint8 noise) or a dataset name")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument("--eig-arch", default="resnet20", help="network for the eigensolver comparison")
    p.add_argument("--eig-n", type=int, default=32)
    p.add_argument("--sgd-steps", type=int, default=10)
    p.add_argument("--tol", type=float, default=1e-3, help="relative residual ‖r‖ ≤ tol·|λ| for every solver")
    p.add_argument("--max-matvecs", type=int, default=400)
    p.add_argument("--skip-timings", action="store_true")
    p.add_argument("--skip-eig", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (GPU timings synchronize before each clock read)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if not args.skip_timings:
        images, labels, mean, std, classes = load_images(args.dataset, args.n, args.seed, args.data_root, args.cache_dir)
        torch.manual_seed(args.seed)
        model = build_model(args.arch, classes).to(args.device)
        common = dict(mean=mean, std=std, batch_size=args.batch_size, device=args.device)
        new = Objective(model, images, labels, **common)
        old = Objective(model, images, labels, fold_bn=False, hvp_method="double-backprop", **common)
        print(json.dumps({"arch": args.arch, **new.describe(), "threads": torch.get_num_threads()}))
        theta = new.theta0
        v = torch.randn(new.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(new.device, new.dtype)
        grad_ms = best_ms(lambda: new.value_and_grad(theta), args.repeats)
        timed = {
            "gradient": grad_ms,
            "hvp double-backprop, unfolded (before)": best_ms(lambda: old._hvp_double_backprop(theta.clone(), v), args.repeats),
            "hvp double-backprop, folded": best_ms(lambda: new._hvp_double_backprop(theta.clone(), v), args.repeats),
            "hvp forward-over-reverse, folded (default)": best_ms(lambda: new._hvp_forward_over_reverse(theta, v),
                                                                   args.repeats),
        }
        for name, ms in timed.items():
            print(json.dumps({"pass": name, "ms": round(ms, 1), "x_gradient": round(ms / grad_ms, 2)}))
        ms = curvlinops_matvec_ms(new, v, args.repeats)
        if ms is None:
            print(json.dumps({"pass": "curvlinops HessianLinearOperator matvec",
                              "skipped": "curvlinops is not installed (pip install curvlinops-for-pytorch)"}))
        else:
            print(json.dumps({"pass": "curvlinops HessianLinearOperator matvec", "ms": round(ms, 1),
                              "x_gradient": round(ms / grad_ms, 2), "x_default_hvp": round(ms / timed[
                                  "hvp forward-over-reverse, folded (default)"], 2)}))

    if not args.skip_eig:
        images, labels, mean, std, classes = load_images(args.dataset, args.eig_n, args.seed, args.data_root,
                                                         args.cache_dir)
        model = sgd_trained(args.eig_arch, images, labels, mean, std, classes, args.sgd_steps, args.seed)
        objective = Objective(model.to(args.device), images, labels, mean=mean, std=std, batch_size=args.batch_size,
                              device=args.device)
        objective = objective.with_buffers(objective.recomputed_buffers())
        op = HessianOperator(objective)
        kw = dict(tol=args.tol, seed=args.seed, max_matvecs=args.max_matvecs)
        top = extreme_eigenpairs(op, 1, "LA", **kw)[0]
        bottom = extreme_eigenpairs(op, 1, "SA", **kw)[0]
        ends = spectrum_ends(op, **kw)
        both = [ends.top[0], ends.most_negative]

        def describe(pair):
            return {"eigenvalue": pair.eigenvalue, "error_bound": pair.error_bound, "bound_for": pair.bound_for,
                    "relative_residual": pair.residual / abs(pair.eigenvalue), "converged": pair.converged}
        print(json.dumps({"eig": f"{args.eig_arch}, {args.eig_n} images, {args.sgd_steps} SGD steps",
                          "loss": objective.value(), "tol": args.tol,
                          "eigsh_LA": {"products": top.matvecs, **describe(top)},
                          "eigsh_SA": {"products": bottom.matvecs, **describe(bottom)},
                          "spectrum_ends": {"products": both[0].matvecs, "restarts": ends.restarts,
                                            "top": describe(both[0]), "most_negative": describe(both[1])},
                          "products_ratio": round(both[0].matvecs / (top.matvecs + bottom.matvecs), 3),
                          "seconds_per_product": round(ends.top[0].seconds / both[0].matvecs, 3)}))


if __name__ == "__main__":
    main()
