"""pyot: optimal transport with a compiled C++17 core.

Solvers take a cost (a dense matrix or a lazy :class:`PointCloud`) and weights and return
result objects (:class:`OTResult`, :class:`SinkhornResult`). See ``python -m pyot demo``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._config import config, cuda_available, show_config
from ._result import ConvergenceWarning, OTResult, SinkhornResult, SlicedResult
from .costs import PointCloud, cost_matrix
from .sinkhorn import sinkhorn, sinkhorn_divergence, unbalanced_sinkhorn
from .sliced import max_sliced_wasserstein, sliced_wasserstein

try:
    __version__ = version("pyot-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    from ._core import __version__

__all__ = [
    "ConvergenceWarning",
    "OTResult",
    "PointCloud",
    "SinkhornResult",
    "SlicedResult",
    "__version__",
    "config",
    "cost_matrix",
    "cuda_available",
    "max_sliced_wasserstein",
    "show_config",
    "sinkhorn",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "unbalanced_sinkhorn",
]
