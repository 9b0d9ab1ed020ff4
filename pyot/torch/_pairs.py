"""Mini-batch OT pairing for conditional flow matching: :func:`ot_pairs`.

The squared-Euclidean cost of each mini-batch is formed with torch (one matrix product, on the
tensors' device), the OT problems of all mini-batches are solved in one call to the compiled
network simplex (``pyot._core.emd``, one problem per thread) or by :func:`pyot.sinkhorn`, and
the points are re-paired by the plan.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .. import _core
from .. import _validate as V
from .._result import ConvergenceWarning
from ..sinkhorn import sinkhorn

__all__ = ["ot_pairs"]

_SOLVERS = ("emd", "sinkhorn")
_STATUS_CONVERGED = 0
_MAX_PIVOTS = 1_000_000


def _points(x: object, name: str, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() and not x.is_complex()):
        raise TypeError(f"{fn}: {name} must be a real floating-point tensor, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"{fn}: {name} must have shape (n, d), (B, n, d) or (n, *features), got "
            f"{tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{fn}: {name} must not be empty, got shape {tuple(x.shape)}")
    return x  # NaN and inf are caught on the (smaller) cost matrix


def _flat(x0: torch.Tensor, x1: torch.Tensor, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides as (B, n, d) (a single batch gets B = 1; trailing feature dims flattened)."""
    if x0.ndim != x1.ndim:
        raise ValueError(
            f"{fn}: x0 and x1 must have the same number of dimensions, got shapes "
            f"{tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    if x0.ndim == 3:
        if x0.shape[0] != x1.shape[0] or x0.shape[2] != x1.shape[2]:
            raise ValueError(
                f"{fn}: batched x0 and x1 must have shapes (B, n0, d) and (B, n1, d) with the "
                f"same B and d, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        return x0, x1
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"{fn}: x0 and x1 must have the same feature shape, got {tuple(x0.shape)} and "
            f"{tuple(x1.shape)}"
        )
    return x0.reshape(1, x0.shape[0], -1), x1.reshape(1, x1.shape[0], -1)


def _sqeuclidean(x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
    """(B, n0, n1) squared distances as a contiguous numpy array (float32 or float64).

    The matrix-product form ``|x|^2 + |y|^2 - 2 <x, y>`` has an absolute round-off of about
    ``u (|x_i - c|^2 + |y_j - c|^2 + 2 |c|^2)`` for any common vector ``c``; it is formed on
    clouds centred by their common mean (ALGORITHMS 1) whenever that mean is large against the
    clouds' spread, which removes the cancellation for clouds far from the origin. When the
    mean's squared norm is below the mean squared distance to it (data already about centred,
    e.g. noise against images), centring would change the error by a small factor only, and the
    copies are skipped.
    """
    dtype = x0.dtype if x0.dtype in (torch.float32, torch.float64) else torch.float32
    with torch.no_grad():
        u, v = x0.detach().to(dtype), x1.detach().to(dtype)
        count = u.shape[1] + v.shape[1]
        # The common mean without concatenating the clouds (one read of each, no copy).
        center = (u.sum(dim=1, keepdim=True) + v.sum(dim=1, keepdim=True)) / count
        nu, nv = torch.einsum("bnd,bnd->bn", u, u), torch.einsum("bmd,bmd->bm", v, v)
        c2 = torch.einsum("bkd,bkd->b", center, center)
        spread = (nu.sum(1) + nv.sum(1)) / count - c2  # mean |x - c|^2 per problem
        if bool((c2 > spread).any()):
            u, v = u - center, v - center
            nu, nv = torch.einsum("bnd,bnd->bn", u, u), torch.einsum("bmd,bmd->bm", v, v)
        cost = nu[:, :, None] + nv[:, None, :]
        cost = cost.baddbmm_(u, v.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)
    return np.ascontiguousarray(cost.cpu().numpy())


def _emd_plans(cost: np.ndarray, fn: str) -> tuple[np.ndarray, ...]:
    """The exact plans of the batch's problems (uniform weights) by their support."""
    batch, n, m = cost.shape
    a, b = np.full((batch, n), 1.0 / n), np.full((batch, m), 1.0 / m)
    status, n_iter, _, _, _, k, rows, cols, mass = _core.emd(
        cost, a, b, max_iter=_MAX_PIVOTS, threads=0
    )
    if (status != _STATUS_CONVERGED).any():
        warnings.warn(
            f"{fn}: the network simplex stopped after {int(n_iter.max())} pivots before "
            "optimality; the pairs come from a feasible but not optimal plan",
            ConvergenceWarning,
            stacklevel=3,
        )
    return k, rows, cols, mass


def ot_pairs(
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    solver: str = "emd",
    eps: float | None = None,
    seed: int | np.random.Generator | None = None,
    return_index: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Re-pair a mini-batch by its optimal-transport plan (the OT-CFM coupling).

    The cost is the squared Euclidean distance between the (flattened) points, the weights are
    uniform. For equal batch sizes and ``solver="emd"`` the optimal plan is a permutation
    ``sigma`` (found exactly by the network simplex), and the pairs are
    ``(x0[i], x1[sigma[i]])``: a minimum-cost matching. Otherwise (sizes differ, or
    ``solver="sinkhorn"``) ``n0`` pairs ``(i, j)`` are drawn i.i.d. from the plan.

    Parameters
    ----------
    x0, x1 : torch.Tensor
        Source and target mini-batches: shape ``(n0, d)`` / ``(n1, d)``, or
        ``(n0, *features)`` / ``(n1, *features)`` with at least two feature dimensions (e.g.
        images ``(n, C, H, W)``, flattened for the cost), or ``(B, n0, d)`` / ``(B, n1, d)``
        for B independent mini-batches solved in one call (a 3-d tensor is always read as a
        batch of mini-batches). Any device; the cost is formed there, the plan on the CPU.
    solver : {"emd", "sinkhorn"}
        Exact OT, or entropic OT with ``eps`` (then pairs are sampled from the entropic plan).
    eps : float, optional
        Entropic regularization for ``solver="sinkhorn"`` (absolute, in the unit of the cost:
        squared distances).
    seed : int, numpy.random.Generator or None
        Seed of the sampled pairs (unused for permutations).
    return_index : bool, default False
        Also return the index tensors ``(i, j)`` of the pairs.

    Returns
    -------
    x0_paired, x1_paired : torch.Tensor
        Equal leading sizes; ``x0_paired[k]`` is paired with ``x1_paired[k]`` (per mini-batch
        for ``(B, n, d)`` input). For a permutation ``x0_paired`` is ``x0`` itself (same order,
        no copy) and ``x1_paired = x1[sigma]``; for sampled pairs both are indexed copies
        ``x0[i], x1[j]`` with ``n0`` pairs. Gradients flow through the indexing to ``x0`` and
        ``x1`` (the pairing itself is piecewise constant).
    i, j : torch.Tensor of int64, shape (n0,) or (B, n0)
        Only with ``return_index=True``: the indices of the pairs, on the inputs' device.

    Raises
    ------
    TypeError
        Inputs that are not real floating-point tensors.
    ValueError
        Mismatched shapes, NaN or inf, an unknown solver, a missing or unused ``eps``.

    References
    ----------
    Tong et al. (2024), Improving and generalizing flow-based generative models with
    minibatch optimal transport. Pooladian et al. (2023), Multisample flow matching.

    Examples
    --------
    >>> import torch
    >>> from pyot.torch import ot_pairs
    >>> x0 = torch.tensor([[0.0], [10.0], [5.0]])
    >>> x1 = torch.tensor([[9.0], [4.0], [1.0]])
    >>> a, b = ot_pairs(x0, x1)
    >>> b.ravel().tolist()
    [1.0, 9.0, 4.0]
    >>> _, _, i, j = ot_pairs(torch.randn(4, 8, 2), torch.randn(4, 8, 2), return_index=True)
    >>> j.shape
    torch.Size([4, 8])
    """
    fn = "pyot.torch.ot_pairs"
    x0, x1 = _points(x0, "x0", fn), _points(x1, "x1", fn)
    u, v = _flat(x0, x1, fn)
    batched = x0.ndim == 3
    solver = V.choice(solver, "solver", fn, _SOLVERS)
    if solver == "emd" and eps is not None:
        raise ValueError(f"{fn}: eps is not used by solver='emd', got eps={eps!r}")
    if solver == "sinkhorn":
        if eps is None:
            raise ValueError(f"{fn}: eps is required by solver='sinkhorn'")
        eps = V.positive(eps, "eps", fn)
    if not isinstance(return_index, bool):
        raise TypeError(f"{fn}: return_index must be True or False, got {return_index!r}")
    batch, n0, n1 = u.shape[0], u.shape[1], v.shape[1]
    cost = _sqeuclidean(u, v)
    if not np.isfinite(cost).all():
        raise ValueError(
            f"{fn}: x0 or x1 contains NaN or inf (or their squared distances overflow); remove "
            "or replace them"
        )
    permutation = solver == "emd" and n0 == n1
    if permutation:
        k, rows, cols, mass = _emd_plans(cost, fn)
        i = np.tile(np.arange(n0), (batch, 1))
        if len(rows) == batch * n0:
            # The assignment solver's plans: one cell per row, a permutation.
            j = np.empty((batch, n0), dtype=np.int64)
            j[k, rows] = cols
        else:
            # The network simplex's optimal vertex is a permutation too: each row's one entry
            # of mass 1/n (the largest by far: degenerate pivots leave at most round-off
            # beside it).
            dense = np.zeros((batch, n0, n1))
            dense[k, rows, cols] = mass
            j = dense.argmax(axis=2)
    else:
        rng = V.generator(seed, fn)
        if solver == "emd":
            k, rows, cols, mass = _emd_plans(cost, fn)
            plans = np.zeros((batch, n0, n1))
            plans[k, rows, cols] = mass
        else:
            plans = np.asarray(sinkhorn(cost, eps=eps).plan, dtype=np.float64)
        flat = plans.reshape(batch, -1)
        draws = np.stack([rng.choice(n0 * n1, size=n0, p=w / w.sum()) for w in flat])
        i, j = np.divmod(draws, n1)
    ti = torch.as_tensor(np.ascontiguousarray(i, dtype=np.int64), device=x0.device)
    tj = torch.as_tensor(np.ascontiguousarray(j, dtype=np.int64), device=x1.device)
    if batched:
        out0 = x0 if permutation else x0[torch.arange(batch, device=x0.device)[:, None], ti]
        out1 = x1[torch.arange(batch, device=x1.device)[:, None], tj]
    else:
        ti, tj = ti[0], tj[0]
        out0 = x0 if permutation else x0[ti]
        out1 = x1[tj]
    return (out0, out1, ti, tj) if return_index else (out0, out1)
