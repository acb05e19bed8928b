"""Gradient dominance: F, ‖∇F‖² over all and hidden parameters, their ratio, per-layer norms, accuracies."""

from __future__ import annotations

from .. import measure
from ..models import parameter_groups
from .base import PER_REPEAT, At, Measurement


class Dominance(Measurement):
    name = "dominance"
    file = "dominance.json"
    scope = PER_REPEAT
    figure = "dominance"
    hint = f"no track.jsonl and no analysis/epoch_*/{file}"

    def run(self, at: At) -> None:
        a, s = at.analysis, at.settings
        key = {"context": at.context(at.full), "settings": {"test_examples": len(a.test_idx)}}

        def compute():
            test = a.objective(at.model, split="test", params="all")
            dominance, full_grad = measure.gradient_dominance(at.full, None, parameter_groups(at.full.model)["hidden"],
                                                              test)
            a.check_finite(dominance.F, at.epoch)
            recompute = s.bn_stats == "recompute"
            other = at.stored_buffers if recompute else at.recomputed_buffers
            result = dominance.as_dict()
            result["F_checkpoint_stats" if recompute else "F_recomputed_stats"] = at.full.with_buffers(other).value()
            result["F_recomputed_stats" if recompute else "F_checkpoint_stats"] = dominance.F
            result["bn_stats"] = s.bn_stats
            at.offer_gradient(at.full, full_grad)
            return result, None, (
                f"{at.name}: F={dominance.F:.4g} (BN statistics of the checkpoint: "
                f"{result['F_checkpoint_stats']:.4g}, of θ: {result['F_recomputed_stats']:.4g}) ||grad F||^2="
                f"{dominance.grad_sq:.4g} ratio={dominance.ratio:.4g} train acc={dominance.train_acc:.3f}")
        a.store.piece(at.out / self.file, key, f"{at.name}: dominance", compute, a.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        return c.gradient * n.train + c.forward * (n.test + n.train)


DOMINANCE = Dominance()
