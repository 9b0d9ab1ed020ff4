"""pyot: optimal transport with a compiled C++17 core.

Solvers take a cost (a dense matrix or a lazy :class:`PointCloud`) and weights and return
result objects (:class:`OTResult`, :class:`SinkhornResult`). See ``python -m pyot demo``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import maps  # noqa: F401 - pyot.maps as an attribute; its names stay out of __all__
from ._config import config, cuda_available, show_config
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
