"""CUDA tensors in pyot.torch: the kernels of ``cuda/`` on the tensors' memory, zero-copy.

Every kernel runs on the device of its tensors and on that device's current torch stream
(``torch.cuda.current_stream().cuda_stream``), so it is ordered with the caller's own work.
Points and costs are used in place (made contiguous only when they are not); potentials,
gradients and scratch are float64 tensors allocated by torch on the same device. Weights are
checked once on the host with the numpy layer's checks (the messages are the same), then kept
on the device as float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import _core, _cuda
from .. import _validate as V
from .._result import SinkhornResult, warn_not_converged
from ..costs import METRICS, extent_range
from ..sinkhorn import _STATUS_CONVERGED, _STATUS_NOT_FINITE, _annealing
from ..sinkhorn import _schedule as _sinkhorn_schedule


def require(fn: str) -> None:
    """Raises :class:`pyot.CudaError` unless the CUDA kernels are built and a GPU is usable."""
    _cuda.require(fn)


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _dtype(t: torch.Tensor) -> str:
    return "float64" if t.dtype == torch.float64 else "float32"


def points(t: torch.Tensor) -> torch.Tensor:
    """The detached tensor itself when contiguous (no copy), else one contiguous copy."""
    return t.detach().contiguous()


def weights(w: torch.Tensor | None, n: int, name: str, fn: str, like: torch.Tensor):
    """float64 weights on ``like``'s device: uniform for None, else checked on the host by
    :func:`pyot._validate.weights` (one small copy) and moved back."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=like.device)
    host = V.weights(w.detach().cpu().numpy(), n, name, fn)
    return torch.tensor(host, dtype=torch.float64, device=like.device)


def same_mass(a: torch.Tensor, b: torch.Tensor, fn: str) -> None:
    V.same_mass(np.array([float(a.sum())]), np.array([float(b.sum())]), fn)


def cloud_range(x: torch.Tensor, y: torch.Tensor, metric: str, p: float) -> float:
    """An upper bound of max C - min C from the bounding box (as ``PointCloud.cost_range``)."""
    if metric == "cosine":
        return 2.0
    both = torch.cat([x, y]).to(torch.float64)
    return extent_range((both.amax(0) - both.amin(0)).cpu().numpy(), metric, p)


def _schedule(eps: float, eps_scaling: object, init: object, cost_range: float, fn: str):
    """(q, eps_start) of the eps schedule, decided as :func:`pyot.sinkhorn` does."""
    q, start = _sinkhorn_schedule(_annealing(eps_scaling, fn), eps, np.array([cost_range]),
                                  warm=init is not None, balanced=True)
    return q, float(start[0])


def _initial(init: object, n: int, m: int, like: torch.Tensor, fn: str):
    if init is None:
        zeros = dict(dtype=torch.float64, device=like.device)
        return torch.zeros(n, **zeros), torch.zeros(m, **zeros)
    if not isinstance(init, (tuple, list)) or len(init) != 2:
        raise TypeError(f"{fn}: init must be a pair (f, g) of potentials, got "
                        f"{type(init).__name__}")
    f = torch.as_tensor(init[0], dtype=torch.float64, device=like.device).clone()
    g = torch.as_tensor(init[1], dtype=torch.float64, device=like.device).clone()
    if f.shape != (n,) or g.shape != (m,):
        raise ValueError(f"{fn}: init potentials must have shapes {(n,)} and {(m,)}, got "
                         f"{tuple(f.shape)} and {tuple(g.shape)}")
    return f, g


@dataclass
class Solved:
    """A GPU solve: float64 device tensors a, b, f, g and the core's outcome."""

    a: torch.Tensor
    b: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    eps: float
    status: int
    n_iter: int
    err: float
    value: float
    objective: float

    @property
    def converged(self) -> bool:
        return self.status == _STATUS_CONVERGED

    @property
    def marginal_error(self) -> float:
        return float(self.err)

    def check(self, fn: str) -> None:
        """The checks of :func:`pyot.sinkhorn`: non-finite iterations raise, an unconverged
        solve warns (ConvergenceWarning)."""
        if self.status == _STATUS_NOT_FINITE:
            raise FloatingPointError(
                f"{fn}: the iterations produced non-finite values; try a larger eps")
        warn_not_converged(fn, self, "Raise max_iter, loosen tol or increase eps.")

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        """``P = a b exp((f + g - C) / eps)`` (float64, on the device) for the solved cost."""
        ha = torch.log(self.a) + self.f / self.eps
        hb = torch.log(self.b) + self.g / self.eps
        return torch.exp(ha[:, None] + hb[None, :] - cost.detach().double() / self.eps)


def _common_options(fn, eps, tol, max_iter, method):
    eps = V.positive(eps, "eps", fn)
    tol = V.non_negative(tol, "tol", fn)
    max_iter = V.integer(max_iter, "max_iter", fn, minimum=0)
    method = V.choice(method, "method", fn, ("auto", "log", "scaling"))
    if method == "scaling":
        raise ValueError(f"{fn}: method='scaling' is not available for CUDA tensors (the GPU "
                         "runs log-domain Sinkhorn); use method='auto' or 'log'")
    return eps, tol, max_iter


def solve_cloud(fn: str, x: torch.Tensor, y: torch.Tensor, metric: str, p: float,
                wa: torch.Tensor | None, wb: torch.Tensor | None, *, eps, tol, max_iter,
                eps_scaling=None, init=None, method="auto", threads=None) -> Solved:
    """Balanced online Sinkhorn between CUDA point clouds, on their device and stream."""
    require(fn)
    eps, tol, max_iter = _common_options(fn, eps, tol, max_iter, method)
    V.threads(threads, fn)
    xs, ys = points(x), points(y)
    n, m = xs.shape[0], ys.shape[0]
    a, b = weights(wa, n, "a", fn, xs), weights(wb, m, "b", fn, xs)
    same_mass(a, b, fn)
    f, g = _initial(init, n, m, xs, fn)
    q, start = _schedule(eps, eps_scaling, init, cloud_range(xs, ys, metric, p), fn)
    with torch.cuda.device(xs.device):
        out = _core._cuda_sinkhorn_online(
            _ptr(xs), _ptr(ys), n, m, xs.shape[1], METRICS[metric], p, _ptr(a), _ptr(b),
            _ptr(f), _ptr(g), eps=eps, tol=tol, max_iter=max_iter, eps_scaling=q,
            eps_start=start, value=True, stream=_stream(xs), dtype=_dtype(xs))
    return Solved(a, b, f, g, eps, *out)


def solve_dense(fn: str, cost: torch.Tensor, wa, wb, *, eps, tol, max_iter, eps_scaling=None,
                init=None, method="auto", threads=None) -> Solved:
    """Balanced dense log-domain Sinkhorn on a CUDA cost matrix."""
    require(fn)
    eps, tol, max_iter = _common_options(fn, eps, tol, max_iter, method)
    V.threads(threads, fn)
    c = points(cost)
    n, m = c.shape
    a, b = weights(wa, n, "a", fn, c), weights(wb, m, "b", fn, c)
    same_mass(a, b, fn)
    if not bool(torch.isfinite(c).all()):
        raise ValueError(f"{fn}: cost contains NaN or inf; remove or replace them")
    f, g = _initial(init, n, m, c, fn)
    cost_range = float((c.amax() - c.amin()).item()) if c.numel() else 0.0
    q, start = _schedule(eps, eps_scaling, init, cost_range, fn)
    with torch.cuda.device(c.device):
        out = _core._cuda_sinkhorn_dense(
            _ptr(c), n, m, _ptr(a), _ptr(b), _ptr(f), _ptr(g), eps=eps, tol=tol,
            max_iter=max_iter, eps_scaling=q, eps_start=start, value=True, stream=_stream(c),
            dtype=_dtype(c))
    return Solved(a, b, f, g, eps, *out)


def result(fn: str, solved: Solved, objective, value, plan, dtype) -> SinkhornResult:
    """The SinkhornResult of a GPU solve, checked as :func:`pyot.sinkhorn` checks its own."""
    solved.check(fn)
    return SinkhornResult(
        value=value, objective=objective, plan=plan, f=solved.f.to(dtype), g=solved.g.to(dtype),
        n_iter=int(solved.n_iter), marginal_error=solved.marginal_error,
        converged=solved.converged, eps=solved.eps,
    )


def transport_gradient(x: torch.Tensor, y: torch.Tensor, metric: str, p: float,
                       a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
                       eps: float) -> torch.Tensor:
    """``sum_j P_ij grad_x c(x_i, y_j)`` (n, d) float64 on the device, P from the potentials."""
    xs, ys = points(x), points(y)
    grad = torch.empty(xs.shape, dtype=torch.float64, device=xs.device)
    with torch.cuda.device(xs.device):
        _core._cuda_transport_rows(
            _ptr(xs), _ptr(ys), xs.shape[0], ys.shape[0], xs.shape[1], METRICS[metric], p,
            _ptr(a), _ptr(b), _ptr(f.contiguous()), _ptr(g.contiguous()), eps, 0, _ptr(grad),
            stream=_stream(xs), dtype=_dtype(xs))
    return grad


def sliced(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None,
           mass: float, directions: np.ndarray, p: float, *, gradient: bool):
    """``(projected, grad_x, grad_y)``: W_p^p per direction and the gradients of their mean
    (float64 device tensors; the gradients None when not asked for)."""
    xs, ys = points(x), points(y)
    dev = xs.device
    dirs = torch.from_numpy(np.ascontiguousarray(directions, dtype=np.float64)).to(dev)
    projected = torch.empty(len(dirs), dtype=torch.float64, device=dev)
    gx = torch.empty(xs.shape, dtype=torch.float64, device=dev) if gradient else None
    gy = torch.empty(ys.shape, dtype=torch.float64, device=dev) if gradient else None
    wa = None if a is None else a.to(device=dev, dtype=torch.float64).contiguous()
    wb = None if b is None else b.to(device=dev, dtype=torch.float64).contiguous()
    with torch.cuda.device(dev):
        _core._cuda_sliced_projected(
            _ptr(xs), _ptr(ys), xs.shape[0], ys.shape[0], xs.shape[1], _ptr(wa), _ptr(wb), mass,
            _ptr(dirs), len(dirs), p, _ptr(projected), _ptr(gx), _ptr(gy), stream=_stream(xs),
            dtype=_dtype(xs))
    return projected, gx, gy


def sinkhorn_batched(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                     metric: str, p: float, *, eps: float, tol: float, max_iter: int) -> dict:
    """Many small balanced problems at once: x (B, n, d), y (B, m, d), a (B, n), b (B, m)
    float64 on the device. Returns the device tensors f, g, value, err, objective, n_iter,
    status (one thread block per problem, on the current stream)."""
    xs, ys = points(x), points(y)
    batches, n, d = xs.shape
    m = ys.shape[1]
    dev = xs.device
    kw = dict(dtype=torch.float64, device=dev)
    out = dict(f=torch.zeros(batches, n, **kw), g=torch.zeros(batches, m, **kw),
               value=torch.empty(batches, **kw), err=torch.empty(batches, **kw),
               objective=torch.empty(batches, **kw),
               n_iter=torch.empty(batches, dtype=torch.int64, device=dev),
               status=torch.empty(batches, dtype=torch.int32, device=dev))
    wa, wb = a.to(**kw).contiguous(), b.to(**kw).contiguous()
    with torch.cuda.device(dev):
        _core._cuda_sinkhorn_batched(
            _ptr(xs), _ptr(ys), batches, n, m, d, METRICS[metric], p, _ptr(wa), _ptr(wb),
            eps, tol, max_iter, _ptr(out["f"]), _ptr(out["g"]), _ptr(out["value"]),
            _ptr(out["err"]), _ptr(out["objective"]), _ptr(out["n_iter"]), _ptr(out["status"]),
            stream=_stream(xs), dtype=_dtype(xs))
    return out
