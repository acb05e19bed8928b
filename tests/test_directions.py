"""landscape.directions: filter normalization, unit and Gaussian directions, orthogonalization."""

from __future__ import annotations

import pytest
import torch

from landscape.directions import (eigenvector_direction, filter_normalized_direction, gaussian_direction,
                                  gradient_direction, orthogonalize)
from landscape.models import build_model
from landscape.objective import Objective


@pytest.fixture(scope="module")
def objective():
    torch.manual_seed(0)
    model = build_model("resnet8")
    with torch.no_grad():  # give the 1-D parameters non-trivial values too
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    images = torch.randn(4, 3, 32, 32)
    labels = torch.arange(4)
    return Objective(model, images, labels)


def test_filter_normalized_direction_copies_every_filter_norm_of_theta(objective):
    theta = objective.theta0
    d = filter_normalized_direction(objective, theta, seed=3)
    assert d.vector.shape == theta.shape and d.vector.dtype == objective.dtype
    assert d.normalization == "filter" and d.name == "filter_normalized_3"
    pieces = objective.unflatten(d.vector)
    weights = objective.unflatten(theta)
    checked = 0
    for name, piece in pieces.items():
        w = weights[name]
        if piece.dim() <= 1:
            assert torch.count_nonzero(piece) == 0, name  # biases, BN scales and shifts stay put
            continue
        for k in range(piece.shape[0]):
            assert float(piece[k].norm()) == pytest.approx(float(w[k].norm()), rel=1e-5), (name, k)
            checked += 1
        # a random direction, not θ's own filters rescaled
        assert not torch.allclose(piece / piece.norm(), w / w.norm(), atol=1e-2)
    assert checked == sum(p.shape[0] for p in pieces.values() if p.dim() >= 2)
    assert d.describe()["filter_norm_scale"] == pytest.approx(float(d.vector.norm()), rel=1e-6)


def test_unit_filter_normalized_direction_is_the_same_shape_with_norm_one(objective):
    theta = objective.theta0
    plain = filter_normalized_direction(objective, theta, seed=3)
    unit = filter_normalized_direction(objective, theta, seed=3, unit=True)
    assert float(unit.vector.norm()) == pytest.approx(1.0, rel=1e-6)
    assert unit.normalization == "filter+unit"
    scale = float(plain.vector.norm())
    torch.testing.assert_close(unit.vector * scale, plain.vector, rtol=1e-5, atol=1e-7)
    other = filter_normalized_direction(objective, theta, seed=4, unit=True)
    assert float((other.vector - unit.vector).norm()) > 0.1


def test_filter_normalization_follows_theta(objective):
    """Scaling a layer of θ scales that layer of the direction, and nothing else."""
    theta = objective.theta0.clone()
    names = objective.param_names
    sizes = dict(zip(names, objective.numels))
    start = sum(sizes[n] for n in names[:names.index("layer2.0.conv1.weight")])
    theta[start:start + sizes["layer2.0.conv1.weight"]] *= 3.0
    base = objective.unflatten(filter_normalized_direction(objective, objective.theta0, seed=1).vector)
    scaled = objective.unflatten(filter_normalized_direction(objective, theta, seed=1).vector)
    for n in names:
        factor = 3.0 if n == "layer2.0.conv1.weight" else 1.0
        torch.testing.assert_close(scaled[n], factor * base[n], rtol=1e-5, atol=1e-8)


def test_gaussian_direction_is_seeded_deterministic_and_unit(objective):
    a = gaussian_direction(objective, 7)
    b = gaussian_direction(objective, 7)
    c = gaussian_direction(objective, 8)
    assert torch.equal(a.vector, b.vector)
    assert float(a.vector.norm()) == pytest.approx(1.0, rel=1e-6)
    assert abs(float(a.vector @ c.vector)) < 0.05  # independent draws in ~80k dimensions
    assert a.name == "gaussian_7" and a.describe()["norm"] == pytest.approx(1.0, rel=1e-6)
    # Gaussian: every coordinate is nonzero and the entries look standard normal after rescaling
    z = a.vector.double() * objective.dim ** 0.5
    assert torch.count_nonzero(z) == objective.dim
    assert abs(float(z.mean())) < 0.05 and float(z.std()) == pytest.approx(1.0, abs=0.02)
    # the draw does not depend on global RNG state
    torch.manual_seed(123)
    torch.randn(10)
    assert torch.equal(gaussian_direction(objective, 7).vector, a.vector)


def test_orthogonalize_gives_a_unit_vector_orthogonal_to_the_other(objective):
    x = gaussian_direction(objective, 1)
    # a direction with a large component along x
    y0 = gaussian_direction(objective, 2)
    y0.vector = (y0.vector + 2 * x.vector).contiguous()
    y = orthogonalize(y0, x)
    v = y.vector.double()
    assert abs(float(v @ x.vector.double())) < 1e-6
    assert float(v.norm()) == pytest.approx(1.0, rel=1e-6)
    assert y.info["orthogonalized_against"] == x.name
    assert y.info["cosine_before"] == pytest.approx(float(y0.vector.double() @ x.vector.double() / y0.vector.double().norm()), rel=1e-6)
    # the result stays in the plane of the two
    residual = v - float(v @ x.vector.double()) * x.vector.double()
    u = y0.vector.double() - float(y0.vector.double() @ x.vector.double()) * x.vector.double()
    assert float((residual / residual.norm() - u / u.norm()).norm()) < 1e-5  # fp32 rounding


def test_gradient_and_eigenvector_directions_are_unit(objective):
    g = torch.randn(objective.dim, dtype=torch.float64) * 5
    up = gradient_direction(g, objective)
    down = gradient_direction(g, objective, negative=True)
    assert up.kind == "gradient" and down.kind == "neg_gradient"
    torch.testing.assert_close(down.vector, -up.vector)
    torch.testing.assert_close(up.vector.double(), g / g.norm(), rtol=1e-6, atol=1e-8)
    assert up.info["grad_norm"] == pytest.approx(float(g.norm()))
    e = eigenvector_direction(3 * g.numpy(), -0.5, objective, "most_negative")
    assert e.kind == "hessian_most_negative" and e.info["eigenvalue"] == -0.5
    assert float(e.vector.norm()) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError):
        gradient_direction(torch.zeros(objective.dim), objective)
