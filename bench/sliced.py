"""``python -m bench sliced``: sliced Wasserstein, pyot against POT and OTT-JAX.

Timing grid: n = m in {10^4, 10^5, 10^6}, d in {3, 64}, L in {50, 500} directions, float32 and
float64, p = 2. Every solver gets the same inputs and the same unit directions (x uniform in
the unit cube, y the squared coordinates of another uniform cloud plus 0.1, so the slices
differ; directions seeded Gaussian rows, normalised): pyot through ``directions=``, POT through
``projections=`` (d, L), OTT-JAX through a ``proj_fn`` that multiplies by them. Each time is the
median of the repeats after a warm-up (OTT-JAX: compilation excluded). A peer predicted to need
more than ``--budget`` seconds is timed on the first k directions and its time scaled by L / k
(marked ``~``; cost is linear in L); its value is then not compared.

For pyot the sort phase is measured inside the core (thread-seconds per sorted value, on the
first 50 directions) and set against ``std::sort`` on the same projected values
(``pyot._core.std_sort_seconds``, per-row times summed the same way), the machine's sorting
throughput.

Error table: RMS error over seeds of the SW_2 estimate against L for random, orthogonal and QMC
directions, on fixed clouds, against a reference from 2^16 directions (two seeds each of QMC and
orthogonal; the pair that agrees best is used and both gaps are printed: the table cannot
resolve errors below them). A PNG is written when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import _common as cm

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # must be set before jax is imported

SIZES = (10_000, 100_000, 1_000_000)
DIMS = (3, 64)
PROJECTIONS = (50, 500)
DTYPES = ("float32", "float64")
PEERS = ("pot", "ott")
KINDS = ("random", "orthogonal", "qmc")
ERROR_LS = (16, 64, 256, 1024)
P = 2.0
SPEEDUP_TARGET = 4.0  # against POT for n >= 10^5 (issue 5)
SORT_TARGET = 2.0  # sort phase within 2x of std::sort's time per value
SORT_PROBE_BYTES = 64 << 20  # projected values std::sort is timed on
SORT_PROBE_DIRECTIONS = 50  # directions of the timed core run that measures the sort phase


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sliced options")
    g.add_argument("--sizes", type=int, nargs="+", help="n = m (default 10000 100000 1000000)")
    g.add_argument("--dims", type=int, nargs="+", help="point dimensions (default 3 64)")
    g.add_argument("--projections", type=int, nargs="+", help="L values (default 50 500)")
    g.add_argument("--dtypes", choices=DTYPES, nargs="+", help="default: float32 float64")
    g.add_argument("--peers", choices=PEERS, nargs="*", default=list(PEERS))
    g.add_argument("--skip-timing", action="store_true", help="error table only")
    g.add_argument("--skip-error", action="store_true", help="timing grid only")
    g.add_argument("--error-n", type=int, default=None, help="points per cloud (default 1000)")
    g.add_argument("--error-dims", type=int, nargs="+", default=None, help="default: 3 64")
    g.add_argument("--error-ls", type=int, nargs="+", default=None, help="default: 16 64 256 1024")
    g.add_argument("--error-seeds", type=int, default=None, help="seeds per L (default 20)")
    g.add_argument(
        "--png", default="bench/results/sliced_error.png", help="error plot (needs matplotlib)"
    )


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    args.sizes = args.sizes or ((10_000,) if quick else SIZES)
    args.dims = args.dims or ((3,) if quick else DIMS)
    args.projections = args.projections or ((50,) if quick else PROJECTIONS)
    args.dtypes = args.dtypes or (("float64",) if quick else DTYPES)
    args.error_n = args.error_n or (300 if quick else 1000)
    args.error_dims = args.error_dims or ((3,) if quick else DIMS)
    args.error_ls = args.error_ls or ((16, 64) if quick else ERROR_LS)
    args.error_seeds = args.error_seeds or (5 if quick else 20)


# ---------------------------------------------------------------------------------------------
# Inputs and solvers


@dataclass
class Case:
    n: int
    d: int
    L: int
    dtype: str

    @property
    def name(self) -> str:
        return f"n={self.n:.0e} d={self.d} L={self.L} {self.dtype}".replace("e+0", "e")


def _inputs(case: Case, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = cm.uniform_points(case.n, case.n, case.d, seed)
    y = y * y + 0.1
    z = np.random.default_rng([seed, case.L, case.d]).standard_normal((case.L, case.d))
    dirs = z / np.linalg.norm(z, axis=1, keepdims=True)
    dt = np.dtype(case.dtype)
    return x.astype(dt), y.astype(dt), dirs.astype(dt)


@dataclass
class Row:
    solver: str
    time: float | None = None
    value: float | None = None
    directions_timed: int | None = None  # < L: time scaled from these many directions
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _run_scaled(
    solve: Any, x: np.ndarray, y: np.ndarray, dirs: np.ndarray, args: argparse.Namespace
) -> Row:
    """Times solve(x, y, dirs[:k]) on all L directions, or on the first k that fit the budget
    (and in a quarter of the free memory: peers hold several (n, L) arrays) scaled to L."""
    L = len(dirs)
    k0 = min(L, 5)
    solve(x, y, dirs[:k0])  # warm-up: OTT-JAX compiles here, not in the probe
    t_probe, _ = cm.timed(lambda: solve(x, y, dirs[:k0]))
    predicted = t_probe * L / k0
    free = cm.memory_available() or 1 << 34
    k_mem = max(k0, int(free / 4 / (6 * 2 * len(x) * x.itemsize)))
    k = L if predicted <= args.budget else max(k0, int(L * args.budget / predicted))
    k = min(k, k_mem, L)
    timing, value = cm.measure(lambda: solve(x, y, dirs[:k]), args.repeats, args.budget)
    row = Row("", timing.median * L / k, float(value) if k == L else None, k)
    if k < L:
        row.note = f"~ scaled from {k} of {L} directions"
    return row


def _pot_solver(ot: Any):
    def solve(x, y, dirs):
        return ot.sliced_wasserstein_distance(x, y, projections=dirs.T.copy(), p=P)

    return solve


def _ott_solver(handles: dict[str, Any]):
    jax, sliced = handles["jax"], handles["ott.tools.sliced"]
    cache: dict[tuple, Any] = {}

    def solve(x, y, dirs):
        key = (x.shape, dirs.shape, x.dtype.str)
        if key not in cache:  # compile once per shape; the first (untimed) call compiles

            def fn(xx, yy, dd):
                value, _ = sliced.sliced_wasserstein(xx, yy, proj_fn=lambda z: z @ dd.T)
                return value

            cache[key] = jax.jit(fn)
        out = cache[key](x, y, dirs).block_until_ready()
        return math.sqrt(float(out))  # OTT returns SW_2^2 for the squared-Euclidean cost

    return solve


def _detect_peers(wanted: list[str]) -> dict[str, cm.Peer]:
    peers: dict[str, cm.Peer] = {}
    if "pot" in wanted:
        peers["pot"] = cm.detect_peer("POT", ("ot",), "pot")
    if "ott" in wanted:
        ott = cm.detect_peer("OTT-JAX", ("jax", "ott.tools.sliced"), "ott-jax")
        if ott.available:
            ott.handles["jax"].config.update("jax_enable_x64", True)
        peers["ott"] = ott
    return peers


# ---------------------------------------------------------------------------------------------
# Sort phase against std::sort


def _sort_phase(pyot: Any, x: np.ndarray, y: np.ndarray, dirs: np.ndarray, args) -> dict:
    """pyot's sort cost per value (thread-seconds, inside the core) against std::sort's on the
    same projected values, and the sort's share of pyot's thread time; each the best of
    ``--repeats`` runs (other processes only ever add time)."""
    core, threads = pyot._core, args.threads
    dirs = dirs[:SORT_PROBE_DIRECTIONS]  # the cost per value does not depend on L
    best: dict[str, Any] | None = None
    for _ in range(args.repeats):
        wall = cm.Stopwatch()
        _, phases = core.sliced_projected_timed(x, y, dirs, p=P, threads=threads)
        phases["thread_s"] = wall.elapsed() * threads
        if best is None or phases["sort"] < best["sort"]:
            best = phases
    k = max(1, min(len(dirs), SORT_PROBE_BYTES // (2 * len(x) * x.itemsize)))
    projected = [np.ascontiguousarray((cloud @ dirs[:k].T).T) for cloud in (x, y)]
    std_s = min(
        sum(core.std_sort_seconds(pr, threads) for pr in projected) for _ in range(args.repeats)
    )
    pyot_per_value = best["sort"] / best["sorted"]
    std_per_value = std_s / (k * (len(x) + len(y)))
    return {
        "phases": best,
        "sort_ns_per_value": 1e9 * pyot_per_value,
        "std_sort_ns_per_value": 1e9 * std_per_value,
        "sort_vs_std_sort": pyot_per_value / std_per_value,
        "sort_share": best["sort"] / best["thread_s"] if best["thread_s"] > 0 else None,
    }


# ---------------------------------------------------------------------------------------------
# Timing grid


def _run_case(case: Case, pyot: Any, peers: dict[str, cm.Peer], args) -> dict[str, Any]:
    x, y, dirs = _inputs(case, args.seed)
    threads = args.threads

    def run_pyot(xx, yy, dd):
        return pyot.sliced_wasserstein(xx, yy, directions=dd, p=P, threads=threads).value

    timing, value = cm.measure(lambda: run_pyot(x, y, dirs), args.repeats, args.budget)
    rows = [Row("pyot", timing.median, float(value), len(dirs))]
    solvers = {"pot": ("POT", _pot_solver), "ott": ("OTT-JAX", _ott_solver)}
    for key, peer in peers.items():
        label, make = solvers[key]
        if not peer.available:
            rows.append(Row(label, note=peer.reason or "unavailable"))
            continue
        cm.settle()
        handle = peer.handles["ot"] if key == "pot" else peer.handles
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row = _run_scaled(make(handle), x, y, dirs, args)
        except Exception as exc:  # a failing peer is reported, not fatal
            row = Row(label, note=f"failed: {type(exc).__name__}: {str(exc)[:80]}")
        row.solver = label
        rows.append(row)
    cm.settle()
    sort = _sort_phase(pyot, x, y, dirs, args)
    return {
        "case": case.__dict__,
        "name": case.name,
        "rows": [r.as_dict() for r in rows],
        "sort": sort,
    }


def _print_case(result: dict[str, Any]) -> None:
    rows = result["rows"]
    pyot_row = rows[0]
    table = []
    for r in rows:
        ratio = r["time"] / pyot_row["time"] if r["time"] and r["solver"] != "pyot" else None
        rel = (
            abs(r["value"] - pyot_row["value"]) / pyot_row["value"]
            if r["value"] is not None and r["solver"] != "pyot"
            else None
        )
        timed = ("~" if r["directions_timed"] and r["note"] else "") + cm.fmt_time(r["time"])
        table.append([r["solver"], timed, cm.fmt_ratio(ratio), cm.fmt_sci(rel), r["note"]])
    s = result["sort"]
    cm.print_table(
        f"{result['name']}: value {pyot_row['value']:.6g}; sort {s['sort_ns_per_value']:.1f} "
        f"ns/value vs std::sort {s['std_sort_ns_per_value']:.1f} ns/value "
        f"({s['sort_vs_std_sort']:.2f}x its time), sort share of pyot's thread time "
        f"{100 * (s['sort_share'] or 0):.0f}%",
        ["solver", "time", "peer / pyot", "|rel. diff| to pyot", "note"],
        table,
        [False, True, True, True, False],
    )


def _targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        rows = {r["solver"]: r for r in res["rows"]}
        pot = rows.get("POT")
        speedup = pot["time"] / rows["pyot"]["time"] if pot and pot["time"] else None
        has_target = res["case"]["n"] >= 100_000
        out.append(
            {
                "case": res["name"],
                "speedup_vs_pot": speedup,
                "speedup_met": (speedup >= SPEEDUP_TARGET) if has_target and speedup else None,
                "sort_vs_std_sort": res["sort"]["sort_vs_std_sort"],
                "sort_met": res["sort"]["sort_vs_std_sort"] <= SORT_TARGET,
            }
        )
    return out


def run_grid(pyot: Any, peers: dict[str, cm.Peer], args) -> list[dict[str, Any]]:
    results = []
    for n in args.sizes:
        for d in args.dims:
            for L in args.projections:
                for dtype in args.dtypes:
                    res = _run_case(Case(n, d, L, dtype), pyot, peers, args)
                    _print_case(res)
                    results.append(res)
    return results


# ---------------------------------------------------------------------------------------------
# Estimation error against L


def _error_clouds(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, d, 1])
    x = rng.standard_normal((n, d))
    y = rng.uniform(-1.0, 2.0, (n, d)) * np.linspace(0.5, 2.0, d) + 0.3
    return x, y


def run_error(pyot: Any, args) -> list[dict[str, Any]]:
    def estimate(x: np.ndarray, y: np.ndarray, L: int, kind: str, seed: int) -> float:
        return pyot.sliced_wasserstein(x, y, n_projections=L, directions=kind, seed=seed).value

    L_ref = 1 << (12 if args.quick else 16)
    out = []
    for d in args.error_dims:
        x, y = _error_clouds(args.error_n, d, args.seed)
        # Two seeds each of the two low-variance kinds; the pair that agrees best is the
        # reference (QMC in low dimension, orthogonal bases in high dimension).
        pairs = {
            kind: [estimate(x, y, L_ref, kind, s) for s in (10_001, 10_002)]
            for kind in ("orthogonal", "qmc")
        }
        ref_kind = min(pairs, key=lambda k: abs(pairs[k][0] - pairs[k][1]))
        refs = pairs[ref_kind]
        reference = float(np.mean(refs))
        spread_other = max(abs(v[0] - v[1]) for k, v in pairs.items() if k != ref_kind)
        rows = []
        for kind in KINDS:
            for L in args.error_ls:
                est = np.array([estimate(x, y, L, kind, s) for s in range(args.error_seeds)])
                rmse = float(np.sqrt(np.mean((est - reference) ** 2)))
                rows.append({"d": d, "kind": kind, "L": L, "rmse": rmse, "std": float(est.std())})
        random_rmse = {r["L"]: r["rmse"] for r in rows if r["kind"] == "random"}
        cm.print_table(
            f"SW_2 estimation error, d={d}, n={args.error_n}: reference {reference:.6g} from "
            f"2x{L_ref} {ref_kind} directions (the two differ by {abs(refs[0] - refs[1]):.1e}; "
            f"the other kind's pair by {spread_other:.1e}); RMS over {args.error_seeds} seeds",
            ["directions", "L", "RMS error", "relative", "vs random"],
            [
                [
                    r["kind"],
                    r["L"],
                    cm.fmt_sci(r["rmse"], 2),
                    cm.fmt_sci(r["rmse"] / reference),
                    cm.fmt_ratio(r["rmse"] / random_rmse[r["L"]]),
                ]
                for r in rows
            ],
            [False, True, True, True, True],
        )
        out.append(
            {
                "d": d,
                "reference": reference,
                "reference_kind": ref_kind,
                "reference_runs": pairs,
                "rows": rows,
            }
        )
    return out


def _plot_error(tables: list[dict[str, Any]], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), squeeze=False)
    for ax, table in zip(axes[0], tables, strict=True):
        for kind in KINDS:
            rows = [r for r in table["rows"] if r["kind"] == kind]
            ax.loglog([r["L"] for r in rows], [r["rmse"] for r in rows], "o-", label=kind)
        ax.set_xlabel("directions L")
        ax.set_ylabel("RMS error of SW_2")
        ax.set_title(f"d = {table['d']}")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    wall = cm.Stopwatch()
    foreign = cm.ForeignLoad()
    _defaults(args)
    pyot = cm.import_pyot()
    peers = {} if args.skip_timing else _detect_peers(args.peers)
    cm.print_header(
        "python -m bench sliced",
        [
            ("CPU", f"{cm.cpu_model()} ({os.cpu_count()} logical CPUs, {args.threads} used)"),
            ("load average", f"{cm.load_average()} (1 min, before the run)"),
            ("pyot", f"{pyot.__version__}, simd {pyot.config()['simd']}"),
            ("peers", "; ".join(p.status() for p in peers.values()) or "none"),
            (
                "method",
                f"p = {P:g}; median of {args.repeats} runs after a warm-up; budget "
                f"{args.budget:g} s per solver and case",
            ),
        ],
    )
    grid, targets = [], []
    if not args.skip_timing:
        with cm.blas_threads(args.threads):
            grid = run_grid(pyot, peers, args)
        targets = _targets(grid)
        cm.print_table(
            f"Targets: >= {SPEEDUP_TARGET:g}x POT for n >= 1e5; sort phase within "
            f"{SORT_TARGET:g}x of std::sort's time per value",
            ["case", "speed-up vs POT", "met", "sort / std::sort", "met"],
            [
                [
                    t["case"],
                    cm.fmt_ratio(t["speedup_vs_pot"]),
                    {True: "MET", False: "NOT MET", None: "-"}[t["speedup_met"]],
                    f"{t['sort_vs_std_sort']:.2f}",
                    "MET" if t["sort_met"] else "NOT MET",
                ]
                for t in targets
            ],
            [False, True, False, True, False],
        )
    error = [] if args.skip_error else run_error(pyot, args)
    png = _plot_error(error, args.png) if error else None
    if error:
        print(f"\nerror plot: {png}" if png else "\nmatplotlib not installed: no error plot")
    share = foreign.fraction()
    if share is not None:
        warn = " -- WARNING: timings are unreliable" if share > 0.1 else ""
        print(f"other processes used {100 * share:.0f}% of the cores during the run{warn}")
    print(f"bench wall time {wall.elapsed():.0f} s")
    return {
        "settings": {k: v for k, v in sorted(vars(args).items())},
        "cases": grid,
        "targets": targets,
        "error": error,
        "error_png": png,
        "foreign_cpu_fraction": share,
        "wall_s": wall.elapsed(),
    }
