"""How long an analysis will take, and settings that fit it into a time budget.

The cost of every measurement is a count of forward passes, gradients and Hessian-vector
products over known numbers of examples; ``UnitCosts`` measures the three per example on the
run's own model at the start, and ``plan`` turns settings into seconds per piece. Eigensolves
count the Lanczos steps they are expected to take (``expected_lanczos_steps``, at most their cap)
at about two products each (``LANCZOS_STEP_COST``). ``fit_to_budget``
shrinks the eigensolve, density, grid and probe settings together until the plan fits.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from .measurements import PER_RUN, REGISTRY, curvature_needed, interpolation_pairs
from .measurements.second_order import SECOND_ORDER_EVALUATIONS
from .results import atomic_write_json
from .settings import AnalysisSettings

__all__ = ["SECOND_ORDER_EVALUATIONS", "Sizes", "UnitCosts", "estimate", "expected_lanczos_steps", "fit_to_budget",
           "measure_unit_costs", "plan"]

# Lanczos steps to converge the wanted extreme pairs at tol 1e-3: about LANCZOS_STEPS_BASE + LANCZOS_STEPS_PER_PAIR
# per wanted pair (the top max(--n-top, --alignment-k) and the most negative one). Measured on resnet8 (16
# and 64 images, epochs 0-2): 14-16 steps for 2 pairs, 41-45 for 11 pairs; the cap ends the run earlier.
LANCZOS_STEPS_BASE = 10.0
LANCZOS_STEPS_PER_PAIR = 3.2
# A Lanczos step costs about two Hessian-vector products: the product, and reorthogonalizing against the
# basis (float64, memory-bound). Measured: resnet8 on 16 images 0.36-0.44 s a step against 0.17-0.18 s a
# product; VGG19-BN on 32 images 2.5 s against 1.2 s (README, paper-cpu).
LANCZOS_STEP_COST = 2.0


def expected_lanczos_steps(s: AnalysisSettings) -> float:
    """The Lanczos steps the curvature eigensolve is expected to take: the measured typical count for
    the pairs it wants, at most ``curvature_max_matvecs`` (the cap that ends a run that has not converged)."""
    wanted = max(s.curvature_top, s.alignment_k) + 1
    return min(float(s.curvature_max_matvecs), LANCZOS_STEPS_BASE + LANCZOS_STEPS_PER_PAIR * wanted)


def costed_settings(s: AnalysisSettings) -> AnalysisSettings:
    """The settings as the measurements' ``cost`` should count them: the eigensolve's cap replaced by its
    expected steps, each costing LANCZOS_STEP_COST products' time (the reorthogonalization), never more
    than the cap allows (each measurement's cost reads ``curvature_max_matvecs`` as its product count)."""
    expected = max(1, round(LANCZOS_STEP_COST * expected_lanczos_steps(s)))
    return dataclasses.replace(s, curvature_max_matvecs=min(s.curvature_max_matvecs, expected))


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

    cuda = getattr(objective, "device", None) is not None and objective.device.type == "cuda"

    def finished(fn):  # CUDA kernels run asynchronously: time them to their end
        fn()
        if cuda:
            torch.cuda.synchronize(objective.device)

    def best(fn):
        finished(fn)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            finished(fn)
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
    """Estimated seconds per measurement for the whole analysis, from each measurement's declared cost.

    Per checkpoint and repeat: the statistics of θ, ∇F when a measurement uses it and dominance does
    not compute it, the eigenpairs wherever a measurement run there needs them, and each
    measurement run there; once per run: interpolations and the trajectory.
    """
    seconds: dict[str, float] = {}
    s = costed_settings(s)

    def add(name: str, value: float) -> None:
        seconds[name] = seconds.get(name, 0.0) + value

    for repeat in range(s.repeats):
        active = [m for m in s.measurements if REGISTRY[m].scope != PER_RUN and REGISTRY[m].runs_at(repeat)]
        if not active:
            continue
        curvature = curvature_needed(s.measurements, repeat)
        add("statistics of θ", c.forward * n.train * n.checkpoints)
        if "dominance" not in active and any(REGISTRY[m].needs_gradient for m in active):
            add("gradient", c.gradient * n.train * n.checkpoints)
        if curvature and "curvature" not in active:
            add("curvature", REGISTRY["curvature"].cost(s, n, c, curvature) * n.checkpoints)
        for m in active:
            add(m, REGISTRY[m].cost(s, n, c, curvature) * n.checkpoints)
    if n.all_checkpoints >= 2:
        for m in s.measurements:
            if REGISTRY[m].scope == PER_RUN:
                add(m, REGISTRY[m].cost(s, n, c, False))
    return seconds


def estimate(analysis, epochs: list[int], budget_minutes: float | None) -> dict[str, float]:
    """Measure a forward pass, a gradient and an HVP at the first epoch of ``analysis``, print the estimated
    time of the whole analysis (with ``budget_minutes``, after shrinking its settings to fit) and return it."""
    s = analysis.settings
    indices = analysis.repeat_indices(0)
    model = analysis.model_at(epochs[0], indices)[0]
    obj = analysis.objective(model, indices=indices)
    cobj = analysis.curvature_objective(model, indices, s.seed, obj)
    costs = measure_unit_costs(cobj, repeats=1)  # per example, on the Hessian's examples
    checkpoints = analysis.source.checkpoints
    sizes = Sizes(train=len(indices), test=len(analysis.test_idx), curvature=cobj.num_examples,
                  checkpoints=len(epochs), all_checkpoints=len(checkpoints),
                  interpolation_pairs=len(interpolation_pairs(s.interpolation_pairs, checkpoints))
                  if len(checkpoints) >= 2 else 0,
                  outputs=int(analysis.source.train_config.get("num_classes") or 10))
    if budget_minutes is not None:
        chosen, record = fit_to_budget(s, budget_minutes, sizes, costs)
        analysis.settings = chosen.validate()
        if analysis.group.is_writer:
            atomic_write_json(record, analysis.run.budget)
        analysis.echo(f"budget {budget_minutes:g} min: " + (", ".join(
            f"{k} {a} → {b}" for k, (a, b) in record["changed"].items()) or "the settings fit as they are")
            + ("" if record["fits"] else " (still over: the smallest settings allowed)"))
    seconds = plan(analysis.settings, sizes, costs)
    largest = sorted(seconds.items(), key=lambda kv: -kv[1])[:4]
    analysis.echo(f"estimated time: {sum(seconds.values()) / 60:.1f} min ({costs.describe(sizes.curvature)}; "
                  f"eigensolves at {expected_lanczos_steps(analysis.settings):.0f} expected Lanczos steps, "
                  f"cap {analysis.settings.curvature_max_matvecs}) — "
                  + ", ".join(f"{k} {v / 60:.1f}" for k, v in largest) + " min")
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
