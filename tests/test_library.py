"""The README's library examples run verbatim on a model and DataLoader of our own (a tabular MLP:
inputs that are not images), and the Objective reads DataLoaders and loss modules without
scaling F, ∇F or Hv by the batch size."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
from landscape import Objective
from landscape.errors import LandscapeError

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_blocks() -> list[str]:
    section = README.read_text().split("## Use as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _mlp_and_loader(n=48, d=6, classes=3, batch=10):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, classes))
    x, y = torch.randn(n, d), torch.randint(0, classes, (n,))
    return model, DataLoader(TensorDataset(x, y), batch_size=batch), x, y


def test_readme_library_examples_run_verbatim():
    blocks = _readme_blocks()
    assert len(blocks) == 2
    model, loader, _, _ = _mlp_and_loader()
    namespace = {"model": model, "loader": loader}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    F, top, bottom = namespace["F"], namespace["top"], namespace["bottom"]
    assert F.num_examples == 48 and np.isfinite(namespace["value"])
    assert top.eigenvalue >= bottom.eigenvalue and top.residual < 1e-2 * max(abs(top.eigenvalue), 1)
    assert isinstance(top, landscape.Eigenpair) and isinstance(bottom, landscape.Eigenpair)
    assert top.solver == bottom.solver == "lanczos" and top.bound_for == "operator as computed (float32 products)"
    grid, probe = namespace["grid"], namespace["probe"]
    assert isinstance(grid, landscape.Surface) and grid.loss.shape == (11, 11)
    assert isinstance(probe, landscape.Probe) and isinstance(probe.fit, landscape.ProbeFit)
    assert len(probe.t) == len(probe.f) == 21 and probe.fit.as_dict() == probe.as_dict()["fit"]
    t = namespace["test"]
    assert isinstance(t, landscape.SecondOrder) and t.d_plane >= max(t.d_grad, t.d_curv) >= 0
    assert set(landscape.__all__) >= {"Objective", "HessianOperator", "top_eigenpairs", "second_order_test",
                                      "extreme_eigenpairs", "gradient_alignment", "gradient_alignment_at",
                                      "outlier_count", "Dominance", "Probe", "ProbeFit", "Surface", "SurfaceSummary",
                                      "GridBest", "Interpolation", "Monotonicity", "SecondOrder"}
    assert "lanczos_top" not in landscape.__all__  # one Lanczos: the sharpness tracker runs top_eigenpairs


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_are_never_scaled_by_the_batch_size(reduction):
    model, loader, x, y = _mlp_and_loader()
    plain = Objective(model, x, y, loss="cross_entropy", precision="fp64")
    from_loader = Objective(model, loader, loss=nn.CrossEntropyLoss(reduction=reduction), precision="fp64",
                            batch_size=7)
    v0, g0 = plain.value_and_grad()
    v1, g1 = from_loader.value_and_grad()
    assert v1 == pytest.approx(v0, rel=1e-12)
    torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-14)
    v = torch.randn(plain.dim, dtype=torch.float64)
    torch.testing.assert_close(from_loader.hvp(None, v), plain.hvp(None, v), rtol=1e-10, atol=1e-12)


def test_regression_targets_and_an_mse_module():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, t = torch.randn(20, 4), torch.randn(20, 2)
    F = Objective(model, x, t, loss=nn.MSELoss(), precision="fp64")
    with torch.no_grad():
        expected = float(((model.double()(x.double()) - t.double()) ** 2).mean())  # mean over examples and outputs
    value, acc = F.evaluate()
    assert value == pytest.approx(expected, rel=1e-12) and np.isnan(acc)  # accuracy undefined for regression


def test_losses_and_batches_it_cannot_interpret_are_clear_errors():
    model, loader, x, y = _mlp_and_loader()
    with pytest.raises(LandscapeError, match="one value per example"):
        Objective(model, x, y, loss=lambda out, lab: nn.functional.cross_entropy(out, lab)).value()
    with pytest.raises(LandscapeError, match="no 'reduction'"):
        Objective(model, x, y, loss=nn.Identity())
    with pytest.raises(LandscapeError, match="tensors"):
        Objective(model, [({"a": x}, y)])
    with pytest.raises(LandscapeError, match=r"\(inputs, labels\) pairs"):
        Objective(model, [x])
    with pytest.raises(LandscapeError, match="labels are missing"):
        Objective(model, x)


def test_a_streamed_objective_equals_the_materialized_one():
    model, loader, x, y = _mlp_and_loader()
    plain = Objective(model, x, y, precision="fp64")
    streamed = Objective(model, loader, stream=True, precision="fp64")
    assert streamed.num_examples == 48 and len(streamed.images) == 1  # only one example held
    v0, g0 = plain.value_and_grad()
    v1, g1 = streamed.value_and_grad()
    assert v1 == pytest.approx(v0, rel=1e-12)
    torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-14)
    v = torch.randn(plain.dim, dtype=torch.float64)
    torch.testing.assert_close(streamed.hvp(None, v), plain.hvp(None, v), rtol=1e-10, atol=1e-12)
    assert streamed.evaluate() == pytest.approx(plain.evaluate(), rel=1e-12)


def test_streaming_needs_fixed_reiterable_data():
    model, loader, x, y = _mlp_and_loader()
    with pytest.raises(LandscapeError, match="re-iterable"):
        Objective(model, ((a, b) for a, b in loader), stream=True)
    with pytest.raises(LandscapeError, match="recompute_images"):
        Objective(model, loader, stream=True, bn="recompute")
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    F = Objective(model, batches, stream=True)
    batches.pop()  # the data changes under the objective
    with pytest.raises(LandscapeError, match="20 examples, 48 before"):
        F.value()
