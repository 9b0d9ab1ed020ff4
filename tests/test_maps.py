"""pyot.maps: the entropic map, the Monge gap and Monge-gap map fitting (ALGORITHMS 9)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import run_python
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

import pyot
import pyot.maps as maps

torch = pytest.importorskip("torch")

METRICS = [
    ("sqeuclidean", 2.0),
    ("euclidean", 2.0),
    ("cityblock", 2.0),
    ("minkowski", 3.0),
    ("cosine", 2.0),
]
ROTATION = np.array([[0.0, -1.0], [1.0, 0.0]])


def softmax_map(z, y, b, g, eps, metric, p, direct=False):
    """T(z) by the dense formula: softmax_j(log b_j + (g_j - c(z, y_j)) / eps) @ y (costs by
    scipy's direct sums with `direct`: exact for nearby pairs in any dimension)."""
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    if direct:
        cost = cdist(z64, y64, metric, **({"p": p} if metric == "minkowski" else {}))
    else:
        cost = pyot.cost_matrix(z64, y64, metric, p=p)
    with np.errstate(divide="ignore"):
        logits = np.log(b)[None, :] + (np.asarray(g, np.float64)[None, :] - cost) / eps
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return w @ y.astype(np.float64)


def gaussians(rng, n):
    """Samples of N(0, I) and N(m, S) in 2-d and the Brenier map x -> m + S^(1/2) x."""
    cov = np.array([[2.0, 0.8], [0.8, 0.6]])
    mean = np.array([2.0, 1.0])
    root = np.real(sqrtm(cov))
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 2)) @ np.linalg.cholesky(cov).T + mean
    return x, y, lambda z: z @ root.T + mean


def w_eps_reference(x, t, a, eps, metric="sqeuclidean", p=2.0):
    """<P, C> - eps H(P) by a plain numpy log-domain Sinkhorn (independent of pyot's solver)."""
    cost = pyot.cost_matrix(x, t, metric, p=p)
    loga = np.log(a)
    f, g = np.zeros(len(a)), np.zeros(len(a))
    for _ in range(20_000):
        f = -eps * logsumexp(loga[None, :] + (g[None, :] - cost) / eps, axis=1)
        g = -eps * logsumexp(loga[:, None] + (f[:, None] - cost) / eps, axis=0)
        logp = loga[:, None] + loga[None, :] + (f[:, None] + g[None, :] - cost) / eps
        plan = np.exp(logp)
        if np.abs(plan.sum(axis=1) - a).sum() < 1e-12:
            break
    return float((plan * cost).sum() + eps * (plan * logp).sum())


# ----------------------------------------------------------------------------- EntropicMap


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_entropic_map_matches_dense_softmax(rng, dtype, metric, p):
    x = rng.normal(size=(120, 3)).astype(dtype)
    y = (rng.normal(size=(90, 3)) * 0.5 + 1.0).astype(dtype)
    b = ref_weights(rng, 90)
    emap = maps.EntropicMap(x, y, eps=0.2, b=b, metric=metric, p=p)
    z = rng.normal(size=(300, 3)).astype(dtype)  # more than one block of rows
    out = emap(z)
    assert out.dtype == dtype
    assert out.shape == z.shape
    expected = softmax_map(z, y, emap.b, emap.g, emap.eps, metric, p)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, expected, atol=tol)
    np.testing.assert_allclose(emap.transport(z[0]), expected[0], atol=tol)  # one point


@pytest.mark.parametrize(("d", "shift"), [(64, 0.0), (64, 100.0), (20, 100.0)])
@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_entropic_map_high_dimension_matches_dense_softmax(rng, dtype, metric, p, d, shift):
    """d = 64 and 20 (a partial slice of coordinates): the GEMM form (squared Euclidean,
    Euclidean, cosine) and the direct form, also far from the origin, with queries on targets
    (Euclidean costs of exactly 0) and several target tiles."""
    x = rng.normal(size=(60, d)) + shift
    y = rng.normal(size=(300, d)) * 0.5 + 1.0 + shift
    eps = {"sqeuclidean": 20.0, "euclidean": 1.0, "cityblock": 5.0, "minkowski": 1.0,
           "cosine": 0.02}[metric]
    emap = maps.EntropicMap(x.astype(dtype), y.astype(dtype), eps=eps, metric=metric, p=p)
    z = np.concatenate([rng.normal(size=(40, d)) + shift, y[:5]]).astype(dtype)
    out = emap(z)
    assert out.dtype == dtype
    expected = softmax_map(z, y.astype(dtype), emap.b, emap.g, eps, metric, p, direct=True)
    tol = 1e-8 if dtype == np.float64 else 2e-5 * (1.0 + shift / 10.0)
    np.testing.assert_allclose(out, expected, atol=tol)
    # A query's image does not depend on the other queries (nor on the threads).
    np.testing.assert_array_equal(emap(z[-1:]), out[-1:])
    one = maps.EntropicMap(x.astype(dtype), y.astype(dtype), eps=eps, metric=metric, p=p,
                           threads=1)
    np.testing.assert_array_equal(one(z), out)


@pytest.mark.parametrize(("metric", "p"), METRICS[:2] + METRICS[4:])
def test_entropic_map_gradcheck_high_dimension(rng, metric, p):
    """The backward in the GEMM form (d >= 16)."""
    x, y = rng.normal(size=(40, 20)), rng.normal(size=(300, 20)) + 0.5
    emap = maps.EntropicMap(x, y, eps={"cosine": 0.05}.get(metric, 1.0), metric=metric, p=p)
    z = torch.tensor(rng.normal(size=(6, 20)), requires_grad=True)
    assert torch.autograd.gradcheck(emap, (z,), eps=1e-6, atol=1e-6, rtol=1e-5)


def ref_weights(rng, n):
    w = rng.uniform(0.2, 1.0, size=n)
    return w / w.sum()


def test_entropic_map_many_target_tiles(rng):
    """m spans several cost tiles and the online maximum grows from tile to tile."""
    y = rng.normal(size=(1500, 2))
    y = y[np.argsort(-np.linalg.norm(y, axis=1))]  # far points first: the max grows later
    emap = maps.EntropicMap(rng.normal(size=(50, 2)), y[:50], eps=0.01)
    emap.y, emap.b = y, np.full(1500, 1 / 1500)
    emap.g = rng.normal(size=1500) * 0.1
    emap._targets = {y.dtype: y}
    z = rng.normal(size=(40, 2))
    np.testing.assert_allclose(emap(z), softmax_map(z, y, emap.b, emap.g, 0.01, "sqeuclidean",
                                                    2.0), atol=1e-10)


def test_entropic_map_on_training_points_is_barycentric_projection(rng):
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(70, 2)) + 1.0
    a, b = ref_weights(rng, 80), ref_weights(rng, 70)
    emap = maps.EntropicMap(x, y, eps=0.1, a=a, b=b, tol=1e-12)
    plan = emap.result.plan
    np.testing.assert_allclose(emap(x), plan @ y / plan.sum(axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(emap(x), plan @ y / a[:, None], atol=1e-9)  # P 1 = a


def test_entropic_map_recovers_brenier_map(rng):
    """The affine Brenier map between Gaussians: the error falls as eps falls and n grows."""
    z = rng.normal(size=(500, 2)) * 0.7  # the bulk of the source
    errors = []
    for n, eps in ((200, 0.5), (500, 0.2), (1500, 0.07)):
        x, y, brenier = gaussians(rng, n)
        emap = maps.EntropicMap(x, y, eps=eps)
        errors.append(float(np.mean(np.sum((emap(z) - brenier(z)) ** 2, axis=1))))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_entropic_map_zero_target_weights_are_ignored(rng):
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(50, 2))
    b = ref_weights(rng, 50)
    b[[3, 17]] = 0.0
    b /= b.sum()
    keep = b > 0
    z = rng.normal(size=(20, 2))
    full = maps.EntropicMap(x, y, eps=0.1, b=b, tol=1e-12)(z)
    dropped = maps.EntropicMap(x, y[keep], eps=0.1, b=b[keep], tol=1e-12)(z)
    np.testing.assert_allclose(full, dropped, atol=1e-9)


def test_entropic_map_attributes_and_online_fit(rng, monkeypatch):
    """Above the dense limit the potentials come from the online solver: same map."""
    x, y = rng.normal(size=(100, 2)), rng.normal(size=(90, 2)) + 1.0
    dense = maps.EntropicMap(x, y, eps=0.1, tol=1e-10)
    monkeypatch.setattr(sys.modules["pyot.sinkhorn"], "_DENSE_LIMIT", 10)
    online = maps.EntropicMap(x, y, eps=0.1, tol=1e-10)
    z = rng.normal(size=(30, 2))
    np.testing.assert_allclose(online(z), dense(z), atol=1e-8)
    assert isinstance(dense.result, pyot.SinkhornResult)
    assert dense.result.converged
    assert dense.f.shape == (100,)
    assert dense.g.shape == (90,)
    assert dense.eps == 0.1
    assert "EntropicMap(m=90, d=2" in repr(dense)


def test_entropic_map_threads_do_not_change_the_result(rng):
    x, y = rng.normal(size=(200, 4)), rng.normal(size=(300, 4))
    z = rng.normal(size=(700, 4))
    one = maps.EntropicMap(x, y, eps=0.3, threads=1)(z)
    two = maps.EntropicMap(x, y, eps=0.3, threads=2)(z)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_entropic_map_gradcheck(rng, metric, p):
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(300, 3)) + 0.5
    emap = maps.EntropicMap(x, y, eps=0.3, metric=metric, p=p)
    z = torch.tensor(rng.normal(size=(20, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(emap, (z,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_entropic_map_torch_matches_numpy(rng):
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2))
    emap = maps.EntropicMap(torch.tensor(x), torch.tensor(y), eps=0.1)
    z = rng.normal(size=(30, 2)).astype(np.float32)
    zt = torch.tensor(z, requires_grad=True)
    out = emap(zt)
    assert out.dtype == torch.float32
    assert out.requires_grad
    np.testing.assert_allclose(out.detach().numpy(), emap(z), rtol=1e-6)
    out.sum().backward()
    assert zt.grad.shape == zt.shape
    assert zt.grad.dtype == torch.float32
    one = emap(torch.tensor(z[0]))  # one point
    assert one.shape == (2,)
    assert not emap(torch.tensor(z)).requires_grad


def test_entropic_map_is_not_differentiable_in_the_fitted_points(rng):
    y = torch.tensor(rng.normal(size=(40, 2)), requires_grad=True)
    emap = maps.EntropicMap(rng.normal(size=(50, 2)), y, eps=0.1)
    out = emap(torch.tensor(rng.normal(size=(5, 2))))
    assert not out.requires_grad


# ----------------------------------------------------------------------------- monge_gap


def test_monge_gap_translation_is_the_entropic_offset(rng):
    """A translation is sqeuclidean-optimal: the gap is eps H(a) (= eps log n) plus a term
    that vanishes with eps; a rotation keeps a clearly positive gap."""
    n = 100
    x = rng.normal(size=(n, 2))
    offset_ratio = []
    for eps in (0.1, 0.03, 0.003):
        gap = maps.monge_gap(x, x + np.array([1.0, -2.0]), eps=eps)
        assert gap >= eps * np.log(n) - 1e-9
        offset_ratio.append(gap / (eps * np.log(n)))
        assert maps.monge_gap(x, x @ ROTATION, eps=eps) > 3.0
    assert gap < 0.02
    assert offset_ratio[0] > offset_ratio[1] > offset_ratio[2]
    assert offset_ratio[2] < 1.03  # the gap is the offset up to o(eps)


@pytest.mark.parametrize(("metric", "p"), [("sqeuclidean", 2.0), ("euclidean", 2.0),
                                           ("minkowski", 3.0)])
def test_monge_gap_matches_reference(rng, metric, p):
    x = rng.normal(size=(40, 2))
    tx = x @ np.array([[1.0, 0.3], [0.0, 1.0]]) + 0.3 * rng.normal(size=x.shape)
    a = ref_weights(rng, 40)
    diag = pyot.cost_matrix(x, tx, metric, p=p).diagonal()
    expected = a @ diag - w_eps_reference(x, tx, a, 0.5, metric, p)
    got = maps.monge_gap(x, tx, eps=0.5, metric=metric, p=p, a=a, tol=1e-9)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_monge_gap_matches_ott(rng):
    """OTT-JAX's monge_gap_from_samples is cost mean - ent_reg_cost (written out here: the
    ott.neural module needs flax)."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("ott")
    from ott.geometry import pointcloud
    from ott.solvers import linear

    x = rng.normal(size=(60, 2))
    tx = x @ np.array([[1.0, 0.3], [0.0, 1.0]]) + 0.2 * rng.normal(size=x.shape)
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        out = linear.solve(pointcloud.PointCloud(x, tx, epsilon=0.1), threshold=1e-10,
                           max_iterations=100_000)
        expected = float(np.mean(np.sum((x - tx) ** 2, axis=1)) - out.ent_reg_cost)
    finally:
        jax.config.update("jax_enable_x64", x64)
    np.testing.assert_allclose(maps.monge_gap(x, tx, eps=0.1, tol=1e-10), expected, rtol=1e-7)


@pytest.mark.parametrize(("metric", "p"), [("sqeuclidean", 2.0), ("euclidean", 2.0),
                                           ("cosine", 2.0)])
def test_monge_gap_gradient_matches_finite_differences(rng, metric, p):
    x = rng.normal(size=(30, 2))
    tx = x @ np.array([[1.0, 0.5], [-0.2, 1.0]]) + 0.1 * rng.normal(size=x.shape)
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(tx, requires_grad=True)
    gap = maps.monge_gap(xt, tt, eps=0.2, metric=metric, p=p, tol=1e-12)
    np.testing.assert_allclose(float(gap.detach()),
                               maps.monge_gap(x, tx, eps=0.2, metric=metric, p=p, tol=1e-12),
                               rtol=1e-12)
    gap.backward()
    h = 1e-6
    for arr, grad, first in ((tx, tt.grad, False), (x, xt.grad, True)):
        d = rng.normal(size=arr.shape)

        def at(s, arr=arr, d=d, first=first):
            moved = arr + s * h * d
            args = (moved, tx) if first else (x, moved)
            return maps.monge_gap(*args, eps=0.2, metric=metric, p=p, tol=1e-12)

        fd = (at(1) - at(-1)) / (2 * h)
        np.testing.assert_allclose(float((grad * torch.tensor(d)).sum()), fd, rtol=1e-5,
                                   atol=1e-8)


def test_monge_gap_torch_weights_and_dtype(rng):
    x = torch.tensor(rng.normal(size=(20, 2)), dtype=torch.float32)
    tx = (x @ torch.tensor(ROTATION, dtype=torch.float32)).requires_grad_()
    a = torch.tensor(ref_weights(rng, 20), dtype=torch.float32)
    gap = maps.monge_gap(x, tx, eps=0.1, a=a)
    assert gap.dtype == torch.float32
    assert gap.ndim == 0
    np.testing.assert_allclose(float(gap.detach()), maps.monge_gap(
        x.numpy(), tx.detach().numpy(), eps=0.1, a=a.numpy()), rtol=1e-5)
    gap.backward()
    assert torch.isfinite(tx.grad).all()


def test_monge_gap_identity_map_has_finite_gradient(rng):
    """T = id: zero displacements, where the Euclidean cost's root is not differentiable."""
    x = torch.tensor(rng.normal(size=(20, 2)))
    tx = x.clone().requires_grad_()
    maps.monge_gap(x, tx, eps=0.1, metric="euclidean").backward()
    assert torch.isfinite(tx.grad).all()


# ----------------------------------------------------------------------------- fitting


def test_fit_monge_gap_map_fits_and_the_gap_helps(rng):
    """The fitted map pushes x onto y (divergence down 10x or more) and, with the Monge gap,
    lands closer to the Brenier map than without it."""
    x, y, brenier = gaussians(rng, 128)
    z = rng.normal(size=(500, 2)) * 0.7
    before = pyot.sinkhorn_divergence(x, y, eps=0.05)
    errors = {}
    for reg in (0.0, 1.0):
        fitted = maps.fit_monge_gap_map(x, y, eps=0.05, reg=reg, steps=100, lr=3e-2, seed=0)
        after = pyot.sinkhorn_divergence(fitted(x), y, eps=0.05)
        assert after < before / 10
        errors[reg] = float(np.mean(np.sum((fitted(z) - brenier(z)) ** 2, axis=1)))
        assert fitted.loss_history.shape == (100,)
        np.testing.assert_allclose(fitted.loss_history,
                                   fitted.fit_history + reg * fitted.gap_history, rtol=1e-5)
    assert errors[1.0] < 0.7 * errors[0.0]


def test_fit_monge_gap_map_other_cost_and_api(rng, capsys):
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = x + np.float32(1.5)
    fitted = maps.fit_monge_gap_map(x, y, eps=0.1, steps=5, lr=1e-2, batch_size=32, seed=1,
                                    metric="euclidean", progress=True)
    assert "fit_monge_gap_map" in capsys.readouterr().err  # the tqdm bar
    out = fitted(x)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    xt = torch.tensor(x, requires_grad=True)
    fitted(xt).sum().backward()  # tensors keep the model's graph
    assert xt.grad is not None
    again = maps.fit_monge_gap_map(x, y, eps=0.1, steps=5, lr=1e-2, batch_size=32, seed=1,
                                   metric="euclidean")
    np.testing.assert_array_equal(again.loss_history, fitted.loss_history)  # seeded
    assert "MongeGapMap(steps=5" in repr(fitted)


def test_fit_monge_gap_map_custom_model(rng):
    x = rng.normal(size=(50, 2))
    model = torch.nn.Linear(2, 2, dtype=torch.float64)
    fitted = maps.fit_monge_gap_map(x, x + 1.0, model=model, eps=0.1, steps=3, seed=0)
    assert fitted.model is model
    assert fitted(x).dtype == np.float64


def test_import_without_torch(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, pyot, pyot.maps\n"
        "x = np.random.default_rng(0).normal(size=(30, 2))\n"
        "print(pyot.maps.EntropicMap(x, x + 1, eps=0.1)(x).shape, "
        "pyot.maps.monge_gap(x, x, eps=0.1) > 0, 'torch' in sys.modules and sys.modules['torch'])"
    )
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(30,", "2)", "True", "None"]


def test_maps_is_an_attribute_not_in_all():
    assert pyot.maps is maps
    assert not set(maps.__all__) & set(pyot.__all__)


# ----------------------------------------------------------------------------- bad input

_X = np.random.default_rng(1).normal(size=(10, 2))

BAD_MAP = [
    ("eps-zero", (_X, _X), dict(eps=0.0), ValueError, "eps"),
    ("eps-str", (_X, _X), dict(eps="1"), TypeError, "eps"),
    ("dims", (_X, np.ones((10, 3))), dict(eps=0.1), ValueError, "dimension"),
    ("x-nan", (np.full((3, 2), np.nan), _X), dict(eps=0.1), ValueError, "x"),
    ("y-empty", (_X, np.ones((0, 2))), dict(eps=0.1), ValueError, "y"),
    ("y-str", (_X, "y"), dict(eps=0.1), TypeError, "y"),
    ("metric", (_X, _X), dict(eps=0.1, metric="hamming"), ValueError, "metric"),
    ("p", (_X, _X), dict(eps=0.1, metric="minkowski", p=0.5), ValueError, "p"),
    ("mass", (_X, _X), dict(eps=0.1, a=np.full(10, 0.2)), ValueError, "same total mass"),
    ("b-length", (_X, _X), dict(eps=0.1, b=np.full(9, 1 / 9)), ValueError, "b"),
    ("b-negative", (_X, _X), dict(eps=0.1, b=np.r_[-0.1, np.full(9, 1.1 / 9)]), ValueError,
     "b"),
    ("threads", (_X, _X), dict(eps=0.1, threads=0), ValueError, "threads"),
]


@pytest.mark.parametrize(("args", "kwargs", "exc", "what"), [c[1:] for c in BAD_MAP],
                         ids=[c[0] for c in BAD_MAP])
def test_entropic_map_bad_input(ref, args, kwargs, exc, what):
    pattern = ref.arg(what) if " " not in what and what != "dimension" else what
    with pytest.raises(exc, match=pattern):
        maps.EntropicMap(*args, **kwargs)


@pytest.mark.parametrize(("z", "exc", "match"), [
    (np.ones((3, 3)), ValueError, r"z must have shape \(n, 2\)"),
    (np.ones((2, 3, 2)), ValueError, "z must be a 1-d or 2-d array"),
    (np.array([[np.nan, 0.0]]), ValueError, "z contains NaN"),
    ("z", TypeError, "z must be a numeric array"),
    (torch.ones(3, 3), ValueError, r"z must have shape \(n, 2\)"),
    (torch.tensor([[np.inf, 0.0]]), ValueError, "z contains NaN"),
    (torch.ones(3, 2, dtype=torch.int64), TypeError, "z must be a float32 or float64"),
])
def test_entropic_map_bad_queries(z, exc, match):
    emap = maps.EntropicMap(_X, _X + 1.0, eps=0.5)
    with pytest.raises(exc, match=match):
        emap(z)


@pytest.mark.parametrize(("args", "kwargs", "exc", "match"), [
    ((_X, _X[:5]), dict(eps=0.1), ValueError, "x and tx must have the same shape"),
    ((_X, _X), dict(eps=-1.0), ValueError, "eps must be a positive"),
    ((_X, _X), dict(eps=0.1, metric="l2"), ValueError, "metric must be one of"),
    ((_X, _X), dict(eps=0.1, a=np.ones(3) / 3), ValueError, "a must have shape"),
    ((_X, np.full_like(_X, np.inf)), dict(eps=0.1), ValueError, "contains NaN or inf"),
    ((torch.tensor(_X), torch.tensor(_X[:5])), dict(eps=0.1), ValueError,
     "x and tx must have the same shape"),
    ((torch.tensor(_X), torch.tensor(_X).float()), dict(eps=0.1), TypeError, "one dtype"),
    ((torch.tensor(_X), torch.full((10, 2), np.nan, dtype=torch.float64)), dict(eps=0.1),
     ValueError, "contains NaN or inf"),
    ((torch.tensor(_X), torch.tensor(_X)), dict(eps=0.0), ValueError, "eps must be a positive"),
])
def test_monge_gap_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        maps.monge_gap(*args, **kwargs)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(eps=0.0), ValueError, "eps must be a positive"),
    (dict(eps=0.1, reg=-1.0), ValueError, "reg must be a non-negative"),
    (dict(eps=0.1, steps=0), ValueError, "steps must be >= 1"),
    (dict(eps=0.1, steps=1.5), TypeError, "steps must be an integer"),
    (dict(eps=0.1, lr=0.0), ValueError, "lr must be a positive"),
    (dict(eps=0.1, batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(eps=0.1, seed=-1), ValueError, "seed must be a non-negative"),
    (dict(eps=0.1, metric="l1"), ValueError, "metric must be one of"),
    (dict(eps=0.1, progress="yes"), TypeError, "progress must be True or False"),
    (dict(eps=0.1, threads=0), ValueError, "threads must be >= 1"),
    (dict(eps=0.1, tol=-1.0), ValueError, "tol must be a non-negative"),
    (dict(eps=0.1, model="mlp"), TypeError, "model must be a torch.nn.Module"),
    (dict(eps=0.1, model=torch.nn.Linear(2, 3, dtype=torch.float64)), ValueError,
     r"model must map \(B, d\) to \(B, d\)"),
    (dict(eps=0.1, model=torch.nn.Identity()), ValueError, "no trainable parameters"),
])
def test_fit_monge_gap_map_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        maps.fit_monge_gap_map(_X, _X + 1.0, **{"steps": 1, **kwargs})


def test_fit_monge_gap_map_bad_points():
    with pytest.raises(ValueError, match="x and y must have the same dimension"):
        maps.fit_monge_gap_map(_X, np.ones((4, 3)), eps=0.1, steps=1)


def test_fitted_data_off_the_cpu_is_refused_not_copied():
    x = torch.empty(20, 2, device="meta")
    y = np.zeros((20, 2))
    with pytest.raises(ValueError, match=r"x is on meta.*x\.cpu\(\)"):
        maps.EntropicMap(x, y, eps=0.1)
    with pytest.raises(ValueError, match=r"y is on meta"):
        maps.fit_monge_gap_map(y, torch.empty(20, 2, device="meta"), eps=0.1, steps=1)
