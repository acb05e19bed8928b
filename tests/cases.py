"""Small cases shared by several test modules: closed-form objectives and a real analyzed run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landscape.objective import Objective
from landscape.runtime import Runtime

REAL_FOLDER = "cifar10-jpeg"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


def least_squares(n=40, d=5, classes=3, seed=0):
    """nn.Linear(d, C) in float64 on N x d features: F = mean ½‖Wx + b − onehot(y)‖²."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    model = nn.Linear(d, classes).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, d, generator=gen, dtype=torch.float64))
        model.bias.copy_(torch.randn(classes, generator=gen, dtype=torch.float64))
    obj = Objective(model, x, y, loss="mse", precision="fp64", channels_last=False, batch_size=16)
    return obj, model, x, y


def closed_form(model, x, y):
    """F, ∇F (θ = [vec W row-major, b]) and the Hessian matrix, in numpy float64."""
    W = model.weight.detach().numpy()
    b = model.bias.detach().numpy()
    X = x.numpy()
    Y = np.eye(W.shape[0])[y.numpy()]
    n, d = X.shape
    C = W.shape[0]
    R = X @ W.T + b - Y                               # residuals, N x C
    F = 0.5 * np.mean(np.sum(R ** 2, axis=1))
    grad = np.concatenate([(R.T @ X / n).reshape(-1), R.mean(axis=0)])
    Z = np.hstack([X, np.ones((n, 1))])
    M = Z.T @ Z / n                                   # (d+1) x (d+1)
    H = np.zeros((C * d + C, C * d + C))
    for c in range(C):
        idx = [c * d + k for k in range(d)] + [C * d + c]
        H[np.ix_(idx, idx)] = M                       # (1/N) Σ [x;1][x;1]ᵀ ⊗ I, in θ's order
    return F, grad, H


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


_BUILT: dict[str, Path] = {}


def build_analyzed_run(tmp_path_factory, data_root, cache_dir) -> Path:
    """resnet8 trained 2 epochs on 40 real images (checkpoints 0, 1, 2; dense track every step),
    analyzed on 16 images: every measurement at epochs 0 and 2, dominance and probes at epoch 1,
    interpolations 0→2, 0→1, 1→2. Built once per session (test_report.py reuses it)."""
    if "run" in _BUILT:
        return _BUILT["run"]
    from landscape.analysis import Analysis, AnalysisSettings
    from landscape.train import TrainConfig, train

    out = tmp_path_factory.mktemp("figrun") / "resnet8_cifar10"
    config = TrainConfig(arch="resnet8", dataset=f"folder:{REAL_FOLDER}", epochs=2, train_subset=40,
                         test_subset=20, batch_size=20, seed=0, save_at=[0, 1, 2], track_every=1, track_subset=40)
    train(config, out, Runtime(data_root, cache_dir, progress=False, echo=lambda *a: None))
    common = dict(subset=16, test_subset=16, probe_gaussian=1, probe_filter=1, probe_steps=3,
                  curvature_tol=1e-1, curvature_max_matvecs=10, surface_points=5, interpolation_points=5)
    Analysis(out, AnalysisSettings(measurements=["dominance", "probes"], epochs=[1], **common),
             Runtime(data_root, cache_dir, progress=False, echo=lambda *a: None)).run_all()
    Analysis(out, AnalysisSettings(measurements=["dominance", "probes", "curvature", "spectrum", "second_order",
                                                 "surface", "random_surface", "interpolation", "trajectory"],
                                   epochs=[0, 2], spectrum_probes=2, spectrum_steps=5, alignment_k=2, **common),
             Runtime(data_root, cache_dir, progress=False, echo=lambda *a: None)).run_all()
    _BUILT["run"] = out
    return out


def build_figured_run(tmp_path_factory, data_root, cache_dir):
    """A copy of the analyzed run with its figures drawn into RUN/figures (once per session):
    (run folder, make_figures' result)."""
    from landscape.plots import make_figures

    if "figured" not in _BUILT:
        run = copy_run(build_analyzed_run(tmp_path_factory, data_root, cache_dir),
                       tmp_path_factory.mktemp("figured") / "resnet8_cifar10")
        _BUILT["figured"] = (run, make_figures(run))
    return _BUILT["figured"]


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of the run's result files (no checkpoints) that a test may damage."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "labels.pt"))
    return dest


def write_image_folder(root: Path, train: dict[str, int], test: dict[str, int], seed: int = 0,
                       suffix: str = ".png") -> dict[str, dict[str, list[np.ndarray]]]:
    """Write ``root/{train,test}/<class>/<i>.png`` random 32x32 RGB images; returns the pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels: dict[str, dict[str, list[np.ndarray]]] = {}
    for split, counts in (("train", train), ("test", test)):
        pixels[split] = {}
        for cls, count in counts.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            pixels[split][cls] = []
            for i in range(count):
                arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i:04d}{suffix}")
                pixels[split][cls].append(arr)
    return pixels
