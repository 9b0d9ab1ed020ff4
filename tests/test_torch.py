"""pyot.torch: gradients (gradcheck, POT, GeomLoss), training, leaks, zero-copy, bad input."""

from __future__ import annotations

import gc
import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pyot  # noqa: E402
import pyot.torch as pt  # noqa: E402
from pyot import _core  # noqa: E402
from pyot.torch import _sinkhorn  # noqa: E402

F64 = torch.float64
METRICS = [("sqeuclidean", 2.0), ("euclidean", 2.0), ("cityblock", 1.0), ("minkowski", 3.0),
           ("cosine", 2.0)]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(20240607)


def rand(gen, *shape, dtype=F64, grad=False):
    return torch.rand(*shape, generator=gen, dtype=dtype).requires_grad_(grad)


def simplex(gen, n):
    """A weight vector through softmax: gradcheck's perturbations keep the mass at 1."""
    return torch.randn(n, generator=gen, dtype=F64).requires_grad_()


def check(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("output", ["objective", "value", "plan"])
def test_gradcheck_dense_sinkhorn(gen, output):
    cost = rand(gen, 5, 6, grad=True)
    al, bl = simplex(gen, 5), simplex(gen, 6)

    def fn(c, al, bl):
        res = pt.sinkhorn(c, al.softmax(0), bl.softmax(0), eps=0.3, tol=1e-13)
        return getattr(res, output)

    check(fn, cost, al, bl)


def test_gradcheck_batched_dense_sinkhorn(gen):
    cost = rand(gen, 3, 4, 5, grad=True)
    al = simplex(gen, 4)
    check(lambda c, al: pt.sinkhorn(c, al.softmax(0), eps=0.3, tol=1e-13).objective, cost, al)
    check(lambda c: pt.sinkhorn(c, eps=0.3, tol=1e-13).value, cost)


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_gradcheck_point_cloud_objective(gen, metric, p):
    x, y = rand(gen, 6, 3, grad=True), rand(gen, 7, 3, grad=True)
    al, bl = simplex(gen, 6), simplex(gen, 7)

    def fn(x, y, al, bl):
        geom = pt.PointCloud(x, y, metric, p=p)
        return pt.sinkhorn(geom, al.softmax(0), bl.softmax(0), eps=0.2, tol=1e-13).objective

    check(fn, x, y, al, bl)


def test_gradcheck_point_cloud_value_and_plan(gen):
    x, y = rand(gen, 5, 2, grad=True), rand(gen, 4, 2, grad=True)
    check(lambda x, y: pt.sinkhorn(pt.PointCloud(x, y), eps=0.2, tol=1e-13).value, x, y)
    check(lambda x, y: pt.sinkhorn(pt.PointCloud(x, y), eps=0.2, tol=1e-13).plan, x, y)


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_gradcheck_point_cloud_value_online(gen, metric, p):
    """The value's implicit gradient from the core (plan-vector products, weighted point
    gradient), in the points and weights."""
    x, y = rand(gen, 6, 3, grad=True), rand(gen, 5, 3, grad=True)
    al, bl = simplex(gen, 6), simplex(gen, 5)

    def fn(x, y, al, bl):
        geom = pt.PointCloud(x, y, metric, p=p)
        return pt.sinkhorn(geom, al.softmax(0), bl.softmax(0), eps=0.2, tol=1e-13).value

    check(fn, x, y, al, bl)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_gradcheck_point_cloud_value_gemm_form(gen, metric):
    x, y = rand(gen, 5, 20, grad=True), rand(gen, 4, 20, grad=True)
    check(lambda x, y: pt.sinkhorn(pt.PointCloud(x, y, metric), eps=0.5, tol=1e-13).value, x, y)


@pytest.mark.parametrize("tau", [None, (1.0, 2.0)])
def test_point_cloud_value_gradient_online_matches_dense(gen, tau):
    """The online value gradient equals the dense implicit one (torch cost, numpy CG), with
    a zero weight on each side."""
    x, y = rand(gen, 60, 3, grad=True), rand(gen, 50, 3, grad=True)
    a = torch.rand(60, generator=gen, dtype=F64)
    b = torch.rand(50, generator=gen, dtype=F64)
    a[3] = b[7] = 0.0
    a, b = (a / a.sum()).requires_grad_(), (b / b.sum()).requires_grad_()

    def solve(cost):
        if tau is None:
            return pt.sinkhorn(cost, a, b, eps=0.05, tol=1e-12).value
        return pt.unbalanced_sinkhorn(cost, a, b, eps=0.05, reg_marginals=tau, tol=1e-12).value

    online = torch.autograd.grad(solve(pt.PointCloud(x, y)), (x, y, a, b))
    dense = torch.autograd.grad(solve(pt.PointCloud(x, y).dense()), (x, y, a, b))
    for got, want in zip(online, dense, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-9)


def test_point_cloud_value_gradient_forms_no_cost_matrix(gen, force_online, monkeypatch):
    """No (n, m) array in the value's backward: dense costs forbidden, and numpy's peak
    allocation stays far below one n x m float64 array."""
    import tracemalloc

    x, y = rand(gen, 1000, 3, grad=True), rand(gen, 900, 3)

    def forbidden(*args, **kwargs):
        raise AssertionError("an (n, m) cost matrix was formed")

    monkeypatch.setattr(pyot.costs, "_evaluate", forbidden)
    monkeypatch.setattr(pt._common, "torch_cost", forbidden)
    value = pt.sinkhorn(pt.PointCloud(x, y), eps=0.5, tol=1e-9).value
    tracemalloc.start()
    try:
        value.backward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1000 * 900 * 8 / 20
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(("metric", "p"), METRICS[:2])
def test_gradcheck_divergence(gen, metric, p):
    x, y = rand(gen, 6, 2, grad=True), rand(gen, 5, 2, grad=True)
    al, bl = simplex(gen, 6), simplex(gen, 5)

    def fn(x, y, al, bl):
        return pt.sinkhorn_divergence(x, y, al.softmax(0), bl.softmax(0), eps=0.2,
                                      metric=metric, tol=1e-13)

    check(fn, x, y, al, bl)


@pytest.mark.parametrize("output", ["objective", "value", "plan"])
def test_gradcheck_unbalanced(gen, output):
    cost = rand(gen, 5, 4, grad=True)
    a = (rand(gen, 5) + 0.5).requires_grad_()
    b = (rand(gen, 4) + 0.5).requires_grad_()

    def fn(c, a, b):
        res = pt.unbalanced_sinkhorn(c, a, b, eps=0.3, reg_marginals=(1.0, 2.0), tol=1e-13)
        return getattr(res, output)

    check(fn, cost, a, b)


def test_gradcheck_unbalanced_point_cloud(gen):
    x, y = rand(gen, 5, 2, grad=True), rand(gen, 6, 2)
    for output in ("objective", "value"):
        check(lambda x, output=output: getattr(pt.unbalanced_sinkhorn(
            pt.PointCloud(x, y), eps=0.3, reg_marginals=1.0, tol=1e-13), output), x)


def test_gradcheck_emd(gen):
    cost = rand(gen, 5, 6, grad=True)
    al, bl = simplex(gen, 5), simplex(gen, 6)
    check(lambda c, al, bl: pt.emd(c, al.softmax(0), bl.softmax(0)).value, cost, al, bl)
    x, y = rand(gen, 5, 2, grad=True), rand(gen, 6, 2)
    check(lambda x: pt.emd(pt.PointCloud(x, y)).value, x)


def test_gradcheck_partial(gen):
    cost = rand(gen, 5, 4, grad=True)
    a = (rand(gen, 5) + 0.5).requires_grad_()
    b = (rand(gen, 4) + 0.5).requires_grad_()
    check(lambda c, a, b: pt.partial_ot(c, a, b, mass=1.0).value, cost, a, b)
    check(lambda c, a, b: pt.partial_ot(c, a, b, mass=1.0, eps=0.2, tol=1e-13).objective,
          cost, a, b)


def test_gradcheck_entropic_partial_value(gen):
    """The entropic partial value's implicit gradient: binding and slack capacities on both
    sides (mass 1 of 2.5 and 2)."""
    cost = rand(gen, 5, 4, grad=True)
    a = (rand(gen, 5) * 0.5 + 0.25).requires_grad_()
    b = (rand(gen, 4) * 0.5 + 0.25).requires_grad_()
    res = pt.partial_ot(cost, a, b, mass=1.0, eps=0.1, tol=1e-13)
    f, g = res.f.numpy(), res.g.numpy()
    assert (f < 0).any()
    assert (f == 0).any()
    assert (g < 0).any()
    assert (g == 0).any()
    check(lambda c, a, b: pt.partial_ot(c, a, b, mass=1.0, eps=0.1, tol=1e-13).value,
          cost, a, b)


def test_entropic_partial_value_gradient_matches_finite_differences(gen):
    cost = rand(gen, 7, 6)
    a, b = torch.full((7,), 0.2, dtype=F64), torch.full((6,), 0.25, dtype=F64)
    c = cost.clone().requires_grad_()
    pt.partial_ot(c, a, b, mass=0.8, eps=0.05, tol=1e-13).value.backward()
    direction = torch.randn(7, 6, generator=gen, dtype=F64)
    h = 1e-5
    up = pyot.partial_ot((cost + h * direction).numpy(), a.numpy(), b.numpy(), mass=0.8,
                         eps=0.05, tol=1e-13).value
    down = pyot.partial_ot((cost - h * direction).numpy(), a.numpy(), b.numpy(), mass=0.8,
                           eps=0.05, tol=1e-13).value
    np.testing.assert_allclose((c.grad * direction).sum().item(), (up - down) / (2 * h),
                               rtol=1e-6)


@pytest.mark.parametrize("output", ["objective", "value", "plan"])
def test_gradcheck_sparse(gen, output):
    cost = rand(gen, 6, 4, grad=True)
    al, bl = simplex(gen, 6), simplex(gen, 4)

    def fn(c, al, bl):
        res = pt.sparse_ot(c, al.softmax(0), bl.softmax(0), k=6, reg=0.5, tol=1e-13,
                           max_iter=10_000)
        return getattr(res, output)

    check(fn, cost, al, bl)


@pytest.mark.parametrize("p", [1.5, 2.0])
def test_gradcheck_sliced(gen, p):
    x, y = rand(gen, 7, 3, grad=True), rand(gen, 5, 3, grad=True)
    dirs = np.random.default_rng(0).standard_normal((8, 3))
    check(lambda x, y: pt.sliced_wasserstein(x, y, p=p, directions=dirs).value, x, y)


# ----------------------------------------------------------------------------- references


def test_objective_cost_gradient_is_plan(gen):
    cost = rand(gen, 6, 5, grad=True)
    res = pt.sinkhorn(cost, eps=0.1)
    res.objective.backward()
    np.testing.assert_allclose(cost.grad.numpy(), res.plan.detach().numpy(), rtol=1e-12)
    ref = pyot.sinkhorn(cost.detach().numpy(), eps=0.1)
    np.testing.assert_allclose(res.objective.item(), ref.objective, rtol=1e-12)


def unrolled_plan(cost, a, b, eps, iters):
    """Plain log-domain Sinkhorn in torch, differentiated by unrolling (the reference)."""
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(iters):
        f = -eps * torch.logsumexp(b.log() + (g - cost) / eps, dim=1)
        g = -eps * torch.logsumexp(a.log()[:, None] + (f[:, None] - cost) / eps, dim=0)
    return a[:, None] * b[None, :] * torch.exp((f[:, None] + g[None, :] - cost) / eps)


def test_implicit_plan_gradient_matches_unrolling(gen):
    cost = rand(gen, 7, 5, grad=True)
    a = torch.softmax(torch.randn(7, generator=gen, dtype=F64), 0).requires_grad_()
    b = torch.softmax(torch.randn(5, generator=gen, dtype=F64), 0).requires_grad_()
    weights = torch.randn(7, 5, generator=gen, dtype=F64)
    (pt.sinkhorn(cost, a, b, eps=0.2, tol=1e-13).plan * weights).sum().backward()
    c2, a2, b2 = (t.detach().clone().requires_grad_() for t in (cost, a, b))
    (unrolled_plan(c2, a2, b2, 0.2, 2000) * weights).sum().backward()
    np.testing.assert_allclose(cost.grad.numpy(), c2.grad.numpy(), atol=1e-9)
    for ours, theirs in ((a, a2), (b, b2)):  # weight gradients are defined up to a constant
        np.testing.assert_allclose(ours.grad.numpy() - ours.grad.numpy().mean(),
                                   theirs.grad.numpy() - theirs.grad.numpy().mean(), atol=1e-8)


def test_emd_matches_pot(gen):
    ot = pytest.importorskip("ot")
    cost = rand(gen, 8, 6, grad=True)
    a = torch.softmax(torch.randn(8, generator=gen, dtype=F64), 0).requires_grad_()
    b = torch.softmax(torch.randn(6, generator=gen, dtype=F64), 0).requires_grad_()
    pt.emd(cost, a, b).value.backward()
    c2, a2, b2 = (t.detach().clone().requires_grad_() for t in (cost, a, b))
    ot.emd2(a2, b2, c2).backward()
    for ours, theirs in ((cost, c2), (a, a2), (b, b2)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-10)


def test_sinkhorn_point_gradient_matches_pot(gen):
    ot = pytest.importorskip("ot")
    x, y = rand(gen, 30, 2, grad=True), rand(gen, 25, 2)
    eps = 0.05
    pt.sinkhorn(pt.PointCloud(x, y), eps=eps, tol=1e-12).objective.backward()
    x2 = x.detach().clone().requires_grad_()
    res = ot.solve_sample(x2, y, reg=eps, grad="envelope", max_iter=100_000, tol=1e-12)
    res.value.backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-7)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinkhorn_point_gradient_high_dimension(metric, dtype):
    """d = 24 (the GEMM-form tiles): sum_j P_ij grad_x c(x_i, y_j) against the dense formula."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 24)) + 5.0, rng.normal(size=(300, 24)) + 5.5
    a, b = np.full(50, 1 / 50), np.full(300, 1 / 300)
    f, g = rng.normal(size=50) * 0.1, rng.normal(size=300) * 0.1
    eps = {"sqeuclidean": 5.0, "euclidean": 0.5, "cosine": 0.01}[metric]
    cost = pyot.cost_matrix(x, y, metric)
    plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - cost) / eps)
    diff = x[:, None, :] - y[None, :, :]
    if metric == "sqeuclidean":
        grad_c = 2.0 * diff
    elif metric == "euclidean":
        grad_c = diff / cost[:, :, None]
    else:
        nx = np.linalg.norm(x, axis=1)[:, None, None]
        yh = (y / np.linalg.norm(y, axis=1)[:, None])[None]
        grad_c = -(yh - (1.0 - cost)[:, :, None] * x[:, None, :] / nx) / nx
    expected = np.einsum("ij,ijk->ik", plan, grad_c)
    ours = _core.sinkhorn_point_gradient(x.astype(dtype), y.astype(dtype),
                                         pyot.costs.METRICS[metric], 2.0, a, b, f, g, eps=eps,
                                         threads=0)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(ours, expected, atol=tol * np.abs(expected).max())


@pytest.mark.skipif(importlib.util.find_spec("geomloss") is None, reason="geomloss missing")
def test_divergence_matches_geomloss(gen):
    from geomloss import SamplesLoss

    x, y = rand(gen, 40, 2, grad=True), rand(gen, 30, 2)
    eps = 0.1
    ours = pt.sinkhorn_divergence(x, y, eps=eps, tol=1e-12)
    ours.backward()
    x2 = x.detach().clone().requires_grad_()
    # GeomLoss: cost |x - y|^2 / 2 and eps = blur^2, so S_ours(eps) = 2 S_geomloss(eps / 2).
    # It anneals eps with one update per stage and no tolerance: a slow schedule (0.999)
    # brings it within ~1e-5 of the converged gradient.
    loss = SamplesLoss("sinkhorn", p=2, blur=(eps / 2) ** 0.5, scaling=0.999, debias=True)
    theirs = 2 * loss(x2, y)
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-4)


def test_sliced_gradient_matches_pot(gen):
    ot = pytest.importorskip("ot")
    x, y = rand(gen, 30, 3, grad=True), rand(gen, 20, 3, grad=True)
    dirs = np.random.default_rng(1).standard_normal((16, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ours = pt.sliced_wasserstein(x, y, directions=dirs).value
    ours.backward()
    x2, y2 = (t.detach().clone().requires_grad_() for t in (x, y))
    theirs = ot.sliced_wasserstein_distance(x2, y2, projections=torch.from_numpy(dirs.T), p=2)
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(y.grad.numpy(), y2.grad.numpy(), atol=1e-10)


def test_sliced_loss_batched(gen):
    x, y = rand(gen, 2, 25, 2, grad=True), rand(gen, 2, 30, 2)
    per = pt.SlicedWassersteinLoss(8, seed=0, reduction="none")(x, y)
    assert per.shape == (2,)
    per.sum().backward()
    assert x.grad.shape == x.shape


def test_sliced_value_matches_numpy(gen):
    x, y = rand(gen, 50, 3), rand(gen, 40, 3)
    ours = pt.sliced_wasserstein(x, y, n_projections=20, seed=3)
    ref = pyot.sliced_wasserstein(x.numpy(), y.numpy(), n_projections=20, seed=3)
    np.testing.assert_allclose(ours.value.item(), ref.value, rtol=1e-12)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_torch_cost_gram_form_matches_differences(gen, metric, monkeypatch):
    x, y = rand(gen, 20, 5, grad=True), rand(gen, 15, 5)
    x_far = (x.detach() + 100.0).requires_grad_()
    direct = pt._common.torch_cost(x_far, y + 100.0, metric, 2.0)
    monkeypatch.setattr(pt._common, "DIFF_LIMIT", 0)
    gram = pt._common.torch_cost(x_far, y + 100.0, metric, 2.0)
    np.testing.assert_allclose(gram.detach().numpy(), direct.detach().numpy(), rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(pyot.cost_matrix(x_far.detach().numpy(), y.numpy() + 100.0,
                                                metric), gram.detach().numpy(), rtol=1e-9)


# ----------------------------------------------------------------------------- modules


def test_sinkhorn_loss_batched_reductions(gen):
    x, y = rand(gen, 3, 20, 2, grad=True), rand(gen, 3, 15, 2)
    per = pt.SinkhornLoss(0.05, reduction="none", tol=1e-12)(x, y)
    assert per.shape == (3,)
    singles = [pt.sinkhorn_divergence(x[k], y[k], eps=0.05, tol=1e-12).item() for k in range(3)]
    np.testing.assert_allclose(per.detach().numpy(), singles, rtol=1e-9)
    total = pt.SinkhornLoss(0.05, reduction="sum")(x, y)
    mean = pt.SinkhornLoss(0.05)(x, y)
    np.testing.assert_allclose(total.item(), 3 * mean.item(), rtol=1e-12)
    mean.backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("debias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sinkhorn_loss_batch_is_one_core_call_and_equals_the_loop(gen, debias, dtype,
                                                                  monkeypatch):
    """A (B, n, d) batch: one core call per solve kind and per gradient term (not per
    problem), the same losses and gradients as a loop over the pairs; weights shared (n,) or
    per problem (B, m)."""
    x = rand(gen, 5, 30, 3, dtype=dtype, grad=True)
    y = rand(gen, 5, 25, 3, dtype=dtype, grad=True)
    a = torch.full((30,), 1 / 30, dtype=dtype, requires_grad=True)
    b = torch.rand(5, 25, generator=gen, dtype=F64).to(dtype) + 0.5
    b = (b / b.sum(1, keepdim=True)).requires_grad_()
    calls = []
    for name in ("sinkhorn_online_batch", "sinkhorn_symmetric_online_batch",
                 "sinkhorn_point_gradient_batch"):
        real = getattr(_core, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(_core, name, spy)
    tol = 1e-6 if dtype == torch.float32 else 1e-12  # float32 plateaus near 1e-7
    loss_fn = pt.SinkhornLoss(0.1, debias=debias, tol=tol, reduction="sum")
    batched = loss_fn(x, y, a, b)
    grads = torch.autograd.grad(batched, (x, y, a, b))
    assert len(calls) == (1 + 2 + 4 if debias else 1 + 2)
    loop = sum(loss_fn(x[k], y[k], a, b[k]) for k in range(5))
    want = torch.autograd.grad(loop, (x, y, a, b))
    rtol = 1e-3 if dtype == torch.float32 else 1e-8
    np.testing.assert_allclose(batched.item(), loop.item(), rtol=rtol)
    for got, ref in zip(grads, want, strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=rtol, atol=rtol * 1e-2)


def test_sinkhorn_loss_batch_rejects_bad_input(gen):
    loss = pt.SinkhornLoss(0.1)
    with pytest.raises(ValueError, match="same B and d"):
        loss(rand(gen, 2, 5, 2), rand(gen, 3, 5, 2))
    with pytest.raises(ValueError, match="a and b must have the same total mass"):
        loss(rand(gen, 2, 5, 2), rand(gen, 2, 4, 2), torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match="x contains NaN"):
        loss(torch.full((2, 5, 2), float("nan"), dtype=F64), rand(gen, 2, 4, 2))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_point_gradient_matches_online(metric, dtype):
    """The point gradient read from a materialised cost equals the one from cost tiles (d = 3
    and d = 24, clouds far from the origin)."""
    rng = np.random.default_rng(5)
    for d in (3, 24):
        x = (rng.normal(size=(70, d)) + 5.0).astype(dtype)
        y = (rng.normal(size=(90, d)) + 5.5).astype(dtype)
        a, b = rng.random(70), rng.random(90)
        a[3] = 0.0
        f, g = rng.normal(size=70) * 0.1, rng.normal(size=90) * 0.1
        code = pyot.costs.METRICS[metric]
        cost = pyot.cost_matrix(x, y, metric)
        eps = 2.0 if metric == "sqeuclidean" else 0.3
        ours = _core.sinkhorn_dense_point_gradient(cost, x, y, code, a, b, f, g, eps=eps,
                                                   threads=2)
        tiles = _core.sinkhorn_point_gradient(x, y, code, 2.0, a, b, f, g, eps=eps, threads=1)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(ours, tiles, atol=tol * np.abs(tiles).max())
        np.testing.assert_array_equal(ours[3], 0.0)


def test_dense_point_gradient_rejects_bad_input():
    x, y = np.zeros((4, 2)), np.zeros((5, 2))
    w = np.full(4, 0.25), np.full(5, 0.2)
    pots = np.zeros(4), np.zeros(5)
    with pytest.raises(ValueError, match="squared Euclidean or Euclidean"):
        _core.sinkhorn_dense_point_gradient(np.zeros((4, 5)), x, y, 4, *w, *pots, eps=1.0,
                                            threads=1)
    with pytest.raises(ValueError, match="cost"):
        _core.sinkhorn_dense_point_gradient(np.zeros((5, 4)), x, y, 0, *w, *pots, eps=1.0,
                                            threads=1)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sinkhorn_loss_eager_gradient_matches_online(gen, dtype, monkeypatch):
    """A small SinkhornLoss (debias=False) computes d/dx in the forward from its cost matrix;
    the backward evaluates no cost, and the gradients equal those of the online path."""
    x, y = rand(gen, 60, 20, dtype=dtype, grad=True), rand(gen, 50, 20, dtype=dtype, grad=True)
    loss_fn = pt.SinkhornLoss(0.5, debias=False)
    loss = loss_fn(x, y)
    monkeypatch.setattr(pyot.costs, "_evaluate", lambda *args, **kwargs: pytest.fail("cost"))
    (2.0 * loss).backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    monkeypatch.undo()
    x.grad = y.grad = None
    monkeypatch.setattr(_sinkhorn._numpy_sinkhorn, "_DENSE_LIMIT", 0)
    online = loss_fn(x, y)
    (2.0 * online).backward()
    rtol = 1e-10 if dtype == F64 else 1e-4
    np.testing.assert_allclose(loss.item(), online.item(), rtol=rtol)
    np.testing.assert_allclose(gx.numpy(), x.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(gy.numpy(), y.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)


def test_sinkhorn_loss_without_debias_is_objective(gen):
    x, y = rand(gen, 20, 2), rand(gen, 15, 2)
    loss = pt.SinkhornLoss(0.05, debias=False)(x, y)
    ref = pyot.sinkhorn(pyot.PointCloud(x.numpy(), y.numpy()), eps=0.05)
    np.testing.assert_allclose(loss.item(), ref.objective, rtol=1e-12)


def test_training_loop_moves_the_cloud(gen):
    y = torch.randn(200, 2, generator=gen) * 0.3 + 2.0
    x = torch.randn(200, 2, generator=gen).requires_grad_()
    loss_fn = pt.SinkhornLoss(0.01)
    opt = torch.optim.SGD([x], lr=0.5)
    first = loss_fn(x, y).item()
    for _ in range(30):
        opt.zero_grad()
        loss_fn(x, y).backward()
        x.grad *= len(x)  # d loss / dx_i = 2 a_i (x_i - T(x_i)): lr 0.5 steps onto T(x_i)
        opt.step()
    assert loss_fn(x, y).item() < first / 10


def test_sliced_training_loop_moves_the_cloud(gen):
    y = torch.randn(200, 2, generator=gen) * 0.3 + 2.0
    x = torch.randn(200, 2, generator=gen).requires_grad_()
    loss_fn = pt.SlicedWassersteinLoss(50, seed=0)
    opt = torch.optim.Adam([x], lr=0.05)
    first = loss_fn(x, y).item()
    for _ in range(150):
        opt.zero_grad()
        loss_fn(x, y).backward()
        opt.step()
    assert loss_fn(x, y).item() < first / 10


def test_float32_stays_float32(gen):
    x = rand(gen, 10, 2, dtype=torch.float32, grad=True)
    loss = pt.SinkhornLoss(0.1)(x, rand(gen, 12, 2, dtype=torch.float32))
    loss.backward()
    assert loss.dtype == torch.float32
    assert x.grad.dtype == torch.float32


# ----------------------------------------------------------------------------- resources


def test_no_graph_leak_across_calls(gen):
    x, y = rand(gen, 30, 2, grad=True), rand(gen, 30, 2)
    loss = pt.SinkhornLoss(0.1)
    for _ in range(100):
        loss(x, y).backward()
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o) is _sinkhorn._Cloud]
    assert alive == []


def test_sinkhorn_loss_never_forms_a_cost_matrix(gen, force_online, monkeypatch):
    """Online solves and the core's point gradient: no (n, m) array in forward or backward."""
    x, y = rand(gen, 40, 3, grad=True), rand(gen, 30, 3, grad=True)
    expected = pt.SinkhornLoss(0.1)(x, y)  # reference, before dense costs are forbidden
    expected.backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None

    def forbidden(*args, **kwargs):
        raise AssertionError("an (n, m) cost matrix was formed")

    monkeypatch.setattr(pyot.costs, "_evaluate", forbidden)
    monkeypatch.setattr(pt._common, "torch_cost", forbidden)
    loss = pt.SinkhornLoss(0.1)(x, y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), gx.numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(y.grad.numpy(), gy.numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_tensors_reach_the_core_without_copies(gen, dtype, monkeypatch):
    seen = []
    for name in ("sinkhorn_dense", "sinkhorn_point_gradient", "sliced_gradient"):
        real = getattr(_core, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(args[0].__array_interface__["data"][0])
            return _real(*args, **kwargs)

        monkeypatch.setattr(_core, name, spy)
    cost = rand(gen, 6, 5, dtype=dtype, grad=True)
    pt.sinkhorn(cost, eps=0.1).objective.backward()
    assert seen[-1] == cost.data_ptr()
    x = rand(gen, 8, 2, dtype=dtype, grad=True)
    pt.sinkhorn(pt.PointCloud(x, rand(gen, 6, 2, dtype=dtype)), eps=0.1).objective.backward()
    assert seen[-1] == x.data_ptr()
    pt.sliced_wasserstein(x, rand(gen, 6, 2, dtype=dtype), seed=0).value.backward()
    assert seen[-1] == x.data_ptr()


# ----------------------------------------------------------------------------- bad input


def test_integer_tensor_is_rejected(gen):
    with pytest.raises(RuntimeError, match="floating point"):
        torch.ones(3, 2, dtype=torch.int64).requires_grad_()
    with pytest.raises(TypeError, match="cost must be a float32 or float64 tensor"):
        pt.sinkhorn(torch.ones(3, 2, dtype=torch.int64), eps=0.1)
    with pytest.raises(TypeError, match="x must be a float32 or float64 tensor"):
        pt.SinkhornLoss(0.1)(torch.ones(3, 2, dtype=torch.int32), rand(gen, 3, 2))


def test_mixed_dtypes_are_rejected(gen):
    with pytest.raises(TypeError, match=r"cost is torch.float64 but a is torch.float32"):
        pt.sinkhorn(rand(gen, 3, 2), torch.ones(3) / 3, eps=0.1)
    with pytest.raises(TypeError, match=r"x is torch.float32 but y is torch.float64"):
        pt.sinkhorn_divergence(rand(gen, 3, 2, dtype=torch.float32), rand(gen, 3, 2), eps=0.1)


def test_mixed_and_unsupported_devices_are_rejected(gen):
    meta = torch.empty(3, 2, device="meta", dtype=F64)
    with pytest.raises(ValueError, match="x is on cpu but y is on meta"):
        pt.SinkhornLoss(0.1)(rand(gen, 3, 2), meta)
    with pytest.raises(ValueError, match="no CUDA kernels"):
        pt.sliced_wasserstein(meta, meta)


def test_non_tensor_and_bad_shapes_are_rejected(gen):
    with pytest.raises(TypeError, match=r"cost must be a torch\.Tensor"):
        pt.sinkhorn(np.ones((3, 2)), eps=0.1)
    with pytest.raises(ValueError, match="x and y must both be"):
        pt.SinkhornLoss(0.1)(rand(gen, 2, 3, 2), rand(gen, 3, 2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        pt.SinkhornLoss(0.1, reduction="max")
    with pytest.raises(ValueError, match="eps must be a positive"):
        pt.sinkhorn(rand(gen, 3, 2), eps=-1.0)


def test_second_order_gradients_raise(gen):
    x = rand(gen, 5, 2, grad=True)
    loss = pt.sinkhorn_divergence(x, rand(gen, 4, 2), eps=0.1)
    with pytest.raises(RuntimeError, match="second-order gradients are not supported"):
        torch.autograd.grad(loss, x, create_graph=True)


