"""Entropic optimal transport: Sinkhorn, the Sinkhorn divergence and unbalanced Sinkhorn.

All three run on the compiled core (``csrc/include/pyot/sinkhorn.hpp``): log-domain updates
that are stable for any eps, the stabilized scaling domain where it is safe and faster,
eps-scaling, adaptive over-relaxation, online point-cloud costs and batches. Math and
conventions: ALGORITHMS.md section 2. Potentials follow the reference measure ``a b^T``::

    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _core, _cuda
from . import _validate as V
from ._problem import Problem, validated_problem
from ._result import Lazy, SinkhornResult, warn_not_converged
from .costs import METRICS, PointCloud, _metric, _points

__all__ = ["sinkhorn", "sinkhorn_divergence", "unbalanced_sinkhorn"]

# A PointCloud with at most this many cost entries is solved on its materialised matrix (faster
# per iteration); larger ones are solved online in O((n + m) d) memory.
_DENSE_LIMIT = 1 << 22
# eps_scaling=None anneals eps when range(C) / eps exceeds this: below it over-relaxation alone
# needs fewer iterations than the annealing stages (measured, n = 1000 uniform clouds).
_EPS_SCALING_RATIO = 500.0
_DEFAULT_EPS_SCALING = 0.5
_METHODS = {"auto": 0, "log": 1, "scaling": 2}
_STATUS_CONVERGED, _STATUS_NOT_FINITE = 0, 2


def _initial_potentials(init: object, problem: Problem, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Fresh float64 (B, n) and (B, m) buffers: zeros or a copy of ``init=(f, g)``."""
    shape_f, shape_g = problem.a.shape, problem.b.shape
    if init is None:
        return np.zeros(shape_f), np.zeros(shape_g)
    if not isinstance(init, Sequence) or len(init) != 2:
        kind = type(init).__name__
        raise TypeError(f"{fn}: init must be a pair (f, g) of potentials, got {kind}")
    f = V.as_array(init[0], "init[0] (f)", fn, dtype=np.float64)
    g = V.as_array(init[1], "init[1] (g)", fn, dtype=np.float64)
    want_f = shape_f if problem.batched else shape_f[1:]
    want_g = shape_g if problem.batched else shape_g[1:]
    if f.shape != want_f or g.shape != want_g:
        raise ValueError(
            f"{fn}: init potentials must have shapes {want_f} and {want_g}, got {f.shape} "
            f"and {g.shape}"
        )
    return f.reshape(shape_f).copy(), g.reshape(shape_g).copy()


def _annealing(eps_scaling: object, fn: str) -> float | None:
    """None (automatic), 0.0 (off) or the factor q in (0, 1)."""
    if eps_scaling is None:
        return None
    if eps_scaling is False:
        return 0.0
    q = V.real_number(eps_scaling, "eps_scaling", fn)
    if not 0.0 < q < 1.0:
        raise ValueError(
            f"{fn}: eps_scaling must be a factor in (0, 1), None (automatic) or False (off), "
            f"got {eps_scaling!r}"
        )
    return q


def _schedule(q: float | None, eps: float, ranges: np.ndarray, *, warm: bool,
              balanced: bool) -> tuple[float, np.ndarray]:
    """The eps schedule's factor and first eps per problem (shared with the CUDA path)."""
    if q is None:  # automatic: anneal from the cost's range when eps is small against it
        q = _DEFAULT_EPS_SCALING if (not warm and balanced) else 0.0
        if ranges.max() <= _EPS_SCALING_RATIO * eps:
            q = 0.0
    # A warm start begins the schedule near eps instead of at the cost's range.
    return q, np.minimum(ranges, 4.0 * eps) if warm else ranges


def _cost_ranges(problem: Problem) -> np.ndarray:
    if problem.online:
        return np.array([problem.cost.cost_range()])
    return problem.ranges


def _gibbs_plan(
    cost: np.ndarray, a: np.ndarray, b: np.ndarray, f: np.ndarray, g: np.ndarray, eps: float
) -> np.ndarray:
    """``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` (batched over a leading axis)."""
    with np.errstate(divide="ignore"):
        ha = np.log(a) + f / eps
        hb = np.log(b) + g / eps
    plan = np.exp(ha[..., :, None] + hb[..., None, :] - cost.astype(np.float64) / eps)
    return plan.astype(cost.dtype, copy=False)


def _solve(fn: str, cost: object, a: object, b: object, **options: object) -> SinkhornResult:
    """Shared front end of sinkhorn and unbalanced_sinkhorn (the options of :func:`_run`)."""
    return _run(fn, cost, a, b, **options).result


@dataclass
class Solved:
    """A solve with what differentiation needs (pyot.torch): the validated problem and the
    float64 ``(B, n)`` / ``(B, m)`` potentials before their cast to the cost's dtype."""

    problem: Problem
    result: SinkhornResult
    f: np.ndarray
    g: np.ndarray
    eps: float
    plan_y_written: bool = False  # _run's plan_y: its output holds P y at (f, g)


def _run(
    fn: str,
    cost: object,
    a: object,
    b: object,
    *,
    eps: object,
    tol: object,
    max_iter: object,
    threads: object,
    eps_scaling: object = False,
    init: object = None,
    method: object = "auto",
    reg_marginals: tuple[float, float] = (math.inf, math.inf),
    value: bool = True,
    plan_y: tuple[np.ndarray, np.ndarray, bool] | None = None,
    cost_range: float | None = None,
    device: object = None,
) -> Solved:
    """The shared solve. ``value=False`` (internal callers that only read ``objective``, such as
    pyot.inverse, the divergence and pyot.torch's SinkhornLoss) skips ``<P, C>``, one exp pass
    over the cost: the result's ``value`` is then NaN.

    ``plan_y=(y, out, fused_only)`` (internal, pyot.inverse; a single dense problem): ``y``
    float64 C-contiguous ``(m, d)``, ``out`` float64 ``(n, d)``; ``P @ y`` at the returned
    potentials is written into ``out`` (``plan_y_written``): fused into the float kernel's exact
    confirmation pass when that ran there, else by an exp pass of its own, skipped when
    ``fused_only``.

    ``cost_range`` (internal, pyot.inverse): the caller built ``cost`` itself (float64,
    C-contiguous, 2-D, finite; ``a`` and ``b`` float64 of equal mass) and measured
    ``max C - min C`` while doing so: the validation pass over the cost is skipped."""
    eps = V.positive(eps, "eps", fn)
    tol = V.non_negative(tol, "tol", fn)
    max_iter = V.integer(max_iter, "max_iter", fn, minimum=0)
    n_threads = V.threads(threads, fn)
    method = V.choice(method, "method", fn, tuple(_METHODS))
    q = _annealing(eps_scaling, fn)
    balanced = reg_marginals == (math.inf, math.inf)
    on_gpu = _cuda.device(device, fn) == "cuda"
    if on_gpu and (method == "scaling" or not balanced):
        raise ValueError(
            f"{fn}: device='cuda' runs balanced log-domain Sinkhorn; method='scaling' and "
            "unbalanced problems are solved on the CPU (device=None)"
        )
    if method == "scaling" and isinstance(cost, PointCloud):
        raise ValueError(
            f"{fn}: method='scaling' needs a dense cost matrix; a PointCloud is solved online "
            "in the log domain (use method='auto' or 'log', or pass PointCloud.dense())"
        )
    if cost_range is None:
        problem = validated_problem(cost, a, b, fn, balanced=balanced,
                                    dense_limit=0 if on_gpu else _DENSE_LIMIT)
    else:
        assert isinstance(cost, np.ndarray)
        assert isinstance(a, np.ndarray)
        assert isinstance(b, np.ndarray)
        problem = Problem(cost[None], a[None], b[None], False, cost.dtype,
                          np.array([cost_range]))
    if on_gpu and problem.batched:
        raise ValueError(
            f"{fn}: device='cuda' solves one problem at a time, got a batch of "
            f"{problem.a.shape[0]} costs; loop over them or use device=None"
        )
    f, g = _initial_potentials(init, problem, fn)
    ranges = _cost_ranges(problem)
    q, eps_start = _schedule(q, eps, ranges, warm=init is not None, balanced=balanced)
    options = dict(
        eps=eps, tol=tol, max_iter=max_iter, eps_scaling=q, overrelax=balanced,
        tau_a=reg_marginals[0], tau_b=reg_marginals[1], threads=n_threads,
    )
    if on_gpu:
        out = _cuda.sinkhorn(problem, f, g, eps=eps, tol=tol, max_iter=max_iter, eps_scaling=q,
                             eps_start=float(eps_start[0]), value=value)
    elif problem.online:
        geom = problem.cost
        out = _core.sinkhorn_online(
            geom.x, geom.y, METRICS[geom.metric], geom.p, problem.a[0], problem.b[0], f[0], g[0],
            cost_range=float(ranges[0]), eps_start=float(eps_start[0]), value=value, **options,
        )
    else:
        product = {} if plan_y is None else dict(
            plan_y=plan_y[0], plan_y_out=plan_y[1], plan_y_fused_only=plan_y[2]
        )
        out = _core.sinkhorn_dense(
            problem.cost, problem.a, problem.b, f, g, ranges, eps_start,
            method=_METHODS[method], value=value, **options, **product,
        )
    written = len(out) > 5 and bool(out[5])
    return Solved(problem, _result(fn, problem, out[:5], f, g, eps), f, g, eps, written)


def _result(
    fn: str, problem: Problem, out: tuple, f: np.ndarray, g: np.ndarray, eps: float
) -> SinkhornResult:
    status, n_iter, err, value, objective = out
    if (status == _STATUS_NOT_FINITE).any():
        raise FloatingPointError(
            f"{fn}: the iterations produced non-finite values; try method='log' or a larger eps"
        )
    dtype, a, b = problem.dtype, problem.a, problem.b
    fo, go = f.astype(dtype), g.astype(dtype)
    if problem.online:
        geom = problem.cost
        plan = Lazy(lambda: _gibbs_plan(geom.dense(), a[0], b[0], f[0], g[0], eps))
    else:
        cost = problem.cost
        plan = Lazy(lambda: _gibbs_plan(cost, a, b, f, g, eps) if problem.batched
                    else _gibbs_plan(cost[0], a[0], b[0], f[0], g[0], eps))
    converged = status == _STATUS_CONVERGED
    if problem.batched:
        fields = dict(value=value, f=fo, g=go, n_iter=n_iter, marginal_error=err,
                      converged=converged, objective=objective)
    else:
        fields = dict(value=float(value[0]), f=fo[0], g=go[0], n_iter=int(n_iter[0]),
                      marginal_error=float(err[0]), converged=bool(converged[0]),
                      objective=float(objective[0]))
    result = SinkhornResult(plan=plan, eps=eps, **fields)
    warn_not_converged(fn, result, "Raise max_iter, loosen tol or increase eps.")
    return result


def sinkhorn(
    cost: object,
    a: object = None,
    b: object = None,
    *,
    eps: float,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    eps_scaling: float | bool | None = None,
    init: tuple[object, object] | None = None,
    method: str = "auto",
    threads: int | None = None,
    device: str | None = None,
) -> SinkhornResult:
    """Balanced entropic optimal transport.

    Solves ``min_{P 1 = a, P^T 1 = b, P >= 0} <P, C> + eps KL(P | a b^T)`` by Sinkhorn's
    algorithm in the log domain (stable down to ``eps`` = 1e-4 of the cost's range), switching
    to the stabilized scaling domain when ``method="auto"`` finds it safe (it is faster per
    iteration), with eps-scaling and adaptive over-relaxation to cut the iteration count.

    Parameters
    ----------
    cost : array_like, shape (n, m) or (B, n, m), or PointCloud
        Cost matrix (a leading batch dimension solves B problems), or a lazy point-cloud
        cost, solved without forming the ``n x m`` matrix when it is large.
    a, b : array_like, shape (n,) / (m,) (or (B, n) / (B, m)), optional
        Non-negative weights of equal total mass; ``None`` is uniform.
    eps : float
        Entropic regularization, in the unit of the cost (absolute), positive.
    tol : float
        Stop when the L1 marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1 <= tol``.
    max_iter : int
        Iteration cap (all eps-scaling stages together).
    eps_scaling : float in (0, 1), None or False
        Annealing factor: eps decreases from the cost's range by this factor per stage.
        ``None`` decides automatically (on when ``eps`` is small against the cost's range and
        no ``init`` is given); ``False`` turns it off.
    init : (f, g), optional
        Warm-start potentials (in the convention above), e.g. from a previous result.
    method : {"auto", "log", "scaling"}
        ``"log"``: log-domain updates only. ``"scaling"``: the stabilized scaling domain with
        absorption (dense costs only). ``"auto"``: the scaling domain for eps-scaling stages
        where ``exp(-C / eps)`` stays representable, the log domain elsewhere.
    threads : int, optional
        Threads of the compiled core (default: all cores). Results do not depend on it.
    device : {None, "cpu", "cuda"}
        ``"cuda"`` solves on the GPU (a CUDA build of pyot and a usable device are needed, see
        :func:`pyot.cuda_available`): the inputs are copied there once and the result back
        once. One problem (no batch), ``method`` ``"auto"`` or ``"log"``; the GPU runs the
        log-domain iterations with the same eps schedule and over-relaxation (no Newton
        steps), and a point cloud is always evaluated online there.

    Returns
    -------
    SinkhornResult
        ``value`` (``<P, C>``), ``objective`` (``<P, C> + eps KL(P | a b^T)``, the dual value),
        ``f``, ``g`` (potentials), ``plan`` (computed on first access), ``n_iter``,
        ``marginal_error``, ``converged``, ``eps``. Batched input gives arrays with a leading B.

    Raises
    ------
    ValueError, TypeError
        Invalid input; the message names the argument.
    FloatingPointError
        The iterations produced non-finite numbers (not expected in the log domain).
    pyot.CudaError
        ``device="cuda"`` without a CUDA build or a usable GPU, or a failed CUDA call.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached first (``converged=False``).

    Examples
    --------
    >>> import numpy as np, pyot
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((50, 2)), rng.random((60, 2))
    >>> res = pyot.sinkhorn(pyot.cost_matrix(x, y), eps=0.01)
    >>> res.converged, res.plan.shape
    (True, (50, 60))
    >>> bool(abs(res.plan.sum() - 1) < 1e-6)
    True
    """
    return _solve(
        "pyot.sinkhorn", cost, a, b, eps=eps, tol=tol, max_iter=max_iter, threads=threads,
        eps_scaling=eps_scaling, init=init, method=method, device=device,
    )


def unbalanced_sinkhorn(
    cost: object,
    a: object = None,
    b: object = None,
    *,
    eps: float,
    reg_marginals: float | tuple[float, float],
    tol: float = 1e-6,
    max_iter: int = 10_000,
    threads: int | None = None,
) -> SinkhornResult:
    """Entropic optimal transport with KL-relaxed marginals.

    Solves ``min_{P >= 0} <P, C> + eps KL(P | a b^T) + tau_a KL(P 1 | a) + tau_b KL(P^T 1 | b)``
    (ALGORITHMS 2.7); the masses of ``a`` and ``b`` may differ.

    Parameters
    ----------
    cost : array_like, shape (n, m) or (B, n, m), or PointCloud
    a, b : array_like, optional
        Non-negative weights (any positive total masses); ``None`` is uniform with mass 1.
    eps : float
        Entropic regularization (absolute), positive.
    reg_marginals : float or (float, float)
        ``tau`` or ``(tau_a, tau_b)``; ``float("inf")`` makes that marginal a hard constraint.
    tol : float
        Stop when the L1 optimality residual ``||P 1 - a exp(-f / tau_a)||_1 +
        ||P^T 1 - b exp(-g / tau_b)||_1`` is below it.
    max_iter : int
    threads : int, optional

    Returns
    -------
    SinkhornResult
        ``objective`` is the primal objective above; ``marginal_error`` the residual.

    Examples
    --------
    >>> import numpy as np, pyot
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = pyot.unbalanced_sinkhorn(C, [0.5, 0.5], [0.5, 1.0], eps=0.1, reg_marginals=1.0)
    >>> bool(1.0 < res.plan.sum() < 1.5)
    True
    """
    fn = "pyot.unbalanced_sinkhorn"
    return _solve(
        fn, cost, a, b, eps=eps, tol=tol, max_iter=max_iter, threads=threads,
        reg_marginals=_reg_marginals(reg_marginals, fn),
    )


def _reg_marginals(reg_marginals: object, fn: str) -> tuple[float, float]:
    """``(tau_a, tau_b)`` from a number or a pair (``inf``: a hard constraint)."""
    if isinstance(reg_marginals, (tuple, list)):
        if len(reg_marginals) != 2:
            raise ValueError(f"{fn}: reg_marginals must be a number or a pair (tau_a, tau_b)")
        tau_a, tau_b = (V.positive(t, "reg_marginals", fn, allow_inf=True) for t in reg_marginals)
        return tau_a, tau_b
    tau = V.positive(reg_marginals, "reg_marginals", fn, allow_inf=True)
    return tau, tau


def _self_transport(
    x: np.ndarray, a: np.ndarray, metric: str, p: float, eps: float, tol: float,
    max_iter: int, threads: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """OT_eps(a, a) by the symmetric update (ALGORITHMS 2.6): the core's (status, n_iter,
    marginal_error, value, objective) arrays and the float64 potential h. The divergence reads
    the objective only: value (one exp pass) is not computed (NaN)."""
    h = np.zeros(len(x))
    options = dict(eps=eps, tol=tol, max_iter=max_iter, threads=threads, value=False)
    if len(x) ** 2 <= _DENSE_LIMIT:
        cost = PointCloud._trusted(x, x, metric, p).dense()
        return _core.sinkhorn_symmetric_dense(cost, a, h, **options), h
    return _core.sinkhorn_symmetric_online(x, METRICS[metric], p, a, h, **options), h


@dataclass
class Divergence:
    """The three solves of a Sinkhorn divergence (pyot.torch differentiates through them)."""

    value: float
    cross: Solved
    h_x: np.ndarray  # self-transport potentials, float64
    h_y: np.ndarray


def _divergence(
    fn: str, x: object, y: object, a: object, b: object, *, eps: object, metric: object,
    tol: object, max_iter: object, threads: object, p: object,
) -> Divergence:
    xs, ys = _points(x, y, fn)
    metric, p = _metric(metric, p, fn)
    geom = PointCloud._trusted(xs, ys, metric, p)
    eps_f = V.positive(eps, "eps", fn)
    tol_f = V.non_negative(tol, "tol", fn)
    max_iter_i = V.integer(max_iter, "max_iter", fn, minimum=0)
    n_threads = V.threads(threads, fn)
    cross = _run(fn, geom, a, b, eps=eps_f, tol=tol_f, max_iter=max_iter_i, threads=threads,
                 eps_scaling=None, value=False)  # the divergence reads the objective only
    terms, potentials = [], []
    for pts, w in ((xs, cross.problem.a[0]), (ys, cross.problem.b[0])):
        (status, n_iter, err, _, objective), h = _self_transport(
            pts, w, metric, p, eps_f, tol_f, max_iter_i, n_threads
        )
        if status[0] == _STATUS_NOT_FINITE:
            raise FloatingPointError(f"{fn}: the self-transport produced non-finite values")
        warn_not_converged(fn + " (self-transport term)", SinkhornResult(
            n_iter=int(n_iter[0]), marginal_error=float(err[0]),
            converged=bool(status[0] == _STATUS_CONVERGED)))
        terms.append(float(objective[0]))
        potentials.append(h)
    value = float(cross.result.objective - 0.5 * (terms[0] + terms[1]))
    return Divergence(value, cross, potentials[0], potentials[1])


def sinkhorn_divergence(
    x: object,
    y: object,
    a: object = None,
    b: object = None,
    *,
    eps: float,
    metric: str = "sqeuclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    threads: int | None = None,
    p: float = 2.0,
) -> float:
    """Debiased Sinkhorn divergence between two weighted point clouds.

    ``S = OT(a, b) - (OT(a, a) + OT(b, b)) / 2`` with ``OT`` the entropic objective
    ``<P, C> + eps KL(P | a b^T)`` [Feydy 2019]. ``S >= 0``, ``S = 0`` iff the measures are
    equal (for the Euclidean and squared-Euclidean costs), symmetric. The self terms use the
    symmetric update ``h <- (h + T(h)) / 2``.

    Parameters
    ----------
    x : array_like, shape (n, d)
    y : array_like, shape (m, d)
    a, b : array_like, optional
        Weights of equal total mass; ``None`` is uniform.
    eps : float
        Entropic regularization (absolute), positive.
    metric : str
        Ground cost, as in :func:`cost_matrix`.
    tol, max_iter, threads
        As in :func:`sinkhorn`, for each of the three solves.
    p : float
        Minkowski exponent.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, pyot
    >>> x = np.random.default_rng(0).random((40, 2))
    >>> abs(pyot.sinkhorn_divergence(x, x, eps=0.05)) < 1e-6
    True
    >>> pyot.sinkhorn_divergence(x, x + 1.0, eps=0.05) > 1.0
    True
    """
    return _divergence(
        "pyot.sinkhorn_divergence", x, y, a, b, eps=eps, metric=metric, tol=tol,
        max_iter=max_iter, threads=threads, p=p,
    ).value
