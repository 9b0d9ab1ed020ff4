"""Tests of pyot.inverse: fit_cost, fit_cost_path, InverseOTResult (ALGORITHMS.md section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

import pyot
from pyot import ConvergenceWarning
from pyot.inverse import InverseOTResult, fit_cost, fit_cost_path

EPS = 1.0


def gaussian_pairs(a_true, n, rng, eps=EPS):
    """n pairs from the Gaussian with density proportional to exp(x^T A y / eps) N(x) N(y):
    the entropic OT plan of the cost -x^T A y between its own marginals."""
    d1, d2 = a_true.shape
    precision = np.block([[np.eye(d1), -a_true / eps], [-a_true.T / eps, np.eye(d2)]])
    z = rng.multivariate_normal(np.zeros(d1 + d2), np.linalg.inv(precision), size=n)
    return z[:, :d1], z[:, d1:]


def identity_pairs(n):
    return np.column_stack((np.arange(n), np.arange(n)))


def planted_plan(rng, a_true, n=40, m=50, eps=EPS, ref=None):
    """Gaussian clouds and the exact entropic plan of the cost -x^T A y."""
    x = rng.standard_normal((n, a_true.shape[0]))
    y = rng.standard_normal((m, a_true.shape[1]))
    cost = -x @ a_true @ y.T
    if ref is not None:
        _, _, plan = ref.sinkhorn(cost, np.full(n, 1 / n), np.full(m, 1 / m), eps)
    else:
        plan = pyot.sinkhorn(cost, eps=eps, tol=1e-13, max_iter=100_000).plan
    return x, y, plan


def iot_loss(x, y, plan, weights, eps, reg, ref):
    """<C_A, P_hat> - OT_eps(C_A) + reg ||A||_1 from the reference Sinkhorn (raw, uncentred
    coordinates: the loss does not depend on the centring)."""
    plan = plan / plan.sum()
    a, b = plan.sum(1), plan.sum(0)
    cost = -x @ weights @ y.T
    _, _, p_a = ref.sinkhorn(cost, a, b, eps)
    ot_eps = ref.entropic_objective(p_a, cost, a, b, eps)
    return float((cost * plan).sum() - ot_eps + reg * np.abs(weights).sum())


A_SMALL = np.array([[0.8, 0.0], [0.0, -0.5], [0.3, 0.0]])


# ------------------------------------------------------------------------------ recovery


def test_exact_plan_recovers_planted_cost(rng, ref):
    x, y, plan = planted_plan(rng, A_SMALL, ref=ref)
    res = fit_cost(x, y, plan, eps=EPS, tol=1e-8, max_iter=2000)
    assert isinstance(res, InverseOTResult)
    assert res.converged
    np.testing.assert_allclose(res.weights, A_SMALL, atol=1e-6)
    assert res.weights.shape == (3, 2)
    # the learned cost reproduces the observed plan
    fitted = pyot.sinkhorn(res.cost(x, y), eps=EPS, tol=1e-12).plan
    np.testing.assert_allclose(fitted, plan, atol=1e-8)
    np.testing.assert_allclose(res.cost(x, y), -x @ res.weights @ y.T)


def test_weights_scale_with_eps(rng):
    """P depends on A / eps only: fitting with 2 eps gives 2 A."""
    x, y, plan = planted_plan(rng, A_SMALL)
    res = fit_cost(x, y, plan, eps=2.0, tol=1e-8, max_iter=2000)
    np.testing.assert_allclose(res.weights, 2 * A_SMALL, atol=1e-5)
    assert res.eps == 2.0


def test_diagonal_and_callable_features(rng):
    w_true = np.array([0.7, -0.4, 0.0])
    x = rng.standard_normal((30, 3))
    y = rng.standard_normal((35, 3))
    plan = pyot.sinkhorn(-(x * w_true) @ y.T, eps=EPS, tol=1e-13).plan
    diag = fit_cost(x, y, plan, features="diagonal", eps=EPS, tol=1e-8, max_iter=2000)
    np.testing.assert_allclose(diag.weights, w_true, atol=1e-6)
    assert diag.features == "diagonal"

    def features(u, v):
        return u[:, None, :] * v[None, :, :]  # phi_k = x_k y_k, as a tensor

    call = fit_cost(x, y, plan, features=features, eps=EPS, tol=1e-8, max_iter=2000)
    np.testing.assert_allclose(call.weights, w_true, atol=1e-6)
    assert call.features is features
    np.testing.assert_allclose(call.cost(x[:4], y[:5]), diag.cost(x[:4], y[:5]), atol=1e-6)


def test_error_falls_as_samples_grow():
    a_true = np.array([[0.5, -0.3], [0.2, 0.4]])
    errors = []
    for n in (40, 160, 640):
        per_seed = []
        for seed in range(3):
            x, y = gaussian_pairs(a_true, n, np.random.default_rng([n, seed]))
            res = fit_cost(x, y, identity_pairs(n), eps=EPS)
            assert res.converged
            per_seed.append(np.linalg.norm(res.weights - a_true) / np.linalg.norm(a_true))
        errors.append(np.mean(per_seed))
    assert errors[0] > 1.5 * errors[1] > 2.25 * errors[2]  # about 1 / sqrt(n)
    assert errors[2] < 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_sparsistency_support_and_signs(seed):
    a_true = np.zeros((4, 4))
    a_true[0, 0], a_true[1, 2], a_true[2, 1], a_true[3, 3] = 0.5, -0.4, 0.4, -0.5
    n = 400
    x, y = gaussian_pairs(a_true, n, np.random.default_rng(seed))
    reg = 2.0 * math.sqrt(math.log(a_true.size) / n)
    res = fit_cost(x, y, identity_pairs(n), eps=EPS, reg_l1=reg)
    np.testing.assert_array_equal(res.support, a_true != 0)
    np.testing.assert_array_equal(np.sign(res.weights), np.sign(a_true))
    assert res.reg_l1 == reg
    # without the penalty every entry is nonzero
    assert fit_cost(x, y, identity_pairs(n), eps=EPS).support.all()


# ------------------------------------------------------------------------------ the loss


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_loss_monotone_and_exact(rng, ref, reg):
    a_true = np.array([[0.6, -0.2], [0.0, 0.5]])
    x, y = gaussian_pairs(a_true, 150, rng)
    plan = np.eye(150)
    res = fit_cost(x, y, plan, eps=EPS, reg_l1=reg, tol=1e-8)
    hist = res.loss_history
    assert len(hist) == res.n_iter + 1
    assert np.all(np.diff(hist) <= 0)
    assert hist[0] == pytest.approx(0.0, abs=1e-12)  # L(0) = 0: C = 0 transports at no cost
    assert hist[-1] < hist[0]
    np.testing.assert_allclose(hist[-1], iot_loss(x, y, plan, res.weights, EPS, reg, ref),
                               rtol=1e-8, atol=1e-8)


def test_gradient_matches_finite_differences(rng):
    from pyot.inverse import _Fit

    x, y, plan = planted_plan(rng, A_SMALL, n=20, m=25)
    plan = 0.7 * plan + 0.3 * np.outer(rng.random(20), rng.random(25)) / 20 / 25 * 4
    problem = _Fit("test", x, y, plan, "bilinear", 0.5)
    w = rng.standard_normal((3, 2)) * 0.3
    _, grad = problem.objective(w, True)
    h = 1e-5
    numeric = np.zeros_like(w)
    for k in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[k] = h
        numeric[k] = (problem.objective(w + e, False)[0] - problem.objective(w - e, False)[0]) / (
            2 * h
        )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_dense_sparse_and_pairs_agree(rng):
    a_true = np.array([[0.5, 0.0], [0.0, -0.4]])
    x, y = rng.standard_normal((25, 2)), rng.standard_normal((30, 2))
    pairs = np.column_stack((rng.integers(0, 25, 200), rng.integers(0, 30, 200)))
    pairs[:5] = pairs[5:10]  # repeated matches count twice
    counts = np.zeros((25, 30))
    np.add.at(counts, (pairs[:, 0], pairs[:, 1]), 1.0)
    kwargs = dict(eps=EPS, reg_l1=0.02, tol=1e-8, max_iter=2000)
    ref_res = fit_cost(x, y, pairs, **kwargs)
    for plan in (counts, counts / 200.0, sp.csr_array(counts), sp.coo_matrix(counts),
                 pairs.astype(np.int32)):
        res = fit_cost(x, y, plan, **kwargs)
        np.testing.assert_allclose(res.weights, ref_res.weights, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(res.loss_history[-1], ref_res.loss_history[-1], rtol=1e-8)
    del a_true


def test_unobserved_samples_are_ignored(rng):
    x, y, plan = planted_plan(rng, A_SMALL, n=20, m=25)
    padded = np.zeros((22, 25))
    padded[1:21] = plan
    x_pad = np.vstack([np.full((1, 3), 50.0), x, np.full((1, 3), -50.0)])
    res = fit_cost(x, y, plan, eps=EPS, tol=1e-8, max_iter=2000)
    res_pad = fit_cost(x_pad, y, padded, eps=EPS, tol=1e-8, max_iter=2000)
    np.testing.assert_allclose(res_pad.weights, res.weights, atol=1e-8)


def test_float32_and_1d_input(rng):
    x, y, plan = planted_plan(rng, np.array([[0.6]]), n=30, m=30)
    res = fit_cost(x[:, 0].astype(np.float32), y[:, 0], plan.astype(np.float32), eps=EPS,
                   tol=1e-8)
    np.testing.assert_allclose(res.weights, [[0.6]], atol=1e-4)
    assert res.weights.dtype == np.float64


def test_not_converged_warns(rng):
    x, y, plan = planted_plan(rng, A_SMALL)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = fit_cost(x, y, plan, eps=EPS, max_iter=2)
    assert not res.converged
    assert res.n_iter == 2


def test_repr_and_fields(rng):
    x, y, plan = planted_plan(rng, A_SMALL, n=10, m=12)
    res = fit_cost(x, y, plan, eps=EPS, reg_l1=0.01)
    text = repr(res)
    assert text.startswith("InverseOTResult(weights=")
    assert "support=" in text
    with pytest.raises(AttributeError):
        res.weights = None  # frozen
    np.testing.assert_array_equal(res.support, res.weights != 0)


# ------------------------------------------------------------------------------ the path


def test_path_warm_started_matches_cold_fits(rng):
    a_true = np.zeros((3, 3))
    a_true[0, 1], a_true[2, 2] = 0.6, -0.5
    x, y = gaussian_pairs(a_true, 300, rng)
    pairs = identity_pairs(300)
    path = fit_cost_path(x, y, pairs, reg_l1=5, eps=EPS, tol=1e-8)
    assert len(path) == 5
    regs = [r.reg_l1 for r in path]
    assert regs == sorted(regs, reverse=True)
    assert regs[-1] == pytest.approx(regs[0] / 100)
    sizes = [int(r.support.sum()) for r in path]
    assert sizes[0] == 0
    assert sizes == sorted(sizes)
    assert sizes[-1] >= 2
    for r in path[1:]:
        cold = fit_cost(x, y, pairs, eps=EPS, reg_l1=r.reg_l1, tol=1e-8)
        np.testing.assert_allclose(r.weights, cold.weights, atol=1e-6)
    explicit = fit_cost_path(x, y, pairs, reg_l1=[0.1, 0.0], eps=EPS, progress=True)
    assert [r.reg_l1 for r in explicit] == [0.1, 0.0]


# ------------------------------------------------------------------------------ bad input


def _good():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 2)), rng.standard_normal((5, 3))
    return x, y, np.full((4, 5), 0.05)


_X, _Y, _P = _good()
_PAIRS = np.array([[0, 1], [3, 4]])

BAD = [
    ("plan-shape", (_X, _Y, np.ones((5, 4))), {}, ValueError, r"plan must have shape \(len"),
    ("plan-1d", (_X, _Y, np.ones(20)), {}, ValueError, "plan must be a 2-d array"),
    ("plan-sparse-shape", (_X, _Y, sp.csr_array(np.ones((4, 4)))), {}, ValueError,
     "plan must have shape"),
    ("plan-negative", (_X, _Y, _P - 0.06), {}, ValueError, "plan must be non-negative"),
    ("plan-sparse-negative", (_X, _Y, sp.csr_array(-_P)), {}, ValueError,
     "plan must be non-negative"),
    ("plan-nan", (_X, _Y, np.where(np.eye(4, 5) > 0, np.nan, _P)), {}, ValueError,
     "plan contains NaN or inf"),
    ("plan-inf", (_X, _Y, np.where(np.eye(4, 5) > 0, np.inf, _P)), {}, ValueError,
     "plan contains NaN or inf"),
    ("plan-sparse-nan", (_X, _Y, sp.csr_array(np.where(np.eye(4, 5) > 0, np.nan, _P))), {},
     ValueError, "plan contains NaN or inf"),
    ("plan-zero", (_X, _Y, np.zeros((4, 5))), {}, ValueError, "positive total mass"),
    ("plan-str", (_X, _Y, "plan"), {}, TypeError, "plan must be a numeric array"),
    ("plan-complex", (_X, _Y, _P.astype(complex)), {}, TypeError, "plan must be real"),
    ("pairs-shape", (_X, _Y, np.array([[0, 1, 2]])), {}, ValueError, r"shape \(N, 2\)"),
    ("pairs-empty", (_X, _Y, np.zeros((0, 2), dtype=int)), {}, ValueError, r"shape \(N, 2\)"),
    ("pairs-x-range", (_X, _Y, np.array([[4, 0]])), {}, ValueError,
     r"index pairs must index x \(0 <= index < 4\), got 4"),
    ("pairs-y-range", (_X, _Y, np.array([[0, 5]])), {}, ValueError,
     r"index pairs must index y \(0 <= index < 5\), got 5"),
    ("pairs-negative", (_X, _Y, np.array([[-1, 0]])), {}, ValueError, "got -1"),
    ("eps-zero", (_X, _Y, _P), {"eps": 0.0}, ValueError, "eps must be a positive"),
    ("eps-negative", (_X, _Y, _P), {"eps": -1.0}, ValueError, "eps must be a positive"),
    ("eps-inf", (_X, _Y, _P), {"eps": np.inf}, ValueError, "eps must be a positive"),
    ("eps-str", (_X, _Y, _P), {"eps": "1"}, TypeError, "eps must be a real number"),
    ("reg-negative", (_X, _Y, _P), {"reg_l1": -0.1}, ValueError, "reg_l1 must be a non-neg"),
    ("reg-nan", (_X, _Y, _P), {"reg_l1": np.nan}, ValueError, "reg_l1 must be a non-neg"),
    ("max-iter-zero", (_X, _Y, _P), {"max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ("max-iter-float", (_X, _Y, _P), {"max_iter": 1.5}, TypeError, "max_iter must be an int"),
    ("tol-negative", (_X, _Y, _P), {"tol": -1.0}, ValueError, "tol must be a non-negative"),
    ("x-nan", (np.where(np.eye(4, 2) > 0, np.nan, _X), _Y, _P), {}, ValueError,
     "x contains NaN"),
    ("y-3d", (_X, np.ones((5, 3, 1)), _P), {}, ValueError, "y must be a 1-d or 2-d array"),
    ("features-name", (_X, _Y, _P), {"features": "quadratic"}, ValueError,
     "features must be one of 'bilinear', 'diagonal'"),
    ("features-type", (_X, _Y, _P), {"features": 3}, TypeError,
     "features must be 'bilinear', 'diagonal' or a callable"),
    ("features-diagonal-dims", (_X, _Y, _P), {"features": "diagonal"}, ValueError,
     "features='diagonal' needs x and y of the same dimension"),
    ("features-shape", (_X, _Y, _P), {"features": lambda u, v: np.ones((4, 4, 2))}, ValueError,
     r"features\(x, y\) must return an array of shape \(len\(x\), len\(y\), K\)"),
    ("features-2d", (_X, _Y, _P), {"features": lambda u, v: np.ones((4, 5))}, ValueError,
     r"features\(x, y\) must be a 3-d array"),
    ("features-nan", (_X, _Y, _P), {"features": lambda u, v: np.full((4, 5, 1), np.nan)},
     ValueError, r"features\(x, y\) contains NaN"),
]


@pytest.mark.parametrize(("args", "kwargs", "exc", "match"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input(args, kwargs, exc, match):
    kwargs = {"eps": 1.0, **kwargs}
    with pytest.raises(exc, match=match):
        fit_cost(*args, **kwargs)


@pytest.mark.parametrize(
    ("reg_l1", "exc", "match"),
    [
        (0, ValueError, "reg_l1 must be >= 1"),
        ([], ValueError, "reg_l1 must not be empty"),
        ([0.1, -1.0], ValueError, "reg_l1 must be a non-negative"),
        ("0.1", TypeError, "reg_l1 must be a sequence of penalties or an int"),
        (0.5, TypeError, "reg_l1 must be a sequence of penalties or an int"),
    ],
)
def test_path_bad_input(reg_l1, exc, match):
    with pytest.raises(exc, match=match):
        fit_cost_path(_X, _Y, _P, reg_l1=reg_l1, eps=1.0)
    with pytest.raises(TypeError, match="progress must be True or False"):
        fit_cost_path(_X, _Y, _P, reg_l1=[0.1], eps=1.0, progress="yes")


def test_learned_cost_checks_dimensions(rng):
    x, y, plan = planted_plan(rng, A_SMALL, n=10, m=12)
    res = fit_cost(x, y, plan, eps=EPS, max_iter=5, tol=1.0)
    with pytest.raises(ValueError, match="x and y must have 3 and 2 columns"):
        res.cost(y, x)


def test_namespace():
    assert pyot.inverse.fit_cost is fit_cost
    assert "fit_cost" not in pyot.__all__
    assert "inverse" not in pyot.__all__
    assert set(pyot.inverse.__all__) == {"InverseOTResult", "fit_cost", "fit_cost_path"}


@pytest.mark.parametrize("n", [40, 1450])  # 1450^2 >= 2^21: the float kernel, P y fused
@pytest.mark.parametrize("features", ["bilinear", "diagonal"])
def test_gradient_is_features_against_plan(rng, n, features):
    # grad L = <phi, P_A> - <phi, P_hat> with P_A the Gibbs plan at the returned potentials,
    # whether P y came with the solve (fused or its own pass) or after it (a solved point).
    from pyot.inverse import _Fit

    x, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    problem = _Fit("test", x, y, identity_pairs(n), features, EPS)
    obj, model = problem.objective, problem.model
    shape = (3, 3) if features == "bilinear" else (3,)
    for gradient_first in (True, False):
        w = rng.standard_normal(shape) * 0.3
        if not gradient_first:
            obj(w, False)  # then the gradient at the same, already solved point
        _, grad = obj(w, True)
        u = model.x @ w if features == "bilinear" else model.x * w
        plan = np.outer(obj.a, obj.b) * np.exp((obj.f[:, None] + obj.g[None, :] + u @ model.y.T)
                                               / EPS)
        py = plan @ model.y
        want = model.x.T @ py if features == "bilinear" else np.einsum("ik,ik->k", model.x, py)
        np.testing.assert_allclose(grad, want - obj.observed, rtol=1e-9, atol=1e-12)


def test_bilinear_cost_and_range(rng):
    from pyot import _core

    u, y = rng.standard_normal((37, 5)), rng.standard_normal((29, 5))
    out = np.empty((37, 29))
    lo, hi = _core.bilinear_cost(u, y, out)
    np.testing.assert_allclose(out, -u @ y.T, rtol=1e-13, atol=1e-14)
    assert (lo, hi) == (out.min(), out.max())
    u[3, 2] = np.inf
    lo, hi = _core.bilinear_cost(u, y, out)
    assert math.isnan(lo)
    assert math.isnan(hi)
    with pytest.raises(ValueError, match="u and y must have the same number of columns"):
        _core.bilinear_cost(u, np.ascontiguousarray(y[:, :4]), out)
    with pytest.raises(ValueError, match="out"):
        _core.bilinear_cost(u, y, np.empty((29, 37)))


def test_warm_start_extrapolates_potentials(rng):
    # Along a line of weights the predicted potentials are first-order accurate: closer to the
    # solution than the last solve's (the fit itself only starts from them).
    from pyot.inverse import _Fit

    x, y, plan = planted_plan(rng, A_SMALL, n=30, m=35)
    problem = _Fit("test", x, y, plan, "bilinear", EPS)
    obj = problem.objective
    obj.inner_tol = 1e-12
    w0 = 0.2 * A_SMALL
    step = 1e-3 * rng.standard_normal(A_SMALL.shape)
    for k in range(2):
        obj(w0 + k * step, False)
    f_pred, g_pred = obj._predict(w0 + 2 * step)
    f_last, g_last = obj.f.copy(), obj.g.copy()
    obj(w0 + 2 * step, False)

    def gap(f, g):  # potentials are defined up to (f + c, g - c)
        shift = np.mean(obj.f - f)
        return np.abs(f + shift - obj.f).max() + np.abs(g - shift - obj.g).max()

    assert gap(f_pred, g_pred) < 0.2 * gap(f_last, g_last)
