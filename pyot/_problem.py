"""The validated form of a transport problem, shared by every solver that takes a cost.

A solver receives ``(cost, a, b)`` with the cost a dense ``(n, m)`` or ``(B, n, m)`` array or a
:class:`PointCloud`; :func:`validated_problem` checks and converts them once, into a batched
``(B, n, m)`` cost (or the point cloud itself, for solvers that evaluate it online) and float64
``(B, n)`` / ``(B, m)`` weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from . import _validate as V
from .costs import PointCloud


@dataclass
class Problem:
    """A validated problem: a dense ``(B, n, m)`` cost, or a point cloud solved online."""

    cost: np.ndarray | PointCloud
    a: np.ndarray  # (B, n) float64
    b: np.ndarray  # (B, m) float64
    batched: bool
    dtype: np.dtype
    ranges: np.ndarray | None = None  # (B,) max C - min C of dense costs

    @property
    def online(self) -> bool:
        return isinstance(self.cost, PointCloud)


def validated_problem(
    cost: object, a: object, b: object, fn: str, *, balanced: bool, dense_limit: int | None = None
) -> Problem:
    """Checks and converts ``(cost, a, b)``.

    A point cloud is materialised when it has at most ``dense_limit`` entries (always when
    ``dense_limit`` is None); larger ones are kept for online evaluation. ``balanced`` requires
    equal masses (per problem of a batch).
    """
    if isinstance(cost, PointCloud):
        n, m = cost.shape
        wa, wb = V.weights(a, n, "a", fn, batch=1), V.weights(b, m, "b", fn, batch=1)
        geom: np.ndarray | PointCloud = cost
        if dense_limit is None or n * m <= dense_limit:
            geom = cost.dense()[None]
        problem = Problem(geom, wa, wb, False, cost.dtype)
    else:
        # Finiteness is checked by the same compiled pass that measures the cost's range.
        c = V.as_array(cost, "cost", fn, ndim=(2, 3), finite=False)
        batched = c.ndim == 3
        c3 = c if batched else c[None]
        batch, n, m = c3.shape
        wa = V.weights(a, n, "a", fn, batch=batch) if batched else V.weights(a, n, "a", fn)[None]
        wb = V.weights(b, m, "b", fn, batch=batch) if batched else V.weights(b, m, "b", fn)[None]
        problem = Problem(c3, wa, wb, batched, c.dtype)
    if not problem.online:
        lo, hi = _core.finite_ranges(problem.cost)
        if np.isnan(lo).any():
            raise ValueError(f"{fn}: cost contains NaN or inf; remove or replace them")
        problem.ranges = hi - lo
    if balanced:
        V.same_mass(problem.a, problem.b, fn)
    return problem
