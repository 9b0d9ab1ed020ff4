"""Inverse optimal transport: learn a linear ground cost from an observed coupling.

Given samples ``x`` and ``y`` and an observed coupling ``P_hat`` between them (a plan, or the
index pairs of matched samples), :func:`fit_cost` fits a cost
``c_A(x, y) = -sum_k A_k phi_k(x, y)`` whose entropic OT plan explains ``P_hat``: it minimizes
the convex iOT loss [Andrade 2024]

    L(A) = <C_A, P_hat> - OT_eps(C_A) + reg_l1 ||A||_1,

where ``OT_eps(C) = min_{P in U(a, b)} <P, C> + eps KL(P | a b^T)`` with ``a = P_hat 1`` and
``b = P_hat^T 1``. ``L / eps`` is the negative log-likelihood of ``P_hat`` under the Gibbs plan
``P_A`` up to a constant; its gradient is ``<phi, P_A - P_hat>``. The l1 penalty selects the
sparse interactions (sparsistency under an irrepresentability condition). Each evaluation is a
Sinkhorn solve on the compiled core, warm-started from the previous potentials, inside a
monotone FISTA with backtracking. Math: ALGORITHMS.md section 8.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from . import _validate as V
from ._result import ConvergenceWarning, InverseOTResult
from .costs import METRICS
from .sinkhorn import _run

__all__ = ["InverseOTResult", "fit_cost", "fit_cost_path"]

_FEATURES = ("bilinear", "diagonal")
# Inner Sinkhorn: L1 marginal error of each solve, tol / 10 clipped to this range (the loss
# and gradient are then accurate to far below what the backtracking test and the outer tol can
# see: at tol 1e-6 the final loss matches a 1e-9 inner tol to 1e-12), and its iteration cap.
_INNER_TOL = (1e-12, 1e-7)
_INNER_MAX_ITER = 100_000
# The step may grow by this factor per iteration before backtracking halves it again: the
# curvature of L at the solution is often far below the global bound the first step uses.
_STEP_GROWTH = 1.25
# A path of `reg_l1=k` values spans [reg_max / _PATH_RATIO, reg_max] geometrically.
_PATH_RATIO = 100.0
# Relative round-off allowed in the backtracking test (the loss is a sum of O(n) terms).
_SLACK = 1e-15
_SQRT_HALF = math.sqrt(0.5)
# Warm starts extrapolate the potentials over the last _MEMORY solved points, each
# coefficient of the affine combination clipped to this bound.
_MEMORY = 3
_PREDICT_BOUND = 4.0


class _Model:
    """The linear cost model on the observed (positive-weight) rows and columns: the cost
    ``C_A = -sum_k A_k Phi_k`` and the feature expectation ``<Phi, P>`` of a plan, both on
    features double-centred under ``a b^T`` (exact: terms u(x) + v(y) leave the plan and the
    loss unchanged)."""

    def __init__(self, kind: str, x: np.ndarray, y: np.ndarray, phi: np.ndarray | None,
                 a: np.ndarray, b: np.ndarray) -> None:
        self.kind = kind
        if kind == "callable":
            assert phi is not None
            phi = phi - np.tensordot(phi, b, axes=([1], [0]))[:, None, :]
            phi = phi - np.tensordot(a, phi, axes=([0], [0]))[None, :, :]
            self.phi = phi
            self.shape: tuple[int, ...] = (phi.shape[2],)
        else:
            self.x = x - a @ x
            self.y = np.ascontiguousarray(y - b @ y)
            self.shape = (x.shape[1], y.shape[1]) if kind == "bilinear" else (x.shape[1],)

    def cost(self, w: np.ndarray, out: np.ndarray) -> float | None:
        """``C_A`` into ``out`` (an ``(n, m)`` float64 buffer); returns ``max C - min C`` when
        measured on the way (bilinear and diagonal features: the compiled GEMM-form cost
        takes each block's range while it is in cache), else None."""
        if self.kind == "callable":
            np.matmul(self.phi, -w, out=out)
            return None
        u = self.x @ w if self.kind == "bilinear" else self.x * w
        lo, hi = _core.bilinear_cost(np.ascontiguousarray(u), self.y, out)
        spread = hi - lo
        return spread if math.isfinite(spread) else None  # not finite: the solve's check says

    def expect(self, plan: np.ndarray) -> np.ndarray:
        """``<Phi_k, P>`` for every k (a plan on the observed rows and columns)."""
        if self.kind == "bilinear":
            return self.x.T @ (plan @ self.y)
        if self.kind == "diagonal":
            return np.einsum("ik,ik->k", self.x, plan @ self.y)
        return np.tensordot(plan, self.phi, axes=([0, 1], [0, 1]))

    def expect_rows(self, plan_y: np.ndarray) -> np.ndarray:
        """``<Phi_k, P>`` from ``P y`` (bilinear and diagonal features)."""
        if self.kind == "bilinear":
            return self.x.T @ plan_y
        return np.einsum("ik,ik->k", self.x, plan_y)

    def expect_pairs(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """``<Phi_k, P>`` for a plan given by its nonzero entries."""
        if self.kind == "bilinear":
            return (self.x[rows] * vals[:, None]).T @ self.y[cols]
        if self.kind == "diagonal":
            return vals @ (self.x[rows] * self.y[cols])
        return vals @ self.phi[rows, cols]

    def curvature(self, a: np.ndarray, b: np.ndarray) -> float:
        """Largest eigenvalue of ``E_{a b^T}[phi phi^T]``: ``eps`` over it bounds the Lipschitz
        constant of grad L from below at A = 0 and sets the first step."""
        if self.kind == "callable":
            w = np.sqrt(np.outer(a, b)).reshape(-1, 1)
            flat = self.phi.reshape(-1, self.phi.shape[2]) * w
            gram = flat.T @ flat
        else:
            sx = (self.x * a[:, None]).T @ self.x
            sy = (self.y * b[:, None]).T @ self.y
            if self.kind == "bilinear":
                return float(np.linalg.eigvalsh(sx)[-1] * np.linalg.eigvalsh(sy)[-1])
            gram = sx * sy
        return float(np.linalg.eigvalsh(gram)[-1])


class _Objective:
    """The smooth part of the iOT loss, ``L(A) = -<A, <Phi, P_hat>> - OT_eps(C_A)``, and its
    gradient ``<Phi, P_A - P_hat>``, by warm-started Sinkhorn solves."""

    def __init__(self, fn: str, model: _Model, a: np.ndarray, b: np.ndarray, observed: np.ndarray,
                 eps: float) -> None:
        self.fn, self.model, self.a, self.b, self.eps = fn, model, a, b, eps
        self.observed = observed
        self.f, self.g = np.zeros(a.size), np.zeros(b.size)
        self.log_a, self.log_b = np.log(a), np.log(b)
        # The cost, and for callable features the plan (P y comes from the core otherwise).
        self.buffers = [np.empty((a.size, b.size)) for _ in range(1 + (model.kind == "callable"))]
        self.inner_tol = _INNER_TOL[1]
        self.last: tuple[np.ndarray, float] | None = None  # the last point solved, its loss
        self.failed = 0  # inner solves that stopped at their iteration cap
        # P y at the last point (bilinear and diagonal features), from the solve itself: fused
        # into the float kernel's exact confirmation pass, which computes the plan's entries
        # anyway; `plan_y_ok` says whether it holds.
        self.plan_y = None if model.kind == "callable" else np.empty((a.size, model.y.shape[1]))
        self.plan_y_ok = False
        self.solved: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (w, f, g), recent

    def _predict(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warm-start potentials at ``w``: those of the last solve, moved to first order along
        the affine span of the recent solved points (the potentials are smooth in w; FISTA's
        extrapolated points lie in that span), the combination's coefficients bounded."""
        if len(self.solved) < 2:
            return self.f, self.g
        w_last, f_last, g_last = self.solved[-1]
        basis = np.stack([p[0] - w_last for p in self.solved[:-1]], axis=1)
        coef = np.linalg.lstsq(basis, w.ravel() - w_last, rcond=1e-8)[0]
        coef = np.clip(coef, -_PREDICT_BOUND, _PREDICT_BOUND)
        older = self.solved[:-1]
        f = f_last + sum(c * (p[1] - f_last) for c, p in zip(coef, older, strict=True))
        g = g_last + sum(c * (p[2] - g_last) for c, p in zip(coef, older, strict=True))
        return f, g

    def __call__(self, w: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None]:
        cost = self.buffers[0]
        if self.last is not None and np.array_equal(self.last[0], w):
            loss = self.last[1]  # solved last: its cost and potentials are still here
        else:
            cost_range = self.model.cost(w, cost)
            # P y is asked of every solve: where a gradient is not needed now it is only taken
            # when free (fused), for a later gradient at this point (a momentum restart).
            product = None if self.plan_y is None else (self.model.y, self.plan_y, not gradient)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                solved = _run(
                    self.fn, cost, self.a, self.b, eps=self.eps, tol=self.inner_tol,
                    max_iter=_INNER_MAX_ITER, threads=None, init=self._predict(w),
                    value=False,  # only the objective is read: no <P, C> pass
                    plan_y=product, cost_range=cost_range,
                )
            self.failed += any(issubclass(c.category, ConvergenceWarning) for c in caught)
            self.f, self.g = solved.f[0], solved.g[0]
            self.solved = [*self.solved[1 - _MEMORY:], (w.ravel().copy(), self.f, self.g)]
            self.plan_y_ok = solved.plan_y_written
            loss = -float(np.vdot(w, self.observed)) - solved.result.objective
            self.last = (w.copy(), loss)
        if not gradient:
            return loss, None
        if self.plan_y is not None:
            plan_y = self.plan_y if self.plan_y_ok else self._plan_times_y(w)
            return loss, self.model.expect_rows(plan_y) - self.observed
        # P = a b^T exp((f + g - C) / eps), in place in the second buffer (the plan of
        # sinkhorn.py's result allocates three temporaries of this size).
        plan = np.multiply(cost, -1.0 / self.eps, out=self.buffers[1])
        plan += (self.log_a + self.f / self.eps)[:, None]
        plan += (self.log_b + self.g / self.eps)[None, :]
        np.exp(plan, out=plan)
        return loss, self.model.expect(plan) - self.observed

    def _plan_times_y(self, w: np.ndarray) -> np.ndarray:
        """``P y`` (n, d_y) in one fused pass of the core, P never formed.

        The cost ``-u . y`` (``u = x A``, or ``x * w``) is ``||u' - y'||^2`` with
        ``u' = (u / sqrt 2, 1)``, ``y' = (y / sqrt 2, 0)`` minus ``|u|^2 / 2 + 1`` and
        ``|y|^2 / 2``: terms of one variable, absorbed by the potentials. The core's point
        gradient
        ``sum_j P_ij 2 (u'_i - y'_j)`` then gives ``(P 1)_i`` (last coordinate) and ``P y``.
        """
        u = self.model.x @ w if self.model.kind == "bilinear" else self.model.x * w
        y = self.model.y
        ones = np.ones((u.shape[0], 1))
        up = np.ascontiguousarray(np.hstack([u * _SQRT_HALF, ones]))
        yp = np.ascontiguousarray(np.hstack([y * _SQRT_HALF, np.zeros((y.shape[0], 1))]))
        f = self.f + 0.5 * np.einsum("ij,ij->i", u, u) + 1.0
        g = self.g + 0.5 * np.einsum("ij,ij->i", y, y)
        grad = _core.sinkhorn_point_gradient(
            up, yp, METRICS["sqeuclidean"], 2.0, self.a, self.b, f, g, eps=self.eps, threads=0
        )
        rows = 0.5 * grad[:, -1:]  # (P 1)_i
        return (up[:, :-1] * rows - 0.5 * grad[:, :-1]) / _SQRT_HALF


def _serial_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread while fitting (when threadpoolctl is installed): the products here have
    an inner dimension of d or K and are memory-bound, and idle BLAS threads spinning between
    them slowed the compiled Sinkhorn's own threads about 4x (measured, n = 500, 2 cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _soft_threshold(z: np.ndarray, c: float) -> np.ndarray:
    return np.sign(z) * np.maximum(np.abs(z) - c, 0.0)


def _fista(
    objective: Callable[[np.ndarray, bool], tuple[float, Any]],
    w0: np.ndarray,
    reg: float,
    step: float,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, list[float], bool, int, float]:
    """FISTA with backtracking [Beck 2009] on ``L(w) + reg ||w||_1``, kept monotone by
    adaptive restart.

    Each iteration: the gradient at the extrapolated point Z, a proximal step
    ``U = S(Z - t grad, t reg)`` with t halved until the quadratic upper bound holds at U, then
    ``w = U`` if that lowers the objective (else w stays and the momentum restarts: the
    recorded loss never increases).
    Stops when ``||U - Z|| <= tol (1 + ||Z||)`` (the proximal-gradient step vanishes only at a
    minimizer), or when a plain proximal-gradient step from w no longer lowers the objective
    within its round-off (w is then as accurate as the loss allows: about ``sqrt(1e-15)``
    relative). Returns ``(w, history, converged, n_iter, step)``.
    """
    w = w0.copy()
    loss, _ = objective(w, False)
    total = loss + reg * float(np.abs(w).sum())
    history = [total]
    z, theta = w.copy(), 1.0
    min_step = step * 1e-12
    last: tuple[np.ndarray, float, Any] | None = None  # the last gradient evaluation
    for it in range(1, max_iter + 1):
        if last is not None and np.array_equal(last[0], z):
            _, lz, grad = last  # a rejected step restarts from the same point
        else:
            lz, grad = objective(z, True)
            last = (z, lz, grad)
        step *= _STEP_GROWTH
        slack = _SLACK * (1.0 + abs(lz))  # round-off of the loss
        while True:
            u = _soft_threshold(z - step * grad, step * reg)
            d = u - z
            lu, _ = objective(u, False)
            if lu <= lz + float(np.vdot(grad, d)) + float(np.vdot(d, d)) / (2 * step) + slack:
                break
            step *= 0.5
            if step < min_step:
                return w, history, False, it, step
        total_u = lu + reg * float(np.abs(u).sum())
        w_prev = w
        # Adaptive restart [O'Donoghue 2015]: drop the momentum when the step turns against
        # it, or when U does not lower the objective (then w stays: monotone).
        restart = total_u > total or float(np.vdot(z - u, u - w_prev)) > 0
        if total_u <= total:
            w, total = u, total_u
        elif np.array_equal(z, w):
            # A plain proximal-gradient step from w passed the backtracking test yet did not
            # lower the objective: the decrease left is below the loss's round-off.
            history.append(total)
            return w, history, True, it, step / _STEP_GROWTH
        if restart:
            z, theta = w.copy(), 1.0
        else:
            theta_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * theta * theta))
            z = w + ((theta - 1.0) / theta_next) * (w - w_prev)
            theta = theta_next
        history.append(total)
        if math.sqrt(float(np.vdot(d, d))) <= tol * (1.0 + float(np.linalg.norm(z))):
            return w, history, True, it, step / _STEP_GROWTH
    return w, history, False, max_iter, step


class _Fit:
    """A validated inverse-OT problem, ready to solve for any ``reg_l1`` (the path helper
    reuses it and its warm potentials)."""

    def __init__(self, fn: str, x: object, y: object, plan: object, features: object,
                 eps: object) -> None:
        self.fn = fn
        self.eps = V.positive(eps, "eps", fn)
        self.x_raw = _points(x, "x", fn)
        self.y_raw = _points(y, "y", fn)
        n, m = self.x_raw.shape[0], self.y_raw.shape[0]
        rows, cols, vals = _observed(plan, n, m, fn)
        a = np.bincount(rows, vals, minlength=n)
        b = np.bincount(cols, vals, minlength=m)
        # Rows and columns of zero observed mass carry no plan: drop them (exact).
        keep_x, keep_y = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
        inv_x = np.full(n, -1)
        inv_x[keep_x] = np.arange(keep_x.size)
        inv_y = np.full(m, -1)
        inv_y[keep_y] = np.arange(keep_y.size)
        self.a, self.b = a[keep_x], b[keep_y]
        self.kind, self.features = _feature_kind(features, self.x_raw, self.y_raw, fn)
        phi = None
        if self.kind == "callable":
            phi = _feature_tensor(self.features, self.x_raw, self.y_raw, fn)[keep_x][:, keep_y]
        self.model = _Model(self.kind, self.x_raw[keep_x], self.y_raw[keep_y], phi, self.a,
                            self.b)
        observed = self.model.expect_pairs(inv_x[rows], inv_y[cols], vals)
        self.objective = _Objective(fn, self.model, self.a, self.b, observed, self.eps)
        self.step = self.eps / max(self.model.curvature(self.a, self.b), np.finfo(float).tiny)

    def reg_max(self) -> float:
        """The smallest ``reg_l1`` whose solution is A = 0: ``max_k |grad L(0)_k|``."""
        _, grad = self.objective(np.zeros(self.model.shape), True)
        return float(np.abs(grad).max())

    def solve(self, w0: np.ndarray, reg: float, max_iter: int, tol: float) -> InverseOTResult:
        obj = self.objective
        obj.failed = 0
        obj.inner_tol = min(max(0.1 * tol, _INNER_TOL[0]), _INNER_TOL[1])
        obj.last = None
        with _serial_blas():
            w, history, converged, n_iter, step = _fista(obj, w0, reg, self.step, max_iter, tol)
        self.step = step
        if obj.failed:
            warnings.warn(
                f"{self.fn}: {obj.failed} inner Sinkhorn solve(s) stopped at their iteration "
                "cap; the loss and its gradient may be inaccurate. Increase eps.",
                ConvergenceWarning, stacklevel=3,
            )
        if not converged:
            warnings.warn(
                f"{self.fn} did not converge: the proximal step is still above tol after "
                f"{n_iter} iterations. Raise max_iter or loosen tol.",
                ConvergenceWarning, stacklevel=3,
            )
        return InverseOTResult(
            weights=w, cost=_LearnedCost(self.kind, self.features, w),
            loss_history=np.asarray(history), converged=converged, n_iter=n_iter,
            eps=self.eps, reg_l1=reg, features=self.kind if self.kind != "callable" else
            self.features, support=w != 0,
        )


class _LearnedCost:
    """The fitted cost ``c(x, y) = -sum_k A_k phi_k(x, y)`` as an ``(n, m)`` matrix."""

    def __init__(self, kind: str, features: Any, weights: np.ndarray) -> None:
        self.kind, self.features, self.weights = kind, features, weights

    def __call__(self, x: object, y: object) -> np.ndarray:
        fn = "InverseOTResult.cost"
        x, y = _points(x, "x", fn), _points(y, "y", fn)
        if self.kind == "callable":
            return -(_feature_tensor(self.features, x, y, fn) @ self.weights)
        want = self.weights.shape[0]
        want_y = self.weights.shape[-1]
        if x.shape[1] != want or y.shape[1] != want_y:
            raise ValueError(
                f"{fn}: x and y must have {want} and {want_y} columns, got {x.shape[1]} and "
                f"{y.shape[1]}"
            )
        if self.kind == "bilinear":
            return -((x @ self.weights) @ y.T)
        return -((x * self.weights) @ y.T)

    def __repr__(self) -> str:
        return f"<learned {self.kind} cost, weights shape {self.weights.shape}>"


def _points(value: object, name: str, fn: str) -> np.ndarray:
    arr = V.as_array(value, name, fn, ndim=(1, 2), dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def _observed(plan: object, n: int, m: int, fn: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observed coupling as its nonzero entries ``(rows, cols, vals)``, vals summing to 1."""
    if sp.issparse(plan):
        if plan.shape != (n, m):
            raise ValueError(
                f"{fn}: plan must have shape (len(x), len(y)) = {(n, m)}, got {plan.shape}"
            )
        coo = sp.coo_array(plan)
        coo.sum_duplicates()
        rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        vals = V.as_array(coo.data, "plan", fn, dtype=np.float64) if coo.nnz else np.zeros(0)
    else:
        if isinstance(plan, (str, bytes)):
            raise TypeError(f"{fn}: plan must be a numeric array, got a string")
        arr = np.asarray(plan)
        if arr.dtype.kind in "iu":
            return _pairs(arr, n, m, fn)
        arr = V.as_array(arr, "plan", fn, ndim=2, dtype=np.float64)
        if arr.shape != (n, m):
            raise ValueError(
                f"{fn}: plan must have shape (len(x), len(y)) = {(n, m)} (or be an integer "
                f"array of index pairs of shape (N, 2)), got {arr.shape}"
            )
        rows, cols = np.nonzero(arr)
        vals = arr[rows, cols]
    if (vals < 0).any():
        raise ValueError(f"{fn}: plan must be non-negative, got a minimum of {vals.min()}")
    total = float(vals.sum())
    if not total > 0:
        raise ValueError(f"{fn}: plan must have a positive total mass")
    return rows, cols, vals / total


def _pairs(arr: np.ndarray, n: int, m: int, fn: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"{fn}: an integer plan is read as index pairs (i, j) and must have shape (N, 2) "
            f"with N >= 1, got shape {arr.shape}; pass a float array for a dense plan of counts"
        )
    rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    for name, idx, size in (("x", rows, n), ("y", cols, m)):
        if idx.min() < 0 or idx.max() >= size:
            bad = idx.min() if idx.min() < 0 else idx.max()
            raise ValueError(
                f"{fn}: plan index pairs must index {name} (0 <= index < {size}), got {bad}"
            )
    return rows, cols, np.full(rows.size, 1.0 / rows.size)


def _feature_kind(features: object, x: np.ndarray, y: np.ndarray, fn: str) -> tuple[str, Any]:
    if callable(features):
        return "callable", features
    if not isinstance(features, str):
        raise TypeError(
            f"{fn}: features must be 'bilinear', 'diagonal' or a callable, got "
            f"{type(features).__name__}"
        )
    kind = V.choice(features, "features", fn, _FEATURES)
    if kind == "diagonal" and x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{fn}: features='diagonal' needs x and y of the same dimension, got {x.shape[1]} "
            f"and {y.shape[1]}"
        )
    return kind, kind


def _feature_tensor(features: Callable, x: np.ndarray, y: np.ndarray, fn: str) -> np.ndarray:
    n, m = x.shape[0], y.shape[0]
    phi = V.as_array(features(x, y), "features(x, y)", fn, ndim=3, dtype=np.float64)
    if phi.shape[:2] != (n, m):
        raise ValueError(
            f"{fn}: features(x, y) must return an array of shape (len(x), len(y), K) = "
            f"({n}, {m}, K), got {phi.shape}"
        )
    return phi


def _options(max_iter: object, tol: object, fn: str) -> tuple[int, float]:
    return V.integer(max_iter, "max_iter", fn, minimum=1), V.non_negative(tol, "tol", fn)


def fit_cost(
    x: object,
    y: object,
    plan: object,
    *,
    features: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "bilinear",
    eps: float,
    reg_l1: float = 0.0,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> InverseOTResult:
    """Learn a linear ground cost whose entropic OT plan explains an observed coupling.

    Fits ``c_A(x, y) = -sum_k A_k phi_k(x, y)`` by minimizing the convex inverse-OT loss
    ``L(A) + reg_l1 ||A||_1`` with ``L(A) = <C_A, P_hat> - OT_eps(C_A)`` (``eps`` times the
    negative log-likelihood of ``P_hat`` under the entropic plan of ``C_A``, up to a
    constant), by monotone FISTA with backtracking; each loss evaluation is a Sinkhorn solve on
    the compiled core, warm-started from the previous one. ``x`` and ``y`` are centred
    internally (exact: it only adds terms ``u(x) + v(y)`` to the cost, which change no plan).

    Parameters
    ----------
    x : array_like, shape (n, d_x) or (n,)
        Samples of the first space.
    y : array_like, shape (m, d_y) or (m,)
        Samples of the second space.
    plan : array_like (n, m), scipy.sparse (n, m), or integer array (N, 2)
        The observed coupling: a non-negative dense or sparse plan (counts or masses; scaled to
        mass 1), or the index pairs ``(i, j)`` of N observed matches ``x[i] <-> y[j]`` (each
        pair has mass ``1 / N``; e.g. ``np.column_stack((i, j))``). Its marginals are the
        weights of ``x`` and ``y``; samples of zero observed mass are ignored.
    features : {"bilinear", "diagonal"} or callable
        ``"bilinear"``: ``c(x, y) = -x^T A y`` with A of shape ``(d_x, d_y)``.
        ``"diagonal"``: ``c(x, y) = -sum_k A_k x_k y_k`` (``d_x = d_y``, A of shape ``(d,)``).
        A callable ``features(x, y)`` returning the ``(n, m, K)`` feature tensor
        ``phi_k(x_i, y_j)``: A of shape ``(K,)``.
    eps : float
        Entropic regularization of the model, positive (in cost units: the weights scale
        with it).
    reg_l1 : float
        l1 penalty on A (0: the maximum-likelihood fit). A value near
        ``sqrt(log K / N)`` times the gradient scale recovers the support of a sparse A.
    max_iter : int
        Cap on FISTA iterations.
    tol : float
        Stop when the proximal-gradient step ``||A+ - Z||`` is at most ``tol (1 + ||Z||)``.

    Returns
    -------
    InverseOTResult
        ``weights`` (A), ``cost`` (callable ``(x, y) -> (n, m)``), ``loss_history``
        (``L + reg_l1 ||A||_1`` per iteration, non-increasing), ``converged``, ``n_iter``,
        ``eps``, ``reg_l1``, ``features``, ``support`` (``weights != 0``).

    Raises
    ------
    ValueError, TypeError
        Invalid input; the message names the argument.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached first (``converged=False``), or an inner Sinkhorn solve
        hit its iteration cap.

    References
    ----------
    F. Andrade, G. Peyre, C. Poon. Sparsistency for inverse optimal transport. ICLR 2024.
    A. Dupuy, A. Galichon. Personality traits and the marriage market. JPE 2014.

    Examples
    --------
    The exact entropic plan of a planted cost gives that cost back:

    >>> import numpy as np, pyot
    >>> from pyot.inverse import fit_cost
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2))
    >>> A = np.array([[1.0, 0.0], [0.0, -0.5]])
    >>> plan = pyot.sinkhorn(-x @ A @ y.T, eps=1.0, tol=1e-12).plan
    >>> res = fit_cost(x, y, plan, eps=1.0)
    >>> bool(res.converged), bool(np.allclose(res.weights, A, atol=1e-4))
    (True, True)
    >>> res.cost(x[:3], y[:4]).shape
    (3, 4)

    Observed matches as index pairs, with an l1 penalty:

    >>> pairs = np.column_stack((np.arange(200), rng.permutation(200)))
    >>> res = fit_cost(x, y, pairs, eps=1.0, reg_l1=0.05)
    >>> res.weights.shape, bool(np.all(np.diff(res.loss_history) <= 0))
    ((2, 2), True)
    """
    fn = "pyot.inverse.fit_cost"
    problem = _Fit(fn, x, y, plan, features, eps)
    reg = V.non_negative(reg_l1, "reg_l1", fn)
    max_iter, tol = _options(max_iter, tol, fn)
    return problem.solve(np.zeros(problem.model.shape), reg, max_iter, tol)


def fit_cost_path(
    x: object,
    y: object,
    plan: object,
    *,
    reg_l1: Sequence[float] | int,
    features: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "bilinear",
    eps: float,
    max_iter: int = 500,
    tol: float = 1e-6,
    progress: bool = False,
) -> list[InverseOTResult]:
    """:func:`fit_cost` over a grid of ``reg_l1`` values, each fit warm-started from the
    previous one (weights and Sinkhorn potentials): a regularization path to choose the support
    size from.

    Parameters
    ----------
    x, y, plan, features, eps, max_iter, tol
        As in :func:`fit_cost`.
    reg_l1 : sequence of float, or int
        The penalties, solved in the order given (decreasing is fastest: the support grows
        along the path). An int k gives k values from ``reg_max`` (the smallest penalty whose
        solution is A = 0) down to ``reg_max / 100``, spaced geometrically.
    progress : bool
        Show a tqdm progress bar over the grid (needs ``tqdm``).

    Returns
    -------
    list of InverseOTResult
        One per penalty, in the order solved.

    Examples
    --------
    >>> import numpy as np, pyot
    >>> from pyot.inverse import fit_cost_path
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((100, 3)), rng.standard_normal((100, 3))
    >>> A = np.diag([1.0, 0.0, 0.0])
    >>> plan = pyot.sinkhorn(-x @ A @ y.T, eps=1.0, tol=1e-12).plan
    >>> path = fit_cost_path(x, y, plan, reg_l1=4, eps=1.0)
    >>> [int(r.support.sum()) for r in path]
    [0, 1, 1, 1]
    """
    fn = "pyot.inverse.fit_cost_path"
    problem = _Fit(fn, x, y, plan, features, eps)
    max_iter, tol = _options(max_iter, tol, fn)
    progress = V.flag(progress, "progress", fn)
    if isinstance(reg_l1, numbers.Integral) and not isinstance(reg_l1, bool):
        count = V.integer(reg_l1, "reg_l1", fn, minimum=1)
        top = problem.reg_max()
        regs = [top] if count == 1 else list(top * np.geomspace(1.0, 1.0 / _PATH_RATIO, count))
    else:
        if isinstance(reg_l1, (str, bytes)) or not isinstance(reg_l1, Sequence | np.ndarray):
            raise TypeError(
                f"{fn}: reg_l1 must be a sequence of penalties or an int (a grid size), got "
                f"{type(reg_l1).__name__}"
            )
        if len(reg_l1) == 0:
            raise ValueError(f"{fn}: reg_l1 must not be empty")
        regs = [V.non_negative(r, "reg_l1", fn) for r in np.asarray(reg_l1).tolist()]
    results = []
    w = np.zeros(problem.model.shape)
    bar = V.progress_bar(progress, len(regs), fn, unit="fit")
    try:
        for reg in regs:
            res = problem.solve(w, reg, max_iter, tol)
            results.append(res)
            w = res.weights
            bar.set_postfix(reg_l1=f"{reg:.3g}", support=int(res.support.sum()))
            bar.update()
    finally:
        bar.close()
    return results
