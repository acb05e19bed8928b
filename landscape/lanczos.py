"""Lanczos with full reorthogonalization: the one Krylov machinery behind the eigensolver (and so the
sharpness tracker) and the density.

``LanczosBasis`` grows an orthonormal basis V of the Krylov space of a symmetric operator H and
the projection T = VᵀHV, one product H·v per step; every new vector is orthogonalized twice
against the whole basis (classical Gram–Schmidt, twice), so Ritz values never repeat as
"ghosts" and the Ritz residuals |β·s_last| are the true ones up to rounding. ``restart`` keeps
chosen Ritz vectors and continues from the last Lanczos vector (thick restart, Wu & Simon
2000): T is then diagonal on the kept vectors, with one coupling row to the next vector.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

BREAKDOWN = 1e-10  # β ≤ BREAKDOWN·‖H·v‖: H·v lies in the basis, the Krylov space is invariant


class LanczosBasis:
    """An orthonormal Krylov basis of a symmetric operator, at most ``capacity`` vectors plus the next one.

    ``size`` vectors have had H applied; T[:size, :size] is VᵀHV on them and ``beta`` the norm of
    the part of H·V that leaves their span, along ``V[:, size]``. ``products`` counts H·v.
    """

    def __init__(self, matvec: Callable[[np.ndarray], np.ndarray], start: np.ndarray, capacity: int):
        """Start from ``start`` (any nonzero vector); hold at most ``capacity`` applied vectors."""
        n = len(start)
        self.matvec, self.capacity = matvec, int(min(capacity, n))
        # column-major: each basis vector is contiguous, so the reorthogonalization streams memory once per
        # vector (row-major costs ~3× on a 20 M-parameter network, where it is memory-bound)
        self.V = np.zeros((n, self.capacity + 1), order="F")
        self.T = np.zeros((self.capacity, self.capacity))
        self.V[:, 0] = start / np.linalg.norm(start)
        self.size, self.beta, self.products = 0, 0.0, 0
        self.invariant = False  # the last step found no new direction

    def extend(self) -> bool:
        """Apply H to the next basis vector; False (and ``invariant``) when H·v adds no new direction."""
        j = self.size
        w = np.asarray(self.matvec(self.V[:, j]), dtype=np.float64).reshape(-1)
        self.products += 1
        image_norm = np.linalg.norm(w)
        Q = self.V[:, :j + 1]
        h = Q.T @ w
        w -= Q @ h
        correction = Q.T @ w
        w -= Q @ correction
        h += correction
        self.T[:j + 1, j] = h
        self.T[j, :j + 1] = h
        self.size = j + 1
        self.beta = float(np.linalg.norm(w))
        self.invariant = self.beta <= BREAKDOWN * image_norm or self.size == len(w)
        if self.invariant:
            self.beta = 0.0
            self.V[:, self.size] = 0.0
        else:
            self.V[:, self.size] = w / self.beta
        return not self.invariant

    def add_direction(self, vector: np.ndarray) -> bool:
        """After an invariant step, continue from ``vector`` orthogonalized against the basis (its coupling is 0)."""
        Q = self.V[:, :self.size]
        w = vector - Q @ (Q.T @ vector)
        w -= Q @ (Q.T @ w)
        norm = np.linalg.norm(w)
        if norm <= BREAKDOWN * np.linalg.norm(vector):
            return False
        self.V[:, self.size] = w / norm
        self.invariant = False
        return True

    @property
    def full(self) -> bool:
        return self.size >= self.capacity

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values ascending, coefficients S so that V·S are the Ritz vectors, residual norms |β·S_last|)."""
        values, S = np.linalg.eigh(self.T[:self.size, :self.size])
        return values, S, np.abs(self.beta * S[-1, :])

    def vectors(self, S: np.ndarray) -> np.ndarray:
        """The Ritz vectors V·S (columns, unit norm)."""
        return self.V[:, :self.size] @ S

    def restart(self, keep: np.ndarray):
        """Keep the Ritz pairs with indices ``keep`` and continue from the current next vector."""
        values, S, _ = self.ritz()
        S = S[:, keep]
        k = len(keep)
        coupling = self.beta * S[-1, :]
        following = self.V[:, self.size].copy()
        self.V[:, :k] = self.vectors(S)
        self.V[:, k] = following
        self.T[:] = 0.0
        self.T[:k, :k] = np.diag(values[keep])
        if k < self.capacity:
            self.T[k, :k] = coupling
            self.T[:k, k] = coupling
        self.size = k
