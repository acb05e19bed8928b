"""landscape.objective: F, ∇F and H·v against closed forms, finite differences, batch sizes,
the folded-batch-norm fast path, the three batch-norm policies and several points per pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.objective import Objective

from cases import closed_form, least_squares


# ----------------------------------------------------------------------------- least squares
def test_least_squares_value_gradient_and_hessian_match_the_closed_form():
    obj, model, x, y = least_squares()
    F, grad, H = closed_form(model, x, y)
    assert obj.dim == H.shape[0]
    assert obj.value() == pytest.approx(F, rel=1e-13)
    loss, g = obj.value_and_grad()
    assert g.dtype == torch.float64
    assert loss == pytest.approx(F, rel=1e-13)
    np.testing.assert_allclose(g.numpy(), grad, rtol=0, atol=1e-13 * np.abs(grad).max())
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(obj.dim, generator=gen, dtype=torch.float64)
        hv = obj.hvp(None, v).numpy()
        np.testing.assert_allclose(hv, H @ v.numpy(), rtol=0, atol=1e-12 * np.abs(H @ v.numpy()).max())
    # at another point θ: the Hessian of a quadratic does not move, the gradient does
    theta = obj.theta0 + 0.3 * torch.randn(obj.dim, generator=gen, dtype=torch.float64)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.weight.copy_(theta[:15].view(3, 5))
        moved.bias.copy_(theta[15:])
    F2, grad2, _ = closed_form(moved, x, y)
    loss2, g2 = obj.value_and_grad(theta)
    assert loss2 == pytest.approx(F2, rel=1e-13)
    np.testing.assert_allclose(g2.numpy(), grad2, rtol=0, atol=1e-13 * np.abs(grad2).max())
    e = torch.zeros(obj.dim, dtype=torch.float64)
    e[16] = 1.0
    np.testing.assert_allclose(obj.hvp(theta, e).numpy(), H[:, 16], rtol=0, atol=1e-14)


def test_least_squares_accuracy_is_the_argmax_hit_rate():
    obj, model, x, y = least_squares()
    _, acc = obj.evaluate()
    expected = float((model(x).argmax(1) == y).double().mean())
    assert acc == expected


# ----------------------------------------------------------------------------- a tiny ReLU net
class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


def tiny_net(n=70, seed=0):
    torch.manual_seed(seed)
    model = TinyConvNet()
    gen = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(n, 3, 8, 8, generator=gen)
    labels = torch.randint(0, 5, (n,), generator=gen)
    return model, images, labels


def test_gradient_matches_central_finite_differences_in_fp64():
    model, images, labels = tiny_net()
    obj = Objective(model, images, labels, precision="fp64", batch_size=32)
    loss, grad = obj.value_and_grad()
    gen = torch.Generator().manual_seed(3)
    h = 1e-6
    for _ in range(4):
        v = torch.randn(obj.dim, generator=gen, dtype=torch.float64)
        v /= v.norm()
        fd = (obj.value(obj.theta0 + h * v) - obj.value(obj.theta0 - h * v)) / (2 * h)
        assert fd == pytest.approx(float(grad @ v), rel=1e-6, abs=1e-9)
    # single coordinates too: one conv weight, one conv bias, one fc weight
    for i in (0, obj.numels[0], obj.dim - 7):
        e = torch.zeros(obj.dim, dtype=torch.float64)
        e[i] = h
        fd = (obj.value(obj.theta0 + e) - obj.value(obj.theta0 - e)) / (2 * h)
        assert fd == pytest.approx(float(grad[i]), rel=1e-6, abs=1e-9)
    assert loss == obj.value()


def test_batch_size_changes_only_rounding_in_fp64():
    model, images, labels = tiny_net()
    results = {}
    for bs in (7, 64, len(labels)):
        obj = Objective(model, images, labels, precision="fp64", batch_size=bs)
        f, g = obj.value_and_grad()
        results[bs] = (f, g, obj.value())
    f_ref, g_ref, v_ref = results[len(labels)]
    for bs, (f, g, v) in results.items():
        assert abs(f - f_ref) <= 1e-12 * abs(f_ref)
        assert abs(v - v_ref) <= 1e-12 * abs(v_ref)
        assert float((g - g_ref).norm()) <= 1e-12 * float(g_ref.norm())


def test_hvp_matches_finite_differences_of_the_gradient():
    model, images, labels = tiny_net()
    obj = Objective(model, images, labels, precision="fp64", batch_size=32)
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(obj.dim, generator=gen, dtype=torch.float64)
    h = 1e-6
    fd = (obj.value_and_grad(obj.theta0 + h * v)[1] - obj.value_and_grad(obj.theta0 - h * v)[1]) / (2 * h)
    hv = obj.hvp(None, v)
    assert float((hv - fd).norm()) <= 1e-6 * float(hv.norm())


# ----------------------------------------------------------------------------- batch norm
def randomized_resnet8(seed=0, n=12):
    """resnet8 with random running statistics and affine parameters (eval mode), and inputs."""
    torch.manual_seed(seed)
    model = build_model("resnet8")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.num_batches_tracked.fill_(17)
    model.eval()
    images = torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    return model, images, labels


def _points(obj, count=3, scale=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [obj.theta0] + [obj.theta0 + scale * torch.randn(obj.dim, generator=gen, dtype=torch.float64).to(obj.dtype)
                           for _ in range(count - 1)]


def test_folded_fast_path_equals_the_unfolded_forward():
    model, images, labels = randomized_resnet8()
    for precision, tol in (("fp64", 1e-12), ("fp32", 1e-5)):
        fast = Objective(model, images, labels, precision=precision, batch_size=8)
        slow = Objective(model, images, labels, precision=precision, batch_size=8, fold_bn=False)
        assert fast._folded is not None and slow._folded is None
        # every BatchNorm of resnet8 follows a convolution: all of them fold
        assert len(fast._fold_pairs) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        thetas = _points(fast)
        lf, af = fast.values(thetas)
        ls, as_ = slow.values(thetas)
        np.testing.assert_allclose(lf, ls, rtol=tol, atol=0)
        assert np.array_equal(af, as_) or precision == "fp32"
        if precision == "fp64":  # the unfolded path is the model itself
            with torch.no_grad():
                out = model.double()(images.double())
            model.float()
            direct = float(nn.functional.cross_entropy(out, labels))
            assert ls[0] == pytest.approx(direct, rel=1e-13)


def test_frozen_statistics_can_be_swapped_per_point():
    model, images, labels = randomized_resnet8(n=6)
    obj = Objective(model, images, labels, precision="fp64")
    other_model, _, _ = randomized_resnet8(seed=5)
    other = {n: b for n, b in other_model.named_buffers()}
    swapped = obj.with_buffers(other)
    direct = Objective(model, images, labels, precision="fp64", buffers=other)
    assert swapped.value() == pytest.approx(direct.value(), rel=1e-14)
    assert obj.evaluate(None, direct.buffers)[0] == pytest.approx(direct.value(), rel=1e-14)
    assert swapped.value() != pytest.approx(obj.value(), rel=1e-6)


def test_unfolded_fp64_path_accepts_the_checkpoints_fp32_statistics():
    """Interpolated statistics come straight from fp32 checkpoints, even into an fp64 objective."""
    model, images, labels = randomized_resnet8(n=6)
    bufs = {n: b.clone() for n, b in model.named_buffers()}  # float32, as a checkpoint holds them
    for fold in (True, False):
        obj = Objective(model, images, labels, precision="fp64", fold_bn=fold)
        assert obj.evaluate(None, bufs)[0] == obj.value()


def test_batch_policy_uses_batch_statistics_and_leaves_running_stats_alone():
    model, images, labels = randomized_resnet8()
    before = {n: b.clone() for n, b in model.named_buffers()}
    frozen = Objective(model, images, labels, precision="fp64", bn="frozen", batch_size=6)
    batch = Objective(model, images, labels, precision="fp64", bn="batch", batch_size=6)
    stored = {n: b.clone() for n, b in batch.buffers.items()}
    fb = batch.value()
    assert abs(fb - frozen.value()) > 1e-3
    # the same as a train-mode pass over each batch of 6
    manual = copy.deepcopy(model).double().train()
    with torch.no_grad():
        total = sum(float(nn.functional.cross_entropy(manual(x), y, reduction="sum"))
                    for x, y in zip(images.double().split(6), labels.split(6)))
    assert fb == pytest.approx(total / len(labels), rel=1e-12)
    batch.value_and_grad()
    batch.hvp(None, torch.ones(batch.dim, dtype=torch.float64))
    batch.values(_points(batch, 2))
    for n, b in batch.buffers.items():
        assert torch.equal(b, stored[n]), n
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert not model.training


def _train_mode_loss(model, theta_pieces, images, labels) -> tuple[float, nn.Module]:
    """Reference: load θ and run ONE train-mode pass over the whole set as a single batch."""
    manual = copy.deepcopy(model).double()
    with torch.no_grad():
        for (name, p), piece in zip(manual.named_parameters(), theta_pieces):
            p.copy_(piece)
        manual.train()
        return float(nn.functional.cross_entropy(manual(images.double()), labels)), manual


@pytest.mark.parametrize("single_pass", [True, False])
def test_recomputed_statistics_give_the_loss_of_one_train_mode_pass_over_the_whole_set(single_pass, monkeypatch):
    import landscape.objective as objective_module

    if not single_pass:  # force the layer-by-layer path (set larger than one pass may hold)
        monkeypatch.setattr(objective_module, "BN_SINGLE_PASS_IMAGES", 5)
    model, images, labels = randomized_resnet8(n=14)
    obj = Objective(model, images, labels, precision="fp64", bn="recompute", batch_size=4)
    theta = _points(obj, 2, scale=0.02, seed=4)[1]
    expected, _ = _train_mode_loss(model, obj.unflatten(theta).values(), images, labels)
    assert obj.value(theta) == pytest.approx(expected, rel=1e-10)
    # fp32 model arithmetic: the same to 1e-6
    obj32 = Objective(model, images, labels, precision="fp32", bn="recompute", batch_size=4)
    assert obj32.value(theta.float()) == pytest.approx(expected, rel=1e-6)
    # the statistics held by the objective are neither used nor changed
    assert obj.value(theta) != pytest.approx(Objective(model, images, labels, precision="fp64").value(theta), rel=1e-6)
    for n, b in model.named_buffers():
        assert torch.equal(obj.buffers[n].float() if b.is_floating_point() else obj.buffers[n], b)


def test_both_statistics_paths_agree_and_do_not_depend_on_batch_size():
    from landscape.objective import exact_bn_statistics

    model, images, labels = randomized_resnet8(n=10)
    results = []
    for max_batch in (10, 3, 1):
        m = copy.deepcopy(model).double()
        passes = exact_bn_statistics(m, images.double(), max_batch)
        assert passes == (1 if max_batch >= 10 else sum(isinstance(x, nn.BatchNorm2d) for x in m.modules()))
        results.append({n: b.clone() for n, b in m.named_buffers() if "running" in n})
    for other in results[1:]:
        for n in results[0]:
            torch.testing.assert_close(other[n], results[0][n], rtol=1e-12, atol=1e-14)


def test_recompute_uses_its_own_set_when_given_one():
    model, images, labels = randomized_resnet8(n=8)
    stat_images = torch.randn(14, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    obj = Objective(model, images, labels, precision="fp64", bn="recompute", batch_size=6,
                    recompute_images=stat_images)
    from landscape.objective import exact_bn_statistics

    manual = copy.deepcopy(model).double()  # statistics of the separate set, then an eval pass over the examples
    with torch.no_grad():
        exact_bn_statistics(manual, stat_images.double())
        expected = float(nn.functional.cross_entropy(manual(images.double()), labels))
    assert obj.value() == pytest.approx(expected, rel=1e-12)
    own = Objective(model, images, labels, precision="fp64", bn="recompute", batch_size=6)
    assert torch.equal(own.recompute_images, own.images)


# ----------------------------------------------------------------------------- generality, errors
class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so no folding is possible."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.b = nn.Linear(8, 4)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:
            h = torch.relu(h)
        return self.b(self.bn(h))


def test_any_module_and_any_tensors():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=gen)
    y = torch.randint(0, 4, (30,), generator=gen)
    torch.manual_seed(0)
    model = Untraceable().eval()
    obj = Objective(model, x, y, batch_size=8)
    assert obj._folded is None and not obj.channels_last
    with torch.no_grad():
        out = model(x)
    assert obj.value() == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-6)
    loss, grad = obj.value_and_grad()
    assert grad.shape == (obj.dim,) and torch.isfinite(grad).all()
    # a 4-D float input through an MLP with a custom loss callable
    images = torch.rand(12, 1, 4, 4, generator=gen)
    labels = torch.randint(0, 3, (12,), generator=gen)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    def hinge(out, y):
        return torch.relu(1 - out.gather(1, y[:, None]) + out).sum(1) - 1

    obj2 = Objective(mlp, images, labels, loss=hinge, batch_size=5)
    with torch.no_grad():
        expected = float(hinge(mlp(images), labels).mean())
    assert obj2.value() == pytest.approx(expected, rel=1e-6)
    assert obj2.loss_name == "hinge"
    # uint8 images are standardized with the given mean and std
    raw = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8, generator=gen)
    conv = nn.Sequential(nn.Conv2d(3, 2, 4), nn.Flatten())
    obj3 = Objective(conv, raw, torch.zeros(10, dtype=torch.int64), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    m = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    s = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(conv((raw.float() / 255 - m) / s), torch.zeros(10, dtype=torch.int64)))
    assert obj3.value() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(LandscapeError, match="mean and std"):
        Objective(conv, raw, torch.zeros(10, dtype=torch.int64))


def test_params_subset_moves_only_those_parameters():
    model, images, labels = randomized_resnet8(n=8)
    hidden = Objective(model, images, labels, params="hidden", precision="fp64")
    assert "conv1.weight" not in hidden.param_names and "fc.weight" not in hidden.param_names
    assert hidden.dim == sum(dict(model.named_parameters())[n].numel() for n in hidden.param_names)
    full = Objective(model, images, labels, params="all", precision="fp64")
    assert hidden.value() == pytest.approx(full.value(), rel=1e-14)
    _, g_hidden = hidden.value_and_grad()
    _, g_full = full.value_and_grad()
    norms = full.layer_norms(g_full)
    assert float(g_hidden.norm()) ** 2 == pytest.approx(sum(norms[n] ** 2 for n in hidden.param_names), rel=1e-10)


def test_bad_inputs_raise_landscape_errors():
    model, images, labels = tiny_net(n=10)
    with pytest.raises(LandscapeError, match="CUDA"):
        Objective(model, images, labels, precision="bf16", device="cpu")
    with pytest.raises(LandscapeError, match="batch-norm policy"):
        Objective(model, images, labels, bn="train")
    with pytest.raises(LandscapeError, match="precision"):
        Objective(model, images, labels, precision="fp16")
    with pytest.raises(LandscapeError, match="loss"):
        Objective(model, images, labels, loss="hinge")
    with pytest.raises(LandscapeError, match="labels"):
        Objective(model, images, labels[:5])
    with pytest.raises(LandscapeError, match="no parameters named"):
        Objective(model, images, labels, params=["conv.weight", "nope"])
    obj = Objective(model, images, labels)
    with pytest.raises(LandscapeError, match="shape"):
        obj.value(torch.zeros(obj.dim + 1))
    rec = Objective(model, images, labels, bn="recompute")
    assert np.isfinite(rec.value())
    for call in (rec.value_and_grad, lambda: rec.hvp(None, torch.ones(rec.dim))):
        with pytest.raises(LandscapeError, match="derivatives"):
            call()


# ----------------------------------------------------------------------------- Hessian-vector products
class _ResidualBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))) then a linear head: folding, skips and kinks at once."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)
        self.conv2, self.bn2 = nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2)
        self.head = nn.Linear(2, 3)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(x + self.bn2(self.conv2(out)))
        return self.head(out.mean(dim=(2, 3)))


class _NoForwardMode(torch.autograd.Function):
    """tanh with a backward formula only: forward-mode AD cannot go through it."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class _MLPWithoutForwardMode(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.b(_NoForwardMode.apply(self.a(x)))


def _with_random_statistics(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    return model.eval()


def _hvp_case(kind):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if kind == "relu-mlp":
        model, x = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)), torch.randn(15, 4, generator=gen)
    elif kind == "conv-bn":
        model = _with_random_statistics(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3)))
        x = torch.randn(15, 2, 5, 5, generator=gen)
    elif kind == "residual":
        model, x = _with_random_statistics(_ResidualBlock()), torch.randn(15, 2, 5, 5, generator=gen)
    else:
        model, x = _MLPWithoutForwardMode(), torch.randn(15, 4, generator=gen)
    return model.double().eval(), x.double(), torch.randint(0, 3, (15,), generator=gen)


def _dense_hessian(obj, model, x, y):
    """∇²F by torch.autograd.functional.hessian on the original (unfolded) model: independent of Objective."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}

    def f(theta):
        params = {n: t.view(s) for n, t, s in zip(obj.param_names, theta.split(obj.numels), obj.shapes)}
        out = torch.func.functional_call(model, {**state, **params}, (x,))
        return nn.functional.cross_entropy(out, y)
    return torch.autograd.functional.hessian(f, obj.theta0.clone())


@pytest.mark.parametrize("kind", ["relu-mlp", "conv-bn", "residual", "no-forward-mode"])
@pytest.mark.parametrize("fold", [True, False])
def test_both_hvp_methods_equal_the_dense_hessian(kind, fold):
    model, x, y = _hvp_case(kind)
    fast = Objective(model, x, y, precision="fp64", batch_size=6, fold_bn=fold)
    slow = Objective(model, x, y, precision="fp64", batch_size=6, fold_bn=fold, hvp_method="double-backprop")
    assert (fast._folded is not None) == (fold and kind in ("conv-bn", "residual"))
    H = _dense_hessian(fast, model, x, y)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(fast.dim, generator=gen, dtype=torch.float64)
        exact = H @ v
        for obj in (fast, slow):
            assert float((obj.hvp(None, v) - exact).abs().max()) <= 1e-10 * float(exact.abs().max())
    expected = "double-backprop" if kind == "no-forward-mode" else "forward-over-reverse"
    assert fast.describe()["hvp_method"] == expected
    assert ("hvp_fallback" in fast.describe()) == (kind == "no-forward-mode")
    assert slow.describe()["hvp_method"] == "double-backprop" and "hvp_fallback" not in slow.describe()


def test_unknown_hvp_method_is_refused():
    model, x, y = _hvp_case("relu-mlp")
    with pytest.raises(LandscapeError):
        Objective(model, x, y, hvp_method="finite-differences")


# ----------------------------------------------------------------------------- many points per pass
def _conv_bn_mlp_head():
    """Conv → BN2d (folds) → ReLU → pool → Linear → BN1d (does not fold): both kinds of statistics."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 5), nn.BatchNorm1d(5))
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for bn in (model[1], model[6]):
            bn.running_mean.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
    x = torch.randn(37, 3, 6, 6, generator=gen)
    y = torch.randint(0, 5, (37,), generator=gen)
    return model.eval(), x, y


def _scaled_statistics(obj, factors):
    """Per-point statistics: the objective's own scaled by each factor (None: its own)."""
    return [None if f is None else {n: b * f if b.is_floating_point() else b for n, b in obj.buffers.items()}
            for f in factors]


@pytest.mark.parametrize("kw", [{}, {"fold_bn": False}, {"params": "hidden"}, {"bn": "recompute"},
                                {"batch_size": 5}, {"precision": "fp64"}])
def test_batched_values_equal_one_point_at_a_time_on_a_conv_net_with_batch_norm(kw):
    model, x, y = _conv_bn_mlp_head()
    one = Objective(model, x, y, points_per_pass=1, **kw)
    many = Objective(model, x, y, points_per_pass=4, **kw)  # asked for: a conv net on the CPU is not batched by default
    assert many.points_per_pass == 4 and many.point_batching and many.describe()["point_batching"] == "vmap"
    assert not one.point_batching and "point_batching" not in one.describe()
    assert (many._folded is not None) == kw.get("fold_bn", True)
    thetas = _points(one, 7, scale=0.2)
    rtol = 1e-13 if kw.get("precision") == "fp64" else 1e-6  # fp32: the rounding of a grouped convolution
    batched, single = many.values(thetas), one.values(thetas)
    np.testing.assert_allclose(batched[0], single[0], rtol=rtol, atol=0)
    np.testing.assert_array_equal(batched[1], single[1])
    np.testing.assert_allclose(single[0], [one.value(t) for t in thetas], rtol=0, atol=0)
    assert len(set(np.round(single[0], 6))) == 7  # seven different points, not one repeated
    if kw.get("bn") != "recompute":  # per-point frozen statistics, as interpolations pass them
        bufs = _scaled_statistics(one, [1.3, None, 0.7, 1.1, 0.9, None, 1.5])
        batched, single = many.values(thetas, buffers=bufs), one.values(thetas, buffers=bufs)
        np.testing.assert_allclose(batched[0], single[0], rtol=rtol, atol=0)
        assert single[0][0] == one.evaluate(thetas[0], bufs[0])[0] != one.value(thetas[0])


def test_batched_values_on_an_mlp_are_the_default_on_the_cpu_and_handle_float_targets():
    gen = torch.Generator().manual_seed(0)
    x, targets = torch.randn(40, 5, generator=gen), torch.randn(40, 3, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    auto = Objective(model, x, targets, loss="mse", batch_size=16)
    one = Objective(model, x, targets, loss="mse", batch_size=16, points_per_pass=1)
    assert auto.point_batching and auto.points_per_pass > 1
    thetas = _points(auto, 5)
    (fa, aa), (fo, ao) = auto.values(iter(thetas)), one.values(thetas)  # a generator is fine
    np.testing.assert_allclose(fa, fo, rtol=1e-6, atol=0)
    with torch.no_grad():
        direct = 0.5 * (model(x) - targets).pow(2).sum(1).double().mean()
    assert fa[0] == pytest.approx(float(direct), rel=1e-6)
    assert np.isnan(aa).all() and np.isnan(ao).all()  # float targets: no accuracy
    assert auto.values([])[0].shape == (0,)


def test_points_that_cannot_be_batched_are_evaluated_one_at_a_time_and_say_why():
    model, images, labels = randomized_resnet8(n=6)
    batch = Objective(model, images, labels, bn="batch", batch_size=3)
    assert batch.points_per_pass == 1 and not batch.point_batching
    assert "bn='batch'" in batch.describe()["point_batching"]
    auto = Objective(model, images, labels)  # a conv net on the CPU: one at a time, the reference path
    assert not auto.point_batching and "point_batching" not in auto.describe()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 6, generator=gen), torch.randint(0, 4, (30,), generator=gen)
    torch.manual_seed(0)
    untraceable = Objective(Untraceable().eval(), x, y, batch_size=8)  # data-dependent control flow: vmap refuses
    assert not untraceable.point_batching and untraceable.describe()["point_batching"].startswith("one at a time: vmap")
    thetas = _points(untraceable, 3)
    np.testing.assert_array_equal(untraceable.values(thetas)[0], [untraceable.value(t) for t in thetas])
    with pytest.raises(LandscapeError, match="points_per_pass"):
        Objective(model, images, labels, points_per_pass=0)


def test_convolutional_networks_batch_points_by_default_where_the_device_table_says_so(monkeypatch):
    from landscape import objective as objective_module

    model, x, y = _conv_bn_mlp_head()
    assert not Objective(model, x, y).point_batching  # the CPU: one at a time
    monkeypatch.setitem(objective_module.BATCH_CONVOLUTIONS, "cpu", True)
    assert Objective(model, x, y).point_batching


def test_points_per_pass_fits_the_memory_cap(monkeypatch):
    from landscape import objective as objective_module

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))  # 58 parameters, widest layer output 7
    x, y = torch.randn(20, 5), torch.randint(0, 2, (20,))
    # fp32 bytes of a point: copies of its weights, and the activations of a batch of 16
    per_point = 4 * (objective_module.STATE_COPIES * 58 + objective_module.ACTIVATION_FACTOR * 16 * 7)
    monkeypatch.setitem(objective_module.POINT_MEMORY, "cpu", 3 * per_point + 100)
    assert Objective(model, x, y, batch_size=16).points_per_pass == 3
    assert Objective(model, x, y, batch_size=16, points_per_pass=2).points_per_pass == 2
    monkeypatch.setitem(objective_module.POINT_MEMORY, "cpu", 10)
    tight = Objective(model, x, y, batch_size=16)
    assert tight.points_per_pass == 1 and tight.point_batching  # still batched code, one point a pass
    monkeypatch.setitem(objective_module.POINT_MEMORY, "cpu", 1 << 40)
    assert Objective(model, x, y, batch_size=16).points_per_pass == objective_module.MAX_POINTS_PER_PASS


class _TwoRanks:
    """A stand-in process group of two ranks seen from rank 0, which holds every example; the
    other rank contributes nothing to sums and can batch ``other_points`` points a pass."""

    distributed, world_size, rank = True, 2, 0

    def __init__(self, other_points):
        self.other_points, self.reductions = other_points, []

    def shard(self, count, batch_size):
        return slice(0, count)

    def all_reduce_sum(self, *tensors, what=""):
        self.reductions.append(what)
        if what.startswith("agreeing"):
            (sizes,) = tensors
            sizes = sizes.clone()
            sizes[1] = self.other_points
            return [sizes]
        return [t.to(torch.float64) for t in tensors]


def test_ranks_agree_on_the_points_per_pass_and_reduce_once_a_pass():
    model, x, y = _conv_bn_mlp_head()
    group = _TwoRanks(other_points=2)
    obj = Objective(model, x, y, points_per_pass=4, group=group)
    assert obj.points_per_pass == 2 and group.reductions == ["agreeing on the points per pass"]
    thetas = _points(obj, 5)
    loss, acc = obj.values(thetas)
    # passes of 2, 2 and 1 points: one all-reduce each (a lone point takes the one-point path)
    assert group.reductions[1:] == ["F and accuracy at several points"] * 2 + ["F and accuracy"]
    np.testing.assert_allclose(loss, Objective(model, x, y, points_per_pass=1).values(thetas)[0], rtol=1e-6)
    refused = _TwoRanks(other_points=0)
    obj = Objective(model, x, y, points_per_pass=4, group=refused)
    assert not obj.point_batching and "another rank" in obj.describe()["point_batching"]


def test_data_is_the_second_parameter_by_name_or_position():
    model, images, labels = tiny_net(n=10)
    by_name = Objective(model, data=images, labels=labels)
    assert by_name.value() == Objective(model, images, labels).value()
    assert by_name.value() == Objective(model, list(zip(images.split(4), labels.split(4)))).value()
