"""The second-order test without a grid: d_grad, d_curv and d_plane by line and plane searches."""

from __future__ import annotations

import math
import time
from pathlib import Path

from .. import measure
from ..directions import eigenvector_direction, gaussian_direction, gradient_direction, orthogonalize
from ..errors import LandscapeError
from ..results import read_json
from .base import PER_REPEAT, At, Measurement
from .probes import PROBES

SECOND_ORDER_EVALUATIONS = 100  # the gradient line search and the first direction's searches, typically
DIRECTION_EVALUATIONS = 80      # the searches of each further direction (the controls), typically
CONTROL_SEED_OFFSET = 100       # control k of a repeat draws its random direction from seed + offset + k


class SecondOrder(Measurement):
    name = "second_order"
    file = "second_order.json"
    scope = PER_REPEAT
    needs_curvature = True
    needs_gradient = True
    figure = "second_order"
    hint = f"no analysis/epoch_*/{file} (measure '{name}')"

    def run(self, at: At) -> None:
        """The test on the Hessian's own examples (``at.curvature_objective()``): F, ∇F and the
        eigenvectors are of one function, so y is a direction of negative curvature of the F searched."""
        a, s = at.analysis, at.settings
        curvature, cobj = at.curvature(), at.curvature_objective()
        best_step = a.group.from_rank0(lambda: best_gradient_step(PROBES.path(at.out, "neg_gradient")))
        seeds = [at.seed + CONTROL_SEED_OFFSET + k for k in range(s.second_order_controls)]
        key = {"context": at.context(cobj), "settings": {
            "line_search_rtol": measure.LINE_SEARCH_RTOL, "plane_max_evaluations": measure.PLANE_MAX_EVALUATIONS,
            "plane_ftol": measure.PLANE_FTOL, "x": "-gradient (unit)", "search_rule": measure.SEARCH_RULE,
            "y": "hessian_most_negative, orthogonalized against x", "objective": "the Hessian's examples",
            "controls": [f"gaussian seed {k}, orthogonalized against x" for k in seeds]
            + ["hessian_top, orthogonalized against x"],
            "first_step": best_step if best_step is not None else "1e-3 x ||theta||"}}

        def test():
            theta = cobj.theta0
            grad = at.gradient() if cobj is at.obj else cobj.value_and_grad(theta)[1]
            x = gradient_direction(grad, cobj, negative=True)
            neg, top = curvature["most_negative"], curvature["top"][0]
            vectors = curvature["vectors"]
            ys = {"most_negative": orthogonalize(eigenvector_direction(
                vectors["most_negative_vector"], neg["eigenvalue"], cobj, "most_negative"), x)}
            ys.update({f"random_{k}": orthogonalize(gaussian_direction(cobj, k), x) for k in seeds})
            ys["top"] = orthogonalize(eigenvector_direction(vectors["top_vectors"][0], top["eigenvalue"], cobj, "top"),
                                      x)
            start = best_step if best_step is not None else 1e-3 * float(theta.norm())
            with a.bar(None, f"{at.name} second-order test") as bar:
                started = time.perf_counter()
                evaluate = measure.plane_points(cobj, theta, x, list(ys.values()), bar)
                names = list(ys)
                tested = a.group.lead(evaluate, lambda call: measure.second_order_test(
                    measure.Plane(call, 0), start, controls={n: measure.Plane(call, k) for k, n in enumerate(names)
                                                             if k > 0}, precision=cobj.precision),
                    "the second-order test")
            result = tested.as_dict()
            for name, control in result["controls"].items():
                control["direction"] = ys[name].describe()
            result.update({"x": x.describe(), "y": ys["most_negative"].describe(), "lambda_min": neg["eigenvalue"],
                           "lambda_min_residual": neg.get("residual"), "lambda_min_converged": neg.get("converged"),
                           "lambda_max": top["eigenvalue"], "first_step": start, "examples": cobj.num_examples,
                           "seconds": time.perf_counter() - started})
            return result, None, message(at.name, result)
        a.store.piece(at.out / self.file, key, f"{at.name}: second-order test", test, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        directions = s.second_order_controls + 1  # the random controls and the top eigenvector
        return (SECOND_ORDER_EVALUATIONS + DIRECTION_EVALUATIONS * directions) * c.forward * n.curvature


def shown(value) -> str:
    """A stored number, or 'not resolved (< bound)' for an unresolved one."""
    if isinstance(value, dict):
        bound = value.get("bound")
        return "not resolved" + ("" if bound is None else f" ({'<' if value.get('side') == 'below' else '≥'} "
                                                           f"{bound:.3g})")
    return f"{value:.4g}"


def message(name: str, r: dict) -> str:
    """One line: the decreases, the extra of y and of each control."""
    controls = ", ".join(f"{k} {shown(c['extra_fraction'])}" for k, c in r["controls"].items())
    return (f"{name}: second order: d_grad={shown(r['d_grad'])} d_curv={shown(r['d_curv'])} "
            f"d_plane={r['d_plane']:.4g}; extra/d_grad: most negative {shown(r['extra_fraction'])}, "
            f"controls {controls} ({r['evaluations']} evaluations on the most negative plane)")


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
