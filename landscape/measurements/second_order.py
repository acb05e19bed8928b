"""The second-order test without a grid: d_grad, d_curv and d_plane by line and plane searches."""

from __future__ import annotations

import math
import time
from pathlib import Path

from .. import measure
from ..directions import eigenvector_direction, gradient_direction, orthogonalize
from ..errors import LandscapeError
from ..results import read_json
from .base import PER_REPEAT, At, Measurement
from .probes import PROBES

SECOND_ORDER_EVALUATIONS = 100  # two bracketing line searches and the plane search, typically


class SecondOrder(Measurement):
    name = "second_order"
    file = "second_order.json"
    scope = PER_REPEAT
    needs_curvature = True
    needs_gradient = True
    figure = "second_order"
    hint = f"no analysis/epoch_*/{file} (measure '{name}')"

    def run(self, at: At) -> None:
        a = at.analysis
        curvature = at.curvature()
        best_step = a.group.from_rank0(lambda: best_gradient_step(PROBES.path(at.out, "neg_gradient")))
        key = {"context": at.context(at.obj), "settings": {
            "line_search_rtol": measure.LINE_SEARCH_RTOL, "plane_max_evaluations": measure.PLANE_MAX_EVALUATIONS,
            "plane_ftol": measure.PLANE_FTOL, "x": "-gradient (unit)",
            "y": "hessian_most_negative, orthogonalized against x",
            "first_step": best_step if best_step is not None else "1e-3 x ||theta||"}}

        def test():
            x = gradient_direction(at.gradient(), at.obj, negative=True)
            neg = curvature["most_negative"]
            y = orthogonalize(eigenvector_direction(curvature["vectors"]["most_negative_vector"],
                                                    neg["eigenvalue"], at.obj, "most_negative"), x)
            start = best_step if best_step is not None else 1e-3 * float(at.theta.norm())
            with a.bar(None, f"{at.name} second-order test") as bar:
                started = time.perf_counter()
                plane = measure.plane_function(at.obj, at.theta, x, y, bar)
                result = a.group.lead(lambda ab: plane(*ab), lambda f: measure.second_order_test(
                    lambda u, v: f((u, v)), start), "the second-order test")
            result.update({"x": x.describe(), "y": y.describe(), "lambda_min": neg["eigenvalue"],
                           "lambda_min_residual": neg.get("residual"), "lambda_min_converged": neg.get("converged"),
                           "first_step": start, "seconds": time.perf_counter() - started})
            return result, None, (f"{at.name}: second order: d_grad={result['d_grad']:.4g} "
                                  f"d_curv={result['d_curv']:.4g} d_plane={result['d_plane']:.4g} (extra "
                                  f"{100 * result['extra_fraction']:.2g}% of d_grad, {result['evaluations']} evaluations)")
        a.store.piece(at.out / self.file, key, f"{at.name}: second-order test", test, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        return SECOND_ORDER_EVALUATIONS * c.forward * n.train


def best_gradient_step(probe: Path) -> float | None:
    """The best step along −∇F the stored gradient probe found: a finite positive number, or None."""
    if not probe.is_file():
        return None
    try:
        eta = read_json(probe)["result"]["descent"]["best_eta"]
    except (LandscapeError, KeyError, TypeError):
        return None
    return float(eta) if isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0 else None


SECOND_ORDER = SecondOrder()
