"""``python -m bench exact``: the network simplex and the 1D closed form, pyot against peers.

Three tables, every solver on the same inputs in one run:

1. ``emd``: n = m in {500, 1000, 2000, 5000, 10000}, d in {2, 64}, points uniform in the unit
   cube (seeded), squared Euclidean cost, uniform weights, float64. pyot on one thread and on
   all threads, POT's ``ot.emd`` (single-threaded), and ``scipy.optimize.linear_sum_assignment``
   (uniform square problems are assignment problems: its value / n is the OT value). Columns:
   median times, pivots, |value - POT's value|, ratios, and the solve time counted in full
   passes over C at the machine's read bandwidth (a pass is the least pricing can cost).
2. batched ``emd``: B = 64 problems of 256 x 256 in one call, against a Python loop of
   ``ot.emd``.
3. ``wasserstein_1d`` at n = 10^6 (uniform and weighted), against POT's ``wasserstein_1d`` and
   ``scipy.stats.wasserstein_distance``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

from bench import _common as cm

SIZES = (500, 1000, 2000, 5000, 10000)
DIMS = (2, 64)
BATCH, BATCH_SIZE = 64, 256
LINE_SIZE = 1_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("exact options")
    group.add_argument("--sizes", type=cm.int_list, default=SIZES, help="n = m values")
    group.add_argument("--dims", type=cm.int_list, default=DIMS, help="dimensions d (2,64)")
    group.add_argument(
        "--peer-max-size", type=int, default=10000, help="skip peers above this n (default all)"
    )


def _problem(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = cm.uniform_points(n, n, d, seed)
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) if d <= 8 else _gemm_cost(x, y)
    return cost, np.full(n, 1.0 / n)


def _gemm_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cost = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(cost, 0.0)


def _emd_case(ctx: dict[str, Any], n: int, d: int) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    cost, w = _problem(n, d, args.seed)
    budget, repeats = args.budget, args.repeats
    out: dict[str, Any] = {"n": n, "d": d}
    cm.settle()
    t1, r1 = cm.measure(lambda: pyot.emd(cost, w, w, threads=1), repeats, budget)
    cm.settle()
    tt, rt = cm.measure(lambda: pyot.emd(cost, w, w, threads=args.threads), repeats, budget)
    out["pyot_1"] = {**t1.as_dict(), "value": r1.value, "pivots": r1.n_iter}
    out["pyot_all"] = {**tt.as_dict(), "value": rt.value, "pivots": rt.n_iter}
    pass_time = cost.nbytes / ctx["hw"].bandwidth
    out["pass_time_s"] = pass_time
    if ot is not None and n <= args.peer_max_size:
        cm.settle()
        tp, plan = cm.measure(lambda: ot.emd(w, w, cost, numItermax=100_000_000), repeats, budget)
        out["pot"] = {**tp.as_dict(), "value": float((plan * cost).sum())}
        cm.settle()
        ts, (rows, cols) = cm.measure(lambda: linear_sum_assignment(cost), repeats, budget)
        out["scipy_lsa"] = {**ts.as_dict(), "value": float(cost[rows, cols].sum() / n)}
    return out


def _emd_row(case: dict[str, Any]) -> list[str]:
    p1, pt = case["pyot_1"], case["pyot_all"]
    pot, lsa = case.get("pot"), case.get("scipy_lsa")
    ref = pot["value"] if pot else None
    gap = abs(p1["value"] - ref) if ref is not None else None
    return [
        str(case["n"]), str(case["d"]),
        cm.fmt_time(p1["median_s"]), cm.fmt_time(pt["median_s"]), str(p1["pivots"]),
        cm.fmt_time(pot["median_s"]) if pot else "-",
        cm.fmt_time(lsa["median_s"]) if lsa else "-",
        cm.fmt_sci(gap), cm.fmt_ratio(pot["median_s"] / p1["median_s"]) if pot else "-",
        cm.fmt_ratio(pot["median_s"] / pt["median_s"]) if pot else "-",
        cm.fmt_ratio(lsa["median_s"] / pt["median_s"]) if lsa else "-",
        f"{p1['median_s'] / case['pass_time_s']:.0f}",
    ]


EMD_HEADERS = [
    "n", "d", "pyot 1 thr", "pyot all", "pivots", "POT", "scipy LSA", "|dvalue|",
    "POT/pyot 1thr", "POT/pyot all", "LSA/pyot all", "C passes (1 thr)",
]


def _batch_case(ctx: dict[str, Any]) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    rng = np.random.default_rng(args.seed)
    x = rng.random((BATCH, BATCH_SIZE, 2))
    y = rng.random((BATCH, BATCH_SIZE, 2))
    cost = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    w = np.full((BATCH, BATCH_SIZE), 1.0 / BATCH_SIZE)
    out: dict[str, Any] = {"batch": BATCH, "size": BATCH_SIZE}
    cm.settle()
    t1, _r1 = cm.measure(lambda: pyot.emd(cost, w, w, threads=1), args.repeats, args.budget)
    cm.settle()
    tt, rt = cm.measure(lambda: pyot.emd(cost, w, w, threads=args.threads), args.repeats,
                        args.budget)
    out["pyot_1"], out["pyot_all"] = t1.as_dict(), tt.as_dict()
    if ot is not None:
        cm.settle()
        tp, values = cm.measure(
            lambda: [float((ot.emd(w[k], w[k], cost[k]) * cost[k]).sum()) for k in range(BATCH)],
            args.repeats, args.budget,
        )
        out["pot_loop"] = tp.as_dict()
        out["max_gap"] = float(np.max(np.abs(np.asarray(values) - rt.value)))
    return out


def _line_case(ctx: dict[str, Any], weighted: bool) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    rng = np.random.default_rng(args.seed)
    u, v = rng.normal(size=LINE_SIZE), rng.normal(0.1, 1.2, size=LINE_SIZE)
    wu = rng.random(LINE_SIZE) if weighted else None
    wv = rng.random(LINE_SIZE) if weighted else None
    out: dict[str, Any] = {"n": LINE_SIZE, "weighted": weighted}
    cm.settle()
    t, value = cm.measure(lambda: pyot.wasserstein_1d(u, v, wu, wv), args.repeats, args.budget)
    out["pyot"] = {**t.as_dict(), "value": value}
    if ot is not None:
        pu = None if wu is None else wu / wu.sum()
        pv = None if wv is None else wv / wv.sum()
        cm.settle()
        t, val = cm.measure(lambda: ot.wasserstein_1d(u, v, pu, pv, p=1), args.repeats,
                            args.budget)
        out["pot"] = {**t.as_dict(), "value": float(val)}
    cm.settle()
    t, val = cm.measure(lambda: wasserstein_distance(u, v, wu, wv), args.repeats, args.budget)
    out["scipy"] = {**t.as_dict(), "value": float(val)}
    return out


def _line_row(case: dict[str, Any]) -> list[str]:
    mine, pot, sci = case["pyot"], case.get("pot"), case["scipy"]
    best = min(sci["median_s"], pot["median_s"]) if pot else sci["median_s"]
    gap = abs(mine["value"] - sci["value"])
    return [
        "weighted" if case["weighted"] else "uniform", cm.fmt_time(mine["median_s"]),
        cm.fmt_time(pot["median_s"]) if pot else "-", cm.fmt_time(sci["median_s"]),
        cm.fmt_sci(gap), cm.fmt_ratio(best / mine["median_s"]),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    peer = cm.detect_peer("POT", ["ot"], "pot")
    hw = cm.probe_hardware(getattr(pyot, "_core", None), args.threads, args.quick)
    cm.print_header("pyot bench: exact", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", peer.status()), ("read bandwidth", f"{hw.bandwidth / 1e9:.1f} GB/s"),
        ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "pyot": pyot, "ot": peer.handles.get("ot") if peer.available else None,
           "hw": hw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's numItermax notices; results are checked here
        sizes = args.sizes[:1] if args.quick else args.sizes
        dims = args.dims[:1] if args.quick else args.dims
        emd_cases = []
        for d in dims:
            for n in sizes:
                emd_cases.append(_emd_case(ctx, n, d))
                print(f"  emd n={n} d={d} done", flush=True)
        cm.print_table("emd: median time to the exact optimum (POT single-threaded)",
                       EMD_HEADERS, [_emd_row(c) for c in emd_cases],
                       right=[True] * len(EMD_HEADERS))
        batch = None if args.quick else _batch_case(ctx)
        if batch:
            pot = batch.get("pot_loop")
            rows = [[
                f"{BATCH} x {BATCH_SIZE}x{BATCH_SIZE}", cm.fmt_time(batch["pyot_1"]["median_s"]),
                cm.fmt_time(batch["pyot_all"]["median_s"]),
                cm.fmt_time(pot["median_s"]) if pot else "-",
                cm.fmt_ratio(pot["median_s"] / batch["pyot_all"]["median_s"]) if pot else "-",
                cm.fmt_sci(batch.get("max_gap")),
            ]]
            cm.print_table("batched emd: one call against a Python loop of ot.emd",
                           ["problems", "pyot 1 thr", "pyot all", "POT loop", "POT/pyot all",
                            "max |dvalue|"], rows, right=[True] * 6)
        line = [] if args.quick else [_line_case(ctx, False), _line_case(ctx, True)]
        if line:
            cm.print_table(f"wasserstein_1d, n = m = {LINE_SIZE}, p = 1",
                           ["weights", "pyot", "POT", "scipy", "|dvalue|", "best peer/pyot"],
                           [_line_row(c) for c in line], right=[True] * 6)
    return {"hardware": hw.as_dict(), "emd": emd_cases, "batch": batch, "line": line}
