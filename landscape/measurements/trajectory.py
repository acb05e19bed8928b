"""The trajectory: convexity along the path SGD took, toward the final checkpoint θ_T.

At every analyzed checkpoint θ_t (each with the batch-norm statistics of its own θ): F, ‖∇F‖²,
star-convexity on ONE function of θ for every checkpoint, F_B: the loss with the batch-norm statistics of
the analyzed examples computed at θ itself (train-mode batch norm, no running averages; the gradient
runs through the statistics; for a network without batch norm F_B = F): ⟨∇F_B(θ_t), θ_t − θ_T⟩ against
F_B(θ_t) − F_B(θ_T), judged against the rounding floor of that difference
(``trajectory.rounding_tolerance``). F_B is the function full-batch training of a batch-norm network
descends, defined at every θ; the earlier F_t (θ_t's statistics frozen, also at θ_T) put θ_T's weights
under another network's statistics, where its loss explodes (4.95e12 at a ResNet-32's epoch 0) and the
test passed trivially. Beside it: the PL* ratios ‖∇F‖²/(F − F*)
for F* = 0 and F* = the lowest F seen, the distance travelled ‖θ_t − θ_0‖/‖θ_0‖ and, with
``ntk_examples``, the drift of the empirical NTK from the first checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from ..theory import ntk, ntk_drift
from ..trajectory import FAILS, UNRESOLVED, pl_star_of, rounding_tolerance, star_convexity_of
from .base import PER_RUN, Measurement, tag

NTK_MAX_ENTRIES = 50_000_000  # n·k·P numbers of a full-output Jacobian (400 MB in float64)


class Trajectory(Measurement):
    name = "trajectory"
    file = "repeat_{repeat:d}.json"
    scope = PER_RUN
    figure = "trajectory"
    hint = "no analysis/trajectory/*.json (measure 'trajectory')"

    def path(self, run, repeat: int):
        return run.run_piece_dir(self.name) / self.file.format(repeat=repeat)

    def run_once(self, analysis, repeat: int) -> None:
        a, s = analysis, analysis.settings
        epochs = sorted(set(a.selected_epochs()) | {min(a.source.checkpoints), max(a.source.checkpoints)})
        first, final = epochs[0], epochs[-1]
        indices = a.repeat_indices(repeat)
        model0 = a.model_at(first, indices)[0]
        obj0 = a.objective(model0, params="all", indices=indices)
        key = {"context": a.context(f"{first}..{final}", obj0, "train", repeat),
               "settings": {"epochs": epochs, "target_epoch": final, "ntk_examples": s.ntk_examples,
                            "seed": a.direction_seed(repeat),
                            "star_function": STAR_FUNCTION + "; rounding tolerance",
                            "checkpoints": [a.checkpoint_name(e) for e in epochs]}}

        def compute():
            with a.bar(len(epochs) + 1, f"trajectory{tag(repeat)}") as bar:
                states, batch = {}, {}
                for e in [final] + [e for e in epochs if e != final]:
                    model = model0 if e == first else a.model_at(e, indices)[0]
                    obj = obj0 if e == first else a.objective(model, params="all", indices=indices)
                    value, grad = obj.value_and_grad()
                    states[e] = (obj, obj.theta0.to(torch.float64), float(value), grad)
                    f_b = a.objective(model, params="all", indices=indices, bn="batch")  # F_B: statistics at θ
                    value_b, grad_b = f_b.value_and_grad()
                    batch[e] = (f_b, float(value_b), grad_b)
                    bar.update(1)
                summary, arrays = path_quantities(states, epochs, batch)
                if s.ntk_examples:
                    drift, layout = ntk_drift_along(states, epochs, s.ntk_examples, key["settings"]["seed"])
                    arrays["ntk_drift"] = drift
                    summary.update(ntk_drift_final=float(drift[-1]), ntk_layout=layout)
                bar.update(1)
            return summary, arrays, (f"trajectory{tag(repeat)}: star-convex toward epoch {final} at "
                                     f"{summary['star_holds_fraction']:.0%} of {len(epochs) - 1} checkpoints ("
                                     f"{len(summary['star_unresolved_epochs'])} within rounding), PL* min "
                                     f"{summary['pl_zero_min']:.3g}, travelled ‖θ_T − θ_0‖/‖θ_0‖ = "
                                     f"{summary['travelled_final']:.3g}")
        a.store.piece(self.path(a.run, repeat), key, f"trajectory{tag(repeat)}", compute, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        points = min(n.all_checkpoints, n.checkpoints + 2)
        kernel = c.gradient * s.ntk_examples * n.outputs if s.ntk_examples else 0.0
        return s.repeats * points * ((2 * c.gradient + 2 * c.forward) * n.train + kernel)  # F and F_B


STAR_FUNCTION = "F_B: batch-norm statistics of the analyzed examples computed at θ (gradient through them), at θ_t and θ_T"


def path_quantities(states: dict, epochs: list[int], batch: dict) -> tuple[dict, dict]:
    """Star-convexity toward the last epoch, PL* ratios and distances, from (objective, θ, F, ∇F) per epoch
    and (F_B objective, F_B, ∇F_B) per epoch (``batch``).

    Both sides of star-convexity are of the one function F_B (``STAR_FUNCTION``): ⟨∇F_B(θ_t), θ_t − θ_T⟩
    against F_B(θ_t) − F_B(θ_T)."""
    first, final = epochs[0], epochs[-1]
    theta_T, f_T = states[final][1], states[final][2]
    theta_0 = states[first][1]
    rows = [e for e in epochs if e != final]
    values = np.array([states[e][2] for e in epochs])
    grad_sq = np.array([float(states[e][3] @ states[e][3]) for e in epochs])
    inner = np.array([float(batch[e][2].to(torch.float64) @ (states[e][1] - theta_T)) for e in rows])
    f_b_T = batch[final][1]
    cross = np.full(len(rows), f_b_T)
    tol = np.array([rounding_tolerance(batch[e][1], f_b_T, batch[e][0].precision, batch[e][0].num_examples)
                    for e in rows])
    star = star_convexity_of(inner, [batch[e][1] for e in rows], cross, tolerance=tol)
    pl_zero, pl_min = pl_star_of(values, grad_sq, "zero"), pl_star_of(values, grad_sq, "min")
    travelled = np.array([float((states[e][1] - theta_0).norm() / theta_0.norm()) for e in epochs])
    to_final = np.array([float((states[e][1] - theta_T).norm()) for e in epochs])
    arrays = {"epoch": np.array(epochs, float), "F": values, "grad_sq": grad_sq,
              "star_epoch": np.array(rows, float), "star_inner": star.inner, "star_gap": star.gap,
              "star_ratio": star.ratio, "star_holds": star.holds.astype(float), "star_status": star.status,
              "star_target_F": cross, "star_tolerance": star.tolerance, "star_margin": star.margin,
              "pl_zero": pl_zero.ratio, "pl_min": pl_min.ratio, "travelled": travelled, "distance_to_final": to_final}
    summary = {"target_epoch": final, "F_target": f_T, "star_holds_fraction": star.holds_fraction,
               "star_function": STAR_FUNCTION, "star_F_B": [batch[e][1] for e in rows], "star_F_B_target": f_b_T,
               "star_failing_epochs": [e for e, st in zip(rows, star.status) if st == FAILS],
               "star_unresolved_epochs": [e for e, st in zip(rows, star.status) if st == UNRESOLVED],
               "star_min_ratio": float(np.nanmin(star.ratio)) if np.isfinite(star.ratio).any() else None,
               "pl_zero_min": pl_zero.mu, "pl_min_min": pl_min.mu, "pl_min_f_star": pl_min.f_star,
               "travelled_final": float(travelled[-1])}
    return summary, arrays


def ntk_drift_along(states: dict, epochs: list[int], examples: int, seed: int):
    """‖K_t − K_0‖_F/‖K_0‖_F at every epoch, K the empirical NTK on the first ``examples`` examples.

    Every output's Jacobian when it fits in NTK_MAX_ENTRIES numbers, otherwise that of one
    seeded random unit direction of the outputs (said in the returned layout).
    """
    obj0 = states[epochs[0]][0]
    n = min(examples, obj0.num_examples)
    outputs = int(obj0._forward(obj0.theta0, obj0.images[:1]).reshape(-1).numel())
    projection = None
    if n * outputs * obj0.dim > NTK_MAX_ENTRIES:
        gen = torch.Generator().manual_seed(seed)
        projection = torch.randn(outputs, generator=gen, dtype=torch.float64)
        projection /= projection.norm()
    layout = {"examples": n, "outputs": outputs if projection is None else 1,
              "rows": "every output" if projection is None else "one random unit direction of the outputs",
              "parameters": obj0.dim}
    kernels = {e: ntk(states[e][0], chunk=8, projection=projection, examples=n) for e in epochs}
    return np.array([ntk_drift(kernels[e], kernels[epochs[0]]) for e in epochs]), layout


TRAJECTORY = Trajectory()
