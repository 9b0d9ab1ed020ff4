"""``python -m bench torch``: forward + backward of a Sinkhorn loss between point clouds.

Inputs: n = m points uniform in the unit cube scaled by 1/sqrt(d) (costs O(1) in every
dimension), float32, uniform weights, squared Euclidean cost. One timed call is the loss and
the gradient with respect to x.

- pyot: ``pyot.torch.SinkhornLoss(eps, debias=False)`` (the entropic objective, envelope
  gradient from the core, no n x m array) at ``tol`` (L1 marginal error), and the debiased
  loss (``debias=True``) beside GeomLoss.
- POT: ``ot.solve_sample(x, y, reg=eps, grad="envelope")`` on torch tensors (dense cost). POT
  stops on the L2 norm of the column marginal's error (checked every 10 iterations) and
  ``||e||_1 <= sqrt(n) ||e||_2``: it runs at the loosest ``stopThr = tol n^(-k/4)``,
  k = 0, 1, 2, whose L1 error is within ``tol`` (found by untimed solves; ``--pot-l2-tol``
  keeps ``stopThr = tol``).
- OTT-JAX: ``jax.grad`` of ``reg_ot_cost`` (implicit differentiation) at ``threshold = tol``
  (its default L1 error of one marginal).
- GeomLoss: ``SamplesLoss("sinkhorn", p=2, blur=sqrt(eps / 2))`` (its cost is |x - y|^2 / 2),
  tensorized, and online when KeOps is installed; it has no tolerance (eps-scaling 0.9): its
  L1 marginal error (of the cross term's potentials) is reported beside its time.

Every solver's L1 marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1`` is measured the same way
(pyot's convention, from its potentials by the core's online plan-vector product) and printed
beside its time; the ratio column compares pyot with the fastest peer whose error is within
``tol`` (POT and OTT-JAX against the OT objective, GeomLoss against the debiased loss).

Peers whose dense n x m float32 arrays (three to six, ``_DENSE_ARRAYS``) would not fit in
60% of the available memory are skipped, and so is a peer whose time at the previous size, scaled by
(n / n_prev)^2, exceeds ``--peer-limit`` seconds; the table says why. Times are medians of
``--repeats`` runs after a warm-up.
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
    group.add_argument("--pot-l2-tol", action="store_true",
                       help="run POT at stopThr = tol (its L2 criterion) without looking for "
                       "the threshold that reaches pyot's L1 tol")
    group.add_argument("--peers", type=lambda t: tuple(t.split(",")),
                       default=("pot", "ott", "geomloss", "geomloss_online"),
                       help="peers to run (pot,ott,geomloss,geomloss_online)")
    group.add_argument("--peer-limit", type=float, default=120.0, metavar="S",
                       help="skip a peer whose time extrapolated from the previous size exceeds "
                       "S seconds (120)")
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


# float32 n x n arrays a peer holds at once (POT: the cost, -C / eps, the LSE temporaries, the
# plan and the autograd graph of the cost; OTT-JAX: the cost and the LSE temporaries; GeomLoss
# tensorized: three costs and their softmin temporaries).
_DENSE_ARRAYS = {"pot": 6, "ott": 3, "geomloss": 6}


def _memory_reason(name: str, n: int) -> str | None:
    """Why a peer's dense float32 n x n arrays cannot fit in 60% of the available memory."""
    avail = cm.memory_available()
    need = _DENSE_ARRAYS[name] * 4 * n * n
    if avail is None or need < 0.6 * avail:
        return None
    return f"skipped: ~{cm.fmt_bytes(need)} of n x n arrays, {cm.fmt_bytes(avail)} free"


def _marginal_error(x, y, f, g, eps: float, threads: int) -> float:
    """L1 marginal error of the plan P_ij = a_i b_j exp((f_i + g_j - |x_i - y_j|^2) / eps)
    (uniform weights, pyot's potentials), by the core's online plan-vector product."""
    from pyot import _core
    from pyot.costs import METRICS

    f = np.ascontiguousarray(f, dtype=np.float64).ravel()
    g = np.ascontiguousarray(g, dtype=np.float64).ravel()
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    code = METRICS["sqeuclidean"]
    rows = _core.sinkhorn_plan_matvec(x, y, code, 2.0, a, b, f, g, np.ones(len(y)),
                                      cost_weight=0.0, eps=eps, threads=threads)
    cols = _core.sinkhorn_plan_matvec(y, x, code, 2.0, b, a, g, f, np.ones(len(x)),
                                      cost_weight=0.0, eps=eps, threads=threads)
    return float(np.abs(rows - a).sum() + np.abs(cols - b).sum())


def _pyot(torch, pt, x, y, eps, tol, debias):
    loss_fn = pt.SinkhornLoss(eps, debias=debias, tol=tol, max_iter=100_000)

    def run():
        xt = torch.from_numpy(x).requires_grad_()
        loss = loss_fn(xt, torch.from_numpy(y))
        loss.backward()
        return float(loss), xt.grad

    return run


def _pyot_potentials(torch, pt, x, y, eps, tol):
    """pyot's potentials of the same solve (the cross term of the debiased loss too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pt.sinkhorn(pt.PointCloud(torch.from_numpy(x), torch.from_numpy(y)), eps=eps,
                          tol=tol, max_iter=100_000)
    return res.f.double().numpy(), res.g.double().numpy()


def _pot(torch, ot, x, y, eps, tol):
    def run():
        xt = torch.from_numpy(x).requires_grad_()
        res = ot.solve_sample(xt, torch.from_numpy(y), reg=eps, grad="envelope", tol=tol,
                              max_iter=100_000)
        res.value.backward()
        return float(res.value), xt.grad

    return run


def _pot_potentials(torch, ot, x, y, eps, tol):
    """POT's sinkhorn_log potentials in pyot's convention: P = exp(-C / eps + u_i + v_j) with
    u = log_u, so f = eps (u - log a), g = eps (v - log b)."""
    res = ot.solve_sample(torch.from_numpy(x), torch.from_numpy(y), reg=eps, tol=tol,
                          max_iter=100_000)  # float32, as timed
    u, v = (p.detach().double().numpy() for p in res.potentials)
    return eps * (u + math.log(len(x))), eps * (v + math.log(len(y)))


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

    @jax.jit
    def potentials(xa, ya):
        geom = pointcloud.PointCloud(xa, ya, epsilon=eps)
        out = solver(linear_problem.LinearProblem(geom))
        return out.f, out.g

    def pots():
        """OTT's potentials in pyot's convention: P = exp((f + g - C) / eps) there."""
        f, g = potentials(xj, yj)
        return (np.asarray(f, dtype=np.float64) + eps * math.log(len(x)),
                np.asarray(g, dtype=np.float64) + eps * math.log(len(y)))

    run.potentials = pots  # type: ignore[attr-defined]
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
    |x - y|^2 / 2 at blur^2 = eps / 2)."""
    fn = geomloss.SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.9,
                              debias=False, potentials=True, backend=backend)
    big_f, big_g = fn(torch.from_numpy(x), torch.from_numpy(y))
    f = 2.0 * big_f.detach().double().numpy().ravel()
    g = 2.0 * big_g.detach().double().numpy().ravel()
    return _marginal_error(x, y, f, g, eps, threads)


_OBJECTIVE_PEERS = ("pot", "ott")  # against pyot's OT objective
_DEBIASED_PEERS = ("geomloss", "geomloss_online")  # against pyot's debiased loss


def _skip_reason(ctx: dict[str, Any], name: str, n: int, d: int, eps: float) -> str | None:
    """Why a peer does not run at this size (memory, or its time extrapolated from the last
    size it ran at in the same (d, eps) exceeding --peer-limit), or None."""
    if name in _DENSE_ARRAYS:
        reason = _memory_reason(name, n)
        if reason:
            return reason
    last = ctx["last"].get((name, d, eps))
    if last is not None:
        n0, t0 = last
        estimate = t0 * (n / n0) ** 2
        if estimate > ctx["args"].peer_limit:
            return f"skipped: ~{cm.fmt_time(estimate)} a call (from n = {n0})"
    return None


def _case(ctx: dict[str, Any], n: int, d: int, eps: float) -> dict[str, Any]:
    args, torch, pt = ctx["args"], ctx["torch"], ctx["pt"]
    x, y = _points(n, d, args.seed)
    out: dict[str, Any] = {"n": n, "d": d, "eps": eps}
    runs: dict[str, Any] = {"pyot": _pyot(torch, pt, x, y, eps, args.tol, False),
                            "pyot_debiased": _pyot(torch, pt, x, y, eps, args.tol, True)}
    pyot_error: list[float] = []  # measured once: the debiased loss has the same cross solve

    def pyot_err() -> float:
        if not pyot_error:
            pots = _pyot_potentials(torch, pt, x, y, eps, args.tol)
            pyot_error.append(_marginal_error(x, y, *pots, eps, args.threads))
        return pyot_error[0]

    errors: dict[str, Any] = {"pyot": pyot_err, "pyot_debiased": pyot_err}
    peers: dict[str, Any] = {}
    if ctx["ot"] is not None:
        ot = ctx["ot"]

        def pot_error(thr: float) -> float:
            pots = _pot_potentials(torch, ot, x, y, eps, thr)
            return _marginal_error(x, y, *pots, eps, args.threads)

        def pot_run():
            # The loosest stopThr = tol n^(-k/4), k = 0, 1, 2, whose L1 error is within tol
            # (from the k of the previous size: the L1 / L2 ratio grows with n).
            first = ctx["pot_k"].get((d, eps), 0)
            for k in range(first, 1 if args.pot_l2_tol else 3):
                thr = args.tol * n ** (-k / 4)
                if pot_error(thr) <= args.tol:
                    break
            ctx["pot_k"][(d, eps)] = k
            out["pot_stop_thr"] = thr
            return _pot(torch, ot, x, y, eps, thr)

        peers["pot"] = (pot_run, lambda: pot_error(out["pot_stop_thr"]))
    if ctx["ott"]:
        peers["ott"] = (lambda: _ott(x, y, eps, args.tol), None)
    if ctx["geomloss"] is not None:
        gl = ctx["geomloss"]
        for name, backend in (("geomloss", "tensorized"), ("geomloss_online", "online")):
            if backend == "online" and not ctx["keops"]:
                continue
            peers[name] = (
                lambda backend=backend: _geomloss(torch, gl, x, y, eps, backend),
                lambda backend=backend: _geomloss_error(torch, gl, x, y, eps, backend,
                                                        args.threads))
    for name, (make, error) in peers.items():
        reason = "skipped: --peers" if name not in args.peers else _skip_reason(
            ctx, name, n, d, eps)
        if reason:
            out[name] = {"skipped": reason}
            continue
        try:
            runs[name] = make()
        except Exception as exc:  # a failing peer is reported, not fatal
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
            continue
        errors[name] = error if error is not None else (
            lambda run=runs[name]: _marginal_error(x, y, *run.potentials(), eps, args.threads))
    for name, run in runs.items():
        cm.settle()
        try:
            t, (value, _) = cm.measure(run, args.repeats, args.budget)
            out[name] = {**t.as_dict(), "value": value}
            ctx["last"][(name, d, eps)] = (n, t.median)
        except Exception as exc:  # a failing peer is reported, not fatal
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
            continue
        try:
            out[name]["marginal_error"] = errors[name]()
        except Exception as exc:
            out[name]["marginal_error_failed"] = f"{type(exc).__name__}: {exc}"[:120]
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


def _cell(case: dict[str, Any], name: str, with_error: bool = True) -> str:
    """A solver's median time and, in parentheses, its L1 marginal error."""
    entry = case.get(name)
    if not entry:
        return "-"
    if "skipped" in entry:
        return entry["skipped"].replace("skipped: ", "skip: ")
    if "error" in entry:
        return "failed"
    text = cm.fmt_time(entry["median_s"])
    if with_error and entry.get("marginal_error") is not None:
        text += f" ({cm.fmt_sci(entry['marginal_error'])})"
    return text


def _reached(case: dict[str, Any], name: str, tol: float) -> bool:
    entry = case.get(name, {})
    err = entry.get("marginal_error")
    return "median_s" in entry and err is not None and err <= tol


def best_peer(case: dict[str, Any], tol: float) -> tuple[str, float] | None:
    """The peer with the largest speed-up over pyot among those whose marginal error is within
    tol: (name, peer time / pyot time), POT and OTT-JAX against pyot's objective, GeomLoss
    against pyot's debiased loss."""
    best = None
    for mine, group in (("pyot", _OBJECTIVE_PEERS), ("pyot_debiased", _DEBIASED_PEERS)):
        if "median_s" not in case.get(mine, {}):
            continue
        for name in group:
            if _reached(case, name, tol):
                ratio = case[name]["median_s"] / case[mine]["median_s"]
                if best is None or ratio < best[1]:
                    best = (name, ratio)
    return best


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
    ctx["last"], ctx["pot_k"] = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' convergence notices
        cases = [_case(ctx, n, d, eps) for n, d, eps in grid]
    labels = {"pot": "POT", "ott": "OTT", "geomloss": "GeomLoss", "geomloss_online": "GL online"}
    for case in cases:
        best = best_peer(case, args.tol)
        case["best_peer"] = None if best is None else {"name": best[0], "ratio": best[1]}
    if cases:
        online = ["geomloss_online"] if keops.available else []
        cm.print_table(
            f"median time of loss + gradient (L1 marginal error); OT objective: pyot, POT, OTT; "
            f"debiased: pyot, GeomLoss; best = the fastest peer within tol = {args.tol}",
            ["n", "d", "eps", "pyot", "POT", "OTT", "best/pyot", "pyot debiased", "GeomLoss",
             *(["GL online"] if online else [])],
            [[str(c["n"]), str(c["d"]), str(c["eps"]), _cell(c, "pyot"), _cell(c, "pot"),
              _cell(c, "ott"),
              "-" if c["best_peer"] is None else
              f"{cm.fmt_ratio(c['best_peer']['ratio'])} ({labels[c['best_peer']['name']]})",
              _cell(c, "pyot_debiased", with_error=False), _cell(c, "geomloss"),
              *(_cell(c, k) for k in online)] for c in cases],
            right=[True] * (9 + len(online)),
        )
        if not keops.available:
            print("GeomLoss online (KeOps) not installed: its tensorized backend only.")
        if not args.pot_l2_tol:
            print("POT at the loosest stopThr = tol n^(-k/4), k = 0, 1, 2 (its L2 criterion) "
                  "whose L1 error is within tol; --pot-l2-tol for stopThr = tol.")
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
