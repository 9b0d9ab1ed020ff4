"""The tour behind ``python -m pyot demo``: every solver on generated data, one table, one PNG.

Later solver families add a row each to ``_cases``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pyot


def _two_moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = rng.uniform(0, np.pi, n)
    x = np.c_[np.cos(t), np.sin(t)] + 0.05 * rng.standard_normal((n, 2))
    y = np.c_[1 - np.cos(t), 0.5 - np.sin(t)] + 0.05 * rng.standard_normal((n, 2))
    return x, y


def _cases(rng: np.random.Generator) -> list[tuple[str, str, Callable[[], object]]]:
    x, y = _two_moons(2000, rng)
    cost = pyot.cost_matrix(x, y)
    cost32 = cost.astype(np.float32)
    big_x, big_y = rng.random((20_000, 3)), rng.random((20_000, 3))
    batch = np.stack([pyot.cost_matrix(*_two_moons(300, rng)) for _ in range(16)])
    a = rng.random(2000) + 0.5
    cost500 = np.ascontiguousarray(cost[:500, :500])
    b = rng.random(2000) + 0.5
    emd_batch = np.stack([pyot.cost_matrix(*_two_moons(256, rng)) for _ in range(64)])
    line_u, line_v = rng.normal(size=1_000_000), rng.normal(0.5, 1.5, size=1_000_000)
    sx, sy = rng.standard_normal((100_000, 3)), rng.random((100_000, 3))
    mx, my = rng.standard_normal((20_000, 16)), rng.standard_normal((20_000, 16)) + 0.5
    scores = rng.standard_normal((4096, 64))  # router logits, token x expert
    return [
        ("sinkhorn, float64, eps=0.01", "2000 x 2000",
         lambda: pyot.sinkhorn(cost, eps=0.01)),
        ("sinkhorn, float32, eps=0.001", "2000 x 2000",
         lambda: pyot.sinkhorn(cost32, eps=0.001, tol=1e-5)),
        ("sinkhorn, PointCloud online", "20000 x 20000, d=3",
         lambda: pyot.sinkhorn(pyot.PointCloud(big_x, big_y), eps=0.05, tol=1e-4)),
        ("sinkhorn, batch of 16", "16 x 300 x 300",
         lambda: pyot.sinkhorn(batch, eps=0.01)),
        ("unbalanced_sinkhorn, tau=1", "2000 x 2000",
         lambda: pyot.unbalanced_sinkhorn(cost, a / a.sum(), 1.5 * b / b.sum(), eps=0.01,
                                          reg_marginals=1.0)),
        ("sinkhorn_divergence, eps=0.01", "2000 vs 2000",
         lambda: pyot.sinkhorn_divergence(x, y, eps=0.01)),
        ("sparse_ot, k=5, reg=0.1, cost / max", "500 x 500",
         lambda: pyot.sparse_ot(cost500 / cost500.max(), k=5, reg=0.1)),
        ("sparse_ot routing, capacity k=80, reg=0.1", "4096 tokens x 64 experts",
         lambda: pyot.sparse_ot(-scores, k=80, reg=0.1)),
        ("emd (network simplex)", "2000 x 2000",
         lambda: pyot.emd(cost)),
        ("emd, batch of 64", "64 x 256 x 256",
         lambda: pyot.emd(emd_batch)),
        ("wasserstein_1d, p=2", "1e6 vs 1e6",
         lambda: pyot.wasserstein_1d(line_u, line_v, p=2.0)),
        ("partial_ot exact, mass=0.7", "2000 x 2000",
         lambda: pyot.partial_ot(cost, mass=0.7)),
        ("partial_ot entropic, eps=0.05, mass=0.7", "2000 x 2000",
         lambda: pyot.partial_ot(cost, mass=0.7, eps=0.05)),
        ("partial_wasserstein_1d, mass=0.5", "500 vs 400",
         lambda: pyot.partial_wasserstein_1d(line_u[:500], line_v[:400], mass=0.5)),
        ("sliced_wasserstein, L=512 qmc", "100000 vs 100000, d=3",
         lambda: pyot.sliced_wasserstein(sx, sy, n_projections=512, directions="qmc", seed=0)),
        ("max_sliced_wasserstein", "2000 vs 2000",
         lambda: pyot.max_sliced_wasserstein(x, y, seed=0)),
        ("minibatch_ot m-OT, 200 batches of 256", "20000 vs 20000, d=16",
         lambda: pyot.minibatch_ot(mx, my, batch_size=256, n_batches=200, seed=0)),
    ]


def picture_line(path: Path, drawn: bool) -> str:
    """The demo's line about a picture: where it was written, or why there is none."""
    if drawn:
        return f"wrote {path}"
    return "matplotlib is not installed: no picture (pip install 'pyot-engine[plot]')"


def _row(name: str, size: str, solve: Callable[[], object]) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyot.ConvergenceWarning)
        start = time.perf_counter()
        res = solve()
        elapsed = time.perf_counter() - start
    if isinstance(res, float):
        return name, size, elapsed, res, float("nan"), "-"
    if isinstance(res, (pyot.SlicedResult, pyot.MinibatchResult)):  # no marginals to report
        return name, size, elapsed, res.value, float("nan"), "-"
    value = float(np.mean(res.value))
    err = float(np.max(res.marginal_error))
    return name, size, elapsed, value, err, str(bool(np.all(res.converged)))


def _plot(path: Path, rng: np.random.Generator) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x, y = _two_moons(150, rng)
    cost = pyot.cost_matrix(x, y)
    entropic = pyot.sinkhorn(cost, eps=0.002).plan
    exact = pyot.emd(cost).plan.toarray()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for ax, plan, title in [
        (axes[0], entropic, "pyot.sinkhorn plan (eps = 0.002)"),
        (axes[1], exact, "pyot.emd plan (exact, a permutation)"),
    ]:
        rows, cols = np.nonzero(plan > plan.max() * 0.05)
        for i, j in zip(rows, cols, strict=True):
            ax.plot([x[i, 0], y[j, 0]], [x[i, 1], y[j, 1]], color="0.6",
                    alpha=float(min(1.0, plan[i, j] / plan.max())), lw=0.8)
        ax.scatter(*x.T, s=12, label="source x", color="tab:blue")
        ax.scatter(*y.T, s=12, label="target y", color="tab:orange")
        ax.set_title(title)
        ax.legend(loc="upper right")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def run_demo(out_dir: str = ".", seed: int = 0) -> int:
    """Run the tour; returns the process exit code."""
    rng = np.random.default_rng(seed)
    print(f"pyot {pyot.__version__} demo (seed {seed}); "
          f"{pyot.config()['max_threads']} threads, {pyot.config()['simd']}")
    header = ("problem", "size", "time [s]", "value", "marg. error", "converged")
    rows = [_row(*case) for case in _cases(rng)]
    widths = [max(len(header[k]), *(len(_fmt(r[k])) for r in rows)) for k in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    path = Path(out_dir) / "pyot_demo_plan.png"
    print(picture_line(path, _plot(path, rng)))
    print()
    from . import _demo_inverse

    _demo_inverse.run(out_dir, seed=seed)
    print()
    from . import _demo_maps

    _demo_maps.run(out_dir, seed=seed)
    return 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.6g}"
    return str(value)
