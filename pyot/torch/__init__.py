"""pyot.torch: differentiable optimal transport on torch tensors.

The same compiled solvers as :mod:`pyot`, reached without copies from CPU tensors, with
gradients by the envelope theorem (objectives) and implicit differentiation (Sinkhorn values
and plans); see ALGORITHMS.md section 10. Also :func:`ot_pairs`, the mini-batch pairing of OT
conditional flow matching. ``import pyot`` never imports torch; this module does.

Examples
--------
>>> import torch, pyot.torch
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.rand(50, 2, generator=g, requires_grad=True)
>>> loss = pyot.torch.SinkhornLoss(eps=0.05)(x, torch.rand(60, 2, generator=g))
>>> loss.backward()
>>> x.grad.shape
torch.Size([50, 2])
"""

from __future__ import annotations

from ._common import PointCloud
from ._exact import emd, partial_ot, sparse_ot
from ._pairs import ot_pairs
from ._sinkhorn import SinkhornLoss, sinkhorn, sinkhorn_divergence, unbalanced_sinkhorn
from ._sliced import SlicedWassersteinLoss, sliced_wasserstein

__all__ = [
    "PointCloud",
    "SinkhornLoss",
    "SlicedWassersteinLoss",
    "emd",
    "ot_pairs",
    "partial_ot",
    "sinkhorn",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "sparse_ot",
    "unbalanced_sinkhorn",
]
