"""A tiny Sphinx extension: draws the demo's pictures into ``_generated/`` at build time.

The pictures come from ``pyot._demo._plot`` (the same code as ``python -m pyot demo``), so the
gallery always shows what the current build computes; without matplotlib the page says why
there is no picture.
"""

from __future__ import annotations

from pathlib import Path


_IMAGE = """.. image:: /_generated/demo_plan.png
   :alt: entropic and exact transport plans between two moons
"""


def _draw(app) -> None:
    out = Path(app.srcdir) / "_generated"
    out.mkdir(exist_ok=True)
    try:
        import numpy as np

        from pyot._demo import _plot

        drawn = _plot(out / "demo_plan.png", np.random.default_rng(0))
        reason = "matplotlib is not installed (pip install 'pyot-engine[plot]')"
    except ImportError as exc:  # pyot itself not importable from here
        drawn, reason = False, str(exc)
    text = _IMAGE if drawn else f"*The picture was not drawn: {reason}.*\n"
    (out / "gallery.inc").write_text(text)


def setup(app):
    app.connect("builder-inited", _draw)
    return {"parallel_read_safe": True}
