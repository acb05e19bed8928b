"""The quantities of Allen-Zhu, Li & Song (2019) measured on a network: NTK, depth scaling, the lemma's bound, the mechanism.

* ``ntk``: the empirical neural tangent kernel K = J Jᵀ over n examples, J the Jacobian of the
  network outputs with respect to the objective's parameters θ; ``ntk_drift`` how far K moved.
  The theorem's proof keeps the network near its initialization, where K barely changes.
* ``depth_scaling_fit``: whether the gradient at initialization grows polynomially or
  exponentially in the depth L (the theorem's bounds are polynomial in L).
* ``dominance_against_lemma``: the measured gradient-dominance constant next to the shape
  δ/n² of the paper's lower bound ‖∇F‖² ≥ Ω(F·δm/(dn²)).
* The mechanism behind the proof, between θ_0 and θ_t: ``activation_flips`` (the fraction of
  ReLU signs that changed), ``spectral_movement`` (‖W_l(t) − W_l(0)‖₂ per layer, and relative to
  ‖W_l(0)‖₂), ``ntk_min_eigenvalue`` (λ_min of the NTK Gram matrix).

Pure functions of an ``Objective`` (or of arrays); no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacrev

from .errors import LandscapeError


def jacobian(objective, theta: torch.Tensor | None = None, chunk: int = 64,
             projection: torch.Tensor | None = None, examples: int | None = None) -> torch.Tensor:
    """∂f(x_i)_a/∂θ for every example i and output a: a (n·k) × P float64 matrix, rows example-major.

    Row i·k + a is output coordinate a of example i; P is the objective's parameter count
    (its subset: 'hidden' gives the W_l the theorem trains). Computed with ``torch.func.jacrev``
    on ``chunk`` examples at a time; memory n·k·P numbers. With ``projection`` (a k-vector u),
    the rows are ∂⟨u, f(x_i)⟩/∂θ instead (n × P): the kernel of one fixed output direction, for
    networks too large to hold every output's Jacobian. ``examples``: the first that many only.
    Batch norm must be 'frozen', so that
    one example's outputs do not depend on the others.
    """
    if objective.bn != "frozen":
        raise LandscapeError(f"the NTK needs bn='frozen' (per-example outputs), not {objective.bn!r}")
    theta = objective._theta(theta).detach()
    rows = []
    n = objective.num_examples if examples is None else min(examples, objective.num_examples)
    for start in range(0, n, chunk):
        x = objective.images[start:min(start + chunk, n)]
        if projection is None:
            jac = jacrev(lambda t: objective._forward(t, x))(theta)  # chunk × k × P (or chunk × P)
        else:
            u = projection.to(objective.device, objective.dtype)
            jac = jacrev(lambda t: objective._forward(t, x) @ u)(theta)  # chunk × P
        rows.append(jac.reshape(-1, objective.dim).to(torch.float64))
    return torch.cat(rows)


def ntk(objective, theta: torch.Tensor | None = None, chunk: int = 64,
        projection: torch.Tensor | None = None, examples: int | None = None) -> torch.Tensor:
    """The empirical NTK K = J Jᵀ at θ (float64, (n·k) × (n·k); see ``jacobian`` for the layout).

    For one output (k = 1) K is n × n with K_ij = ⟨∇_θ f(x_i), ∇_θ f(x_j)⟩; with k outputs it holds
    every pair of output coordinates, K_{(i,a),(j,b)} = ⟨∇_θ f(x_i)_a, ∇_θ f(x_j)_b⟩.
    """
    j = jacobian(objective, theta, chunk, projection, examples)
    return j @ j.T


def ntk_drift(kernel: torch.Tensor, kernel0: torch.Tensor) -> float:
    """‖K − K₀‖_F / ‖K₀‖_F: the relative change of the kernel since initialization."""
    if kernel.shape != kernel0.shape:
        raise LandscapeError(f"kernels of shapes {tuple(kernel.shape)} and {tuple(kernel0.shape)} cannot be compared")
    base = float(torch.linalg.matrix_norm(kernel0.to(torch.float64)))
    if base == 0:
        raise LandscapeError("the initial kernel is zero: its relative drift is undefined")
    return float(torch.linalg.matrix_norm((kernel - kernel0).to(torch.float64))) / base


@dataclass
class LogFit:
    """log g = intercept + slope·t, fitted by least squares; ``rms`` of the residuals in log g."""

    intercept: float
    slope: float
    rms: float


@dataclass
class DepthFit:
    """Both fits of gradient norm against depth and which one fits better (smaller residual).

    polynomial: log g = a + p·log L (g ∝ L^p); exponential: log g = a + r·L (g ∝ e^{rL}).
    Both have two parameters, so their residuals compare directly.
    """

    polynomial: LogFit
    exponential: LogFit
    better: str

    @property
    def power(self) -> float:
        return self.polynomial.slope

    @property
    def rate(self) -> float:
        return self.exponential.slope


def _log_fit(t: np.ndarray, y: np.ndarray) -> LogFit:
    design = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return LogFit(float(coef[0]), float(coef[1]), float(np.sqrt(np.mean(resid ** 2))))


def depth_scaling_fit(depths, grad_norms) -> DepthFit:
    """Fit the gradient norms at initialization against depth, polynomially and exponentially.

    Needs at least three distinct depths ≥ 1 (two points fit any two-parameter curve exactly) and
    positive norms. ``better`` is the fit with the smaller rms residual in log g, or 'tie'.
    """
    L = np.asarray(depths, dtype=np.float64)
    g = np.asarray(grad_norms, dtype=np.float64)
    if L.shape != g.shape or L.ndim != 1:
        raise LandscapeError(f"need one gradient norm per depth, got {L.shape} depths and {g.shape} norms")
    if len(np.unique(L)) < 3:
        raise LandscapeError("a depth fit needs at least three distinct depths")
    if not (np.all(L >= 1) and np.all(np.isfinite(g)) and np.all(g > 0)):
        raise LandscapeError("depths must be ≥ 1 and gradient norms finite and > 0")
    poly = _log_fit(np.log(L), np.log(g))
    expo = _log_fit(L, np.log(g))
    scale = max(poly.rms, expo.rms)
    better = "tie" if abs(poly.rms - expo.rms) <= 1e-12 * max(scale, 1.0) else \
        "polynomial" if poly.rms < expo.rms else "exponential"
    return DepthFit(poly, expo, better)


@dataclass
class DominanceComparison:
    """The measured gradient-dominance constant beside the shape of the paper's lower bound.

    ``c_mean`` = min_t ‖∇F‖²/F with F the objective's *mean* loss (½‖f − y‖² averaged over the
    n examples). The paper's F is the *sum* over examples, and F_sum = n·F_mean,
    ∇F_sum = n·∇F_mean, so ``c_sum`` = n·c_mean. Its bound reads c_sum ≥ Ω(δ·m/(d·n²)) with m the
    width and d the output dimension, so ``c_scaled`` = c_sum·d/m is the number to hold against
    ``lemma`` = δ/n². The Ω hides constants (and log factors): ``ratio`` = c_scaled/lemma says
    how much room the measurement leaves, and is meaningful across n and δ, not as a single value.
    """

    c_mean: float
    c_sum: float
    c_scaled: float | None
    lemma: float
    ratio: float | None
    n: int
    delta: float


def dominance_against_lemma(losses, grad_sqs, n: int, delta: float, width: int | None = None,
                            outputs: int = 1) -> DominanceComparison:
    """Compare min ‖∇F‖²/F over the points given (mean-loss normalization) with δ/n² (see the class doc).

    ``losses`` and ``grad_sqs`` are F and ‖∇F‖² (mean loss, gradient over the trained hidden
    layers, as the lemma states it) at the same points; points with F = 0 are skipped.
    ``width`` m and ``outputs`` d scale the constant as in the lemma; without ``width`` only the
    unscaled constants are given.
    """
    f = np.asarray(losses, dtype=np.float64)
    g2 = np.asarray(grad_sqs, dtype=np.float64)
    if f.shape != g2.shape or f.size == 0:
        raise LandscapeError("need as many gradient norms as losses, and at least one")
    if n < 1 or not delta > 0:
        raise LandscapeError(f"need n ≥ 1 and δ > 0, got n={n}, δ={delta}")
    keep = f > 0
    if not keep.any():
        raise LandscapeError("every loss is zero: the dominance constant is undefined")
    c_mean = float(np.min(g2[keep] / f[keep]))
    c_sum = n * c_mean
    lemma = delta / n ** 2
    c_scaled = c_sum * outputs / width if width else None
    return DominanceComparison(c_mean, c_sum, c_scaled, lemma,
                               c_scaled / lemma if c_scaled is not None else None, n, float(delta))


# ---------------------------------------------------------------------------------------------- mechanism
def _relu_masks(model, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Where each ReLU passes its input (pre-activation > 0), per activation layer, for ``inputs``.

    The theorem's MLP (``models.mlp.MLP``, functional ReLUs) is read at the outputs of its linear
    layers A, W_1..W_L (named 'input', 'hidden.0', ...). Any other model is read through forward
    hooks on its ``nn.ReLU`` modules, one entry per call ('<module>#<k>' for its k-th call: a
    ResNet block calls one ReLU twice); the output > 0 exactly where the input was, in place or not.
    The model runs in eval mode (batch norm with the statistics it holds), without gradients.
    """
    from .models.mlp import MLP

    if isinstance(model, MLP):
        watched = {"input": model.input, **{f"hidden.{i}": layer for i, layer in enumerate(model.hidden)}}
    else:
        watched = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.ReLU)}
    if not watched:
        raise LandscapeError("the model has no nn.ReLU module to read activation signs from")
    masks: dict[str, torch.Tensor] = {}
    calls = dict.fromkeys(watched, 0)
    numbered = not isinstance(model, MLP)

    def hook(name):
        def record(_module, _args, output):
            masks[f"{name}#{calls[name]}" if numbered else name] = (output > 0).flatten(1).cpu()
            calls[name] += 1
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in watched.items()]
    modes = {m: m.training for m in model.modules()}
    first = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad():
            model(inputs.to(first.device, first.dtype))
    finally:
        for m, mode in modes.items():
            m.training = mode
        for h in handles:
            h.remove()
    return masks


def activation_flips(model_0, model_t, inputs: torch.Tensor) -> dict[str, float]:
    """Per activation layer, the fraction of (input, unit) ReLU signs that differ between two networks.

    ``model_0`` and ``model_t`` are one architecture at θ_0 and θ_t; ``inputs`` (n examples, as
    the model reads them: normalized) are fed to both. A unit is a neuron of an MLP, or a
    (channel, position) of a convolutional map. The theorem's perturbation lemma bounds the
    flipped count by O(m·ω^{2/3}·L) of m per input when every ‖W_l(t) − W_l(0)‖₂ ≤ ω: the
    fraction falls as the width grows. See ``_relu_masks`` for the layer names.
    """
    m0, mt = _relu_masks(model_0, inputs), _relu_masks(model_t, inputs)
    if list(m0) != list(mt) or any(m0[k].shape != mt[k].shape for k in m0):
        raise LandscapeError("the two networks do not have the same activation layers")
    return {k: float((m0[k] != mt[k]).double().mean()) for k in m0}


@dataclass
class LayerMovement:
    """‖W(t) − W(0)‖₂, ‖W(0)‖₂ and their ratio for one weight (a conv kernel reshaped out × rest)."""

    absolute: float
    initial: float
    relative: float


def spectral_movement(model_0, model_t, layers: str = "hidden") -> dict[str, LayerMovement]:
    """Per weight matrix, how far it moved in spectral norm (largest singular value) from θ_0 to θ_t.

    ``layers``: 'hidden' (the weights the theorem trains, ``models.parameter_groups``) or 'all'.
    Parameters with fewer than two dimensions (biases, batch-norm scales) are left out. A
    convolution kernel out × in × kh × kw is taken as the out × (in·kh·kw) matrix: the norm of
    that matrix, not the operator norm of the convolution on images. In float64.
    """
    from .models import select_parameters

    names = select_parameters(model_0, layers)
    params_t = dict(model_t.named_parameters())
    out = {}
    for name, w0 in model_0.named_parameters():
        if name not in names or w0.dim() < 2:
            continue
        if name not in params_t or params_t[name].shape != w0.shape:
            raise LandscapeError(f"the two networks differ at parameter {name!r}")
        a = w0.detach().to(torch.float64).reshape(w0.shape[0], -1)
        b = params_t[name].detach().to(torch.float64).reshape(w0.shape[0], -1).to(a.device)
        moved = float(torch.linalg.matrix_norm(b - a, ord=2))
        initial = float(torch.linalg.matrix_norm(a, ord=2))
        out[name] = LayerMovement(moved, initial, moved / initial if initial > 0 else float("nan"))
    if not out:
        raise LandscapeError(f"no weight matrix among the {layers!r} parameters")
    return out


def ntk_min_eigenvalue(kernel) -> float:
    """The smallest eigenvalue of a symmetric kernel Gram matrix K (e.g. ``ntk`` on the training points).

    In the theorem's parametrization K ∝ m at initialization, and λ_min(K) > 0 on δ-separated
    data is what the gradient lemma rests on. Computed by ``torch.linalg.eigvalsh`` in float64 on
    (K + Kᵀ)/2 (rounding asymmetry only).
    """
    k = torch.as_tensor(kernel, dtype=torch.float64)
    if k.dim() != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise LandscapeError(f"need a square kernel matrix, got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise LandscapeError("the kernel has non-finite entries")
    return float(torch.linalg.eigvalsh((k + k.T) / 2)[0])
