"""Hessian-subset convergence: λ_max, λ_min and ∇F's share in the top-k eigenspace on growing curvature subsets.

The curvature measurement computes the Hessian on a balanced ``curvature_subset`` of the analyzed
examples. This measurement repeats that computation at one checkpoint on subsets of 32, 64, 128,
… examples up to all analyzed ones, each drawn exactly as ``curvature_subset`` draws its subset (so
the row of the curvature run's size is its number), with each eigenvalue's residual bound: a reader
sees whether the subset decides the number.
"""

from __future__ import annotations

import time

import numpy as np

from ..curvature import HessianOperator, bound_scope, gradient_alignment, spectrum_ends
from ..data import balanced_subset
from ..errors import LandscapeError
from .base import PER_RUN, Measurement


def subset_sizes(examples: int, smallest: int = 32, largest: int | None = None) -> list[int]:
    """smallest, 2·smallest, 4·smallest, … below the top size, then the top size (``largest``, at most all)."""
    top = examples if largest is None else min(largest, examples)
    sizes, size = [], max(1, smallest)
    while size < top:
        sizes.append(size)
        size *= 2
    return sizes + [top]


def subset_row(objective, size: int, settings, seed: int, lead=None) -> dict:
    """The extreme eigenpairs of the Hessian of ``objective`` (one subset) and ∇F's top-k share, as one row.

    The solver is the curvature measurement's (``spectrum_ends``, same tolerance, basis and product
    cap); ``lead(op, solve)`` runs it across ranks (``Group.lead_operator``), or directly.
    """
    s = settings
    op = HessianOperator(objective, objective.theta0)
    bounds = bound_scope(op)
    k = max(1, s.alignment_k)

    def solve(served):
        return spectrum_ends(served, k_top=k, k_bottom=1, tol=s.curvature_tol, max_basis=s.curvature_max_basis,
                             max_matvecs=s.curvature_max_matvecs, seed=seed, measured_top=1, bound_for=bounds)
    started = time.perf_counter()
    ends = lead(op, solve) if lead is not None else solve(op)
    top, neg = ends.top[0], ends.most_negative
    row = {"size": size, "lambda_max": top.eigenvalue, "lambda_max_bound": top.error_bound,
           "lambda_max_converged": top.converged, "lambda_min": neg.eigenvalue, "lambda_min_bound": neg.error_bound,
           "lambda_min_converged": neg.converged, "hvps": op.hvps, "seconds": 0.0, "alignment": None}
    if s.alignment_k:
        alignment = gradient_alignment(objective.value_and_grad()[1], ends.top[:s.alignment_k])
        row["alignment"] = alignment.as_dict()
    row["seconds"] = time.perf_counter() - started
    return row


class HessianSubsets(Measurement):
    name = "hessian_subsets"
    file = "hessian_subsets.json"
    scope = PER_RUN
    figure = "hessian_subsets"
    hint = f"no analysis/{name}/{file} (measure '{name}')"

    def path(self, run):
        return run.run_piece_dir(self.name) / self.file

    def epoch(self, analysis) -> int:
        """The checkpoint measured: ``hessian_subsets_epoch``, or the last analyzed one."""
        chosen, analyzed = analysis.settings.hessian_subsets_epoch, analysis.selected_epochs()
        if chosen is None:
            return analyzed[-1]
        if chosen not in analyzed:
            raise LandscapeError(f"hessian_subsets_epoch {chosen} is not an analyzed checkpoint ({analyzed})")
        return chosen

    def run_once(self, analysis, repeat: int) -> None:
        if repeat:
            return  # one checkpoint, the first repeat's examples: enough to see whether the subset decides
        s, epoch = analysis.settings, self.epoch(analysis)
        indices, seed = analysis.repeat_indices(0), analysis.direction_seed(0)
        model = analysis.model_at(epoch, indices)[0]
        sizes = subset_sizes(len(indices), s.hessian_subsets_smallest, s.hessian_subsets_largest)
        key = {"context": analysis.context(epoch, analysis.objective(model, indices=indices), "train", 0),
               "settings": {"sizes": sizes, "tol": s.curvature_tol, "max_matvecs": s.curvature_max_matvecs,
                            "max_basis": s.curvature_max_basis, "alignment_k": s.alignment_k, "seed": seed,
                            "subsets": "balanced subsets of the analyzed examples, drawn as curvature_subset draws"}}

        def compute():
            rows = []
            for size in sizes:
                within = balanced_subset(analysis.source.labels[indices], size if size < len(indices) else None,
                                         seed + 2)
                objective = analysis.objective(model, indices=indices[within])
                rows.append(subset_row(objective, size, s, seed, lambda op, solve: analysis.group.lead_operator(
                    op, solve, "the Hessian eigensolvers")))
            arrays = {k: np.array([r[k] for r in rows], dtype=float) for k in
                      ("size", "lambda_max", "lambda_max_bound", "lambda_min", "lambda_min_bound")}
            first, last = rows[0], rows[-1]
            return {"epoch": epoch, "examples": len(indices), "rows": rows}, arrays, (
                f"epoch {epoch}: Hessian on {first['size']} → {last['size']} examples: λ_max "
                f"{first['lambda_max']:.4g} → {last['lambda_max']:.4g}, λ_min {first['lambda_min']:.4g} → "
                f"{last['lambda_min']:.4g}")
        analysis.store.piece(self.path(analysis.run), key, f"epoch {epoch}: Hessian subsets", compute,
                             analysis.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        # one eigensolver run (products, residuals, the alignment's gradient) per subset, on that subset
        sizes = subset_sizes(n.train, s.hessian_subsets_smallest, s.hessian_subsets_largest)
        per_example = (s.curvature_max_matvecs + 2) * c.hvp + (c.gradient if s.alignment_k else 0.0)
        return per_example * sum(sizes)


HESSIAN_SUBSETS = HessianSubsets()
