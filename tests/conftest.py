"""Shared fixtures and reference implementations for the pyot test suite.

The references here are deliberately simple and independent of pyot: an exact OT solver
through ``scipy.optimize.linprog`` (HiGHS), a plain float64 log-domain Sinkhorn in numpy with
pyot's potential convention, and the KL / entropic-objective formulas of ALGORITHMS.md.
Helpers are exposed as session-scoped fixtures (usable from hypothesis tests too).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.special import logsumexp

SEED = 20240607


@pytest.fixture
def rng():
    """A freshly seeded generator per test: tests are reproducible and independent."""
    return np.random.default_rng(SEED)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


# ----------------------------------------------------------------------------- references


def kl(p, q):
    """Generalized KL(p | q) = sum p log(p / q) - p + q, with 0 log 0 = 0 (float64)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    pos = p > 0
    out = np.sum(q) - np.sum(p)
    return float(out + np.sum(p[pos] * np.log(p[pos] / q[pos])))


def entropic_objective(plan, cost, a, b, eps):
    """<P, C> + eps KL(P | a b^T): the balanced entropic objective of a plan."""
    plan = np.asarray(plan, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    ref = np.outer(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return float(np.sum(plan * cost) + eps * kl(plan, ref))


def unbalanced_objective(plan, cost, a, b, eps, tau_a, tau_b):
    """Primal objective of KL-relaxed entropic OT (an infinite tau is a hard constraint)."""
    plan = np.asarray(plan, dtype=np.float64)
    val = entropic_objective(plan, cost, a, b, eps)
    if np.isfinite(tau_a):
        val += tau_a * kl(plan.sum(axis=1), a)
    if np.isfinite(tau_b):
        val += tau_b * kl(plan.sum(axis=0), b)
    return val


def marginal_error(plan, a, b):
    """L1 marginal error ||P 1 - a||_1 + ||P^T 1 - b||_1 (float64)."""
    plan = np.asarray(plan, dtype=np.float64)
    return float(np.abs(plan.sum(axis=1) - a).sum() + np.abs(plan.sum(axis=0) - b).sum())


def exact_ot(cost, a, b):
    """Exact OT by linear programming (HiGHS). Returns (value, plan)."""
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    rows = sp.kron(sp.eye(n), np.ones((1, m)))  # sum_j P_ij = a_i
    cols = sp.kron(np.ones((1, n)), sp.eye(m))  # sum_i P_ij = b_j
    a_eq = sp.vstack([rows, cols]).tocsr()
    b_eq = np.concatenate([a, b]).astype(np.float64)
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return float(res.fun), res.x.reshape(n, m)


def reference_sinkhorn(cost, a, b, eps, *, tol=1e-13, max_iter=200_000):
    """Plain float64 log-domain Sinkhorn with pyot's convention.

    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). Returns (f, g, plan).
    """
    cost = np.asarray(cost, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore"):
        loga, logb = np.log(a), np.log(b)
    f = np.zeros(cost.shape[0])
    g = np.zeros(cost.shape[1])
    for _ in range(max_iter):
        f = -eps * logsumexp(logb[None, :] + (g[None, :] - cost) / eps, axis=1)
        g = -eps * logsumexp(loga[:, None] + (f[:, None] - cost) / eps, axis=0)
        plan = np.outer(a, b) * np.exp((f[:, None] + g[None, :] - cost) / eps)
        if np.abs(plan.sum(axis=1) - a).sum() <= tol:
            return f, g, plan
    raise AssertionError("reference Sinkhorn did not converge")


def random_weights(rng, n, *, zeros=0):
    """Positive random weights summing to 1 (with `zeros` entries set to exactly 0)."""
    w = rng.uniform(0.2, 1.0, size=n)
    if zeros:
        w[rng.choice(n, size=zeros, replace=False)] = 0.0
    return w / w.sum()


def sinkhorn_module():
    """The module pyot/sinkhorn.py (the name `pyot.sinkhorn` is shadowed by the function)."""
    return importlib.import_module("pyot.sinkhorn")


def arg_pattern(name):
    """A regex that matches an error message naming the argument `name`.

    Multi-letter names must occur as a whole word (``eps`` does not match ``eps_scaling``).
    Single-letter names (``a``, ``b``, ``x``, ``y``, ``p``) are ordinary English words, so they
    must be quoted or followed by what names an argument (``a must``, ``a sums``, ``a=``, ...).
    """
    n = re.escape(name)
    if len(name) > 1:
        return rf"(?<![\w.]){n}(?!\w)"
    verbs = (
        "must|has|have|had|contains|contain|is|are|was|were|should|sums|sum|and|of|needs|"
        "with|does|do|cannot|can"
    )
    return rf"[`'\"]{n}[`'\"]|(?<![\w.]){n}(?=\s*[=\[(:,]|\.shape|\s+(?:{verbs})\b)"


def good_problem():
    """A small valid balanced problem (cost (4, 5), uniform weights)."""
    cost = np.arange(20, dtype=np.float64).reshape(4, 5) / 20.0
    return cost, np.full(4, 0.25), np.full(5, 0.2)


def with_entry(arr, idx, value):
    """A float64 copy of arr with arr[idx] = value."""
    arr = np.array(arr, dtype=np.float64)
    arr[idx] = value
    return arr


_cost, _a, _b = good_problem()

# The battery every solver taking (cost, a, b) must pass: (id, args, kwargs, exception,
# the argument the message names).
BAD_COST_AND_WEIGHTS = [
    ("cost-nan", (with_entry(_cost, (1, 2), np.nan), _a, _b), {}, ValueError, "cost"),
    ("cost-inf", (with_entry(_cost, (0, 0), np.inf), _a, _b), {}, ValueError, "cost"),
    ("cost-neginf", (with_entry(_cost, (0, 0), -np.inf), _a, _b), {}, ValueError, "cost"),
    ("a-nan", (_cost, with_entry(_a, 1, np.nan), _b), {}, ValueError, "a"),
    ("a-inf", (_cost, with_entry(_a, 1, np.inf), _b), {}, ValueError, "a"),
    ("b-nan", (_cost, _a, with_entry(_b, 0, np.nan)), {}, ValueError, "b"),
    ("b-inf", (_cost, _a, with_entry(_b, 0, np.inf)), {}, ValueError, "b"),
    ("a-negative", (_cost, np.array([0.5, 0.5, 0.25, -0.25]), _b), {}, ValueError, "a"),
    ("b-negative", (_cost, _a, np.array([0.4, 0.4, 0.2, 0.2, -0.2])), {}, ValueError, "b"),
    ("a-all-zero", (_cost, np.zeros(4), np.zeros(5)), {}, ValueError, "a"),
    ("a-wrong-length", (_cost, np.full(5, 0.2), _b), {}, ValueError, "a"),
    ("b-wrong-length", (_cost, _a, np.full(4, 0.25)), {}, ValueError, "b"),
    ("a-2d", (_cost, np.full((4, 1), 0.25), _b), {}, ValueError, "a"),
    ("cost-1d", (np.ones(5), None, None), {}, ValueError, "cost"),
    ("cost-4d", (np.ones((2, 2, 2, 2)), None, None), {}, ValueError, "cost"),
    ("cost-0d", (np.float64(1.0), None, None), {}, ValueError, "cost"),
    ("cost-empty-rows", (np.ones((0, 3)), None, None), {}, ValueError, "cost"),
    ("cost-empty-cols", (np.ones((3, 0)), None, None), {}, ValueError, "cost"),
    ("a-empty", (np.ones((0, 3)), np.ones(0), None), {}, ValueError, "cost"),
    ("cost-complex", (_cost.astype(np.complex128), _a, _b), {}, TypeError, "cost"),
    ("cost-str", (np.array([["a", "b"], ["c", "d"]]), None, None), {}, TypeError, "cost"),
    (
        "cost-object",
        (np.array([[0.0, None], [1.0, 0.0]], dtype=object), None, None),
        {},
        TypeError,
        "cost",
    ),
    ("cost-object-float", (_cost.astype(object), None, None), {}, TypeError, "cost"),
    ("a-complex", (_cost, _a.astype(np.complex128), _b), {}, TypeError, "a"),
    ("b-str", (_cost, _a, np.array(["x"] * 5)), {}, TypeError, "b"),
    ("a-object", (_cost, _a.astype(object), _b), {}, TypeError, "a"),
]


@pytest.fixture(scope="session")
def ref():
    """Namespace of reference implementations (session-scoped: safe under hypothesis)."""
    return SimpleNamespace(
        kl=kl,
        entropic_objective=entropic_objective,
        unbalanced_objective=unbalanced_objective,
        marginal_error=marginal_error,
        exact_ot=exact_ot,
        sinkhorn=reference_sinkhorn,
        weights=random_weights,
        arg=arg_pattern,
    )


@pytest.fixture
def force_online(monkeypatch):
    """Force PointCloud costs onto the online (never materialized) Sinkhorn path."""
    mod = sinkhorn_module()
    assert hasattr(mod, "_DENSE_LIMIT"), "pyot/sinkhorn.py must define _DENSE_LIMIT"
    monkeypatch.setattr(mod, "_DENSE_LIMIT", 0)
    return mod


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter: the same environment, but a neutral working directory
    (a checkout's own pyot/ folder has no compiled core and must not shadow the installed one)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd,
        check=False,
    )
