"""Differentiable entropic OT: sinkhorn, unbalanced_sinkhorn, sinkhorn_divergence, SinkhornLoss.

Forward: the numpy-level solvers of :mod:`pyot.sinkhorn` on zero-copy views of the tensors.
Backward (ALGORITHMS 10):

- ``objective``: the envelope theorem. ``d/dC = P``, ``d/d(a, b)`` = the potentials (centred
  for balanced problems), ``d/dx_i = sum_j P_ij grad_x c(x_i, y_j)`` computed by the core from
  the potentials, tile by tile, without an ``(n, m)`` array.
- ``value`` and ``plan``: implicit differentiation of the optimality conditions, the dual's
  linear system solved by conjugate gradients on its Schur complement (O(nm) memory: the
  plan is formed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import _core
from .. import _validate as V
from .._result import Lazy, SinkhornResult
from ..costs import METRICS, _metric
from ..costs import PointCloud as _NumpyCloud
from ..sinkhorn import Solved, _divergence, _reg_marginals, _run
from . import _common as T
from . import _cuda as CU
from ._autograd import attach, unsupported

__all__ = ["SinkhornLoss", "sinkhorn", "sinkhorn_divergence", "unbalanced_sinkhorn"]

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


def _implicit(kernel: np.ndarray, a: np.ndarray, b: np.ndarray, grad_plan: np.ndarray,
              pots: _Potentials) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of l(P) with respect to (C, a, b) through the optimum (ALGORITHMS 10): with
    u = (G.P) 1, v = (G.P)^T 1 solve [[diag(rho_a P1), P], [P^T, diag(rho_b P^T 1)]] w = (u, v)
    by CG on the Schur complement over the columns, then dl/dC = (P / eps) (w_f + w_g - G),
    dl/da_i = sum_j (G_ij - w_gj) K_ij b_j (and for b). rho = 1 + eps / tau comes from the
    KL marginals' optimality P 1 = a exp(-f / tau) (1 when balanced: the system is then
    singular along (1, -1), consistent, and the weight gradients are centred)."""
    eps = pots.eps
    rho_a, rho_b = (1.0 + eps / t for t in pots.tau)  # 1 / inf = 0: balanced
    plan = a[:, None] * kernel * b[None, :]
    gp = grad_plan * plan
    u, v = gp.sum(axis=1), gp.sum(axis=0)
    r, c = rho_a * plan.sum(axis=1), rho_b * plan.sum(axis=0)
    rows = r > 0  # zero-weight rows carry no mass: dropped from the system
    pr, rr = plan[rows], r[rows]
    rhs = v - pr.T @ (u[rows] / rr)
    diag = c - np.einsum("ij,ij->j", pr, pr / rr[:, None])
    w_g = T.cg(lambda w: c * w - pr.T @ ((pr @ w) / rr), rhs, diag)
    w_f = np.zeros_like(r)
    w_f[rows] = (u[rows] - pr @ w_g) / rr
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

    def value_rule(self, grad, inputs, needs):
        """The value's implicit gradient needs the (n, m) cost: formed here, in backward only,
        by torch operations that carry it on to the points."""
        x, y, a, b = inputs
        n, m = self.x.shape[0], self.y.shape[0]
        if n * m > T.DENSE_GRADIENT_LIMIT:
            raise NotImplementedError(
                f"pyot.torch.sinkhorn: the gradient of value on a {n} x {m} point cloud needs "
                "the dense cost matrix; differentiate objective instead (its gradient needs no "
                "(n, m) array)"
            )
        with torch.enable_grad():
            xd, yd = x.detach().requires_grad_(), y.detach().requires_grad_()
            cost = T.torch_cost(xd, yd, self.metric, self.p)
            gc, ga, gb = _dense_rule(self.pots, value=True)(grad, (cost.detach(), a, b),
                                                           (True, *needs[2:]))
            gx, gy = torch.autograd.grad(cost, (xd, yd), gc)
        return gx if needs[0] else None, gy if needs[1] else None, ga, gb


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


def _entropic_cloud(fn, geom, a, b, tau, *, threads, **options) -> SinkhornResult:
    x, y = geom.x, geom.y
    wa, wb = _weights_of(fn, x, a, b, (1,))
    T.same_kind(fn, cuda=True, x=x, y=y, a=wa, b=wb)
    if x.is_cuda:
        return _entropic_cloud_cuda(fn, geom, wa, wb, tau, threads=threads, **options)
    xs, ys = T.view(x), T.view(y)
    solved = _run(fn, _NumpyCloud._trusted(xs, ys, geom.metric, geom.p), T.view(wa),
                      T.view(wb), reg_marginals=tau, threads=threads, **options)
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
        differentiation, which forms the ``(n, m)`` plan), ``f``, ``g`` (detached).

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
        tensor whatever the reduction).
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
        return sinkhorn(geom, a, b, **options).objective

    def forward(self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                b: torch.Tensor | None = None) -> torch.Tensor:
        fn = "pyot.torch.SinkhornLoss"
        xt = T.tensor(x, "x", fn, ndim=(2, 3))
        yt = T.tensor(y, "y", fn, ndim=(2, 3))
        return T.batched_loss(fn, self._pair, xt, yt, a, b, self.reduction)
