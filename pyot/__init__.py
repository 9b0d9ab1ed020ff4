"""pyot: optimal transport with a compiled C++17 core.

Solvers take a cost (a dense matrix or a lazy :class:`PointCloud`) and weights and return
result objects (:class:`OTResult`, :class:`SinkhornResult`). See ``python -m pyot demo``.
"""

# The solvers are imported after _load_core() below, which must run first.
# ruff: noqa: E402

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version


def _load_core() -> None:
    """Import the compiled core with its OpenMP threads set to sleep, not spin, when idle.

    OpenMP's default lets idle threads spin for up to ~0.3 s between parallel regions. When
    another process holds a core, a solver's threads then burn their time slices waiting for
    each other: a 1000 x 1000 Sinkhorn ran 12x slower on 2 threads than on 1 (measured on a
    2-core machine under load); with passive waiting it ran as fast as 1 thread. The policy is
    read when the runtime starts, so it is set only around the core's first import (which
    starts the runtime) and then removed again: OpenMP runtimes loaded later (torch's) keep
    their own defaults, and a user's ``OMP_WAIT_POLICY`` is always respected.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        from . import _core
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from . import _core

        _core.max_threads()  # runtimes that start lazily (LLVM's libomp) start here
    finally:
        del os.environ["OMP_WAIT_POLICY"]


_load_core()

# pyot.inverse and pyot.maps as attributes; their names stay out of __all__
from . import inverse as inverse
from . import maps as maps
from ._config import CudaError, config, cuda_available, show_config
from ._result import (
    ConvergenceWarning,
    MinibatchResult,
    OTResult,
    SinkhornResult,
    SlicedResult,
    SparseResult,
)
from .costs import PointCloud, cost_matrix
from .exact import emd, wasserstein_1d
from .minibatch import minibatch_ot
from .partial import partial_ot, partial_wasserstein_1d
from .sinkhorn import sinkhorn, sinkhorn_divergence, unbalanced_sinkhorn
from .sliced import max_sliced_wasserstein, sliced_wasserstein
from .sparse import quadratic_ot, sparse_ot

try:
    __version__ = version("pyot-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    from ._core import __version__

__all__ = [
    "ConvergenceWarning",
    "CudaError",
    "MinibatchResult",
    "OTResult",
    "PointCloud",
    "SinkhornResult",
    "SlicedResult",
    "SparseResult",
    "__version__",
    "config",
    "cost_matrix",
    "cuda_available",
    "emd",
    "max_sliced_wasserstein",
    "minibatch_ot",
    "partial_ot",
    "partial_wasserstein_1d",
    "quadratic_ot",
    "show_config",
    "sinkhorn",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "sparse_ot",
    "unbalanced_sinkhorn",
    "wasserstein_1d",
]
