"""Subprocess worker of ``python -m bench sinkhorn --online``: runs ONE solver on the online
point-cloud problem and prints one JSON line (time, iterations, errors, objective, peak RSS).

Each solver runs in its own process so that ``getrusage``'s peak RSS is that solver's alone
(interpreter, numpy and the solver's own imports included). Not meant to be run by hand::

    python -m bench._online_worker pyot --n=200000 --d=3 --eps=0.01 --tol=1e-6 --budget=900
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

PROBE_ITERS = 3


def _inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    x, y = cm.uniform_points(args.n, args.n, args.d, args.seed)
    s = 1.0 / math.sqrt(cm.max_sqdist(x, y))  # cost normalised to max 1
    return (x * s).astype(args.dtype), (y * s).astype(args.dtype)


def _pyot(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    pyot = cm.import_pyot()
    cloud = pyot.PointCloud(x, y, "sqeuclidean")

    def solve(k: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pyot.ConvergenceWarning)
            return pyot.sinkhorn(
                cloud, eps=args.eps, tol=args.tol, max_iter=k, threads=args.threads
            )

    # Per-iteration time from a probe, on a subsample when n is large (cost ~ n m).
    p = min(args.n, args.probe_n)
    probe_cloud = cloud if p == args.n else pyot.PointCloud(x[:p], y[:p], "sqeuclidean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyot.ConvergenceWarning)
        t_probe, res = cm.timed(
            lambda: pyot.sinkhorn(
                probe_cloud, eps=args.eps, tol=args.tol, max_iter=PROBE_ITERS, threads=args.threads
            )
        )
    per_iter = t_probe / max(1, int(res.n_iter)) * (args.n / p) ** 2
    cap = cm.iteration_cap(per_iter, args.budget, PROBE_ITERS)
    t, res = cm.timed(lambda: solve(cap))
    if args.save:
        np.savez(args.save, f=np.asarray(res.f, np.float64), g=np.asarray(res.g, np.float64))
    return {
        "time_s": t,
        "probe_s": t_probe,
        "probe_n": p,
        "projected_per_iter_s": per_iter,
        "iters": int(res.n_iter),
        "max_iter": cap,
        "per_iter_s": t / max(1, int(res.n_iter)),
        "error": float(res.marginal_error),
        "converged": bool(res.converged),
        "value": float(res.value),
        "objective": float(res.objective),
    }


def _ott(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    warnings.simplefilter("ignore", DeprecationWarning)  # OTT 0.6 uses deprecated JAX internals
    import jax

    jax.config.update("jax_enable_x64", args.dtype == "float64")
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def compile_for(k: int, inner: int, xs=xj, ys=yj):
        solver = sinkhorn.Sinkhorn(
            threshold=args.tol,
            max_iterations=k,
            inner_iterations=inner,
            min_iterations=k if inner == k else 0,
        )

        def fn(xs, ys):
            geom = pointcloud.PointCloud(xs, ys, epsilon=args.eps, batch_size=args.batch_size)
            out = solver(linear_problem.LinearProblem(geom))
            return out.f, out.g, out.n_iters, out.converged, out.errors

        return jax.jit(fn).lower(xs, ys).compile()

    # Probe: k iterations and one error evaluation (about half an iteration), on a subsample
    # when n is large (cost ~ n m); at n itself with --probe-n=n (hours at n = 200,000: k small).
    p = min(args.n, args.probe_n)
    k = args.probe_iters
    xp, yp = (xj, yj) if p == args.n else (xj[:p], yj[:p])
    probe = compile_for(k, k, xp, yp)
    t_probe, _ = cm.timed(lambda: jax.block_until_ready(probe(xp, yp)))
    per_iter = t_probe / (k + 0.5) * (args.n / p) ** 2
    if per_iter * 10 > args.budget:
        # OTT checks its error every 10 iterations: it cannot stop before iteration 10.
        return {
            "status": f"not run: 10 iterations (its first error check) projected at "
            f"{10 * per_iter:.0f} s > budget {args.budget:.0f} s",
            "probe_s": t_probe,
            "probe_n": p,
            "probe_iters": k,
            "projected_per_iter_s": per_iter,
            "min_time_s": 10 * per_iter,
            "batch_size": args.batch_size,
        }
    cap = max(10, cm.iteration_cap(per_iter, args.budget, 10) // 10 * 10)
    t_compile, compiled = cm.timed(lambda: compile_for(cap, 10))
    t, out = cm.timed(lambda: jax.block_until_ready(compiled(xj, yj)))
    f, g, n_iters, converged, errors = (np.asarray(v) for v in out)
    errors = errors[errors >= 0]
    w = np.full(args.n, 1.0 / args.n)
    # OTT's potentials carry eps log a; pyot's convention is P = a b exp((f + g - C) / eps).
    f = f.astype(np.float64) - args.eps * np.log(w)
    g = g.astype(np.float64) - args.eps * np.log(w)
    if args.save:
        np.savez(args.save, f=f, g=g)
    return {
        "time_s": t,
        "probe_s": t_probe,
        "probe_n": p,
        "probe_iters": k,
        "projected_per_iter_s": per_iter,
        "compile_s": t_compile,
        "iters": int(n_iters),
        "max_iter": cap,
        "per_iter_s": t / max(1, int(n_iters)),
        "error": float(errors[-1]) if errors.size else None,
        "converged": bool(converged),
        "objective": float(w @ f + w @ g),  # dual objective, = <P,C> + eps KL(P|ab) at optimum
        "batch_size": args.batch_size,
        "note": "time excludes XLA compilation",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._online_worker")
    p.add_argument("solver", choices=("pyot", "ott"))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--tol", type=float, required=True)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--budget", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--save", default=None)
    p.add_argument("--probe-n", type=int, default=20000, help="probe on a subsample this large")
    p.add_argument(
        "--probe-iters", type=int, default=PROBE_ITERS, help="OTT-JAX probe iterations (3)"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    x, y = _inputs(args)
    out: dict[str, Any] = {"solver": args.solver, "rss_inputs": cm.peak_rss()}
    out.update(_pyot(args, x, y) if args.solver == "pyot" else _ott(args, x, y))
    out["peak_rss"] = cm.peak_rss()
    out["peak_rss_source"] = "VmHWM (/proc/self/status)"
    out["ru_maxrss"] = cm.rusage_maxrss()  # includes the parent's RSS at fork: not used
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
