"""pyot.partial_ot (exact and entropic) and pyot.partial_wasserstein_1d.

References: a ``scipy.optimize.linprog`` formulation of partial OT, POT's
``ot.partial.partial_wasserstein`` and ``entropic_partial_wasserstein``, and the duality of
ALGORITHMS.md section 6: prices f, g <= 0 and a mass price lam with C >= f + g + lam,
equality on the support.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import BAD_COST_AND_WEIGHTS, good_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

import pyot

ot = pytest.importorskip("ot")


def linprog_partial(cost, a, b, mass):
    """min <P, C> s.t. P >= 0, P 1 <= a, P^T 1 <= b, sum P = mass (HiGHS)."""
    n, m = cost.shape
    rows = sp.kron(sp.eye(n), np.ones((1, m)))
    cols = sp.kron(np.ones((1, n)), sp.eye(m))
    res = linprog(
        cost.ravel(),
        A_ub=sp.vstack([rows, cols]).tocsr(),
        b_ub=np.concatenate([a, b]),
        A_eq=np.ones((1, n * m)),
        b_eq=[mass],
        bounds=(0, None),
        method="highs",
    )
    assert res.status == 0, res.message
    return float(res.fun)


def clouds(rng, n, m, *, shift=0.5):
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + shift
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    return cost / cost.max()


def check_partial_duality(res, cost, a, b, mass, *, atol=1e-12):
    plan = res.plan.toarray().astype(np.float64)
    f, g = res.f.astype(np.float64), res.g.astype(np.float64)
    assert (f <= 0).all()
    assert (g <= 0).all()
    reduced = cost - f[:, None] - g[None, :]
    lam = float(np.median(reduced[plan > 0]))
    np.testing.assert_allclose(reduced[plan > 0], lam, atol=atol)
    assert (reduced - lam).min() >= -atol
    # Strong duality: <a, f> + <b, g> + mass lam = value.
    assert a @ f + b @ g + mass * lam == pytest.approx(res.value, abs=atol)
    # Complementary slackness on the capacities.
    row_slack = a - plan.sum(1)
    assert (np.abs(f * row_slack) <= atol).all()


class TestExactPartial:
    @pytest.mark.parametrize(("n", "m", "mass"), [(6, 5, 0.3), (8, 8, 0.7), (12, 9, 0.999)])
    def test_matches_linprog(self, rng, n, m, mass):
        cost = clouds(rng, n, m)
        a = rng.uniform(0.1, 1, n)
        b = rng.uniform(0.1, 1, m)
        a, b = a / a.sum(), 1.3 * b / b.sum()
        res = pyot.partial_ot(cost, a, b, mass=mass)
        assert res.converged
        assert res.value == pytest.approx(linprog_partial(cost, a, b, mass), abs=1e-12)
        plan = res.plan.toarray()
        assert plan.sum() == pytest.approx(mass, abs=1e-12)
        assert (plan.sum(1) <= a + 1e-15).all()
        assert (plan.sum(0) <= b + 1e-15).all()
        assert res.marginal_error <= 1e-12
        check_partial_duality(res, cost, a, b, mass)

    def test_matches_pot(self, rng):
        cost = clouds(rng, 80, 70)
        a, b = np.full(80, 1 / 80), np.full(70, 1 / 70)
        expected = ot.partial.partial_wasserstein2(a, b, cost, m=0.7)
        res = pyot.partial_ot(cost, a, b, mass=0.7)
        assert res.value == pytest.approx(expected, rel=1e-9)
        assert sp.issparse(res.plan)
        assert res.plan.nnz <= 80 + 70 + 1

    def test_full_mass_equals_emd(self, rng):
        cost = clouds(rng, 15, 12)
        full = pyot.partial_ot(cost, mass=1.0)
        assert full.value == pytest.approx(pyot.emd(cost).value, rel=1e-12)

    def test_value_convex_and_nondecreasing_in_mass(self, rng):
        cost = clouds(rng, 20, 25)
        masses = np.linspace(0.05, 1.0, 12)
        values = np.array([pyot.partial_ot(cost, mass=s).value for s in masses])
        assert (np.diff(values) >= -1e-14).all()
        assert (np.diff(values, 2) >= -1e-12).all()

    def test_zero_weights_and_single_point(self, rng):
        cost = clouds(rng, 7, 6)
        a = np.array([0.2, 0, 0.3, 0.1, 0, 0.2, 0.2])
        b = np.array([0.5, 0.5, 0, 0.3, 0.1, 0.1])
        res = pyot.partial_ot(cost, a, b, mass=0.6)
        assert res.value == pytest.approx(linprog_partial(cost, a, b, 0.6), abs=1e-12)
        plan = res.plan.toarray()
        assert (plan[a == 0] == 0).all()
        one = pyot.partial_ot(np.array([[2.0, 1.0]]), [1.0], [0.5, 0.5], mass=0.25)
        assert one.value == pytest.approx(0.25)

    def test_float32(self, rng):
        cost = clouds(rng, 30, 20)
        res = pyot.partial_ot(cost.astype(np.float32), mass=0.5)
        assert res.plan.dtype == np.float32
        assert res.f.dtype == np.float32
        assert res.value == pytest.approx(pyot.partial_ot(cost, mass=0.5).value, rel=1e-6)


class TestEntropicPartial:
    @pytest.mark.parametrize("eps", [0.1, 0.02])
    def test_matches_pot(self, rng, eps):
        cost = clouds(rng, 40, 30)
        a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
        expected = ot.partial.entropic_partial_wasserstein(a, b, cost, reg=eps, m=0.6,
                                                           numItermax=20_000, stopThr=1e-15)
        res = pyot.partial_ot(cost, a, b, mass=0.6, eps=eps, tol=1e-11)
        assert res.converged
        np.testing.assert_allclose(res.plan, expected, atol=1e-9)

    def test_constraints_and_objective(self, rng, ref):
        cost = clouds(rng, 25, 35)
        a = rng.uniform(0.1, 1, 25)
        b = rng.uniform(0.1, 1, 35)
        a, b = a / a.sum(), 0.8 * b / b.sum()
        eps, mass = 0.05, 0.5
        res = pyot.partial_ot(cost, a, b, mass=mass, eps=eps, tol=1e-10)
        plan = res.plan
        assert plan.sum() == pytest.approx(mass, abs=1e-10)
        assert (plan.sum(1) <= a + 1e-10).all()
        assert (plan.sum(0) <= b + 1e-10).all()
        assert res.value == pytest.approx(float((plan * cost).sum()), rel=1e-10)
        assert res.objective == pytest.approx(ref.entropic_objective(plan, cost, a, b, eps),
                                              rel=1e-8)
        assert (res.f <= 0).all()
        assert (res.g <= 0).all()

    def test_approaches_exact_as_eps_decreases(self, rng):
        cost = clouds(rng, 30, 30)
        exact = pyot.partial_ot(cost, mass=0.7).value
        gaps = [abs(pyot.partial_ot(cost, mass=0.7, eps=eps, tol=1e-9).value - exact)
                for eps in (0.1, 0.01, 0.001)]
        assert gaps[0] > gaps[1] > gaps[2]
        assert gaps[2] < 2e-3

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_stable_where_pot_is_not(self, rng, dtype):
        # exp(-C / eps) underflows for POT's scaling-domain iterations at eps = 1e-3.
        cost = clouds(rng, 50, 40).astype(dtype)
        a, b = np.full(50, 1 / 50), np.full(40, 1 / 40)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pot = ot.partial.entropic_partial_wasserstein(a, b, cost.astype(np.float64),
                                                          reg=1e-3, m=0.5, numItermax=200)
        assert not np.isfinite(pot).all() or abs(pot.sum() - 0.5) > 1e-3
        res = pyot.partial_ot(cost, a, b, mass=0.5, eps=1e-3, tol=1e-5, max_iter=50_000)
        assert res.converged
        assert np.isfinite(res.plan).all()
        assert res.plan.dtype == dtype
        assert float(res.plan.sum()) == pytest.approx(0.5, abs=1e-5)
        exact = pyot.partial_ot(cost, a, b, mass=0.5).value
        assert res.value == pytest.approx(exact, abs=5e-3)

    def test_point_cloud_online_equals_dense(self, rng, monkeypatch):
        x, y = rng.normal(size=(30, 3)), rng.normal(size=(25, 3))
        dense = pyot.partial_ot(pyot.cost_matrix(x, y), mass=0.5, eps=0.5, tol=1e-10)
        monkeypatch.setattr(importlib.import_module("pyot.partial"), "_DENSE_LIMIT", 0)
        online = pyot.partial_ot(pyot.PointCloud(x, y), mass=0.5, eps=0.5, tol=1e-10)
        assert online.value == pytest.approx(dense.value, rel=1e-9)
        np.testing.assert_allclose(online.plan, dense.plan, atol=1e-12)

    def test_full_mass_matches_sinkhorn(self, rng):
        cost = clouds(rng, 20, 20)
        part = pyot.partial_ot(cost, mass=1.0, eps=0.05, tol=1e-10)
        full = pyot.sinkhorn(cost, eps=0.05, tol=1e-10)
        np.testing.assert_allclose(part.plan, full.plan, atol=1e-8)

    def test_threads_do_not_change_the_result(self, rng):
        cost = clouds(rng, 700, 600)  # large enough for two threads
        one = pyot.partial_ot(cost, mass=0.6, eps=0.05, tol=1e-9, threads=1)
        two = pyot.partial_ot(cost, mass=0.6, eps=0.05, tol=1e-9, threads=2)
        assert one.n_iter == two.n_iter
        np.testing.assert_allclose(two.f, one.f, rtol=1e-12, atol=1e-15)
        assert two.value == pytest.approx(one.value, rel=1e-12)

    def test_max_iter_warns(self, rng):
        cost = clouds(rng, 20, 20)
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.partial_ot(cost, mass=0.5, eps=1e-3, max_iter=2)
        assert not res.converged


class TestPartial1D:
    @pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
    def test_matches_linprog(self, rng, p):
        u, v = rng.normal(size=9), rng.normal(size=7) + 0.3
        wu, wv = rng.uniform(0.1, 1, 9), rng.uniform(0.1, 1, 7)
        wu, wv = wu / wu.sum(), 1.5 * wv / wv.sum()
        cost = np.abs(u[:, None] - v[None]) ** p
        res = pyot.partial_wasserstein_1d(u, v, wu, wv, mass=0.6, p=p)
        assert res.value == pytest.approx(linprog_partial(cost, wu, wv, 0.6), abs=1e-12)
        assert res.plan.sum() == pytest.approx(0.6)

    def test_matches_pot(self, rng):
        u, v = rng.normal(size=40), rng.normal(size=30)
        cost = np.abs(u[:, None] - v[None])
        a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
        expected = ot.partial.partial_wasserstein2(a, b, cost, m=0.5)
        assert pyot.partial_wasserstein_1d(u, v, mass=0.5).value == pytest.approx(expected)

    def test_full_mass_equals_emd(self, rng):
        u, v = rng.normal(size=12), rng.normal(size=12)
        full = pyot.partial_wasserstein_1d(u, v, mass=1.0, p=2.0)
        assert full.value == pytest.approx(pyot.emd((u[:, None] - v[None]) ** 2).value)

    def test_p_below_one_rejected(self):
        with pytest.raises(ValueError, match=r"p must be a finite number >= 1"):
            pyot.partial_wasserstein_1d([0.0, 1.0], [0.5], mass=0.5, p=0.5)


_cost, _a, _b = good_problem()


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "name"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_COST_AND_WEIGHTS]
    + [
        pytest.param((_cost, _a, _b), {"mass": 0.0}, ValueError, "mass", id="mass-zero"),
        pytest.param((_cost, _a, _b), {"mass": -1.0}, ValueError, "mass", id="mass-neg"),
        pytest.param((_cost, _a, _b), {"mass": np.nan}, ValueError, "mass", id="mass-nan"),
        pytest.param((_cost, _a, _b), {"mass": 1.5}, ValueError, "mass", id="mass-too-big"),
        pytest.param((_cost, _a, _b), {"mass": "1"}, TypeError, "mass", id="mass-str"),
        pytest.param((_cost, _a, _b), {"mass": 0.5, "eps": 0.0}, ValueError, "eps",
                     id="eps-zero"),
        pytest.param((_cost, _a, _b), {"mass": 0.5, "eps": np.inf}, ValueError, "eps",
                     id="eps-inf"),
        pytest.param((_cost, _a, _b), {"mass": 0.5, "eps": 0.1, "tol": -1}, ValueError, "tol",
                     id="tol-neg"),
        pytest.param((_cost, _a, _b), {"mass": 0.5, "max_iter": -1}, ValueError, "max_iter",
                     id="max_iter-neg"),
        pytest.param((np.ones((2, 3, 3)), None, None), {"mass": 0.5}, ValueError, "cost",
                     id="batch"),
    ],
)
def test_partial_ot_bad_inputs(ref, args, kwargs, exc, name):
    kwargs = {"mass": 0.5, **kwargs}
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.partial_ot(*args, **kwargs)


def test_mass_message_states_both_sums():
    with pytest.raises(ValueError, match=r"a sums to 1\b.*b sums to 0\.5\b"):
        pyot.partial_ot(np.zeros((2, 2)), [0.5, 0.5], [0.25, 0.25], mass=0.75)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"u": [np.nan, 1.0]}, ValueError, "u"),
        ({"v": [[0.0, 1.0]]}, ValueError, "v"),
        ({"u_weights": [1.0, -1.0]}, ValueError, "u_weights"),
        ({"v_weights": [1.0, 2.0]}, ValueError, "v_weights"),
        ({"mass": 2.0}, ValueError, "mass"),
        ({"p": 0.0}, ValueError, "p"),
        ({"u": ["a", "b"]}, TypeError, "u"),
    ],
)
def test_partial_1d_bad_inputs(ref, kwargs, exc, name):
    args = {"u": [0.0, 1.0], "v": [0.5], "mass": 0.5, **kwargs}
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.partial_wasserstein_1d(args.pop("u"), args.pop("v"), **args)


# Costs on a grid of 1/8: HiGHS, the reference, works to tolerances of about 1e-7 and
# cannot separate costs closer than that.
@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (5, 4), elements=st.integers(0, 80).map(lambda k: k / 8)),
    st.floats(0.05, 1.0),
)
def test_partial_property_matches_linprog(cost, mass):
    a, b = np.full(5, 0.2), np.full(4, 0.25)
    res = pyot.partial_ot(cost, a, b, mass=mass)
    assert res.value == pytest.approx(linprog_partial(cost, a, b, mass), abs=1e-9)
    check_partial_duality(res, cost, a, b, min(mass, 1.0), atol=1e-9)
