"""Directions in parameter space, each carrying its own description into the results.

Kinds: the (negative) gradient, seeded Gaussian, filter-normalized random (Li et al. 2018),
Hessian eigenvectors, and the difference of two checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import LandscapeError
from .objective import Objective


@dataclass
class Direction:
    """A flat vector the size of the objective's θ, and what it is."""

    vector: torch.Tensor
    kind: str
    seed: int | None = None
    normalization: str = "unit"
    info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.kind if self.seed is None else f"{self.kind}_{self.seed}"

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "seed": self.seed,
                "normalization": self.normalization, "norm": float(self.vector.norm()), **self.info}


class UndefinedDirection(LandscapeError, ValueError):
    """A direction that cannot be normalized: the vector is zero (e.g. ∇F = 0) or not finite."""


def _unit(v: torch.Tensor) -> torch.Tensor:
    norm = v.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise UndefinedDirection("cannot normalize a zero or non-finite direction"
                                 + (" (the vector is zero)" if norm == 0 else f" (its norm is {float(norm)})"))
    return v / norm


def gradient_direction(grad: torch.Tensor, objective: Objective, negative: bool = False) -> Direction:
    """±∇F/‖∇F‖ in the objective's precision; UndefinedDirection when ∇F = 0 (or is not finite)."""
    try:
        v = _unit(grad.to(torch.float64)) * (-1.0 if negative else 1.0)
    except UndefinedDirection:
        raise UndefinedDirection(f"the gradient direction is undefined: ||grad F|| = {float(grad.norm())}") from None
    return Direction(v.to(objective.dtype), "neg_gradient" if negative else "gradient",
                     info={"grad_norm": float(grad.norm())})


def _randn(objective: Objective, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(objective.dim, generator=gen, dtype=torch.float64).to(objective.device, objective.dtype)


def gaussian_direction(objective: Objective, seed: int) -> Direction:
    """A seeded standard Gaussian direction scaled to unit norm (uniform on the sphere)."""
    return Direction(_unit(_randn(objective, seed)), "gaussian", seed)


def filter_normalized_direction(objective: Objective, theta: torch.Tensor, seed: int,
                                unit: bool = False) -> Direction:
    """Li et al. (2018): a Gaussian direction whose every filter has the norm of θ's filter.

    A filter is one output slice (dim 0) of a weight with two or more dimensions (convolution
    kernels, linear rows). One-dimensional parameters (biases, batch-norm scales and shifts)
    get zero, Li et al.'s default, so the direction moves only the weights whose scale it
    mirrors. With ``unit=True`` the result is rescaled to norm 1 (for probes along unit
    directions), its shape still filter-normalized.
    """
    d = _randn(objective, seed)
    parts = []
    for (name, piece), weight in zip(objective.unflatten(d).items(), objective.unflatten(theta).values()):
        if piece.dim() <= 1:
            parts.append(torch.zeros_like(piece).reshape(-1))
            continue
        dims = tuple(range(1, piece.dim()))
        norm = lambda t: torch.linalg.vector_norm(t, dim=dims, keepdim=True)  # noqa: E731
        scale = norm(weight) / norm(piece).clamp_min(1e-30)
        parts.append((piece * scale).reshape(-1))
    v = torch.cat(parts)
    info = {"filter_norm_scale": float(v.norm())}
    if unit:
        return Direction(_unit(v), "filter_normalized", seed, "filter+unit", info)
    return Direction(v, "filter_normalized", seed, "filter", info)


def eigenvector_direction(vector, eigenvalue: float, objective: Objective, rank: str, info: dict | None = None) -> Direction:
    v = torch.as_tensor(vector, dtype=torch.float64)
    return Direction(_unit(v).to(objective.device, objective.dtype), f"hessian_{rank}",
                     info={"eigenvalue": float(eigenvalue), **(info or {})})


def orthogonalize(direction: Direction, against: Direction) -> Direction:
    """Remove ``against``'s component (Gram–Schmidt in float64) and renormalize."""
    a = _unit(against.vector.to(torch.float64))
    v = direction.vector.to(torch.float64)
    overlap = float(v @ a) / float(v.norm())
    v = _unit(v - (v @ a) * a).to(direction.vector.dtype)
    return Direction(v, direction.kind, direction.seed, direction.normalization,
                     {**direction.info, "orthogonalized_against": against.name, "cosine_before": overlap})
