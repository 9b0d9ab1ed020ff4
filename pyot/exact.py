"""Exact optimal transport: the network simplex and the closed form on the line.

Both run on the compiled core (``csrc/include/pyot/exact.hpp``). Math and conventions:
ALGORITHMS.md section 3.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _core
from . import _validate as V
from ._problem import validated_problem
from ._result import OTResult, warn_not_converged

__all__ = ["emd", "wasserstein_1d"]

_STATUS_CONVERGED = 0


def _support_plan(
    problem_index: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    mass: np.ndarray,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> sp.csr_array | sp.coo_array:
    """A sparse plan from its support: CSR for one problem, an n-D COO array for a batch."""
    values = mass.astype(dtype, copy=False)
    if len(shape) == 2:
        return sp.csr_array((values, (rows, cols)), shape=shape)
    return sp.coo_array((values, (problem_index, rows, cols)), shape=shape)


def _marginal_error(
    problem_index: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    mass: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """``||P 1 - a||_1 + ||P^T 1 - b||_1`` per problem, from the plans' support."""
    batch, n = a.shape
    m = b.shape[1]
    row_sums = np.bincount(problem_index * n + rows, weights=mass, minlength=batch * n)
    col_sums = np.bincount(problem_index * m + cols, weights=mass, minlength=batch * m)
    row_err = np.abs(row_sums.reshape(batch, n) - a).sum(axis=1)
    return row_err + np.abs(col_sums.reshape(batch, m) - b).sum(axis=1)


def emd(
    cost: object,
    a: object = None,
    b: object = None,
    *,
    max_iter: int = 1_000_000,
    threads: int | None = None,
) -> OTResult:
    """Exact optimal transport by the network simplex.

    Solves ``min <P, C>`` over the couplings ``P >= 0`` with ``P 1 = a`` and ``P^T 1 = b``
    exactly (in double precision): the plan is a vertex of the transport polytope, with at most
    ``n + m - 1`` nonzeros, and ``f``, ``g`` are optimal dual potentials
    (``f_i + g_j <= C_ij``, with equality on the plan's support, and
    ``<a, f> + <b, g> = <P, C>``).

    Equal uniform weights on a square cost (``n = m``, every ``a_i`` equal, every ``b_j``
    equal: the assignment problem, e.g. mini-batch OT) are solved by a dense
    shortest-augmenting-path solver (Jonker-Volgenant) instead, several times faster there; its
    plan is a permutation (``n`` nonzeros of mass ``a_i``) with the same exact potentials.

    Parameters
    ----------
    cost : array_like, shape (n, m) or (B, n, m), or PointCloud
        Cost matrix; a leading batch dimension solves B independent problems in parallel (one
        per thread). A PointCloud is materialised.
    a, b : array_like, shape (n,) / (m,) (or (B, n) / (B, m)), optional
        Non-negative weights of equal total mass; ``None`` is uniform. Zero weights are
        dropped from the solve and their potentials recovered by c-transform.
    max_iter : int, default 1_000_000
        Cap on simplex pivots (the assignment solver needs at most ``n`` shortest-path
        searches and is used only when ``max_iter >= n``). When it is hit the current (not
        optimal, possibly not feasible) plan is returned with ``converged=False`` and a
        :class:`ConvergenceWarning`.
    threads : int, optional
        Threads for the pricing of one problem, or for the problems of a batch (default: all
        cores). The pivot rule does not depend on the thread count, so neither does the result.

    Returns
    -------
    OTResult
        ``value`` (``<P, C>``), ``plan`` (``scipy.sparse.csr_array`` of shape (n, m); for a
        batch an n-D ``scipy.sparse.coo_array`` of shape (B, n, m)), ``f``, ``g``, ``n_iter``
        (pivots; for the assignment solver, its shortest-path searches), ``marginal_error``
        and ``converged``. float32 costs give float32 plans and potentials.

    Raises
    ------
    ValueError
        Bad shapes, non-finite or negative weights, unequal masses, non-finite costs.
    TypeError
        Non-numeric input.

    Notes
    -----
    The pricing is a candidate-list block search: blocks of ``3 sqrt(nm)`` arcs are scanned
    until one holds improving arcs, and its few best arcs enter over the next pivots. The
    spanning tree is kept strongly feasible, so degenerate pivots never cycle. Optimality is
    confirmed by a full pass over the cost with potentials recomputed from the tree.

    References
    ----------
    Bonneel, van de Panne, Paris, Heidrich (2011), Displacement interpolation using
    Lagrangian mass transport.

    Examples
    --------
    >>> import numpy as np
    >>> import pyot
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = pyot.emd(C, [0.5, 0.5], [0.5, 0.5])
    >>> res.value
    0.0
    >>> res.plan.toarray()
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    fn = "pyot.emd"
    max_iter = V.integer(max_iter, "max_iter", fn, minimum=0)
    n_threads = V.threads(threads, fn)
    problem = validated_problem(cost, a, b, fn, balanced=True)
    status, n_iter, value, f, g, k, rows, cols, mass = _core.emd(
        problem.cost, problem.a, problem.b, max_iter=max_iter, threads=n_threads
    )
    dtype = problem.dtype
    batch, n, m = problem.cost.shape
    shape = (batch, n, m) if problem.batched else (n, m)
    plan = _support_plan(k, rows, cols, mass, shape, dtype)
    err = _marginal_error(k, rows, cols, mass, problem.a, problem.b)
    converged = status == _STATUS_CONVERGED
    if problem.batched:
        fields = dict(value=value, f=f.astype(dtype), g=g.astype(dtype), n_iter=n_iter,
                      marginal_error=err, converged=converged)
    else:
        fields = dict(value=float(value[0]), f=f[0].astype(dtype), g=g[0].astype(dtype),
                      n_iter=int(n_iter[0]), marginal_error=float(err[0]),
                      converged=bool(converged[0]))
    result = OTResult(plan=plan, **fields)
    warn_not_converged(fn, result, "Raise max_iter.")
    return result


def _line_weights(w: object, size: int, name: str, fn: str) -> np.ndarray | None:
    """None (uniform) or probability weights of shape (size,)."""
    if w is None:
        return None
    arr = V.weights(w, size, name, fn)
    return arr / arr.sum()


def wasserstein_1d(
    u: object,
    v: object,
    u_weights: object = None,
    v_weights: object = None,
    *,
    p: float = 1.0,
) -> float | np.ndarray:
    """Wasserstein distance on the line, raised to the power p: ``W_p^p``.

    For the cost ``|x - y|^p`` with ``p >= 1`` the monotone (sorted) coupling is optimal, so
    ``W_p^p = int_0^1 |F^{-1}(t) - G^{-1}(t)|^p dt`` is computed exactly by sorting both
    samples and merging their cumulative weights: O((n + m) log(n + m)) time, O(n + m)
    memory. Sorts are radix sorts on the floats' bit patterns; columns and the two samples
    are sorted in parallel.

    Parameters
    ----------
    u, v : array_like, shape (n,) / (m,), or (n, k) / (m, k)
        Samples; with two dimensions every column is an independent 1D problem.
    u_weights, v_weights : array_like, shape (n,) / (m,), optional
        Non-negative weights shared by the columns, normalised to probabilities; ``None`` is
        uniform.
    p : float, default 1.0
        Exponent of the ground cost, ``p >= 1`` (for ``p < 1`` the sorted coupling is not
        optimal and a ``ValueError`` is raised).

    Returns
    -------
    float or ndarray of shape (k,)
        ``W_p^p`` (not its p-th root), like POT's ``wasserstein_1d``.

    Raises
    ------
    ValueError
        ``p < 1``, mismatched shapes, NaN or inf, bad weights.

    Examples
    --------
    >>> import pyot
    >>> pyot.wasserstein_1d([0.0, 1.0], [0.5, 2.5])
    1.0
    >>> pyot.wasserstein_1d([0.0, 1.0], [0.5, 2.5], p=2.0)
    1.25
    """
    fn = "pyot.wasserstein_1d"
    x = V.as_array(u, "u", fn, ndim=(1, 2))
    y = V.as_array(v, "v", fn, ndim=(1, 2))
    if x.ndim != y.ndim or (x.ndim == 2 and x.shape[1] != y.shape[1]):
        raise ValueError(
            f"{fn}: u and v must both be 1-D, or 2-D with the same number of columns, got "
            f"shapes {x.shape} and {y.shape}"
        )
    p = V.line_exponent(p, fn)
    columns = x.ndim == 2
    k = x.shape[1] if columns else 1
    wu = _line_weights(u_weights, x.shape[0], "u_weights", fn)
    wv = _line_weights(v_weights, y.shape[0], "v_weights", fn)
    dtype = V.float_dtype(x, y)
    x2 = np.ascontiguousarray(x.reshape(x.shape[0], k), dtype=dtype)
    y2 = np.ascontiguousarray(y.reshape(y.shape[0], k), dtype=dtype)
    out = _core.wasserstein_1d(x2, y2, wu, wv, p=p, threads=V.threads(None, fn))
    return out if columns else float(out[0])
