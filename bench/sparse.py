"""``python -m bench sparse``: sparsity-constrained / quadratic OT, pyot against POT.

For every case (n = m, k, reg) both solvers get the same inputs: points uniform in the unit
square (seeded), ``C = cost_matrix(x, y) / C.max()``, uniform weights, float64. POT's
``ot.smooth.smooth_ot_dual`` and ``smooth_ot_semi_dual`` (NumPy + SciPy L-BFGS-B, their
default stopping threshold) run first; the marginal error of the better POT plan is then
pyot's ``tol``, so that both are timed to the same accuracy. Every plan's L1 marginal error and
its objective ``<P, C> + (reg / 2) ||P||^2`` are recomputed here the same way for everyone.
``k = n`` (quadratic OT, POT's ``reg_type="l2"``) is one more column of the grid
(``--no-quadratic`` leaves it out).

POT takes minutes per case from n = 2000 on, and its side does not depend on pyot:
``--pot-json FILE`` reuses POT's timings and plan quality from an earlier ``--json`` file for
the cases it holds and times pyot alone there (with ``--pot-max-size 0``, POT never runs).
``--routing`` times the mixture-of-experts routing problem instead (4096 tokens x 64 experts,
capacity 80, m < n), pyot also to ``tol = 1e-6`` since POT stops far from the marginals there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import _common as cm

SIZES = (500, 2000, 5000)
KS = (1, 5, 20)
REGS = (0.1, 1.0)
POT_SOLVERS = ("smooth_ot_dual", "smooth_ot_semi_dual")
POT_MAX_ITER = 500  # POT's default numItermax
ROUTING = (4096, 64, 80)  # tokens, experts, capacity (the demo's routing problem)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sparse options")
    group.add_argument(
        "--sizes", type=cm.int_list, default=SIZES, help="n = m values (500,2000,5000)"
    )
    group.add_argument("--ks", type=cm.int_list, default=KS, help="nonzeros per column (1,5,20)")
    group.add_argument("--regs", type=cm.float_list, default=REGS, help="regularizations (0.1,1)")
    group.add_argument(
        "--pot-max-size", type=int, default=5000, help="skip POT above this n (default 5000)"
    )
    group.add_argument(
        "--pot-solvers", type=_pot_solvers, default=POT_SOLVERS,
        help="POT solvers to time, comma-separated (default smooth_ot_dual,smooth_ot_semi_dual;"
        " each takes minutes per case from n = 2000 on)",
    )
    group.add_argument(
        "--no-quadratic", action="store_true",
        help="leave out the k = n column (quadratic OT) that every size otherwise adds",
    )
    group.add_argument(
        "--routing", action="store_true",
        help=f"instead of the grid: mixture-of-experts routing, {ROUTING[0]} tokens x {ROUTING[1]} "
        f"experts, capacity k = {ROUTING[2]}, C = -scores (standard normal), uniform weights, "
        "at each --regs value (m < n: pyot's semi-dual over the experts' potentials)",
    )
    group.add_argument(
        "--pot-json", metavar="PATH", action="append", default=[],
        help="reuse POT's timings and plan quality from a previous --json file (repeatable) for"
        " the cases it holds, and time only pyot there (POT's side does not change with pyot)",
    )


def _pot_solvers(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in POT_SOLVERS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected names from {', '.join(POT_SOLVERS)}")
    return names


@dataclass
class Quality:
    err: float
    objective: float
    nnz_max: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def quality(plan: Any, cost: np.ndarray, a: np.ndarray, b: np.ndarray, reg: float) -> Quality:
    """Marginal error, objective and largest column count of a dense or sparse plan."""
    if hasattr(plan, "tocoo"):
        coo = plan.tocoo()
        rows, cols, vals = coo.row, coo.col, coo.data.astype(np.float64)
    else:
        rows, cols = np.nonzero(plan)
        vals = np.asarray(plan[rows, cols], np.float64)
    n, m = cost.shape
    err = float(
        np.abs(np.bincount(rows, vals, n) - a).sum() + np.abs(np.bincount(cols, vals, m) - b).sum()
    )
    objective = float(vals @ cost[rows, cols] + 0.5 * reg * vals @ vals)
    nnz_max = int(np.bincount(cols, minlength=m).max()) if vals.size else 0
    return Quality(err, objective, nnz_max)


def _load_pot(paths: list[str]) -> dict[tuple[int, int, int, float], list[dict[str, Any]]]:
    """POT's entries of earlier ``--json`` files, by case ``(n, m, k, reg)`` (later files
    win)."""
    out: dict[tuple[int, int, int, float], list[dict[str, Any]]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        for case in data.get("cases", []):
            entries = [
                {
                    "solver": r["solver"],
                    "timing": cm.Timing(r["timing"]["median_s"], r["timing"]["samples_s"],
                                        r["timing"]["warm"], r["timing"]["warmup_s"]),
                    "quality": Quality(**r["quality"]),
                    "reused": path,
                }
                for r in case.get("pot", [])
            ]
            if entries:
                key = (case["n"], case.get("m", case["n"]), case["k"], float(case["reg"]))
                out[key] = entries
    return out


def _inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = cm.uniform_points(n, n, 2, seed)
    diff = x[:, None, :] - y[None, :, :]
    cost = np.einsum("ijk,ijk->ij", diff, diff)
    cost /= cost.max()
    return cost, np.full(n, 1.0 / n), np.full(n, 1.0 / n)


def _run_pot(ot: Any, name: str, cost: np.ndarray, a: np.ndarray, b: np.ndarray, reg: float,
             k: int, repeats: int, budget: float) -> dict[str, Any]:
    n = cost.shape[0]
    kind = "l2" if k >= n else "sparsity_constrained"
    solver = getattr(ot.smooth, name)

    def call() -> np.ndarray:
        # POT's sparse projection prints array shapes; SciPy warns about POT's options.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return solver(a, b, cost, reg, reg_type=kind, max_nz=None if k >= n else k,
                          numItermax=POT_MAX_ITER)

    timing, plan = cm.measure(call, repeats, budget)
    return {"solver": f"POT {name}", "timing": timing, "quality": quality(plan, cost, a, b, reg)}


def _routing_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tokens, experts, _ = ROUTING
    scores = np.random.default_rng(seed).standard_normal((tokens, experts))
    return -scores, np.full(tokens, 1.0 / tokens), np.full(experts, 1.0 / experts)


def _run_pyot(pyot: Any, cost: np.ndarray, a: np.ndarray, b: np.ndarray, reg: float, k: int,
              tol: float, threads: int, repeats: int, budget: float) -> dict[str, Any]:
    n = cost.shape[0]

    def call() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyot.ConvergenceWarning)
            if k >= n:
                return pyot.quadratic_ot(cost, a, b, reg=reg, tol=tol, threads=threads)
            return pyot.sparse_ot(cost, a, b, k=k, reg=reg, tol=tol, threads=threads)

    timing, res = cm.measure(call, repeats, budget)
    return {
        "solver": "pyot", "timing": timing, "quality": quality(res.plan, cost, a, b, reg),
        "n_iter": res.n_iter, "converged": res.converged, "tol": tol,
    }


def _case(ctx: dict[str, Any], n: int, k: int, reg: float, routing: bool = False
          ) -> dict[str, Any]:
    args = ctx["args"]
    cost, a, b = _routing_inputs(args.seed) if routing else _inputs(n, args.seed)
    m = cost.shape[1]
    out: dict[str, Any] = {"n": n, "m": m, "k": k, "reg": reg, "pot": []}
    reused = ctx["pot_json"].get((n, m, k, float(reg)))
    if reused:
        out["pot"] = [r for r in reused if r["solver"].removeprefix("POT ") in args.pot_solvers]
    elif ctx["ot"] is not None and n <= args.pot_max_size:
        for name in args.pot_solvers:
            cm.settle()
            with cm.blas_threads(args.threads):
                out["pot"].append(
                    _run_pot(ctx["ot"], name, cost, a, b, reg, k, args.repeats, args.budget)
                )
    # Same accuracy as the better POT plan (never tighter than 1e-9, the default 1e-6 alone).
    errs = [r["quality"].err for r in out["pot"]]
    tol = max(min(errs), 1e-9) if errs else 1e-6
    cm.settle()
    out["pyot"] = _run_pyot(ctx["pyot"], cost, a, b, reg, k, tol, args.threads, args.repeats,
                            args.budget)
    if routing:  # POT stops far from the marginals there: pyot to 1e-6 as well
        cm.settle()
        out["pyot_tight"] = _run_pyot(ctx["pyot"], cost, a, b, reg, k, 1e-6, args.threads,
                                      args.repeats, args.budget)
    return out


def _row(case: dict[str, Any]) -> list[Any]:
    py = case["pyot"]
    pots = {r["solver"]: r for r in case["pot"]}
    times = [r["timing"].median for r in case["pot"]]
    best = min(times) if times else math.nan
    ratio = best / py["timing"].median if times else math.nan
    m = case.get("m", case["n"])
    size = case["n"] if m == case["n"] else f"{case['n']} x {m}"
    row = [size, "n" if case["k"] >= case["n"] else case["k"], case["reg"],
           f"{cm.fmt_time(py['timing'].median)} ({py['n_iter']})",
           cm.fmt_sci(py["quality"].err), f"{py['quality'].objective:.8g}"]
    for name in POT_SOLVERS:
        r = pots.get(f"POT {name}")
        row += [cm.fmt_time(r["timing"].median), cm.fmt_sci(r["quality"].err),
                f"{r['quality'].objective:.8g}"] if r else ["-", "-", "-"]
    return [*row, cm.fmt_ratio(ratio)]


HEADERS = (
    "n", "k", "reg", "pyot (iters)", "err", "objective", "POT dual", "err", "objective",
    "POT semi-dual", "err", "objective", "ratio",
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    peer = cm.detect_peer("POT", ["ot"], "pot")
    cm.print_header("pyot bench: sparse", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", peer.status()), ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "pyot": pyot, "ot": peer.handles.get("ot") if peer.available else None,
           "pot_json": _load_pot(args.pot_json)}
    if ctx["pot_json"]:
        print(f"POT's side reused from {', '.join(args.pot_json)} where it has the case "
              f"({len(ctx['pot_json'])} cases); POT runs only for the others")
    cases = []
    if args.routing:
        tokens, experts, capacity = ROUTING
        rows = []
        for reg in args.regs:
            cases.append(_case(ctx, tokens, capacity, reg, routing=True))
            rows.append(_row(cases[-1]))
            print(f"  routing reg={reg} done", flush=True)
        cm.print_table(f"routing, {tokens} tokens x {experts} experts, capacity {capacity}: time "
                       "to POT's marginal error (ratio: fastest POT / pyot)", HEADERS, rows,
                       right=[True] * len(HEADERS))
        tight = [[c["reg"], f"{cm.fmt_time(c['pyot_tight']['timing'].median)} "
                  f"({c['pyot_tight']['n_iter']})", cm.fmt_sci(c["pyot_tight"]["quality"].err),
                  f"{c['pyot_tight']['quality'].objective:.8g}",
                  cm.fmt_ratio(min((r["timing"].median for r in c["pot"]), default=math.nan)
                               / c["pyot_tight"]["timing"].median)] for c in cases]
        cm.print_table("routing, pyot to tol = 1e-6 (ratio: fastest POT, at its own error / "
                       "pyot)", ("reg", "pyot (iters)", "err", "objective", "ratio"), tight,
                       right=[True] * 5)
        return {"cases": cases}
    # --quick: the smallest size, quadratic OT only (POT's top-k projection alone takes
    # seconds there).
    for n in args.sizes[:1] if args.quick else args.sizes:
        regs = args.regs[-1:] if args.quick else args.regs
        ks = (n,) if args.quick else tuple(args.ks) + (() if args.no_quadratic else (n,))
        rows = []
        for k, reg in [(k, reg) for reg in regs for k in ks]:
            cases.append(_case(ctx, n, k, reg))
            rows.append(_row(cases[-1]))
            print(f"  n={n} k={k} reg={reg} done", flush=True)
        cm.print_table(f"n = m = {n}: time to POT's marginal error (ratio: fastest POT / pyot)",
                       HEADERS, rows, right=[True] * len(HEADERS))
    return {"cases": cases}
