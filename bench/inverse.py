"""``python -m bench inverse``: inverse OT (learning a bilinear cost), pyot against a POT loop.

Inputs (seeded): a planted sparse interaction matrix ``A*`` (d_x = d_y = 10, 10 nonzeros of
magnitude 0.2..0.4, random signs), and n matched pairs ``(x_k, y_k)`` drawn from the Gaussian
whose density is proportional to ``exp(x^T A* y / eps) N(x; 0, I) N(y; 0, I)``: exactly the
entropic OT plan of the cost ``-x^T A* y`` between its marginals, so ``A*`` is the truth the
estimator aims at. The observed coupling is the n pairs ``(k, k)``.

- pyot: ``pyot.inverse.fit_cost(x, y, pairs, eps=1, reg_l1=..., tol=...)``.
- POT: the same proximal loop (pyot's ``_fista``: FISTA with backtracking, adaptive restart,
  same first step and stopping rule; same centring and loss definition), each loss evaluation
  a fresh ``ot.sinkhorn(a, b, C, eps, log=True)`` as a user writes it today (``stopThr``
  1e-9, POT's default; the loss from the dual value at POT's scalings); "POT warm" passes the
  previous scalings through ``warmstart=``. Only the Sinkhorn solver differs.

Penalty ``reg_l1 = 2 sqrt(log(d^2) / n)`` (``--reg-scale``). Both fits are timed to the same
outer ``tol``; the final loss ``L(A) + reg ||A||_1`` of each
answer is then recomputed with the same tight Sinkhorn (pyot, tol 1e-12), so "same final loss"
is checked, not assumed. Support recovery: F1 score of ``supp(A_hat)`` against ``supp(A*)``.
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

SIZES = (500, 2000)
DIM = 10
EPS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inverse options")
    group.add_argument("--sizes", type=cm.int_list, default=SIZES, help="n pairs (500,2000)")
    group.add_argument("--tol", type=float, default=1e-6, help="outer FISTA tol (1e-6)")
    group.add_argument(
        "--reg-scale", type=float, default=2.0,
        help="reg_l1 = scale * sqrt(log(d^2) / n) (default 2)",
    )
    group.add_argument(
        "--pot-max-size", type=int, default=2000, help="skip POT above this n (default 2000)"
    )


def planted(d: int, n: int, eps: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A*, x, y)``: a sparse A* and n pairs from its Gaussian entropic plan."""
    rng = np.random.default_rng(seed)
    a_true = np.zeros((d, d))
    idx = rng.choice(d * d, d, replace=False)
    a_true.flat[idx] = rng.choice([-1.0, 1.0], d) * rng.uniform(0.2, 0.4, d)
    precision = np.block([[np.eye(d), -a_true / eps], [-a_true.T / eps, np.eye(d)]])
    z = rng.multivariate_normal(np.zeros(2 * d), np.linalg.inv(precision), size=n)
    return a_true, z[:, :d], z[:, d:]


class PotLoop:
    """Inverse OT the way a user writes it with POT: FISTA over ``ot.sinkhorn``."""

    def __init__(self, ot: Any, x: np.ndarray, y: np.ndarray, eps: float, warm: bool) -> None:
        self.ot, self.eps, self.warm = ot, eps, warm
        n = x.shape[0]
        self.a = self.b = np.full(n, 1.0 / n)
        self.x, self.y = x - x.mean(0), y - y.mean(0)
        self.observed = self.x.T @ self.y / n  # <x y^T, P_hat> for P_hat = I / n
        self.scalings: tuple[np.ndarray, np.ndarray] | None = None
        self.solves = 0

    def objective(self, w: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None]:
        cost = -(self.x @ w) @ self.y.T
        kwargs = {"warmstart": self.scalings} if self.warm and self.scalings else {}
        plan, log = self.ot.sinkhorn(self.a, self.b, cost, self.eps, log=True,
                                     numItermax=100_000, stopThr=1e-9, **kwargs)
        self.solves += 1
        u, v = log["u"], log["v"]
        self.scalings = (np.log(u), np.log(v))
        f, g = self.eps * np.log(u / self.a), self.eps * np.log(v / self.b)
        dual = self.a @ f + self.b @ g - self.eps * (plan.sum() - 1.0)
        loss = -float(np.vdot(w, self.observed)) - dual
        if not gradient:
            return loss, None
        return loss, self.x.T @ (plan @ self.y) - self.observed

    def fit(self, reg: float, tol: float, max_iter: int = 500) -> np.ndarray:
        """pyot's own FISTA loop (``pyot.inverse._fista``: same first step, step growth,
        restarts and stopping rule), driven by this POT objective."""
        from pyot.inverse import _fista

        sx, sy = self.x.T @ self.x / len(self.x), self.y.T @ self.y / len(self.y)
        step = self.eps / (np.linalg.eigvalsh(sx)[-1] * np.linalg.eigvalsh(sy)[-1])
        w0 = np.zeros((self.x.shape[1], self.y.shape[1]))
        return _fista(self.objective, w0, reg, step, max_iter, tol)[0]


def exact_loss(pyot: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray, reg: float,
               eps: float) -> float:
    """``L(A) + reg ||A||_1`` with a tight Sinkhorn: the same yardstick for every answer."""
    n = x.shape[0]
    xc, yc = x - x.mean(0), y - y.mean(0)
    res = pyot.sinkhorn(-(xc @ w) @ yc.T, eps=eps, tol=1e-12, max_iter=1_000_000)
    return -float(np.vdot(w, xc.T @ yc / n)) - res.objective + reg * float(np.abs(w).sum())


def f1(support: np.ndarray, truth: np.ndarray) -> float:
    tp = float((support & truth).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / support.sum(), tp / truth.sum()
    return 2 * precision * recall / (precision + recall)


def _case(ctx: dict[str, Any], n: int) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    a_true, x, y = planted(DIM, n, EPS, args.seed)
    truth = a_true != 0
    reg = args.reg_scale * math.sqrt(math.log(DIM * DIM) / n)
    pairs = np.column_stack([np.arange(n), np.arange(n)])
    out: dict[str, Any] = {"n": n, "reg_l1": reg}
    cm.settle()
    t, res = cm.measure(
        lambda: pyot.inverse.fit_cost(x, y, pairs, eps=EPS, reg_l1=reg, tol=args.tol),
        args.repeats, args.budget,
    )
    out["pyot"] = {**t.as_dict(), "n_iter": res.n_iter, "converged": res.converged,
                   "loss": exact_loss(pyot, x, y, res.weights, reg, EPS),
                   "f1": f1(res.support, truth),
                   "rel_err": float(np.linalg.norm(res.weights - a_true) / np.linalg.norm(a_true))}
    if ot is not None and n <= args.pot_max_size:
        for key, warm in (("pot", False), ("pot_warm", True)):
            loops: list[PotLoop] = []

            def fit(warm: bool = warm, loops: list[PotLoop] = loops) -> np.ndarray:
                loops.append(PotLoop(ot, x, y, EPS, warm))
                return loops[-1].fit(reg, args.tol)

            cm.settle()
            t, w = cm.measure(fit, args.repeats, args.budget)
            out[key] = {**t.as_dict(), "solves": loops[-1].solves,
                        "loss": exact_loss(pyot, x, y, w, reg, EPS),
                        "f1": f1(w != 0, truth),
                        "rel_err": float(np.linalg.norm(w - a_true) / np.linalg.norm(a_true))}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    peer = cm.detect_peer("POT", ["ot"], "pot")
    cm.print_header("pyot bench: inverse", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", peer.status()), ("d_x = d_y", str(DIM)), ("eps", str(EPS)),
        ("tol", str(args.tol)), ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "pyot": pyot, "ot": peer.handles.get("ot") if peer.available else None}
    sizes = (100,) if args.quick else args.sizes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's iteration notices
        with cm.blas_threads(args.threads):  # POT's GEMVs (pyot.inverse limits BLAS itself)
            cases = [_case(ctx, n) for n in sizes]

    def cell(c: dict[str, Any], key: str, field: str, fmt: Any) -> str:
        return fmt(c[key][field]) if key in c else "-"

    def ratio(c: dict[str, Any], key: str) -> str:
        return cm.fmt_ratio(c[key]["median_s"] / c["pyot"]["median_s"]) if key in c else "-"

    cm.print_table(
        "inverse OT, bilinear d = 10: median time to tol, final loss L + reg |A|_1 (recomputed "
        "tightly), support F1",
        ["n", "pyot", "iters", "POT", "POT warm", "POT/pyot", "warm/pyot", "loss pyot",
         "dloss POT", "F1 pyot", "F1 POT"],
        [[str(c["n"]), cm.fmt_time(c["pyot"]["median_s"]), str(c["pyot"]["n_iter"]),
          cell(c, "pot", "median_s", cm.fmt_time), cell(c, "pot_warm", "median_s", cm.fmt_time),
          ratio(c, "pot"), ratio(c, "pot_warm"), f"{c['pyot']['loss']:.9f}",
          cm.fmt_sci(c["pot"]["loss"] - c["pyot"]["loss"]) if "pot" in c else "-",
          f"{c['pyot']['f1']:.2f}", cell(c, "pot", "f1", lambda v: f"{v:.2f}")]
         for c in cases],
        right=[True] * 11,
    )
    return {"cases": cases}
