"""``python -m bench partial``: partial OT, exact and entropic, pyot against POT.

Inputs: n = m points uniform in the unit square and in the square shifted by (0.5, 0.5)
(seeded; the overlap makes the choice of the transported mass matter and the capacities bind),
squared Euclidean cost normalised to max 1, uniform weights, float64, mass 0.7 (``--mass``).

- Exact: ``pyot.partial_ot(C, mass=s)`` against ``ot.partial.partial_wasserstein`` (its
  ``numItermax`` raised to 1e8: the default stops it on these inputs); both solve
  the same augmented problem exactly, so the values must agree to round-off.
- Entropic, for each eps: POT's ``entropic_partial_wasserstein`` runs first (``stopThr``
  1e-9 on its iterates, at most ``--pot-max-iter`` iterations); its plan's L1 distance to a
  reference plan (pyot at tol 1e-13) is the accuracy pyot must reach: pyot's tol (its KKT
  residual, L1 in mass units) starts there and is halved until pyot's plan is at least as
  close to the reference; that run is timed, and both distances are printed.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

SIZES = (500, 2000)
EPSILONS = (0.05, 0.01)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("partial options")
    group.add_argument("--sizes", type=cm.int_list, default=SIZES, help="n = m values (500,2000)")
    group.add_argument("--epsilons", type=cm.float_list, default=EPSILONS, help="eps (0.05,0.01)")
    group.add_argument("--mass", type=float, default=0.7, help="mass to transport (0.7)")
    group.add_argument("--pot-max-iter", type=int, default=2000, help="POT numItermax (2000)")


def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = cm.uniform_points(n, n, 2, seed)
    y = y + 0.5
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return cost / cost.max(), np.full(n, 1.0 / n)


def _exact_case(ctx: dict[str, Any], n: int) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    cost, w = _problem(n, args.seed)
    out: dict[str, Any] = {"n": n}
    cm.settle()
    t, res = cm.measure(lambda: pyot.partial_ot(cost, w, w, mass=args.mass), args.repeats,
                        args.budget)
    out["pyot"] = {**t.as_dict(), "value": res.value}
    if ot is not None:
        cm.settle()
        t, plan = cm.measure(
            lambda: ot.partial.partial_wasserstein(w, w, cost, m=args.mass, numItermax=10**8),
            args.repeats, args.budget,
        )
        out["pot"] = {**t.as_dict(), "value": float((plan * cost).sum())}
    return out


def _entropic_case(ctx: dict[str, Any], n: int, eps: float) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    cost, w = _problem(n, args.seed)
    s = args.mass
    reference = pyot.partial_ot(cost, w, w, mass=s, eps=eps, tol=1e-13, max_iter=100_000).plan
    out: dict[str, Any] = {"n": n, "eps": eps}
    tol = 1e-6
    if ot is not None:
        cm.settle()
        t, plan = cm.measure(
            lambda: ot.partial.entropic_partial_wasserstein(
                w, w, cost, reg=eps, m=s, numItermax=args.pot_max_iter, stopThr=1e-9
            ),
            args.repeats, args.budget,
        )
        finite = bool(np.isfinite(plan).all())
        dist = float(np.abs(plan - reference).sum()) if finite else float("nan")
        out["pot"] = {**t.as_dict(), "l1_to_reference": dist, "finite": finite}
        if finite:
            tol = max(dist, 1e-12)
    # pyot's stopping rule is its KKT residual: halve tol (untimed) until its plan is at least
    # as close to the reference as POT's, then time that tol.
    target = tol
    for _ in range(30):
        trial = pyot.partial_ot(cost, w, w, mass=s, eps=eps, tol=tol, max_iter=100_000).plan
        if float(np.abs(trial - reference).sum()) <= target:
            break
        tol /= 2
    cm.settle()
    t, res = cm.measure(
        lambda: pyot.partial_ot(cost, w, w, mass=s, eps=eps, tol=tol, max_iter=100_000),
        args.repeats, args.budget,
    )
    out["pyot"] = {**t.as_dict(), "tol": tol, "n_iter": res.n_iter,
                   "l1_to_reference": float(np.abs(res.plan - reference).sum())}
    return out


def _ratio(case: dict[str, Any]) -> str:
    pot = case.get("pot")
    if not pot:
        return "-"
    return cm.fmt_ratio(pot["median_s"] / case["pyot"]["median_s"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    peer = cm.detect_peer("POT", ["ot"], "pot")
    cm.print_header("pyot bench: partial", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", peer.status()), ("mass", str(args.mass)),
        ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "pyot": pyot, "ot": peer.handles.get("ot") if peer.available else None}
    sizes = args.sizes[:1] if args.quick else args.sizes
    epsilons = args.epsilons[:1] if args.quick else args.epsilons
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's overflow and iteration notices
        exact = [_exact_case(ctx, n) for n in sizes]
        entropic = [_entropic_case(ctx, n, eps) for n in sizes for eps in epsilons]
    cm.print_table(
        "exact partial OT: median time",
        ["n", "pyot", "POT", "|dvalue|", "POT/pyot"],
        [[str(c["n"]), cm.fmt_time(c["pyot"]["median_s"]),
          cm.fmt_time(c["pot"]["median_s"]) if "pot" in c else "-",
          cm.fmt_sci(abs(c["pyot"]["value"] - c["pot"]["value"])) if "pot" in c else "-",
          _ratio(c)] for c in exact],
        right=[True] * 5,
    )
    cm.print_table(
        "entropic partial OT: median time to POT's accuracy (L1 distance to a converged plan)",
        ["n", "eps", "pyot", "iters", "pyot L1", "POT", "POT L1", "POT/pyot"],
        [[str(c["n"]), str(c["eps"]), cm.fmt_time(c["pyot"]["median_s"]),
          str(c["pyot"]["n_iter"]), cm.fmt_sci(c["pyot"]["l1_to_reference"]),
          cm.fmt_time(c["pot"]["median_s"]) if "pot" in c else "-",
          cm.fmt_sci(c["pot"]["l1_to_reference"]) if "pot" in c else "-", _ratio(c)]
         for c in entropic],
        right=[True] * 8,
    )
    return {"exact": exact, "entropic": entropic}
