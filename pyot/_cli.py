"""``python -m pyot solve``: optimal transport between two point files, from the shell.

Points are read from ``.npy``, ``.npz`` (the array named ``x``/``y``/``a``/``b`` if present, else
the first one) or ``.csv`` (comma-separated, no header) files: ``(n, d)`` arrays, or ``(n,)`` for
weights. Every failure (a missing or unreadable file, bad shapes, bad options) prints one line
starting with ``python -m pyot solve:`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SOLVERS = ("sinkhorn", "emd", "unbalanced", "partial", "sliced")
_PROG = "python -m pyot solve"


class CliError(Exception):
    """A user error: reported on one line, exit status 2."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="solve OT between two point files (.npy, .npz, .csv)")
    p.add_argument("x", help="source points, (n, d)")
    p.add_argument("y", help="target points, (m, d)")
    p.add_argument("--solver", choices=SOLVERS, default="sinkhorn", help="default: sinkhorn")
    p.add_argument("--eps", type=float, help="entropic regularization (sinkhorn, unbalanced, "
                   "partial); required for sinkhorn and unbalanced")
    p.add_argument("--a", help="source weights, (n,) (default uniform)")
    p.add_argument("--b", help="target weights, (m,) (default uniform)")
    p.add_argument("--metric", default="sqeuclidean",
                   help="sqeuclidean, euclidean, cityblock, minkowski, cosine")
    p.add_argument("--p", type=float, default=2.0, help="Minkowski exponent / sliced power")
    p.add_argument("--tol", type=float, default=1e-6, help="stopping tolerance (default 1e-6)")
    p.add_argument("--max-iter", type=int, help="iteration cap (default: the solver's)")
    p.add_argument("--reg-marginals", type=float, default=1.0,
                   help="unbalanced: KL penalty of the marginals (default 1)")
    p.add_argument("--mass", type=float, help="partial: mass to transport (required)")
    p.add_argument("--n-projections", type=int, default=100, help="sliced: directions")
    p.add_argument("--seed", type=int, default=0, help="sliced: seed (default 0)")
    p.add_argument("--threads", type=int, help="threads (default: all cores)")
    p.add_argument("--out", help="write the plan (.npz; sparse plans in scipy.sparse format)")


def load_array(path: str, name: str) -> np.ndarray:
    """The array stored in a .npy, .npz or .csv file (``name`` picks one array of a .npz)."""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"{name}: no such file: {path}")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as data:
                if not data.files:
                    raise CliError(f"{name}: {path} holds no array")
                return data[name] if name in data.files else data[data.files[0]]
        if suffix == ".csv":
            return np.loadtxt(file, delimiter=",", ndmin=1)
    except CliError:
        raise
    except (OSError, ValueError) as exc:
        raise CliError(f"{name}: cannot read {path}: {exc}") from exc
    raise CliError(f"{name}: unsupported file type {suffix!r} (use .npy, .npz or .csv)")


def _points(path: str, name: str) -> np.ndarray:
    arr = load_array(path, name)
    return arr[:, None] if arr.ndim == 1 else arr


def _solve(args: argparse.Namespace):
    import pyot

    x, y = _points(args.x, "x"), _points(args.y, "y")
    a = None if args.a is None else load_array(args.a, "a")
    b = None if args.b is None else load_array(args.b, "b")
    common = {"threads": args.threads}
    if args.max_iter is not None:
        common["max_iter"] = args.max_iter
    if args.solver == "sliced":
        return pyot.sliced_wasserstein(x, y, a, b, n_projections=args.n_projections, p=args.p,
                                       seed=args.seed, threads=args.threads)
    cost = pyot.PointCloud(x, y, args.metric, p=args.p)
    if args.solver == "emd":
        return pyot.emd(cost, a, b, **common)
    if args.solver == "partial":
        if args.mass is None:
            raise CliError("--solver partial needs --mass")
        return pyot.partial_ot(cost, a, b, mass=args.mass, eps=args.eps, tol=args.tol, **common)
    if args.eps is None:
        raise CliError(f"--solver {args.solver} needs --eps")
    if args.solver == "unbalanced":
        return pyot.unbalanced_sinkhorn(cost, a, b, eps=args.eps, tol=args.tol,
                                        reg_marginals=args.reg_marginals, **common)
    return pyot.sinkhorn(cost, a, b, eps=args.eps, tol=args.tol, **common)


def _report(res, elapsed: float) -> None:
    print(f"value           {float(np.mean(res.value)):.10g}")
    for field, label in (("n_iter", "iterations"), ("marginal_error", "marginal error")):
        if hasattr(res, field):
            print(f"{label:<15} {getattr(res, field)}")
    if hasattr(res, "converged"):
        print(f"converged       {res.converged}")
    print(f"time            {elapsed:.3f} s")


def _write_plan(res, path: str) -> None:
    import scipy.sparse as sp

    plan = getattr(res, "plan", None)
    if plan is None:
        raise CliError(f"--out: the {type(res).__name__} of this solver has no plan")
    if sp.issparse(plan):
        sp.save_npz(path, sp.csr_array(plan))
    else:
        np.savez_compressed(path, plan=plan)
    print(f"plan written to {path}")


def run(args: argparse.Namespace) -> int:
    """Runs ``solve``; returns the exit status (2 on any user error)."""
    import warnings

    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            res = _solve(args)
        elapsed = time.perf_counter() - start
        _report(res, elapsed)
        if args.out:
            _write_plan(res, args.out)
    except (CliError, ValueError, TypeError) as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    return 0
