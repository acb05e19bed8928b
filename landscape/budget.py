"""How long an analysis will take, and settings that fit it into a time budget.

The cost of every measurement is a count of forward passes, gradients and Hessian-vector
products over known numbers of examples; ``UnitCosts`` measures the three per example on the
run's own model at the start, and ``plan`` turns settings into seconds per piece. Eigensolves
count their product cap (an upper bound: Lanczos often stops earlier). ``fit_to_budget``
shrinks the eigensolve, density, grid and probe settings together until the plan fits.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from .settings import AnalysisSettings

SECOND_ORDER_EVALUATIONS = 100  # two bracketing line searches and the plane search, typically


@dataclass
class UnitCosts:
    """Seconds per example of one forward pass, one gradient and one Hessian-vector product."""

    forward: float
    gradient: float
    hvp: float

    def describe(self, examples: int) -> str:
        return (f"forward {self.forward * examples:.3g} s, gradient {self.gradient * examples:.3g} s, "
                f"Hessian-vector product {self.hvp * examples:.3g} s on {examples} examples")


def measure_unit_costs(objective, repeats: int = 2) -> UnitCosts:
    """Time F, ∇F and one Hv on ``objective`` (best of ``repeats``, after one warm-up of each)."""
    import torch

    v = torch.randn(objective.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / objective.num_examples

    return UnitCosts(best(objective.evaluate), best(objective.value_and_grad),
                     best(lambda: objective.hvp(None, v)))


@dataclass
class Sizes:
    """How many examples and checkpoints each part of the analysis runs on."""

    train: int              # analyzed training examples per repeat
    test: int
    curvature: int          # examples of the Hessian
    checkpoints: int        # analyzed checkpoints
    all_checkpoints: int    # of the run (trajectory and interpolation use them)
    interpolation_pairs: int
    outputs: int = 10


def plan(s: AnalysisSettings, n: Sizes, c: UnitCosts) -> dict[str, float]:
    """Estimated seconds per measurement for the whole analysis."""
    f, g, h = c.forward, c.gradient, c.hvp
    per = {}  # per checkpoint and repeat
    per["statistics of θ"] = f * n.train
    if "dominance" in s.measurements:
        per["dominance"] = g * n.train + f * (n.test + n.train)
    elif {"probes", "second_order", "surface"} & set(s.measurements):
        per["gradient"] = g * n.train
    curvature = {"curvature", "second_order"} & set(s.measurements) or "surface" in s.measurements
    if curvature:
        # the Lanczos cap, one residual product per reported pair, Hutchinson probes, the alignment's gradient
        pairs = s.curvature_top + 1
        per["curvature"] = ((s.curvature_max_matvecs + pairs + s.trace_samples) * h
                            + (g if s.alignment_k else 0.0)) * n.curvature
    if "spectrum" in s.measurements:
        per["spectrum"] = s.spectrum_probes * s.spectrum_steps * h * n.curvature
    if "probes" in s.measurements:
        directions = 1 + s.probe_gaussian + s.probe_filter + (2 if curvature else 0)
        per["probes"] = directions * 2 * s.probe_steps * f * n.train
    if "second_order" in s.measurements:
        per["second_order"] = SECOND_ORDER_EVALUATIONS * f * n.train
    seconds = {k: v * n.checkpoints * s.repeats for k, v in per.items()}
    pictures = {"surface": "surface" in s.measurements, "random_surface": "random_surface" in s.measurements}
    for name, on in pictures.items():
        if on:
            seconds[name] = s.surface_points ** 2 * f * n.train * n.checkpoints
    if "interpolation" in s.measurements and n.all_checkpoints >= 2:
        recompute = 2 if s.interpolation_bn == "recompute" else 0
        seconds["interpolation"] = n.interpolation_pairs * s.interpolation_points * f * (
            (1 + recompute) * n.train + n.test)
    if "trajectory" in s.measurements and n.all_checkpoints >= 2:
        points = min(n.all_checkpoints, n.checkpoints + 2)
        ntk = g * s.ntk_examples * n.outputs if s.ntk_examples else 0.0
        seconds["trajectory"] = s.repeats * points * ((g + 2 * f) * n.train + ntk)
    return seconds


def fit_to_budget(s: AnalysisSettings, minutes: float, n: Sizes, c: UnitCosts) -> tuple[AnalysisSettings, dict]:
    """Settings whose plan fits ``minutes`` (shrinking products, grids and probes together), and
    a record of what was chosen. Unchanged when the plan already fits."""
    budget = 60.0 * minutes
    before = sum(plan(s, n, c).values())
    chosen, scale = s, 1.0
    for _ in range(40):
        if sum(plan(chosen, n, c).values()) <= budget:
            break
        scale *= 0.8
        chosen = dataclasses.replace(
            s, curvature_max_matvecs=max(8, int(s.curvature_max_matvecs * scale)),
            spectrum_steps=max(8, int(s.spectrum_steps * scale)),
            surface_points=_odd(max(5, int(s.surface_points * math.sqrt(scale)))),
            interpolation_points=max(5, int(s.interpolation_points * scale)),
            probe_steps=max(3, int(s.probe_steps * scale)))
    after = sum(plan(chosen, n, c).values())
    changed = {k: [getattr(s, k), getattr(chosen, k)] for k in
               ("curvature_max_matvecs", "spectrum_steps", "surface_points", "interpolation_points", "probe_steps")
               if getattr(s, k) != getattr(chosen, k)}
    record = {"budget_minutes": minutes, "estimate_before_s": before, "estimate_after_s": after,
              "fits": after <= budget, "changed": changed}
    return chosen, record


def _odd(k: int) -> int:
    """Surfaces keep an odd number of points per axis, so the checkpoint is on the grid."""
    return k if k % 2 else k + 1
