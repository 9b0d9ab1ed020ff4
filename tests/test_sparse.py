"""pyot.sparse_ot and pyot.quadratic_ot (ALGORITHMS.md section 4).

References: POT ``ot.smooth.smooth_ot_dual`` / ``smooth_ot_semi_dual`` (``reg_type="l2"`` and
``"sparsity_constrained"``), exact OT by ``scipy.optimize.linprog`` (conftest), the independent
coupling ``a b^T``, and finite differences of the semi-dual through ``pyot._core``.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from conftest import BAD_COST_AND_WEIGHTS, good_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

import pyot
from pyot import _core

ot = pytest.importorskip("ot")


# ----------------------------------------------------------------------------- helpers


def problem(rng, n=30, m=25, *, dtype=np.float64, uniform=False):
    """Squared-Euclidean cost scaled to max 1 and random positive weights summing to 1."""
    x = rng.standard_normal((n, 2))
    y = rng.standard_normal((m, 2)) + 0.5
    cost = cdist(x, y, "sqeuclidean")
    cost /= cost.max()
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.0, m)
        a, b = a / a.sum(), b / b.sum()
    return cost.astype(dtype), a, b


def dense(res):
    return res.plan.toarray().astype(np.float64)


def marginal_error(plan, a, b):
    return float(np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum())


def primal_objective(plan, cost, reg):
    plan = np.asarray(plan, np.float64)
    return float((plan * cost).sum() + 0.5 * reg * (plan**2).sum())


def pot_plan(solver, a, b, cost, reg, k=None):
    """A POT smooth-OT plan, run to a tight stopping threshold; POT's sparsity-constrained
    projection prints shapes, which are swallowed here."""
    kind = "l2" if k is None else "sparsity_constrained"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # POT passes scipy's old `disp`
        return solver(a, b, cost, reg, reg_type=kind, max_nz=k, stopThr=1e-12, numItermax=5000)


def check_result(res, cost, a, b, *, k, reg, tol):
    """What every converged result must satisfy."""
    n, m = cost.shape
    assert isinstance(res, pyot.SparseResult)
    assert isinstance(res, pyot.OTResult)
    assert scipy.sparse.issparse(res.plan)
    assert res.plan.format == "csc"
    assert res.plan.shape == (n, m)
    assert res.plan.dtype == cost.dtype
    assert res.f.dtype == cost.dtype
    assert res.g.dtype == cost.dtype
    assert res.f.shape == (n,)
    assert res.g.shape == (m,)
    assert np.diff(res.plan.indptr).max() <= k
    assert res.plan.has_sorted_indices
    plan = dense(res)
    assert (plan >= 0).all()
    assert res.converged
    assert res.marginal_error <= tol
    assert marginal_error(plan, a, b) <= tol * 1.01 + 1e-6 * (cost.dtype == np.float32)
    c64 = cost.astype(np.float64)
    rtol = 1e-9 if cost.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(res.value, (plan * c64).sum(), rtol=rtol)
    np.testing.assert_allclose(res.objective, primal_objective(plan, c64, reg), rtol=rtol)
    assert res.reg == reg
    # On the support, P = (f + g - C) / reg.
    rows, cols = plan.nonzero()
    f, g = res.f.astype(np.float64), res.g.astype(np.float64)
    np.testing.assert_allclose(
        plan[rows, cols], (f[rows] + g[cols] - c64[rows, cols]) / reg, rtol=1e-4, atol=1e-6
    )


# ----------------------------------------------------------------------------- properties


class TestSparseOT:
    @pytest.mark.parametrize("k", [1, 2, 5])
    def test_at_most_k_per_column_and_marginals(self, rng, ref, k, dtype):
        # Uniform and square: feasible for every k (k = 1 is a permutation).
        cost, a, b = problem(rng, 30, 30, dtype=dtype, uniform=True)
        tol = 1e-6 if dtype == np.float64 else 1e-5
        res = pyot.sparse_ot(cost, a, b, k=k, reg=0.01, tol=tol)
        check_result(res, cost, a, b, k=k, reg=0.01, tol=tol)

    def test_columns_carry_b_exactly(self, rng):
        # Converged or not (with random weights few rows can be matched exactly by k pieces
        # of each column), every column of a semi-dual plan carries exactly b_j; a plan from
        # the support polish carries it within tol.
        cost, a, b = problem(rng, 20, 30)
        for max_iter in (5, 50):
            for polish in (False, True):
                out = _core.sparse_solve(cost, a, b, k=2, reg=0.5, tol=1e-6, max_iter=max_iter,
                                         formulation=0, threads=1, polish=polish)
                polished, col_ptr, rows, values = out[2], *out[-3:]
                plan = scipy.sparse.csc_array((values, rows, col_ptr), shape=cost.shape)
                if polished:
                    assert polish
                    np.testing.assert_allclose(plan.sum(0), b, rtol=0, atol=1e-6)
                else:
                    np.testing.assert_allclose(plan.sum(0), b, rtol=1e-12)

    @pytest.mark.parametrize("k", [1, 3, None])
    def test_value_between_exact_and_independent(self, rng, ref, k):
        cost, a, b = problem(rng, 25, 25, uniform=True)
        exact, _ = ref.exact_ot(cost, a, b)
        independent = float(a @ cost @ b)
        tol = 1e-7
        if k is None:
            res = pyot.quadratic_ot(cost, a, b, reg=0.01, tol=tol)
        else:
            res = pyot.sparse_ot(cost, a, b, k=k, reg=0.01, tol=tol)
        # Rounding the plan onto U(a, b) moves <P, C> by at most max|C| * err (ALGORITHMS 11).
        slack = cost.max() * res.marginal_error
        assert exact - slack <= res.value <= independent
        assert exact - slack <= res.objective

    def test_reg_to_zero_approaches_exact_ot(self, rng, ref):
        cost, a, b = problem(rng, 15, 15)
        exact, _ = ref.exact_ot(cost, a, b)
        gaps = []
        for reg in (1e-1, 1e-2, 1e-3):
            res = pyot.quadratic_ot(cost, a, b, reg=reg, tol=1e-9, max_iter=5000)
            gaps.append(res.objective - exact)
        assert gaps[0] > gaps[1] > gaps[2] > -1e-8
        assert gaps[2] < 1e-3 * exact

    def test_k1_uniform_square_is_a_permutation(self, rng, ref):
        cost, a, b = problem(rng, 12, 12, uniform=True)
        exact, _ = ref.exact_ot(cost, a, b)
        res = pyot.sparse_ot(cost, a, b, k=1, reg=0.1)
        plan = dense(res)
        np.testing.assert_allclose(np.sort(plan.ravel())[-12:], 1.0 / 12, rtol=1e-12)
        np.testing.assert_allclose(res.value, exact, rtol=1e-9)

    def test_large_k_equals_quadratic(self, rng):
        cost, a, b = problem(rng, 30, 20)
        quad = pyot.quadratic_ot(cost, a, b, reg=0.05)
        support = int(np.diff(quad.plan.indptr).max())
        for k in (support, support + 3, 30, 100):
            res = pyot.sparse_ot(cost, a, b, k=k, reg=0.05)
            np.testing.assert_allclose(res.objective, quad.objective, rtol=1e-6)
            np.testing.assert_allclose(dense(res), dense(quad), atol=1e-6)
        exact_same = pyot.sparse_ot(cost, a, b, k=30, reg=0.05)
        np.testing.assert_array_equal(exact_same.plan.toarray(), quad.plan.toarray())
        np.testing.assert_array_equal(exact_same.f, quad.f)

    def test_tighter_k_costs_more(self, rng):
        cost, a, b = problem(rng, 30, 30)
        quad = pyot.quadratic_ot(cost, a, b, reg=0.5)
        support = int(np.diff(quad.plan.indptr).max())
        assert support >= 3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyot.ConvergenceWarning)
            res = pyot.sparse_ot(cost, a, b, k=1, reg=0.5)
        assert np.diff(res.plan.indptr).max() == 1
        assert res.objective > quad.objective

    def test_uniform_defaults(self, rng):
        cost, _, _ = problem(rng, 20, 10)
        res = pyot.sparse_ot(cost, k=4, reg=0.01)
        np.testing.assert_allclose(dense(res).sum(1), np.full(20, 0.05), atol=1e-6)

    def test_zero_weights(self, rng):
        cost, a, b = problem(rng, 20, 15)
        a[[2, 7]] = 0.0
        b[[0, 4]] = 0.0
        a, b = a / a.sum(), b / b.sum()
        res = pyot.sparse_ot(cost, a, b, k=3, reg=0.02)
        plan = dense(res)
        assert res.converged
        assert np.isfinite(res.f).all()
        assert np.isfinite(res.g).all()
        assert (plan[:, [0, 4]] == 0).all()
        assert np.abs(plan[[2, 7]]).sum() <= 1e-6

    def test_non_unit_mass(self, rng):
        cost, a, b = problem(rng, 20, 15)
        # A larger mass widens the supports (t = (v - tau) / reg with sum t = b_j): k = 8.
        res = pyot.sparse_ot(cost, 3.0 * a, 3.0 * b, k=8, reg=0.05)
        check_result(res, cost, 3.0 * a, 3.0 * b, k=8, reg=0.05, tol=1e-6)

    def test_point_cloud_equals_dense(self, rng):
        x, y = rng.random((20, 2)), rng.random((15, 2))
        r1 = pyot.sparse_ot(pyot.PointCloud(x, y), k=4, reg=0.01)
        r2 = pyot.sparse_ot(pyot.cost_matrix(x, y), k=4, reg=0.01)
        np.testing.assert_array_equal(r1.plan.toarray(), r2.plan.toarray())

    def test_k_times_m_below_n_warns(self, rng):
        cost, _, _ = problem(rng, 30, 4)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = pyot.sparse_ot(cost, k=2, reg=0.1, max_iter=50)
        messages = [str(w.message) for w in caught if w.category is UserWarning]
        assert any("k * m = 8 is less than n = 30" in msg for msg in messages), messages
        assert not res.converged

    def test_not_converged_warns(self, rng):
        cost, a, b = problem(rng, 30, 30)
        with pytest.warns(pyot.ConvergenceWarning, match="pyot.sparse_ot did not converge"):
            res = pyot.sparse_ot(cost, a, b, k=3, reg=0.01, max_iter=2)
        assert not res.converged
        assert res.n_iter <= 2
        assert res.marginal_error > 1e-6
        np.testing.assert_allclose(res.marginal_error, marginal_error(dense(res), a, b))

    def test_max_iter_zero_returns_the_start(self, rng):
        cost, a, b = problem(rng, 10, 10)
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.quadratic_ot(cost, a, b, reg=0.1, max_iter=0)
        assert res.n_iter == 0
        np.testing.assert_array_equal(res.f, 0.0)

    def test_frozen(self, rng):
        cost, a, b = problem(rng, 8, 8)
        res = pyot.quadratic_ot(cost, a, b, reg=0.1)
        with pytest.raises(AttributeError):
            res.value = 0.0


class TestK1Assignment:
    """k = 1 with equal column weights and row weights that are integer multiples of them: the
    plans are the assignments of columns to (repeated) rows, solved exactly (exact.hpp's
    Assignment); value = <C, P>, objective = value + (reg / 2) sum_j b_j^2."""

    @staticmethod
    def semi_dual(f, cost, a, b, reg):
        """F(f) = <f, a> - sum_j [b_j max_i (f_i - C_ij) - (reg / 2) b_j^2] (k = 1)."""
        return float(f @ a - (b * (f[:, None] - cost).max(axis=0)).sum() + 0.5 * reg * b @ b)

    def check(self, res, cost, a, b, reg, reference):
        n = cost.shape[0]
        c64 = cost.astype(np.float64)
        plan = dense(res)
        assert res.converged
        assert res.n_iter == 0
        assert res.plan.format == "csc"
        assert res.plan.dtype == cost.dtype
        np.testing.assert_array_equal(np.diff(res.plan.indptr), 1)  # one row per column
        np.testing.assert_array_equal(plan.sum(0), b.astype(cost.dtype))  # columns exact
        assert res.marginal_error <= 1e-15 * n
        assert marginal_error(plan, a, b) <= 1e-6 * (cost.dtype == np.float32) + 1e-15 * n
        rows, cols = plan.nonzero()
        np.testing.assert_allclose(res.value, (b[cols] * c64[rows, cols]).sum(), rtol=1e-12)
        np.testing.assert_allclose(res.value, reference, rtol=1e-12)
        np.testing.assert_allclose(res.objective, reference + 0.5 * reg * b @ b, rtol=1e-12)
        # f maximizes the semi-dual (its value is the objective: no duality gap), and
        # P = (f + g - C) / reg on the support.
        f, g = res.f.astype(np.float64), res.g.astype(np.float64)
        rtol = 1e-12 if cost.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(self.semi_dual(f, c64, a, b, reg), res.objective, rtol=rtol)
        np.testing.assert_allclose((f[rows] + g[cols] - c64[rows, cols]) / reg, b[cols],
                                   rtol=rtol * 10, atol=1e-9)

    @pytest.mark.parametrize("n", [1, 7, 60])
    def test_square_uniform_equals_linear_sum_assignment(self, rng, n, dtype):
        cost, a, b = problem(rng, n, n, dtype=dtype, uniform=True)
        rows, cols = scipy.optimize.linear_sum_assignment(cost.astype(np.float64))
        reference = float(cost.astype(np.float64)[rows, cols].sum() / n)
        res = pyot.sparse_ot(cost, a, b, k=1, reg=0.3)
        self.check(res, cost, a, b, 0.3, reference)
        np.testing.assert_array_equal(res.plan.indices[cols], rows)  # the same permutation

    def test_rows_repeated(self, rng, ref):
        # m = 3 n, uniform: each row takes exactly 3 columns (a transport problem with
        # integral supplies, whose optimal vertex is integral: the exact OT value).
        cost, a, b = problem(rng, 10, 30, uniform=True)
        exact, _ = ref.exact_ot(cost, a, b)
        res = pyot.sparse_ot(cost, a, b, k=1, reg=0.1)
        self.check(res, cost, a, b, 0.1, exact)
        np.testing.assert_array_equal(np.bincount(res.plan.indices, minlength=10), 3)

    def test_zero_weight_rows_and_multiples(self, rng, ref):
        cost, _, _ = problem(rng, 8, 10)
        a = np.array([0.2, 0.0, 0.1, 0.3, 0.0, 0.1, 0.1, 0.2])  # multiples of b_j = 0.1
        b = np.full(10, 0.1)
        exact, _ = ref.exact_ot(cost, a, b)
        res = pyot.sparse_ot(cost, a, b, k=1, reg=1.0)
        self.check(res, cost, a, b, 1.0, exact)
        assert np.isfinite(res.f).all()

    def test_square_with_a_repeated_and_a_dropped_row(self, rng, ref):
        cost, _, _ = problem(rng, 6, 6)
        a = np.array([2, 0, 1, 1, 1, 1]) / 6.0
        b = np.full(6, 1 / 6)
        exact, _ = ref.exact_ot(cost, a, b)
        res = pyot.sparse_ot(cost, a, b, k=1, reg=0.2)
        self.check(res, cost, a, b, 0.2, exact)
        taken = np.bincount(res.plan.indices, minlength=6)
        np.testing.assert_array_equal(taken, [2, 0, 1, 1, 1, 1])

    def test_other_weights_keep_the_semi_dual(self, rng):
        # b not uniform (or a not a multiple of it): no assignment; the semi-dual runs as for
        # k > 1 (and here meets the rows only approximately).
        cost, a, b = problem(rng, 30, 30)
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.sparse_ot(cost, a, b, k=1, reg=0.5, max_iter=50)
        assert res.n_iter > 0
        assert np.diff(res.plan.indptr).max() == 1
        np.testing.assert_allclose(dense(res).sum(0), b, rtol=1e-12)
        cost, a, b = problem(rng, 20, 30, uniform=True)  # 1/20 is not a multiple of 1/30
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.sparse_ot(cost, a, b, k=1, reg=0.5, max_iter=50)
        assert res.n_iter > 0

    def test_semi_dual_alone_does_not_converge(self, rng):
        # Why the assignment is used: with the semi-dual alone, no top-1 support at its
        # optimum covers every row (ties), and the rows are met only roughly.
        cost, a, b = problem(rng, 100, 100, uniform=True)
        out = _core.sparse_solve(cost, a, b, k=1, reg=0.1, tol=1e-6, max_iter=200,
                                 formulation=0, threads=1, assignment=False)
        assert out[0] != 0
        assert out[4] > 1e-2
        exact = pyot.sparse_ot(cost, a, b, k=1, reg=0.1)
        assert exact.marginal_error <= 1e-13
        assert exact.objective < out[6]

    def test_dual_formulation_and_threads(self, rng):
        cost, a, b = problem(rng, 25, 25, uniform=True)
        outs = [
            _core.sparse_solve(cost, a, b, k=1, reg=0.2, tol=1e-6, max_iter=100,
                               formulation=form, threads=threads)
            for form in (0, 1) for threads in (1, 2)
        ]
        for out in outs[1:]:
            for x, y in zip(out, outs[0], strict=True):
                np.testing.assert_array_equal(x, y)


class TestMoreRowsThanColumns:
    """m < n: quadratic OT by the semi-dual over the m column potentials first, kept when no
    column has more than k nonzeros, else the start of the semi-dual over the rows."""

    def test_routing_small_reg_converges(self):
        # The regression: 4096 tokens x 64 experts, standard-normal scores, capacity 80,
        # reg = 0.1 (k does not bind). The semi-dual over the 4096 row potentials ended at
        # err 0.1 after 1000 iterations; over the 64 column potentials it takes ~50.
        scores = np.random.default_rng(0).standard_normal((4096, 64))
        a, b = np.full(4096, 1 / 4096), np.full(64, 1 / 64)
        res = pyot.sparse_ot(-scores, k=80, reg=0.1, tol=1e-6)
        check_result(res, -scores, a, b, k=80, reg=0.1, tol=1e-6)
        assert res.n_iter < 200
        quad = pyot.quadratic_ot(-scores, reg=0.1, tol=1e-6)
        np.testing.assert_array_equal(quad.plan.toarray(), res.plan.toarray())

    @pytest.mark.parametrize("reg", [0.05, 1.0])
    def test_same_optimum_as_the_row_semi_dual(self, rng, reg, dtype):
        cost, a, b = problem(rng, 50, 12, dtype=dtype)
        tol = 1e-7 if dtype == np.float64 else 1e-5
        res = pyot.quadratic_ot(cost, a, b, reg=reg, tol=tol)
        check_result(res, cost, a, b, k=50, reg=reg, tol=tol)
        out = _core.sparse_solve(cost, a, b, k=50, reg=reg, tol=tol, max_iter=5000,
                                 formulation=0, threads=1, transpose=False)
        assert out[0] == 0
        rtol = 1e-6 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(res.objective, out[6], rtol=rtol)
        plan = scipy.sparse.csc_array((out[11], out[10], out[9]), shape=cost.shape).toarray()
        np.testing.assert_allclose(dense(res), plan, atol=20 * tol)

    def test_k_binding_falls_back_to_the_rows(self, rng):
        cost, a, b = problem(rng, 60, 12)
        quad = pyot.quadratic_ot(cost, a, b, reg=0.05)
        widest = int(np.diff(quad.plan.indptr).max())
        res = pyot.sparse_ot(cost, a, b, k=widest - 3, reg=0.05)
        check_result(res, cost, a, b, k=widest - 3, reg=0.05, tol=1e-6)
        assert res.objective > quad.objective


class TestSupportPolish:
    """Where k binds the semi-dual stalls at a kink; quadratic OT on the top-k support meets
    both marginals (ALGORITHMS 4, the core's support polish)."""

    @pytest.mark.parametrize(("k", "reg", "gap"), [(3, 0.3, 2e-3), (5, 1.0, 2e-3), (3, 1.0, 5e-2)])
    def test_polish_meets_the_rows_where_k_binds(self, rng, k, reg, gap):
        cost, a, b = problem(rng, 60, 60, uniform=True)
        tol = 1e-7
        quad = pyot.quadratic_ot(cost, a, b, reg=reg, tol=1e-9)
        assert np.diff(quad.plan.indptr).max() > k  # k cuts into the unconstrained support
        # The semi-dual alone stalls above tol ...
        plain = _core.sparse_solve(cost, a, b, k=k, reg=reg, tol=tol, max_iter=1000,
                                   formulation=0, threads=1, polish=False)
        assert plain[0] != 0
        assert plain[4] > 1e-3
        # ... the solver meets it with at most k nonzeros per column.
        res = pyot.sparse_ot(cost, a, b, k=k, reg=reg, tol=tol)
        check_result(res, cost, a, b, k=k, reg=reg, tol=tol)
        # Lower bounds: the concave semi-dual at any point (weak duality) and quadratic OT
        # (k = n is a relaxation). The polished plan is the best on its support, so close to
        # the bound but not certified optimal (the problem is not convex for k < n).
        cost_t = np.ascontiguousarray(cost.T)
        bound = max(
            _core.sparse_objective(cost_t, a, b, alpha, k=k, reg=reg, formulation=0,
                                   threads=1)[0]
            for alpha in (plain[7].astype(np.float64), res.f.astype(np.float64))
        )
        assert res.objective >= bound - 1e-12
        assert res.objective >= quad.objective - 1e-12
        assert res.objective <= bound * (1.0 + gap)

    def test_no_polish_where_k_does_not_bind(self, rng):
        cost, a, b = problem(rng, 40, 40, uniform=True)
        quad = pyot.quadratic_ot(cost, a, b, reg=0.1, tol=1e-9)
        k = int(np.diff(quad.plan.indptr).max()) + 2
        out = _core.sparse_solve(cost, a, b, k=k, reg=0.1, tol=1e-9, max_iter=1000,
                                 formulation=0, threads=1)
        assert out[0] == 0
        assert not out[2]

    def test_polish_is_thread_independent(self, rng):
        # 760 x 720 entries: two threads in the core (one per 2^18 entries).
        cost, a, b = problem(rng, 760, 720, uniform=True)
        outs = [
            _core.sparse_solve(cost, a, b, k=10, reg=3.0, tol=1e-6, max_iter=200, formulation=0,
                               threads=t)
            for t in (1, 2)
        ]
        assert outs[0][2]  # polished
        for x, y in zip(outs[0], outs[1], strict=True):
            np.testing.assert_array_equal(x, y)


class TestAgainstPOT:
    @pytest.mark.parametrize("reg", [0.05, 0.5])
    def test_quadratic_against_pot(self, rng, reg):
        cost, a, b = problem(rng, 40, 30)
        res = pyot.quadratic_ot(cost, a, b, reg=reg, tol=1e-9)
        for solver in (ot.smooth.smooth_ot_dual, ot.smooth.smooth_ot_semi_dual):
            plan = pot_plan(solver, a, b, cost, reg)
            # POT stops at a larger marginal error: its primal objective is off by about
            # max|C| times that error.
            slack = 2.0 * marginal_error(plan, a, b) + 1e-7
            assert abs(res.objective - primal_objective(plan, cost, reg)) <= slack
        np.testing.assert_allclose(
            dense(res), pot_plan(ot.smooth.smooth_ot_semi_dual, a, b, cost, reg), atol=2e-4
        )

    @pytest.mark.parametrize(("k", "reg"), [(2, 0.02), (3, 0.1), (5, 0.05)])
    def test_sparse_against_pot(self, rng, k, reg):
        cost, a, b = problem(rng, 30, 30, uniform=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyot.ConvergenceWarning)
            res = pyot.sparse_ot(cost, a, b, k=k, reg=reg, tol=1e-9)
        for solver in (ot.smooth.smooth_ot_dual, ot.smooth.smooth_ot_semi_dual):
            plan = pot_plan(solver, a, b, cost, reg, k=k)
            assert (np.count_nonzero(plan, axis=0) <= k).all()
            slack = 2.0 * (marginal_error(plan, a, b) + res.marginal_error) + 1e-7
            assert abs(res.objective - primal_objective(plan, cost, reg)) <= slack


class TestObjective:
    """The (semi-)dual objective of the core: gradients by central differences."""

    @pytest.mark.parametrize("k", [1, 3, 40])
    @pytest.mark.parametrize("formulation", [0, 1])
    def test_gradient_finite_differences(self, rng, k, formulation):
        n, m, reg = 40, 30, 0.1
        cost, a, b = problem(rng, n, m)
        cost_t = np.ascontiguousarray(cost.T)
        x = 0.3 * rng.standard_normal(n + m if formulation else n)
        opts = dict(k=k, reg=reg, formulation=formulation, threads=1)
        f0, grad, _ = _core.sparse_objective(cost_t, a, b, x, **opts)
        h = 1e-7
        fd = np.empty_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            fp = _core.sparse_objective(cost_t, a, b, x + e, **opts)[0]
            fm = _core.sparse_objective(cost_t, a, b, x - e, **opts)[0]
            fd[i] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
        assert np.isfinite(f0)

    def test_semi_dual_value_matches_formula(self, rng):
        n, m, reg, k = 12, 9, 0.2, 3
        cost, a, b = problem(rng, n, m)
        alpha = 0.5 * rng.standard_normal(n)
        f, grad, err = _core.sparse_objective(
            np.ascontiguousarray(cost.T), a, b, alpha, k=k, reg=reg, formulation=0, threads=1
        )
        # Reference: POT's per-column top-k simplex projection.
        with contextlib.redirect_stdout(io.StringIO()):
            cols = ot.utils.projection_sparse_simplex(
                (alpha[:, None] - cost) / (b * reg), k, axis=0
            )
        plan = cols * b
        expected = alpha @ a - np.sum(plan * (alpha[:, None] - cost)) + 0.5 * reg * np.sum(plan**2)
        np.testing.assert_allclose(f, expected, rtol=1e-12)
        np.testing.assert_allclose(grad, a - plan.sum(1), atol=1e-14)
        np.testing.assert_allclose(err, np.abs(a - plan.sum(1)).sum(), rtol=1e-10, atol=1e-15)

    def test_objective_rejects_bad_shapes(self, rng):
        cost, a, b = problem(rng, 5, 4)
        with pytest.raises(ValueError, match="x"):
            _core.sparse_objective(cost.T.copy(), a, b, np.zeros(4), k=2, reg=1.0,
                                   formulation=0, threads=1)
        with pytest.raises(ValueError, match="k"):
            _core.sparse_objective(cost.T.copy(), a, b, np.zeros(5), k=0, reg=1.0,
                                   formulation=0, threads=1)


class TestDtypesThreadsLayout:
    def test_float32_close_to_float64(self, rng):
        cost, a, b = problem(rng, 30, 30)
        r64 = pyot.sparse_ot(cost, a, b, k=5, reg=0.05, tol=1e-7)
        r32 = pyot.sparse_ot(cost.astype(np.float32), a, b, k=5, reg=0.05, tol=1e-5)
        assert r32.plan.dtype == np.float32
        assert r32.f.dtype == np.float32
        np.testing.assert_allclose(r32.objective, r64.objective, rtol=1e-4)
        np.testing.assert_allclose(r32.plan.toarray(), dense(r64), atol=1e-5)

    def test_thread_count_independence(self, rng):
        # Large enough for the core to use several threads (small problems stay on one);
        # bit-identical results need no convergence, so a few iterations suffice.
        cost, a, b = problem(rng, 760, 720)  # 2 threads: one per 2^18 entries

        def solve(threads):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pyot.ConvergenceWarning)
                return pyot.sparse_ot(cost, a, b, k=5, reg=0.05, max_iter=25, threads=threads)

        results = [solve(t) for t in (1, 2, 3, None)]
        for res in results[1:]:
            assert res.n_iter == results[0].n_iter
            np.testing.assert_array_equal(res.f, results[0].f)
            np.testing.assert_array_equal(res.g, results[0].g)
            np.testing.assert_array_equal(res.plan.toarray(), results[0].plan.toarray())
            assert res.objective == results[0].objective
            assert res.marginal_error == results[0].marginal_error

    def test_fortran_strided_and_read_only_inputs(self, rng, dtype):
        cost, a, b = problem(rng, 20, 16, dtype=dtype)
        base = pyot.sparse_ot(cost, a, b, k=4, reg=0.05)
        big = np.zeros((40, 48), dtype=dtype)
        big[::2, ::3] = cost
        ro = cost.copy()
        ro.flags.writeable = False
        for c_in in (np.asfortranarray(cost), big[::2, ::3], ro):
            res = pyot.sparse_ot(c_in, a, b, k=4, reg=0.05)
            np.testing.assert_array_equal(res.plan.toarray(), base.plan.toarray())
            np.testing.assert_array_equal(res.f, base.f)

    def test_inputs_not_modified(self, rng, dtype):
        cost, a, b = problem(rng, 12, 10, dtype=dtype)
        copies = [cost.copy(), a.copy(), b.copy()]
        pyot.sparse_ot(cost, a, b, k=4, reg=0.05)
        pyot.quadratic_ot(cost, a, b, reg=0.05)
        for arr, copy in zip([cost, a, b], copies, strict=True):
            np.testing.assert_array_equal(arr, copy)

    def test_integer_and_list_inputs_become_float64(self):
        cost = [[0, 1, 2], [2, 0, 1], [1, 2, 0]]
        res = pyot.sparse_ot(cost, [1, 1, 1], [1, 1, 1], k=1, reg=1)
        assert res.plan.dtype == np.float64
        np.testing.assert_allclose(res.plan.toarray(), np.eye(3))
        assert res.value == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ bad-input battery


_cost, _a, _b = good_problem()

BAD_INPUTS = [
    # (id, args, kwargs, exception, argument named)
    ("k-zero", (_cost, _a, _b), {"k": 0}, ValueError, "k"),
    ("k-negative", (_cost, _a, _b), {"k": -3}, ValueError, "k"),
    ("k-float", (_cost, _a, _b), {"k": 2.0}, TypeError, "k"),
    ("k-bool", (_cost, _a, _b), {"k": True}, TypeError, "k"),
    ("k-str", (_cost, _a, _b), {"k": "2"}, TypeError, "k"),
    ("k-none", (_cost, _a, _b), {"k": None}, TypeError, "k"),
    ("reg-zero", (_cost, _a, _b), {"reg": 0.0}, ValueError, "reg"),
    ("reg-negative", (_cost, _a, _b), {"reg": -1.0}, ValueError, "reg"),
    ("reg-nan", (_cost, _a, _b), {"reg": float("nan")}, ValueError, "reg"),
    ("reg-inf", (_cost, _a, _b), {"reg": float("inf")}, ValueError, "reg"),
    ("reg-str", (_cost, _a, _b), {"reg": "1"}, TypeError, "reg"),
    ("tol-negative", (_cost, _a, _b), {"tol": -1e-6}, ValueError, "tol"),
    ("tol-nan", (_cost, _a, _b), {"tol": float("nan")}, ValueError, "tol"),
    ("max_iter-negative", (_cost, _a, _b), {"max_iter": -1}, ValueError, "max_iter"),
    ("max_iter-float", (_cost, _a, _b), {"max_iter": 10.5}, TypeError, "max_iter"),
    ("threads-zero", (_cost, _a, _b), {"threads": 0}, ValueError, "threads"),
    ("threads-float", (_cost, _a, _b), {"threads": 1.5}, TypeError, "threads"),
    ("cost-3d", (np.ones((2, 2, 2)), None, None), {}, ValueError, "cost"),
    *BAD_COST_AND_WEIGHTS,
]


@pytest.mark.parametrize("solver", ["sparse_ot", "quadratic_ot"])
@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "name"), [pytest.param(*c[1:], id=c[0]) for c in BAD_INPUTS]
)
def test_bad_inputs(ref, solver, args, kwargs, exc, name):
    if solver == "quadratic_ot":
        if name == "k":
            pytest.skip("quadratic_ot has no k")
        kwargs = {"reg": 0.1, **kwargs}
    else:
        kwargs = {"k": 2, **kwargs}
    copies = [None if x is None else np.array(x, copy=True) for x in args]
    with pytest.raises(exc, match=ref.arg(name)):
        getattr(pyot, solver)(*args, **kwargs)
    for x, c in zip(args, copies, strict=True):
        if x is not None and c.dtype.kind == "f":
            np.testing.assert_array_equal(x, c)


def test_messages():
    cost, a, b = good_problem()
    with pytest.raises(ValueError, match=r"pyot.sparse_ot: k must be >= 1, got 0"):
        pyot.sparse_ot(cost, k=0)
    with pytest.raises(ValueError, match=r"pyot.quadratic_ot: reg must be a positive finite"):
        pyot.quadratic_ot(cost, reg=-1.0)
    with pytest.raises(ValueError, match=r"a sums to 1\b.*b sums to 0\.5\b"):
        pyot.sparse_ot(cost, a, b / 2, k=2)


def test_required_and_keyword_only():
    cost, a, b = good_problem()
    with pytest.raises(TypeError, match="k"):
        pyot.sparse_ot(cost, a, b)
    with pytest.raises(TypeError, match="reg"):
        pyot.quadratic_ot(cost, a, b)
    with pytest.raises(TypeError):
        pyot.sparse_ot(cost, a, b, 2)


# ------------------------------------------------------------------- hypothesis


@st.composite
def sparse_problems(draw):
    n = draw(st.integers(1, 9))
    m = draw(st.integers(1, 9))
    cost = draw(arrays(np.float64, (n, m), elements=st.floats(-5.0, 5.0)))
    wa = draw(arrays(np.float64, n, elements=st.floats(0.01, 1.0)))
    wb = draw(arrays(np.float64, m, elements=st.floats(0.01, 1.0)))
    k = draw(st.integers(1, 10))
    reg = draw(st.floats(0.01, 10.0))
    return cost, wa / wa.sum(), wb / wb.sum(), k, reg


@settings(max_examples=60, deadline=None)
@given(sparse_problems())
def test_hypothesis_feasible_columns_and_consistent_fields(prob):
    """Whatever the problem (converged or not): columns carry b (exactly unless polished)
    with at most k nonzeros, the plan is non-negative, the fields agree with the plan, and
    the objective lies between the exact value and the regularized independent coupling's."""
    cost, a, b, k, reg = prob
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pyot.sparse_ot(cost, a, b, k=k, reg=reg, max_iter=200)
    plan = dense(res)
    assert (plan >= 0).all()
    assert (np.count_nonzero(plan, axis=0) <= k).all()
    # Exact for a semi-dual plan; within tol for the support polish's (converged only).
    np.testing.assert_allclose(plan.sum(0), b, rtol=1e-9, atol=1e-6 if res.converged else 1e-15)
    np.testing.assert_allclose(res.marginal_error, marginal_error(plan, a, b), atol=1e-12)
    np.testing.assert_allclose(res.objective, primal_objective(plan, cost, reg), rtol=1e-9,
                               atol=1e-12)
    if res.converged and k >= cost.shape[0]:
        independent = np.outer(a, b)
        assert res.objective <= primal_objective(independent, cost, reg) + 1e-6
