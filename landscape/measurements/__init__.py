"""The measurements, one module each, in the order an analysis runs them at a checkpoint.

``REGISTRY`` maps each ``--measure`` name to its declaration (``base.Measurement``): result file,
scope, whether it needs the Hessian's eigenpairs, how it computes, what it costs and its figure.
"""

from __future__ import annotations

from .base import PER_CHECKPOINT, PER_REPEAT, PER_RUN, At, Measurement
from .curvature import CURVATURE
from .dominance import DOMINANCE
from .hessian_subsets import HESSIAN_SUBSETS
from .interpolation import INTERPOLATION, interpolation_pairs
from .probes import PROBES
from .second_order import SECOND_ORDER
from .spectrum import SPECTRUM
from .surface import RANDOM_SURFACE, SURFACE, surface_extent
from .trajectory import TRAJECTORY

REGISTRY: dict[str, Measurement] = {m.name: m for m in (
    DOMINANCE, CURVATURE, SPECTRUM, PROBES, SECOND_ORDER, SURFACE, RANDOM_SURFACE, INTERPOLATION, TRAJECTORY,
    HESSIAN_SUBSETS)}


def curvature_needed(measurements, repeat: int) -> bool:
    """Whether the Hessian's eigenpairs are computed at ``repeat``: asked for, or needed by a measurement run there."""
    return any(REGISTRY[m].runs_at(repeat) and (m == "curvature" or REGISTRY[m].needs_curvature)
               for m in measurements)


__all__ = ["REGISTRY", "At", "Measurement", "PER_REPEAT", "PER_CHECKPOINT", "PER_RUN", "curvature_needed",
           "interpolation_pairs", "surface_extent"]
