"""Differentiable exact, partial and sparsity-constrained OT (envelope gradients).

Forward: :func:`pyot.emd`, :func:`pyot.partial_ot`, :func:`pyot.sparse_ot` on zero-copy views.
Backward of the optimal objective by the envelope theorem (ALGORITHMS 10): ``d/dC = P`` and
``d/d(a, b)`` the dual potentials (centred where the masses are tied). These solvers work on a
dense cost, so a :class:`pyot.torch.PointCloud` is materialised by torch operations and the
cost gradient flows on to the points through autograd.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .. import exact as _exact
from .. import partial as _partial
from .. import sparse as _sparse
from .._result import Lazy, OTResult, SinkhornResult, SparseResult
from . import _common as T
from ._autograd import attach

__all__ = ["emd", "partial_ot", "sparse_ot"]


def _dense(fn: str, cost: object, a: object, b: object, ndim: tuple[int, ...]):
    """(cost, a, b) as checked tensors; a point cloud becomes its torch cost matrix."""
    c = cost.dense() if isinstance(cost, T.PointCloud) else T.tensor(cost, "cost", fn, ndim=ndim)
    wndim = (1, 2) if c.ndim == 3 else (1,)
    wa = T.weights(a, "a", fn, c, ndim=wndim)
    wb = T.weights(b, "b", fn, c, ndim=wndim)
    T.same_kind(fn, cost=c, a=wa, b=wb)
    return c, wa, wb


def _dense_plan(plan) -> np.ndarray:
    """A scipy sparse plan (or an ndarray) as a float64 array."""
    return np.asarray(plan.toarray() if hasattr(plan, "toarray") else plan, dtype=np.float64)


def _envelope_rule(plan: np.ndarray, da: np.ndarray, db: np.ndarray):
    """d objective / dC = P, d/da = da, d/db = db (arrays with a leading batch axis)."""

    def rule(grad, inputs, needs):
        cost, a, b = inputs
        scale = grad.reshape(-1)
        return (
            T.as_grad(plan, cost, scale) if needs[0] else None,
            T.as_grad(da, a, scale) if needs[1] and a is not None else None,
            T.as_grad(db, b, scale) if needs[2] and b is not None else None,
        )

    return rule


def _batched(arr: np.ndarray, batched: bool) -> np.ndarray:
    return np.asarray(arr, dtype=np.float64) if batched else np.asarray(arr, np.float64)[None]


def emd(
    cost: torch.Tensor | T.PointCloud,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    max_iter: int = 1_000_000,
    threads: int | None = None,
) -> OTResult:
    """Differentiable exact OT (:func:`pyot.emd` on tensors).

    ``value`` (``<P, C>``, the optimal objective) is differentiable: ``d/dC = P``, ``d/da``
    and ``d/db`` the centred dual potentials (as POT's ``emd2``), to points through the cost.
    ``plan`` is a dense tensor without a gradient (piecewise constant in the cost).

    Examples
    --------
    >>> import torch, pyot.torch
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> res = pyot.torch.emd(C)
    >>> res.value.backward()
    >>> C.grad
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]], dtype=torch.float64)
    """
    fn = "pyot.torch.emd"
    c, wa, wb = _dense(fn, cost, a, b, (2, 3))
    res = _exact.emd(T.view(c), T.view(wa), T.view(wb), max_iter=max_iter, threads=threads)
    batched = c.ndim == 3
    plan = _dense_plan(res.plan).reshape(-1, *c.shape[-2:])
    f, g = _batched(res.f, batched), _batched(res.g, batched)
    value = attach(_envelope_rule(plan, T.centred(f), T.centred(g)), res.value, c, wa, wb)
    return OTResult(
        value=value, plan=torch.from_numpy(plan.reshape(c.shape)).to(c.dtype),
        f=torch.from_numpy(np.asarray(res.f)), g=torch.from_numpy(np.asarray(res.g)),
        n_iter=res.n_iter, marginal_error=res.marginal_error, converged=res.converged,
    )


def partial_ot(
    cost: torch.Tensor | T.PointCloud,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    mass: float,
    eps: float | None = None,
    tol: float = 1e-6,
    max_iter: int | None = None,
    threads: int | None = None,
) -> OTResult | SinkhornResult:
    """Differentiable partial OT (:func:`pyot.partial_ot` on tensors).

    The optimal objective is differentiable by the envelope theorem: ``value`` when exact
    (``eps=None``), ``objective`` when entropic; ``d/dC = P``, ``d/da = f`` and ``d/db = g``
    (the capacity prices, not centred: the masses are free), plus for the entropic problem the
    derivative of ``eps KL(P | a b^T)``. The entropic ``value`` is differentiable by implicit
    differentiation of the optimality conditions on the binding capacities (exact where the
    set of binding capacities does not change); both plans carry no gradient.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]], dtype=torch.float64,
    ...                  requires_grad=True)
    >>> a = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    >>> res = pyot.torch.partial_ot(C, a, torch.tensor([0.5, 0.5], dtype=torch.float64),
    ...                             mass=0.5)
    >>> res.value.backward()
    >>> C.grad[2].tolist()  # the far row moves no mass
    [0.0, 0.0]
    """
    fn = "pyot.torch.partial_ot"
    c, wa, wb = _dense(fn, cost, a, b, (2,))
    res = _partial.partial_ot(T.view(c), T.view(wa), T.view(wb), mass=mass, eps=eps, tol=tol,
                              max_iter=max_iter, threads=threads)
    plan = _dense_plan(res.plan)[None]
    f, g = np.asarray(res.f, np.float64)[None], np.asarray(res.g, np.float64)[None]
    fields = dict(f=torch.from_numpy(np.asarray(res.f)), g=torch.from_numpy(np.asarray(res.g)),
                  n_iter=res.n_iter, marginal_error=res.marginal_error, converged=res.converged)
    plan_t = torch.from_numpy(plan[0]).to(c.dtype)
    if eps is None:
        value = attach(_envelope_rule(plan, f, g), res.value, c, wa, wb)
        return OTResult(value=value, plan=plan_t, **fields)
    wa_np, wb_np = _weights_array(wa, c.shape[0]), _weights_array(wb, c.shape[1])
    da = f - res.eps * (_ratio(plan[0].sum(axis=1), wa_np) - wb_np.sum())
    db = g - res.eps * (_ratio(plan[0].sum(axis=0), wb_np) - wa_np.sum())
    objective = attach(_envelope_rule(plan, da, db), res.objective, c, wa, wb)
    value = attach(_partial_value_rule(plan[0], wa_np, wb_np, f[0], g[0], res.eps), res.value,
                   c, wa, wb)
    return SinkhornResult(value=value, objective=objective, plan=plan_t, eps=res.eps, **fields)


def _partial_value_rule(plan: np.ndarray, a: np.ndarray, b: np.ndarray, f: np.ndarray,
                        g: np.ndarray, eps: float):
    """Implicit gradient of the entropic partial ``value = <P, C>`` (ALGORITHMS 6 and 10).

    At the optimum ``P_ij = a_i b_j exp((f_i + g_j + lam - C_ij) / eps)`` with the binding
    capacities (``f_i < 0``: ``P 1 = a`` there; ``f_i = 0`` rows are slack and stay at 0) and
    the mass ``sum P = s``. Differentiating these equalities in (f_A, g_B, lam) gives the PSD
    system ``H = M^T diag(P) M``, ``(M z)_ij = z_f_i + z_g_j + z_lam`` over the binding
    variables; with ``w = H^+ M^T (G .* P)`` (CG), ``dl/dC = (P / eps) (M w - G)`` as for
    Sinkhorn (plus the direct term P for the value), ``dl/da_i = [f_i < 0] w_f_i + sum_j
    K_ij b_j (G_ij - (M w)_ij)`` (K = P / (a b)), and the same for b. The mass is fixed."""
    rows, cols = (f < 0) & (a > 0), (g < 0) & (b > 0)

    def spread(z: np.ndarray) -> np.ndarray:
        zf, zg = np.zeros(len(a)), np.zeros(len(b))
        zf[rows], zg[cols] = z[:rows.sum()], z[rows.sum():-1]
        return zf[:, None] + zg[None, :] + z[-1]

    def gather(t: np.ndarray) -> np.ndarray:
        return np.concatenate([t.sum(axis=1)[rows], t.sum(axis=0)[cols], [t.sum()]])

    def rule(grad, inputs, needs):
        cost, wa, wb = inputs
        c = T.view(cost).astype(np.float64)
        gp = c * plan
        diag = gather(plan)
        diag[-1] = plan.sum()
        w = T.cg(lambda z: gather(plan * spread(z)), gather(gp), diag)
        mw = spread(w)
        # K_ij b_j and K_ij a_i from the plan (a zero weight's derivative is left at 0).
        kb = plan / np.where(a > 0, a, 1.0)[:, None]
        ka = plan / np.where(b > 0, b, 1.0)[None, :]
        scale = grad.reshape(-1)
        out = [None, None, None]
        if needs[0]:
            d_cost = plan + (plan / eps) * (mw - c)
            out[0] = T.as_grad(d_cost[None], cost, scale).reshape(cost.shape)
        if needs[1] and wa is not None:
            d_a = (kb * (c - mw)).sum(axis=1)
            d_a[rows] += w[:rows.sum()]
            out[1] = T.as_grad(d_a[None], wa, scale)
        if needs[2] and wb is not None:
            d_b = (ka * (c - mw)).sum(axis=0)
            d_b[cols] += w[rows.sum():-1]
            out[2] = T.as_grad(d_b[None], wb, scale)
        return tuple(out)

    return rule


def _weights_array(w: torch.Tensor | None, size: int) -> np.ndarray:
    """float64 weights as the solver saw them (None: uniform with mass 1)."""
    return np.full(size, 1.0 / size) if w is None else T.view(w).astype(np.float64)


def _ratio(marginal: np.ndarray, w: np.ndarray) -> np.ndarray:
    """marginal / w with 0 where w = 0 (such rows carry no plan mass)."""
    return np.divide(marginal, w, out=np.zeros_like(marginal), where=w > 0)[None]


def sparse_ot(
    cost: torch.Tensor | T.PointCloud,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    k: int,
    reg: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    threads: int | None = None,
) -> SparseResult:
    """Differentiable sparsity-constrained OT (:func:`pyot.sparse_ot` on tensors).

    ``objective`` (``<P, C> + (reg / 2) ||P||^2``) is differentiable by the envelope theorem:
    ``d/dC = P``, ``d/da``, ``d/db`` the centred potentials. ``value`` and ``plan`` (a dense
    tensor) are differentiable by implicit differentiation on the plan's support (exact while
    the support does not change; the gradient jumps where it does), so the plan serves as a
    sparse matching layer.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> C = torch.rand(8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    >>> res = pyot.torch.sparse_ot(C, k=2, reg=0.1)
    >>> res.objective.backward()
    >>> bool((C.grad > 0).sum(dim=0).max() <= 2)
    True
    """
    fn = "pyot.torch.sparse_ot"
    c, wa, wb = _dense(fn, cost, a, b, (2,))
    res = _sparse.sparse_ot(T.view(c), T.view(wa), T.view(wb), k=k, reg=reg, tol=tol,
                            max_iter=max_iter, threads=threads)
    plan = _dense_plan(res.plan)
    f, g = np.asarray(res.f, np.float64)[None], np.asarray(res.g, np.float64)[None]
    inputs = (c, wa, wb)
    objective = attach(_envelope_rule(plan[None], T.centred(f), T.centred(g)), res.objective,
                       *inputs)
    return SparseResult(
        value=attach(_support_rule(plan, res.reg, value=True), res.value, *inputs),
        objective=objective,
        plan=Lazy(lambda: attach(_support_rule(plan, res.reg, value=False), plan, *inputs)),
        f=torch.from_numpy(np.asarray(res.f)), g=torch.from_numpy(np.asarray(res.g)),
        n_iter=res.n_iter, marginal_error=res.marginal_error, converged=res.converged,
        reg=res.reg,
    )


def _support_implicit(plan: np.ndarray, grad_plan: np.ndarray, reg: float):
    """Gradients of l(P) through the quadratically regularized optimum on its support S
    (ALGORITHMS 10): with u = (G 1_S) 1, v = (G 1_S)^T 1 solve
    [[diag(row counts), 1_S], [1_S^T, diag(col counts)]] w = (u, v) by CG (one null direction
    per connected component of the support, never excited); then
    dl/dC = (1_S / reg) (w_f + w_g - G), dl/da = w_f, dl/db = w_g. Exact while S is fixed."""
    n, m = plan.shape
    rows, cols = np.nonzero(plan)
    support = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, m))
    g_s = grad_plan[rows, cols]
    u = np.bincount(rows, g_s, minlength=n)
    v = np.bincount(cols, g_s, minlength=m)
    row_count = np.bincount(rows, minlength=n).astype(np.float64)
    col_count = np.bincount(cols, minlength=m).astype(np.float64)

    def apply(w):
        wf, wg = w[:n], w[n:]
        return np.concatenate([row_count * wf + support @ wg, support.T @ wf + col_count * wg])

    w = T.cg(apply, np.concatenate([u, v]), np.concatenate([row_count, col_count]))
    d_cost = np.zeros((n, m))
    d_cost[rows, cols] = (w[:n][rows] + w[n:][cols] - g_s) / reg
    return d_cost, T.centred(w[:n]), T.centred(w[n:])


def _support_rule(plan: np.ndarray, reg: float, *, value: bool):
    """Backward of the sparse ``plan`` (value=False) or ``value`` = <P, C> (value=True, G = C
    plus the direct term P)."""

    def rule(grad, inputs, needs):
        cost, a, b = inputs
        scale = float(grad.reshape(-1)[0]) if value else 0.0
        g_plan = T.view(cost).astype(np.float64) * scale if value else grad.reshape(plan.shape)
        d_cost, d_a, d_b = _support_implicit(plan, g_plan, reg)
        if value:
            d_cost += scale * plan
        one = np.ones(1)
        return (
            T.as_grad(d_cost[None], cost, one) if needs[0] else None,
            T.as_grad(d_a[None], a, one) if needs[1] and a is not None else None,
            T.as_grad(d_b[None], b, one) if needs[2] and b is not None else None,
        )

    return rule
