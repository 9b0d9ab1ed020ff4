"""Input validation shared by every solver: one place, one message format.

Messages say which function, which argument, what was expected and what was received, e.g.
``pyot.sinkhorn: eps must be a positive finite number, got -1.0``. ``TypeError`` for wrong
types, ``ValueError`` for wrong values, shapes and masses. Validated arrays are C-contiguous
float32 or float64 (other real dtypes become float64); inputs are never modified.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

MASS_RTOL = 1e-6


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 when every array is float32, else float64."""
    if all(arr.dtype == np.float32 for arr in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_array(
    value: object,
    name: str,
    fn: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtype: np.dtype | type | None = None,
    finite: bool = True,
) -> np.ndarray:
    """A C-contiguous float32/float64 array, checked for type, dimension, size and NaN/inf."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{fn}: {name} must be a numeric array, got a string {_describe(value)}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fn}: {name} must be a numeric array ({exc})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{fn}: {name} must be real, got a complex array ({arr.dtype})")
    if kind not in "fiub":
        raise TypeError(f"{fn}: {name} must be a numeric array, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            expected = " or ".join(f"{d}-d" for d in allowed)
            raise ValueError(
                f"{fn}: {name} must be a {expected} array, got shape {arr.shape} ({arr.ndim}-d)"
            )
    if arr.size == 0:
        raise ValueError(f"{fn}: {name} must not be empty, got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{fn}: {name} contains NaN or inf; remove or replace them")
    return arr


def weights(
    value: object, size: int, name: str, fn: str, *, batch: int | None = None
) -> np.ndarray:
    """Validated float64 weights of length ``size`` (``(batch, size)`` for batched problems).

    ``None`` is uniform with total mass 1. Weights must be finite, non-negative and have a
    positive sum.
    """
    shape = (size,) if batch is None else (batch, size)
    if value is None:
        return np.full(shape, 1.0 / size)
    arr = as_array(value, name, fn, ndim=(1, 2) if batch is not None else 1, dtype=np.float64)
    if arr.shape != shape and arr.shape != (size,):
        expected = f"{shape} or {(size,)}" if batch is not None else f"{shape}"
        raise ValueError(
            f"{fn}: {name} must have shape {expected} to match the cost, got {arr.shape}"
        )
    arr = np.broadcast_to(arr, shape)
    if (arr < 0).any():
        raise ValueError(f"{fn}: {name} must be non-negative, got a minimum of {arr.min()}")
    if (arr.sum(axis=-1) <= 0).any():
        raise ValueError(f"{fn}: {name} must have a positive sum")
    return np.ascontiguousarray(arr)


def same_mass(a: np.ndarray, b: np.ndarray, fn: str) -> None:
    """Balanced solvers need sum(a) == sum(b) to a relative 1e-6 (per problem of a batch)."""
    sa, sb = np.atleast_1d(a.sum(axis=-1)), np.atleast_1d(b.sum(axis=-1))
    bad = np.abs(sa - sb) > MASS_RTOL * np.maximum(sa, sb)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"{fn}: a and b must have the same total mass "
            f"(a sums to {sa[k]:.10g}, b sums to {sb[k]:.10g}); rescale one of them, or use "
            "unbalanced_sinkhorn or partial_ot for unequal masses"
        )


def real_number(value: object, name: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {_describe(value)}")
    return float(value)


def positive(value: object, name: str, fn: str, *, allow_inf: bool = False) -> float:
    """A positive finite float (or +inf when ``allow_inf``)."""
    x = real_number(value, name, fn)
    ok = x > 0 and (math.isfinite(x) or (allow_inf and x == math.inf))
    if not ok:
        kind = "a positive number or inf" if allow_inf else "a positive finite number"
        raise ValueError(f"{fn}: {name} must be {kind}, got {_describe(value)}")
    return x


def line_exponent(value: object, fn: str) -> float:
    """The exponent p of the cost |x - y|^p on the line: finite and >= 1 (below 1 the cost is
    not convex and the sorted coupling is not optimal)."""
    p = real_number(value, "p", fn)
    if not (p >= 1 and math.isfinite(p)):
        raise ValueError(
            f"{fn}: p must be a finite number >= 1 (|t|^p is not convex below 1, so the sorted "
            f"matching is not optimal), got {value!r}"
        )
    return p


def non_negative(value: object, name: str, fn: str) -> float:
    x = real_number(value, name, fn)
    if not (x >= 0 and math.isfinite(x)):
        raise ValueError(
            f"{fn}: {name} must be a non-negative finite number, got {_describe(value)}"
        )
    return x


def integer(value: object, name: str, fn: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def threads(value: object, fn: str) -> int:
    """``None`` (all cores, returned as 0) or a positive thread count."""
    if value is None:
        return 0
    return integer(value, "threads", fn, minimum=1)


def choice(value: object, name: str, fn: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{fn}: {name} must be one of {listed}, got {_describe(value)}")
    return value


def generator(value: object, fn: str) -> np.random.Generator:
    """``seed=``: ``None`` (fresh entropy), a non-negative int, or a ``numpy.random.Generator``
    (used as is, so its state advances)."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{fn}: seed must be None, an int or a numpy.random.Generator, got {_describe(value)}"
        )
    if value < 0:
        raise ValueError(f"{fn}: seed must be a non-negative int, got {value}")
    return np.random.default_rng(int(value))


def flag(value: object, name: str, fn: str) -> bool:
    """A boolean option: ``True``/``False`` (numpy booleans too), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: object) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool, total: int, fn: str, *, unit: str = "it") -> Any:
    """A tqdm bar over ``total`` steps when ``progress`` is true (tqdm is an optional
    dependency), else an object with the same ``update``/``set_postfix``/``close`` that does
    nothing."""
    if not progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        raise ImportError(
            f"{fn}: progress=True needs tqdm, which is not installed (pip install tqdm)"
        ) from None
    return tqdm(total=total, desc=fn, unit=unit)
