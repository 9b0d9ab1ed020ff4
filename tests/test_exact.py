"""pyot.emd (network simplex) and pyot.wasserstein_1d.

References: exact OT by ``scipy.optimize.linprog`` (HiGHS) and ``linear_sum_assignment``, POT's
``ot.emd2``, and the invariants of ALGORITHMS.md section 3: feasibility, dual feasibility
(f_i + g_j <= C_ij), complementary slackness (equality on the support), a zero duality gap and
at most n + m - 1 nonzeros.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import BAD_COST_AND_WEIGHTS, good_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

import pyot

ot = pytest.importorskip("ot")


def random_problem(rng, n, m, *, d=2, zeros=(0, 0)):
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    a, b = rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.0, m)
    a[rng.choice(n, zeros[0], replace=False)] = 0
    b[rng.choice(m, zeros[1], replace=False)] = 0
    return cost, a / a.sum(), b / b.sum()


def check_optimality(res, cost, a, b, *, atol=1e-12):
    """Primal feasibility, dual feasibility, complementary slackness, zero duality gap."""
    plan = res.plan.toarray().astype(np.float64)
    f, g = res.f.astype(np.float64), res.g.astype(np.float64)
    cost = cost.astype(np.float64)
    scale = max(1.0, np.abs(cost).max())
    assert (plan >= 0).all()
    np.testing.assert_allclose(plan.sum(1), a, atol=atol)
    np.testing.assert_allclose(plan.sum(0), b, atol=atol)
    reduced = cost - f[:, None] - g[None, :]
    assert reduced.min() >= -atol * scale
    np.testing.assert_allclose(reduced[plan > 0], 0.0, atol=atol * scale)
    assert res.value == pytest.approx(float((plan * cost).sum()), abs=atol * scale)
    dual = float(a[a > 0] @ f[a > 0] + b[b > 0] @ g[b > 0])
    assert dual == pytest.approx(res.value, abs=atol * scale)
    assert res.plan.nnz <= len(a) + len(b) - 1
    assert res.marginal_error <= atol


class TestEmd:
    @pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 6), (6, 1), (5, 7), (12, 9), (30, 30)])
    def test_matches_linprog(self, rng, ref, n, m):
        cost, a, b = random_problem(rng, n, m)
        res = pyot.emd(cost, a, b)
        value, _ = ref.exact_ot(cost, a, b)
        assert res.converged
        assert res.value == pytest.approx(value, rel=1e-9, abs=1e-12)
        check_optimality(res, cost, a, b)

    @pytest.mark.parametrize("n", [2, 3, 5, 7])
    def test_permutations(self, rng, n):
        cost = rng.random((n, n))
        res = pyot.emd(cost)
        rows, cols = linear_sum_assignment(cost)
        assert res.value == pytest.approx(cost[rows, cols].sum() / n, rel=1e-12)
        # A generic uniform square problem has a permutation plan (up to ties).
        plan = res.plan.toarray()
        np.testing.assert_allclose(plan[rows, cols], 1.0 / n)

    def test_matches_pot(self, rng):
        cost, a, b = random_problem(rng, 150, 120, d=5)
        res = pyot.emd(cost, a, b)
        assert res.value == pytest.approx(ot.emd2(a, b, cost), rel=1e-10)
        check_optimality(res, cost, a, b)

    @pytest.mark.parametrize("kind", ["normal", "ties", "zeros", "additive", "sqeuclidean-64"])
    @pytest.mark.parametrize("n", [1, 2, 3, 8, 33, 130])
    def test_assignment_solver(self, rng, kind, n):
        # Equal uniform square problems go to the shortest-augmenting-path solver: check it
        # against linear_sum_assignment and against the network simplex (the same problem with
        # every column split in two halves is not square, so the simplex solves that one).
        if kind == "normal":
            cost = rng.normal(size=(n, n))
        elif kind == "ties":
            cost = rng.integers(0, 3, size=(n, n)).astype(np.float64)
        elif kind == "zeros":
            cost = np.zeros((n, n))
        elif kind == "additive":  # C_ij = p_i + q_j: every permutation is optimal
            cost = np.add.outer(rng.normal(size=n), rng.normal(size=n))
        else:
            cost = pyot.cost_matrix(rng.uniform(size=(n, 64)), rng.uniform(size=(n, 64)))
        w = np.full(n, 1.0 / n)
        res = pyot.emd(cost)
        rows, cols = linear_sum_assignment(cost)
        scale = max(1.0, np.abs(cost).max())
        assert res.converged
        assert res.n_iter <= n
        assert res.value == pytest.approx(cost[rows, cols].sum() / n, rel=1e-12, abs=1e-14 * scale)
        check_optimality(res, cost, w, w)
        plan = res.plan.toarray()
        assert res.plan.nnz == n
        np.testing.assert_array_equal(plan.max(axis=1), 1.0 / n)  # a permutation
        np.testing.assert_array_equal((plan > 0).sum(axis=0), 1)
        simplex = pyot.emd(np.hstack([cost, cost]), w, np.full(2 * n, 0.5 / n))
        assert res.value == pytest.approx(simplex.value, rel=1e-12, abs=1e-14 * scale)
        res32 = pyot.emd(cost.astype(np.float32))
        assert res32.value == pytest.approx(res.value, rel=1e-6, abs=1e-6 * scale)
        check_optimality(res32, cost.astype(np.float32), w, w, atol=1e-6)

    def test_assignment_pivot_cap_keeps_the_simplex(self, rng):
        # A pivot cap below n keeps the network simplex and its MaxIter outcome.
        cost = rng.random((20, 20))
        with pytest.warns(pyot.ConvergenceWarning, match="did not converge"):
            res = pyot.emd(cost, max_iter=3)
        assert res.n_iter == 3
        assert not res.converged
        assert pyot.emd(cost, max_iter=20).converged

    def test_plan_is_sparse_array(self, rng):
        cost, a, b = random_problem(rng, 8, 6)
        res = pyot.emd(cost, a, b)
        assert sp.issparse(res.plan)
        assert res.plan.shape == (8, 6)
        assert 1 <= res.plan.nnz <= 13

    def test_zero_weights(self, rng, ref):
        cost, a, b = random_problem(rng, 10, 9, zeros=(3, 2))
        res = pyot.emd(cost, a, b)
        value, _ = ref.exact_ot(cost, a, b)
        assert res.value == pytest.approx(value, rel=1e-9)
        check_optimality(res, cost, a, b)
        plan = res.plan.toarray()
        assert (plan[a == 0] == 0).all()
        assert (plan[:, b == 0] == 0).all()
        assert np.isfinite(res.f).all()
        assert np.isfinite(res.g).all()

    def test_ties_and_duplicated_points(self, rng, ref):
        x = np.repeat(rng.normal(size=(4, 2)), 3, axis=0)  # every point three times
        y = np.repeat(rng.normal(size=(3, 2)), 4, axis=0)
        cost = pyot.cost_matrix(x, y)
        res = pyot.emd(cost)
        assert res.value == pytest.approx(ref.exact_ot(cost, *[np.full(12, 1 / 12)] * 2)[0])
        check_optimality(res, cost, np.full(12, 1 / 12), np.full(12, 1 / 12))
        flat = pyot.emd(np.ones((5, 4)))  # every plan is optimal
        assert flat.value == pytest.approx(1.0)
        check_optimality(flat, np.ones((5, 4)), np.full(5, 0.2), np.full(4, 0.25))

    def test_negative_and_shifted_costs(self, rng):
        cost, a, b = random_problem(rng, 20, 15)
        base = pyot.emd(cost, a, b)
        shifted = pyot.emd(cost - 7.0, a, b)
        assert shifted.value == pytest.approx(base.value - 7.0, abs=1e-10)
        check_optimality(shifted, cost - 7.0, a, b)

    def test_mass_not_one(self, rng):
        cost, a, b = random_problem(rng, 9, 11)
        res = pyot.emd(cost, 3 * a, 3 * b)
        assert res.value == pytest.approx(3 * pyot.emd(cost, a, b).value, rel=1e-12)
        check_optimality(res, cost, 3 * a, 3 * b)

    def test_float32(self, rng):
        cost, a, b = random_problem(rng, 40, 30)
        res32 = pyot.emd(cost.astype(np.float32), a, b)
        res64 = pyot.emd(cost, a, b)
        assert res32.plan.dtype == np.float32
        assert res32.f.dtype == np.float32
        assert res64.plan.dtype == np.float64
        assert res32.value == pytest.approx(res64.value, rel=1e-6)
        check_optimality(res32, cost.astype(np.float32), a, b, atol=1e-6)

    def test_point_cloud_equals_dense(self, rng):
        x, y = rng.normal(size=(25, 3)), rng.normal(size=(20, 3))
        lazy = pyot.emd(pyot.PointCloud(x, y, metric="euclidean"))
        dense = pyot.emd(pyot.cost_matrix(x, y, metric="euclidean"))
        assert lazy.value == pytest.approx(dense.value, rel=1e-12)

    def test_batch_equals_loop(self, rng):
        problems = [random_problem(rng, 12, 10) for _ in range(5)]
        cost = np.stack([p[0] for p in problems])
        a = np.stack([p[1] for p in problems])
        b = np.stack([p[2] for p in problems])
        res = pyot.emd(cost, a, b)
        assert res.plan.shape == (5, 12, 10)
        assert res.value.shape == (5,)
        assert res.f.shape == (5, 12)
        assert res.g.shape == (5, 10)
        assert res.converged.all()
        for k in range(5):
            one = pyot.emd(cost[k], a[k], b[k])
            assert res.value[k] == one.value
            np.testing.assert_array_equal(res.f[k], one.f)
            np.testing.assert_array_equal(res.plan[k].toarray(), one.plan.toarray())

    def test_threads_do_not_change_the_result(self, rng):
        # Large enough that pricing splits super-blocks over the threads.
        cost, a, b = random_problem(rng, 400, 380, d=3)
        one = pyot.emd(cost, a, b, threads=1)
        two = pyot.emd(cost, a, b, threads=2)
        assert one.n_iter == two.n_iter
        assert one.value == two.value
        np.testing.assert_array_equal(one.plan.toarray(), two.plan.toarray())
        np.testing.assert_array_equal(one.f, two.f)
        check_optimality(one, cost, a, b)

    def test_python_threads_in_parallel(self, rng):
        problems = [random_problem(rng, 60, 50) for _ in range(4)]
        expected = [pyot.emd(*p).value for p in problems]
        got = [None] * 4

        def work(k):
            got[k] = pyot.emd(*problems[k], threads=1).value

        workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert got == expected

    def test_layouts_agree_and_inputs_untouched(self, rng):
        cost, a, b = random_problem(rng, 9, 8)
        copies = cost.copy(), a.copy(), b.copy()
        base = pyot.emd(cost, a, b)
        fortran = pyot.emd(np.asfortranarray(cost), a, b)
        wide = np.zeros((9, 16))
        wide[:, ::2] = cost
        strided = pyot.emd(wide[:, ::2], a, b)
        assert base.value == fortran.value == strided.value
        for x, c in zip((cost, a, b), copies, strict=True):
            np.testing.assert_array_equal(x, c)

    def test_max_iter_reached(self, rng):
        cost, a, b = random_problem(rng, 20, 20)
        with pytest.warns(pyot.ConvergenceWarning, match="did not converge"):
            res = pyot.emd(cost, a, b, max_iter=3)
        assert not res.converged
        assert res.n_iter == 3
        assert res.marginal_error > 0  # artificial flow left: never presented as optimal

    def test_integer_costs_become_float64(self):
        res = pyot.emd(np.array([[0, 2], [2, 0]]))
        assert res.value == 0.0
        assert res.f.dtype == np.float64


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "name"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_COST_AND_WEIGHTS]
    + [
        pytest.param(good_problem(), {"max_iter": -1}, ValueError, "max_iter", id="max_iter-neg"),
        pytest.param(good_problem(), {"max_iter": 2.5}, (TypeError, ValueError), "max_iter",
                     id="max_iter-float"),
        pytest.param(good_problem(), {"threads": 0}, ValueError, "threads", id="threads-zero"),
        pytest.param((good_problem()[0], [0.5, 0.5, 0, 0], [0.1] * 5), {}, ValueError, "a",
                     id="unequal-mass"),
    ],
)
def test_emd_bad_inputs(ref, args, kwargs, exc, name):
    copies = [None if x is None else np.array(x, copy=True) for x in args]
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.emd(*args, **kwargs)
    for x, c in zip(args, copies, strict=True):
        if x is not None and c.dtype.kind == "f":
            np.testing.assert_array_equal(x, c)


def test_emd_unequal_mass_message():
    with pytest.raises(ValueError, match=r"a sums to 1\b.*b sums to 0\.5\b"):
        pyot.emd(np.zeros((2, 2)), [0.5, 0.5], [0.25, 0.25])


@st.composite
def small_problems(draw):
    n, m = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    cost = draw(arrays(np.float64, (n, m), elements=st.floats(-5, 5)))
    weight = st.one_of(st.just(0.0), st.floats(0.05, 1.0))
    a = draw(arrays(np.float64, n, elements=weight))
    b = draw(arrays(np.float64, m, elements=weight))
    if a.sum() == 0:
        a[0] = 1.0
    if b.sum() == 0:
        b[-1] = 1.0
    return cost, a / a.sum(), b / b.sum()


@settings(max_examples=60, deadline=None)
@given(small_problems())
def test_emd_property_optimal(problem):
    cost, a, b = problem
    res = pyot.emd(cost, a, b)
    assert res.converged
    check_optimality(res, cost, a, b, atol=1e-10)


class TestWasserstein1D:
    @pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 5), (50, 50), (300, 170), (5000, 4000)])
    def test_p1_matches_scipy(self, rng, n, m):
        u, v = rng.normal(size=n), rng.normal(size=m) + 0.3
        wu, wv = rng.uniform(0, 1, n), rng.uniform(0, 1, m)
        expected = wasserstein_distance(u, v)
        assert pyot.wasserstein_1d(u, v) == pytest.approx(expected, rel=1e-10)
        expected_w = wasserstein_distance(u, v, wu, wv)
        assert pyot.wasserstein_1d(u, v, wu, wv) == pytest.approx(expected_w, rel=1e-10)

    def test_p2_quantile_formula(self, rng):
        u, v = rng.normal(size=3000), rng.exponential(size=3000)
        expected = np.mean((np.sort(u) - np.sort(v)) ** 2)
        assert pyot.wasserstein_1d(u, v, p=2.0) == pytest.approx(expected, rel=1e-12)

    @pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
    def test_matches_emd(self, rng, p):
        u, v = rng.normal(size=20), rng.normal(size=13)
        wu, wv = rng.uniform(0, 1, 20), rng.uniform(0, 1, 13)
        wu[3] = 0.0
        cost = np.abs(u[:, None] - v[None]) ** p
        expected = pyot.emd(cost, wu / wu.sum(), wv / wv.sum()).value
        assert pyot.wasserstein_1d(u, v, wu, wv, p=p) == pytest.approx(expected, rel=1e-10)
        assert pyot.wasserstein_1d(u, v, p=p) == pytest.approx(pyot.emd(cost).value, rel=1e-10)

    def test_translation(self, rng):
        u = rng.normal(size=100)
        assert pyot.wasserstein_1d(u, u + 0.5, p=3.0) == pytest.approx(0.125, rel=1e-12)
        assert pyot.wasserstein_1d(u, u) == 0.0

    def test_columns_equal_loop(self, rng):
        u, v = rng.normal(size=(60, 4)), rng.normal(size=(45, 4))
        wu, wv = rng.uniform(0.1, 1, 60), rng.uniform(0.1, 1, 45)
        out = pyot.wasserstein_1d(u, v, wu, wv, p=2.0)
        assert out.shape == (4,)
        for c in range(4):
            assert out[c] == pyot.wasserstein_1d(u[:, c], v[:, c], wu, wv, p=2.0)

    def test_float32_and_ties(self, rng):
        u = rng.integers(0, 5, 400).astype(np.float32)  # many ties
        v = rng.integers(0, 5, 300).astype(np.float32)
        expected = wasserstein_distance(u.astype(np.float64), v.astype(np.float64))
        assert pyot.wasserstein_1d(u, v) == pytest.approx(expected, rel=1e-6)

    def test_inputs_untouched(self, rng):
        u, v = rng.normal(size=3000), rng.normal(size=2500)
        copies = u.copy(), v.copy()
        pyot.wasserstein_1d(u, v, np.ones(3000), None)
        np.testing.assert_array_equal(u, copies[0])
        np.testing.assert_array_equal(v, copies[1])

    @pytest.mark.parametrize(
        ("kwargs", "exc", "name"),
        [
            ({"p": 0.5}, ValueError, "p"),
            ({"p": np.inf}, ValueError, "p"),
            ({"p": "2"}, TypeError, "p"),
            ({"u": [0.0, np.nan]}, ValueError, "u"),
            ({"v": [np.inf]}, ValueError, "v"),
            ({"u": [[0.0, 1.0]], "v": [[0.0, 1.0, 2.0]]}, ValueError, "u"),
            ({"u": [[0.0, 1.0]]}, ValueError, "u"),
            ({"u": np.zeros((2, 2, 2))}, ValueError, "u"),
            ({"u": []}, ValueError, "u"),
            ({"u_weights": [1.0, -1.0]}, ValueError, "u_weights"),
            ({"v_weights": [1.0, 1.0]}, ValueError, "v_weights"),
            ({"v_weights": [0.0]}, ValueError, "v_weights"),
            ({"u": ["a", "b"]}, TypeError, "u"),
            ({"u": [1j, 2j]}, TypeError, "u"),
        ],
    )
    def test_bad_inputs(self, ref, kwargs, exc, name):
        args = {"u": [0.0, 1.0], "v": [0.5], **kwargs}
        with pytest.raises(exc, match=ref.arg(name)):
            pyot.wasserstein_1d(args.pop("u"), args.pop("v"), **args)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 12), elements=st.floats(-100, 100)),
    arrays(np.float64, st.integers(1, 12), elements=st.floats(-100, 100)),
)
def test_wasserstein_1d_property_p1(u, v):
    assert pyot.wasserstein_1d(u, v) == pytest.approx(wasserstein_distance(u, v), abs=1e-9)
