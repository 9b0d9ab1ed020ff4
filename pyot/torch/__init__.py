"""pyot on torch tensors (imports torch; ``import pyot`` alone never does).

Only the mini-batch pairing of OT conditional flow matching lives here so far:
:func:`ot_pairs`.
"""

from __future__ import annotations

from ._pairs import ot_pairs

__all__ = ["ot_pairs"]
