"""Differentiable entropic OT: sinkhorn, unbalanced_sinkhorn, sinkhorn_divergence, SinkhornLoss.

Forward: the numpy-level solvers of :mod:`pyot.sinkhorn` on zero-copy views of the tensors.
Backward (ALGORITHMS 10):

- ``objective``: the envelope theorem. ``d/dC = P``, ``d/d(a, b)`` = the potentials (centred
  for balanced problems), ``d/dx_i = sum_j P_ij grad_x c(x_i, y_j)`` computed by the core from
  the potentials, tile by tile, without an ``(n, m)`` array.
- ``value`` and ``plan``: implicit differentiation of the optimality conditions, the dual's
  linear system solved by conjugate gradients on its Schur complement. On a dense cost the
  plan is formed; on a point cloud the value's gradient is online (plan-vector products and a
  weighted point gradient from the core, O((n + m) d) memory), and a plan asked for is the
  (n, m) array the user wanted, differentiated densely.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import _core
from .. import _validate as V
from .._result import Lazy, SinkhornResult, warn_not_converged
from ..costs import METRICS, _metric
from ..costs import PointCloud as _NumpyCloud
from ..sinkhorn import (
    _DEFAULT_EPS_SCALING,
    _EPS_SCALING_RATIO,
    _STATUS_CONVERGED,
    _STATUS_NOT_FINITE,
    Solved,
    _divergence,
    _reg_marginals,
    _run,
)
from . import _common as T
from . import _cuda as CU
from ._autograd import attach, unsupported

__all__ = ["SinkhornLoss", "sinkhorn", "sinkhorn_divergence", "unbalanced_sinkhorn"]

# The module pyot.sinkhorn (the package attribute of that name is the function): its
# _DENSE_LIMIT is read at call time.
_numpy_sinkhorn = importlib.import_module("..sinkhorn", __package__)

_BALANCED = (math.inf, math.inf)
_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- the solution


@dataclass
class _Potentials:
    """What backward passes need from a solve: float64 arrays with a leading batch axis."""

    a: np.ndarray
    b: np.ndarray
    f: np.ndarray
    g: np.ndarray
    eps: float
    tau: tuple[float, float]

    @classmethod
    def of(cls, solved: Solved, tau: tuple[float, float]) -> _Potentials:
        p = solved.problem
        return cls(p.a, p.b, solved.f, solved.g, solved.eps, tau)

    def kernel(self, cost: np.ndarray) -> np.ndarray:
        """``K = exp((f + g - C) / eps)`` (B, n, m), float64: ``P = a K b``."""
        c = cost.astype(np.float64, copy=False)
        return np.exp((self.f[:, :, None] + self.g[:, None, :] - c) / self.eps)

    def plan(self, cost: np.ndarray) -> np.ndarray:
        return self.a[:, :, None] * self.kernel(cost) * self.b[:, None, :]

    def weight_grads(self) -> tuple[np.ndarray, np.ndarray]:
        """d objective / d(a, b): centred potentials when balanced (the masses are tied);
        with KL marginals the derivative of the primal objective (ALGORITHMS 2.7)."""
        if self.tau == _BALANCED:
            return T.centred(self.f), T.centred(self.g)
        return (_relaxed_side(self.f, self.b, self.tau[0], self.eps),
                _relaxed_side(self.g, self.a, self.tau[1], self.eps))


def _relaxed_side(f: np.ndarray, other: np.ndarray, tau: float, eps: float) -> np.ndarray:
    """``tau (1 - r) - eps (r - sum(other))``, ``r = exp(-f / tau)`` (the marginal's ratio at
    the optimum): d/da of ``tau KL(P 1 | a) + eps KL(P | a b^T)``; ``tau = inf`` gives ``f``."""
    mass = other.sum(axis=-1, keepdims=True)
    if math.isinf(tau):
        return f - eps * (1.0 - mass)
    r = np.exp(-f / tau)
    return tau * (1.0 - r) - eps * (r - mass)


# ----------------------------------------------------------------------------- implicit


def _dual_solution(u: np.ndarray, v: np.ndarray, r: np.ndarray, c: np.ndarray,
                   diag: np.ndarray, mv, tmv) -> tuple[np.ndarray, np.ndarray]:
    """(w_f, w_g) solving [[diag(r), P], [P^T, diag(c)]] w = (u, v) by CG on the Schur
    complement over the columns, ``diag(c) - P^T diag(1 / r) P`` (``diag`` its diagonal, the
    Jacobi preconditioner), with ``mv(w) = P w`` and ``tmv(z) = P^T z`` (dense or online).
    Rows with r = 0 carry no mass: dropped from the system (w_f = 0 there)."""
    rinv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    rhs = v - tmv(u * rinv)
    w_g = T.cg(lambda w: c * w - tmv(mv(w) * rinv), rhs, diag)
    w_f = (u - mv(w_g)) * rinv
    return w_f, w_g


def _implicit(kernel: np.ndarray, a: np.ndarray, b: np.ndarray, grad_plan: np.ndarray,
              pots: _Potentials) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of l(P) with respect to (C, a, b) through the optimum (ALGORITHMS 10): with
    u = (G.P) 1, v = (G.P)^T 1 solve [[diag(rho_a P1), P], [P^T, diag(rho_b P^T 1)]] w = (u, v)
    (:func:`_dual_solution`), then dl/dC = (P / eps) (w_f + w_g - G),
    dl/da_i = sum_j (G_ij - w_gj) K_ij b_j (and for b). rho = 1 + eps / tau comes from the
    KL marginals' optimality P 1 = a exp(-f / tau) (1 when balanced: the system is then
    singular along (1, -1), consistent, and the weight gradients are centred)."""
    eps = pots.eps
    rho_a, rho_b = (1.0 + eps / t for t in pots.tau)  # 1 / inf = 0: balanced
    plan = a[:, None] * kernel * b[None, :]
    gp = grad_plan * plan
    u, v = gp.sum(axis=1), gp.sum(axis=0)
    r, c = rho_a * plan.sum(axis=1), rho_b * plan.sum(axis=0)
    rinv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    diag = c - np.einsum("ij,ij->j", plan, plan * rinv[:, None])
    w_f, w_g = _dual_solution(u, v, r, c, diag, lambda w: plan @ w, lambda z: plan.T @ z)
    d_cost = (plan / eps) * (w_f[:, None] + w_g[None, :] - grad_plan)
    d_a = ((grad_plan - w_g[None, :]) * kernel * b[None, :]).sum(axis=1)
    d_b = ((grad_plan - w_f[:, None]) * kernel * a[:, None]).sum(axis=0)
    if pots.tau == _BALANCED:
        return d_cost, T.centred(d_a), T.centred(d_b)
    return d_cost, d_a, d_b


def _dense_rule(pots: _Potentials, *, value: bool):
    """Backward of the dense ``plan`` (value=False) or ``value`` (value=True) by implicit
    differentiation; the value's cost gradient adds the direct term P."""

    def rule(grad, inputs, needs):
        cost, a, b = inputs
        c = T.batch_view(cost)
        kernels = pots.kernel(c)
        gc, ga, gb = [], [], []
        for k in range(len(c)):
            g_plan = c[k].astype(np.float64) * grad.reshape(-1)[k] if value else (
                grad.reshape(c.shape)[k])
            dc, da, db = _implicit(kernels[k], pots.a[k], pots.b[k], g_plan, pots)
            if value:
                dc += grad.reshape(-1)[k] * pots.a[k][:, None] * kernels[k] * pots.b[k][None, :]
            gc.append(dc)
            ga.append(da)
            gb.append(db)
        one = np.ones(len(c))
        return (
            T.as_grad(np.stack(gc), cost, one).reshape(cost.shape) if needs[0] else None,
            T.as_grad(np.stack(ga), a, one) if needs[1] and a is not None else None,
            T.as_grad(np.stack(gb), b, one) if needs[2] and b is not None else None,
        )

    return rule


def _dense_objective_rule(pots: _Potentials):
    """Envelope theorem: d objective / dC = P, d/d(a, b) = potentials."""

    def rule(grad, inputs, needs):
        cost, a, b = inputs
        scale = grad.reshape(-1)
        gc = ga = gb = None
        if needs[0]:
            c = T.batch_view(cost)
            gc = T.as_grad(pots.plan(c), cost, scale).reshape(cost.shape)
        if (needs[1] and a is not None) or (needs[2] and b is not None):
            da, db = pots.weight_grads()
            ga = T.as_grad(da, a, scale) if needs[1] and a is not None else None
            gb = T.as_grad(db, b, scale) if needs[2] and b is not None else None
        return gc, ga, gb

    return rule


# ----------------------------------------------------------------------------- point clouds


@dataclass
class _Cloud:
    """A point-cloud solve: the objective's gradient in the points comes from the core."""

    x: np.ndarray
    y: np.ndarray
    metric: str
    p: float
    pots: _Potentials  # the cross term (batch of one)
    threads: int
    h_x: np.ndarray | None = None  # self-transport potentials (Sinkhorn divergence)
    h_y: np.ndarray | None = None

    def _gradient(self, p, q, wp, wq, fp, fq) -> np.ndarray:
        """sum_j P_ij grad_1 c(p_i, q_j), P from the potentials (never formed)."""
        return _core.sinkhorn_point_gradient(
            p, q, METRICS[self.metric], self.p, wp, wq, fp, fq, eps=self.pots.eps,
            threads=self.threads,
        )

    def grad_points(self, first: bool) -> np.ndarray:
        """d objective / dx (first) or / dy, self terms subtracted (ALGORITHMS 2.6)."""
        pots = self.pots
        a, b, f, g = pots.a[0], pots.b[0], pots.f[0], pots.g[0]
        if first:
            out = self._gradient(self.x, self.y, a, b, f, g)
            if self.h_x is not None:
                out -= self._gradient(self.x, self.x, a, a, self.h_x, self.h_x)
        else:
            out = self._gradient(self.y, self.x, b, a, g, f)
            if self.h_y is not None:
                out -= self._gradient(self.y, self.y, b, b, self.h_y, self.h_y)
        return out

    def grad_weights(self) -> tuple[np.ndarray, np.ndarray]:
        da, db = self.pots.weight_grads()
        if self.h_x is not None:
            da = da - T.centred(self.h_x)[None]
            db = db - T.centred(self.h_y)[None]
        return da, db

    def objective_rule(self, grad, inputs, needs):
        x, y, a, b = inputs
        scale = grad.reshape(-1)
        gx = T.as_grad(self.grad_points(True)[None], x, scale) if needs[0] else None
        gy = T.as_grad(self.grad_points(False)[None], y, scale) if needs[1] else None
        ga = gb = None
        if (needs[2] and a is not None) or (needs[3] and b is not None):
            da, db = self.grad_weights()
            ga = T.as_grad(da, a, scale) if needs[2] and a is not None else None
            gb = T.as_grad(db, b, scale) if needs[3] and b is not None else None
        return gx, gy, ga, gb

    def _matvec(self, first: bool, v: np.ndarray, gamma: float, *, weights=None,
                eps: float | None = None) -> np.ndarray:
        """``sum_j P_ij (v_j + gamma C_ij)`` (first) or its transpose ``sum_i P_ij (v_i +
        gamma C_ij)``, from the core without an (n, m) array; ``weights`` replaces the row
        side's weights (ones: the kernel K b), ``eps`` the temperature (with weights, P^2)."""
        pots = self.pots
        a, b, f, g = pots.a[0], pots.b[0], pots.f[0], pots.g[0]
        p, q, wp, wq, fp, fq = ((self.x, self.y, a, b, f, g) if first
                                else (self.y, self.x, b, a, g, f))
        return _core.sinkhorn_plan_matvec(
            p, q, METRICS[self.metric], self.p, wp if weights is None else weights[0],
            wq if weights is None else weights[1], fp, fq, np.ascontiguousarray(v),
            cost_weight=gamma, eps=pots.eps if eps is None else eps, threads=self.threads,
        )

    def value_rule(self, grad, inputs, needs):
        """Implicit gradient of ``value = <P, C>`` (ALGORITHMS 10 with G = C, plus the direct
        term P), online: the dual's system by CG on plan-vector products from the core, then
        d/dx_i = sum_j P_ij (1 + (w_f_i + w_g_j - C_ij) / eps) grad_x c(x_i, y_j) by the
        weighted point gradient. No (n, m) array; each CG step is two passes over the pairs."""
        x, y, a, b = inputs
        pots = self.pots
        eps, scale = pots.eps, float(grad.reshape(-1)[0])
        wa, wb, fa, gb = pots.a[0], pots.b[0], pots.f[0], pots.g[0]
        n, m = len(wa), len(wb)
        rho_a, rho_b = (1.0 + eps / t for t in pots.tau)
        r = rho_a * self._matvec(True, np.ones(m), 0.0)
        c = rho_b * self._matvec(False, np.ones(n), 0.0)
        u = self._matvec(True, np.zeros(m), 1.0)
        v = self._matvec(False, np.zeros(n), 1.0)
        rinv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
        # Jacobi diagonal sum_i P_ij^2 / r_i: the plan of (b^2, a^2 / r) at eps / 2.
        diag = c - self._matvec(False, np.ones(n), 0.0, weights=(wb * wb, wa * wa * rinv),
                                eps=eps / 2)
        w_f, w_g = _dual_solution(u, v, r, c, diag, lambda w: self._matvec(True, w, 0.0),
                                  lambda z: self._matvec(False, z, 0.0))
        gx = gy = ga = gb_ = None
        code = METRICS[self.metric]
        options = dict(cost_weight=-1.0 / eps, eps=eps, threads=self.threads)
        if needs[0]:
            gx = _core.sinkhorn_weighted_point_gradient(
                self.x, self.y, code, self.p, wa, wb, fa, gb, 1.0 + w_f / eps, w_g / eps,
                **options)
            gx = T.as_grad(gx[None], x, np.array([scale]))
        if needs[1]:
            gy = _core.sinkhorn_weighted_point_gradient(
                self.y, self.x, code, self.p, wb, wa, gb, fa, 1.0 + w_g / eps, w_f / eps,
                **options)
            gy = T.as_grad(gy[None], y, np.array([scale]))
        if (needs[2] and a is not None) or (needs[3] and b is not None):
            # dl/da_i = sum_j K_ij b_j (C_ij - w_g_j): the kernel's row side with unit weights.
            d_a = self._matvec(True, -w_g, 1.0, weights=(np.ones(n), wb))
            d_b = self._matvec(False, -w_f, 1.0, weights=(np.ones(m), wa))
            if pots.tau == _BALANCED:
                d_a, d_b = T.centred(d_a), T.centred(d_b)
            one = np.array([scale])
            ga = T.as_grad(d_a[None], a, one) if needs[2] and a is not None else None
            gb_ = T.as_grad(d_b[None], b, one) if needs[3] and b is not None else None
        return gx, gy, ga, gb_


# ----------------------------------------------------------------------------- CUDA tensors


def _balanced_only(fn: str, tau: tuple[float, float]) -> None:
    if tau != _BALANCED:
        raise ValueError(
            f"{fn}: CUDA tensors are solved by balanced Sinkhorn only; move unbalanced "
            "problems to the CPU with .cpu()"
        )


def _cuda_only_objective(fn: str):
    """The rule of outputs whose gradient has no CUDA path yet: backward raises."""
    return unsupported(
        f"{fn}: on CUDA tensors only objective is differentiable (the envelope theorem); the "
        "implicit gradients of value and plan run on the CPU (move the tensors with .cpu())"
    )


def _entropic_dense_cuda(fn, c, wa, wb, tau, **options) -> SinkhornResult:
    _balanced_only(fn, tau)
    if c.ndim != 2:
        raise ValueError(f"{fn}: CUDA costs are solved one at a time, got a batch of shape "
                         f"{tuple(c.shape)}; loop over the batch")
    solved = CU.solve_dense(fn, c, wa, wb, **options)

    def objective_rule(grad, inputs, needs):
        cost, a, b = inputs
        scale = float(grad.reshape(-1)[0])
        gc = (solved.plan(cost) * scale).to(cost.dtype) if needs[0] else None
        ga = gb = None
        if needs[1] and a is not None:
            ga = ((solved.f - solved.f.mean()) * scale).to(c.dtype)
        if needs[2] and b is not None:
            gb = ((solved.g - solved.g.mean()) * scale).to(c.dtype)
        return gc, ga, gb

    inputs = (c, wa, wb)
    objective = attach(objective_rule, solved.objective, *inputs)
    value = attach(_cuda_only_objective(fn), solved.value, *inputs)
    return CU.result(fn, solved, objective, value, Lazy(lambda: solved.plan(c).to(c.dtype)),
                     c.dtype)


@dataclass
class _CudaCloud:
    """A solve between CUDA clouds: gradients in the points from the transport kernel."""

    x: torch.Tensor
    y: torch.Tensor
    metric: str
    p: float
    cross: CU.Solved
    self_x: CU.Solved | None = None  # self-transport solves (Sinkhorn divergence)
    self_y: CU.Solved | None = None

    def _grad(self, first: bool) -> torch.Tensor:
        """d objective / dx (first) or / dy, self terms subtracted (ALGORITHMS 2.6)."""
        c = self.cross
        p, q, wp, wq, fp, fq, own = (
            (self.x, self.y, c.a, c.b, c.f, c.g, self.self_x) if first
            else (self.y, self.x, c.b, c.a, c.g, c.f, self.self_y))
        out = CU.transport_gradient(p, q, self.metric, self.p, wp, wq, fp, fq, c.eps)
        if own is not None:
            h = _symmetric(own)
            out -= CU.transport_gradient(p, p, self.metric, self.p, wp, wp, h, h, c.eps)
        return out

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        da, db = self.cross.f, self.cross.g
        if self.self_x is not None:
            da = da - _symmetric(self.self_x)
            db = db - _symmetric(self.self_y)
        return da - da.mean(), db - db.mean()

    def objective_rule(self, grad, inputs, needs):
        x, y, a, b = inputs
        scale = float(grad.reshape(-1)[0])
        gx = (self._grad(True) * scale).to(x.dtype) if needs[0] else None
        gy = (self._grad(False) * scale).to(y.dtype) if needs[1] else None
        ga = gb = None
        if (needs[2] and a is not None) or (needs[3] and b is not None):
            da, db = self._weights()
            ga = (da * scale).to(a.dtype) if needs[2] and a is not None else None
            gb = (db * scale).to(b.dtype) if needs[3] and b is not None else None
        return gx, gy, ga, gb


def _symmetric(solved: CU.Solved) -> torch.Tensor:
    """The symmetric potential of a self-transport solve: (f + g) / 2 (ALGORITHMS 2.6)."""
    return 0.5 * (solved.f + solved.g)


def _entropic_cloud_cuda(fn, geom, wa, wb, tau, **options) -> SinkhornResult:
    _balanced_only(fn, tau)
    x, y = geom.x, geom.y
    solved = CU.solve_cloud(fn, x, y, geom.metric, geom.p, wa, wb, **options)
    cloud = _CudaCloud(x, y, geom.metric, geom.p, solved)
    inputs = (x, y, wa, wb)
    objective = attach(cloud.objective_rule, solved.objective, *inputs)
    value = attach(_cuda_only_objective(fn), solved.value, *inputs)

    plan = Lazy(lambda: solved.plan(geom.dense()).to(x.dtype))
    return CU.result(fn, solved, objective, value, plan, x.dtype)


def _divergence_cuda(fn, x, y, wa, wb, *, eps, metric, tol, max_iter, threads, p):
    metric_name, exponent = _metric(metric, p, fn)
    opts = dict(eps=eps, tol=tol, max_iter=max_iter, threads=threads)
    cross = CU.solve_cloud(fn, x, y, metric_name, exponent, wa, wb, **opts)
    sx = CU.solve_cloud(fn, x, x, metric_name, exponent, wa, wa, **opts)
    sy = CU.solve_cloud(fn, y, y, metric_name, exponent, wb, wb, **opts)
    for solved in (cross, sx, sy):
        solved.check(fn)
    ha, hb = _symmetric(sx), _symmetric(sy)
    value = float((cross.a * (cross.f - ha)).sum() + (cross.b * (cross.g - hb)).sum())
    cloud = _CudaCloud(x, y, metric_name, exponent, cross, sx, sy)
    return attach(cloud.objective_rule, value, x, y, wa, wb)


# ----------------------------------------------------------------------------- front ends


def _weights_of(fn: str, like: torch.Tensor, a: object, b: object, ndim: tuple[int, ...]):
    wa = T.weights(a, "a", fn, like, ndim=ndim)
    wb = T.weights(b, "b", fn, like, ndim=ndim)
    return wa, wb


def _entropic(fn: str, cost: object, a: object, b: object, tau: tuple[float, float],
              **options) -> SinkhornResult:
    """Shared front end of sinkhorn and unbalanced_sinkhorn on tensors."""
    if isinstance(cost, T.PointCloud):
        return _entropic_cloud(fn, cost, a, b, tau, **options)
    c = T.tensor(cost, "cost", fn, ndim=(2, 3))
    wa, wb = _weights_of(fn, c, a, b, (1, 2))
    T.same_kind(fn, cuda=True, cost=c, a=wa, b=wb)
    if c.is_cuda:
        return _entropic_dense_cuda(fn, c, wa, wb, tau, **options)
    solved = _run(fn, T.view(c), T.view(wa), T.view(wb), reg_marginals=tau, **options)
    pots = _Potentials.of(solved, tau)
    res = solved.result
    inputs = (c, wa, wb)
    objective = attach(_dense_objective_rule(pots), res.objective, *inputs)
    value = attach(_dense_rule(pots, value=True), res.value, *inputs)

    def plan():
        out = pots.plan(T.batch_view(c)).reshape(c.shape)
        return attach(_dense_rule(pots, value=False), out, *inputs)

    return _result(res, objective, value, Lazy(plan), c.dtype)


def _entropic_cloud(fn, geom, a, b, tau, *, threads, value=True, **options) -> SinkhornResult:
    """``value=False`` (SinkhornLoss, which reads the objective alone) skips ``<P, C>``, one
    exp pass: the result's value is then NaN."""
    x, y = geom.x, geom.y
    wa, wb = _weights_of(fn, x, a, b, (1,))
    T.same_kind(fn, cuda=True, x=x, y=y, a=wa, b=wb)
    if x.is_cuda:
        return _entropic_cloud_cuda(fn, geom, wa, wb, tau, threads=threads, **options)
    xs, ys = T.view(x), T.view(y)
    solved = _run(fn, _NumpyCloud._trusted(xs, ys, geom.metric, geom.p), T.view(wa),
                  T.view(wb), reg_marginals=tau, threads=threads, value=value, **options)
    pots = _Potentials.of(solved, tau)
    cloud = _Cloud(xs, ys, geom.metric, geom.p, pots, V.threads(threads, fn))
    res = solved.result
    inputs = (x, y, wa, wb)
    objective = attach(cloud.objective_rule, res.objective, *inputs)
    value = attach(cloud.value_rule, res.value, *inputs)

    def plan():
        cost = geom.dense()
        out = pots.plan(T.view(cost)[None])[0]
        return attach(_dense_rule(pots, value=False), out, cost, wa, wb)

    return _result(res, objective, value, Lazy(plan), x.dtype)


# From this dimension on the online point gradient builds its cost tiles by a matrix product,
# which the eager gradient saves (below it the direct tiles cost no more than reading C).
_EAGER_MIN_DIM = 16


def _eager_gradient(x: torch.Tensor, n_entries: int, metric: str) -> bool:
    """Whether the objective's gradient in x is computed in the forward, from the cost matrix
    of a small problem (solved on it, as pyot.sinkhorn solves clouds of at most _DENSE_LIMIT
    entries) while it is at hand: only when autograd will ask for it."""
    return (torch.is_grad_enabled() and x.requires_grad and not x.is_cuda
            and metric in ("sqeuclidean", "euclidean") and x.shape[-1] >= _EAGER_MIN_DIM
            and n_entries <= _numpy_sinkhorn._DENSE_LIMIT)


def _cloud_objective(fn: str, geom: T.PointCloud, a: object, b: object, *, eps: float,
                     tol: float, max_iter: int, threads: int | None) -> torch.Tensor:
    """SinkhornLoss's entropic objective between two clouds (``<P, C>`` is not computed).

    A small problem is solved on its materialised cost, as :func:`pyot.sinkhorn` does; when
    autograd needs the gradient in x, it is computed right after the solve from that cost (one
    exp pass over it and the weighted sums, no second evaluation of the costs) and the cost is
    dropped: the backward only scales it. Otherwise (large clouds, online) the backward
    computes it from the potentials, tile by tile."""
    x, y = geom.x, geom.y
    options = dict(eps=eps, tol=tol, max_iter=max_iter, eps_scaling=None, init=None)
    if not _eager_gradient(x, x.shape[0] * y.shape[0], geom.metric):
        return _entropic_cloud(fn, geom, a, b, _BALANCED, threads=threads, method="auto",
                               value=False, **options).objective
    wa, wb = _weights_of(fn, x, a, b, (1,))
    T.same_kind(fn, cuda=True, x=x, y=y, a=wa, b=wb)
    xs, ys = T.view(x), T.view(y)
    cost = _NumpyCloud._trusted(xs, ys, geom.metric, geom.p).dense()
    solved = _run(fn, cost, T.view(wa), T.view(wb), threads=threads, value=False, **options)
    pots = _Potentials.of(solved, _BALANCED)
    cloud = _Cloud(xs, ys, geom.metric, geom.p, pots, V.threads(threads, fn))
    grad_x = _core.sinkhorn_dense_point_gradient(
        cost, xs, ys, METRICS[geom.metric], pots.a[0], pots.b[0], pots.f[0], pots.g[0],
        eps=pots.eps, threads=cloud.threads)
    objective = solved.result.objective
    del cost, solved  # no (n, m) array outlives the forward

    def rule(grad, inputs, needs):
        _, gy, ga, gb = cloud.objective_rule(grad, inputs, (False, *needs[1:]))
        gx = T.as_grad(grad_x[None], inputs[0], grad.reshape(-1)) if needs[0] else None
        return gx, gy, ga, gb

    return attach(rule, objective, x, y, wa, wb)


def _result(res: SinkhornResult, objective, value, plan, dtype) -> SinkhornResult:
    return SinkhornResult(
        value=value, objective=objective, plan=plan,
        f=torch.from_numpy(np.asarray(res.f)).to(dtype),
        g=torch.from_numpy(np.asarray(res.g)).to(dtype),
        n_iter=res.n_iter, marginal_error=res.marginal_error, converged=res.converged,
        eps=res.eps,
    )


def sinkhorn(
    cost: torch.Tensor | T.PointCloud,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    eps: float,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    eps_scaling: float | bool | None = None,
    init: tuple[object, object] | None = None,
    method: str = "auto",
    threads: int | None = None,
) -> SinkhornResult:
    """Differentiable balanced entropic OT (:func:`pyot.sinkhorn` on tensors).

    Parameters
    ----------
    cost : torch.Tensor, shape (n, m) or (B, n, m), or pyot.torch.PointCloud
        Cost matrix (float32 or float64, on the CPU), or two point clouds whose cost is
        evaluated on the fly.
    a, b : torch.Tensor, shape (n,) / (m,) (or (B, n) / (B, m)), optional
        Weights of equal total mass, of the cost's dtype; ``None`` is uniform.
    eps, tol, max_iter, eps_scaling, init, method, threads
        As in :func:`pyot.sinkhorn`.

    Returns
    -------
    SinkhornResult
        With tensors: ``objective`` (differentiable by the envelope theorem: ``d/dC = P``,
        ``d/da``, ``d/db`` the centred potentials, for a point cloud ``d/dx`` from the core
        without an ``(n, m)`` array), ``value`` and ``plan`` (differentiable by implicit
        differentiation: on a point cloud the value's gradient is computed online, without an
        ``(n, m)`` array, by conjugate gradients on plan-vector products from the core),
        ``f``, ``g`` (detached).

    Raises
    ------
    ValueError, TypeError
        Invalid input (wrong device, mixed dtypes, integer tensors, ...), naming the argument.

    Notes
    -----
    Implicit gradients are exact at the optimum: solve with a tight ``tol`` when they matter
    (the envelope gradient of ``objective`` is exact at any point where the marginals hold).

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> C = torch.rand(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    >>> res = pyot.torch.sinkhorn(C, eps=0.1)
    >>> res.objective.backward()
    >>> torch.allclose(C.grad, res.plan.detach())  # d objective / dC = P
    True
    """
    return _entropic(
        "pyot.torch.sinkhorn", cost, a, b, _BALANCED, eps=eps, tol=tol, max_iter=max_iter,
        eps_scaling=eps_scaling, init=init, method=method, threads=threads,
    )


def unbalanced_sinkhorn(
    cost: torch.Tensor | T.PointCloud,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    eps: float,
    reg_marginals: float | tuple[float, float],
    tol: float = 1e-6,
    max_iter: int = 10_000,
    threads: int | None = None,
) -> SinkhornResult:
    """Differentiable entropic OT with KL-relaxed marginals (:func:`pyot.unbalanced_sinkhorn`).

    ``objective`` (the primal objective) is differentiable by the envelope theorem in the
    cost (or points) and the weights: ``d/dC = P``,
    ``d/da_i = tau_a (1 - r_i) - eps (r_i - sum b)`` with ``r = exp(-f / tau_a)``. ``value``
    and ``plan`` are differentiable by implicit differentiation, as in :func:`sinkhorn` (the
    KL marginals make the dual's system definite).

    Examples
    --------
    >>> import torch, pyot.torch
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> b = torch.tensor([0.5, 1.0], dtype=torch.float64)
    >>> res = pyot.torch.unbalanced_sinkhorn(C, None, b, eps=0.1, reg_marginals=1.0)
    >>> res.objective.backward()
    >>> C.grad.shape
    torch.Size([2, 2])
    """
    fn = "pyot.torch.unbalanced_sinkhorn"
    return _entropic(fn, cost, a, b, _reg_marginals(reg_marginals, fn), eps=eps, tol=tol,
                     max_iter=max_iter, threads=threads)


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    eps: float,
    metric: str = "sqeuclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    threads: int | None = None,
    p: float = 2.0,
) -> torch.Tensor:
    """Differentiable debiased Sinkhorn divergence (:func:`pyot.sinkhorn_divergence`).

    ``S = OT(a, b) - (OT(a, a) + OT(b, b)) / 2``, ``OT`` the entropic objective. Gradients
    (ALGORITHMS 2.6): ``d/dx_i = sum_j P^xy_ij grad c(x_i, y_j) - sum_k P^xx_ik grad c(x_i,
    x_k)`` computed by the core from the three solves' potentials (no ``(n, m)`` array),
    ``d/da = f - h_a`` and ``d/db = g - h_b`` (centred).

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
    y : torch.Tensor, shape (m, d)
    a, b : torch.Tensor, optional
        Weights of equal total mass; ``None`` is uniform.
    eps, metric, tol, max_iter, threads, p
        As in :func:`pyot.sinkhorn_divergence`.

    Returns
    -------
    torch.Tensor
        A 0-d tensor of the points' dtype.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(30, 2, generator=g, requires_grad=True)
    >>> loss = pyot.torch.sinkhorn_divergence(x, torch.rand(40, 2, generator=g) + 1, eps=0.05)
    >>> loss.backward()
    >>> bool(loss > 0), x.grad.shape
    (True, torch.Size([30, 2]))
    """
    fn = "pyot.torch.sinkhorn_divergence"
    xt = T.tensor(x, "x", fn, ndim=(2,))
    yt = T.tensor(y, "y", fn, ndim=(2,))
    wa, wb = _weights_of(fn, xt, a, b, (1,))
    T.same_kind(fn, cuda=True, x=xt, y=yt, a=wa, b=wb)
    if xt.is_cuda:
        return _divergence_cuda(fn, xt, yt, wa, wb, eps=eps, metric=metric, tol=tol,
                                max_iter=max_iter, threads=threads, p=p)
    xs, ys = T.view(xt), T.view(yt)
    div = _divergence(fn, xs, ys, T.view(wa), T.view(wb), eps=eps, metric=metric, tol=tol,
                          max_iter=max_iter, threads=threads, p=p)
    metric_name, exponent = _metric(metric, p, fn)
    cloud = _Cloud(xs, ys, metric_name, exponent, _Potentials.of(div.cross, _BALANCED),
                   V.threads(threads, fn), div.h_x, div.h_y)
    return attach(cloud.objective_rule, div.value, xt, yt, wa, wb)


# ----------------------------------------------------------------------------- batches


@dataclass
class _CloudBatch:
    """B point-cloud problems solved in one core call: the loss's gradient in the points and
    weights from the batched point-gradient kernel (one call per term, no Python loop)."""

    x: np.ndarray  # (B, n, d)
    y: np.ndarray  # (B, m, d)
    code: int
    p: float
    eps: float
    threads: int
    a: np.ndarray  # (B, n) float64, as solved
    b: np.ndarray
    f: np.ndarray
    g: np.ndarray
    h_x: np.ndarray | None = None  # self-transport potentials (debiased)
    h_y: np.ndarray | None = None

    def _gradient(self, p, q, wp, wq, fp, fq) -> np.ndarray:
        return _core.sinkhorn_point_gradient_batch(p, q, self.code, self.p, wp, wq, fp, fq,
                                                   eps=self.eps, threads=self.threads)

    def rule(self, grad, inputs, needs):
        x, y, a, b = inputs
        scale = grad.reshape(-1)
        gx = gy = ga = gb = None
        if needs[0]:
            d = self._gradient(self.x, self.y, self.a, self.b, self.f, self.g)
            if self.h_x is not None:
                d -= self._gradient(self.x, self.x, self.a, self.a, self.h_x, self.h_x)
            gx = T.as_grad(d, x, scale)
        if needs[1]:
            d = self._gradient(self.y, self.x, self.b, self.a, self.g, self.f)
            if self.h_y is not None:
                d -= self._gradient(self.y, self.y, self.b, self.b, self.h_y, self.h_y)
            gy = T.as_grad(d, y, scale)
        if (needs[2] and a is not None) or (needs[3] and b is not None):
            da, db = T.centred(self.f), T.centred(self.g)
            if self.h_x is not None:
                da, db = da - T.centred(self.h_x), db - T.centred(self.h_y)
            ga = T.as_grad(da, a, scale) if needs[2] and a is not None else None
            gb = T.as_grad(db, b, scale) if needs[3] and b is not None else None
        return gx, gy, ga, gb


def _loss_batch(fn: str, x: torch.Tensor, y: torch.Tensor, a: object, b: object, *,
                eps: float, metric: str, p: float, debias: bool, tol: object, max_iter: object,
                threads: object) -> torch.Tensor:
    """The (B,) losses of a batch of cloud pairs: the cross solves in one core call, the
    self-transport terms in one call per side, the backward in one call per term."""
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"{fn}: x and y must both be (n, d) or both (B, n, d) with the same B and d, got "
            f"shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    batch, n, m = x.shape[0], x.shape[1], y.shape[1]
    wa, wb = _weights_of(fn, x, a, b, (1, 2))
    T.same_kind(fn, x=x, y=y, a=wa, b=wb)
    xs = V.as_array(T.view(x), "x", fn, ndim=3)
    ys = V.as_array(T.view(y), "y", fn, ndim=3)
    av = V.weights(T.view(wa), n, "a", fn, batch=batch)
    bv = V.weights(T.view(wb), m, "b", fn, batch=batch)
    V.same_mass(av, bv, fn)
    tol_f = V.non_negative(tol, "tol", fn)
    max_iter_i = V.integer(max_iter, "max_iter", fn, minimum=0)
    n_threads = V.threads(threads, fn)
    code = METRICS[metric]
    ranges = np.array([_NumpyCloud._trusted(xs[k], ys[k], metric, p).cost_range()
                       for k in range(batch)])
    # eps scaling as sinkhorn's automatic choice (one factor for the batch, as dense batches).
    q = _DEFAULT_EPS_SCALING if ranges.max() > _EPS_SCALING_RATIO * eps else 0.0
    f, g = np.zeros((batch, n)), np.zeros((batch, m))
    out = _core.sinkhorn_online_batch(
        xs, ys, code, p, av, bv, f, g, ranges, ranges, eps=eps, tol=tol_f, max_iter=max_iter_i,
        eps_scaling=q, overrelax=True, tau_a=math.inf, tau_b=math.inf, threads=n_threads,
        value=False)
    losses = _checked(fn, out, "")
    state = _CloudBatch(xs, ys, code, p, eps, n_threads, av, bv, f, g)
    if debias:
        terms = []
        for pts, w, side in ((xs, av, "x"), (ys, bv, "y")):
            h = np.zeros(w.shape)
            out = _core.sinkhorn_symmetric_online_batch(pts, code, p, w, h, eps=eps, tol=tol_f,
                                                        max_iter=max_iter_i, threads=n_threads,
                                                        value=False)
            terms.append(_checked(fn, out, f" (self-transport term of {side})"))
            setattr(state, "h_" + side, h)
        losses = losses - 0.5 * (terms[0] + terms[1])
    return attach(state.rule, losses, x, y, wa, wb)


def _checked(fn: str, out: tuple, what: str) -> np.ndarray:
    """The objectives (B,) of a batched core solve; non-finite values raise, non-convergence
    warns (once for the batch)."""
    status, n_iter, err, _, objective = out
    if (status == _STATUS_NOT_FINITE).any():
        raise FloatingPointError(
            f"{fn}: the iterations produced non-finite values{what}; try a larger eps")
    warn_not_converged(fn + what, SinkhornResult(
        n_iter=n_iter, marginal_error=err, converged=status == _STATUS_CONVERGED),
        "Raise max_iter, loosen tol or increase eps.")
    return objective


class SinkhornLoss(torch.nn.Module):
    """Sinkhorn loss between point clouds, for training loops.

    ``forward(x, y, a=None, b=None)`` returns the debiased Sinkhorn divergence
    (``debias=True``) or the entropic OT objective between the clouds, with gradients to the
    points and weights computed by the compiled core from the dual potentials: no ``(n, m)``
    array in the forward or the backward pass.

    Parameters
    ----------
    eps : float
        Entropic regularization, in the unit of the cost.
    metric : str
        Ground cost, as in :func:`pyot.cost_matrix`.
    debias : bool
        Subtract the self-transport terms (the Sinkhorn divergence, zero iff ``x == y``).
    reduction : {"mean", "sum", "none"}
        How the losses of a batch ``(B, n, d)`` are combined (a single pair gives a 0-d
        tensor whatever the reduction). A batch is solved by the core in one call per solve
        kind (threads across the problems), its gradient in one call per term; weights are
        ``(n,)`` (shared) or ``(B, n)``.
    p : float
        Minkowski exponent.
    tol, max_iter, threads
        As in :func:`pyot.sinkhorn`.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> loss = pyot.torch.SinkhornLoss(eps=0.05)
    >>> x = torch.rand(4, 30, 2, generator=g, requires_grad=True)  # a batch of 4 clouds
    >>> out = loss(x, torch.rand(4, 25, 2, generator=g))
    >>> out.backward()
    >>> out.shape, x.grad.shape
    (torch.Size([]), torch.Size([4, 30, 2]))
    """

    def __init__(
        self,
        eps: float,
        *,
        metric: str = "sqeuclidean",
        debias: bool = True,
        reduction: str = "mean",
        p: float = 2.0,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        fn = "pyot.torch.SinkhornLoss"
        self.eps = V.positive(eps, "eps", fn)
        self.metric, self.p = _metric(metric, p, fn)
        self.debias = bool(debias)
        self.reduction = V.choice(reduction, "reduction", fn, _REDUCTIONS)
        self.tol, self.max_iter, self.threads = tol, max_iter, threads

    def extra_repr(self) -> str:
        return (f"eps={self.eps}, metric={self.metric!r}, debias={self.debias}, "
                f"reduction={self.reduction!r}")

    def _pair(self, x, y, a, b) -> torch.Tensor:
        options = dict(eps=self.eps, tol=self.tol, max_iter=self.max_iter, threads=self.threads)
        if self.debias:
            return sinkhorn_divergence(x, y, a, b, metric=self.metric, p=self.p, **options)
        geom = T.PointCloud(x, y, self.metric, p=self.p)
        return _cloud_objective("pyot.torch.SinkhornLoss", geom, a, b, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                b: torch.Tensor | None = None) -> torch.Tensor:
        fn = "pyot.torch.SinkhornLoss"
        xt = T.tensor(x, "x", fn, ndim=(2, 3))
        yt = T.tensor(y, "y", fn, ndim=(2, 3))
        if xt.ndim == 2 and yt.ndim == 2:
            return self._pair(xt, yt, a, b)
        losses = _loss_batch(fn, xt, yt, a, b, eps=self.eps, metric=self.metric, p=self.p,
                             debias=self.debias, tol=self.tol, max_iter=self.max_iter,
                             threads=self.threads)
        if self.reduction == "mean":
            return losses.mean()
        return losses.sum() if self.reduction == "sum" else losses
