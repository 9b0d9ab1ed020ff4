"""Inverse-OT part of the demo: recover a planted sparse interaction matrix from 2,000 matches.

``run(outdir)`` prints a short table, saves ``inverse_ot.png`` (true against recovered A) when
matplotlib is installed, and returns the printed lines. A few seconds.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ._demo import picture_line
from .inverse import fit_cost

D_X, D_Y, N_PAIRS, EPS = 8, 6, 2000, 1.0


def planted_matches(
    d_x: int, d_y: int, n: int, eps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sparse A* (one interaction per row of the smaller side) and n matched pairs drawn from
    the Gaussian with density proportional to ``exp(x^T A* y / eps) N(x; 0, I) N(y; 0, I)``,
    which is exactly the entropic OT plan of the cost ``-x^T A* y`` between its marginals."""
    a_true = np.zeros((d_x, d_y))
    rows = rng.choice(d_x, size=min(d_x, d_y), replace=False)
    for col, row in enumerate(rows):
        a_true[row, col] = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6)
    precision = np.block([[np.eye(d_x), -a_true / eps], [-a_true.T / eps, np.eye(d_y)]])
    z = rng.multivariate_normal(np.zeros(d_x + d_y), np.linalg.inv(precision), size=n)
    return a_true, z[:, :d_x], z[:, d_x:]


def _plot(path: Path, a_true: np.ndarray, fits: list[tuple[str, np.ndarray]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [("planted A*", a_true), *fits]
    vmax = max(float(np.abs(a).max()) for _, a in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1, 3.6), dpi=120,
                             layout="constrained")
    for ax, (title, a) in zip(axes, panels, strict=True):
        image = ax.imshow(a, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("feature of y")
    axes[0].set_ylabel("feature of x")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="A (cost = -x^T A y)")
    fig.savefig(path)
    plt.close(fig)
    return True


def run(outdir: str | Path = ".", seed: int = 0) -> list[str]:
    """Fit the cost with and without the l1 penalty; print and return the table lines."""
    rng = np.random.default_rng(seed)
    a_true, x, y = planted_matches(D_X, D_Y, N_PAIRS, EPS, rng)
    pairs = np.column_stack((np.arange(N_PAIRS), np.arange(N_PAIRS)))
    truth = a_true != 0
    reg = 2.0 * math.sqrt(math.log(a_true.size) / N_PAIRS)
    lines = [
        f"inverse OT: planted sparse A* ({D_X} x {D_Y}, {int(truth.sum())} interactions), "
        f"{N_PAIRS} observed matches, eps = {EPS}",
        f"{'fit':<22}{'time [s]':>9}{'iters':>7}{'rel. error':>12}{'support':>9}"
        f"{'F1':>6}{'signs':>7}",
    ]
    fits = []
    for label, penalty in (("reg_l1 = 0", 0.0), (f"reg_l1 = {reg:.3f}", reg)):
        start = time.perf_counter()
        res = fit_cost(x, y, pairs, eps=EPS, reg_l1=penalty)
        elapsed = time.perf_counter() - start
        err = np.linalg.norm(res.weights - a_true) / np.linalg.norm(a_true)
        tp = int((res.support & truth).sum())
        f1 = 2 * tp / (int(res.support.sum()) + int(truth.sum()))
        signs = bool(np.array_equal(np.sign(res.weights), np.sign(a_true)))
        lines.append(f"{label:<22}{elapsed:>9.2f}{res.n_iter:>7}{err:>12.3f}"
                     f"{int(res.support.sum()):>9}{f1:>6.2f}{signs!s:>7}")
        fits.append((f"recovered, {label}", res.weights))
    path = Path(outdir) / "inverse_ot.png"
    lines.append(picture_line(path, _plot(path, a_true, fits)))
    for line in lines:
        print(line)
    return lines
