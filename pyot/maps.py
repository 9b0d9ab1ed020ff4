"""Transport maps: the entropic map, the Monge gap and Monge-gap map fitting (ALGORITHMS 9).

- :class:`EntropicMap`: the barycentric projection through the entropic potentials
  [Pooladian 2021], ``T(z) = sum_j w_j y_j`` with ``w = softmax_j(log b_j + (g_j - c(z, y_j))
  / eps)``, evaluated by the compiled core in one online pass over the targets (no ``n x m``
  array), on numpy arrays or torch tensors (differentiable in the query points).
- :func:`monge_gap`: ``M(T) = sum_i a_i c(x_i, T(x_i)) - W_eps(a, T#a)`` [Uscidda 2023], a
  float for arrays, a differentiable tensor for tensors.
- :func:`fit_monge_gap_map`: a torch map ``T = x + MLP(x)`` trained with Adam on mini-batches to
  minimise ``S_eps(T#x, y) + reg M(T)``; no architecture constraint, any cost.

``import pyot.maps`` does not import torch; the torch paths import it when they run.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from . import _core
from . import _validate as V
from ._result import SinkhornResult
from .costs import METRICS, PointCloud, _metric, _points
from .sinkhorn import _run

__all__ = ["EntropicMap", "MongeGapMap", "fit_monge_gap_map", "monge_gap"]


def _torch_tensor(value: object) -> bool:
    """True for a torch.Tensor (without importing torch when the caller has not)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _numpy(value: object, name: str, fn: str) -> object:
    """CPU tensors as detached numpy arrays (fitted data carries no gradient), others as given.
    A tensor on another device is refused rather than copied to the host behind the caller's
    back (the rule of :mod:`pyot.torch`)."""
    if _torch_tensor(value):
        if value.device.type != "cpu":
            raise ValueError(
                f"{fn}: {name} is on {value.device}; pyot.maps runs on CPU tensors (move it "
                f"with {name}.cpu())"
            )
        return value.detach().numpy()
    return value


def _entropy(a: np.ndarray) -> float:
    """H(a) = -sum a log a (0 log 0 = 0)."""
    pos = a[a > 0]
    return float(-(pos * np.log(pos)).sum())


# ----------------------------------------------------------------------------- entropic map


class EntropicMap:
    """The entropic (barycentric) transport map from ``x`` to ``y``.

    Fits the Sinkhorn potentials of ``(x, a)`` to ``(y, b)`` once (:func:`pyot.sinkhorn` on a
    :class:`pyot.PointCloud`: dense below a size limit, online above), then maps any point
    ``z`` to ``T(z) = sum_j w_j(z) y_j``, ``w(z) = softmax_j(log b_j + (g_j - c(z, y_j)) /
    eps)`` [Pooladian 2021]. On the training points ``T(x_i) = (P y)_i / (P 1)_i``, the
    barycentric projection of the plan. For the squared-Euclidean cost ``T`` estimates the
    Brenier map and converges to it as ``eps -> 0`` and the samples grow.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Source points.
    y : array_like or torch.Tensor, shape (m, d)
        Target points.
    eps : float
        Entropic regularization (absolute, in the unit of the cost).
    a, b : array_like, optional
        Weights of equal total mass; ``None`` is uniform.
    metric : str
        Ground cost, as in :func:`pyot.cost_matrix` (every metric of ``PointCloud``).
    p : float
        Minkowski exponent.
    tol, max_iter, threads
        As in :func:`pyot.sinkhorn`.

    Attributes
    ----------
    result : SinkhornResult
        The fit (``f``, ``g``, ``converged``, ...).
    f, g : ndarray
        The potentials (float64): ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``.
    eps : float
    y, b : ndarray
        The targets and their weights.

    Notes
    -----
    Evaluation costs ``O(m d)`` per query point and no ``n x m`` memory: one pass of the
    compiled core over tiles of ``y`` with an online log-sum-exp. Torch tensors in give a
    tensor out (the query's dtype) that is differentiable with respect to the query points:
    the backward is a second online pass, ``dT/dz^T G = -(1/eps) sum_j w_j <G, y_j - T(z)>
    grad_z c(z, y_j)``. The map is *not* differentiable with respect to ``x``, ``y`` or the
    weights: they are fitted data (tensors given to the constructor are detached).

    Examples
    --------
    >>> import numpy as np, pyot.maps
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2))
    >>> T = pyot.maps.EntropicMap(x, x + 3.0, eps=0.01)
    >>> z = np.array([[0.0, 0.0], [0.5, -0.5]])
    >>> np.round(T(z), 1)  # the translation z + 3, up to the entropic bias
    array([[3. , 3. ],
           [3.4, 2.6]])
    """

    def __init__(
        self,
        x: object,
        y: object,
        *,
        eps: float,
        a: object = None,
        b: object = None,
        metric: str = "sqeuclidean",
        p: float = 2.0,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        threads: int | None = None,
    ) -> None:
        fn = "pyot.maps.EntropicMap"
        xs, ys = _points(_numpy(x, "x", fn), _numpy(y, "y", fn), fn)
        self.metric, self.p = _metric(metric, p, fn)
        self.eps = V.positive(eps, "eps", fn)
        self._threads = V.threads(threads, fn)
        geom = PointCloud._trusted(xs, ys, self.metric, self.p)
        solved = _run(fn, geom, _numpy(a, "a", fn), _numpy(b, "b", fn), eps=self.eps, tol=tol,
                      max_iter=max_iter, threads=threads, eps_scaling=None)
        self.result: SinkhornResult = solved.result
        self.f: np.ndarray = solved.f[0]
        self.g: np.ndarray = solved.g[0]
        self.b: np.ndarray = solved.problem.b[0]
        self.y: np.ndarray = ys
        self._targets = {ys.dtype: ys}

    @property
    def dim(self) -> int:
        return self.y.shape[1]

    def _y(self, dtype: np.dtype) -> np.ndarray:
        if dtype not in self._targets:
            self._targets[dtype] = self.y.astype(dtype)
        return self._targets[dtype]

    def _forward(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T(z), log normaliser), float64, for a validated (n, d) float array."""
        return _core.sinkhorn_entropic_map(
            z, self._y(z.dtype), METRICS[self.metric], self.p, self.b, self.g, eps=self.eps,
            threads=self._threads,
        )

    def _vjp(self, z: np.ndarray, lse: np.ndarray, tz: np.ndarray, cot: np.ndarray) -> np.ndarray:
        return _core.sinkhorn_entropic_map_vjp(
            z, self._y(z.dtype), METRICS[self.metric], self.p, self.b, self.g, lse, tz, cot,
            eps=self.eps, threads=self._threads,
        )

    def _query_shape(self, shape: tuple[int, ...], fn: str) -> None:
        if len(shape) not in (1, 2) or shape[-1] != self.dim:
            raise ValueError(
                f"{fn}: z must have shape (n, {self.dim}) or ({self.dim},) (the dimension of "
                f"the fitted points), got {tuple(shape)}"
            )

    def transport(self, z: object) -> Any:
        """``T(z)`` for points ``z`` of shape ``(n, d)`` (or one point ``(d,)``).

        numpy in, numpy out (z's float dtype); a torch tensor in, a tensor out, differentiable
        with respect to ``z``.
        """
        fn = "pyot.maps.EntropicMap"
        if _torch_tensor(z):
            return self._transport_torch(z, fn)
        zs = V.as_array(z, "z", fn, ndim=(1, 2))
        self._query_shape(zs.shape, fn)
        tz, _ = self._forward(zs.reshape(-1, self.dim))
        return tz.astype(zs.dtype, copy=False).reshape(zs.shape)

    __call__ = transport

    def _transport_torch(self, z: Any, fn: str) -> Any:
        from .torch import _common as T
        from .torch._autograd import attach

        zt = T.tensor(z, "z", fn, ndim=(1, 2))
        T.same_kind(fn, z=zt)
        self._query_shape(tuple(zt.shape), fn)
        zs = np.ascontiguousarray(T.view(zt).reshape(-1, self.dim))
        if not np.isfinite(zs).all():
            raise ValueError(f"{fn}: z contains NaN or inf; remove or replace them")
        tz, lse = self._forward(zs)

        def rule(grad, inputs, needs):
            cot = np.ascontiguousarray(grad.reshape(tz.shape))
            out = self._vjp(zs, lse, tz, cot)
            return (T.as_grad(out[None], inputs[0], np.ones(1)) if needs[0] else None,)

        return attach(rule, tz.reshape(zt.shape), zt)

    def __repr__(self) -> str:
        return (f"EntropicMap(m={self.y.shape[0]}, d={self.dim}, eps={self.eps}, "
                f"metric={self.metric!r})")


# ----------------------------------------------------------------------------- Monge gap


def _paired_cost(x: Any, t: Any, metric: str, p: float) -> Any:
    """c(x_i, t_i) for each row (numpy arrays or torch tensors, differentiable for tensors; the
    root's derivative at 0 is taken as 0, as in pyot.torch)."""
    is_torch = _torch_tensor(x)
    if metric == "cosine":
        if is_torch:
            xn = x / x.norm(dim=-1, keepdim=True).clamp_min(np.finfo(np.float64).tiny)
            tn = t / t.norm(dim=-1, keepdim=True).clamp_min(np.finfo(np.float64).tiny)
            return (1.0 - (xn * tn).sum(-1)).clamp(0.0, 2.0)
        xn = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.finfo(x.dtype).tiny)
        tn = t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), np.finfo(t.dtype).tiny)
        return np.clip(1.0 - (xn * tn).sum(-1), 0.0, 2.0)
    diff = x - t
    if metric == "sqeuclidean":
        return (diff * diff).sum(-1)
    if metric == "cityblock":
        return abs(diff).sum(-1)
    q = 2.0 if metric == "euclidean" else p
    s = (abs(diff) ** q).sum(-1)
    if is_torch:
        import torch

        return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny) ** (1.0 / q), s * 0.0)
    return s ** (1.0 / q)


def monge_gap(
    x: object,
    tx: object,
    *,
    eps: float,
    metric: str = "sqeuclidean",
    a: object = None,
    p: float = 2.0,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    threads: int | None = None,
) -> Any:
    """The entropic Monge gap of a map from its samples ``(x_i, T(x_i))`` [Uscidda 2023].

    ``M = sum_i a_i c(x_i, tx_i) - W_eps(a, a)``, ``W_eps`` the entropic OT cost between
    ``(x, a)`` and ``(tx, a)`` in OTT-JAX's convention ``<P, C> - eps H(P)`` (which is
    :func:`pyot.sinkhorn`'s ``objective - 2 eps H(a)`` for weights summing to 1, ``H(a) = -sum
    a log a``). The unregularized gap is ``>= 0`` and zero iff ``T`` is c-optimal from ``a`` to
    ``T#a``; the entropic one is ``>= eps H(a)`` (``eps log n`` for uniform weights, since the
    identity coupling is feasible), tends to the unregularized gap as ``eps -> 0``, and is what
    OTT-JAX's ``monge_gap_from_samples`` returns.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Reference points.
    tx : array_like or torch.Tensor, shape (n, d)
        Their images ``T(x)``.
    eps : float
        Entropic regularization (absolute).
    metric : str
        Ground cost, as in :func:`pyot.cost_matrix`.
    a : array_like, optional
        Weights of the reference points (``None`` is uniform); keyword-only.
    p, tol, max_iter, threads
        Minkowski exponent; as in :func:`pyot.sinkhorn`.

    Returns
    -------
    float or torch.Tensor
        A float for arrays; for tensors a 0-d tensor differentiable with respect to ``x`` and
        ``tx`` (the OT term by the envelope theorem, computed by the core without an
        ``(n, n)`` array); not with respect to ``a``.

    Raises
    ------
    ValueError, TypeError
        Invalid input, e.g. ``x`` and ``tx`` of different shapes.

    Examples
    --------
    >>> import numpy as np, pyot.maps
    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> shift = pyot.maps.monge_gap(x, x + 1.0, eps=1e-3)  # optimal: only the eps H(a) offset
    >>> rot = pyot.maps.monge_gap(x, x @ np.array([[0.0, -1.0], [1.0, 0.0]]), eps=1e-3)
    >>> bool(shift < 2e-3 * np.log(100) < 0.1 < rot)
    True
    """
    fn = "pyot.maps.monge_gap"
    if _torch_tensor(x) or _torch_tensor(tx):
        return _monge_gap_torch(fn, x, tx, eps=eps, metric=metric, a=a, p=p, tol=tol,
                                max_iter=max_iter, threads=threads)
    xs = V.as_array(x, "x", fn, ndim=2)
    ts = V.as_array(tx, "tx", fn, ndim=2)
    _same_count(xs.shape, ts.shape, fn)
    dtype = V.float_dtype(xs, ts)
    xs, ts = xs.astype(dtype, copy=False), ts.astype(dtype, copy=False)
    metric, p = _metric(metric, p, fn)
    geom = PointCloud._trusted(xs, ts, metric, p)
    solved = _run(fn, geom, a, a, eps=eps, tol=tol, max_iter=max_iter, threads=threads,
                  eps_scaling=None)
    wa = solved.problem.a[0]
    diag = _paired_cost(xs.astype(np.float64), ts.astype(np.float64), metric, p)
    return float(wa @ diag - _entropic_cost(solved.result.objective, wa, solved.eps))


def _same_count(sx: tuple[int, ...], st: tuple[int, ...], fn: str) -> None:
    if tuple(sx) != tuple(st):
        raise ValueError(
            f"{fn}: x and tx must have the same shape (tx = T(x), point by point), got "
            f"{tuple(sx)} and {tuple(st)}"
        )


def _entropic_cost(objective: Any, a: np.ndarray, eps: float) -> Any:
    """W_eps = <P, C> - eps H(P) from the objective <P, C> + eps KL(P | a a^T), both marginals
    a of mass m: KL = -H(P) + 2 H(a) - m + m^2."""
    mass = float(a.sum())
    return objective - eps * (2.0 * _entropy(a) - mass + mass * mass)


def _monge_gap_torch(fn: str, x: Any, tx: Any, *, eps, metric, a, p, tol, max_iter,
                     threads) -> Any:
    from .torch import _common as T
    from .torch._sinkhorn import sinkhorn as torch_sinkhorn

    xt = T.tensor(x, "x", fn, ndim=(2,))
    tt = T.tensor(tx, "tx", fn, ndim=(2,))
    wa = T.weights(a, "a", fn, xt, ndim=(1,))
    wa = wa.detach() if wa is not None else None  # weights are data here, not parameters
    T.same_kind(fn, x=xt, tx=tt, a=wa)
    _same_count(xt.shape, tt.shape, fn)
    metric, p = _metric(metric, p, fn)
    if not (np.isfinite(T.view(xt)).all() and np.isfinite(T.view(tt)).all()):
        raise ValueError(f"{fn}: x or tx contains NaN or inf; remove or replace them")
    res = torch_sinkhorn(T.PointCloud(xt, tt, metric, p=p), wa, wa, eps=eps, tol=tol,
                         max_iter=max_iter, threads=threads)
    wn = V.weights(T.view(wa), xt.shape[0], "a", fn)
    weights = wa if wa is not None else xt.new_full((xt.shape[0],), 1.0 / xt.shape[0])
    diag = _paired_cost(xt, tt, metric, p)
    return (weights * diag).sum() - _entropic_cost(res.objective, wn, res.eps)


# ----------------------------------------------------------------------------- map fitting


class MongeGapMap:
    """A map fitted by :func:`fit_monge_gap_map`: callable on numpy arrays and torch tensors.

    Attributes
    ----------
    model : torch.nn.Module
        The trained map ``T`` (``(n, d) -> (n, d)``).
    loss_history : ndarray, shape (steps,)
        The training loss ``S_eps(T#x_B, y_B) + reg M(T; x_B)`` at every step.
    fit_history, gap_history : ndarray, shape (steps,)
        Its two terms.
    """

    def __init__(self, model: Any, loss_history: np.ndarray, fit_history: np.ndarray,
                 gap_history: np.ndarray) -> None:
        self.model = model
        self.loss_history = loss_history
        self.fit_history = fit_history
        self.gap_history = gap_history

    def transport(self, z: object) -> Any:
        """``T(z)``: a numpy array for array input (no gradient), a tensor for a tensor (with
        the model's autograd graph)."""
        import torch

        if isinstance(z, torch.Tensor):
            return self.model(z)
        fn = "pyot.maps.MongeGapMap"
        zs = V.as_array(z, "z", fn, ndim=2)
        param = next(self.model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float64
        with torch.no_grad():
            out = self.model(torch.as_tensor(zs, dtype=dtype))
        return out.detach().numpy().astype(zs.dtype, copy=False)

    __call__ = transport

    def __repr__(self) -> str:
        return f"MongeGapMap(steps={len(self.loss_history)}, model={type(self.model).__name__})"


def _residual_mlp(dim: int, hidden: int, dtype: Any, generator: Any) -> Any:
    """T(x) = x + MLP(x): two hidden layers, the last one zero (the identity at the start)."""
    import torch
    from torch import nn

    class ResidualMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(dim, hidden, dtype=dtype), nn.GELU(),
                nn.Linear(hidden, hidden, dtype=dtype), nn.GELU(),
                nn.Linear(hidden, dim, dtype=dtype),
            )
            with torch.no_grad():
                for layer in self.net:
                    if isinstance(layer, nn.Linear):
                        bound = 1.0 / math.sqrt(layer.in_features)
                        layer.weight.uniform_(-bound, bound, generator=generator)
                        layer.bias.uniform_(-bound, bound, generator=generator)
                self.net[-1].weight.zero_()
                self.net[-1].bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    return ResidualMLP()


def fit_monge_gap_map(
    x: object,
    y: object,
    *,
    model: Any = None,
    eps: float,
    reg: float = 1.0,
    steps: int = 2000,
    lr: float = 1e-3,
    batch_size: int | None = None,
    seed: object = None,
    metric: str = "sqeuclidean",
    tol: float = 1e-6,
    threads: int | None = None,
    progress: bool = False,
) -> MongeGapMap:
    """Fits a transport map from ``x`` to ``y`` with the Monge gap as regularizer.

    Minimises ``S_eps(T#x_B, y_B) + reg * M_eps(T; x_B)`` over the parameters of ``model``
    with Adam [Uscidda 2023]: ``S_eps`` the debiased Sinkhorn divergence
    (:func:`pyot.torch.sinkhorn_divergence`, the fitting loss) and ``M_eps`` the Monge gap
    (:func:`monge_gap`) on seeded mini-batches ``x_B``, ``y_B`` drawn without replacement at
    every step. The gap pushes ``T`` towards a c-optimal map for the chosen cost, with no
    architectural constraint (no input-convex network). Each step costs ``O(B^2)`` (four
    Sinkhorn solves on the batch, in the compiled core).

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Source samples.
    y : array_like or torch.Tensor, shape (m, d)
        Target samples.
    model : torch.nn.Module, optional
        The map ``(B, d) -> (B, d)``; default a residual MLP ``x + MLP(x)`` (two hidden layers
        of 64 GELU units, last layer zero: the identity at the start), seeded by ``seed``,
        in the dtype of the data (float32 unless both are float64).
    eps : float
        Entropic regularization of both terms (absolute, cost units).
    reg : float
        Weight of the Monge gap (0 fits the marginal only).
    steps : int
        Adam steps.
    lr : float
        Adam learning rate.
    batch_size : int, optional
        Mini-batch size (``None``: all points, capped at 1024 per side).
    seed : int or numpy.random.Generator, optional
        Batches and default initialization.
    metric : str
        The cost ``c`` of the Monge gap (and of the fitting loss).
    tol : float
        Stopping tolerance (L1 marginal error) of the Sinkhorn solves of every step; a looser
        one (1e-3, OTT-JAX's default) makes steps cheaper at the price of noisier gradients.
    threads : int, optional
        Threads of the compiled core in every solve (``None``: all cores).
    progress : bool
        Show a tqdm bar.

    ``metric``, ``tol``, ``threads`` and ``progress`` are pyot additions to the signature of
    API.md.

    Returns
    -------
    MongeGapMap

    Examples
    --------
    >>> import numpy as np, pyot.maps
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(128, 2))
    >>> fitted = pyot.maps.fit_monge_gap_map(x, x + 2.0, eps=0.1, steps=60, lr=2e-2, seed=0,
    ...                                      tol=1e-3)
    >>> bool(fitted.loss_history[-1] < 0.1 * fitted.loss_history[0])
    True
    >>> fitted(np.zeros((1, 2))).shape
    (1, 2)
    """
    fn = "pyot.maps.fit_monge_gap_map"
    import torch

    from .torch._sinkhorn import sinkhorn_divergence

    xs, ys = _points(_numpy(x, "x", fn), _numpy(y, "y", fn), fn)
    metric_name, p = _metric(metric, 2.0, fn)
    eps = V.positive(eps, "eps", fn)
    tol = V.non_negative(tol, "tol", fn)
    V.threads(threads, fn)
    reg = V.non_negative(reg, "reg", fn)
    steps = V.integer(steps, "steps", fn, minimum=1)
    lr = V.positive(lr, "lr", fn)
    rng = V.generator(seed, fn)
    show = V.flag(progress, "progress", fn)
    n, m = len(xs), len(ys)
    if batch_size is None:
        bx, by = min(n, 1024), min(m, 1024)
    else:
        size = V.integer(batch_size, "batch_size", fn, minimum=1)
        bx, by = min(n, size), min(m, size)
    dtype = torch.float64 if xs.dtype == np.float64 else torch.float32
    if model is None:
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        model = _residual_mlp(xs.shape[1], 64, dtype, gen)
    elif not isinstance(model, torch.nn.Module):
        raise TypeError(f"{fn}: model must be a torch.nn.Module, got {type(model).__name__}")
    params = [q for q in model.parameters() if q.requires_grad]
    if not params:
        raise ValueError(f"{fn}: model has no trainable parameters")
    dtype = params[0].dtype
    xt = torch.as_tensor(xs, dtype=dtype)
    yt = torch.as_tensor(ys, dtype=dtype)
    opt = torch.optim.Adam(params, lr=lr)
    history = np.empty((3, steps))
    bar = V.progress_bar(show, steps, fn, unit="step")
    try:
        for step in range(steps):
            xb = xt[torch.from_numpy(rng.choice(n, bx, replace=False))] if bx < n else xt
            yb = yt[torch.from_numpy(rng.choice(m, by, replace=False))] if by < m else yt
            tb = model(xb)
            if tuple(tb.shape) != tuple(xb.shape):
                raise ValueError(
                    f"{fn}: model must map (B, d) to (B, d), got {tuple(tb.shape)} from "
                    f"{tuple(xb.shape)}"
                )
            options = dict(eps=eps, metric=metric_name, p=p, tol=tol, threads=threads)
            fit = sinkhorn_divergence(tb, yb, **options)
            gap = monge_gap(xb, tb, **options) if reg > 0 else tb.new_zeros(())
            loss = fit + reg * gap
            opt.zero_grad()
            loss.backward()
            opt.step()
            history[:, step] = (float(loss.detach()), float(fit.detach()), float(gap.detach()))
            bar.update()
            bar.set_postfix(loss=f"{history[0, step]:.4g}")
    finally:
        bar.close()
    return MongeGapMap(model, history[0], history[1], history[2])

