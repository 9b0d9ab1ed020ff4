"""The transport-map part of the demo: an entropic map and two Monge-gap maps from a Gaussian to
a ring, a short table and ``monge_gap_map.png`` (arrows x -> T(x)).

``run(outdir)`` returns the table's lines (it also prints them); the fitted maps need torch and
the picture matplotlib, and each is skipped with a note when its package is missing.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np

import pyot
import pyot.maps
from pyot._demo import picture_line

EPS = 0.05


def gaussian_and_ring(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points of N((1, 0), 0.3^2 I) and n points on a noisy ring of radius 1 around (1, 0)."""
    x = 0.3 * rng.standard_normal((n, 2)) + np.array([1.0, 0.0])
    t = rng.uniform(0, 2 * np.pi, n)
    y = np.c_[1.0 + np.cos(t), np.sin(t)] + 0.05 * rng.standard_normal((n, 2))
    return x, y


def _fits(x: np.ndarray, y: np.ndarray) -> list[tuple[str, str, object]]:
    """(label, metric, map) for the entropic map and, with torch, two Monge-gap maps."""
    out: list[tuple[str, str, object]] = []
    start = time.perf_counter()
    emap = pyot.maps.EntropicMap(x, y, eps=EPS)
    out.append(("EntropicMap", "sqeuclidean", emap, time.perf_counter() - start))
    if importlib.util.find_spec("torch") is None:
        return out
    for metric in ("sqeuclidean", "euclidean"):
        start = time.perf_counter()
        fitted = pyot.maps.fit_monge_gap_map(
            x.astype(np.float32), y.astype(np.float32), eps=EPS, reg=1.0, steps=150, lr=1e-2,
            batch_size=128, seed=0, metric=metric, tol=1e-3,
        )
        out.append(("fit_monge_gap_map", metric, fitted, time.perf_counter() - start))
    return out


def _plot(path: Path, x: np.ndarray, y: np.ndarray, rows: list) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 4.4), dpi=110,
                             squeeze=False)
    show = slice(0, 120)
    for ax, (label, metric, tx) in zip(axes[0], rows, strict=True):
        ax.scatter(*y.T, s=5, color="tab:orange", alpha=0.4, label="target y (ring)")
        ax.scatter(*x[show].T, s=8, color="tab:blue", label="source x (Gaussian)")
        d = tx[show] - x[show]
        ax.quiver(x[show, 0], x[show, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy",
                  scale=1.0, width=0.003, color="0.3", alpha=0.7)
        ax.set_title(f"{label}\ncost {metric}, eps = {EPS}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-0.4, 2.4)
        ax.set_ylim(-1.4, 1.4)
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def run(outdir: str = ".", seed: int = 0) -> list[str]:
    """Fits the maps, prints and returns the table, writes ``monge_gap_map.png``."""
    rng = np.random.default_rng(seed)
    x, y = gaussian_and_ring(512, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyot.ConvergenceWarning)
        fits = _fits(x, y)
        before = pyot.sinkhorn_divergence(x, y, eps=EPS)
        rows = []
        for label, metric, fitted, elapsed in fits:
            tx = np.asarray(fitted(x), dtype=np.float64)
            div = pyot.sinkhorn_divergence(tx, y, eps=EPS)
            gap = pyot.maps.monge_gap(x, tx, eps=EPS, metric=metric)
            rows.append((label, metric, fitted, elapsed, tx, div, gap))
    header = f"{'map':<18} {'cost':<12} {'time [s]':>8} {'S_eps(T#x, y)':>14} {'Monge gap':>10}"
    lines = [
        f"transport maps, Gaussian -> ring, n = {len(x)}, eps = {EPS}; "
        f"S_eps(x, y) = {before:.4g} before mapping",
        header,
        "-" * len(header),
    ]
    for label, metric, _, elapsed, _, div, gap in rows:
        lines.append(f"{label:<18} {metric:<12} {elapsed:>8.2f} {div:>14.4g} {gap:>10.4g}")
    if len(rows) == 1:
        lines.append("(torch is not installed: no Monge-gap maps; pip install torch)")
    path = Path(outdir) / "monge_gap_map.png"
    lines.append(picture_line(path, _plot(path, x, y, [(r[0], r[1], r[4]) for r in rows])))
    for line in lines:
        print(line)
    return lines
