"""Mini-batch optimal transport: m-OT and BoMb-OT, on the core's threads or on any Executor.

Batches are drawn here, in numpy, from per-batch seeds spawned from one
``numpy.random.SeedSequence``; the batch problems run in the compiled core
(``csrc/include/pyot/minibatch.hpp``: the batch cost from the points, then the network simplex
or an entropic solver, one batch per thread, GIL released). Under an executor every task draws
its own batches from the seeds it carries and makes the same compiled call on one thread, so
serial, threaded and distributed runs give bit-identical results. Math and conventions:
ALGORITHMS.md section 7.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from . import _validate as V
from ._result import ConvergenceWarning, MinibatchResult
from .costs import METRICS, _metric, _points
from .exact import emd
from .partial import _mass
from .sinkhorn import _DEFAULT_EPS_SCALING, _EPS_SCALING_RATIO, _reg_marginals

__all__ = ["minibatch_ot"]

_ESTIMATORS = ("m-ot", "bomb-ot")
_SOLVERS = {"emd": 0, "sinkhorn": 1, "unbalanced": 2, "partial": 3}
_STATUS_CONVERGED, _STATUS_NOT_FINITE = 0, 2
# Tasks per executor worker: enough to balance uneven batches, few enough that the per-task
# overhead (a Dask task costs about a millisecond) stays small against the solves.
_TASKS_PER_WORKER = 4
# With progress=True and no executor, the compiled call is split into this many pieces so the
# bar can move (the pieces give the same results: every batch is solved on its own).
_PROGRESS_STEPS = 100


@dataclass(frozen=True)
class _Side:
    """How one side's batches are drawn: without replacement where the weights are uniform,
    else i.i.d. from the weights (``cdf``: their cumulative sums)."""

    size: int
    cdf: np.ndarray | None = None
    last: int = 0  # the last index of positive weight

    @classmethod
    def of(cls, w: np.ndarray, given: bool) -> _Side:
        if not given or bool(np.all(w == w[0])):
            return cls(len(w))
        return cls(len(w), np.cumsum(w), int(np.flatnonzero(w > 0)[-1]))

    def draw(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        if self.cdf is None:
            return rng.choice(self.size, size=batch_size, replace=False)
        u = rng.random(batch_size) * self.cdf[-1]
        # side="right" never lands on a zero weight; the clip guards u rounding up to the total.
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), self.last)


@dataclass(frozen=True)
class _Problem:
    """Everything a task needs besides its seeds; shipped to the workers once."""

    x: np.ndarray
    y: np.ndarray
    side_x: _Side
    side_y: _Side
    batch_size: int
    options: dict[str, Any]  # keywords of _core.minibatch_solve (plans and threads aside)

    def draw(
        self, x_seeds: Sequence[np.random.SeedSequence],
        y_seeds: Sequence[np.random.SeedSequence] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The row indices of the batches: (len(x_seeds), B) and (len(y_seeds), B)."""
        size = self.batch_size
        ix = np.empty((len(x_seeds), size), dtype=np.int64)
        if y_seeds is None:  # m-OT: batch l draws I_l, then J_l, from one generator
            iy = np.empty_like(ix)
            for r, seed in enumerate(x_seeds):
                rng = np.random.default_rng(seed)
                ix[r] = self.side_x.draw(rng, size)
                iy[r] = self.side_y.draw(rng, size)
            return ix, iy
        iy = np.empty((len(y_seeds), size), dtype=np.int64)
        for r, seed in enumerate(x_seeds):
            ix[r] = self.side_x.draw(np.random.default_rng(seed), size)
        for r, seed in enumerate(y_seeds):
            iy[r] = self.side_y.draw(np.random.default_rng(seed), size)
        return ix, iy


# A task: the seeds of the x batches, those of the y batches (None: m-OT, where each seed
# draws both) and the pairs to solve as local (x batch, y batch) positions, shape (P, 2).
_Job = tuple[list, list | None, np.ndarray]


def _solve_task(
    problem: _Problem, x_seeds: list, y_seeds: list | None, pairs: np.ndarray, plans: bool,
    threads: int,
) -> tuple[np.ndarray, ...]:
    """One task: draws its batches from their seeds and solves its pairs in one compiled call.

    Returns the core's (status, n_iter, value, problem, row, col, mass)."""
    ix, iy = problem.draw(x_seeds, y_seeds)
    return _core.minibatch_solve(
        problem.x, problem.y, ix, iy, pairs, plans=plans, threads=threads, **problem.options
    )


def _jobs(pairs: np.ndarray, children: list, k: int, paired: bool, chunk: int) -> list[_Job]:
    """Splits the pairs of batch ids (P, 2) into tasks of at most ``chunk`` pairs, in order."""
    jobs: list[_Job] = []
    for start in range(0, len(pairs), chunk):
        sub = pairs[start : start + chunk]
        if paired:
            local = np.repeat(np.arange(len(sub), dtype=np.int64)[:, None], 2, axis=1)
            jobs.append(([children[int(i)] for i in sub[:, 0]], None, local))
            continue
        rows, inv_r = np.unique(sub[:, 0], return_inverse=True)
        cols, inv_c = np.unique(sub[:, 1], return_inverse=True)
        local = np.ascontiguousarray(np.stack([inv_r.ravel(), inv_c.ravel()], axis=1),
                                     dtype=np.int64)
        jobs.append(([children[int(i)] for i in rows], [children[k + int(j)] for j in cols],
                     local))
    return jobs


def _dask_client(executor: Executor) -> Any:
    """The ``distributed.Client`` behind ``Client.get_executor()``, else None."""
    if type(executor).__module__.split(".")[0] != "distributed":
        return None
    return getattr(executor, "_client", None)


def _workers(executor: Executor) -> int:
    client = _dask_client(executor)
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1)


def _payload(problem: _Problem, executor: Executor | None) -> Any:
    """What the tasks receive as the problem: on Dask, a future of the problem scattered to
    every worker once (the tasks then carry only seeds and pairs); elsewhere the problem."""
    client = None if executor is None else _dask_client(executor)
    if client is None:
        return problem
    # hash=False: a fresh key per call. With content-hashed keys a second call on the same
    # points reuses the key while the first call's future is being released, and the workers
    # drop the data under the second call's tasks.
    return client.scatter(problem, broadcast=True, hash=False)


def _execute(
    payload: Any, jobs: list[_Job], plans: bool, executor: Executor | None, threads: int,
    bar: Any,
) -> tuple[np.ndarray, ...]:
    """Runs the jobs and joins their outputs in job order (never completion order)."""
    if executor is None:
        outs = []
        for job in jobs:
            outs.append(_solve_task(payload, *job, plans, threads))
            bar.update(len(job[2]))
    else:
        # Tasks run on one thread each: the executor's workers are the parallelism.
        futures: list[Future] = [
            executor.submit(_solve_task, payload, *job, plans, 1) for job in jobs
        ]
        sizes = {id(f): len(job[2]) for f, job in zip(futures, jobs, strict=True)}
        try:
            for f in as_completed(futures):
                bar.update(sizes[id(f)])
            outs = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    counts = [len(out[0]) for out in outs]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    joined = [np.concatenate([out[i] for out in outs]) for i in range(7)]
    joined[3] = np.concatenate([out[3] + off for out, off in zip(outs, offsets, strict=True)])
    return tuple(joined)


def _check_status(
    status: np.ndarray, n_iter: np.ndarray, fn: str, solver: str, exact: bool
) -> None:
    if (status == _STATUS_NOT_FINITE).any():
        raise FloatingPointError(
            f"{fn}: {int((status == _STATUS_NOT_FINITE).sum())} inner {solver} solves produced "
            "non-finite values; increase eps"
        )
    bad = status != _STATUS_CONVERGED
    if bad.any():
        hint = "Raise max_iter." if exact else "Raise max_iter, loosen tol or increase eps."
        warnings.warn(
            f"{fn}: {int(bad.sum())} of {len(status)} inner {solver} solves did not converge "
            f"(after up to {int(n_iter.max())} iterations). {hint}",
            ConvergenceWarning,
            stacklevel=3,
        )


def _lift(
    out: tuple[np.ndarray, ...], weights: np.ndarray, shape: tuple[int, int], dtype: np.dtype
) -> sp.csr_array:
    """``sum_l weights[l] lift(P_l)``: the batch plans on the full index sets (duplicates
    summed), as one sparse matrix."""
    problem, rows, cols, mass = out[3:]
    plan = sp.csr_array((mass * weights[problem], (rows, cols)), shape=shape)
    plan.sum_duplicates()
    return plan.astype(dtype)


def _seed_sequence(seed: object, fn: str) -> np.random.SeedSequence:
    """The root of the per-batch seeds: an int seeds it directly, a Generator gives 4 uint64
    of entropy (drawn once, so its state advances), None fresh entropy."""
    if isinstance(seed, np.random.Generator):
        words = seed.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)
        return np.random.SeedSequence([int(w) for w in words])
    if seed is None:
        return np.random.SeedSequence()
    V.generator(seed, fn)  # the checks of seed= shared by every solver
    return np.random.SeedSequence(int(seed))


def _solver_options(
    solver: str, eps: object, tol: object, max_iter: object, mass: object,
    reg_marginals: object, wa: np.ndarray, wb: np.ndarray, fn: str,
) -> dict[str, Any]:
    """The inner solver's keywords for the core, each option checked against the solver."""
    if eps is None and solver in ("sinkhorn", "unbalanced"):
        raise ValueError(
            f"{fn}: eps is required by solver={solver!r}: a positive finite number in the unit "
            "of the cost"
        )
    if eps is not None and solver == "emd":
        raise ValueError(
            f"{fn}: eps is not used by solver='emd' (exact OT); use solver='sinkhorn' for "
            f"entropic batch problems, got eps={eps!r}"
        )
    if reg_marginals is not None and solver != "unbalanced":
        raise ValueError(
            f"{fn}: reg_marginals is only used by solver='unbalanced', got solver={solver!r}"
        )
    if mass is not None and solver != "partial":
        raise ValueError(f"{fn}: mass is only used by solver='partial', got solver={solver!r}")
    entropic = eps is not None
    options: dict[str, Any] = dict(
        solver=_SOLVERS[solver], eps=V.positive(eps, "eps", fn) if entropic else 0.0,
        tol=V.non_negative(tol, "tol", fn), tau_a=math.inf, tau_b=math.inf, mass=0.0,
        eps_scaling=_DEFAULT_EPS_SCALING, scaling_ratio=_EPS_SCALING_RATIO,
    )
    default_iter = 10_000 if entropic else 1_000_000
    options["max_iter"] = V.integer(default_iter if max_iter is None else max_iter,
                                    "max_iter", fn)
    if solver == "unbalanced":
        if reg_marginals is None:
            raise ValueError(
                f"{fn}: reg_marginals is required by solver='unbalanced': a number or a pair "
                "(tau_a, tau_b)"
            )
        options["tau_a"], options["tau_b"] = _reg_marginals(reg_marginals, fn)
    if solver == "partial":
        if mass is None:
            raise ValueError(
                f"{fn}: mass is required by solver='partial': the mass moved in each batch, "
                "0 < mass <= min(sum(a), sum(b))"
            )
        options["mass"] = _mass(mass, wa, wb, fn)
    if solver in ("emd", "sinkhorn"):
        V.same_mass(wa, wb, fn)
    return options


def minibatch_ot(
    x: object,
    y: object,
    a: object = None,
    b: object = None,
    *,
    batch_size: int,
    n_batches: int,
    estimator: str = "m-ot",
    solver: str = "emd",
    eps: float | None = None,
    metric: str = "sqeuclidean",
    return_plan: bool = False,
    seed: int | np.random.Generator | None = None,
    executor: Executor | None = None,
    threads: int | None = None,
    progress: bool = False,
    p: float = 2.0,
    mass: float | None = None,
    reg_marginals: float | tuple[float, float] | None = None,
    tol: float = 1e-6,
    max_iter: int | None = None,
) -> MinibatchResult:
    """Mini-batch optimal transport between two point clouds: m-OT or BoMb-OT.

    Draws ``n_batches`` mini-batches of ``batch_size`` points from each cloud and solves OT
    between batches. ``"m-ot"`` [Fatras 2020] averages the OT values of the pairs (batch l of
    ``x``, batch l of ``y``); ``"bomb-ot"`` [Nguyen 2022a] solves OT between all k x k batch
    pairs and then an outer exact OT between the batches, with those values as its cost.

    Parameters
    ----------
    x : array_like, shape (n, d)
        Source points (a 1-d array is a cloud on the line).
    y : array_like, shape (m, d)
        Target points.
    a, b : array_like, shape (n,) / (m,), optional
        Non-negative weights; ``None`` is uniform with mass 1. A side with uniform weights is
        sampled without replacement (batch weights ``1 / B``); a side with other weights is
        sampled i.i.d. from them (``B`` draws, weight ``count / B``), so the lifted batch
        measure has mean ``a / sum(a)``. Batch weights are scaled to the side's total mass.
    batch_size : int
        Points per batch, ``1 <= batch_size <= min(n, m)``.
    n_batches : int
        Number of batches k drawn from each side (``>= 1``). BoMb-OT solves k² batch problems.
    estimator : {"m-ot", "bomb-ot"}
        The estimator (ALGORITHMS.md section 7).
    solver : {"emd", "sinkhorn", "unbalanced", "partial"}
        The batch problem: exact OT (network simplex), entropic OT (needs ``eps``), unbalanced
        entropic OT (needs ``eps`` and ``reg_marginals``; robust to batch mass mismatch,
        [Fatras 2021]) or partial OT (needs ``mass``; exact, or entropic with ``eps``,
        [Nguyen 2022b]). The outer problem of BoMb-OT is always exact.
    eps : float, optional
        Entropic regularization of the batch problems (absolute, in the unit of the cost).
    metric : str, default "sqeuclidean"
        Ground cost, as in :func:`pyot.cost_matrix` (``p`` is the Minkowski exponent).
    return_plan : bool, default False
        Also build the estimate of the full ``(n, m)`` plan as a sparse matrix: m-OT,
        ``(1 / k) sum_l lift(P_l)``; BoMb-OT, ``sum gamma_ll' lift(P_ll')``. With entropic
        batch solvers every batch plan is dense: ``k B²`` entries (m-OT).
    seed : int, numpy.random.Generator or None
        Seed of the batches. Per-batch seeds are spawned from one ``SeedSequence``, so a seed
        gives the same result with any ``threads`` and any ``executor``.
    executor : concurrent.futures.Executor, optional
        ``None`` solves every batch in one compiled call on the core's threads. An executor
        (``ThreadPoolExecutor``, ``ProcessPoolExecutor``, a Dask
        ``distributed.Client(...).get_executor()``) gets tasks of a few batches each, each
        carrying only seeds; every task solves on one thread. On Dask the points are
        scattered to the workers once; other executors pickle them with every task
        (thread pools share them).
    threads : int, optional
        Threads of the compiled call when ``executor`` is None (default: all cores).
    progress : bool, default False
        Show a tqdm progress bar over the batch problems (needs ``tqdm``).
    p : float, default 2.0
        Exponent of the Minkowski metric.
    mass : float, optional
        ``solver="partial"``: the mass moved in each batch, ``0 < mass <= min(sum a, sum b)``.
    reg_marginals : float or (float, float), optional
        ``solver="unbalanced"``: the KL marginal penalties, as in
        :func:`pyot.unbalanced_sinkhorn`.
    tol : float, default 1e-6
        Entropic batch solvers: the stopping tolerance, as in :func:`pyot.sinkhorn`.
    max_iter : int, optional
        Per batch problem: pivots (exact, default 1_000_000) or iterations (entropic,
        default 10_000).

    Returns
    -------
    MinibatchResult
        ``value``, ``plan`` (``scipy.sparse.csr_array`` or None), ``n_batches``,
        ``batch_size``, ``batch_values`` (``(k,)`` for m-OT, ``(k, k)`` for BoMb-OT) and, for
        BoMb-OT, ``outer_plan`` (``(k, k)``). Batch values are ``<P, C>`` of the batch plans;
        values accumulate in double, in batch order.

    Raises
    ------
    ValueError
        Bad sizes (``batch_size``, ``n_batches``), an unknown estimator, solver or metric, a
        solver option that is missing or not used by the solver, bad points or weights,
        unequal masses for a balanced solver.
    TypeError
        Non-numeric input, or an ``executor`` that is not a ``concurrent.futures.Executor``.
    ImportError
        ``progress=True`` without tqdm.

    Warns
    -----
    ConvergenceWarning
        When some batch problems stop at ``max_iter``.

    Notes
    -----
    m-OT is biased upwards (``E[value] >= OT(a, b)``, and ``m-OT(a, a) > 0``); the bias falls
    as ``batch_size`` grows and the variance as ``1 / n_batches``. To run on a cluster::

        from distributed import Client
        client = Client("tcp://scheduler:8786")   # workers need pyot installed
        res = pyot.minibatch_ot(x, y, batch_size=256, n_batches=10_000, seed=0,
                                executor=client.get_executor())

    References
    ----------
    Fatras, Zine, Flamary, Gribonval, Courty (2020), Learning with minibatch Wasserstein.
    Nguyen, Le, Nguyen, Phung, Ho (2022), On transportation of mini-batches: a hierarchical
    approach.

    Examples
    --------
    >>> import numpy as np, pyot
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2)) + 1.0
    >>> res = pyot.minibatch_ot(x, y, batch_size=100, n_batches=50, seed=0)
    >>> res.batch_values.shape
    (50,)
    >>> bool(res.value > pyot.emd(pyot.cost_matrix(x, y)).value)  # biased upwards
    True
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:
    ...     same = pyot.minibatch_ot(x, y, batch_size=100, n_batches=50, seed=0, executor=pool)
    >>> same.value == res.value
    True
    >>> bomb = pyot.minibatch_ot(x, y, batch_size=100, n_batches=8, estimator="bomb-ot",
    ...                          seed=0, return_plan=True)
    >>> bomb.outer_plan.shape, bomb.plan.shape
    ((8, 8), (1000, 1000))
    """
    fn = "pyot.minibatch_ot"
    xs, ys = _points(x, y, fn)
    metric, p = _metric(metric, p, fn)
    n, m = len(xs), len(ys)
    wa, wb = V.weights(a, n, "a", fn), V.weights(b, m, "b", fn)
    batch_size = V.integer(batch_size, "batch_size", fn, minimum=1)
    if batch_size > min(n, m):
        raise ValueError(
            f"{fn}: batch_size must be at most the number of points (x has {n}, y has {m}), "
            f"got {batch_size}"
        )
    k = V.integer(n_batches, "n_batches", fn, minimum=1)
    estimator = V.choice(estimator, "estimator", fn, _ESTIMATORS)
    solver = V.choice(solver, "solver", fn, tuple(_SOLVERS))
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(
            f"{fn}: executor must be None or a concurrent.futures.Executor (a ThreadPoolExecutor, "
            f"or a Dask distributed.Client(...).get_executor()), got {type(executor).__name__}"
        )
    return_plan = V.flag(return_plan, "return_plan", fn)
    progress = V.flag(progress, "progress", fn)
    n_threads = V.threads(threads, fn)
    options = _solver_options(solver, eps, tol, max_iter, mass, reg_marginals, wa, wb, fn)
    options.update(metric=METRICS[metric], p=p, weight_x=float(wa.sum()) / batch_size,
                   weight_y=float(wb.sum()) / batch_size)
    root = _seed_sequence(seed, fn)
    problem = _Problem(xs, ys, _Side.of(wa, a is not None), _Side.of(wb, b is not None),
                       batch_size, options)
    bomb = estimator == "bomb-ot"
    children = root.spawn(2 * k if bomb else k)
    if bomb:
        pairs = np.stack(np.divmod(np.arange(k * k, dtype=np.int64), k), axis=1)
    else:
        pairs = np.repeat(np.arange(k, dtype=np.int64)[:, None], 2, axis=1)

    def chunk(count: int) -> int:
        if executor is not None:
            return max(1, math.ceil(count / (_TASKS_PER_WORKER * _workers(executor))))
        return max(1, math.ceil(count / _PROGRESS_STEPS)) if progress else max(1, count)

    total = len(pairs)
    bar = V.progress_bar(progress, total, fn, unit="batch")
    payload = _payload(problem, executor)
    try:
        out = _execute(payload, _jobs(pairs, children, k, not bomb, chunk(total)),
                       return_plan and not bomb, executor, n_threads, bar)
        _check_status(out[0], out[1], fn, solver, exact=options["eps"] == 0.0)
        dtype = xs.dtype
        if not bomb:
            values = out[2]
            plan = _lift(out, np.full(k, 1.0 / k), (n, m), dtype) if return_plan else None
            return MinibatchResult(value=math.fsum(values.tolist()) / k, plan=plan,
                                   n_batches=k, batch_size=batch_size, batch_values=values)
        values = out[2].reshape(k, k)
        outer = emd(values, threads=threads)
        plan = None
        if return_plan:
            # Only the pairs the outer plan uses (at most 2k - 1) are solved again, with plans.
            gamma = outer.plan.tocoo()
            support = np.stack([gamma.row, gamma.col], axis=1).astype(np.int64)
            order = np.lexsort((support[:, 1], support[:, 0]))
            support, weights = support[order], gamma.data[order]
            again = _execute(payload, _jobs(support, children, k, False, chunk(len(support))),
                             True, executor, n_threads, V.progress_bar(False, 0, fn))
            plan = _lift(again, weights, (n, m), dtype)
        return MinibatchResult(value=outer.value, plan=plan, n_batches=k,
                               batch_size=batch_size, batch_values=values,
                               outer_plan=outer.plan)
    finally:
        bar.close()
