"""Semi-smoothness probes: f(t) = F(θ + t·u) along unit directions, the residual and its fit a|t| + bt²,
on steps placed between the rounding floor and F (``measure.adaptive_probe``)."""

from __future__ import annotations

import math

from .. import measure
from ..directions import (Direction, eigenvector_direction, filter_normalized_direction, gaussian_direction,
                          gradient_direction)
from .base import PER_REPEAT, At, Measurement


class Probes(Measurement):
    name = "probes"
    file = "probe_{name}.json"
    scope = PER_REPEAT
    figure = "smoothness"
    needs_gradient = True
    hint = f"no analysis/epoch_*/probe_*.json (measure '{name}')"

    def specs(self, at: At) -> list[dict]:
        """Name, kind, seed and normalization of every probe direction, known before computing any."""
        s, seed = at.settings, at.seed
        specs = [{"name": "neg_gradient", "kind": "neg_gradient", "seed": None, "normalization": "unit"}]
        specs += [{"name": f"gaussian_{seed + k}", "kind": "gaussian", "seed": seed + k,
                   "normalization": "unit"} for k in range(s.probe_gaussian)]
        specs += [{"name": f"filter_normalized_{seed + k}", "kind": "filter_normalized", "seed": seed + k,
                   "normalization": "filter+unit"} for k in range(s.probe_filter)]
        if at.curvature_wanted:
            specs += [{"name": f"hessian_{rank}", "kind": f"hessian_{rank}", "seed": None, "normalization": "unit"}
                      for rank in ("top", "most_negative")]
        return specs

    def path(self, folder, name: str):
        return folder / self.file.format(name=name)

    def run(self, at: At) -> None:
        a, s = at.analysis, at.settings
        for spec in self.specs(at):
            path = self.path(at.out, spec["name"])
            key = {"context": at.context(at.obj), "settings": {
                "direction": spec, "steps_per_sign": s.probe_steps, "smallest": s.probe_smallest,
                "largest": s.probe_largest, "refine_rounds": s.probe_refine, "placement": "adaptive window"}}

            def probe(spec=spec, path=path, key=key):
                direction = direction_of(spec, at)
                with a.bar(evaluations(s), f"{at.name} probe {direction.name}") as bar:
                    result = measure.adaptive_probe(at.obj, at.theta, at.gradient(), direction, s.probe_steps,
                                                    s.probe_smallest, s.probe_largest, s.probe_refine,
                                                    a.store.partial(path, key), bar)
                return result.as_dict(), result.arrays(), f"{at.name}: probe {direction.name}: {fit_text(result)}"
            a.store.piece(path, key, f"{at.name}: probe {spec['name']}", probe, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        directions = 1 + s.probe_gaussian + s.probe_filter + (2 if curvature else 0)
        return directions * evaluations(s) * c.forward * n.train


def evaluations(s) -> int:
    """Points one adaptive probe evaluates at most: the scout, 4 bisections per round, the two ladders."""
    scout = 2 * (max(2, round(math.log10(s.probe_largest / s.probe_smallest) * measure.PROBE_SCOUT_PER_DECADE)) + 1) + 1
    return scout + 4 * s.probe_refine + 2 * s.probe_steps


def fit_text(probe: measure.Probe) -> str:
    """'a=… b=… a/‖∇F‖=… a/√F=… (n points over d decades, looseness …)' or 'not measured (reason)'."""
    fit = probe.fit
    if not fit.resolved:
        return f"not measured ({fit.reason})"
    if fit.a_resolved:
        kink = (f"a={fit.a:.3g} b={fit.b:.3g} a/||grad F||={probe.a_over_grad_norm:.3g} "
                f"a/sqrt(F)={probe.a_over_sqrt_F:.3g}")
    else:  # no kink at 0 the smallest steps could see: only its bound
        kink = f"a < {fit.a_resolution:.3g} (not resolved) b={fit.b:.3g}"
    return f"{kink} ({fit.distinct_t} |t| over {fit.decades:.2g} decades, looseness {fit.rel_rms:.2g})"


def direction_of(spec: dict, at: At) -> Direction:
    """The unit direction a probe spec names, built at θ."""
    kind, obj = spec["kind"], at.obj
    if kind == "neg_gradient":
        return gradient_direction(at.gradient(), obj, negative=True)
    if kind == "gaussian":
        return gaussian_direction(obj, spec["seed"])
    if kind == "filter_normalized":
        return filter_normalized_direction(obj, at.theta, spec["seed"], unit=True)
    curvature = at.curvature()
    vec = curvature["vectors"]
    if kind == "hessian_top":
        return eigenvector_direction(vec["top_vectors"][0], curvature["top"][0]["eigenvalue"], obj, "top")
    return eigenvector_direction(vec["most_negative_vector"], curvature["most_negative"]["eigenvalue"],
                                 obj, "most_negative")


PROBES = Probes()
