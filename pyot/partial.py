"""Partial optimal transport: move exactly ``mass`` between measures of unequal masses.

``partial_ot`` solves ``min <P, C>`` over ``P >= 0``, ``P 1 <= a``, ``P^T 1 <= b``,
``sum P = mass``: exactly by the network simplex on an augmented problem, or with an entropic
term by block ascent on the dual in the log domain (``csrc/include/pyot/partial.hpp``).
``partial_wasserstein_1d`` is the same problem on the line with cost ``|x - y|^p``. Math:
ALGORITHMS.md section 6.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _core
from . import _validate as V
from ._problem import Problem, validated_problem
from ._result import Lazy, OTResult, SinkhornResult, warn_not_converged
from .costs import METRICS
from .sinkhorn import _DEFAULT_EPS_SCALING, _DENSE_LIMIT, _EPS_SCALING_RATIO, _gibbs_plan

__all__ = ["partial_ot", "partial_wasserstein_1d"]

_STATUS_CONVERGED, _STATUS_NOT_FINITE = 0, 2
# Masses agree with min(sum a, sum b) to this relative tolerance (then the slack is zero).
_MASS_RTOL = 1e-12


def _mass(mass: object, a: np.ndarray, b: np.ndarray, fn: str) -> float:
    """``0 < mass <= min(sum a, sum b)``, snapped to the bound within round-off."""
    s = V.positive(mass, "mass", fn)
    sa, sb = float(a.sum()), float(b.sum())
    bound = min(sa, sb)
    if s > bound * (1 + _MASS_RTOL):
        raise ValueError(
            f"{fn}: mass must be at most min(sum(a), sum(b)) = {bound:.10g} (a sums to "
            f"{sa:.10g}, b sums to {sb:.10g}), got {s!r}"
        )
    return min(s, bound)


def _exact(problem: Problem, mass: float, max_iter: int, threads: int, fn: str) -> OTResult:
    cost, a, b = problem.cost[0], problem.a[0], problem.b[0]
    n, m = cost.shape
    status, n_iter, value, f, g, rows, cols, flow = _core.partial_exact(
        cost, a, b, mass=mass, max_iter=max_iter, threads=threads
    )
    dtype = problem.dtype
    plan = sp.csr_array((flow.astype(dtype), (rows, cols)), shape=(n, m))
    row_mass = np.bincount(rows, weights=flow, minlength=n)
    col_mass = np.bincount(cols, weights=flow, minlength=m)
    err = _kkt_residual(row_mass, col_mass, a, b, f, g, mass)
    result = OTResult(value=value, plan=plan, f=f.astype(dtype), g=g.astype(dtype),
                      n_iter=n_iter, marginal_error=err, converged=status == _STATUS_CONVERGED)
    warn_not_converged(fn, result, "Raise max_iter.")
    return result


def _kkt_residual(row_mass, col_mass, a, b, f, g, mass) -> float:
    """Binding capacities (negative price) must be met, slack ones not exceeded; plus the mass."""
    def side(got, cap, price):
        excess = got - cap
        return np.where(price < 0, np.abs(excess), np.maximum(excess, 0.0))[cap > 0].sum()

    return float(side(row_mass, a, f) + side(col_mass, b, g) + abs(row_mass.sum() - mass))


def _entropic(
    problem: Problem, mass: float, eps: float, tol: float, max_iter: int, threads: int, fn: str
) -> SinkhornResult:
    a, b = problem.a[0], problem.b[0]
    f, g = np.zeros_like(a), np.zeros_like(b)
    if problem.online:
        cost_range = problem.cost.cost_range()
    else:
        cost_range = float(problem.ranges[0])
    # Annealed from the cost's range when eps is small against it, as sinkhorn does.
    q = _DEFAULT_EPS_SCALING if cost_range > _EPS_SCALING_RATIO * eps else 0.0
    options = dict(lam=0.0, eps=eps, mass=mass, tol=tol, max_iter=max_iter,
                   eps_start=cost_range, eps_scaling=q, threads=threads)
    if problem.online:
        geom = problem.cost
        out = _core.partial_entropic_online(
            geom.x, geom.y, METRICS[geom.metric], geom.p, a, b, f, g, **options
        )
        dense = geom.dense
    else:
        cost = problem.cost[0]
        out = _core.partial_entropic_dense(cost, a, b, f, g, **options)

        def dense():
            return cost
    status, n_iter, err, value, objective, lam = out
    if status == _STATUS_NOT_FINITE:
        raise FloatingPointError(f"{fn}: the iterations produced non-finite values")
    dtype = problem.dtype
    plan = Lazy(lambda: _gibbs_plan(dense(), a, b, f + lam, g, eps))
    result = SinkhornResult(
        value=value, plan=plan, f=f.astype(dtype), g=g.astype(dtype), n_iter=n_iter,
        marginal_error=err, converged=status == _STATUS_CONVERGED, objective=objective, eps=eps,
    )
    warn_not_converged(fn, result, "Raise max_iter, loosen tol or increase eps.")
    return result


def partial_ot(
    cost: object,
    a: object = None,
    b: object = None,
    *,
    mass: float,
    eps: float | None = None,
    tol: float = 1e-6,
    max_iter: int | None = None,
    threads: int | None = None,
) -> OTResult | SinkhornResult:
    """Partial optimal transport: the cheapest way to move exactly ``mass``.

    Solves ``min <P, C>`` over ``P >= 0`` with ``P 1 <= a``, ``P^T 1 <= b`` and
    ``sum P = mass``, for measures of any (unequal) masses.

    Parameters
    ----------
    cost : array_like, shape (n, m), or PointCloud
        Cost matrix or lazy point-cloud cost.
    a, b : array_like, shape (n,) / (m,), optional
        Non-negative weights (any total masses); ``None`` is uniform with mass 1.
    mass : float
        The mass to transport, ``0 < mass <= min(sum(a), sum(b))``.
    eps : float, optional
        ``None`` (default) solves exactly: the network simplex on the augmented problem of
        Chapel et al. (2020), a sparse plan. A positive ``eps`` adds ``eps KL(P | a b^T)``
        and solves by block ascent on the dual in the log domain, stable for small ``eps``
        and in float32; when ``eps`` is below 1/500 of the cost's range it is annealed from
        the range by halving (short warm-start stages, as in :func:`pyot.sinkhorn`).
    tol : float, default 1e-6
        Entropic only: stop when the L1 KKT residual (capacity and mass constraints) is below.
    max_iter : int, optional
        Pivots (exact, default 1_000_000) or iterations (entropic, default 10_000).
    threads : int, optional
        Threads of the core (default: all cores).

    Returns
    -------
    OTResult or SinkhornResult
        Exact: ``OTResult`` with a ``scipy.sparse.csr_array`` plan. Entropic:
        ``SinkhornResult`` (``objective`` is ``<P, C> + eps KL(P | a b^T)``). ``f`` and ``g``
        are the capacity prices (``<= 0``; negative only where a constraint binds); with
        ``lam`` the price of mass, ``C_ij >= f_i + g_j + lam`` with equality on the exact
        plan's support, and the entropic plan is
        ``a_i b_j exp((f_i + g_j + lam - C_ij) / eps)``. ``marginal_error`` is the L1 KKT
        residual.

    Raises
    ------
    ValueError
        ``mass`` out of range (the message gives both sums), bad weights, shapes or costs.

    References
    ----------
    Chapel, Alaya, Gasso (2020), Partial optimal transport with applications on
    positive-unlabeled learning. Benamou et al. (2015), Iterative Bregman projections for
    regularized transportation problems.

    Examples
    --------
    >>> import numpy as np
    >>> import pyot
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    >>> res = pyot.partial_ot(C, [0.25, 0.25, 0.5], [0.5, 0.5], mass=0.5)
    >>> round(res.value, 12)
    0.0
    >>> res.plan.toarray()
    array([[0.25, 0.  ],
           [0.  , 0.25],
           [0.  , 0.  ]])
    """
    fn = "pyot.partial_ot"
    n_threads = V.threads(threads, fn)
    if eps is None:
        max_iter = V.integer(1_000_000 if max_iter is None else max_iter, "max_iter", fn)
        problem = validated_problem(cost, a, b, fn, balanced=False)
        _single(problem, fn)
        return _exact(problem, _mass(mass, problem.a, problem.b, fn), max_iter, n_threads, fn)
    eps = V.positive(eps, "eps", fn)
    tol = V.non_negative(tol, "tol", fn)
    max_iter = V.integer(10_000 if max_iter is None else max_iter, "max_iter", fn)
    problem = validated_problem(cost, a, b, fn, balanced=False, dense_limit=_DENSE_LIMIT)
    _single(problem, fn)
    s = _mass(mass, problem.a, problem.b, fn)
    return _entropic(problem, s, eps, tol, max_iter, n_threads, fn)


def _single(problem: Problem, fn: str) -> None:
    if problem.batched:
        raise ValueError(f"{fn}: cost must have shape (n, m); batches are not supported")


def partial_wasserstein_1d(
    u: object,
    v: object,
    u_weights: object = None,
    v_weights: object = None,
    *,
    mass: float,
    p: float = 1.0,
) -> OTResult:
    """Exact partial optimal transport on the line, cost ``|x - y|^p``.

    Parameters
    ----------
    u, v : array_like, shape (n,) / (m,)
        Sample positions.
    u_weights, v_weights : array_like, optional
        Non-negative weights (any total masses); ``None`` is uniform with mass 1.
    mass : float
        The mass to transport, ``0 < mass <= min(sum(u_weights), sum(v_weights))``.
    p : float, default 1.0
        Exponent of the ground cost, ``p >= 1``.

    Returns
    -------
    OTResult
        ``value`` (the partial ``W_p^p`` cost of moving ``mass``), ``plan``
        (``scipy.sparse.csr_array`` in the caller's order), capacity prices ``f``, ``g``.

    Notes
    -----
    Algorithm: the augmented problem of :func:`partial_ot` on the ``(n, m)`` cost
    ``|u_i - v_j|^p``, solved by the network simplex: exact for every weight vector and every
    ``p >= 1``, in O(nm) memory (the fast 1D methods known, e.g. Chapel and Tavenard's
    O(n log n) PAWL, cover only equal point masses and ``p = 1``).

    Examples
    --------
    >>> import pyot
    >>> res = pyot.partial_wasserstein_1d([0.0, 1.0, 10.0], [0.1, 1.2], mass=2 / 3)
    >>> round(res.value, 10)
    0.1
    """
    fn = "pyot.partial_wasserstein_1d"
    x = V.as_array(u, "u", fn, ndim=1)
    y = V.as_array(v, "v", fn, ndim=1)
    wu = V.weights(u_weights, x.shape[0], "u_weights", fn)
    wv = V.weights(v_weights, y.shape[0], "v_weights", fn)
    p = V.line_exponent(p, fn)
    dtype = V.float_dtype(x, y)
    diff = np.abs(x.astype(np.float64)[:, None] - y.astype(np.float64)[None, :])
    cost = (diff if p == 1 else diff**p).astype(dtype)
    problem = Problem(cost[None], wu[None], wv[None], False, dtype)
    s = _mass(mass, wu, wv, fn)
    return _exact(problem, s, 1_000_000, V.threads(None, fn), fn)
