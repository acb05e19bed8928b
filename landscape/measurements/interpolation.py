"""Goodfellow-style interpolations: train and test loss along θ(α) = (1−α)·θ_a + α·θ_b between checkpoints."""

from __future__ import annotations

import numpy as np

from .. import measure
from ..errors import LandscapeError
from .base import PER_RUN, Measurement

INTERPOLATION_OUTSIDE = 0.5  # the grid reaches this far past each end: α ∈ [−0.5, 1.5]
BN_POLICY = {"recompute": "recompute", "interpolate": "frozen", "batch": "batch"}  # --interp-bn → Objective's bn


def interpolation_pairs(spec: str, checkpoints) -> list[tuple[int, int]]:
    """(from, to) checkpoint epochs named by ``spec`` (--interp-pairs): init-final, consecutive, to-final, A-B."""
    epochs = sorted(checkpoints)
    pairs = []
    for kind in spec.split(","):
        kind = kind.strip()
        if kind == "init-final":
            pairs.append((epochs[0], epochs[-1]))
        elif kind == "consecutive":
            pairs += list(zip(epochs[:-1], epochs[1:]))
        elif kind == "to-final":
            pairs += [(e, epochs[-1]) for e in epochs[:-1]]
        elif "-" in kind and all(p.isdigit() for p in kind.split("-")):
            a, b = (int(p) for p in kind.split("-"))
            if a not in checkpoints or b not in checkpoints:
                raise LandscapeError(f"interpolation pair {kind}: no checkpoint for one of its epochs")
            pairs.append((a, b))
        elif kind:
            raise LandscapeError(f"unknown interpolation pair {kind!r}: use init-final, consecutive, to-final or A-B")
    return list(dict.fromkeys(pairs))


def interpolation_alphas(points: int, outside: float = INTERPOLATION_OUTSIDE) -> np.ndarray:
    """The α grid: ``points`` evenly spaced in [0, 1], α = 0 and α = 1 exactly, continued at the same
    spacing ``outside`` past each end (e.g. 21 points: spacing 0.05, 41 in all from −0.5 to 1.5).

    α = i/(points − 1) for integer i, so both checkpoints themselves are evaluated exactly.
    """
    beyond = int(np.floor(outside * (points - 1) + 1e-9))
    return np.arange(-beyond, points + beyond) / (points - 1)


class Interpolation(Measurement):
    name = "interpolation"
    file = "epoch_{a:04d}_to_{b:04d}.json"
    scope = PER_RUN
    figure = "interpolation"
    hint = "no analysis/interpolation/*.json (measure 'interpolation')"

    def path(self, run, a: int, b: int):
        return run.run_piece_dir(self.name) / self.file.format(a=a, b=b)

    def run_once(self, analysis, repeat: int) -> None:
        if repeat == 0:
            for a, b in interpolation_pairs(analysis.settings.interpolation_pairs, analysis.source.checkpoints):
                self.segment(analysis, a, b)

    def segment(self, an, a: int, b: int) -> None:
        """Train and test loss along θ(α) from checkpoint ``a`` to ``b``, with the chosen batch-norm policy."""
        s = an.settings
        alphas = interpolation_alphas(s.interpolation_points)
        model_a, model_b = an.load_checkpoint(a), an.load_checkpoint(b)
        path = self.path(an.run, a, b)
        policy = s.interpolation_bn
        bn = BN_POLICY[policy]
        recompute = an.source.images[an.train_idx] if bn == "recompute" else None
        objs = {split: an.objective(model_a, split, params="all", bn=bn, recompute_images=recompute)
                for split in ("train", "test")}
        key = {"context": {split: an.context(f"{a}->{b}", o, split) for split, o in objs.items()},
               "settings": {"alphas": alphas.tolist(), "bn_interpolation": policy, "from_epoch": a, "to_epoch": b}}

        def compute():
            theta_a = objs["train"].theta0
            theta_b = objs["train"].flatten(dict(model_b.named_parameters())).detach()
            bufs = ({n: t.detach() for n, t in model_a.named_buffers()},
                    {n: t.detach() for n, t in model_b.named_buffers()}) if policy == "interpolate" else (None, None)
            arrays, summary = {"alpha": alphas}, {}
            for split, o in objs.items():
                with an.bar(len(alphas), f"interpolation {a}->{b} ({split})") as bar:
                    res = measure.interpolation(o, theta_a, theta_b, alphas, *bufs,
                                                store=an.store.partial(path, key, f".{split}"), progress=bar)
                arrays[f"{split}_loss"], arrays[f"{split}_acc"] = res.loss, res.acc
                summary[split] = measure.monotonicity(alphas, res.loss).as_dict()
            return summary, arrays, (f"interpolation {a}->{b}: train loss monotone on [0,1]: "
                                     f"{summary['train']['monotone']} (largest bump "
                                     f"{summary['train']['largest_bump']:.3g})")
        an.store.piece(path, key, f"interpolation {a}->{b}", compute, an.undefined_errors)

    def cost(self, s, n, c, curvature: bool) -> float:
        recompute = 2 if s.interpolation_bn == "recompute" else 0
        points = len(interpolation_alphas(s.interpolation_points))
        return n.interpolation_pairs * points * c.forward * ((1 + recompute) * n.train + n.test)


INTERPOLATION = Interpolation()
