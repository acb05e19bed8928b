"""The Hessian operator and its spectrum against dense autograd Hessians of tiny float64 nets."""

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator
from torch import nn
from torch.func import functional_call

from landscape.curvature import (HessianOperator, extreme_eigenpairs, hutchinson_trace,
                                 most_negative_eigenpair, top_eigenpairs)
from landscape.errors import LandscapeError
from landscape.objective import Objective


def _mlp(act):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), act(), nn.Linear(5, 3))


def _conv_bn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
    bn = model[1]
    bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.05]))
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.3]))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.2, 0.7, -0.9]))
        bn.bias.copy_(torch.tensor([0.1, 0.0, -0.3]))
    return model


def _objective(kind, loss="cross_entropy"):
    gen = torch.Generator().manual_seed(1)
    if kind == "conv":
        model, x = _conv_bn(), torch.randn(20, 2, 4, 4, generator=gen, dtype=torch.float64)
    else:
        model = _mlp(nn.Tanh if kind == "tanh" else nn.ReLU)
        x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=gen)
    return Objective(model, x, y, precision="fp64", batch_size=7, loss=loss)


def _loss_fn(obj):
    """F(θ) written independently of Objective's loss code: mean loss over all examples at once."""
    state = {**obj.fixed, **obj.buffers}

    def f(theta):
        out = functional_call(obj.model.eval(), {**state, **obj.unflatten(theta)}, (obj.images,))
        if obj.loss_name == "mse":
            return 0.5 * (out - nn.functional.one_hot(obj.labels, 3).double()).pow(2).sum(1).mean()
        return nn.functional.cross_entropy(out, obj.labels)
    return f


def dense_hessian(obj, theta=None):
    theta = obj.theta0 if theta is None else theta
    return torch.autograd.functional.hessian(_loss_fn(obj), theta.double()).numpy()


def _as_dense(op):
    return op.matmat(np.eye(op.shape[0]))


KINDS = [("tanh", "cross_entropy"), ("relu", "cross_entropy"), ("conv", "cross_entropy"),
         ("tanh", "mse")]


@pytest.fixture(scope="module", params=KINDS, ids=["-".join(k) for k in KINDS])
def case(request):
    obj = _objective(*request.param)
    return obj, dense_hessian(obj)


def test_operator_is_the_dense_hessian(case):
    obj, H = case
    op = HessianOperator(obj)
    A = _as_dense(op)
    assert op.matvecs == obj.dim and op.hvps == obj.dim
    assert np.abs(A - H).max() <= 1e-10 * np.abs(H).max()
    assert np.trace(A) == pytest.approx(np.trace(H), rel=1e-9)
    v = torch.randn(obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(op.matvec_torch(v), obj.hvp(obj.theta0, v))


def test_extreme_eigenpairs_match_eigvalsh(case):
    obj, H = case
    w = np.linalg.eigvalsh(H)
    scale = np.abs(w).max()
    assert w[0] < -1e-3 * scale  # a negative direction exists, so the 'SA' check means something
    top = top_eigenpairs(HessianOperator(obj), k=3, tol=1e-10)
    assert [p.eigenvalue for p in top] == pytest.approx(w[::-1][:3], rel=1e-6, abs=1e-9 * scale)
    neg = most_negative_eigenpair(HessianOperator(obj), tol=1e-10)
    assert neg.converged and neg.which == "SA"
    assert neg.eigenvalue == pytest.approx(w[0], rel=1e-6, abs=1e-9 * scale)
    for p in [*top, neg]:
        assert np.linalg.norm(p.eigenvector) == pytest.approx(1.0)
        true_residual = np.linalg.norm(H @ p.eigenvector - p.eigenvalue * p.eigenvector)
        assert p.residual == pytest.approx(true_residual, rel=1e-6, abs=1e-12 * scale)
        assert p.residual <= 1e-7 * scale
        assert p.matvecs == p.iterations + len([top] if p is neg else top) and p.seconds > 0


def test_hutchinson_trace(case):
    obj, H = case
    sd = np.sqrt(2 * (np.sum(H ** 2) - np.sum(np.diag(H) ** 2)))  # exact per-probe std
    est = hutchinson_trace(obj, samples=50, seed=3)  # an Objective is taken as its Hessian at θ0
    assert est.samples == 50
    assert abs(est.estimate - np.trace(H)) <= 4 * sd / np.sqrt(50)
    assert est.stderr == pytest.approx(sd / np.sqrt(50), rel=0.5)
    again = hutchinson_trace(HessianOperator(obj), samples=50, seed=3)
    assert again.estimate == pytest.approx(est.estimate, rel=1e-12)
    many = hutchinson_trace(aslinearoperator(H), samples=20000, seed=4)
    assert abs(many.estimate - np.trace(H)) <= 4 * sd / np.sqrt(20000)
    assert many.stderr == pytest.approx(sd / np.sqrt(20000), rel=0.05)


@pytest.mark.parametrize("kind,eps,rtol", [("tanh", 1e-4, 1e-6), ("relu", 1e-6, 1e-5)])
def test_hvp_matches_finite_differences(kind, eps, rtol):
    obj = _objective(kind)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(obj.dim, dtype=torch.float64, generator=gen)
        v /= v.norm()
        fd = (obj.value_and_grad(obj.theta0 + eps * v)[1] - obj.value_and_grad(obj.theta0 - eps * v)[1]) / (2 * eps)
        hv = HessianOperator(obj).matvec_torch(v)
        assert (hv - fd).norm() <= rtol * hv.norm()


@pytest.mark.parametrize("kind", ["tanh", "relu", "conv"])
def test_smoothed_operator(kind):
    obj = _objective(kind)
    op = HessianOperator(obj, sigma=0.1, samples=3, seed=7)
    xis = [op.perturbation(j) for j in range(3)]
    assert not torch.equal(xis[0], xis[1])
    assert 0.5 < float(torch.cat(xis).std()) / 0.1 < 1.5
    expected = np.mean([dense_hessian(obj, obj.theta0 + xi) for xi in xis], axis=0)
    A = _as_dense(op)
    assert op.hvps == 3 * obj.dim
    assert np.abs(A - expected).max() <= 1e-10 * np.abs(expected).max()
    assert np.abs(A - dense_hessian(obj)).max() > 1e-3 * np.abs(expected).max()  # smoothing shows

    gen = np.random.default_rng(8)
    u, v = gen.standard_normal(obj.dim), gen.standard_normal(obj.dim)
    assert u @ op.matvec(v) == pytest.approx(v @ op.matvec(u), rel=1e-12)
    again = HessianOperator(obj, sigma=0.1, samples=3, seed=7)
    assert np.array_equal(again.matvec(v), op.matvec(v))
    assert not np.allclose(HessianOperator(obj, sigma=0.1, samples=3, seed=8).matvec(v), op.matvec(v))
    plain = HessianOperator(obj, sigma=0.0, samples=5)
    assert plain.samples == 0
    assert np.abs(_as_dense(plain) - dense_hessian(obj)).max() <= 1e-10 * np.abs(expected).max()
    with pytest.raises(LandscapeError):
        HessianOperator(obj, sigma=0.1, samples=0)


def test_smoothed_spectrum():
    obj = _objective("tanh")
    op = HessianOperator(obj, sigma=0.05, samples=2, seed=1)
    w = np.linalg.eigvalsh(_as_dense(op))
    assert most_negative_eigenpair(op, tol=1e-10).eigenvalue == pytest.approx(w[0], rel=1e-6)


def test_budget_returns_the_krylov_ritz_pair():
    """Stopped after m products, the pair is the Rayleigh-Ritz pair of K_m(H, v0), not a crash."""
    obj = _objective("tanh")
    H = dense_hessian(obj)
    m, v0 = 8, np.random.default_rng(0).standard_normal(obj.dim)
    Q = np.zeros((obj.dim, m))
    q = v0 / np.linalg.norm(v0)
    for j in range(m):  # orthonormal Krylov basis, twice-orthogonalized
        Q[:, j] = q
        q = H @ q
        for _ in range(2):
            q -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ q)
        q /= np.linalg.norm(q)
    ritz = np.linalg.eigvalsh(Q.T @ H @ Q)[0]
    pair = most_negative_eigenpair(HessianOperator(obj), max_matvecs=m, seed=0)
    assert not pair.converged and pair.iterations == m and pair.matvecs == m + 1
    assert pair.eigenvalue == pytest.approx(ritz, rel=1e-8)
    assert pair.eigenvalue > np.linalg.eigvalsh(H)[0]
    assert pair.residual == pytest.approx(np.linalg.norm(H @ pair.eigenvector - pair.eigenvalue * pair.eigenvector), rel=1e-8)


def test_no_convergence_returns_best_ritz_pair():
    obj = _objective("relu")
    H = dense_hessian(obj)
    w = np.linalg.eigvalsh(H)
    pair = extreme_eigenpairs(HessianOperator(obj), k=1, which="SA", tol=1e-15, maxiter=1, ncv=4)[0]
    assert not pair.converged
    assert w[0] <= pair.eigenvalue < 0
    assert pair.residual == pytest.approx(np.linalg.norm(H @ pair.eigenvector - pair.eigenvalue * pair.eigenvector), rel=1e-8)


def test_bad_arguments():
    op = HessianOperator(_objective("tanh"))
    with pytest.raises(LandscapeError):
        extreme_eigenpairs(op, which="LM")
    with pytest.raises(LandscapeError):
        extreme_eigenpairs(op, k=op.shape[0])
    with pytest.raises(LandscapeError):
        hutchinson_trace(op, samples=0)


def test_a_zero_operator_gives_eigenvalue_zero_not_an_arpack_error():
    """A one-class network's Hessian is 0: ARPACK stops with error -9 (the Krylov space collapses)."""
    from scipy.sparse.linalg import LinearOperator

    from landscape.curvature import most_negative_eigenpair, top_eigenpairs

    zero = LinearOperator((50, 50), matvec=lambda v: np.zeros_like(v), dtype=np.float64)
    for pair in (top_eigenpairs(zero, 1, max_matvecs=10)[0], most_negative_eigenpair(zero, max_matvecs=10)):
        assert pair.eigenvalue == 0 and pair.residual == 0
        assert np.linalg.norm(pair.eigenvector) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- both ends, one run
def _symmetric(eigenvalues, seed=0):
    """A dense symmetric matrix with exactly these eigenvalues (random orthogonal eigenvectors)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return (Q * np.asarray(eigenvalues)) @ Q.T


def _spectra():
    rng = np.random.default_rng(1)
    n = 400
    return {
        "clustered": np.r_[[10, 9.99, 9.98], rng.uniform(-1, 1, n - 6), [-2, -1.999, -1.998]],
        "degenerate": np.r_[[5.0] * 3, rng.uniform(-1, 4, n - 6), [-3.0] * 3],
        "hessian-like": np.r_[np.linspace(5, 30, 8), rng.gamma(0.5, 0.3, n - 20), -rng.gamma(0.5, 0.05, 12)],
        "uniform": np.linspace(-1, 2, n),
    }


@pytest.mark.parametrize("name", list(_spectra()))
def test_spectrum_ends_finds_both_extremes_in_fewer_products_than_two_eigsh_runs(name):
    from landscape.curvature import spectrum_ends

    w = np.sort(_spectra()[name])
    H = _symmetric(w)
    op = aslinearoperator(H)
    ends = spectrum_ends(op, k_top=2, k_bottom=1, tol=1e-10)
    scale = np.abs(w).max()
    assert [p.eigenvalue for p in ends.top] == pytest.approx(w[::-1][:2], abs=1e-8 * scale)
    assert ends.most_negative.eigenvalue == pytest.approx(w[0], abs=1e-8 * scale)
    assert [p.which for p in ends.top + ends.bottom] == ["LA", "LA", "SA"]
    for p in ends.top + ends.bottom:
        assert p.converged and np.linalg.norm(p.eigenvector) == pytest.approx(1.0)
        true_residual = np.linalg.norm(H @ p.eigenvector - p.eigenvalue * p.eigenvector)
        assert p.residual == pytest.approx(true_residual, rel=1e-6, abs=1e-13 * scale)
        assert p.error_bound == p.residual and p.residual <= 1e-9 * scale
        assert p.matvecs == p.iterations + 3
    # the same accuracy as ARPACK run once per end, for at most 0.6 of its products
    tol = 1e-6
    one = spectrum_ends(op, tol=tol)
    two = extreme_eigenpairs(op, 1, "LA", tol=tol)[0].matvecs + extreme_eigenpairs(op, 1, "SA", tol=tol)[0].matvecs
    assert one.top[0].matvecs <= 0.6 * two
    for p in (one.top[0], one.most_negative):
        assert p.residual <= 2 * tol * abs(p.eigenvalue)


def test_spectrum_ends_on_a_network_hessian(case):
    from landscape.curvature import spectrum_ends

    obj, H = case
    w = np.linalg.eigvalsh(H)
    scale = np.abs(w).max()
    ends = spectrum_ends(HessianOperator(obj), k_top=3, tol=1e-10)
    assert [p.eigenvalue for p in ends.top] == pytest.approx(w[::-1][:3], rel=1e-6, abs=1e-9 * scale)
    assert ends.most_negative.eigenvalue == pytest.approx(w[0], rel=1e-6, abs=1e-9 * scale)


def test_spectrum_ends_of_a_zero_operator_and_a_spent_budget():
    from scipy.sparse.linalg import LinearOperator

    from landscape.curvature import spectrum_ends

    zero = LinearOperator((50, 50), matvec=lambda v: np.zeros_like(v), dtype=np.float64)
    ends = spectrum_ends(zero, max_matvecs=10)
    assert ends.top[0].eigenvalue == 0 and ends.most_negative.residual == 0 and ends.top[0].converged
    H = _symmetric(np.linspace(-1, 2, 300))
    spent = spectrum_ends(aslinearoperator(H), tol=1e-12, max_matvecs=12)
    assert spent.top[0].iterations == 12 and not spent.top[0].converged
    with pytest.raises(LandscapeError):
        spectrum_ends(aslinearoperator(H), k_top=0, k_bottom=0)


# ----------------------------------------------------------------------------- honest uncertainty
def _covered(p, eigenvalues):
    """Some true eigenvalue lies within the pair's error bound (|λ − θ| ≤ ‖r‖ for symmetric H)."""
    return np.min(np.abs(eigenvalues - p.eigenvalue)) <= p.error_bound * (1 + 1e-9) + 1e-14


@pytest.mark.parametrize("budget", [4, 8, 15, None])
def test_error_bounds_cover_a_true_eigenvalue_even_when_stopped_early(case, budget):
    from landscape.curvature import spectrum_ends

    obj, H = case
    w = np.linalg.eigvalsh(H)
    op = HessianOperator(obj)
    pairs = [*top_eigenpairs(op, k=2, max_matvecs=budget, tol=1e-8),
             most_negative_eigenpair(op, max_matvecs=budget, tol=1e-8)]
    ends = spectrum_ends(op, k_top=2, max_matvecs=budget, tol=1e-8)
    for p in [*pairs, *ends.top, *ends.bottom]:
        assert _covered(p, w)
        assert p.error_bound == pytest.approx(np.linalg.norm(H @ p.eigenvector - p.eigenvalue * p.eigenvector),
                                              rel=1e-6, abs=1e-13)
    if budget is None:  # converged: the bound then covers the extreme eigenvalue itself
        assert abs(ends.top[0].eigenvalue - w[-1]) <= ends.top[0].error_bound + 1e-12
        assert abs(ends.most_negative.eigenvalue - w[0]) <= ends.most_negative.error_bound + 1e-12


def test_error_bounds_cover_a_known_spectrum():
    from landscape.curvature import spectrum_ends

    w = np.sort(_spectra()["clustered"])
    op = aslinearoperator(_symmetric(w))
    for tol in (1e-2, 1e-4, 1e-8):
        ends = spectrum_ends(op, k_top=3, k_bottom=2, tol=tol)
        assert all(_covered(p, w) for p in ends.top + ends.bottom)


def test_hutchinson_stderr_covers_the_exact_trace(case):
    obj, H = case
    for seed in range(3):
        est = hutchinson_trace(obj, samples=30, seed=seed)
        assert abs(est.estimate - np.trace(H)) <= 4 * est.stderr


def test_spectrum_ends_measures_only_the_reported_top_pairs_and_the_rest_keep_lanczos_residuals():
    from landscape.curvature import spectrum_ends

    w = np.sort(_spectra()["hessian-like"])
    H = _symmetric(w)
    op = aslinearoperator(H)
    # a budget that stops before convergence: residuals are large enough to compare
    every = spectrum_ends(op, k_top=6, k_bottom=1, tol=1e-12, max_matvecs=30)
    some = spectrum_ends(op, k_top=6, k_bottom=1, tol=1e-12, max_matvecs=30, measured_top=1)
    assert [p.eigenvalue for p in some.top] == pytest.approx([p.eigenvalue for p in every.top], rel=1e-12)
    assert some.top[0].matvecs == every.top[0].matvecs - 5  # 5 residual products saved
    for p, q in zip(some.top + some.bottom, every.top + every.bottom):
        true_residual = np.linalg.norm(H @ p.eigenvector - p.eigenvalue * p.eigenvector)
        # measured or not, the residual is the true one (Lanczos' ‖β s‖ under full reorthogonalization)
        assert p.residual == pytest.approx(true_residual, rel=1e-6, abs=1e-10)
        assert p.residual == pytest.approx(q.residual, rel=1e-6, abs=1e-10)


# ----------------------------------------------------------------------------- one result type
def test_every_eigensolver_returns_an_eigenpair_that_says_what_its_bound_holds_for():
    from landscape.curvature import Eigenpair, spectrum_ends

    obj = _objective("relu")
    H, op = dense_hessian(obj), HessianOperator(obj)
    lanczos = [*top_eigenpairs(op, k=2, tol=1e-8), most_negative_eigenpair(op, tol=1e-8),
               *spectrum_ends(op, tol=1e-8).top]
    arpack = extreme_eigenpairs(op, 2, "LA", tol=1e-8)
    for p in lanczos + arpack:
        assert type(p) is Eigenpair and p.bound_for == "operator as computed (float64 products)"
        assert p.error_bound == p.residual and "eigenvector" not in p.summary()
    assert {p.solver for p in lanczos} == {"lanczos"} and {p.solver for p in arpack} == {"arpack"}
    scale = np.abs(np.linalg.eigvalsh(H)).max()
    assert [p.eigenvalue for p in lanczos[:2]] == pytest.approx([p.eigenvalue for p in arpack], abs=1e-7 * scale)


def test_a_float32_operator_bounds_its_own_products_and_a_plain_operator_is_taken_as_given():
    obj = _objective("tanh")
    fp32 = Objective(obj.model, obj.images, obj.labels, precision="fp32", batch_size=7)
    pair = top_eigenpairs(HessianOperator(fp32), tol=1e-6)[0]
    assert pair.bound_for == "operator as computed (float32 products)"
    # the fp64 Hessian's λ_max lies within the bound here: float32 rounding is below it on this tiny net
    assert abs(pair.eigenvalue - np.linalg.eigvalsh(dense_hessian(obj))[-1]) <= pair.error_bound
    H = aslinearoperator(np.diag([3.0, 1.0, -2.0]))
    assert most_negative_eigenpair(H).bound_for == "operator as given"
    assert extreme_eigenpairs(H, 1, "SA", bound_for="rank 0's collective operator")[0].bound_for == \
        "rank 0's collective operator"


# ----------------------------------------------------------------------------- the gradient in the top space
def _pairs(vectors, values, converged=True):
    from landscape.curvature import Eigenpair

    return [Eigenpair(float(lam), np.asarray(v, float), 0.0, 1, 1, 0.0, converged, "LA") for v, lam in
            zip(vectors, values)]


def test_gradient_alignment_is_the_projection_onto_the_span_of_the_eigenvectors():
    import json

    from cases import closed_form, least_squares

    from landscape.curvature import gradient_alignment

    obj, model, x, y = least_squares()
    _, grad, hessian = closed_form(model, x, y)
    values, vectors = np.linalg.eigh(hessian)
    pairs = _pairs([vectors[:, -i] for i in (1, 2, 3)], values[[-1, -2, -3]])
    q, _ = np.linalg.qr(vectors[:, -3:])
    expected = float(np.sum((q.T @ grad) ** 2) / (grad @ grad))
    assert 0.01 < expected < 0.99
    result = gradient_alignment(obj.value_and_grad()[1], pairs)  # the objective's own ∇F, a torch vector
    assert result.k == 3 and result.fraction == pytest.approx(expected, rel=1e-9)
    assert result.resolved and result.converged and result.reason is None
    assert result.eigenvalues == pytest.approx(list(values[[-1, -2, -3]]))
    assert json.loads(json.dumps(result.as_dict()))["fraction"] == pytest.approx(expected, rel=1e-9)
    # a basis that is not orthonormal spans the same space: the same share
    skewed = _pairs([2.0 * vectors[:, -1] + vectors[:, -2], vectors[:, -2], vectors[:, -3]], [0.0] * 3)
    assert gradient_alignment(grad, skewed).fraction == pytest.approx(expected, rel=1e-9)


def test_an_unresolved_alignment_is_never_a_number():
    import json

    from landscape.curvature import gradient_alignment

    vectors = np.eye(6)[:3]
    zero = gradient_alignment(np.zeros(6), _pairs(vectors, [3.0, 2.0, 1.0]))
    assert not zero.resolved and zero.fraction is None and "∇F = 0" in zero.reason and zero.converged
    loose = gradient_alignment(np.ones(6), _pairs(vectors, [3.0, 2.0, 1.0], converged=False))
    assert not loose.resolved and loose.fraction is None and not loose.converged
    assert loose.reason.startswith("3 of the 3 eigenpairs did not converge")
    assert json.loads(json.dumps(loose.as_dict()))["fraction"] is None
    assert gradient_alignment(np.ones(6), _pairs(vectors, [3.0, 2.0, 1.0])).fraction == pytest.approx(0.5)
    with pytest.raises(LandscapeError, match="at least one"):
        gradient_alignment(np.ones(6), [])
    with pytest.raises(LandscapeError, match="length 5"):
        gradient_alignment(np.ones(5), _pairs(vectors, [3.0, 2.0, 1.0]))


def test_gradient_alignment_at_an_objective_runs_lanczos_for_the_top_pairs():
    """Least squares on one output: H = XᵀX/n and ∇F = Xᵀ(Xw − y)/n in closed form."""
    from landscape.curvature import gradient_alignment_at

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(40, 12, dtype=torch.float64, generator=gen) * torch.linspace(3.0, 0.2, 12, dtype=torch.float64)
    y = torch.randn(40, 1, dtype=torch.float64, generator=gen)
    torch.manual_seed(0)
    obj = Objective(nn.Linear(12, 1, bias=False), x, y, loss="mse", precision="fp64")
    X, Y, w = x.numpy(), y.numpy()[:, 0], obj.theta0.numpy()
    values, vectors = np.linalg.eigh(X.T @ X / 40)
    g = X.T @ (X @ w - Y) / 40
    expected = float(np.sum((vectors[:, -3:].T @ g) ** 2) / (g @ g))
    result = gradient_alignment_at(obj, k=3, tol=1e-10)
    assert result.resolved and result.fraction == pytest.approx(expected, rel=1e-8)
    assert result.eigenvalues == pytest.approx(list(values[::-1][:3]), rel=1e-8)
    stopped = gradient_alignment_at(obj, obj.theta0, k=3, tol=1e-14, max_matvecs=4)
    assert not stopped.resolved and stopped.fraction is None and "did not converge" in stopped.reason
