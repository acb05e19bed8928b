"""landscape.theory: the empirical NTK and its drift, the depth-scaling fit, the lemma's bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Objective
from landscape.curvature import HessianOperator, top_eigenpairs
from landscape.data import load_dataset
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.theory import depth_scaling_fit, dominance_against_lemma, jacobian, ntk, ntk_drift


def _tiny_net(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, outputs)).double()


def _loop_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Reference K: one torch.autograd.grad call per (example, output), then all inner products."""
    params = list(model.parameters())
    rows = []
    for i in range(len(x)):
        out = model(x[i:i + 1])[0]
        for a in range(len(out)):
            grads = torch.autograd.grad(out[a], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    j = torch.stack(rows)
    return j @ j.T


@pytest.mark.parametrize("outputs", [1, 3])
def test_ntk_equals_a_loop_of_single_example_gradients(outputs):
    model = _tiny_net(outputs)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(6, outputs, dtype=torch.float64)
    objective = Objective(model, x, y, loss="mse", precision="fp64")
    kernel = ntk(objective, chunk=4)  # chunks of 4 and 2 examples
    assert kernel.shape == (6 * outputs, 6 * outputs) and kernel.dtype == torch.float64
    torch.testing.assert_close(kernel, _loop_ntk(model, x), rtol=1e-12, atol=1e-12)
    assert jacobian(objective).shape == (6 * outputs, objective.dim)


def test_ntk_of_a_linear_model_does_not_drift():
    torch.manual_seed(0)
    model = nn.Linear(4, 2, bias=False)
    x = torch.randn(5, 4)
    objective = Objective(model, x, torch.zeros(5, 2), loss="mse")
    k0 = ntk(objective)
    far = objective.theta0 + 10 * torch.randn(objective.dim)
    assert ntk_drift(ntk(objective, far), k0) == 0.0  # J does not depend on θ
    # the block structure of a linear model: K_{(i,a),(j,b)} = x_i·x_j if a = b else 0
    expected = torch.kron(x.double() @ x.double().T, torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(k0, expected, rtol=1e-6, atol=1e-6)


def test_ntk_of_a_relu_network_drifts_and_drift_is_relative():
    objective = Objective(build_model("mlp2_d4", 1), torch.nn.functional.normalize(torch.randn(8, 4), dim=1),
                          torch.zeros(8, 1), loss="mse", params="hidden")
    k0 = ntk(objective)
    # ReLU is 1-homogeneous: scaling both hidden W_l by 1.5 scales f by 1.5², each ∂f/∂W_l by 1.5, K by 1.5²
    moved = ntk(objective, objective.theta0 * 1.5)
    assert ntk_drift(moved, k0) == pytest.approx(1.5 ** 2 - 1, rel=1e-5)
    with pytest.raises(LandscapeError, match="zero"):
        ntk_drift(k0, torch.zeros_like(k0))


def test_depth_fit_tells_polynomial_from_exponential():
    depths = np.array([2, 4, 8, 16, 32])
    poly = depth_scaling_fit(depths, 3.0 * depths ** 1.5)
    assert poly.better == "polynomial" and poly.power == pytest.approx(1.5) and poly.polynomial.rms < 1e-12
    assert poly.polynomial.intercept == pytest.approx(math.log(3.0))
    expo = depth_scaling_fit(depths, 0.5 * np.exp(0.2 * depths))
    assert expo.better == "exponential" and expo.rate == pytest.approx(0.2) and expo.exponential.rms < 1e-12
    assert expo.polynomial.rms > 0.1
    with pytest.raises(LandscapeError, match="three distinct depths"):
        depth_scaling_fit([2, 4], [1.0, 2.0])
    with pytest.raises(LandscapeError, match="finite and > 0"):
        depth_scaling_fit([1, 2, 3], [1.0, 0.0, 2.0])


def test_dominance_constant_is_rescaled_to_the_papers_sum_loss():
    cmp = dominance_against_lemma([2.0, 1.0, 0.0], [8.0, 3.0, 0.0], n=10, delta=0.5, width=100, outputs=2)
    assert cmp.c_mean == 3.0  # min(8/2, 3/1); the F = 0 point is skipped
    assert cmp.c_sum == 30.0  # F_sum = n F, ∇F_sum = n ∇F: ‖∇F_sum‖²/F_sum = n ‖∇F‖²/F
    assert cmp.c_scaled == pytest.approx(30.0 * 2 / 100)
    assert cmp.lemma == pytest.approx(0.5 / 100) and cmp.ratio == pytest.approx(0.6 / 0.005)
    assert dominance_against_lemma([1.0], [1.0], n=4, delta=0.1).ratio is None
    with pytest.raises(LandscapeError, match="every loss is zero"):
        dominance_against_lemma([0.0], [0.0], n=4, delta=0.1)


@pytest.mark.parametrize("targets", ["targets=regression", "classes=3"])
def test_objective_over_mlp_on_separated_data_end_to_end(targets):
    ds = load_dataset(f"synthetic:separated?n=24&d=8&delta=0.5&{targets}")
    torch.manual_seed(0)
    model = build_model("mlp2_d8", ds.num_classes, width=1)
    objective = Objective(model, ds.train_images, ds.train_labels, mean=ds.mean, std=ds.std,
                          loss="mse", params="hidden", precision="fp64")
    assert objective.dim == 2 * 64 * 64
    value, grad = objective.value_and_grad()
    # F is ½‖f − y‖² averaged, y the target row or the one-hot label
    with torch.no_grad():
        out = model.double()(ds.train_images.double())
    y = ds.train_labels.double() if ds.train_labels.is_floating_point() else \
        nn.functional.one_hot(ds.train_labels, ds.num_classes).double()
    assert value == pytest.approx(float(0.5 * (out - y).pow(2).sum(1).mean()), rel=1e-12)
    # hvp against a finite difference of gradients
    v = torch.randn(objective.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    v /= v.norm()
    eps = 1e-6  # small enough that no ReLU changes state between θ ± εv
    fd = (objective.value_and_grad(objective.theta0 + eps * v)[1]
          - objective.value_and_grad(objective.theta0 - eps * v)[1]) / (2 * eps)
    torch.testing.assert_close(objective.hvp(None, v), fd, rtol=1e-5, atol=1e-7)
    top = top_eigenpairs(HessianOperator(objective), k=1, tol=1e-8)[0]
    assert top.eigenvalue > 0 and top.residual < 1e-5 * top.eigenvalue
    assert torch.isfinite(grad).all() and float(grad.norm()) > 0


def test_new_names_are_exported_lazily():
    import landscape

    names = {"ntk", "ntk_drift", "jacobian", "depth_scaling_fit", "dominance_against_lemma", "star_convexity",
             "pl_star", "gradient_alignment", "SharpnessTracker", "load_synthetic",
             "min_pairwise_distance", "separation_bound", "separated_points"}
    assert names <= set(landscape.__all__)
    assert all(callable(getattr(landscape, n)) for n in names)
