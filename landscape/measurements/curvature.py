"""Curvature: the top and most negative Hessian eigenpairs from one Lanczos run, with residuals,
the gradient's share in the top-k eigenspace and (optionally) Hutchinson's trace."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..curvature import HessianOperator, bound_scope, gradient_alignment, hutchinson_trace, spectrum_ends
from .base import PER_REPEAT, At, Measurement


class Curvature(Measurement):
    name = "curvature"
    file = "curvature.json"
    scope = PER_REPEAT
    figure = "training"
    hint = f"no log.jsonl and no analysis/epoch_*/{file}"

    def key(self, at: At) -> dict:
        s = at.settings
        return {"context": at.context(at.curvature_objective()), "settings": {
            "top": s.curvature_top, "sigma": s.curvature_sigma,
            "smoothing_samples": s.curvature_samples if s.curvature_sigma > 0 else 0,
            "tol": s.curvature_tol, "max_matvecs": s.curvature_max_matvecs, "max_basis": s.curvature_max_basis,
            "trace_samples": s.trace_samples, "seed": at.seed, "alignment_k": s.alignment_k,
            "eigensolver": "one thick-restart Lanczos run for both ends (landscape.curvature.spectrum_ends)"}}

    def run(self, at: At) -> None:
        at.curvature()  # computed once, shared with the measurements that need the eigenpairs

    def compute(self, at: At) -> dict:
        """Compute (or find fresh) the eigenpairs at ``at``; returns the result with its vectors."""
        a, s, obj = at.analysis, at.settings, at.curvature_objective()
        path = at.out / self.file

        def eigenpairs():
            op = HessianOperator(obj, obj.theta0, sigma=s.curvature_sigma,
                                 samples=s.curvature_samples if s.curvature_sigma > 0 else 0, seed=at.seed)
            bounds = bound_scope(op)  # of the real operator: ranks other than 0 are served through a wrapper
            return a.group.lead_operator(op, lambda served: solve(served, bounds), "the Hessian eigensolvers")

        def solve(op, bounds: str):
            started = time.perf_counter()
            ends = spectrum_ends(op, k_top=max(s.curvature_top, s.alignment_k), k_bottom=1, tol=s.curvature_tol,
                                 max_basis=s.curvature_max_basis, max_matvecs=s.curvature_max_matvecs, seed=at.seed,
                                 measured_top=s.curvature_top, bound_for=bounds)
            top, neg = ends.top[:s.curvature_top], ends.most_negative
            summary = {"top": [pair_summary(p) for p in top], "most_negative": pair_summary(neg),
                       "restarts": ends.restarts, "hvps": op.hvps, "seconds": time.perf_counter() - started}
            if s.alignment_k:
                # the share of ‖∇F‖² (on the Hessian's examples) in the top-k eigenspace (Gur-Ari et al. 2018)
                grad = obj.value_and_grad()[1]
                summary["gradient_alignment"] = gradient_alignment(grad, ends.top[:s.alignment_k]).as_dict()
            if s.trace_samples:
                summary["trace"] = as_dict(hutchinson_trace(op, s.trace_samples, seed=at.seed))
            arrays = {"top_vectors": np.stack([np.asarray(p.eigenvector, dtype=np.float32) for p in top]),
                      "most_negative_vector": np.asarray(neg.eigenvector, dtype=np.float32)}
            return summary, arrays, (f"{at.name}: lambda_max={summary['top'][0]['eigenvalue']:.4g} "
                                     f"lambda_min={summary['most_negative']['eigenvalue']:.4g} "
                                     f"({summary['seconds']:.0f} s)")
        a.store.piece(path, self.key(at), f"{at.name}: curvature", eigenpairs, a.undefined_errors)
        return a.store.read(path, "reading the curvature")

    def cost(self, s, n, c, curvature: bool) -> float:
        # the Lanczos cap, one residual product per reported pair, Hutchinson probes, the alignment's gradient;
        # a smoothed Hessian (sigma > 0) averages every product over its samples
        pairs = s.curvature_top + 1
        smoothing = s.curvature_samples if s.curvature_sigma > 0 else 1
        return ((s.curvature_max_matvecs + pairs + s.trace_samples) * smoothing * c.hvp
                + (c.gradient if s.alignment_k else 0.0)) * n.curvature


def as_dict(x) -> dict:
    """A result dataclass (or dict) as a JSON-ready dict without its arrays."""
    if dataclasses.is_dataclass(x):
        return {k: v for k, v in dataclasses.asdict(x).items() if not isinstance(v, np.ndarray)}
    return dict(x)


def pair_summary(pair) -> dict:
    """An eigenpair as stored in curvature.json: everything but its vector."""
    d = as_dict(pair)
    d.pop("eigenvector", None)
    return d


CURVATURE = Curvature()
