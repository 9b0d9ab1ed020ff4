"""Differentiable sliced Wasserstein: sliced_wasserstein and SlicedWassersteinLoss.

Forward and backward in one core call (``sliced_gradient``): every slice is sorted once and its
monotone coupling gives both ``W_p^p`` and the slopes ``alpha_i = sum_j P_ij h'(u_i - v_j)``;
the gradient in the points is ``(1/L) sum_l alpha_il theta_l`` (the coupling is locally
constant), chained through the ``1/p`` root.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from .. import _validate as V
from .. import sliced as _sl
from .._result import SlicedResult
from . import _common as T
from . import _cuda as CU
from ._autograd import attach

__all__ = ["SlicedWassersteinLoss", "sliced_wasserstein"]


def _root_rule(gx: np.ndarray, gy: np.ndarray, mean: float, p: float, fn: str):
    """Gradient of ``mean ** (1/p)`` from the gradients of ``mean`` in x and y."""
    # d mean^(1/p) / d mean; at mean = 0 (equal projections) the subgradient 0 is taken.
    chain = (mean ** (1.0 / p - 1.0) / p) if mean > 0 else (1.0 if p == 1 else 0.0)

    def rule(grad, inputs, needs):
        x, y, a, b = inputs
        if (needs[2] and a is not None) or (needs[3] and b is not None):
            raise NotImplementedError(
                f"{fn}: gradients with respect to the weights are not supported; only x and y"
            )
        scale = grad.reshape(-1) * chain
        return (
            T.as_grad(gx[None], x, scale) if needs[0] else None,
            T.as_grad(gy[None], y, scale) if needs[1] else None,
            None,
            None,
        )

    return rule


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    n_projections: int = 100,
    p: float = 2.0,
    directions: str | object = "random",
    seed: int | np.random.Generator | None = None,
    threads: int | None = None,
) -> SlicedResult:
    """Differentiable sliced Wasserstein distance (:func:`pyot.sliced_wasserstein` on tensors).

    Returns a :class:`pyot.SlicedResult` whose ``value`` is a 0-d tensor differentiable in
    ``x`` and ``y`` (the weights get no gradient); ``directions`` and ``projected`` are
    tensors without gradient.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 3, generator=g, requires_grad=True)
    >>> res = pyot.torch.sliced_wasserstein(x, torch.randn(150, 3, generator=g) + 2, seed=0)
    >>> res.value.backward()
    >>> x.grad.shape
    torch.Size([200, 3])
    """
    fn = "pyot.torch.sliced_wasserstein"
    xt = T.tensor(x, "x", fn, ndim=(2,))
    yt = T.tensor(y, "y", fn, ndim=(2,))
    wa = T.weights(a, "a", fn, xt, ndim=(1,))
    wb = T.weights(b, "b", fn, xt, ndim=(1,))
    T.same_kind(fn, cuda=True, x=xt, y=yt, a=wa, b=wb)
    if xt.is_cuda:
        return _sliced_cuda(fn, xt, yt, wa, wb, n_projections=n_projections, p=p,
                            directions=directions, seed=seed, threads=threads)
    problem = _sl._problem(fn, T.view(xt), T.view(yt), T.view(wa), T.view(wb), p, threads)
    n_dirs = V.integer(n_projections, "n_projections", fn, minimum=1)
    dirs = _sl._directions(directions, n_dirs, problem.dim, V.generator(seed, fn), fn)
    dirs = np.ascontiguousarray(dirs, dtype=np.float64)
    projected, gx, gy = _core.sliced_gradient(
        problem.x, problem.y, problem.a, problem.b, dirs, mass=problem.mass, p=problem.p,
        threads=problem.threads,
    )
    mean = max(float(np.mean(projected)), 0.0)
    L = len(dirs)
    rule = _root_rule(gx / L, gy / L, mean, problem.p, fn)
    value = attach(rule, mean ** (1.0 / problem.p), xt, yt, wa, wb)
    return SlicedResult(
        value=value, directions=torch.from_numpy(dirs).to(xt.dtype),
        projected=torch.from_numpy(projected).to(xt.dtype),
    )


def _sliced_cuda(fn, xt, yt, wa, wb, *, n_projections, p, directions, seed, threads):
    """The CUDA path: projection, segmented sort and merge on the tensors' device; the
    directions are drawn on the host as on the CPU path (same seed, same directions)."""
    CU.require(fn)
    V.threads(threads, fn)
    if xt.ndim != 2 or yt.ndim != 2 or xt.shape[1] != yt.shape[1]:
        raise ValueError(f"{fn}: x and y must be (n, d) and (m, d) with the same d, got shapes "
                         f"{tuple(xt.shape)} and {tuple(yt.shape)}")
    exponent = V.line_exponent(p, fn)
    mass = 1.0
    a = b = None
    if wa is not None or wb is not None:
        a = CU.weights(wa, xt.shape[0], "a", fn, xt)
        b = CU.weights(wb, yt.shape[0], "b", fn, xt)
        CU.same_mass(a, b, fn)
        mass = float(a.sum())
        b = b * (mass / float(b.sum()))
    n_dirs = V.integer(n_projections, "n_projections", fn, minimum=1)
    dirs = _sl._directions(directions, n_dirs, xt.shape[1], V.generator(seed, fn), fn)
    dirs = np.ascontiguousarray(dirs, dtype=np.float64)
    need = torch.is_grad_enabled() and (xt.requires_grad or yt.requires_grad)
    projected, gx, gy = CU.sliced(xt, yt, a, b, mass, dirs, exponent, gradient=need)
    mean = max(float(projected.mean()), 0.0)
    chain = (mean ** (1.0 / exponent - 1.0) / exponent) if mean > 0 else (
        1.0 if exponent == 1 else 0.0)

    def rule(grad, inputs, needs):
        x, y, a_in, b_in = inputs
        if (needs[2] and a_in is not None) or (needs[3] and b_in is not None):
            raise NotImplementedError(
                f"{fn}: gradients with respect to the weights are not supported; only x and y"
            )
        scale = float(grad.reshape(-1)[0]) * chain
        return (
            (gx * scale).to(x.dtype) if needs[0] and gx is not None else None,
            (gy * scale).to(y.dtype) if needs[1] and gy is not None else None,
            None,
            None,
        )

    value = attach(rule, mean ** (1.0 / exponent), xt, yt, wa, wb)
    return SlicedResult(value=value, directions=torch.from_numpy(dirs).to(xt.device, xt.dtype),
                        projected=projected.to(xt.dtype))


class SlicedWassersteinLoss(torch.nn.Module):
    """Sliced Wasserstein loss between point clouds, for training loops.

    ``forward(x, y, a=None, b=None)`` returns ``SW_p`` (a 0-d tensor) for clouds of shape
    ``(n, d)``, or the reduced losses of a batch ``(B, n, d)``. New directions are drawn at
    every call from one generator seeded by ``seed``, so a run is reproducible while the
    estimate's noise averages out over training steps.

    Parameters
    ----------
    n_projections : int
        Directions per call.
    p : float
        Exponent of the ground cost ``|s - t|^p``, ``p >= 1``.
    seed : int or numpy.random.Generator, optional
        Seeds the generator of the directions.
    directions : {"random", "orthogonal", "qmc"}
        How directions are drawn (see :func:`pyot.sliced_wasserstein`).
    reduction : {"mean", "sum", "none"}
        Batch reduction.
    threads : int, optional
        Threads of the compiled core.

    Examples
    --------
    >>> import torch, pyot.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> loss = pyot.torch.SlicedWassersteinLoss(64, seed=0)
    >>> x = torch.randn(100, 2, generator=g, requires_grad=True)
    >>> out = loss(x, torch.randn(100, 2, generator=g))
    >>> out.backward()
    >>> x.grad.shape
    torch.Size([100, 2])
    """

    def __init__(
        self,
        n_projections: int = 100,
        *,
        p: float = 2.0,
        seed: int | np.random.Generator | None = None,
        directions: str = "random",
        reduction: str = "mean",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        fn = "pyot.torch.SlicedWassersteinLoss"
        self.n_projections = V.integer(n_projections, "n_projections", fn, minimum=1)
        self.p = V.line_exponent(p, fn)
        self.rng = V.generator(seed, fn)
        self.directions = V.choice(directions, "directions", fn, _sl._DIRECTION_KINDS)
        self.reduction = V.choice(reduction, "reduction", fn, ("mean", "sum", "none"))
        self.threads = threads

    def extra_repr(self) -> str:
        return f"n_projections={self.n_projections}, p={self.p}, directions={self.directions!r}"

    def _pair(self, x, y, a, b) -> torch.Tensor:
        return sliced_wasserstein(
            x, y, a, b, n_projections=self.n_projections, p=self.p,
            directions=self.directions, seed=self.rng, threads=self.threads,
        ).value

    def forward(self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                b: torch.Tensor | None = None) -> torch.Tensor:
        fn = "pyot.torch.SlicedWassersteinLoss"
        xt = T.tensor(x, "x", fn, ndim=(2, 3))
        yt = T.tensor(y, "y", fn, ndim=(2, 3))
        return T.batched_loss(fn, self._pair, xt, yt, a, b, self.reduction)
