"""Result objects: frozen dataclasses, one family, always the same return type.

A plan that is expensive to form (point clouds, big dense problems) is stored as a recipe and
computed on first access of ``.plan``, then cached.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class ConvergenceWarning(UserWarning):
    """A solver stopped (``max_iter``) before reaching its tolerance: ``converged=False``."""


def warn_not_converged(fn: str, result: Any, hint: str = "") -> None:
    """Warns when any problem of a (batched) result did not converge."""
    converged = np.asarray(result.converged)
    if converged.all():
        return
    err = np.max(np.asarray(result.marginal_error))
    count = "" if converged.ndim == 0 else f" ({int((~converged).sum())} of {converged.size})"
    warnings.warn(
        f"{fn} did not converge{count}: marginal error {err:.3g} after "
        f"{np.max(np.asarray(result.n_iter))} iterations. {hint}".rstrip(),
        ConvergenceWarning,
        stacklevel=3,
    )


class Lazy:
    """A field value computed on first access."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


class _LazyField:
    """Data descriptor for a dataclass field that may hold a :class:`Lazy` recipe."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_lazy_{name}"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        value = obj.__dict__.get(self.slot)
        if isinstance(value, Lazy):
            value = value.compute()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


def _short(value: Any) -> str:
    if isinstance(value, Lazy):
        return "<computed on access>"
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})" if value.size > 6 else repr(value)
    if hasattr(value, "shape") and hasattr(value, "nnz"):
        return f"sparse(shape={value.shape}, nnz={value.nnz})"
    return repr(value)


@dataclass(frozen=True, repr=False)
class OTResult:
    """Result of an optimal-transport solver.

    Attributes
    ----------
    value : float or ndarray
        The transport cost ``<P, C>`` (one per problem of a batch).
    plan : ndarray or scipy.sparse matrix
        The transport plan, computed on first access where forming it is costly.
    f, g : ndarray
        Dual potentials.
    n_iter : int or ndarray
        Iterations performed.
    marginal_error : float or ndarray
        ``||P 1 - a||_1 + ||P^T 1 - b||_1`` (relaxed solvers: the L1 optimality residual).
    converged : bool or ndarray
        Whether ``marginal_error <= tol`` was reached.
    """

    value: Any = None
    plan: Any = _LazyField()
    f: Any = None
    g: Any = None
    n_iter: Any = None
    marginal_error: Any = None
    converged: Any = None

    def __repr__(self) -> str:
        parts = []
        for name in self.__dataclass_fields__:
            raw = self.__dict__.get(f"_lazy_{name}") if name == "plan" else getattr(self, name)
            parts.append(f"{name}={_short(raw)}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class SinkhornResult(OTResult):
    """Result of an entropic solver: adds the regularized ``objective`` and ``eps``.

    For balanced problems ``objective`` is ``<P, C> + eps KL(P | a b^T)`` (the dual value at
    the returned potentials); the plan is ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``.
    """

    objective: Any = None
    eps: Any = None


@dataclass(frozen=True, repr=False)
class SparseResult(OTResult):
    """Result of a quadratically regularized solver (``sparse_ot``, ``quadratic_ot``): adds the
    regularized ``objective`` ``<P, C> + (reg / 2) ||P||^2`` and ``reg``.

    ``plan`` is a ``scipy.sparse.csc_array``; on its support ``P_ij = (f_i + g_j - C_ij) / reg``.
    """

    objective: Any = None
    reg: Any = None


@dataclass(frozen=True, repr=False)
class SlicedResult:
    """Result of :func:`pyot.sliced_wasserstein` and :func:`pyot.max_sliced_wasserstein`.

    Attributes
    ----------
    value : float
        The (max-)sliced distance, already raised to ``1/p``:
        ``(mean_l projected[l]) ** (1/p)`` (max-sliced: ``projected[0] ** (1/p)``).
    directions : ndarray, shape (L, d)
        The unit directions used (max-sliced: the one found, ``L = 1``).
    projected : ndarray, shape (L,)
        ``W_p^p`` between the projections of the two measures on each direction.
    """

    value: Any = None
    directions: Any = None
    projected: Any = None

    def __repr__(self) -> str:
        parts = (f"{name}={_short(getattr(self, name))}" for name in self.__dataclass_fields__)
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class MinibatchResult:
    """Result of :func:`pyot.minibatch_ot`.

    Attributes
    ----------
    value : float
        The estimator: m-OT, the mean of ``batch_values``; BoMb-OT, ``<outer_plan,
        batch_values>``.
    plan : scipy.sparse.csr_array of shape (n, m), or None
        The estimate of the full plan (the batch plans lifted to the full index sets and
        combined with the estimator's weights); ``None`` unless ``return_plan=True``.
    n_batches : int
        Number of mini-batches k (per side).
    batch_size : int
        Points per mini-batch.
    batch_values : ndarray
        The inner values: shape (k,) for m-OT (batch l of x against batch l of y), (k, k) for
        BoMb-OT (every batch of x against every batch of y).
    outer_plan : scipy.sparse.csr_array of shape (k, k), or None
        BoMb-OT only: the optimal coupling of the batches (uniform weights ``1 / k``) for the
        cost ``batch_values``.
    """

    value: Any = None
    plan: Any = None
    n_batches: Any = None
    batch_size: Any = None
    batch_values: Any = None
    outer_plan: Any = None

    def __repr__(self) -> str:
        parts = (f"{name}={_short(getattr(self, name))}" for name in self.__dataclass_fields__)
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class InverseOTResult:
    """Result of :func:`pyot.inverse.fit_cost`.

    Attributes
    ----------
    weights : ndarray
        The learned cost parameters A: shape ``(d_x, d_y)`` for ``features="bilinear"``
        (``c(x, y) = -x^T A y``), ``(d,)`` for ``"diagonal"``, ``(K,)`` for a callable.
    cost : callable
        ``cost(x, y) -> (n, m)`` matrix of the learned cost ``-sum_k A_k phi_k(x, y)``.
    loss_history : ndarray
        The iOT loss ``L(A) + reg_l1 ||A||_1`` at the start and after each iteration
        (non-increasing).
    converged : bool
        Whether the proximal step fell below ``tol`` before ``max_iter``.
    n_iter : int
        FISTA iterations performed.
    eps : float
        The entropic regularization of the model.
    reg_l1 : float
        The l1 penalty.
    features : str or callable
        ``"bilinear"``, ``"diagonal"`` or the feature callable.
    support : ndarray of bool
        ``weights != 0``: the interactions selected by the l1 penalty.
    """

    weights: Any = None
    cost: Any = None
    loss_history: Any = None
    converged: Any = None
    n_iter: Any = None
    eps: Any = None
    reg_l1: Any = None
    features: Any = None
    support: Any = None

    def __repr__(self) -> str:
        parts = (f"{name}={_short(getattr(self, name))}" for name in self.__dataclass_fields__)
        return f"{type(self).__name__}({', '.join(parts)})"
