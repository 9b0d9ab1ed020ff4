"""Shared pieces of the torch layer: tensor checks, zero-copy views for the core, point clouds.

The core is reached through numpy views of detached, contiguous CPU tensors
(``tensor.detach().numpy()`` shares the tensor's memory), so the solvers see the caller's data
without a copy; float32 stays float32. Checks that torch itself would report late or vaguely
(devices, dtypes, integer tensors) are made here, once, with messages that name the argument.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from ..costs import METRICS, _metric

_FLOATS = (torch.float32, torch.float64)
# Conjugate gradients of the implicit backward passes: relative residual and iteration cap.
CG_RTOL = 1e-10
CG_MAX_ITER = 10_000
# torch_cost forms the (n, m, d) differences up to this many entries, a Gram form above.
DIFF_LIMIT = 1 << 24


def tensor(value: object, name: str, fn: str, *, ndim: tuple[int, ...]) -> torch.Tensor:
    """A floating CPU tensor of an allowed dimension (the type and device checked)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}; wrap it with "
            "torch.as_tensor (or use the numpy-level pyot functions)"
        )
    if value.dtype not in _FLOATS:
        raise TypeError(
            f"{fn}: {name} must be a float32 or float64 tensor, got {value.dtype}; convert it "
            "with .double() or .float()"
        )
    if value.ndim not in ndim:
        expected = " or ".join(f"{d}-d" for d in ndim)
        raise ValueError(
            f"{fn}: {name} must be a {expected} tensor, got shape {tuple(value.shape)}"
        )
    return value


def weights(
    value: object, name: str, fn: str, like: torch.Tensor, *, ndim: tuple[int, ...]
) -> torch.Tensor | None:
    """None (uniform) or a weight tensor of the dtype and device of ``like``."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value), dtype=like.dtype)
    return tensor(value, name, fn, ndim=ndim)


def same_kind(fn: str, *, cuda: bool = False, **tensors: torch.Tensor | None) -> None:
    """One device and one dtype for all tensors. The device is the CPU, or a CUDA device
    where the function has a CUDA path (``cuda=True``) and this build can use it."""
    given = {k: t for k, t in tensors.items() if t is not None}
    names = list(given)
    first = given[names[0]]
    for name in names[1:]:
        t = given[name]
        if t.device != first.device:
            raise ValueError(
                f"{fn}: {names[0]} is on {first.device} but {name} is on {t.device}; put all "
                "tensors on one device"
            )
        if t.dtype != first.dtype:
            raise TypeError(
                f"{fn}: {names[0]} is {first.dtype} but {name} is {t.dtype}; convert them to "
                "one dtype"
            )
    if first.device.type == "cpu":
        return
    if first.device.type == "cuda" and cuda:
        if _core.cuda_available():
            return
        raise ValueError(
            f"{fn}: {names[0]} is on {first.device}, but this build of pyot has no CUDA "
            "kernels or no usable GPU (see pyot.show_config() and pyot.cuda_available()); "
            "move the tensors to the CPU with .cpu(). Nothing is copied between devices "
            "silently."
        )
    where = "the CPU and CUDA devices" if cuda else "the CPU"
    raise ValueError(
        f"{fn}: {names[0]} is on {first.device}, but pyot has no CUDA kernels for it here "
        f"(this function runs on {where}); move the tensors to the CPU with .cpu(). Nothing "
        "is copied between devices silently."
    )


def view(t: torch.Tensor | None) -> np.ndarray | None:
    """The tensor's data as a numpy array: shared memory when contiguous (no copy)."""
    if t is None:
        return None
    return t.detach().contiguous().numpy()


def batch_view(t: torch.Tensor) -> np.ndarray:
    """A cost tensor's view with a leading batch axis: (B, n, m)."""
    return view(t).reshape(-1, *t.shape[-2:])


def centred(g: np.ndarray) -> np.ndarray:
    """Potentials as gradients of balanced problems: defined up to a constant, mean removed
    (the convention of POT's ``emd2``)."""
    return g - g.mean(axis=-1, keepdims=True)


def as_grad(values: np.ndarray, like: torch.Tensor, scale: np.ndarray) -> torch.Tensor:
    """The gradient for ``like`` from per-problem ``values`` (leading batch axis B) times the
    incoming ``scale`` (B,); summed over the batch where ``like`` was shared by it."""
    scaled = values * scale.reshape((-1,) + (1,) * (values.ndim - 1))
    if like.ndim == values.ndim - 1:
        scaled = scaled.sum(axis=0)
    return torch.from_numpy(np.ascontiguousarray(scaled)).to(like.dtype).reshape(like.shape)


class PointCloud:
    """Two point clouds as a lazy cost, for :func:`pyot.torch.sinkhorn` and friends.

    The torch counterpart of :class:`pyot.PointCloud`: it keeps the tensors (with their
    autograd history), so solvers can differentiate with respect to the points; the
    ``(n, m)`` cost is never formed by the entropic solvers.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
    y : torch.Tensor, shape (m, d)
    metric : {"sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine"}
    p : float
        Minkowski exponent (>= 1).

    Examples
    --------
    >>> import torch, pyot.torch
    >>> geom = pyot.torch.PointCloud(torch.zeros(3, 2), torch.ones(4, 2))
    >>> geom.shape
    (3, 4)
    """

    def __init__(self, x: object, y: object, metric: str = "sqeuclidean", *, p: float = 2.0):
        fn = "pyot.torch.PointCloud"
        self.x = tensor(x, "x", fn, ndim=(2,))
        self.y = tensor(y, "y", fn, ndim=(2,))
        same_kind(fn, cuda=True, x=self.x, y=self.y)
        if self.x.shape[1] != self.y.shape[1]:
            raise ValueError(
                f"{fn}: x and y must have the same dimension, got shapes "
                f"{tuple(self.x.shape)} and {tuple(self.y.shape)}"
            )
        self.metric, self.p = _metric(metric, p, fn)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.x.shape[0], self.y.shape[0])

    @property
    def code(self) -> int:
        """The metric's code in the compiled core."""
        return METRICS[self.metric]

    def dense(self) -> torch.Tensor:
        """The ``(n, m)`` cost as a differentiable torch expression of the points."""
        return torch_cost(self.x, self.y, self.metric, self.p)

    def __repr__(self) -> str:
        n, m = self.shape
        return (f"PointCloud(n={n}, m={m}, d={self.x.shape[1]}, metric={self.metric!r}, "
                f"dtype={self.x.dtype})")


def _gram_cost(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """``||x||^2 + ||y||^2 - 2 <x, y>`` on clouds centred by their common mean (which removes
    the cancellation for clouds far from the origin, as :func:`pyot.cost_matrix` does): no
    (n, m, d) difference tensor."""
    center = torch.cat([x, y]).detach().mean(0)
    xc, yc = x - center, y - center
    sq = ((xc * xc).sum(-1)[:, None] + (yc * yc).sum(-1)[None, :] - 2.0 * xc @ yc.T)
    sq = sq.clamp_min(0.0)
    if metric == "sqeuclidean":
        return sq
    return torch.where(sq > 0, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), sq * 0.0)


def torch_cost(x: torch.Tensor, y: torch.Tensor, metric: str, p: float) -> torch.Tensor:
    """The cost matrix by torch operations (differentiable; coordinate sums, no cancellation)."""
    if metric == "cosine":
        xn = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        yn = y / y.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
        return (1.0 - xn @ yn.transpose(-1, -2)).clamp(0.0, 2.0)
    if metric in ("sqeuclidean", "euclidean") and x.shape[-2] * y.shape[-2] * x.shape[-1] > (
            DIFF_LIMIT):
        return _gram_cost(x, y, metric)
    diff = x[..., :, None, :] - y[..., None, :, :]
    if metric == "sqeuclidean":
        return (diff * diff).sum(-1)
    if metric == "cityblock":
        return diff.abs().sum(-1)
    q = 2.0 if metric == "euclidean" else p
    # |t|^q summed, then the q-th root; the root's derivative at 0 is taken as 0 (subgradient).
    s = diff.abs().pow(q).sum(-1)
    return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny).pow(1.0 / q), s * 0.0)



def batched_loss(fn: str, pair, x: torch.Tensor, y: torch.Tensor, a: object, b: object,
                 reduction: str) -> torch.Tensor:
    """``pair(x, y, a, b)`` for one pair of clouds, or over a batch ``(B, n, d)`` reduced by
    ``reduction`` (weights of shape ``(n,)`` are shared, ``(B, n)`` taken row by row)."""
    if x.ndim != y.ndim or (x.ndim == 3 and x.shape[0] != y.shape[0]):
        raise ValueError(
            f"{fn}: x and y must both be (n, d) or both (B, n, d) with the same B, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.ndim == 2:
        return pair(x, y, a, b)
    losses = torch.stack([pair(x[k], y[k], _row(a, k), _row(b, k)) for k in range(x.shape[0])])
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _row(w: object, k: int) -> object:
    """Problem k's weights: row k of a (B, n) tensor; a shared (n,) vector (or None) as is."""
    return w[k] if isinstance(w, torch.Tensor) and w.ndim == 2 else w


def cg(apply, rhs: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients for a PSD system (consistent, maybe singular:
    the iterates stay in the range, so the null direction is never excited)."""
    inv = np.divide(1.0, diag, out=np.zeros_like(diag), where=diag > 0)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = inv * r
    p = z.copy()
    rz = r @ z
    stop = CG_RTOL * np.linalg.norm(rhs)
    for _ in range(CG_MAX_ITER):
        if np.linalg.norm(r) <= stop or rz <= 0:
            break
        q = apply(p)
        pq = p @ q
        if pq <= 0:
            break
        alpha = rz / pq
        x += alpha * p
        r -= alpha * q
        z = inv * r
        rz, rz_old = r @ z, rz
        p = z + (rz / rz_old) * p
    return x
