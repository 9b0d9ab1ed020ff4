"""The CUDA path of the numpy-level solvers (``device="cuda"``).

The validated inputs are copied to the GPU once, the whole solve runs there (the kernels of
``cuda/``, bound as private ``pyot._core._cuda_*`` functions taking device pointers), and the
outputs are copied back once. :mod:`pyot.torch` calls the same kernels on CUDA tensors in place,
on the tensor's current stream.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validate as V
from ._problem import Problem
from .costs import METRICS

DEVICES = ("cpu", "cuda")
# Stream argument of the kernels for numpy callers: the legacy default stream.
_DEFAULT_STREAM = 0


def device(value: object, fn: str) -> str:
    """``None`` or ``"cpu"`` -> ``"cpu"``; ``"cuda"`` once a usable GPU is known to be there."""
    if value is None:
        return "cpu"
    name = V.choice(value, "device", fn, DEVICES)
    if name == "cuda":
        require(fn)
    return name


def require(fn: str) -> None:
    """Raises :class:`pyot.CudaError` unless this build has CUDA kernels and a GPU is usable."""
    if not _core.cuda_built():
        raise _core.CudaError(
            f"{fn}: device='cuda' needs a build of pyot with its CUDA kernels (this one has "
            "none; build with -DPYOT_CUDA=ON, see pyot.show_config())"
        )
    if _core.cuda_device_count() == 0:
        raise _core.CudaError(
            f"{fn}: device='cuda' needs a usable CUDA device, and none was found (no GPU or "
            "no driver; pyot.cuda_available() is False)"
        )


class _Buffers:
    """Device copies of numpy arrays, freed together with this object."""

    def __init__(self) -> None:
        self._held: list[object] = []

    def upload(self, array: np.ndarray | None) -> int:
        """Device pointer of a copy of ``array`` (0 for None)."""
        if array is None:
            return 0
        arr = np.ascontiguousarray(array)
        buf = _core._CudaBuffer(max(arr.nbytes, 1))
        if arr.nbytes:
            buf.upload(arr)
        self._held.append(buf)
        return buf.ptr

    def empty(self, nbytes: int) -> tuple[int, object]:
        buf = _core._CudaBuffer(max(int(nbytes), 1))
        self._held.append(buf)
        return buf.ptr, buf


def _download(buf: object, out: np.ndarray) -> None:
    if out.nbytes:
        buf.download(out)


def sinkhorn(problem: Problem, f: np.ndarray, g: np.ndarray, *, eps: float, tol: float,
             max_iter: int, eps_scaling: float, eps_start: float, value: bool = True) -> tuple:
    """One balanced problem (point cloud or dense ``(1, n, m)`` cost) solved on the GPU; ``f``
    and ``g`` (float64 ``(1, n)`` / ``(1, m)``) are the warm start and receive the potentials.
    Returns ``(status, n_iter, err, value, objective)`` as length-1 arrays, the CPU core's form."""
    held = _Buffers()
    n, m = f.shape[1], g.shape[1]
    pa, pb = held.upload(problem.a[0]), held.upload(problem.b[0])
    pf, buf_f = held.empty(8 * n)
    pg, buf_g = held.empty(8 * m)
    buf_f.upload(np.ascontiguousarray(f[0]))
    buf_g.upload(np.ascontiguousarray(g[0]))
    options = dict(eps=eps, tol=tol, max_iter=max_iter, eps_scaling=eps_scaling,
                   eps_start=eps_start, value=value, stream=_DEFAULT_STREAM,
                   dtype=np.dtype(problem.dtype).name)
    if problem.online:
        geom = problem.cost
        px, py = held.upload(geom.x), held.upload(geom.y)
        out = _core._cuda_sinkhorn_online(px, py, n, m, geom.x.shape[1], METRICS[geom.metric],
                                          geom.p, pa, pb, pf, pg, **options)
    else:
        pc = held.upload(problem.cost[0])
        out = _core._cuda_sinkhorn_dense(pc, n, m, pa, pb, pf, pg, **options)
    row_f, row_g = np.empty(n), np.empty(m)
    _download(buf_f, row_f)
    _download(buf_g, row_g)
    f[0], g[0] = row_f, row_g
    status, n_iter, err, val, objective = out
    return (np.array([status]), np.array([n_iter]), np.array([err]), np.array([val]),
            np.array([objective]))


def sliced_projected(x: np.ndarray, y: np.ndarray, a: np.ndarray | None, b: np.ndarray | None,
                     mass: float, directions: np.ndarray, p: float) -> np.ndarray:
    """``W_p^p`` per unit row of ``directions`` (float64), computed on the GPU."""
    held = _Buffers()
    dirs = np.ascontiguousarray(directions, dtype=np.float64)
    n_dirs = dirs.shape[0]
    ptr_out, buf_out = held.empty(8 * n_dirs)
    _core._cuda_sliced_projected(
        held.upload(x), held.upload(y), x.shape[0], y.shape[0], x.shape[1], held.upload(a),
        held.upload(b), mass, held.upload(dirs), n_dirs, p, ptr_out, 0, 0,
        stream=_DEFAULT_STREAM, dtype=np.dtype(x.dtype).name,
    )
    out = np.empty(n_dirs)
    _download(buf_out, out)
    return out
