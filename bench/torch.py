"""``python -m bench torch``: forward + backward of a Sinkhorn loss between point clouds.

Inputs: n = m points uniform in the unit cube scaled by 1/sqrt(d) (costs O(1) in every
dimension), float32, uniform weights, squared Euclidean cost. One timed call is the loss and
the gradient with respect to x.

- pyot: ``pyot.torch.SinkhornLoss(eps, debias=False)`` (the entropic objective, envelope
  gradient from the core, no n x m array) at ``tol`` (L1 marginal error), and the debiased
  loss (``debias=True``) beside GeomLoss.
- POT: ``ot.solve_sample(x, y, reg=eps, grad="envelope")`` on torch tensors (dense cost) at
  ``stopThr = tol``.
- OTT-JAX: ``jax.grad`` of ``reg_ot_cost`` (implicit differentiation) at ``threshold = tol``.
- GeomLoss: ``SamplesLoss("sinkhorn", p=2, blur=sqrt(eps / 2))`` (its cost is |x - y|^2 / 2),
  tensorized, and online when KeOps is installed; it has no tolerance (eps-scaling 0.9): its
  L1 marginal error (of the cross term's potentials) is reported beside its time.

Peers whose dense n x m float32 arrays would not fit in a quarter of the available memory are
skipped. Times are medians of ``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

SIZES = (1000, 5000, 20000)
DIMS = (3, 64)
EPSILONS = (0.05, 0.01)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(",") if t.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("torch options")
    group.add_argument("--sizes", type=_ints, default=SIZES, help="n = m (1000,5000,20000)")
    group.add_argument("--dims", type=_ints, default=DIMS, help="dimensions (3,64)")
    group.add_argument("--epsilons", type=_floats, default=EPSILONS, help="eps (0.05,0.01)")
    group.add_argument("--tol", type=float, default=1e-3, help="marginal tolerance (1e-3)")
    group.add_argument("--memory", type=int, default=0, metavar="N",
                       help="also run pyot alone at n = m = N, d = 3 in a fresh process and "
                       "report its peak resident memory (the issue's target: N = 100000)")
    group.add_argument("--memory-tol", type=float, default=1e-6,
                       help="tol of the memory run (1e-6, SinkhornLoss's default)")
    group.add_argument("--memory-only", action="store_true",
                       help="skip the timing grid (with --memory)")


def _points(n: int, d: int, seed: int):
    x, y = cm.uniform_points(n, n, d, seed)
    scale = 1.0 / math.sqrt(d)
    return (x * scale).astype(np.float32), (y * scale).astype(np.float32)


def _fits(n: int) -> bool:
    """Whether a peer's dense float32 n x n arrays (a few of them) fit comfortably."""
    avail = cm.memory_available()
    return avail is None or 6 * 4 * n * n < avail // 4


def _pyot(torch, pt, x, y, eps, tol, debias):
    loss_fn = pt.SinkhornLoss(eps, debias=debias, tol=tol, max_iter=100_000)

    def run():
        xt = torch.from_numpy(x).requires_grad_()
        loss = loss_fn(xt, torch.from_numpy(y))
        loss.backward()
        return float(loss), xt.grad

    return run


def _pot(torch, ot, x, y, eps, tol):
    def run():
        xt = torch.from_numpy(x).requires_grad_()
        res = ot.solve_sample(xt, torch.from_numpy(y), reg=eps, grad="envelope", tol=tol,
                              max_iter=100_000)
        res.value.backward()
        return float(res.value), xt.grad

    return run


def _ott(x, y, eps, tol):
    import jax
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    solver = sinkhorn.Sinkhorn(threshold=tol, max_iterations=100_000)

    @jax.jit
    def loss(xa, ya):
        geom = pointcloud.PointCloud(xa, ya, epsilon=eps)
        return solver(linear_problem.LinearProblem(geom)).reg_ot_cost

    grad = jax.jit(jax.value_and_grad(loss))
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def run():
        value, g = grad(xj, yj)
        return float(value), np.asarray(g.block_until_ready())

    return run


def _geomloss(torch, geomloss, x, y, eps, backend):
    loss_fn = geomloss.SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.9,
                                   debias=True, backend=backend)

    def run():
        xt = torch.from_numpy(x).requires_grad_()
        loss = 2 * loss_fn(xt, torch.from_numpy(y))  # its cost is |x - y|^2 / 2
        loss.backward()
        return float(loss), xt.grad

    return run


def _geomloss_error(torch, geomloss, x, y, eps, backend, threads) -> float:
    """GeomLoss's L1 marginal error (it has no tolerance): the cross potentials of the same
    schedule (debias=False), in pyot's convention f = 2F, g = 2G at eps (its cost is
    |x - y|^2 / 2 at blur^2 = eps / 2), the plan's marginals by the core's online plan-vector
    product (no n x m array)."""
    from pyot import _core
    from pyot.costs import METRICS

    fn = geomloss.SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.9,
                              debias=False, potentials=True, backend=backend)
    big_f, big_g = fn(torch.from_numpy(x), torch.from_numpy(y))
    f = 2.0 * big_f.detach().double().numpy().ravel()
    g = 2.0 * big_g.detach().double().numpy().ravel()
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    code = METRICS["sqeuclidean"]
    rows = _core.sinkhorn_plan_matvec(x, y, code, 2.0, a, b, f, g, np.ones(len(y)),
                                      cost_weight=0.0, eps=eps, threads=threads)
    cols = _core.sinkhorn_plan_matvec(y, x, code, 2.0, b, a, g, f, np.ones(len(x)),
                                      cost_weight=0.0, eps=eps, threads=threads)
    return float(np.abs(rows - a).sum() + np.abs(cols - b).sum())


def _case(ctx: dict[str, Any], n: int, d: int, eps: float) -> dict[str, Any]:
    args, torch, pt = ctx["args"], ctx["torch"], ctx["pt"]
    x, y = _points(n, d, args.seed)
    out: dict[str, Any] = {"n": n, "d": d, "eps": eps}
    runs = {"pyot": _pyot(torch, pt, x, y, eps, args.tol, False),
            "pyot_debiased": _pyot(torch, pt, x, y, eps, args.tol, True)}
    if ctx["ot"] is not None and _fits(n):
        runs["pot"] = _pot(torch, ctx["ot"], x, y, eps, args.tol)
    if ctx["ott"] and _fits(n):
        runs["ott"] = _ott(x, y, eps, args.tol)
    if ctx["geomloss"] is not None:
        if _fits(n):
            runs["geomloss"] = _geomloss(torch, ctx["geomloss"], x, y, eps, "tensorized")
        if ctx["keops"]:
            runs["geomloss_online"] = _geomloss(torch, ctx["geomloss"], x, y, eps, "online")
    for name, run in runs.items():
        cm.settle()
        try:
            t, (value, _) = cm.measure(run, args.repeats, args.budget)
            out[name] = {**t.as_dict(), "value": value}
        except Exception as exc:  # a failing peer is reported, not fatal
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
    for name, backend in (("geomloss", "tensorized"), ("geomloss_online", "online")):
        if "median_s" in out.get(name, {}):
            out[name]["marginal_error"] = _geomloss_error(torch, ctx["geomloss"], x, y, eps,
                                                          backend, args.threads)
    return out


# Runs in a fresh interpreter so that the peak resident memory is pyot's alone (the bench
# process holds JAX and the peers).
_MEMORY_SCRIPT = """
import json, sys, time, warnings
import numpy as np, torch
import pyot.torch as pt
from bench import _common as cm
n, d, eps, tol, seed, threads = json.loads(sys.argv[1])
torch.set_num_threads(threads)
x, y = cm.uniform_points(n, n, d, seed)
x = torch.from_numpy((x / d ** 0.5).astype(np.float32)).requires_grad_()
y = torch.from_numpy((y / d ** 0.5).astype(np.float32))
before = cm.peak_rss()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    t0 = time.perf_counter()
    loss = pt.SinkhornLoss(eps, tol=tol, threads=threads)(x, y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
print(json.dumps({"forward_s": t1 - t0, "backward_s": t2 - t1, "seconds": t2 - t0,
                  "peak_rss": cm.peak_rss(), "rss_before": before, "loss": float(loss),
                  "converged": not any("converge" in str(w.message) for w in caught),
                  "grad_finite": bool(torch.isfinite(x.grad).all())}))
"""


def _memory_case(args: argparse.Namespace, n: int, d: int = 3) -> dict[str, Any]:
    """SinkhornLoss (debiased, the default) forward + backward at n = m in a fresh process, at
    eps = the first of --epsilons and tol = --memory-tol (the loss's default 1e-6)."""
    eps = args.epsilons[0]
    spec = json.dumps([n, d, eps, args.memory_tol, args.seed, args.threads])
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, spec], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        return {"n": n, "error": proc.stderr.strip().splitlines()[-1:]}
    return {"n": n, "d": d, "eps": eps, "tol": args.memory_tol,
            **json.loads(proc.stdout.strip().splitlines()[-1])}


def _time(case: dict[str, Any], name: str) -> str:
    entry = case.get(name)
    if not entry:
        return "-"
    return "error" if "error" in entry else cm.fmt_time(entry["median_s"])


def _best_peer_ratio(case: dict[str, Any]) -> str:
    peers = [case[k]["median_s"] for k in ("pot", "ott") if k in case and "median_s" in case[k]]
    if not peers or "median_s" not in case["pyot"]:
        return "-"
    return cm.fmt_ratio(min(peers) / case["pyot"]["median_s"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import pyot.torch as pt

    pyot = cm.import_pyot()
    torch.set_num_threads(args.threads)
    pot = cm.detect_peer("POT", ["ot"], "pot")
    ott = cm.detect_peer("OTT-JAX", ["jax", "ott"], "ott-jax")
    geom = cm.detect_peer("GeomLoss", ["geomloss"], "geomloss")
    keops = cm.detect_peer("KeOps", ["pykeops"], "pykeops", load=False)
    cm.print_header("pyot bench: torch (SinkhornLoss forward + backward, float32)", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("torch", torch.__version__), ("POT", pot.status()), ("OTT-JAX", ott.status()),
        ("GeomLoss", geom.status()), ("KeOps", keops.status()), ("tol", str(args.tol)),
        ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "torch": torch, "pt": pt,
           "ot": pot.handles.get("ot") if pot.available else None,
           "ott": ott.available, "keops": keops.available,
           "geomloss": geom.handles.get("geomloss") if geom.available else None}
    if args.quick:
        grid = [(200, 3, args.epsilons[0])]
    elif args.memory_only:
        grid = []
    else:
        grid = [(n, d, e) for n in args.sizes for d in args.dims for e in args.epsilons]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' convergence notices
        cases = [_case(ctx, n, d, eps) for n, d, eps in grid]
    names = ["pyot", "pot", "ott", "pyot_debiased", "geomloss", "geomloss_online"]
    errs = [cm.fmt_sci(c.get("geomloss", {}).get("marginal_error")) for c in cases]
    if cases:
        cm.print_table(
            "median time of loss + gradient (OT objective: pyot, POT, OTT; debiased: pyot, "
            "GeomLoss)",
            ["n", "d", "eps", *names, "geomloss err", "best peer/pyot"],
            [[str(c["n"]), str(c["d"]), str(c["eps"]), *(_time(c, k) for k in names), e,
              _best_peer_ratio(c)] for c, e in zip(cases, errs, strict=True)],
            right=[True] * (5 + len(names)),
        )
    out: dict[str, Any] = {"cases": cases}
    if args.memory:
        mem = _memory_case(args, args.memory)
        out["memory"] = mem
        print(f"\nmemory: SinkhornLoss (debiased) forward + backward at n = m = {mem['n']}, "
              f"d = 3, eps = {args.epsilons[0]}, tol = {args.memory_tol}: "
              + (f"peak RSS {cm.fmt_bytes(mem['peak_rss'])} (before the loss "
                 f"{cm.fmt_bytes(mem['rss_before'])}), forward {cm.fmt_time(mem['forward_s'])}, "
                 f"backward {cm.fmt_time(mem['backward_s'])}, converged {mem['converged']}"
                 if "peak_rss" in mem else f"failed: {mem['error']}"))
    return out
