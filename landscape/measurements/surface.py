"""Surfaces: the paper's Figure 1 grid over (∇F, most negative curvature), and Li et al.'s grid over
two filter-normalized random directions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import measure
from ..directions import eigenvector_direction, filter_normalized_direction, gradient_direction, orthogonalize
from ..train import TrainConfig
from .base import PER_CHECKPOINT, At, Measurement
from .probes import PROBES
from .second_order import best_gradient_step


def surface_extent(lr: float, grad_norm: float, loss: float, lambda_min: float, theta_norm: float,
                   best_gradient_step: float | None = None) -> dict:
    """Half-width of the paper's 2D grid, so the grid resolves the gradient step and shows curvature.

    Three times the best step along −∇F found by the gradient probe, so the grid's x-line
    brackets the best gradient step with a few points; without a probe, the distance at which
    the negative curvature alone would move F by F, √(2F/|λ_min|), or, if there is no negative
    curvature, ten full-batch SGD steps at the checkpoint's learning rate (10·lr·‖∇F‖).
    Capped at 0.25·‖θ‖. All candidates are recorded.
    """
    sgd = 10.0 * lr * grad_norm
    curvature = math.sqrt(2.0 * loss / abs(lambda_min)) if lambda_min < 0 else float("inf")
    cap = 0.25 * theta_norm
    if best_gradient_step:
        half, rule = 3.0 * best_gradient_step, "3 x best gradient step"
    elif math.isfinite(curvature):
        half, rule = curvature, "sqrt(2F/|lambda_min|)"
    else:
        half, rule = sgd, "10 SGD steps"
    return {"half_width": float(min(half, cap) if half > 0 else cap), "rule": rule, "sgd_scale": sgd,
            "best_gradient_step": best_gradient_step, "curvature_scale": curvature, "cap": cap}


def surface_objective(at: At):
    """The objective a surface is evaluated with: the analysis's, or one in ``surface_precision``."""
    s = at.settings
    if s.surface_precision in (None, at.obj.precision):
        return at.obj
    return at.analysis.objective(at.model, precision=s.surface_precision, indices=at.indices)


def grid_cost(s, n, c) -> float:
    return s.surface_points ** 2 * c.forward * n.train


class PaperSurface(Measurement):
    name = "surface"
    file = "surface.json"
    scope = PER_CHECKPOINT
    needs_curvature = True
    needs_gradient = True
    figure = "surface"
    hint = f"no analysis/epoch_*/{file} (measure '{name}')"

    def run(self, at: At) -> None:
        a, s = at.analysis, at.settings
        curvature = at.curvature()
        sobj = surface_objective(at)
        path = at.out / self.file
        best_step = a.group.from_rank0(lambda: best_gradient_step(PROBES.path(at.out, "neg_gradient")))
        neg = curvature["most_negative"]
        key = {"context": at.context(sobj), "settings": {
            "points": s.surface_points,
            "range": s.surface_range if s.surface_range is not None else  # the rule, by its inputs
            {"rule": "surface_extent", "best_gradient_step": best_step, "lambda_min": neg["eigenvalue"]},
            "sigma": s.curvature_sigma, "uses_gradient_probe": best_step is not None,
            "x": "gradient", "y": "hessian_most_negative, orthogonalized against x"}}

        def grid():
            grad = at.gradient()
            x = gradient_direction(grad, at.obj)
            y = orthogonalize(eigenvector_direction(curvature["vectors"]["most_negative_vector"],
                                                    neg["eigenvalue"], at.obj, "most_negative"), x)
            extent = surface_extent(learning_rate_at(a.source, at.epoch), float(grad.norm()), at.obj.value(at.theta),
                                    neg["eigenvalue"], float(at.theta.norm()), best_step)
            half = s.surface_range if s.surface_range is not None else extent["half_width"]
            coords = np.linspace(-half, half, s.surface_points)
            with a.bar(len(coords) ** 2, f"epoch {at.epoch} surface") as bar:
                values = measure.surface(sobj, at.theta, x, y, coords, coords, a.store.partial(path, key), bar)
            best = measure.surface_summary(values)
            summary = {**best.as_dict(), "half_width": half, "extent_rule": extent, "x": x.describe(),
                       "y": y.describe()}
            return summary, values.as_dict(), (f"epoch {at.epoch}: surface: best decrease along gradient "
                                               f"{best.along_x.decrease:.4g}, along negative curvature "
                                               f"{best.along_y.decrease:.4g}, anywhere {best.anywhere.decrease:.4g}")
        a.store.piece(path, key, f"epoch {at.epoch}: surface", grid, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        return grid_cost(s, n, c)


class RandomSurface(Measurement):
    name = "random_surface"
    file = "random_surface.json"
    scope = PER_CHECKPOINT
    figure = "random_surface"
    hint = f"no analysis/epoch_*/{file} (measure '{name}')"

    def run(self, at: At) -> None:
        a, s = at.analysis, at.settings
        sobj = surface_objective(at)
        path = at.out / self.file
        key = {"context": at.context(sobj), "settings": {
            "points": s.surface_points, "half_width": s.random_surface_range,
            "x": {"kind": "filter_normalized", "seed": s.seed}, "y": {"kind": "filter_normalized", "seed": s.seed + 1}}}

        def grid():
            x = filter_normalized_direction(at.obj, at.theta, s.seed)
            y = filter_normalized_direction(at.obj, at.theta, s.seed + 1)
            coords = np.linspace(-s.random_surface_range, s.random_surface_range, s.surface_points)
            with a.bar(len(coords) ** 2, f"epoch {at.epoch} random surface") as bar:
                values = measure.surface(sobj, at.theta, x, y, coords, coords, a.store.partial(path, key), bar)
            return ({**measure.surface_summary(values).as_dict(), "x": x.describe(), "y": y.describe()},
                    values.as_dict(), None)
        a.store.piece(path, key, f"epoch {at.epoch}: random surface", grid, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        return grid_cost(s, n, c)


def learning_rate_at(source, epoch: int) -> float:
    """The learning rate the run's schedule used during ``epoch + 1`` (the checkpoint's next step)."""
    cfg = source.train_config or {"arch": source.arch or "", "dataset": source.dataset_name}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in cfg.items() if k in known}).resolved().lr_at(epoch + 1)


SURFACE = PaperSurface()
RANDOM_SURFACE = RandomSurface()
