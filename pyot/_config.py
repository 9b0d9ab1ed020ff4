"""Build and machine facts: ``show_config()``, ``cuda_available()`` and ``CudaError``."""

from __future__ import annotations

import platform

import numpy as np

from . import _core

#: A failed CUDA call (a ``RuntimeError``): raised by the GPU paths (``device="cuda"``, CUDA
#: tensors in :mod:`pyot.torch`) with the CUDA error's name and text, and when such a path is
#: asked for without a CUDA build or a usable GPU. Defined on every build, so it can be caught.
CudaError = _core.CudaError


def cuda_available() -> bool:
    """True only when pyot was built with CUDA and a usable GPU is present.

    Examples
    --------
    >>> import pyot
    >>> isinstance(pyot.cuda_available(), bool)
    True
    """
    return bool(_core.cuda_available())


def config() -> dict:
    """The build facts as a dict (what :func:`show_config` prints).

    Examples
    --------
    >>> import pyot
    >>> facts = pyot.config()
    >>> {"version", "simd", "openmp", "cuda_built"} <= set(facts)
    True
    """
    info = dict(_core.build_info())
    info["cuda_built"] = bool(_core.cuda_built())
    info["cuda_devices"] = int(_core.cuda_device_count())
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    info["machine"] = platform.machine()
    return info


def show_config() -> None:
    """Print how pyot was built and what it found on this machine.

    Examples
    --------
    >>> import pyot
    >>> pyot.show_config()  # doctest: +ELLIPSIS
    pyot ...
    """
    info = config()
    print(f"pyot {info['version']}")
    for key in ("compiler", "cxx_standard", "openmp", "max_threads", "simd", "multiversioning",
                "cuda_built", "cuda_devices", "python", "numpy", "machine"):
        print(f"  {key:<16} {info[key]}")
