"""pyot.sinkhorn, pyot.sinkhorn_divergence and pyot.unbalanced_sinkhorn.

References: POT (``ot.sinkhorn(method="sinkhorn_log")``, ``ot.unbalanced.sinkhorn_unbalanced``,
``ot.bregman.empirical_sinkhorn_divergence``), exact OT by ``scipy.optimize.linprog``, and a
plain float64 numpy Sinkhorn (conftest). Potentials convention (ALGORITHMS.md section 2):
P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), unique up to (f + c, g - c).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import BAD_COST_AND_WEIGHTS, good_problem, with_entry
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

import pyot
from pyot import _core

ot = pytest.importorskip("ot")

INF = float("inf")


# ----------------------------------------------------------------------------- helpers


def weights(rng, n, *, zeros=0, mass=1.0):
    w = rng.uniform(0.2, 1.0, size=n)
    if zeros:
        w[rng.choice(n, size=zeros, replace=False)] = 0.0
    return mass * w / w.sum()


def problem(rng, n=30, m=40, *, d=2, zeros_a=0, zeros_b=0, dtype=np.float64):
    """Random sqeuclidean cost normalised to max 1, random positive weights summing to 1."""
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + 0.5
    cost = cdist(x, y, "sqeuclidean")
    cost /= cost.max()
    a = weights(rng, n, zeros=zeros_a)
    b = weights(rng, m, zeros=zeros_b)
    return cost.astype(dtype), a.astype(dtype), b.astype(dtype)


def clouds(rng, n=30, m=40, d=2, dtype=np.float64, *, unit=False):
    """Two Gaussian clouds; unit=True rescales them so that the largest sqeuclidean cost is 1."""
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + 0.5
    if unit:
        s = math.sqrt(cdist(x, y, "sqeuclidean").max())
        x, y = x / s, y / s
    return x.astype(dtype), y.astype(dtype)


def pot_sinkhorn(cost, a, b, eps, *, stop=1e-14):
    """POT's log-domain Sinkhorn, converted to pyot's potential convention."""
    plan, log = ot.sinkhorn(
        a, b, cost, eps, method="sinkhorn_log", numItermax=100_000, stopThr=stop, log=True
    )
    with np.errstate(divide="ignore"):
        f = eps * (log["log_u"] - np.log(a))
        g = eps * (log["log_v"] - np.log(b))
    return f, g, plan


def assert_potentials_close(f, g, f_ref, g_ref, *, atol, rtol=0.0):
    """(f, g) equals (f_ref, g_ref) up to the gauge (f + c, g - c)."""
    f = np.asarray(f, np.float64)
    g = np.asarray(g, np.float64)
    df = f - f_ref
    dg = g - g_ref
    c = 0.5 * (np.mean(df) - np.mean(dg))
    np.testing.assert_allclose(f - c, f_ref, atol=atol, rtol=rtol)
    np.testing.assert_allclose(g + c, g_ref, atol=atol, rtol=rtol)


def dual_value(res, a, b):
    """<a, f> + <b, g> - eps (sum P - sum a sum b) (ALGORITHMS.md 2.1), in float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    plan = np.asarray(res.plan, np.float64)
    return float(
        a @ np.asarray(res.f, np.float64)
        + b @ np.asarray(res.g, np.float64)
        - res.eps * (plan.sum() - a.sum() * b.sum())
    )


def check_result(res, cost, a, b, *, eps, tol, ref, dtype=np.float64):
    """Internal consistency of a converged single-problem SinkhornResult."""
    cost = np.asarray(cost, np.float64)
    n, m = cost.shape
    assert isinstance(res, pyot.SinkhornResult)
    assert isinstance(res, pyot.OTResult)
    plan = res.plan
    assert isinstance(plan, np.ndarray)
    assert plan.shape == (n, m)
    assert res.f.shape == (n,)
    assert res.g.shape == (m,)
    assert plan.dtype == dtype
    assert res.f.dtype == dtype
    assert res.g.dtype == dtype
    for name in ("value", "objective", "marginal_error", "eps"):
        assert isinstance(getattr(res, name), float), (name, type(getattr(res, name)))
    assert isinstance(res.n_iter, (int, np.integer))
    assert isinstance(res.converged, (bool, np.bool_))
    assert res.eps == pytest.approx(eps)
    assert np.isfinite(plan).all()
    assert np.isfinite(res.f).all()
    assert np.isfinite(res.g).all()
    assert (plan >= 0).all()
    assert res.converged
    assert res.n_iter >= 1
    assert res.marginal_error <= tol
    f32 = dtype == np.float32
    # The reported marginal error is the L1 marginal error of the returned plan.
    err = ref.marginal_error(plan, a, b)
    np.testing.assert_allclose(res.marginal_error, err, rtol=1e-2, atol=2e-6 if f32 else 1e-13)
    assert err <= tol + (2e-6 if f32 else 1e-13)
    # value = <P, C>.
    np.testing.assert_allclose(
        res.value, float(np.sum(plan * cost)), rtol=1e-5 if f32 else 1e-10, atol=1e-12
    )
    # The plan is built from the potentials: P = a b^T exp((f + g - C) / eps).
    a64 = np.asarray(a, np.float64)
    b64 = np.asarray(b, np.float64)
    f64 = np.asarray(res.f, np.float64)
    g64 = np.asarray(res.g, np.float64)
    rebuilt = np.outer(a64, b64) * np.exp((f64[:, None] + g64[None, :] - cost) / eps)
    np.testing.assert_allclose(
        plan, rebuilt, rtol=1e-3 if f32 else 1e-9, atol=1e-7 if f32 else 1e-15
    )
    # objective = D(f, g) (its definition) and = <P,C> + eps KL(P | a b^T) at convergence, the
    # gap being bounded by <P1 - a, f> + <P^T1 - b, g>.
    np.testing.assert_allclose(
        res.objective, dual_value(res, a, b), rtol=1e-5 if f32 else 1e-10, atol=1e-10
    )
    primal = ref.entropic_objective(plan, cost, a, b, eps)
    spread = float(np.abs(f64).max() + np.abs(g64).max())
    gap_bound = err * spread + (1e-5 if f32 else 1e-11) * (abs(primal) + 1.0)
    assert abs(res.objective - primal) <= gap_bound, (res.objective, primal, gap_bound)


# ============================================================================= sinkhorn


class TestSinkhornReference:
    @pytest.mark.parametrize("eps", [0.5, 0.05, 0.01])
    def test_against_pot(self, rng, ref, eps):
        cost, a, b = problem(rng, 30, 40)
        res = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-11, max_iter=500_000)
        check_result(res, cost, a, b, eps=eps, tol=1e-11, ref=ref)
        f_ref, g_ref, plan_ref = pot_sinkhorn(cost, a, b, eps)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(res.value, np.sum(plan_ref * cost), rtol=1e-8)
        np.testing.assert_allclose(
            res.objective, ref.entropic_objective(plan_ref, cost, a, b, eps), rtol=1e-8
        )
        assert_potentials_close(res.f, res.g, f_ref, g_ref, atol=1e-7)

    def test_against_numpy_reference(self, rng, ref):
        cost, a, b = problem(rng, 12, 9)
        eps = 0.1
        f_ref, g_ref, plan_ref = ref.sinkhorn(cost, a, b, eps)
        res = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-12, max_iter=100_000)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-8, atol=1e-14)
        assert_potentials_close(res.f, res.g, f_ref, g_ref, atol=1e-10)

    def test_uniform_default_weights(self, rng, ref):
        cost, _, _ = problem(rng, 10, 7)
        res = pyot.sinkhorn(cost, eps=0.1, tol=1e-10)
        a = np.full(10, 1 / 10)
        b = np.full(7, 1 / 7)
        check_result(res, cost, a, b, eps=0.1, tol=1e-10, ref=ref)
        res2 = pyot.sinkhorn(cost, a, b, eps=0.1, tol=1e-10)
        np.testing.assert_allclose(res.plan, res2.plan, rtol=1e-10, atol=1e-15)
        res3 = pyot.sinkhorn(cost, None, b, eps=0.1, tol=1e-10)
        np.testing.assert_allclose(res3.plan, res2.plan, rtol=1e-10, atol=1e-15)

    def test_non_unit_mass(self, rng, ref):
        cost, a, b = problem(rng, 9, 11)
        res = pyot.sinkhorn(cost, 3.0 * a, 3.0 * b, eps=0.1, tol=1e-10)
        check_result(res, cost, 3.0 * a, 3.0 * b, eps=0.1, tol=1e-10, ref=ref)
        _, _, plan_ref = pot_sinkhorn(cost, 3.0 * a, 3.0 * b, 0.1)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-6, atol=1e-12)

    @pytest.mark.parametrize("method", ["auto", "log", "scaling"])
    def test_methods_are_consistent(self, rng, ref, method):
        cost, a, b = problem(rng, 25, 20)
        res = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-10, method=method)
        check_result(res, cost, a, b, eps=0.05, tol=1e-10, ref=ref)
        _, _, plan_ref = pot_sinkhorn(cost, a, b, 0.05)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-6, atol=1e-12)

    def test_log_and_scaling_agree(self, rng, dtype):
        cost, a, b = problem(rng, 40, 35, dtype=dtype)
        tol = 1e-10 if dtype == np.float64 else 1e-5
        r_log = pyot.sinkhorn(cost, a, b, eps=0.02, tol=tol, method="log")
        r_sc = pyot.sinkhorn(cost, a, b, eps=0.02, tol=tol, method="scaling")
        assert r_log.converged
        assert r_sc.converged
        atol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(
            r_sc.plan, r_log.plan, rtol=1e-6 if atol < 1e-9 else 1e-3, atol=atol
        )
        np.testing.assert_allclose(r_sc.value, r_log.value, rtol=1e-7 if atol < 1e-9 else 1e-4)

    @pytest.mark.parametrize("eps_scaling", [None, False, 0.5, 0.9])
    def test_eps_scaling_does_not_change_the_solution(self, rng, ref, eps_scaling):
        cost, a, b = problem(rng, 20, 25)
        res = pyot.sinkhorn(
            cost, a, b, eps=0.01, tol=1e-10, eps_scaling=eps_scaling, max_iter=100_000
        )
        check_result(res, cost, a, b, eps=0.01, tol=1e-10, ref=ref)
        assert res.eps == 0.01  # the target eps, not the first stage's
        _, _, plan_ref = pot_sinkhorn(cost, a, b, 0.01)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-5, atol=1e-11)


class TestExactLimit:
    def test_eps_to_zero_approaches_exact_ot(self, rng, ref):
        n, m = 8, 10
        cost = rng.integers(0, 100, size=(n, m)).astype(np.float64) / 100.0
        a = weights(rng, n)
        b = weights(rng, m)
        exact, plan_exact = ref.exact_ot(cost, a, b)
        kl_exact = ref.kl(plan_exact, np.outer(a, b))
        objectives = []
        for eps in [1e-1, 1e-2, 1e-3]:
            tol = 1e-9
            res = pyot.sinkhorn(cost, a, b, eps=eps, tol=tol, max_iter=200_000)
            check_result(res, cost, a, b, eps=eps, tol=tol, ref=ref)
            slack = 2 * tol * cost.max() + 1e-12
            # exact <= <P_eps, C> <= objective <= <P*, C> + eps KL(P* | a b^T)
            assert res.value >= exact - slack
            assert res.value <= res.objective + slack
            assert res.objective <= exact + eps * kl_exact + slack
            objectives.append(res.objective)
        # OT_eps is non-decreasing in eps (its derivative is KL >= 0).
        assert objectives[0] >= objectives[1] - 1e-9
        assert objectives[1] >= objectives[2] - 1e-9
        assert abs(res.value - exact) <= 1e-3 * math.log(min(n, m)) + 1e-8

    def test_permutation_limit(self, rng):
        """Uniform weights, n = m: at small eps the plan is the optimal permutation / n."""
        from scipy.optimize import linear_sum_assignment

        n = 12
        x = rng.standard_normal((n, 2))
        y = rng.standard_normal((n, 2))
        cost = cdist(x, y, "sqeuclidean")
        cost /= cost.max()
        rows, cols = linear_sum_assignment(cost)
        exact = cost[rows, cols].sum() / n
        res = pyot.sinkhorn(cost, eps=1e-3, tol=1e-9, max_iter=200_000)
        assert res.converged
        assert res.value == pytest.approx(exact, abs=1e-3 * math.log(n) + 1e-8)
        assert res.value >= exact - 1e-8


class TestStability:
    def test_small_eps_float64(self, rng, ref):
        cost, a, b = problem(rng, 60, 67)
        eps = 1e-4
        res = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-6, max_iter=200_000)
        check_result(res, cost, a, b, eps=eps, tol=1e-6, ref=ref)
        exact, _ = ref.exact_ot(cost, a, b)
        assert res.value >= exact - 2e-6
        assert res.value <= exact + eps * math.log(60) + 2e-6

    @pytest.mark.parametrize("method", ["auto", "log", "scaling"])
    def test_small_eps_float32(self, rng, ref, method):
        """range(C)/eps = 1000 in float32: exp(-C/eps) underflows (exp(-87) is the limit), so a
        naive scaling-domain Sinkhorn breaks; the log domain / stabilised scaling must not."""
        cost, a, b = problem(rng, 50, 60, dtype=np.float32)
        eps = 1e-3
        res = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-4, max_iter=200_000, method=method)
        check_result(res, cost, a, b, eps=eps, tol=1e-4, ref=ref, dtype=np.float32)
        exact, _ = ref.exact_ot(cost.astype(np.float64), a.astype(np.float64), b.astype(np.float64))
        assert abs(res.value - exact) <= eps * math.log(50) + 1e-3

    def test_small_eps_float32_large_cost_scale(self, rng, ref):
        """Cost in the thousands and eps = 1 in float32: exp(C/eps) overflows float32."""
        cost, a, b = problem(rng, 40, 30, dtype=np.float32)
        cost = (cost * np.float32(2000.0)).astype(np.float32)
        res = pyot.sinkhorn(cost, a, b, eps=2.0, tol=1e-4, max_iter=200_000)
        check_result(res, cost, a, b, eps=2.0, tol=1e-4, ref=ref, dtype=np.float32)

    def test_float32_default_tol_moderate_eps(self, rng, ref):
        cost, a, b = problem(rng, 40, 30, dtype=np.float32)
        res = pyot.sinkhorn(cost, a, b, eps=0.1)
        check_result(res, cost, a, b, eps=0.1, tol=1e-6, ref=ref, dtype=np.float32)

    def test_float32_close_to_float64(self, rng):
        cost, a, b = problem(rng, 45, 35)
        r64 = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-8)
        r32 = pyot.sinkhorn(
            cost.astype(np.float32), a.astype(np.float32), b.astype(np.float32), eps=0.05, tol=1e-6
        )
        assert r32.plan.dtype == np.float32
        assert r32.converged
        assert np.abs(r32.plan.astype(np.float64) - r64.plan).sum() <= 1e-4
        np.testing.assert_allclose(r32.value, r64.value, rtol=1e-4)
        np.testing.assert_allclose(r32.objective, r64.objective, rtol=1e-4, atol=1e-6)
        assert_potentials_close(r32.f, r32.g, r64.f, r64.g, atol=1e-4)

    def test_float32_weights_not_exactly_normalised(self, rng):
        """float32 weights normalised in float32 do not sum to exactly 1: still accepted."""
        cost, _, _ = problem(rng, 37, 53, dtype=np.float32)
        a = rng.random(37).astype(np.float32) + np.float32(0.1)
        b = rng.random(53).astype(np.float32) + np.float32(0.1)
        a /= a.sum()
        b /= b.sum()
        res = pyot.sinkhorn(cost, a, b, eps=0.1, tol=1e-5)
        assert res.converged

    def test_zero_weights(self, rng, ref, dtype):
        cost, a, b = problem(rng, 20, 15, zeros_a=4, zeros_b=3, dtype=dtype)
        a[0] = 0
        b[-1] = 0
        a /= a.sum()
        b /= b.sum()
        tol = 1e-10 if dtype == np.float64 else 1e-5
        res = pyot.sinkhorn(cost, a, b, eps=0.05, tol=tol)
        check_result(res, cost, a, b, eps=0.05, tol=tol, ref=ref, dtype=dtype)
        np.testing.assert_array_equal(res.plan[a == 0, :], 0.0)
        np.testing.assert_array_equal(res.plan[:, b == 0], 0.0)
        assert np.isfinite(res.value)
        assert np.isfinite(res.objective)
        # Same as the problem with the zero-weight points removed.
        ia, ib = a > 0, b > 0
        red = pyot.sinkhorn(cost[ia][:, ib], a[ia], b[ib], eps=0.05, tol=tol)
        rtol, atol = (1e-7, 1e-13) if dtype == np.float64 else (1e-3, 1e-6)
        np.testing.assert_allclose(res.plan[np.ix_(ia, ib)], red.plan, rtol=rtol, atol=atol)
        np.testing.assert_allclose(res.value, red.value, rtol=rtol)
        assert_potentials_close(
            res.f[ia], res.g[ib], red.f, red.g, atol=1e-8 if dtype == np.float64 else 1e-4
        )

    def test_zero_weights_point_cloud(self, rng, force_online, dtype):
        x, y = clouds(rng, 25, 30, dtype=dtype)
        a = weights(rng, 25, zeros=5).astype(dtype)
        b = weights(rng, 30, zeros=6).astype(dtype)
        res = pyot.sinkhorn(pyot.PointCloud(x, y), a, b, eps=0.5, tol=1e-5)
        assert res.converged
        assert np.isfinite(res.f).all()
        assert np.isfinite(res.g).all()
        assert np.isfinite(res.plan).all()
        np.testing.assert_array_equal(res.plan[a == 0, :], 0.0)

    def test_degenerate_sizes(self, ref):
        one = pyot.sinkhorn(np.array([[0.3]]), eps=0.1)
        np.testing.assert_allclose(one.plan, [[1.0]], rtol=1e-12)
        assert one.value == pytest.approx(0.3)
        row = pyot.sinkhorn(np.array([[0.0, 1.0, 2.0]]), None, [0.2, 0.3, 0.5], eps=0.1)
        np.testing.assert_allclose(row.plan, [[0.2, 0.3, 0.5]], rtol=1e-10)
        col = pyot.sinkhorn(np.array([[0.0], [1.0]]), [0.25, 0.75], None, eps=0.1)
        np.testing.assert_allclose(col.plan, [[0.25], [0.75]], rtol=1e-10)

    @pytest.mark.parametrize("method", ["auto", "log", "scaling"])
    @pytest.mark.parametrize("shift", [-10.0, 25.0])
    def test_cost_offset(self, rng, ref, method, shift):
        """Costs may be negative or far from 0 (e.g. bilinear -<x, y> costs): C + c has the
        same plan for every method, and value / objective move by c * mass."""
        cost, a, b = problem(rng, 25, 20)
        eps = 0.01  # |c| / eps = 1000 or 2500: exp(|c| / eps) overflows float64
        base = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-9, max_iter=100_000, method=method)
        res = pyot.sinkhorn(cost + shift, a, b, eps=eps, tol=1e-9, max_iter=100_000, method=method)
        check_result(res, cost + shift, a, b, eps=eps, tol=1e-9, ref=ref)
        np.testing.assert_allclose(res.plan, base.plan, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(res.value, base.value + shift, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(res.objective, base.objective + shift, rtol=1e-9, atol=1e-9)

    def test_negative_cost_tiny_problem(self):
        cost = np.array([[-1.0, -1.5], [-1.2, -1.0]])
        for method in ("auto", "log", "scaling"):
            res = pyot.sinkhorn(cost, eps=1e-3, method=method)
            assert res.converged
            np.testing.assert_allclose(res.value, -1.35, rtol=1e-6)
        res = pyot.sinkhorn(np.array([[-2.0]]), [2.0], [2.0], eps=0.0025)
        np.testing.assert_allclose(res.plan, [[2.0]], rtol=1e-12)
        assert res.value == pytest.approx(-4.0)

    def test_constant_cost_gives_product_plan(self, rng):
        a = weights(rng, 6)
        b = weights(rng, 9)
        res = pyot.sinkhorn(np.full((6, 9), 2.5), a, b, eps=0.01)
        np.testing.assert_allclose(res.plan, np.outer(a, b), rtol=1e-10, atol=1e-15)
        assert res.value == pytest.approx(2.5)


class TestResult:
    def test_frozen(self, rng):
        cost, a, b = problem(rng, 5, 4)
        res = pyot.sinkhorn(cost, a, b, eps=0.1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            res.value = 0.0
        with pytest.raises(dataclasses.FrozenInstanceError):
            res.f = None

    @pytest.mark.parametrize("eps_scaling", [None, 0.5, False])
    @pytest.mark.parametrize("method", ["auto", "log", "scaling"])
    def test_not_converged_warns(self, rng, ref, eps_scaling, method):
        """Stopped early (inside an eps-scaling stage too): a warning, converged=False, and a
        result that is still self-consistent: the plan is built from the returned potentials
        at the returned eps, and value / marginal_error describe that plan."""
        cost, a, b = problem(rng, 30, 30)
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.sinkhorn(
                cost, a, b, eps=1e-3, max_iter=3, eps_scaling=eps_scaling, method=method
            )
        assert not res.converged
        assert res.n_iter <= 3
        assert res.marginal_error > 1e-6
        assert res.eps == 1e-3
        assert np.isfinite(res.f).all()
        assert np.isfinite(res.g).all()
        assert np.isfinite(res.plan).all()
        assert np.isfinite(res.value)
        err = ref.marginal_error(res.plan, a, b)
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=1e-14)
        np.testing.assert_allclose(res.value, float(np.sum(res.plan * cost)), rtol=1e-10)
        rebuilt = np.outer(a, b) * np.exp((res.f[:, None] + res.g[None, :] - cost) / res.eps)
        np.testing.assert_allclose(res.plan, rebuilt, rtol=1e-9, atol=1e-15)

    def test_converged_does_not_warn(self, rng):
        cost, a, b = problem(rng, 10, 10)
        # filterwarnings = error: any warning here fails the test.
        res = pyot.sinkhorn(cost, a, b, eps=0.1)
        assert res.converged
        assert res.marginal_error <= 1e-6

    def test_n_iter_respects_max_iter(self, rng):
        # method="log": plain Sinkhorn cannot reach 1e-14 in 50 iterations at this eps (the
        # Newton phase of method="auto" can, in 29 on this problem).
        cost, a, b = problem(rng, 30, 30)
        for max_iter in (1, 7, 50):
            with pytest.warns(pyot.ConvergenceWarning):
                res = pyot.sinkhorn(
                    cost, a, b, eps=1e-3, tol=1e-14, max_iter=max_iter, method="log"
                )
            assert 1 <= res.n_iter <= max_iter


class TestWarmStart:
    def test_warm_start_from_solution(self, rng):
        cost, a, b = problem(rng, 40, 30)
        cold = pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-9, eps_scaling=False)
        warm = pyot.sinkhorn(
            cost, a, b, eps=0.01, tol=1e-9, eps_scaling=False, init=(cold.f, cold.g)
        )
        assert warm.converged
        assert warm.n_iter < cold.n_iter
        assert warm.n_iter <= 5
        np.testing.assert_allclose(warm.plan, cold.plan, rtol=1e-6, atol=1e-12)

    @pytest.mark.parametrize("method", ["auto", "log"])
    @pytest.mark.parametrize("eps_scaling", [None, False])
    def test_warm_start_on_perturbed_problem(self, rng, eps_scaling, method):
        cost, a, b = problem(rng, 40, 30)
        options = dict(eps=0.005, tol=1e-8, eps_scaling=eps_scaling, max_iter=100_000)
        first = pyot.sinkhorn(cost, a, b, method=method, **options)
        cost2 = cost + 0.05 * 0.005 * rng.random(cost.shape)  # a perturbation << eps
        cold = pyot.sinkhorn(cost2, a, b, method=method, **options)
        warm = pyot.sinkhorn(cost2, a, b, method=method, init=(first.f, first.g), **options)
        assert cold.converged
        assert warm.converged
        if method == "log":  # plain Sinkhorn needs many iterations here (Newton does not)
            assert cold.n_iter >= 20
        assert warm.n_iter < cold.n_iter
        np.testing.assert_allclose(warm.plan, cold.plan, rtol=1e-4, atol=1e-9)

    def test_warm_start_float32(self, rng):
        cost, a, b = problem(rng, 20, 30, dtype=np.float32)
        cold = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-5, eps_scaling=False)
        warm = pyot.sinkhorn(
            cost, a, b, eps=0.02, tol=1e-5, eps_scaling=False, init=(cold.f, cold.g)
        )
        assert warm.n_iter < cold.n_iter

    def test_init_is_not_modified(self, rng):
        cost, a, b = problem(rng, 10, 12)
        f0 = rng.standard_normal(10) * 0.01
        g0 = rng.standard_normal(12) * 0.01
        f_copy, g_copy = f0.copy(), g0.copy()
        pyot.sinkhorn(cost, a, b, eps=0.1, init=(f0, g0))
        np.testing.assert_array_equal(f0, f_copy)
        np.testing.assert_array_equal(g0, g_copy)


class TestBatch:
    @pytest.mark.parametrize("uniform", [False, True])
    def test_batch_equals_loop(self, rng, dtype, uniform):
        bsz, n, m = 3, 15, 22
        costs = np.stack([problem(rng, n, m)[0] for _ in range(bsz)]).astype(dtype)
        costs[1] *= 2.0  # different scales per item
        if uniform:
            a_b = b_b = None
        else:
            a_b = np.stack([weights(rng, n) for _ in range(bsz)]).astype(dtype)
            b_b = np.stack([weights(rng, m, zeros=2) for _ in range(bsz)]).astype(dtype)
        tol = 1e-9 if dtype == np.float64 else 1e-5
        res = pyot.sinkhorn(costs, a_b, b_b, eps=0.05, tol=tol)
        assert isinstance(res, pyot.SinkhornResult)
        assert res.value.shape == (bsz,)
        assert res.objective.shape == (bsz,)
        assert res.f.shape == (bsz, n)
        assert res.g.shape == (bsz, m)
        assert res.plan.shape == (bsz, n, m)
        assert res.n_iter.shape == (bsz,)
        assert res.marginal_error.shape == (bsz,)
        assert res.converged.shape == (bsz,)
        assert res.converged.dtype == np.bool_
        assert res.converged.all()
        assert res.plan.dtype == dtype
        assert res.f.dtype == dtype
        rtol = 1e-10 if dtype == np.float64 else 1e-5
        for k in range(bsz):
            single = pyot.sinkhorn(
                costs[k],
                None if uniform else a_b[k],
                None if uniform else b_b[k],
                eps=0.05,
                tol=tol,
            )
            np.testing.assert_allclose(res.plan[k], single.plan, rtol=rtol, atol=rtol * 1e-3)
            np.testing.assert_allclose(res.f[k], single.f, rtol=rtol, atol=rtol * 1e-2)
            np.testing.assert_allclose(res.g[k], single.g, rtol=rtol, atol=rtol * 1e-2)
            np.testing.assert_allclose(res.value[k], single.value, rtol=rtol)
            np.testing.assert_allclose(
                res.objective[k], single.objective, rtol=rtol, atol=rtol * 1e-2
            )
            np.testing.assert_allclose(
                res.marginal_error[k], single.marginal_error, rtol=1e-6, atol=1e-15
            )
            assert res.n_iter[k] == single.n_iter
            assert bool(res.converged[k]) == bool(single.converged)

    def test_batch_non_convergence(self, rng):
        costs = np.stack([problem(rng, 10, 10)[0] for _ in range(2)])
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.sinkhorn(costs, eps=1e-3, max_iter=2)
        assert res.converged.shape == (2,)
        assert not res.converged.any()

    def test_batch_shape_errors(self, rng, ref):
        costs = np.stack([problem(rng, 5, 6)[0] for _ in range(3)])
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn(costs, np.full((2, 5), 0.2), None, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn(costs, np.full((3, 6), 1 / 6), None, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("b")):
            pyot.sinkhorn(costs, None, np.full((3, 5), 0.2), eps=0.1)



def _assert_online_matches_dense(r_online, r_dense, dense, a, b, eps, tol, ref, dtype):
    """The online solve checked on the dense cost and against the dense solve."""
    if dtype == np.float64:
        check_result(r_online, dense, a, b, eps=eps, tol=tol, ref=ref, dtype=dtype)
    else:  # the dense euclidean and cosine costs are direct sums: float32 rounding apart
        assert r_online.converged
        assert r_online.marginal_error <= tol
    rtol, atol = (1e-7, 1e-13) if dtype == np.float64 else (1e-3, 1e-6)
    np.testing.assert_allclose(r_online.plan, r_dense.plan, rtol=rtol, atol=atol)
    np.testing.assert_allclose(r_online.value, r_dense.value, rtol=rtol)
    np.testing.assert_allclose(r_online.objective, r_dense.objective, rtol=rtol, atol=atol)


class TestPointCloud:
    @pytest.mark.parametrize(
        "metric", ["sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine"]
    )
    def test_online_equals_dense(self, rng, ref, force_online, dtype, metric):
        x, y = clouds(rng, 40, 33, d=3, dtype=dtype)
        a = weights(rng, 40).astype(dtype)
        b = weights(rng, 33).astype(dtype)
        kw = {"p": 1.5} if metric == "minkowski" else {}
        pc = pyot.PointCloud(x, y, metric, **kw)
        dense = pyot.cost_matrix(x, y, metric, **kw)
        eps = 0.05 * float(dense.max())
        tol = 1e-10 if dtype == np.float64 else 1e-5
        r_dense = pyot.sinkhorn(dense, a, b, eps=eps, tol=tol)
        r_online = pyot.sinkhorn(pc, a, b, eps=eps, tol=tol)
        _assert_online_matches_dense(r_online, r_dense, dense, a, b, eps, tol, ref, dtype)
        assert_potentials_close(
            r_online.f,
            r_online.g,
            r_dense.f,
            r_dense.g,
            atol=1e-9 if dtype == np.float64 else 1e-4 * eps,
        )

    @pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
    def test_online_equals_dense_matrix_product_form(self, rng, ref, force_online, dtype, metric):
        # d >= 16: the online tiles are built as ||x||^2 + ||y||^2 - 2 <x, y> on centred clouds
        # (clouds far from the origin here) by the dense cost matrix's kernel; 300 columns span
        # two column tiles, 70 rows several row blocks.
        x, y = clouds(rng, 70, 300, d=64, dtype=dtype)
        x, y = x + dtype(3.0), y + dtype(3.0)
        a = weights(rng, 70).astype(dtype)
        b = weights(rng, 300).astype(dtype)
        pc = pyot.PointCloud(x, y, metric)
        dense = pyot.cost_matrix(x, y, metric)
        exact = cdist(x.astype(np.float64), y.astype(np.float64), metric)
        eps = 0.05 * float(exact.max())
        tol = 1e-10 if dtype == np.float64 else 1e-5
        r_dense = pyot.sinkhorn(dense, a, b, eps=eps, tol=tol)
        r_online = pyot.sinkhorn(pc, a, b, eps=eps, tol=tol)
        _assert_online_matches_dense(r_online, r_dense, dense, a, b, eps, tol, ref, dtype)
        # ... and the float64 exact costs' solution, to float32's accuracy on the costs.
        r_exact = pyot.sinkhorn(exact, a.astype(np.float64), b.astype(np.float64), eps=eps, tol=tol)
        close = 1e-9 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(r_online.value, r_exact.value, rtol=close)

    def test_small_point_cloud_dense_path(self, rng, ref):
        """Below _DENSE_LIMIT the PointCloud is materialised: same answer as a dense cost."""
        mod = importlib.import_module("pyot.sinkhorn")
        x, y = clouds(rng, 12, 9)
        assert 12 * 9 <= mod._DENSE_LIMIT
        a, b = weights(rng, 12), weights(rng, 9)
        r_pc = pyot.sinkhorn(pyot.PointCloud(x, y), a, b, eps=0.3, tol=1e-10)
        r_dense = pyot.sinkhorn(cdist(x, y, "sqeuclidean"), a, b, eps=0.3, tol=1e-10)
        np.testing.assert_allclose(r_pc.plan, r_dense.plan, rtol=1e-8, atol=1e-14)

    def test_online_far_from_origin(self, rng, force_online):
        """Online costs for clouds at 1e4 from the origin equal the dense (centered) ones."""
        x, y = clouds(rng, 30, 25, d=3)
        x += 1e4
        y += 1e4
        a, b = weights(rng, 30), weights(rng, 25)
        dense = cdist(x - 1e4, y - 1e4, "sqeuclidean")  # exact: the shift is exact here
        r_on = pyot.sinkhorn(pyot.PointCloud(x, y), a, b, eps=0.1, tol=1e-10)
        r_de = pyot.sinkhorn(dense, a, b, eps=0.1, tol=1e-10)
        np.testing.assert_allclose(r_on.plan, r_de.plan, rtol=1e-6, atol=1e-13)
        np.testing.assert_allclose(r_on.value, r_de.value, rtol=1e-9)

    def test_scaling_method_rejected(self, rng, ref):
        """method='scaling' is for dense costs: a PointCloud is rejected whatever its size
        (the answer must not depend on whether it happens to be below _DENSE_LIMIT)."""
        x, y = clouds(rng, 5, 6)
        with pytest.raises(ValueError, match=ref.arg("method")):
            pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.1, method="scaling")

    def test_scaling_method_rejected_online(self, rng, ref, force_online):
        x, y = clouds(rng, 5, 6)
        with pytest.raises(ValueError, match=ref.arg("method")):
            pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.1, method="scaling")

    @pytest.mark.parametrize("online", [False, True])
    def test_point_cloud_weight_errors(self, rng, ref, monkeypatch, online):
        if online:
            monkeypatch.setattr(importlib.import_module("pyot.sinkhorn"), "_DENSE_LIMIT", 0)
        pc = pyot.PointCloud(*clouds(rng, 5, 6))
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn(pc, np.full(4, 0.25), None, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("b")):
            pyot.sinkhorn(pc, None, np.full(5, 0.2), eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn(pc, np.full((2, 5), 0.1), None, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn(pc, -np.full(5, 0.2), None, eps=0.1)
        with pytest.raises(ValueError, match="same total mass"):
            pyot.sinkhorn(pc, np.full(5, 0.4), None, eps=0.1)

    def test_plan_is_stable_on_repeated_access(self, rng, force_online):
        x, y = clouds(rng, 20, 15)
        res = pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.5)
        p1 = res.plan
        p2 = res.plan
        assert p1.shape == (20, 15)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_allclose(p1.sum(), 1.0, rtol=1e-6)

    def test_integer_point_cloud(self, rng, force_online):
        x = rng.integers(0, 5, size=(10, 2))
        y = rng.integers(0, 5, size=(12, 2))
        r_int = pyot.sinkhorn(pyot.PointCloud(x, y), eps=0.5, tol=1e-10)
        r_f = pyot.sinkhorn(pyot.PointCloud(x.astype(float), y.astype(float)), eps=0.5, tol=1e-10)
        assert r_int.f.dtype == np.float64
        np.testing.assert_allclose(r_int.plan, r_f.plan, rtol=1e-12, atol=1e-16)


class TestThreads:
    @pytest.mark.parametrize("kind", ["dense", "online", "online-gemm", "batch"])
    def test_thread_count_independence(self, rng, monkeypatch, kind):
        if kind.startswith("online"):
            monkeypatch.setattr(importlib.import_module("pyot.sinkhorn"), "_DENSE_LIMIT", 0)
        n, m = 800, 700  # above the work per thread below which solvers stay on one thread
        x, y = clouds(rng, n, m, d=20 if kind == "online-gemm" else 3, unit=True)
        a, b = weights(rng, n), weights(rng, m)
        if kind.startswith("online"):
            cost = pyot.PointCloud(x, y)
        elif kind == "dense":
            cost = cdist(x, y, "sqeuclidean")
        else:
            cost = np.stack([cdist(x, y, "sqeuclidean"), cdist(x, y, "cityblock")])
            a = np.stack([a, a])
            b = np.stack([b, b])
        results = [pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-8, threads=t) for t in (1, 2)]
        r1, r2 = results
        np.testing.assert_array_equal(r1.n_iter, r2.n_iter)
        np.testing.assert_allclose(r2.f, r1.f, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r2.g, r1.g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r2.value, r1.value, rtol=1e-12)
        np.testing.assert_allclose(r2.objective, r1.objective, rtol=1e-12)
        np.testing.assert_allclose(r2.plan, r1.plan, rtol=1e-12, atol=1e-18)
        r0 = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-8)  # threads=None: all cores
        np.testing.assert_allclose(r0.f, r1.f, rtol=1e-12, atol=1e-14)

    def test_two_python_threads_at_once(self, rng, monkeypatch):
        monkeypatch.setattr(importlib.import_module("pyot.sinkhorn"), "_DENSE_LIMIT", 0)
        x, y = clouds(rng, 150, 160, d=3, unit=True)
        a, b = weights(rng, 150), weights(rng, 160)
        dense = cdist(x, y, "sqeuclidean")
        jobs = [
            lambda: pyot.sinkhorn(dense, a, b, eps=0.02, tol=1e-8),
            lambda: pyot.sinkhorn(pyot.PointCloud(x, y), a, b, eps=0.02, tol=1e-8),
            lambda: pyot.sinkhorn(dense, a, b, eps=0.02, tol=1e-8),
            lambda: pyot.sinkhorn(dense.T.copy(), b, a, eps=0.03, tol=1e-8, threads=1),
        ]
        serial = [job() for job in jobs]
        for pair in ([0, 1], [2, 3], [0, 2]):
            barrier = threading.Barrier(len(pair))
            out = [None] * len(pair)
            errors = []

            def worker(slot, job, barrier=barrier, out=out, errors=errors):
                try:
                    barrier.wait()
                    out[slot] = job()
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [
                threading.Thread(target=worker, args=(s, jobs[j])) for s, j in enumerate(pair)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            for slot, j in enumerate(pair):
                np.testing.assert_allclose(out[slot].f, serial[j].f, rtol=1e-12, atol=1e-14)
                np.testing.assert_allclose(out[slot].g, serial[j].g, rtol=1e-12, atol=1e-14)
                np.testing.assert_allclose(out[slot].plan, serial[j].plan, rtol=1e-12, atol=1e-18)
                assert out[slot].n_iter == serial[j].n_iter


def test_gil_is_released_during_the_solve(rng):
    """A pure-Python thread keeps running while the C++ core iterates (GIL released)."""
    import time

    x, y = clouds(rng, 700, 700, d=3, unit=True)
    cost = cdist(x, y, "sqeuclidean")
    stop = threading.Event()
    ticks = [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)  # releases the GIL between ticks: the solver is not slowed

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)
        start_ticks = ticks[0]
        t0 = time.perf_counter()
        res = pyot.sinkhorn(cost, eps=0.002, tol=1e-9, max_iter=100_000, threads=1, method="log")
        elapsed = time.perf_counter() - t0
        during = ticks[0] - start_ticks
    finally:
        stop.set()
        spinner.join()
    assert res.converged
    if elapsed < 0.1:
        pytest.skip(f"solve too fast ({elapsed:.3f} s) to observe the GIL")
    # Holding the GIL for the whole call would freeze the spinner (one tick at most).
    assert during >= max(5, int(10 * elapsed)), (during, elapsed)


class TestLayoutAndDtypes:
    def test_fortran_and_strided_inputs(self, rng, dtype):
        cost, a, b = problem(rng, 20, 16, dtype=dtype)
        base = pyot.sinkhorn(cost, a, b, eps=0.05)
        big = np.zeros((40, 48), dtype=dtype)
        big[::2, ::3] = cost
        strided = big[::2, ::3]
        a_big = np.zeros(60, dtype=dtype)
        a_big[::3] = a
        b_big = np.zeros(32, dtype=dtype)
        b_big[::2] = b
        for c_in, a_in, b_in in [
            (np.asfortranarray(cost), a, b),
            (strided, a_big[::3], b_big[::2]),
            (cost.T.copy().T, a[::-1].copy()[::-1], b),
        ]:
            res = pyot.sinkhorn(c_in, a_in, b_in, eps=0.05)
            rtol = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(res.plan, base.plan, rtol=rtol, atol=rtol * 1e-3)
            np.testing.assert_allclose(res.f, base.f, rtol=rtol, atol=rtol * 1e-2)
            assert res.n_iter == base.n_iter

    def test_inputs_not_modified(self, rng, dtype):
        cost, a, b = problem(rng, 12, 10, dtype=dtype)
        copies = [cost.copy(), a.copy(), b.copy()]
        pyot.sinkhorn(cost, a, b, eps=0.05)
        pyot.sinkhorn(cost, a, b, eps=0.05, method="scaling")
        pyot.sinkhorn(cost, a, b, eps=0.05, method="log", eps_scaling=0.5)
        for arr, copy in zip([cost, a, b], copies, strict=True):
            np.testing.assert_array_equal(arr, copy)

    def test_read_only_inputs(self, rng):
        cost, a, b = problem(rng, 12, 10)
        base = pyot.sinkhorn(cost, a, b, eps=0.05)
        for arr in (cost, a, b):
            arr.flags.writeable = False
        res = pyot.sinkhorn(cost, a, b, eps=0.05)
        np.testing.assert_array_equal(res.plan, base.plan)

    def test_integer_inputs_equal_float64(self, rng):
        cost_int = rng.integers(0, 10, size=(8, 6))
        a_int = np.array([1, 2, 3, 1, 1, 2, 2, 0])
        b_int = np.array([2, 2, 2, 2, 2, 2])
        res_int = pyot.sinkhorn(cost_int, a_int, b_int, eps=0.5, tol=1e-9)
        res_f = pyot.sinkhorn(
            cost_int.astype(np.float64),
            a_int.astype(np.float64),
            b_int.astype(np.float64),
            eps=0.5,
            tol=1e-9,
        )
        assert res_int.plan.dtype == np.float64
        assert res_int.f.dtype == np.float64
        np.testing.assert_array_equal(res_int.plan, res_f.plan)
        np.testing.assert_array_equal(res_int.f, res_f.f)
        assert res_int.value == res_f.value

    def test_list_inputs(self):
        res = pyot.sinkhorn([[0, 1], [1, 0]], [0.5, 0.5], [0.5, 0.5], eps=0.1)
        assert res.plan.dtype == np.float64
        np.testing.assert_allclose(res.plan.sum(), 1.0)

    @pytest.mark.parametrize("eps", [np.float64(0.1), np.float32(0.1), 1, np.int64(1)])
    def test_numeric_eps_types(self, rng, eps):
        cost, a, b = problem(rng, 6, 5)
        res = pyot.sinkhorn(cost, a, b, eps=eps)
        assert res.converged
        assert res.eps == pytest.approx(float(eps))


# ------------------------------------------------------------------ bad-input battery


_cost, _a, _b = good_problem()

BAD_SINKHORN_INPUTS = [
    *BAD_COST_AND_WEIGHTS,
    ("eps-zero", (_cost, _a, _b), {"eps": 0.0}, ValueError, "eps"),
    ("eps-negative", (_cost, _a, _b), {"eps": -1.0}, ValueError, "eps"),
    ("eps-nan", (_cost, _a, _b), {"eps": float("nan")}, ValueError, "eps"),
    ("eps-inf", (_cost, _a, _b), {"eps": float("inf")}, ValueError, "eps"),
    ("eps-str", (_cost, _a, _b), {"eps": "0.1"}, TypeError, "eps"),
    ("eps-array", (_cost, _a, _b), {"eps": np.array([0.1, 0.2])}, (TypeError, ValueError), "eps"),
    ("tol-negative", (_cost, _a, _b), {"tol": -1e-6}, ValueError, "tol"),
    ("tol-nan", (_cost, _a, _b), {"tol": float("nan")}, ValueError, "tol"),
    ("max_iter-negative", (_cost, _a, _b), {"max_iter": -1}, ValueError, "max_iter"),
    ("max_iter-float", (_cost, _a, _b), {"max_iter": 10.5}, (TypeError, ValueError), "max_iter"),
    ("method-unknown", (_cost, _a, _b), {"method": "newton!"}, ValueError, "method"),
    ("eps_scaling-one", (_cost, _a, _b), {"eps_scaling": 1.0}, ValueError, "eps_scaling"),
    ("eps_scaling-zero", (_cost, _a, _b), {"eps_scaling": 0.0}, ValueError, "eps_scaling"),
    ("eps_scaling-neg", (_cost, _a, _b), {"eps_scaling": -0.5}, ValueError, "eps_scaling"),
    ("eps_scaling-big", (_cost, _a, _b), {"eps_scaling": 1.5}, ValueError, "eps_scaling"),
    (
        "eps_scaling-true",
        (_cost, _a, _b),
        {"eps_scaling": True},
        (TypeError, ValueError),
        "eps_scaling",
    ),
    (
        "eps_scaling-str",
        (_cost, _a, _b),
        {"eps_scaling": "auto"},
        (TypeError, ValueError),
        "eps_scaling",
    ),
    ("eps_scaling-nan", (_cost, _a, _b), {"eps_scaling": float("nan")}, ValueError, "eps_scaling"),
    ("threads-zero", (_cost, _a, _b), {"threads": 0}, ValueError, "threads"),
    ("threads-negative", (_cost, _a, _b), {"threads": -2}, ValueError, "threads"),
    ("threads-float", (_cost, _a, _b), {"threads": 1.5}, (TypeError, ValueError), "threads"),
    ("threads-str", (_cost, _a, _b), {"threads": "2"}, (TypeError, ValueError), "threads"),
    ("init-wrong-shape", (_cost, _a, _b), {"init": (np.zeros(5), np.zeros(5))}, ValueError, "init"),
    ("init-not-pair", (_cost, _a, _b), {"init": np.zeros(4)}, (TypeError, ValueError), "init"),
    (
        "init-nan",
        (_cost, _a, _b),
        {"init": (with_entry(np.zeros(4), 0, np.nan), np.zeros(5))},
        ValueError,
        "init",
    ),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "name"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_SINKHORN_INPUTS],
)
def test_sinkhorn_bad_inputs(ref, args, kwargs, exc, name):
    kwargs = {"eps": 0.1, **kwargs}
    copies = [None if x is None else np.array(x, copy=True) for x in args]
    with pytest.raises(exc, match=ref.arg(name)):
        pyot.sinkhorn(*args, **kwargs)
    for x, c in zip(args, copies, strict=True):  # never modified, even on error
        if x is not None and c.dtype.kind == "f":
            np.testing.assert_array_equal(x, c)


def test_eps_message_format():
    cost, a, b = good_problem()
    with pytest.raises(ValueError, match=r"eps must be a positive finite number, got -1\.0"):
        pyot.sinkhorn(cost, a, b, eps=-1.0)


def test_eps_is_required():
    cost, a, b = good_problem()
    with pytest.raises(TypeError, match="eps"):
        pyot.sinkhorn(cost, a, b)


def test_options_are_keyword_only():
    cost, a, b = good_problem()
    with pytest.raises(TypeError):
        pyot.sinkhorn(cost, a, b, 0.1)


def test_unequal_masses_message():
    cost = np.zeros((2, 2))
    a = np.array([0.5, 0.5])
    b = np.array([0.25, 0.25])
    pattern = r"same total mass.*a sums to 1(\.0*)?\b.*b sums to 0\.50*\b"
    with pytest.raises(ValueError, match=pattern):
        pyot.sinkhorn(cost, a, b, eps=0.1)
    with pytest.raises(ValueError, match=r"a sums to 0\.50*\b.*b sums to 1(\.0*)?\b"):
        pyot.sinkhorn(cost, b, a, eps=0.1)


def test_unequal_masses_batch():
    cost = np.zeros((2, 2, 2))
    a = np.array([[0.5, 0.5], [0.5, 0.5]])
    b = np.array([[0.5, 0.5], [0.25, 0.25]])
    with pytest.raises(ValueError, match="same total mass"):
        pyot.sinkhorn(cost, a, b, eps=0.1)


# ------------------------------------------------------------------- hypothesis tests

weight_elements = st.one_of(st.just(0.0), st.floats(0.01, 1.0))


@st.composite
def balanced_problems(draw, max_size=8):
    n = draw(st.integers(1, max_size))
    m = draw(st.integers(1, max_size))
    cost = draw(arrays(np.float64, (n, m), elements=st.floats(0.0, 10.0)))
    wa = draw(arrays(np.float64, n, elements=weight_elements))
    wb = draw(arrays(np.float64, m, elements=weight_elements))
    if wa.sum() == 0:
        wa[0] = 1.0
    if wb.sum() == 0:
        wb[-1] = 1.0
    mass = draw(st.floats(0.1, 10.0))
    a = mass * wa / wa.sum()
    b = mass * wb / wb.sum()
    eps_rel = draw(st.floats(0.02, 2.0))
    eps = eps_rel * max(float(np.ptp(cost)), 1e-2)
    return cost, a, b, eps


@settings(max_examples=40, deadline=None)
@given(balanced_problems())
def test_hypothesis_random_problems(ref, prob):
    cost, a, b, eps = prob
    mass = a.sum()
    tol = 1e-7 * mass
    res = pyot.sinkhorn(cost, a, b, eps=eps, tol=tol)
    assert res.converged
    assert np.isfinite(res.f).all()
    assert np.isfinite(res.g).all()
    assert np.isfinite(res.plan).all()
    assert np.isfinite(res.value)
    assert np.isfinite(res.objective)
    assert (res.plan >= 0).all()
    assert ref.marginal_error(res.plan, a, b) <= tol * (1 + 1e-6) + 1e-14 * mass
    np.testing.assert_array_equal(res.plan[a == 0], 0.0)
    np.testing.assert_array_equal(res.plan[:, b == 0], 0.0)
    # value lies between exact OT (up to the marginal slack) and the objective.
    exact, _ = ref.exact_ot(cost, a, b)
    slack = 2 * tol * (float(cost.max()) + 1.0) + 1e-9 * mass
    assert res.value >= exact - slack
    assert res.value <= res.objective + slack


@settings(max_examples=30, deadline=None)
@given(balanced_problems(), st.floats(-5.0, 5.0), st.floats(0.1, 10.0))
# Found by hypothesis: a negative cost with -C / eps > 709 overflowed the first error estimate.
@example((np.array([[0.0]]), np.array([2.0]), np.array([2.0]), 0.0025), -2.0, 1.0)
def test_hypothesis_shift_and_scale_invariance(prob, shift, scale):
    cost, a, b, eps = prob
    mass = a.sum()
    tol = 1e-10 * mass
    base = pyot.sinkhorn(cost, a, b, eps=eps, tol=tol)
    shifted = pyot.sinkhorn(cost + shift, a, b, eps=eps, tol=tol)
    scaled = pyot.sinkhorn(scale * cost, a, b, eps=scale * eps, tol=tol)
    for res in (base, shifted, scaled):
        assert res.converged
    np.testing.assert_allclose(shifted.plan, base.plan, rtol=1e-6, atol=1e-9 * mass)
    np.testing.assert_allclose(scaled.plan, base.plan, rtol=1e-6, atol=1e-9 * mass)
    # C + c: f + g gains c (the plan does not change), i.e. f -> f + c up to (f + c', g - c').
    span = float(np.ptp(cost)) + abs(shift) + eps
    df = shifted.f - base.f
    dg = shifted.g - base.g
    np.testing.assert_allclose(df[:, None] + dg[None, :], shift, atol=1e-6 * span)
    np.testing.assert_allclose(
        shifted.value, base.value + shift * mass, rtol=1e-7, atol=1e-7 * span * mass
    )
    np.testing.assert_allclose(
        shifted.objective, base.objective + shift * mass, rtol=1e-7, atol=1e-7 * span * mass
    )
    # (s C, s eps): potentials scale by s (up to the gauge), value and objective by s.
    np.testing.assert_allclose(
        scaled.f[:, None] + scaled.g[None, :],
        scale * (base.f[:, None] + base.g[None, :]),
        atol=1e-6 * scale * span,
    )
    np.testing.assert_allclose(
        scaled.value, scale * base.value, rtol=1e-7, atol=1e-9 * scale * span * mass
    )


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 4),
    st.sampled_from(["float32", "float64", "int64"]),
    st.sampled_from(["C", "F"]),
)
def test_hypothesis_input_handling(n, m, d, dtype_name, order):
    gen = np.random.default_rng(n * 100 + m * 10 + d)
    x = gen.integers(-3, 4, size=(n, d)).astype(dtype_name)
    y = gen.integers(-3, 4, size=(m, d)).astype(dtype_name)
    cost = np.asarray(pyot.cost_matrix(x, y), order=order)
    out_dtype = np.float32 if dtype_name == "float32" else np.float64
    assert cost.dtype == out_dtype
    scale = max(float(cost.max()), 1.0)
    tol = 1e-5 if dtype_name == "float32" else 1e-8
    for c in (cost, pyot.PointCloud(x, y)):
        res = pyot.sinkhorn(c, eps=0.2 * scale, tol=tol)
        assert res.converged
        assert res.f.dtype == out_dtype
        assert res.plan.dtype == out_dtype
        assert np.isfinite(res.plan).all()
        err = np.abs(res.plan.sum(1, dtype=np.float64) - 1 / n).sum()
        err += np.abs(res.plan.sum(0, dtype=np.float64) - 1 / m).sum()
        assert err <= tol + (1e-5 if dtype_name == "float32" else 1e-13)


# ===================================================================== sinkhorn_divergence


def pot_objective(cost, a, b, eps, ref):
    # Self-transport problems converge slowly with plain Sinkhorn (POT's error stalls near
    # 1e-10): a looser stop for them still gives objectives accurate to ~1e-8.
    _, _, plan = pot_sinkhorn(cost, a, b, eps, stop=1e-9)
    return ref.entropic_objective(plan, cost, a, b, eps), plan


class TestSinkhornDivergence:
    def test_against_pot_objectives(self, rng, ref):
        x, y = clouds(rng, 20, 25)
        y += 0.7
        a, b = weights(rng, 20), weights(rng, 25)
        eps = 0.5
        s = pyot.sinkhorn_divergence(x, y, a, b, eps=eps, tol=1e-11, max_iter=100_000)
        assert isinstance(s, float)
        cxy = cdist(x, y, "sqeuclidean")
        cxx = cdist(x, x, "sqeuclidean")
        cyy = cdist(y, y, "sqeuclidean")
        o_ab, p_ab = pot_objective(cxy, a, b, eps, ref)
        o_aa, p_aa = pot_objective(cxx, a, a, eps, ref)
        o_bb, p_bb = pot_objective(cyy, b, b, eps, ref)
        expected = o_ab - 0.5 * (o_aa + o_bb)
        assert expected > 0
        np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-10)
        # POT debiases <P, C> instead of the objective; the two differ by the eps KL terms.
        pot_div = ot.bregman.empirical_sinkhorn_divergence(
            x,
            y,
            eps,
            a,
            b,
            metric="sqeuclidean",
            numIterMax=100_000,
            stopThr=1e-9,
            method="sinkhorn_log",
        )
        kl_terms = ref.kl(p_ab, np.outer(a, b)) - 0.5 * (
            ref.kl(p_aa, np.outer(a, a)) + ref.kl(p_bb, np.outer(b, b))
        )
        np.testing.assert_allclose(s - eps * kl_terms, float(pot_div), rtol=1e-6, atol=1e-10)

    def test_formula_with_potentials(self, rng):
        """S = <a, f - ha> + <b, g - hb>, with ha, hb the symmetric self-potentials."""
        x, y = clouds(rng, 15, 18)
        a, b = weights(rng, 15), weights(rng, 18)
        eps = 0.3
        rab = pyot.sinkhorn(cdist(x, y, "sqeuclidean"), a, b, eps=eps, tol=1e-12)
        raa = pyot.sinkhorn(cdist(x, x, "sqeuclidean"), a, a, eps=eps, tol=1e-12)
        rbb = pyot.sinkhorn(cdist(y, y, "sqeuclidean"), b, b, eps=eps, tol=1e-12)
        ha = 0.5 * (raa.f + raa.g)
        hb = 0.5 * (rbb.f + rbb.g)
        expected = a @ (rab.f - ha) + b @ (rab.g - hb)
        s = pyot.sinkhorn_divergence(x, y, a, b, eps=eps, tol=1e-12)
        np.testing.assert_allclose(s, expected, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(
            s, rab.objective - 0.5 * (raa.objective + rbb.objective), rtol=1e-7, atol=1e-12
        )

    @pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
    def test_zero_for_identical_inputs(self, rng, dtype, metric):
        x, _ = clouds(rng, 25, 1, d=3, dtype=dtype)
        a = weights(rng, 25).astype(dtype)
        tol = 1e-9 if dtype == np.float64 else 1e-5
        s = pyot.sinkhorn_divergence(x, x.copy(), a, a.copy(), eps=0.1, metric=metric, tol=tol)
        assert abs(s) <= (1e-8 if dtype == np.float64 else 1e-4)
        s_uniform = pyot.sinkhorn_divergence(x, x, eps=0.1, metric=metric, tol=tol)
        assert abs(s_uniform) <= (1e-8 if dtype == np.float64 else 1e-4)

    @pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
    def test_nonnegative_and_symmetric(self, rng, metric):
        for shift in (0.0, 0.05, 1.0):
            x, y = clouds(rng, 20, 14, d=2)
            y += shift
            a, b = weights(rng, 20), weights(rng, 14)
            s_xy = pyot.sinkhorn_divergence(x, y, a, b, eps=0.2, metric=metric, tol=1e-10)
            s_yx = pyot.sinkhorn_divergence(y, x, b, a, eps=0.2, metric=metric, tol=1e-10)
            assert s_xy >= -1e-9
            assert s_xy > 0  # different measures
            np.testing.assert_allclose(s_xy, s_yx, rtol=1e-7, atol=1e-11)

    def test_translation_invariance(self, rng):
        x, y = clouds(rng, 12, 17)
        s = pyot.sinkhorn_divergence(x, y, eps=0.5, tol=1e-11)
        t = np.array([30.0, -12.0])
        s_t = pyot.sinkhorn_divergence(x + t, y + t, eps=0.5, tol=1e-11)
        np.testing.assert_allclose(s_t, s, rtol=1e-7, atol=1e-12)

    def test_uniform_default(self, rng):
        x, y = clouds(rng, 10, 8)
        s = pyot.sinkhorn_divergence(x, y, eps=0.5, tol=1e-10)
        s2 = pyot.sinkhorn_divergence(x, y, np.full(10, 0.1), np.full(8, 0.125), eps=0.5, tol=1e-10)
        np.testing.assert_allclose(s, s2, rtol=1e-9)

    def test_float32_close_to_float64(self, rng):
        x, y = clouds(rng, 20, 22)
        s64 = pyot.sinkhorn_divergence(x, y, eps=0.3, tol=1e-9)
        s32 = pyot.sinkhorn_divergence(
            x.astype(np.float32), y.astype(np.float32), eps=0.3, tol=1e-5
        )
        assert isinstance(s32, float)
        np.testing.assert_allclose(s32, s64, rtol=1e-3, atol=1e-4)

    def test_online_equals_dense(self, rng, monkeypatch):
        x, y = clouds(rng, 30, 26, d=3)
        a, b = weights(rng, 30), weights(rng, 26)
        dense = pyot.sinkhorn_divergence(x, y, a, b, eps=0.2, tol=1e-10)
        monkeypatch.setattr(importlib.import_module("pyot.sinkhorn"), "_DENSE_LIMIT", 0)
        online = pyot.sinkhorn_divergence(x, y, a, b, eps=0.2, tol=1e-10)
        np.testing.assert_allclose(online, dense, rtol=1e-7, atol=1e-12)

    def test_threads(self, rng):
        x, y = clouds(rng, 700, 600, d=3)  # large enough for two threads
        s1 = pyot.sinkhorn_divergence(x, y, eps=0.1, threads=1)
        s2 = pyot.sinkhorn_divergence(x, y, eps=0.1, threads=2)
        np.testing.assert_allclose(s2, s1, rtol=1e-12, atol=1e-15)

    def test_zero_weights(self, rng):
        x, y = clouds(rng, 15, 12)
        a, b = weights(rng, 15, zeros=3), weights(rng, 12, zeros=2)
        s = pyot.sinkhorn_divergence(x, y, a, b, eps=0.3)
        s_red = pyot.sinkhorn_divergence(x[a > 0], y[b > 0], a[a > 0], b[b > 0], eps=0.3)
        assert np.isfinite(s)
        np.testing.assert_allclose(s, s_red, rtol=1e-5, atol=1e-9)

    def test_inputs_not_modified(self, rng):
        x, y = clouds(rng, 10, 9)
        a, b = weights(rng, 10), weights(rng, 9)
        copies = [v.copy() for v in (x, y, a, b)]
        pyot.sinkhorn_divergence(x, y, a, b, eps=0.3)
        for v, c in zip((x, y, a, b), copies, strict=True):
            np.testing.assert_array_equal(v, c)

    def test_not_converged_warns(self, rng):
        x, y = clouds(rng, 30, 30)
        with pytest.warns(pyot.ConvergenceWarning):
            s = pyot.sinkhorn_divergence(x, y, eps=1e-3, max_iter=2)
        assert np.isfinite(s)

    @pytest.mark.parametrize("online", [False, True])
    @pytest.mark.parametrize("tol", [1e-4, 1e-9])
    def test_self_transport_float_lanes(self, rng, online, tol):
        """The symmetric solve on a float32 cloud (float lanes for tol >= 1e-6, double lanes
        below): its reported error is the exact one at the returned h, within tol, and h is the
        float64 solution's; value is <P, C> when asked and NaN otherwise."""
        x = rng.random((300, 3)).astype(np.float32)
        a = weights(rng, 300)
        eps = 0.02
        c32 = cdist(x, x, "sqeuclidean").astype(np.float32)  # the dense problem's cost

        def solve(pts, value, t=tol, h=None, max_iter=10_000):
            h = np.zeros(300) if h is None else h.copy()
            opts = dict(eps=eps, tol=t, max_iter=max_iter, threads=2, value=value)
            if online:
                out = _core.sinkhorn_symmetric_online(pts, 0, 2.0, a, h, **opts)
            else:
                cost = c32 if pts.dtype == np.float32 else cdist(pts, pts, "sqeuclidean")
                out = _core.sinkhorn_symmetric_dense(cost, a, h, **opts)
            return [float(v[0]) for v in out], h

        (status, n_iter, err, value, objective), h = solve(x, True)
        assert status == 0
        assert n_iter > 0
        assert err <= tol
        # The reported error is the double-lane one at h (a fresh exact measurement agrees).
        (_, n0, exact_err, _, _), _ = solve(x, False, t=1e-12, h=h, max_iter=0)
        assert n0 == 0
        assert exact_err == err
        if not online:
            c = c32.astype(np.float64)
            plan = a[:, None] * a[None, :] * np.exp((h[:, None] + h[None, :] - c) / eps)
            true_err = 2 * np.abs(plan.sum(1) - a).sum()
            np.testing.assert_allclose(err, true_err, rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(value, (plan * c).sum(), rtol=1e-9)
        (_, _, _, no_value, objective2), h2 = solve(x, False)
        assert np.isnan(no_value)
        np.testing.assert_array_equal(h2, h)
        assert objective2 == objective
        (_, _, err64, _, _), h64 = solve(x.astype(np.float64), False)
        assert err64 <= tol
        np.testing.assert_allclose(h, h64, atol=max(tol, 1e-5) * eps)

    def test_bad_inputs(self, rng, ref):
        x, y = clouds(rng, 5, 6)
        with pytest.raises(ValueError, match=f"{ref.arg('x')}|{ref.arg('y')}"):
            pyot.sinkhorn_divergence(x, np.ones((6, 3)), eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("eps")):
            pyot.sinkhorn_divergence(x, y, eps=0.0)
        with pytest.raises(ValueError, match=ref.arg("eps")):
            pyot.sinkhorn_divergence(x, y, eps=float("nan"))
        with pytest.raises(ValueError, match=ref.arg("a")):
            pyot.sinkhorn_divergence(x, y, np.full(4, 0.25), None, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("b")):
            pyot.sinkhorn_divergence(x, y, None, -np.full(6, 1 / 6), eps=0.1)
        with pytest.raises(ValueError, match=r"a sums to 1(\.0*)?\b.*b sums to 2(\.0*)?\b"):
            pyot.sinkhorn_divergence(x, y, np.full(5, 0.2), np.full(6, 1 / 3), eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("metric")):
            pyot.sinkhorn_divergence(x, y, eps=0.1, metric="hamming")
        with pytest.raises(TypeError, match=ref.arg("x")):
            pyot.sinkhorn_divergence(x.astype(np.complex128), y, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("x")):
            pyot.sinkhorn_divergence(with_entry(x, (0, 0), np.nan), y, eps=0.1)
        with pytest.raises(ValueError, match=ref.arg("y")):
            pyot.sinkhorn_divergence(x, np.ones((0, 2)), eps=0.1)


# ===================================================================== unbalanced_sinkhorn


def pot_unbalanced(cost, a, b, eps, tau_a, tau_b):
    return ot.unbalanced.sinkhorn_unbalanced(
        a,
        b,
        cost,
        reg=eps,
        reg_m=(tau_a, tau_b),
        reg_type="kl",
        numItermax=500_000,
        stopThr=1e-14,
    )


class TestUnbalanced:
    @pytest.mark.parametrize(
        ("tau_a", "tau_b"), [(1.0, 2.0), (0.5, 0.5), (INF, 1.0), (0.3, INF), (10.0, 0.1)]
    )
    def test_against_pot(self, rng, ref, tau_a, tau_b):
        cost, a, _ = problem(rng, 15, 20)
        b = weights(rng, 20, mass=2.0 if not (math.isinf(tau_a) and math.isinf(tau_b)) else 1)
        eps = 0.05
        res = pyot.unbalanced_sinkhorn(
            cost, a, b, eps=eps, reg_marginals=(tau_a, tau_b), tol=1e-11, max_iter=500_000
        )
        assert isinstance(res, pyot.OTResult)
        assert res.converged
        plan_ref = pot_unbalanced(cost, a, b, eps, tau_a, tau_b)
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(res.value, np.sum(plan_ref * cost), rtol=1e-7)
        np.testing.assert_allclose(
            res.objective,
            ref.unbalanced_objective(plan_ref, cost, a, b, eps, tau_a, tau_b),
            rtol=1e-7,
        )

    @pytest.mark.parametrize("tau", [(0.7, 1.3), (INF, 0.4)])
    def test_optimality_conditions(self, rng, ref, dtype, tau):
        tau_a, tau_b = tau
        cost, a, _ = problem(rng, 18, 13, dtype=dtype)
        b = weights(rng, 13, mass=0.6).astype(dtype)
        eps = 0.05
        tol = 1e-10 if dtype == np.float64 else 1e-5
        res = pyot.unbalanced_sinkhorn(
            cost, a, b, eps=eps, reg_marginals=tau, tol=tol, max_iter=100_000
        )
        assert res.converged
        assert res.plan.dtype == dtype
        assert res.f.dtype == dtype
        assert res.f.shape == (18,)
        assert res.g.shape == (13,)
        assert res.eps == pytest.approx(eps)
        plan = res.plan.astype(np.float64)
        f = res.f.astype(np.float64)
        g = res.g.astype(np.float64)
        a64, b64, c64 = (v.astype(np.float64) for v in (a, b, cost))
        f32 = dtype == np.float32
        # P = a b^T exp((f + g - C) / eps)
        rebuilt = np.outer(a64, b64) * np.exp((f[:, None] + g[None, :] - c64) / eps)
        np.testing.assert_allclose(
            plan, rebuilt, rtol=1e-3 if f32 else 1e-9, atol=1e-7 if f32 else 1e-15
        )
        # P 1 = a exp(-f / tau_a), P^T 1 = b exp(-g / tau_b) (exp(0) = 1 for tau = inf).
        target_a = a64 * np.exp(-f / tau_a)
        target_b = b64 * np.exp(-g / tau_b)
        err = np.abs(plan.sum(1) - target_a).sum() + np.abs(plan.sum(0) - target_b).sum()
        assert err <= tol + (3e-6 if f32 else 1e-13)
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-2, atol=3e-6 if f32 else 1e-13)
        np.testing.assert_allclose(
            res.value, float(np.sum(plan * c64)), rtol=1e-5 if f32 else 1e-10
        )
        np.testing.assert_allclose(
            res.objective,
            ref.unbalanced_objective(plan, c64, a64, b64, eps, tau_a, tau_b),
            rtol=1e-4 if f32 else 1e-8,
            atol=1e-6 if f32 else 1e-12,
        )

    def test_infinite_taus_equal_balanced(self, rng):
        cost, a, b = problem(rng, 16, 12)
        r_u = pyot.unbalanced_sinkhorn(cost, a, b, eps=0.05, reg_marginals=INF, tol=1e-10)
        r_u2 = pyot.unbalanced_sinkhorn(cost, a, b, eps=0.05, reg_marginals=(INF, INF), tol=1e-10)
        r_b = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-10)
        for r in (r_u, r_u2):
            np.testing.assert_allclose(r.plan, r_b.plan, rtol=1e-7, atol=1e-13)
            np.testing.assert_allclose(r.value, r_b.value, rtol=1e-8)
            np.testing.assert_allclose(r.objective, r_b.objective, rtol=1e-8, atol=1e-12)

    def test_scalar_equals_pair(self, rng):
        cost, a, b = problem(rng, 10, 11)
        r1 = pyot.unbalanced_sinkhorn(cost, a, 3 * b, eps=0.1, reg_marginals=0.8, tol=1e-10)
        r2 = pyot.unbalanced_sinkhorn(cost, a, 3 * b, eps=0.1, reg_marginals=(0.8, 0.8), tol=1e-10)
        r3 = pyot.unbalanced_sinkhorn(cost, a, 3 * b, eps=0.1, reg_marginals=[0.8, 0.8], tol=1e-10)
        np.testing.assert_allclose(r2.plan, r1.plan, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(r3.plan, r1.plan, rtol=1e-12, atol=1e-16)

    def test_large_tau_approaches_balanced(self, rng):
        cost, a, b = problem(rng, 12, 14)
        r_b = pyot.sinkhorn(cost, a, b, eps=0.1, tol=1e-10)
        dists = []
        # The rate is ~ tau / (tau + eps) per iteration (ALGORITHMS 2.7): keep tau moderate.
        for tau in (10.0, 100.0):
            r_u = pyot.unbalanced_sinkhorn(
                cost, a, b, eps=0.1, reg_marginals=tau, tol=1e-9, max_iter=200_000
            )
            assert r_u.converged
            dists.append(float(np.abs(r_u.plan - r_b.plan).sum()))
        # The marginal relaxation moves the plan by O(1 / tau).
        assert dists[1] < dists[0] / 5
        assert dists[1] < 2e-2

    def test_mass_destruction_with_small_tau(self, rng):
        """Small tau: transporting is expensive relative to creating/destroying mass."""
        cost, a, b = problem(rng, 10, 10)
        res = pyot.unbalanced_sinkhorn(cost + 5.0, a, b, eps=0.1, reg_marginals=0.1)
        assert res.plan.sum() < 0.5

    def test_zero_weights(self, rng, ref):
        cost, a, _ = problem(rng, 14, 12, zeros_a=3)
        b = weights(rng, 12, zeros=2, mass=1.5)
        res = pyot.unbalanced_sinkhorn(cost, a, b, eps=0.05, reg_marginals=(1.0, 0.5), tol=1e-10)
        assert res.converged
        assert np.isfinite(res.f).all()
        assert np.isfinite(res.g).all()
        assert np.isfinite(res.objective)
        np.testing.assert_array_equal(res.plan[a == 0], 0.0)
        np.testing.assert_array_equal(res.plan[:, b == 0], 0.0)
        ia, ib = a > 0, b > 0
        red = pyot.unbalanced_sinkhorn(
            cost[np.ix_(ia, ib)], a[ia], b[ib], eps=0.05, reg_marginals=(1.0, 0.5), tol=1e-10
        )
        np.testing.assert_allclose(res.plan[np.ix_(ia, ib)], red.plan, rtol=1e-7, atol=1e-13)
        np.testing.assert_allclose(res.objective, red.objective, rtol=1e-8)

    def test_online_equals_dense(self, rng, force_online):
        x, y = clouds(rng, 25, 20, d=3)
        a, b = weights(rng, 25), weights(rng, 20, mass=1.7)
        dense = cdist(x, y, "sqeuclidean")
        r_d = pyot.unbalanced_sinkhorn(dense, a, b, eps=0.2, reg_marginals=(1.0, 2.0), tol=1e-10)
        r_o = pyot.unbalanced_sinkhorn(
            pyot.PointCloud(x, y), a, b, eps=0.2, reg_marginals=(1.0, 2.0), tol=1e-10
        )
        np.testing.assert_allclose(r_o.plan, r_d.plan, rtol=1e-7, atol=1e-13)
        np.testing.assert_allclose(r_o.objective, r_d.objective, rtol=1e-8)

    def test_float32_close_to_float64(self, rng):
        cost, a, b = problem(rng, 20, 18)
        b = 1.5 * b
        r64 = pyot.unbalanced_sinkhorn(cost, a, b, eps=0.05, reg_marginals=1.0, tol=1e-9)
        r32 = pyot.unbalanced_sinkhorn(
            cost.astype(np.float32),
            a.astype(np.float32),
            b.astype(np.float32),
            eps=0.05,
            reg_marginals=1.0,
            tol=1e-5,
        )
        assert r32.plan.dtype == np.float32
        assert np.abs(r32.plan.astype(np.float64) - r64.plan).sum() <= 1e-4
        np.testing.assert_allclose(r32.objective, r64.objective, rtol=1e-4, atol=1e-6)

    def test_threads(self, rng):
        cost, a, b = problem(rng, 700, 600)  # large enough for two threads
        r1 = pyot.unbalanced_sinkhorn(cost, a, 2 * b, eps=0.02, reg_marginals=0.5, threads=1)
        r2 = pyot.unbalanced_sinkhorn(cost, a, 2 * b, eps=0.02, reg_marginals=0.5, threads=2)
        assert r1.n_iter == r2.n_iter
        np.testing.assert_allclose(r2.f, r1.f, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r2.plan, r1.plan, rtol=1e-12, atol=1e-18)

    def test_not_converged_warns(self, rng):
        cost, a, b = problem(rng, 20, 20)
        with pytest.warns(pyot.ConvergenceWarning):
            res = pyot.unbalanced_sinkhorn(cost, a, b, eps=1e-3, reg_marginals=10.0, max_iter=2)
        assert not res.converged
        assert np.isfinite(res.plan).all()

    def test_inputs_not_modified(self, rng):
        cost, a, b = problem(rng, 9, 8)
        copies = [cost.copy(), a.copy(), b.copy()]
        pyot.unbalanced_sinkhorn(cost, a, 2 * b, eps=0.1, reg_marginals=1.0)
        for v, c in zip((cost, a, b), copies, strict=True):
            np.testing.assert_array_equal(v, c)

    @pytest.mark.parametrize(
        ("reg_marginals", "exc"),
        [
            (0.0, ValueError),
            (-1.0, ValueError),
            (float("nan"), ValueError),
            ((1.0, -2.0), ValueError),
            ((1.0, 2.0, 3.0), ValueError),
            ((), ValueError),
            ("1.0", (TypeError, ValueError)),
            (None, (TypeError, ValueError)),
        ],
    )
    def test_bad_reg_marginals(self, ref, reg_marginals, exc):
        cost, a, b = good_problem()
        with pytest.raises(exc, match=ref.arg("reg_marginals")):
            pyot.unbalanced_sinkhorn(cost, a, b, eps=0.1, reg_marginals=reg_marginals)

    def test_reg_marginals_required(self):
        cost, a, b = good_problem()
        with pytest.raises(TypeError, match="reg_marginals"):
            pyot.unbalanced_sinkhorn(cost, a, b, eps=0.1)

    @pytest.mark.parametrize(
        ("args", "kwargs", "exc", "name"),
        [
            pytest.param(*case[1:], id=case[0])
            for case in BAD_SINKHORN_INPUTS
            if case[4] in ("cost", "a", "b", "eps", "tol", "threads")
        ],
    )
    def test_bad_inputs(self, ref, args, kwargs, exc, name):
        kwargs = {"eps": 0.1, "reg_marginals": 1.0, **kwargs}
        with pytest.raises(exc, match=ref.arg(name)):
            pyot.unbalanced_sinkhorn(*args, **kwargs)

    def test_unequal_masses_allowed(self, rng):
        cost, a, b = problem(rng, 6, 7)
        res = pyot.unbalanced_sinkhorn(cost, a, 10 * b, eps=0.1, reg_marginals=1.0)
        assert res.converged


# ================================================================================ memory


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, warnings
    import numpy as np
    import pyot

    def peak_bytes():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

    rng = np.random.default_rng(0)
    n = 20000
    x = rng.standard_normal((n, 3))
    y = rng.standard_normal((n, 3)) + 0.1
    cloud = pyot.PointCloud(x, y)
    out = {}
    before = peak_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pyot.sinkhorn(cloud, eps=0.1, max_iter=3)
    out["solve_growth"] = peak_bytes() - before
    out["warnings"] = [w.category.__name__ for w in caught]
    out["converged"] = bool(np.all(res.converged))
    out["n_iter"] = int(res.n_iter)
    out["f_shape"] = list(res.f.shape)
    out["g_shape"] = list(res.g.shape)
    out["finite"] = bool(np.isfinite(res.f).all() and np.isfinite(res.g).all())
    out["value_finite"] = bool(np.isfinite(res.value))
    before = peak_bytes()
    text = repr(res) + str(res)
    out["repr_growth"] = peak_bytes() - before
    out["repr_len"] = len(text)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path_factory.mktemp("memory"),
        env={**os.environ, "PYTHONWARNINGS": "default"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


LIMIT_BYTES = 200 * 1024**2  # a dense 20000^2 float64 cost would be 3.2 GB


@pytest.mark.slow
def test_point_cloud_solve_memory(memory_run):
    assert memory_run["solve_growth"] < LIMIT_BYTES, memory_run
    assert "ConvergenceWarning" in memory_run["warnings"], memory_run
    assert memory_run["converged"] is False
    assert 1 <= memory_run["n_iter"] <= 3
    assert memory_run["f_shape"] == [20000]
    assert memory_run["g_shape"] == [20000]
    assert memory_run["finite"]
    assert memory_run["value_finite"]


@pytest.mark.slow
def test_point_cloud_result_repr_does_not_materialise_plan(memory_run):
    """Printing the result must not build the lazy n x m plan."""
    assert memory_run["repr_growth"] < LIMIT_BYTES, memory_run
    assert memory_run["repr_len"] < 100_000


class TestNewton:
    """Sinkhorn-Newton-Sparse (method="auto"): the same solution in far fewer iterations."""

    def test_clustered_small_eps(self, rng):
        t = rng.uniform(0, np.pi, 120)
        x = np.c_[np.cos(t), np.sin(t)] + 0.05 * rng.standard_normal((120, 2))
        y = np.c_[1 - np.cos(t), 0.5 - np.sin(t)] + 0.05 * rng.standard_normal((120, 2))
        cost = cdist(x, y, "sqeuclidean")
        auto = pyot.sinkhorn(cost, eps=1e-3, tol=1e-7, max_iter=100_000)
        plain = pyot.sinkhorn(cost, eps=1e-3, tol=1e-7, max_iter=100_000, method="log")
        assert auto.converged
        assert plain.converged
        assert auto.n_iter * 5 < plain.n_iter
        np.testing.assert_allclose(auto.plan, plain.plan, atol=1e-7)
        assert auto.objective == pytest.approx(plain.objective, rel=1e-8)

    def test_reaches_tolerances_plain_sinkhorn_cannot(self, rng):
        # Near-permutation plans: plain Sinkhorn stalls far from tol (POT too); Newton converges.
        x, y = rng.standard_normal((12, 2)), rng.standard_normal((12, 2))
        cost = cdist(x, y, "sqeuclidean")
        cost /= cost.max()
        res = pyot.sinkhorn(cost, eps=1e-3, tol=1e-12, max_iter=2000)
        assert res.converged
        plan = res.plan
        err = np.abs(plan.sum(1) - 1 / 12).sum() + np.abs(plan.sum(0) - 1 / 12).sum()
        assert err <= 1e-11

    @staticmethod
    def translated(seed, n, dtype):
        g = np.random.default_rng(seed)
        x = g.standard_normal((n, 2))
        y = x + g.standard_normal(2)
        return pyot.PointCloud(x.astype(dtype), y.astype(dtype))

    @staticmethod
    def true_error(geom, f, g, eps):
        c = geom.dense().astype(np.float64)
        n, m = c.shape
        plan = np.exp((np.float64(f)[:, None] + np.float64(g)[None, :] - c) / eps) / (n * m)
        return np.abs(plan.sum(1) - 1 / n).sum() + np.abs(plan.sum(0) - 1 / m).sum()

    def test_translations_converge_quickly(self):
        # A translated cloud: the plan is nearly a permutation whose entries span dozens of
        # orders of magnitude (eps far below the nearest-neighbour cost, range / eps up to 1e4).
        # CG stalled on such Newton systems and Sinkhorn crawled: 28 of these 120 solves took
        # over 1000 iterations, some 10000 without converging.
        iters = []
        for seed in range(20):
            for eps in (0.03, 0.01, 0.003):
                for dtype in (np.float32, np.float64):
                    geom = self.translated(seed, 100, dtype)
                    res = pyot.sinkhorn(geom, eps=eps, tol=1e-6)
                    assert res.converged, (seed, eps, dtype)
                    if dtype == np.float64:  # float32 potentials are rounded on return
                        err = self.true_error(geom, res.f, res.g, eps)
                        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-3, atol=1e-9)
                    iters.append(res.n_iter)
        assert max(iters) <= 300

    def test_translation_beyond_the_direct_solver_size(self):
        # 300 points: CG first, elimination when CG stalls.
        geom = self.translated(2, 300, np.float64)
        res = pyot.sinkhorn(geom, eps=0.01, tol=1e-6)
        assert res.converged
        assert res.n_iter <= 300
        np.testing.assert_allclose(
            res.marginal_error, self.true_error(geom, res.f, res.g, 0.01), rtol=1e-3, atol=1e-9
        )

    @staticmethod
    def uniform(seed, n, d, dtype=np.float64):
        """The bench's problem: uniform clouds, sqeuclidean cost normalised to max 1."""
        g = np.random.default_rng(seed)
        cost = cdist(g.random((n, d)), g.random((n, d)), "sqeuclidean")
        return (cost / cost.max()).astype(dtype)

    @staticmethod
    def dense_error(cost, a, b, f, g, eps):
        c = np.asarray(cost, np.float64)
        plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - c) / eps)
        return np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()

    @pytest.mark.parametrize("zeros", [0, 7])
    def test_small_eps_against_the_log_domain(self, rng, zeros):
        # eps = 1e-3 on uniform clouds: a handful of entries per row carry the plan, the Hessian
        # keeps a variable number per row. Zero weights: empty rows in it.
        n = 300
        cost = self.uniform(1, n, 2)
        a, b = weights(rng, n, zeros=zeros), weights(rng, n)
        auto = pyot.sinkhorn(cost, a, b, eps=1e-3, tol=1e-9, max_iter=100_000)
        log = pyot.sinkhorn(cost, a, b, eps=1e-3, tol=1e-11, max_iter=100_000, method="log")
        assert auto.converged
        assert log.converged
        err = self.dense_error(cost, a, b, auto.f, auto.g, 1e-3)
        assert err <= 1e-9
        np.testing.assert_allclose(auto.marginal_error, err, rtol=1e-3, atol=1e-13)
        np.testing.assert_allclose(auto.plan, log.plan, atol=1e-8)
        assert auto.objective == pytest.approx(log.objective, rel=1e-9)
        assert auto.value == pytest.approx(log.value, rel=1e-6)
        if zeros:
            np.testing.assert_array_equal(auto.plan[a == 0], 0.0)

    def test_small_eps_float32(self):
        # float32 costs at the bench's tol: converged, and the error recomputed in double is
        # within tol and equals the reported one.
        n = 400
        cost = self.uniform(3, n, 2, np.float32)
        a = np.full(n, 1.0 / n)
        res = pyot.sinkhorn(cost, eps=1e-3, tol=1e-5)
        assert res.converged
        err = self.dense_error(cost, a, a, res.f.astype(np.float64), res.g.astype(np.float64), 1e-3)
        assert err <= 1e-5
        ref64 = pyot.sinkhorn(cost.astype(np.float64), eps=1e-3, tol=1e-9)
        assert res.objective == pytest.approx(ref64.objective, rel=1e-5)

    def test_small_eps_thread_count_independence(self):
        # Newton's passes (the plan gathered in the row pass, the line search) reduce in a fixed
        # order: the same iterates on 1 and 2 threads.
        cost = self.uniform(4, 800, 2)
        r1, r2 = (pyot.sinkhorn(cost, eps=1e-3, tol=1e-8, threads=t) for t in (1, 2))
        assert r1.converged
        assert r1.n_iter == r2.n_iter
        np.testing.assert_allclose(r2.f, r1.f, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r2.g, r1.g, rtol=1e-12, atol=1e-14)
        assert r2.objective == pytest.approx(r1.objective, rel=1e-12)


class TestSingleKernel:
    """The scaling domain's float kernel (tol >= 1e-7 on costs of at least 2^21 entries whose
    range is at most 100 eps): the reported error and the converged flag are the exact ones, and
    the answer matches the double kernel's (tight tol, which keeps K in double)."""

    @staticmethod
    def true_error(cost, a, b, f, g, eps):
        c = np.asarray(cost, np.float64)
        plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - c) / eps)
        return np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("tol", [1e-5, 1e-7])
    def test_exact_error_and_same_answer(self, rng, dtype, tol):
        cost, a, b = problem(rng, 1500, 1400, dtype=dtype)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        res = pyot.sinkhorn(cost, a, b, eps=0.05, tol=tol, method="scaling")
        assert res.converged
        err = self.true_error(cost, a64, b64, np.float64(res.f), np.float64(res.g), 0.05)
        atol = 1e-12 if dtype == np.float64 else 1e-6  # float32 potentials are rounded on return
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=atol)
        assert res.marginal_error <= tol
        ref = pyot.sinkhorn(cost.astype(np.float64), a64 / a64.sum(), b64 / b64.sum(), eps=0.05,
                            tol=1e-12,
                            method="scaling")
        assert_potentials_close(res.f, res.g, ref.f, ref.g, atol=200 * tol * 0.05 + 1e-6)
        np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-5)

    def test_flushed_entries(self, rng):
        # range / eps = 90: a row keeps its kernel entries down to 1e-30 of its largest (the
        # rest are 0 in float); the error, value and plan are still the exact ones.
        cost, a, b = problem(rng, 1500, 1400)
        eps = 1.0 / 90.0
        res = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-6, method="scaling")
        assert res.converged
        err = self.true_error(cost, a, b, res.f, res.g, eps)
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=1e-15)
        assert res.value == pytest.approx(float((res.plan * cost).sum()), rel=1e-12)
        ref = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-10, method="log")
        np.testing.assert_allclose(res.value, ref.value, rtol=1e-5)

    def test_warm_start_and_threads(self, rng):
        cost, a, b = problem(rng, 1500, 1400)
        cold = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-6)
        moved = cost + 0.01 * rng.uniform(size=cost.shape)
        one = pyot.sinkhorn(moved, a, b, eps=0.05, tol=1e-6, init=(cold.f, cold.g), threads=1)
        two = pyot.sinkhorn(moved, a, b, eps=0.05, tol=1e-6, init=(cold.f, cold.g), threads=2)
        assert one.converged
        np.testing.assert_array_equal(one.f, two.f)
        np.testing.assert_array_equal(one.g, two.g)
        assert one.marginal_error == two.marginal_error
        err = self.true_error(moved, a, b, one.f, one.g, 0.05)
        np.testing.assert_allclose(one.marginal_error, err, rtol=1e-6, atol=1e-15)

    def test_far_start_falls_back_to_double(self, rng):
        # Potentials far apart make K's entries leave float's range: the kernel is rebuilt in
        # double and the solve converges all the same.
        cost, a, b = problem(rng, 1500, 1400)
        f0 = rng.uniform(0.0, 8.0, 1500)  # K up to exp(80) > 1e30
        res = pyot.sinkhorn(cost, a, b, eps=0.1, tol=1e-6, init=(f0, np.zeros(1400)),
                            method="scaling")
        assert res.converged
        err = self.true_error(cost, a, b, res.f, res.g, 0.1)
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=1e-15)

    def test_value_skipped_for_internal_callers(self, rng):
        from pyot.sinkhorn import _run

        cost, a, b = problem(rng, 1500, 1400)
        opts = dict(eps=0.05, tol=1e-6, max_iter=1000, threads=None)
        full = _run("t", cost, a, b, **opts).result
        lean = _run("t", cost, a, b, value=False, **opts).result
        assert math.isnan(lean.value)
        assert lean.objective == full.objective
        np.testing.assert_array_equal(lean.f, full.f)
        assert lean.marginal_error == full.marginal_error
        assert full.value == pytest.approx(float((full.plan * cost).sum()), rel=1e-12)

    @pytest.mark.parametrize(("size", "method"),
                             [((1500, 1400), "auto"), ((60, 50), "auto"), ((60, 50), "log")])
    @pytest.mark.parametrize("fused_only", [False, True])
    def test_plan_times_y_for_internal_callers(self, rng, size, method, fused_only):
        # P @ y at the returned potentials, fused into the float kernel's exact confirmation
        # pass (1500 x 1400 at tol 1e-6), else (unless fused_only) from the double kernel or,
        # in the log domain, by an exp pass of its own.
        from pyot.sinkhorn import _run

        n, m = size
        cost, a, b = problem(rng, n, m)
        y = rng.standard_normal((m, 3))
        out = np.full((n, 3), np.nan)
        opts = dict(eps=0.05, tol=1e-6, max_iter=1000, threads=None, method=method)
        plain = _run("t", cost, a, b, **opts)
        solved = _run("t", cost, a, b, plan_y=(y, out, fused_only), **opts)
        np.testing.assert_array_equal(solved.f, plain.f)  # the solve itself is unchanged
        assert solved.result.objective == plain.result.objective
        fused = n * m >= 1 << 21
        assert solved.plan_y_written == (fused or not fused_only)
        if solved.plan_y_written:
            f, g = solved.f[0], solved.g[0]
            plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - cost) / 0.05)
            np.testing.assert_allclose(out, plan @ y, rtol=1e-12, atol=1e-15)
        else:
            assert np.isnan(out).all()

    def test_plan_times_y_bad_input(self, rng):
        from pyot import _core

        cost, a, b = problem(rng, 6, 5)
        f, g = np.zeros((1, 6)), np.zeros((1, 5))
        args = (cost[None], a[None], b[None], f, g, np.ones(1), np.ones(1))
        opts = dict(eps=1.0, tol=1e-6, max_iter=10, eps_scaling=0.0, method=0, overrelax=True,
                    tau_a=INF, tau_b=INF, threads=1)
        with pytest.raises(ValueError, match="plan_y and plan_y_out must be given together"):
            _core.sinkhorn_dense(*args, plan_y=np.zeros((5, 2)), **opts)
        with pytest.raises(ValueError, match="plan_y_out"):
            _core.sinkhorn_dense(*args, plan_y=np.zeros((5, 2)), plan_y_out=np.zeros((5, 2)),
                                 **opts)
        with pytest.raises(ValueError, match="plan_y"):
            _core.sinkhorn_dense(*args, plan_y=np.zeros((4, 2)), plan_y_out=np.zeros((6, 2)),
                                 **opts)
        two = (np.stack([cost, cost]), np.stack([a, a]), np.stack([b, b]), np.zeros((2, 6)),
               np.zeros((2, 5)), np.ones(2), np.ones(2))
        with pytest.raises(ValueError, match="plan_y needs a single problem"):
            _core.sinkhorn_dense(*two, plan_y=np.zeros((5, 2)), plan_y_out=np.zeros((6, 2)),
                                 **opts)

    @pytest.mark.parametrize("tol", [1e-6, 1e-10])
    def test_value_without_exp_pass(self, rng, tol):
        # <P, C> from the confirmation pass (float kernel) or from the double kernel and the
        # scalings: the same number as the plan's.
        cost, a, b = problem(rng, 1500, 1400)
        res = pyot.sinkhorn(cost, a, b, eps=0.05, tol=tol, method="scaling")
        assert res.converged
        assert res.value == pytest.approx(float((res.plan * cost).sum()), rel=1e-12)

    def test_cost_range_skips_validation_only(self, rng):
        # An internal caller that measured the cost's range itself gets the same solve.
        from pyot.sinkhorn import _run

        cost, a, b = problem(rng, 1500, 1400)
        opts = dict(eps=0.05, tol=1e-6, max_iter=1000, threads=None)
        checked = _run("t", cost, a, b, **opts).result
        trusted = _run("t", cost, a, b, cost_range=float(cost.max() - cost.min()), **opts).result
        np.testing.assert_array_equal(trusted.f, checked.f)
        np.testing.assert_array_equal(trusted.g, checked.g)
        assert trusted.objective == checked.objective


class TestFloatLanes:
    """float32 problems run the log-domain exp in float lanes (16 per AVX-512 vector): the float
    exp itself, the solves against float64 ones, and the exact error contract (convergence is
    confirmed with double lanes, so marginal_error is the true one)."""

    @staticmethod
    def true_error(cost, a, b, f, g, eps):
        c = np.asarray(cost, np.float64)
        f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
        plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - c) / eps)
        return np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()

    @pytest.mark.parametrize("online", [False, True])
    def test_tol_below_float_lane_floor(self, rng, online):
        """A float32 problem asked for tol below the float lanes' error floor (~1e-7) runs in
        double lanes and converges (the float-lane estimate would never report it)."""
        x = rng.random((400, 3)).astype(np.float32)
        y = rng.random((450, 3)).astype(np.float32)
        dense = pyot.cost_matrix(x, y)
        cost = pyot.PointCloud(x, y) if online else dense
        a, b = np.full(400, 1 / 400), np.full(450, 1 / 450)
        res = pyot.sinkhorn(cost, eps=0.01, tol=1e-10, max_iter=3000, method="log")
        assert res.converged
        assert res.marginal_error <= 1e-10
        # Against float64 clouds holding the same values (f, g are returned rounded to
        # float32, so the error is not recomputed from them here).
        ref = pyot.sinkhorn(dense.astype(np.float64), a, b, eps=0.01, tol=1e-10, method="log")
        np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-9)

    def test_float_exp_accuracy(self):
        x = np.concatenate(
            [
                np.linspace(-90.0, 90.0, 1_000_001, dtype=np.float32),
                np.float32(88.72283) + np.arange(-50, 50, dtype=np.float32) * np.float32(1e-5),
                np.float32(-87.33654) + np.arange(-50, 50, dtype=np.float32) * np.float32(1e-3),
                np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, np.log(2.0)], np.float32),
            ]
        )
        y = pyot._core.exp_vec(x)
        assert y.dtype == np.float32
        assert y.shape == x.shape
        exact = np.exp(x.astype(np.float64))
        normal = exact >= 2.0**-125  # smaller results may be flushed to 0 (never subnormal)
        finite = exact < np.finfo(np.float32).max * (1 - 2e-7)
        ok = normal & finite
        ulp = np.spacing(exact[ok].astype(np.float32)).astype(np.float64)
        assert np.max(np.abs(y[ok] - exact[ok]) / ulp) <= 2.0
        small = exact < 2.0**-125.5
        np.testing.assert_array_equal(y[small], 0.0)
        assert np.all((y[~normal] == 0.0) | (y[~normal] >= np.finfo(np.float32).tiny))
        assert np.all(np.isinf(y[exact > np.finfo(np.float32).max]))
        np.testing.assert_array_equal(y[x == 0.0], 1.0)

    def test_float_exp_special_values(self):
        x = np.array([-np.inf, np.inf, np.nan, -1e30, 1e30, -100.0, 100.0, 89.5], np.float32)
        y = pyot._core.exp_vec(x)
        np.testing.assert_array_equal(y[[0, 3, 5]], 0.0)
        assert np.all(np.isposinf(y[[1, 4, 6, 7]]))
        assert np.isnan(y[2])

    def test_double_exp_accuracy(self):
        x = np.linspace(-750.0, 709.0, 200_001)
        y = pyot._core.exp_vec(x)
        exact = np.exp(x)
        ok = x >= -708.0
        np.testing.assert_allclose(y[ok], exact[ok], rtol=4e-16, atol=0)
        np.testing.assert_array_equal(y[~ok], 0.0)

    def test_float_exp_is_faster(self):
        """The float lanes are the point: their exp rate is measured beside the double one."""
        single = pyot._core.hw_exp_throughput(1 << 16, 1, 1, True)
        double = pyot._core.hw_exp_throughput(1 << 16, 1, 1, False)
        assert single > 0.0
        assert double > 0.0

    @pytest.mark.parametrize(
        ("metric", "d"),
        [
            ("sqeuclidean", 3),
            ("euclidean", 3),
            ("cityblock", 3),
            ("minkowski", 3),
            ("cosine", 3),
            ("sqeuclidean", 20),  # the matrix-product tiles
            ("cosine", 20),
        ],
    )
    def test_online_float32_equals_float64(self, rng, force_online, metric, d):
        x, y = clouds(rng, 300, 280, d=d, unit=True)
        x, y = x.astype(np.float32), y.astype(np.float32)
        a, b = weights(rng, 300), weights(rng, 280)
        kw = {"p": 1.5} if metric == "minkowski" else {}
        dense32 = pyot.cost_matrix(x, y, metric, **kw)
        eps = 0.02 * float(dense32.max())
        r32 = pyot.sinkhorn(pyot.PointCloud(x, y, metric, **kw), a, b, eps=eps, tol=1e-6)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        r64 = pyot.sinkhorn(pyot.PointCloud(x64, y64, metric, **kw), a, b, eps=eps, tol=1e-6)
        assert r32.converged
        assert r32.marginal_error <= 1e-6
        assert_potentials_close(r32.f, r32.g, r64.f, r64.g, atol=2e-4 * eps)
        np.testing.assert_allclose(r32.value, r64.value, rtol=2e-5)
        np.testing.assert_allclose(r32.objective, r64.objective, rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(r32.plan, r64.plan, rtol=2e-3, atol=1e-9)

    def test_online_float32_small_eps_exact_error(self, rng, force_online):
        """eps = 0.005 on costs up to 1, tol 1e-5: converged, and the reported error is the true
        one of the returned potentials on the float32 costs."""
        x, y = clouds(rng, 400, 350, d=3, unit=True)
        x, y = x.astype(np.float32), y.astype(np.float32)
        a, b = weights(rng, 400), weights(rng, 350)
        res = pyot.sinkhorn(pyot.PointCloud(x, y), a, b, eps=0.005, tol=1e-5)
        assert res.converged
        assert res.marginal_error <= 1e-5
        # The online tiles are direct sums on the centred clouds, as cost_matrix's; f and g
        # are rounded to float32 on return (a relative 6e-8 of |f| / eps in each exponent).
        cost = pyot.cost_matrix(x, y)
        err = self.true_error(cost, a, b, res.f, res.g, 0.005)
        np.testing.assert_allclose(res.marginal_error, err, rtol=0, atol=3e-6)

    @pytest.mark.parametrize("tol", [1e-5, 1e-7])
    def test_dense_float32_log_domain(self, rng, tol):
        cost, a, b = problem(rng, 300, 260, dtype=np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        res = pyot.sinkhorn(cost, a, b, eps=0.01, tol=tol, method="log")
        ref = pyot.sinkhorn(
            cost.astype(np.float64), a64 / a64.sum(), b64 / b64.sum(), eps=0.01, tol=1e-12,
            method="log",
        )
        assert res.converged
        assert res.marginal_error <= tol
        err = self.true_error(cost, a64, b64, res.f, res.g, 0.01)
        np.testing.assert_allclose(res.marginal_error, err, rtol=0, atol=2e-6)
        assert_potentials_close(res.f, res.g, ref.f, ref.g, atol=200 * tol * 0.01 + 1e-6)

    def test_online_float32_thread_independence(self, rng, force_online):
        x, y = clouds(rng, 800, 700, d=3, unit=True)
        x, y = x.astype(np.float32), y.astype(np.float32)
        a, b = weights(rng, 800), weights(rng, 700)
        pc = pyot.PointCloud(x, y)
        one = pyot.sinkhorn(pc, a, b, eps=0.02, tol=1e-6, threads=1)
        two = pyot.sinkhorn(pc, a, b, eps=0.02, tol=1e-6, threads=2)
        assert one.n_iter == two.n_iter
        np.testing.assert_array_equal(one.f, two.f)
        np.testing.assert_array_equal(one.g, two.g)
        assert one.marginal_error == two.marginal_error
        assert one.value == two.value


class TestDenseFloatLaneColumns:
    """float32 dense log-domain column half-steps sum their float-lane terms in float over fixed
    chunks of 16 rows and in double across chunks; a column whose sum leaves [1e-20, 1e30] is
    redone exactly (double lanes, max-shifted). One iteration from the same start on the same
    costs, float32 (float lanes) against float64 (double lanes): the returned g is the start
    minus eps times the column pass at the updated f."""

    @staticmethod
    def one_iteration(cost, a, b, eps, g0, *, max_iter=1, threads=None, tol=1e-6):
        from pyot.sinkhorn import _run

        init = (np.zeros(cost.shape[0]), g0)
        with pytest.warns(pyot.ConvergenceWarning):
            solved = _run("t", cost, a, b, eps=eps, tol=tol, max_iter=max_iter, threads=threads,
                          init=init, method="log")  # fmt: skip
        return solved.f[0], solved.g[0]  # float64, before the cast to the cost's dtype

    # 301 rows: a last chunk of 13; zero weights inside chunks; 530 columns: a short block.
    @pytest.mark.parametrize("size", [(301, 530), (40, 2100)])
    def test_column_sums_against_exact(self, rng, size):
        cost, a, b = problem(rng, *size, zeros_a=5, dtype=np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        eps = 0.02
        g0 = np.zeros(size[1])
        f32, g32 = self.one_iteration(cost, a, b, eps, g0)
        f64, g64 = self.one_iteration(cost.astype(np.float64), a64 / a64.sum(), b64 / b64.sum(),
                                      eps, g0)  # fmt: skip
        np.testing.assert_allclose(f32, f64, rtol=0, atol=2e-6 * eps)
        np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-6 * eps)
        assert np.max(np.abs(g32 - g64)) > 1e-12 * eps  # float lanes, not double ones

    def test_exact_fallback(self, rng):
        """Columns whose sums fall below 1e-20 (their float terms flush to 0) are redone
        exactly: five columns start 150 eps above the rest, so the updated f leaves the others
        terms below e^-90 (range(C) / eps = 50)."""
        cost, a, b = problem(rng, 301, 530, zeros_a=5, dtype=np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        eps = 0.02
        g0 = np.zeros(530)
        g0[[3, 200, 201, 400, 529]] = 150 * eps
        f32, g32 = self.one_iteration(cost, a, b, eps, g0)
        f64, g64 = self.one_iteration(cost.astype(np.float64), a64 / a64.sum(), b64 / b64.sum(),
                                      eps, g0)  # fmt: skip
        assert np.all(np.isfinite(g32))
        np.testing.assert_allclose(f32, f64, rtol=0, atol=2e-6 * eps)
        np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-6 * eps)
        # The unshifted columns are exact in both (double lanes; float lanes would be ~1e-7 off),
        # up to the float32 weights' normalisation (4e-12).
        np.testing.assert_allclose(g32[:3], g64[:3], rtol=1e-10)

    @pytest.mark.parametrize("shifted", [False, True])
    def test_thread_independent(self, rng, shifted):
        """Bitwise equal for 1 and 2 threads, whose column blocks differ in width (512, 256)."""
        cost, a, b = problem(rng, 300, 2100, zeros_a=4, dtype=np.float32)
        g0 = np.zeros(2100)
        if shifted:
            g0[::300] = 150 * 0.02
        one = self.one_iteration(cost, a, b, 0.02, g0, max_iter=4, threads=1)
        two = self.one_iteration(cost, a, b, 0.02, g0, max_iter=4, threads=2)
        np.testing.assert_array_equal(one[0], two[0])
        np.testing.assert_array_equal(one[1], two[1])
        full1 = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-6, method="log", threads=1)
        full2 = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-6, method="log", threads=2)
        assert full1.converged
        assert full1.n_iter == full2.n_iter
        np.testing.assert_array_equal(full1.f, full2.f)
        np.testing.assert_array_equal(full1.g, full2.g)


class TestFusedLogPass:
    """From 256 rows on, a dense log-domain iteration reads C once: the row pass also adds each
    row's terms at the updated f into per-block column sums (reduced in block order), and the
    column half-step uses them. One iteration against its definition computed here with
    scipy's logsumexp, zero weights included, and the exact redo of columns whose one-pass sums
    leave the safe range."""

    @staticmethod
    def reference(cost, a, b, eps, g0):
        from scipy.special import logsumexp

        c = cost.astype(np.float64)
        with np.errstate(divide="ignore"):
            la, lb = np.log(a.astype(np.float64)), np.log(b.astype(np.float64))
        f = -eps * logsumexp(lb[None, :] + (g0[None, :] - c) / eps, axis=1)
        g = -eps * logsumexp(la[:, None] + (f[:, None] - c) / eps, axis=0)
        return f, g

    @pytest.mark.parametrize("size", [(301, 530), (256, 300), (600, 2100), (255, 300)])
    @pytest.mark.parametrize("shift", [0.0, 600.0])
    def test_one_iteration_against_definition(self, rng, size, shift):
        """shift = 600: columns whose terms are below e^-600 < 1e-250 (exact redo)."""
        cost, a, b = problem(rng, *size, zeros_a=5, zeros_b=3)
        eps = 0.02
        g0 = np.zeros(size[1])
        g0[:: max(1, size[1] // 7)] = shift * eps
        f, g = TestDenseFloatLaneColumns.one_iteration(cost, a, b, eps, g0, tol=0.0)
        f_ref, g_ref = self.reference(cost, a, b, eps, g0)
        np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-14)

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_thread_independent(self, rng, dtype):
        cost, a, b = problem(rng, 700, 650, zeros_a=4, zeros_b=2, dtype=dtype)
        runs = [pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-6, method="log", threads=t)
                for t in (1, 2)]  # fmt: skip
        assert runs[0].converged
        assert runs[0].n_iter == runs[1].n_iter
        np.testing.assert_array_equal(runs[0].f, runs[1].f)
        np.testing.assert_array_equal(runs[0].g, runs[1].g)

    def test_converged_solve_against_pot(self, rng):
        cost, a, b = problem(rng, 400, 350)
        res = pyot.sinkhorn(cost, a, b, eps=0.05, tol=1e-10, method="log")
        _, _, plan_ref = pot_sinkhorn(cost, a, b, 0.05)
        assert res.converged
        np.testing.assert_allclose(res.plan, plan_ref, rtol=1e-6, atol=1e-13)


class TestFusedScalingPass:
    """From 256 rows on, a scaling-domain iteration reads K once: the row pass also accumulates
    the column sums at the updated f (speculating the relaxation weight; a changed weight reads
    K again). The answer is the log domain's, for any thread count and with relaxed marginals."""

    @pytest.mark.parametrize("size", [(600, 500), (300, 700), (603, 410)])
    def test_same_answer_as_log_domain(self, rng, size):
        cost, a, b = problem(rng, *size, zeros_a=3, zeros_b=2)
        sc = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-10, method="scaling")
        lg = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-10, method="log")
        assert sc.converged
        assert lg.converged
        np.testing.assert_allclose(sc.plan, lg.plan, rtol=1e-6, atol=1e-13)
        np.testing.assert_allclose(sc.value, lg.value, rtol=1e-9)
        assert sc.value == pytest.approx(float((sc.plan * cost).sum()), rel=1e-12)

    # 603 rows: blocks of 16 rows, the last of 11 (two groups of 4 and a short one).
    @pytest.mark.parametrize("size", [(700, 650), (603, 410)])
    def test_thread_independent(self, rng, size):
        cost, a, b = problem(rng, *size, zeros_a=7)
        one = pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-9, method="scaling", threads=1)
        two = pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-9, method="scaling", threads=2)
        assert one.converged
        np.testing.assert_array_equal(one.f, two.f)
        np.testing.assert_array_equal(one.g, two.g)
        assert one.n_iter == two.n_iter
        assert one.value == two.value

    def test_rows_in_groups_of_four_with_zero_weights(self, rng):
        # Column sums take four rows at a time (groups from each fixed row block's start, rows
        # and groups of zero weight skipped): a whole zero group, scattered zeros and a row
        # count that is not a multiple of four give the log domain's answer, for any threads.
        cost, a, b = problem(rng, 603, 501, zeros_a=5, zeros_b=2)
        a[16:20] = 0.0  # one aligned group of four
        a /= a.sum()
        sc = [pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-10, method="scaling", threads=t)
              for t in (1, 2)]
        lg = pyot.sinkhorn(cost, a, b, eps=0.02, tol=1e-10, method="log")
        assert sc[0].converged
        np.testing.assert_allclose(sc[0].plan, lg.plan, rtol=1e-6, atol=1e-13)
        assert (sc[0].plan[16:20] == 0).all()
        np.testing.assert_array_equal(sc[0].f, sc[1].f)
        np.testing.assert_array_equal(sc[0].g, sc[1].g)
        assert sc[0].value == sc[1].value

    # The fused pass sweeps two groups of four rows at once (the next group's products, the
    # current group's column sums); blocks whose last group is short repeat its last row with
    # weight 0. Row counts at the streaming threshold (256), just above it with one to three
    # rows left over, and zero rows at a block's start, end and in a short group.
    @pytest.mark.parametrize("n", [256, 257, 258, 259, 261, 1027])
    def test_group_pairs_and_short_groups(self, rng, n):
        cost, a, b = problem(rng, n, 300, zeros_b=3)
        a[[0, 63, 64, n - 1, n - 2]] = 0.0
        a /= a.sum()
        sc = [pyot.sinkhorn(cost, a, b, eps=0.03, tol=1e-10, method="scaling", threads=t)
              for t in (1, 2, 3)]
        lg = pyot.sinkhorn(cost, a, b, eps=0.03, tol=1e-10, method="log")
        assert sc[0].converged
        np.testing.assert_allclose(sc[0].plan, lg.plan, rtol=1e-6, atol=1e-13)
        np.testing.assert_allclose(sc[0].value, lg.value, rtol=1e-9)
        assert (sc[0].plan[[0, 63, 64, n - 1, n - 2]] == 0).all()
        for other in sc[1:]:
            np.testing.assert_array_equal(other.f, sc[0].f)
            np.testing.assert_array_equal(other.g, sc[0].g)
            assert other.value == sc[0].value

    def test_kernel_written_by_row_pass_after_absorption(self, rng):
        # A double K is written row by row by the row pass that follows each rebuild (the first
        # one and every absorption): far-off initial potentials force absorptions mid-solve.
        cost, a, b = problem(rng, 300, 280, zeros_a=4)
        f0 = rng.uniform(0.0, 3.0, 300)  # 300 eps from the solution's potentials
        sc = [pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-9, init=(f0, np.zeros(280)),
                            method="scaling", threads=t) for t in (1, 2)]
        lg = pyot.sinkhorn(cost, a, b, eps=0.01, tol=1e-11, method="log")
        assert sc[0].converged
        np.testing.assert_allclose(sc[0].plan, lg.plan, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(sc[0].value, lg.value, rtol=1e-8)
        np.testing.assert_array_equal(sc[0].f, sc[1].f)
        assert sc[0].value == sc[1].value

    @pytest.mark.parametrize(("n", "eps"), [(600, 0.1), (700, 0.02)])
    def test_value_in_the_last_pass(self, rng, n, eps):
        # With a double K, <P, C> is added in the row pass expected to be the last one (reading
        # C beside K): the value of the returned potentials, the same potentials as a solve
        # without the value, for any thread count.
        from pyot.sinkhorn import _run

        cost, a, b = problem(rng, n, n - 30, zeros_a=2, zeros_b=3)
        opts = dict(eps=eps, tol=1e-6, max_iter=1000)
        full = [_run("t", cost, a, b, threads=t, **opts).result for t in (1, 2)]
        lean = _run("t", cost, a, b, value=False, threads=None, **opts).result
        lg = pyot.sinkhorn(cost, a, b, eps=eps, tol=1e-11, method="log")
        assert full[0].converged
        np.testing.assert_array_equal(lean.f, full[0].f)
        np.testing.assert_array_equal(lean.g, full[0].g)
        assert full[0].value == pytest.approx(float((full[0].plan * cost).sum()), rel=1e-12)
        np.testing.assert_allclose(full[0].value, lg.value, rtol=1e-5)
        assert full[0].value == full[1].value

    def test_vector_log_accuracy(self):
        # The scaling passes take their logs with the core's vectorized log (fdlibm's method).
        g = np.random.default_rng(3)
        x = np.concatenate(
            [
                np.exp(g.uniform(-744.0, 709.0, 200_000)),
                g.uniform(0.5, 2.0, 200_000),
                1.0 + np.arange(-60, 60) * 2.0**-52,
                np.sqrt(0.5) * (1.0 + np.arange(-30, 30) * 2.0**-52),
                [np.finfo(np.float64).tiny, np.finfo(np.float64).max, 5e-324, 1e-310, 0.5, 2.0],
            ]
        )
        y = pyot._core.log_vec(x)
        exact = np.log(x)
        ulp = np.spacing(np.abs(exact))
        ulp[exact == 0.0] = np.spacing(0.0)
        assert np.max(np.abs(y - exact) / ulp) <= 2.0
        np.testing.assert_array_equal(y[x == 1.0], 0.0)

    def test_vector_log_special_values(self):
        y = pyot._core.log_vec(np.array([0.0, -0.0, np.inf, -1.0, -np.inf, np.nan]))
        np.testing.assert_array_equal(y[:2], -np.inf)
        assert y[2] == np.inf
        assert np.isnan(y[3:]).all()

    def test_kernel_buffers_recycled(self, rng):
        # The kernel's storage is kept for the next solve (a larger one reused by a smaller
        # problem, a smaller one replaced): the same answers as before, also from concurrent
        # Python threads.
        problems = [problem(rng, n, n - 50) for n in (700, 500, 900)]

        def solve(p):
            return pyot.sinkhorn(*p, eps=0.05, tol=1e-9, method="scaling")

        first = [solve(p) for p in problems]
        again = [solve(p) for p in reversed(problems)][::-1]
        out = [None] * 6
        workers = [threading.Thread(target=lambda k=k: out.__setitem__(k, solve(problems[k % 3])))
                   for k in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for k, ref in enumerate(first):
            for res in (again[k], out[k], out[k + 3]):
                np.testing.assert_array_equal(res.f, ref.f)
                np.testing.assert_array_equal(res.g, ref.g)
                assert res.value == ref.value

    def test_relaxation_weight_raised(self):
        # d = 64 uniform clouds: the plain rate is still growing when over-relaxation starts, so
        # the first weight is too small; the rate observed at it raises the weight (100
        # iterations before this, 61 now), and the answer is the log domain's.
        g = np.random.default_rng(0)
        x, y = g.random((400, 64)), g.random((400, 64))
        cost = cdist(x, y, "sqeuclidean")
        cost /= cost.max()
        res = pyot.sinkhorn(cost, eps=0.01, tol=1e-8)
        ref = pyot.sinkhorn(cost, eps=0.01, tol=1e-11, method="log")
        assert res.converged
        assert res.n_iter <= 70
        np.testing.assert_allclose(res.plan, ref.plan, rtol=1e-5, atol=1e-12)
        assert res.value == pytest.approx(ref.value, rel=1e-7)

    def test_unbalanced(self, rng):
        from pyot.sinkhorn import _run

        cost, a, b = problem(rng, 400, 300)
        opts = dict(eps=0.05, tol=1e-10, max_iter=10_000, threads=None,
                    reg_marginals=(0.5, 2.0))
        sc = _run("t", cost, a, b, method="scaling", **opts).result
        lg = _run("t", cost, a, b, method="log", **opts).result
        assert sc.converged
        np.testing.assert_allclose(sc.f, lg.f, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(sc.g, lg.g, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(sc.objective, lg.objective, rtol=1e-9)
