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


SURFACE_WIDENINGS = 4  # at most this many doublings of the half-width (×16), never past the cap
WIDENING_RULE = "x2 while the x-line minimum is at an end, at most 4 times, up to the cap"


def bracketing_half_width(line, half: float, cap: float, points: int, widenings: int = SURFACE_WIDENINGS) -> dict:
    """The half-width at which the lowest of ``points`` evenly spaced values along the x axis is interior.

    ``line(coords)`` gives F at θ + c·x for each c. The line on [−half, half] is evaluated
    first (``points`` values, cheap next to the grid's points²); while its minimum lies at an
    end, the half-width doubles (up to ``cap``, at most ``widenings`` times), so the grid
    brackets the best step along the gradient line instead of cutting it off at its edge.
    Returns the final half-width, the number of doublings and whether its minimum is interior
    (False when the cap or the number of doublings stopped it: the grid then does not bracket).
    """
    half = min(half, cap) if half > 0 else cap
    for doubled in range(widenings + 1):
        i = int(np.argmin(np.asarray(line(np.linspace(-half, half, points)), dtype=float)))
        interior = 0 < i < points - 1
        if interior or half >= cap or doubled == widenings:
            return {"half_width": float(half), "widenings": doubled, "x_line_interior": interior}
        half = min(2.0 * half, cap)


def x_line_interior(values: dict) -> bool:
    """Whether the lowest point of a surface's row through θ (the x line) is interior."""
    row = values["loss"][int(np.argmin(np.abs(values["ys"])))]
    return bool(0 < int(np.argmin(row)) < len(row) - 1)


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
            {"rule": "surface_extent", "best_gradient_step": best_step, "lambda_min": neg["eigenvalue"],
             "widening": WIDENING_RULE},
            "sigma": s.curvature_sigma, "uses_gradient_probe": best_step is not None,
            "x": "gradient", "y": "hessian_most_negative, orthogonalized against x"}}

        def grid():
            grad = at.gradient()
            x = gradient_direction(grad, at.obj)
            y = orthogonalize(eigenvector_direction(curvature["vectors"]["most_negative_vector"],
                                                    neg["eigenvalue"], at.obj, "most_negative"), x)
            extent = surface_extent(learning_rate_at(a.source, at.epoch), float(grad.norm()), at.obj.value(at.theta),
                                    neg["eigenvalue"], float(at.theta.norm()), best_step)
            if s.surface_range is None:  # widen the rule's half-width until the x line's minimum is interior
                def line(coords):
                    return measure.evaluate_points(sobj, coords[:, None], measure.along(at.theta, x))[0]
                extent = {**extent, "rule_half_width": extent["half_width"], "widening": WIDENING_RULE,
                          **bracketing_half_width(line, extent["half_width"], extent["cap"], s.surface_points)}
            half = s.surface_range if s.surface_range is not None else extent["half_width"]
            coords = np.linspace(-half, half, s.surface_points)
            with a.bar(len(coords) ** 2, f"epoch {at.epoch} surface") as bar:
                values = measure.surface(sobj, at.theta, x, y, coords, coords, a.store.partial(path, key), bar)
            best = measure.surface_summary(values)
            summary = {**best.as_dict(), "half_width": half, "extent_rule": extent,
                       "x_line_interior": x_line_interior(values), "x": x.describe(), "y": y.describe()}
            edge = "" if summary["x_line_interior"] else (
                " (the lowest point along the gradient line is at the grid's edge: the grid does not bracket it)")
            return summary, values.as_dict(), (f"epoch {at.epoch}: surface: best decrease along gradient "
                                               f"{best.along_x.decrease:.4g}, along negative curvature "
                                               f"{best.along_y.decrease:.4g}, anywhere {best.anywhere.decrease:.4g}"
                                               f"{edge}")
        a.store.piece(path, key, f"epoch {at.epoch}: surface", grid, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        # the grid, and under the rule its x line evaluated at most 1 + SURFACE_WIDENINGS times first
        lines = 0 if s.surface_range is not None else (1 + SURFACE_WIDENINGS) * s.surface_points * c.forward * n.train
        return grid_cost(s, n, c) + lines


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
