"""Side-by-side benchmarks of pyot against its peers (POT, OTT-JAX, GeomLoss).

Run from the repository root::

    python -m bench                      # lists the families
    python -m bench sinkhorn --quick     # the smallest case (what CI runs)
    python -m bench sinkhorn --sizes 4000 --eps 0.01 --dtypes float64 --json out.json

Each family lives in ``bench/<family>.py`` (STYLE.md point 1) and is registered in
``bench.__main__.FAMILIES``. Shared helpers (timing, hardware probes, tables, JSON, peer detection)
are in ``bench/_common.py``.
"""
