"""Spectrum: the Hessian's eigenvalue density by stochastic Lanczos quadrature, its negative mass and outliers."""

from __future__ import annotations

import numpy as np

from ..curvature import HessianOperator
from ..density import default_width, lanczos_quadrature, negative_mass, outlier_count
from .base import PER_REPEAT, At, Measurement


class Spectrum(Measurement):
    name = "spectrum"
    file = "spectrum.json"
    scope = PER_REPEAT
    figure = "spectrum"
    hint = f"no analysis/epoch_*/{file} (measure '{name}')"

    def run(self, at: At) -> None:
        a, s = at.analysis, at.settings
        obj = at.curvature_objective()
        key = {"context": at.context(obj), "settings": {
            "probes": s.spectrum_probes, "steps": s.spectrum_steps, "seed": at.seed,
            "method": "stochastic Lanczos quadrature (Rademacher probes, full reorthogonalization)",
            "negative_below": "-broadening", "outliers": "dimension x weight above max node / 10"}}

        def density():
            q = lanczos_quadrature(HessianOperator(obj, obj.theta0), s.spectrum_probes, s.spectrum_steps, seed=at.seed)
            width = default_width(q)
            # Most of a network's spectrum sits in a cluster at 0 whose Ritz values land on either
            # side of it: only eigenvalues below −width (the broadening) count as negative.
            mass = negative_mass(q, below=-width)
            nodes, weights = q.pooled()
            outliers = outlier_count(q)  # eigenvalues that stand out of the bulk (README: Spectrum)
            summary = {"negative_mass": mass.value, "negative_mass_stderr": mass.stderr, "negative_below": -width,
                       "outliers_above": outliers.value, "outliers_above_stderr": outliers.stderr,
                       "outlier_edge": outliers.edge, "probes": q.probes,
                       "width": width, "dimension": q.dim, "lambda_min_node": float(nodes.min()),
                       "lambda_max_node": float(nodes.max()), "matvecs": q.matvecs, "seconds": q.seconds}
            arrays = {"nodes": nodes, "weights": weights,
                      "probe": np.concatenate([np.full(len(x), i) for i, x in enumerate(q.nodes)])}
            return summary, arrays, (f"{at.name}: spectrum negative mass {mass.value:.3g}"
                                     f"{plus_minus(mass.stderr, '.2g')} (below {-width:.3g}), about "
                                     f"{outliers.value:.0f}{plus_minus(outliers.stderr, '.0f')} eigenvalues above "
                                     f"λ_max/10 ({q.seconds:.0f} s)")
        a.store.piece(at.out / self.file, key, f"{at.name}: spectrum", density, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        return s.spectrum_probes * s.spectrum_steps * c.hvp * n.curvature


def plus_minus(stderr: float | None, spec: str) -> str:
    """' ± stderr', or nothing where there is none (one probe: no spread to estimate)."""
    return "" if stderr is None else f" ± {stderr:{spec}}"


SPECTRUM = Spectrum()
