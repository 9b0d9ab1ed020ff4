"""``python -m bench sinkhorn``: entropic OT, pyot against POT, OTT-JAX and GeomLoss.

For every case (n = m, d, eps, dtype) all solvers get the same inputs: points uniform in the
unit cube (seeded), ``C = cost_matrix(x, y, "sqeuclidean") / C.max()``, uniform weights; float32
cases pass float32 arrays to every solver. Each solver runs to the same tolerance on the L1
marginal error, with an iteration cap set from a short probe run so that one run stays within
``--budget`` seconds. Afterwards the returned plan (or the plan rebuilt from the returned
potentials) is checked here, in float64, the same way for everyone: both marginal errors, NaN,
``<P, C>`` against a reference (pyot, ``method="log"``, ``tol=1e-10``, float64).

Then pyot's per-iteration time for ``method="log"`` and ``method="scaling"`` is put against the
machine's bound (exp throughput and read bandwidth, measured at the start of the run): the log
domain against 2nm exp at the rate of the lanes it uses (at the table's tol = 0 double lanes for
both dtypes; float32 costs run float lanes at tol >= 1e-6, timed in a row of their own at tol =
1e-6 and eps = ``--bound-eps-float-lanes``, below the iteration they converge at), the scaling
domain against the reads of K it does (one per iteration from 256 rows on, the fused
row pass) in the dtype K is stored in (double unless tol >= 1e-7 for a float32 cost: at the
table's tol = 0 the float32 rows read a double K). Each row's model is in the JSON
(``bound_model``).

``--online`` runs the separate point-cloud entry: n = m = 200,000, d = 3, eps = 0.01 through
``pyot.PointCloud`` in a subprocess (time and peak RSS), against OTT-JAX's
``PointCloud(batch_size=...)`` in its own subprocess. OTT-JAX takes hours at that size: its time
per iteration is measured at n over ``--online-ott-probe-iters`` iterations, both solvers also run
to tol at ``--online-ref-n`` (20,000), and the time at n is projected as (per iteration at n) x
(iterations at n_ref), printed beside pyot's measured time.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import _common as cm

# JAX must not look for accelerators (and must be told before it is imported).
os.environ.setdefault("JAX_PLATFORMS", "cpu")

SIZES = (1000, 4000, 10000)
DIMS = (2, 64)
EPSILONS = (0.1, 0.01, 0.001)
DTYPES = ("float64", "float32")
PEERS = ("pot", "pot-log", "ott", "geomloss")
PEER_LABELS = {
    "pot": 'POT sinkhorn (method="sinkhorn")',
    "pot-log": 'POT sinkhorn (method="sinkhorn_log")',
    "ott": "OTT-JAX Sinkhorn (lse_mode)",
    "geomloss": "GeomLoss SamplesLoss (tensorized)",
}
PROBE_ITERS = 20  # iterations of the short run that sets each solver's iteration cap
MEMORY_FACTOR = 7  # n x m arrays alive at once in the worst peer (C, K or logT, temporaries, plan)


# ---------------------------------------------------------------------------------------------
# Command line


def _names(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(t.strip() for t in text.split(",") if t.strip())
        bad = [t for t in names if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
        return names

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sinkhorn options")
    g.add_argument(
        "--sizes", type=cm.int_list, default=None, help="n = m values (default 1000,4000,10000)"
    )
    g.add_argument("--dims", type=cm.int_list, default=None, help="point dimensions (default 2,64)")
    g.add_argument(
        "--eps", type=cm.float_list, default=None, help="eps values (default 0.1,0.01,0.001)"
    )
    g.add_argument(
        "--dtypes", type=_names(DTYPES), default=None, help="float64,float32 (default both)"
    )
    g.add_argument(
        "--peers",
        type=_names(PEERS),
        default=PEERS,
        help=f"peers to run (default {','.join(PEERS)}); missing ones are reported and skipped",
    )
    g.add_argument(
        "--pyot-methods",
        type=_names(("auto", "log", "scaling")),
        default=None,
        help="pyot methods timed to tol (default auto,log,scaling; --quick: auto); ratios are "
        "against auto",
    )
    g.add_argument("--tol", type=float, default=1e-6, help="L1 marginal tolerance (default 1e-6)")
    g.add_argument(
        "--tol-float32",
        type=float,
        default=None,
        help="tolerance for the float32 cases (default: --tol)",
    )
    g.add_argument(
        "--tol-slack",
        type=float,
        default=2.0,
        help="a run 'reaches tol' when its recomputed error <= slack * tol (default 2: the "
        "solvers' own stopping tests differ)",
    )
    g.add_argument("--ref-tol", type=float, default=1e-10, help="reference tolerance (1e-10)")
    g.add_argument(
        "--no-ref-warm-start",
        action="store_true",
        help="solve the reference from scratch, not warm-started from pyot method='auto'",
    )
    g.add_argument("--skip-bounds", action="store_true", help="skip the per-iteration table")
    g.add_argument(
        "--bounds-only", action="store_true", help="only the per-iteration table (no peers)"
    )
    g.add_argument(
        "--bound-eps", type=float, default=0.1, help="eps of the per-iteration runs (0.1)"
    )
    g.add_argument(
        "--bound-eps-float-lanes",
        type=float,
        default=0.01,
        help="eps of the float32 float-lane log row (tol 1e-6; 0.01: tens of iterations)",
    )
    g.add_argument(
        "--bound-iters",
        type=cm.int_list,
        default=(10,),
        help="K1[,K2]: per-iteration time = (t(K2) - t(K1)) / (K2 - K1); default K1=10 and K2 "
        "chosen so that the difference is ~0.3 s",
    )
    o = parser.add_argument_group("online point-cloud entry (--online)")
    o.add_argument("--online", action="store_true", help="run the online point-cloud entry only")
    o.add_argument("--online-n", type=int, default=None, help="n = m (default 200000; quick 10000)")
    o.add_argument("--online-d", type=int, default=3)
    o.add_argument("--online-eps", type=float, default=0.01)
    o.add_argument("--online-tol", type=float, default=None, help="default: --tol")
    o.add_argument("--online-dtype", choices=DTYPES, default="float64")
    o.add_argument(
        "--online-budget",
        type=float,
        default=None,
        help="wall budget per solver, seconds (default 1800; quick: --budget)",
    )
    o.add_argument("--online-batch", type=int, default=2048, help="OTT-JAX batch_size (2048)")
    o.add_argument("--online-rss-mb", type=float, default=500.0, help="peak-RSS target, MB")
    o.add_argument(
        "--online-ott-probe-iters",
        type=int,
        default=3,
        help="iterations of OTT-JAX's per-iteration probe at --online-n (default 3)",
    )
    o.add_argument(
        "--online-ref-n",
        type=int,
        default=None,
        help="reference size for iteration counts (default 20000; quick: off; 0: off): each "
        "solver also runs to tol at n = m = this, and its time at --online-n is projected as its "
        "per-iteration time measured at --online-n times its iterations at this size",
    )
    o.add_argument(
        "--online-verify-max",
        type=int,
        default=20000,
        help="recompute the marginal errors from the potentials up to this n (default 20000)",
    )


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    solver: str
    label: str
    dtype: str
    status: str = ""
    timing: cm.Timing | None = None
    iters: int | None = None
    cap: int | None = None
    stats: cm.PlanStats | None = None
    self_err: float | None = None
    value_err: float | None = None
    reached: bool = False
    hit_cap: bool = False
    numerical_trouble: bool = False
    comparable: bool = True
    compile_s: float | None = None
    ratio: float | None = None
    history: list[float] = field(default_factory=list)  # the solver's own error at its checks
    notes: list[str] = field(default_factory=list)

    @property
    def time(self) -> float | None:
        return self.timing.median if self.timing is not None else None

    @property
    def ran(self) -> bool:
        return self.timing is not None

    @property
    def stagnating(self) -> bool:
        """Its own error fell by less than 10% over the second half of its (>= 10) checks."""
        h = [e for e in self.history if math.isfinite(e)]
        return len(h) >= 10 and h[-1] > 0.9 * h[len(h) // 2]

    @property
    def failed(self) -> bool:
        """Returned NaN/inf, overflowed or stagnated without reaching tol (the cases where the
        10x target applies). A run that merely hit its budget cap while still converging is
        'stalled (max_iter)' but not failed."""
        if not self.ran or self.reached or not self.comparable or self.stats is None:
            return False
        return not self.stats.finite or self.numerical_trouble or self.stagnating

    def as_dict(self) -> dict[str, Any]:
        st = self.stats
        return {
            "solver": self.solver,
            "label": self.label,
            "dtype": self.dtype,
            "status": self.status,
            "time_s": self.time,
            "timing": self.timing.as_dict() if self.timing else None,
            "compile_s": self.compile_s,
            "iters": self.iters,
            "max_iter": self.cap,
            "err_a": st.err_a if st else None,
            "err_b": st.err_b if st else None,
            "marginal_error": st.err if st else None,
            "self_reported_error": self.self_err,
            "value": st.value if st else None,
            "objective": st.objective if st else None,
            "abs_value_minus_ref": self.value_err,
            "finite": st.finite if st else None,
            "reached_tol": self.reached,
            "hit_max_iter": self.hit_cap,
            "numerical_trouble": self.numerical_trouble,
            "same_stopping_rule": self.comparable,
            "ratio_to_pyot": self.ratio,
            "notes": self.notes,
        }


@dataclass
class Case:
    n: int
    d: int
    eps: float
    dtype: str
    tol: float
    cost: np.ndarray  # normalised, in the case dtype
    a: np.ndarray
    b: np.ndarray
    x: np.ndarray  # points scaled so that ||x - y||^2 / 2 = C (GeomLoss's cost), case dtype
    y: np.ndarray

    @property
    def name(self) -> str:
        return f"n={self.n} d={self.d} eps={self.eps:g} {self.dtype}"


def _classify(row: Row, case: Case, slack: float) -> None:
    st = row.stats
    if st is None:
        return
    row.reached = st.finite and st.err <= slack * case.tol
    if not st.finite:
        row.status = "NaN/inf"
    elif row.reached:
        row.status = "reached tol"
    elif row.hit_cap:
        row.status = "stalled (max_iter)" + (", stagnating" if row.stagnating else "")
    else:
        row.status = "stopped above tol"
    if row.numerical_trouble and st.finite:
        row.status += ", overflow"
    if not row.comparable:
        row.status += " [different stopping rule]"


def _note_warnings(row: Row, caught: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for cat, msg in caught:
        low = msg.lower()
        if "overflow" in low or "numerical errors" in low or "divide by zero" in low:
            row.numerical_trouble = True
        key = f"{cat}: {msg}"[:120]
        if key not in seen and "did not converge" not in low and "max_iter" not in low:
            seen.add(key)
            row.notes.append(key)


# ---------------------------------------------------------------------------------------------
# Solvers. Each returns a Row; none raises.


def _probe_per_iter(run: Callable[[int], tuple[float, int]], budget: float) -> float:
    """Seconds per iteration from short runs: (t(2P) - t(P)) / P when cheap, else t(P) / P."""
    t1, it1 = run(PROBE_ITERS)
    if t1 * 4 > budget:
        return t1 / max(1, it1)
    t2, it2 = run(2 * PROBE_ITERS)
    if it2 > it1 and t2 > t1:
        return (t2 - t1) / (it2 - it1)
    return t2 / max(1, it2)


def _measure_capped(
    make: Callable[[int], Callable[[], Any]],
    cap: int,
    hit: Callable[[Any, int], bool],
    repeats: int,
    budget: float,
    step: int = 1,
) -> tuple[cm.Timing, Any, int]:
    """Time ``make(cap)()``; if the run hit its cap in under half the budget (the probe
    overestimated the per-iteration time, e.g. under load), raise the cap to fill the budget
    and time again, once. Returns the timing, the last output and the cap used."""
    timing, out = cm.measure(make(cap), repeats, budget)
    if hit(out, cap) and timing.median < 0.5 * budget:
        grown = int(cap * min(10.0, 0.9 * budget / max(timing.median, 1e-9))) // step * step
        if grown > cap:
            cap = grown
            timing, out = cm.measure(make(cap), repeats, budget)
    return timing, out, cap


class PyotSolver:
    def __init__(self, pyot: Any, threads: int) -> None:
        self.pyot = pyot
        self.threads = threads

    def solve(self, cost: Any, a: Any, b: Any, eps: float, tol: float, max_iter: int, **kw: Any):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.pyot.ConvergenceWarning)
            return self.pyot.sinkhorn(
                cost, a, b, eps=eps, tol=tol, max_iter=max_iter, threads=self.threads, **kw
            )

    def run(self, case: Case, method: str, repeats: int, budget: float) -> Row:
        row = Row(f"pyot-{method}", f'pyot (method="{method}")', case.dtype)
        args = (case.cost, case.a, case.b, case.eps, case.tol)
        try:

            def probe(k: int) -> tuple[float, int]:
                t, res = cm.timed(lambda: self.solve(*args, max_iter=k, method=method))
                return t, int(res.n_iter)

            row.cap = cm.iteration_cap(_probe_per_iter(probe, budget), budget, 2 * PROBE_ITERS)
            with cm.recorded_warnings() as caught:
                row.timing, res, row.cap = _measure_capped(
                    lambda k: lambda: self.solve(*args, max_iter=k, method=method),
                    row.cap,
                    lambda res, k: not bool(res.converged),
                    repeats,
                    budget,
                )
            _note_warnings(row, caught)
            row.iters = int(res.n_iter)
            row.hit_cap = not bool(res.converged)
            row.self_err = float(res.marginal_error)
            row.stats = cm.plan_stats(res.plan, case.cost, case.a, case.b, case.eps)
            _pyot_consistency(row, res, case)
        except Exception as exc:  # a failing solver is a row, not a crash
            row.status = f"error: {type(exc).__name__}: {exc}"[:160]
            row.notes.append(traceback.format_exc(limit=3))
        return row


def _pyot_consistency(row: Row, res: Any, case: Case) -> None:
    """Flag pyot reports that disagree with the plan it returns."""
    st = row.stats
    if st is None or not st.finite:
        return
    rtol = 1e-4 if case.dtype == "float32" else 1e-8
    value = float(res.value)
    if abs(value - st.value) > rtol * max(1e-300, abs(st.value)) + 1e-12:
        row.notes.append(f"pyot .value={value:.10g} but <P,C> of .plan = {st.value:.10g}")
    if bool(res.converged) and st.err > 10 * max(case.tol, row.self_err or 0.0):
        row.notes.append(
            f"pyot says converged (marginal_error={row.self_err:.2e}) but the plan's "
            f"||P1-a||_1+||P'1-b||_1 = {st.err:.2e}"
        )
    objective = getattr(res, "objective", None)
    if objective is not None and st.err < 1e-6:
        if abs(float(objective) - st.objective) > 1e-5 * max(1.0, abs(st.objective)):
            row.notes.append(
                f"pyot .objective={float(objective):.10g} vs <P,C>+eps KL(P|ab) = "
                f"{st.objective:.10g}"
            )


def run_pot(
    ot: Any, case: Case, method: str, threads: int, repeats: int, budget: float, slack: float
) -> Row:
    """POT's ``ot.sinkhorn``. POT stops on the L2 norm of the b-marginal error, checked every 10
    iterations; ``stopThr`` is set to ``tol * ||e||_2 / ||e||_1`` with ``e`` measured on the probe
    run, so that POT stops near the same L1 error as the others."""
    key = "pot" if method == "sinkhorn" else "pot-log"
    row = Row(key, PEER_LABELS[key], case.dtype)
    C, a, b, eps = case.cost, case.a, case.b, case.eps

    def solve(k: int, thr: float):
        return ot.sinkhorn(a, b, C, eps, method=method, numItermax=k, stopThr=thr, log=True)

    try:
        with cm.blas_threads(threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe_plan: list[Any] = []

            def probe(k: int) -> tuple[float, int]:
                t, (plan, log) = cm.timed(lambda: solve(k, case.tol))
                probe_plan[:] = [plan]
                return t, int(log["niter"]) + 1

            row.cap = cm.iteration_cap(_probe_per_iter(probe, budget), budget, 2 * PROBE_ITERS)
            e = np.asarray(probe_plan[0], np.float64).sum(axis=0) - np.asarray(b, np.float64)
            l1, l2 = float(np.abs(e).sum()), float(np.sqrt(np.sum(e * e)))
            ratio = l1 / l2 if l2 > 0 and math.isfinite(l1 / l2) else math.sqrt(len(b))
            ratio = min(max(ratio, 1.0), math.sqrt(len(b)))
            stop_thr = case.tol / ratio
            row.notes.append(f"stopThr={stop_thr:.2e} (L2 threshold ~ L1 tol)")
        with cm.blas_threads(threads), cm.recorded_warnings() as caught:
            row.timing, (plan, log), row.cap = _measure_capped(
                lambda k: lambda: solve(k, stop_thr),
                row.cap,
                lambda out, k: int(out[1]["niter"]) + 1 >= k,
                repeats,
                budget,
            )
        _note_warnings(row, caught)
        row.iters = int(log["niter"]) + 1
        row.hit_cap = row.iters >= row.cap
        row.history = [float(e) for e in log.get("err", [])]
        row.self_err = row.history[-1] if row.history else math.nan
        row.stats = cm.plan_stats(plan, C, a, b, eps)
        del plan
        # POT's own test can sit below its float32 noise floor (the L2 error of a float32
        # marginal sum), so it may run to the cap long after the L1 error was below tol: then
        # time it to the first check where its error history says it was (L2 * ratio <= tol).
        first = _pot_first_check(row.history, ratio, case.tol)
        if row.hit_cap and first is not None and first < row.iters:
            with cm.blas_threads(threads), cm.recorded_warnings() as caught:
                timing, (plan, log) = cm.measure(lambda: solve(first, 0.0), repeats, budget)
            stats = cm.plan_stats(plan, C, a, b, eps)
            del plan
            if stats.finite and stats.err <= slack * case.tol:
                row.notes.append(
                    f"own stopThr not met by iteration {row.iters} (its float noise floor); "
                    f"timed to iteration {first}, where its error history reached tol or "
                    "flattened near it, and checked there"
                )
                row.timing, row.stats, row.iters, row.hit_cap = timing, stats, first, False
    except Exception as exc:
        row.status = f"error: {type(exc).__name__}: {exc}"[:160]
    return row


def _pot_first_check(history: list[float], ratio: float, tol: float) -> int | None:
    """Iterations POT needed by its own error history (checked every 10 iterations): the first
    check whose L1 estimate (L2 * ratio) is below tol, else the first check where the error
    flattened (fell by less than 30% in 10 iterations) within 10x of tol -- its float noise
    floor. The caller verifies the plan at that iteration count."""
    est = [e * ratio for e in history]
    for i, e in enumerate(est):
        if e <= tol:
            return 10 * i + 1
    for i in range(1, len(est)):
        if est[i] <= 10 * tol and est[i] > 0.7 * est[i - 1]:
            return 10 * i + 1
    return None


def run_ott(handles: dict[str, Any], case: Case, repeats: int, budget: float) -> Row:
    """OTT-JAX ``Sinkhorn`` (lse_mode, L1 error of one marginal checked every 10 iterations) on a
    dense ``Geometry``; compiled ahead of time, so the reported time excludes compilation
    (reported separately)."""
    row = Row("ott", PEER_LABELS["ott"], case.dtype)
    jax = handles["jax"]
    jnp = jax.numpy
    geometry = handles["ott.geometry.geometry"]
    linear_problem = handles["ott.problems.linear.linear_problem"]
    sinkhorn = handles["ott.solvers.linear.sinkhorn"]
    eps, tol = case.eps, case.tol

    def compile_for(k: int):
        solver = sinkhorn.Sinkhorn(threshold=tol, max_iterations=k)

        def fn(C, a, b):
            geom = geometry.Geometry(cost_matrix=C, epsilon=eps)
            out = solver(linear_problem.LinearProblem(geom, a=a, b=b))
            return out.f, out.g, out.n_iters, out.errors

        return jax.jit(fn).lower(C_j, a_j, b_j).compile()

    try:
        C_j, a_j, b_j = (jnp.asarray(v) for v in (case.cost, case.a, case.b))
        if C_j.dtype != case.cost.dtype:
            raise RuntimeError(f"JAX turned {case.dtype} into {C_j.dtype} (jax_enable_x64 off?)")
        ex = jax.block_until_ready

        def probe(k: int) -> tuple[float, int]:
            compiled = compile_for(k)
            ex(compiled(C_j, a_j, b_j))
            t, out = cm.timed(lambda: ex(compiled(C_j, a_j, b_j)))
            return t, int(out[2])

        t_iter = probe(5 * PROBE_ITERS // 2)
        t_iter = t_iter[0] / max(1, t_iter[1])
        row.cap = max(10, cm.iteration_cap(t_iter, budget, 2 * PROBE_ITERS) // 10 * 10)
        compile_times: list[float] = []

        def make(k: int):
            t, compiled = cm.timed(lambda: compile_for(k))
            compile_times.append(t)
            return lambda: ex(compiled(C_j, a_j, b_j))

        with cm.recorded_warnings() as caught:
            row.timing, out, row.cap = _measure_capped(
                make, row.cap, lambda out, k: int(out[2]) >= k, repeats, budget, step=10
            )
        _note_warnings(row, caught)
        compile_s = row.compile_s = compile_times[-1]
        f, g, n_iters, errors = (np.asarray(v) for v in out)
        row.iters = int(n_iters)
        row.hit_cap = row.iters >= row.cap
        row.history = [float(e) for e in errors if e >= 0]
        row.self_err = row.history[-1] if row.history else None
        # OTT's potentials carry eps log a (P = exp((f + g - C) / eps)); rebuild P from them.
        with np.errstate(divide="ignore"):
            fa = f.astype(np.float64) - eps * np.log(np.asarray(case.a, np.float64))
            gb = g.astype(np.float64) - eps * np.log(np.asarray(case.b, np.float64))
        row.stats = cm.potential_plan_stats(fa, gb, case.cost, case.a, case.b, eps)
        row.notes.append(f"time excludes XLA compilation ({compile_s:.2f} s)")
    except Exception as exc:
        row.status = f"error: {type(exc).__name__}: {exc}"[:160]
    return row


def run_geomloss(
    handles: dict[str, Any], case: Case, threads: int, repeats: int, budget: float
) -> Row:
    """GeomLoss ``SamplesLoss("sinkhorn", p=2, blur=sqrt(eps), scaling=0.9, debias=False)`` on
    points scaled so that its cost ||x - y||^2 / 2 equals C. It has no tolerance: it runs an
    eps-scaling schedule (one iteration per eps) and returns; the plan is rebuilt from its
    potentials to measure the error it reaches."""
    row = Row("geomloss", PEER_LABELS["geomloss"], case.dtype, comparable=False)
    torch = handles["torch"]
    geomloss = handles["geomloss"]
    try:
        torch.set_num_threads(threads)
        loss = geomloss.SamplesLoss(
            "sinkhorn",
            p=2,
            blur=case.eps**0.5,
            scaling=0.9,
            debias=False,
            backend="tensorized",
            potentials=True,
        )
        x_t, y_t = torch.from_numpy(case.x), torch.from_numpy(case.y)

        def solve():
            with torch.no_grad():
                return loss(x_t, y_t)

        with cm.recorded_warnings() as caught:
            row.timing, (F, G) = cm.measure(solve, repeats, budget)
        _note_warnings(row, caught)
        try:
            from geomloss._legacy.sinkhorn_divergence import epsilon_schedule, max_diameter

            diameter = float(max_diameter(x_t, y_t))
            row.iters = len(epsilon_schedule(2, diameter, case.eps**0.5, 0.9))
        except ImportError:  # pragma: no cover - layout of another geomloss version
            row.iters = None
        f = F.reshape(-1).double().numpy()
        g = G.reshape(-1).double().numpy()
        row.stats = cm.potential_plan_stats(f, g, case.cost, case.a, case.b, case.eps)
        row.notes.append("eps-scaling schedule, no tolerance: iters = length of the schedule")
    except Exception as exc:
        row.status = f"error: {type(exc).__name__}: {exc}"[:160]
    return row


# ---------------------------------------------------------------------------------------------
# Driver


@dataclass
class Context:
    args: argparse.Namespace
    pyot: Any
    solver: PyotSolver
    peers: dict[str, cm.Peer]
    fixed_tol: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    foreign: cm.ForeignLoad = field(default_factory=cm.ForeignLoad)


def _import_pyot() -> Any:
    try:
        pyot = cm.import_pyot()
    except ImportError as exc:
        raise SystemExit(
            f"python -m bench sinkhorn: pyot is not importable ({exc}); install it first "
            "(pip install . from the repository root)"
        ) from exc
    return pyot


def _detect_peers(wanted: tuple[str, ...]) -> dict[str, cm.Peer]:
    peers: dict[str, cm.Peer] = {}
    if "pot" in wanted or "pot-log" in wanted:
        pot = cm.detect_peer("POT", ("ot",), "pot")
        for key in ("pot", "pot-log"):
            if key in wanted:
                peers[key] = pot
    if "ott" in wanted:
        ott = cm.detect_peer(
            "OTT-JAX",
            (
                "ott",
                "jax",
                "ott.geometry.geometry",
                "ott.geometry.pointcloud",
                "ott.problems.linear.linear_problem",
                "ott.solvers.linear.sinkhorn",
            ),
            "ott-jax",
        )
        if ott.available:
            ott.handles["jax"].config.update("jax_enable_x64", True)
            ott.version = f"{ott.version} (jax {cm.dist_version('jax')}, CPU, x64 enabled)"
        peers["ott"] = ott
    if "geomloss" in wanted:
        gl = cm.detect_peer("GeomLoss", ("geomloss", "torch"), "geomloss")
        if gl.available:
            gl.version = f"{gl.version} (torch {cm.dist_version('torch')})"
        peers["geomloss"] = gl
    return peers


def _print_machine(ctx: Context, title: str) -> dict[str, Any]:
    args = ctx.args
    caches = cm.cache_sizes()
    blas = cm.blas_info()
    blas_text = (
        "; ".join(
            f"{b.get('internal_api')} {b.get('version') or ''} "
            f"[{os.path.basename(str(b.get('prefix')))}]: {b.get('num_threads')} threads"
            for b in blas
            if b.get("user_api")
        )
        or "none loaded"
    )
    pyot_cfg = cm.capture_show_config(ctx.pyot) or "(pyot.show_config() missing)"
    peers_text = "\n".join(
        f"{PEER_LABELS[k]}: {'installed, ' + p.version if p.available else p.reason}"
        for k, p in ctx.peers.items()
    )
    facts = [
        ("CPU", f"{cm.cpu_model()} ({os.cpu_count()} logical CPUs, {args.threads} used)"),
        ("caches", ", ".join(f"{k} {cm.fmt_bytes(v)}" for k, v in caches.items()) or "unknown"),
        ("memory", f"{cm.fmt_bytes(cm.memory_total())} total"),
        ("load average", _load_text()),
        ("python", sys.version.split()[0]),
        ("BLAS / OpenMP", f"{blas_text}; BLAS limited to {args.threads} threads for peers"),
        ("pyot", f"{getattr(ctx.pyot, '__version__', '?')}, threads={args.threads}"),
        ("pyot.show_config()", pyot_cfg),
        ("peers", peers_text or "none requested"),
    ]
    cm.print_header(title, facts)
    return {
        "cpu": cm.cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": args.threads,
        "caches": caches,
        "memory_total": cm.memory_total(),
        "load_average_start": cm.load_average(),
        "python": sys.version,
        "blas": blas,
        "pyot_version": getattr(ctx.pyot, "__version__", None),
        "pyot_config": pyot_cfg,
        "peers": {
            k: {"available": p.available, "version": p.version, "reason": p.reason}
            for k, p in ctx.peers.items()
        },
    }


def _load_text() -> str:
    load = cm.load_average()
    if load is None:
        return "unknown"
    return (
        f"{load:.2f} (1 min, before the bench; the share of the cores that other processes used "
        "during the run is printed at the end)"
    )


def _fixed_iteration_tol(pyot: Any) -> float:
    """A tol that never stops pyot early: 0 if accepted, else the smallest positive double."""
    c = np.array([[0.0, 1.0], [1.0, 0.0]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pyot.sinkhorn(c, eps=0.5, tol=0.0, max_iter=2)
        return 0.0
    except (ValueError, TypeError):
        return 5e-324


def _make_inputs(
    n: int, d: int, seed: int, pyot: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    x, y = cm.uniform_points(n, n, d, seed)
    cost = np.asarray(pyot.cost_matrix(x, y, "sqeuclidean"), np.float64)
    cmax = float(cost.max())
    cost /= cmax
    return x, y, cost, cmax


def _reference(ctx: Context, cost: np.ndarray, eps: float) -> dict[str, Any]:
    """pyot, method="log", tol=--ref-tol, float64, warm-started from pyot method="auto" run to
    the same tol (over-relaxation and eps-scaling get there in far fewer iterations; the log
    polish and the error recomputed here from the plan make it a log-domain fixed point)."""
    args = ctx.args
    n, m = cost.shape
    a = np.full(n, 1.0 / n)
    b = np.full(m, 1.0 / m)
    budget = 3 * args.budget
    info: dict[str, Any] = {"method": "log", "tol": args.ref_tol, "warm_start": None}
    init = None
    t_warm = 0.0
    if not args.no_ref_warm_start:
        try:

            def probe_auto(k: int) -> tuple[float, int]:
                t, res = cm.timed(
                    lambda: ctx.solver.solve(cost, a, b, eps, args.ref_tol, k, method="auto")
                )
                return t, int(res.n_iter)

            cap = cm.iteration_cap(_probe_per_iter(probe_auto, budget), budget, 1000)
            t_warm, first = cm.timed(
                lambda: ctx.solver.solve(cost, a, b, eps, args.ref_tol, cap, method="auto")
            )
            init = (first.f, first.g)
            info["warm_start"] = {
                "method": "auto",
                "iters": int(first.n_iter),
                "error": float(first.marginal_error),
                "time_s": t_warm,
            }
        except Exception as exc:
            info["warm_start_error"] = f"{type(exc).__name__}: {exc}"

    def probe(k: int) -> tuple[float, int]:
        t, res = cm.timed(lambda: ctx.solver.solve(cost, a, b, eps, args.ref_tol, k, method="log"))
        return t, int(res.n_iter)

    cap = cm.iteration_cap(_probe_per_iter(probe, budget), budget, 1000)
    t, res = cm.timed(
        lambda: ctx.solver.solve(cost, a, b, eps, args.ref_tol, cap, method="log", init=init)
    )
    stats = cm.plan_stats(res.plan, cost, a, b, eps)
    info.update(
        time_s=t + t_warm,
        iters=int(res.n_iter),
        max_iter=cap,
        converged=bool(res.converged),
        self_reported_error=float(res.marginal_error),
        marginal_error=stats.err,
        value=stats.value,
        objective=stats.objective,
        finite=stats.finite,
    )
    return info


def _case_target(case: Case, pyot_row: Row, peer_rows: list[Row]) -> dict[str, Any]:
    """The issue's target for this case, and whether pyot meets it."""
    failed = [r.label for r in peer_rows if r.failed]
    converging = [r for r in peer_rows if r.reached and r.time is not None]
    fastest = min(converging, key=lambda r: r.time) if converging else None
    speedup = (
        fastest.time / pyot_row.time
        if fastest is not None and pyot_row.time
        else (math.inf if pyot_row.reached else None)
    )
    out: dict[str, Any] = {
        "case": case.name,
        "fastest_peer": fastest.label if fastest else None,
        "fastest_peer_time_s": fastest.time if fastest else None,
        "pyot_time_s": pyot_row.time,
        "speedup": speedup,
        "pyot_reached_tol": pyot_row.reached,
        "peers_failed": failed,
    }
    checks: list[tuple[str, bool]] = []
    if case.dtype == "float32" and case.eps <= 0.005:
        st = pyot_row.stats
        ok32 = st is not None and st.finite and st.err <= 1e-5
        pot = [r for r in peer_rows if r.solver == "pot" and r.ran]
        pot_text = pot[0].status if pot else "POT not run"
        checks.append((f"float32 converges to 1e-5 (POT: {pot_text})", ok32))
    if case.eps <= 0.001 or failed:
        need = 10.0
    elif case.dtype == "float64" and case.eps >= 0.01:
        need = 3.0
    else:
        need = None
    if need is not None:
        ok = pyot_row.reached and speedup is not None and speedup >= need
        checks.append((f">= {need:g}x the fastest peer reaching tol", ok))
    elif not pyot_row.reached:
        checks.append(("pyot reaches tol", False))
    out["target"] = "; ".join(c for c, _ in checks) or "-"
    out["met"] = all(ok for _, ok in checks) if checks else None
    return out


def _print_case_table(eps_rows: list[tuple[Case, list[Row], dict[str, Any]]], ref: dict) -> None:
    case0 = eps_rows[0][0]
    warm = ref.get("warm_start")
    title = (
        f"Sinkhorn n=m={case0.n} d={case0.d} eps={case0.eps:g}: time to tol "
        f"(reference: pyot method='log' tol={ref['tol']:g} float64, "
        + (f"warm-started from method='auto' ({warm['iters']} iters), " if warm else "")
        + f"{ref['iters']} iters, its error {cm.fmt_sci(ref['marginal_error'])})"
    )
    headers = [
        "dtype",
        "tol",
        "solver",
        "time (median)",
        "iters",
        "max_iter",
        "marg. err",
        "|value-ref|",
        "status",
        "ratio (t/t_pyot)",
    ]
    right = [False, True, False, True, True, True, True, True, False, True]
    table = []
    for case, rows, _ in eps_rows:
        for r in rows:
            st = r.stats
            time_text = cm.fmt_time(r.time)
            if r.timing is not None and not r.timing.warm:
                time_text += " (1 run)"
            if r.compile_s is not None:
                time_text += f" +{r.compile_s:.1f} s jit"
            table.append(
                [
                    case.dtype,
                    f"{case.tol:g}",
                    r.label,
                    time_text,
                    "-" if r.iters is None else r.iters,
                    "-" if r.cap is None else r.cap,
                    cm.fmt_sci(st.err if st else None),
                    cm.fmt_sci(r.value_err),
                    r.status,
                    cm.fmt_ratio(r.ratio),
                ]
            )
    cm.print_table(title, headers, table, right)
    if not ref["finite"] or ref["marginal_error"] > 100 * ref["tol"]:
        print(
            f"  ! the reference did not converge (error {cm.fmt_sci(ref['marginal_error'])} after "
            f"{ref['iters']} iterations): |value-ref| below ~that error is not resolved"
        )
    for case, rows, target in eps_rows:
        speed = target["speedup"]
        met = {True: "MET", False: "NOT MET", None: "no target"}[target["met"]]
        print(
            f"  {case.dtype}: fastest peer reaching tol: {target['fastest_peer'] or 'none'}; "
            f"pyot speed-up {cm.fmt_ratio(speed)}; target: {target['target']} -> {met}"
        )
        for r in rows:
            for note in r.notes:
                if note.startswith(("pyot .", "pyot says")) or "Error" in note:
                    print(f"    ! {r.label} {case.dtype}: {note.splitlines()[-1]}")


def run_grid(ctx: Context) -> None:
    args = ctx.args
    sizes = args.sizes or ((SIZES[0],) if args.quick else SIZES)
    dims = args.dims or ((DIMS[0],) if args.quick else DIMS)
    epss = args.eps or ((EPSILONS[0],) if args.quick else EPSILONS)
    dtypes = args.dtypes or DTYPES
    for n in sizes:
        need = MEMORY_FACTOR * n * n * 8
        avail = cm.memory_available()
        if avail is not None and need > avail:
            print(f"\nskipping n={n}: needs ~{cm.fmt_bytes(need)}, {cm.fmt_bytes(avail)} free")
            ctx.results.append({"n": n, "skipped": f"memory ({need} bytes needed)"})
            continue
        for d in dims:
            x, y, cost64, cmax = _make_inputs(n, d, args.seed, ctx.pyot)
            scale = math.sqrt(2.0 / cmax)  # GeomLoss: ||sx - sy||^2 / 2 = C
            for eps in epss:
                ref = _reference(ctx, cost64, eps)
                eps_rows = []
                for dtype in dtypes:
                    tol = args.tol_float32 if dtype == "float32" and args.tol_float32 else args.tol
                    case = Case(
                        n, d, eps, dtype, tol,
                        cost=cost64.astype(dtype, copy=dtype != "float64"),
                        a=np.full(n, 1.0 / n, dtype=dtype),
                        b=np.full(n, 1.0 / n, dtype=dtype),
                        x=(x * scale).astype(dtype),
                        y=(y * scale).astype(dtype),
                    )  # fmt: skip
                    rows = _run_case(ctx, case)
                    for r in rows:
                        if r.stats is not None and r.stats.finite:
                            r.value_err = abs(r.stats.value - ref["value"])
                    pyot_row = rows[0]
                    for r in rows:
                        if r.time is not None and pyot_row.time:
                            r.ratio = r.time / pyot_row.time
                    peer_rows = [r for r in rows if not r.solver.startswith("pyot")]
                    target = _case_target(case, pyot_row, peer_rows)
                    ctx.summary.append(target)
                    eps_rows.append((case, rows, target))
                    ctx.results.append(
                        {
                            "n": n, "m": n, "d": d, "eps": eps, "dtype": dtype, "tol": tol,
                            "tol_slack": args.tol_slack, "cost_max_before_normalisation": cmax,
                            "reference": ref, "rows": [r.as_dict() for r in rows],
                            "target": target,
                        }
                    )  # fmt: skip
                    del case
                    gc.collect()
                _print_case_table(eps_rows, ref)
            del cost64
            gc.collect()


def _run_case(ctx: Context, case: Case) -> list[Row]:
    args = ctx.args
    rows: list[Row] = []
    methods = ("auto", *(m for m in args.pyot_methods if m != "auto"))
    for method in methods:
        cm.settle()
        rows.append(ctx.solver.run(case, method, args.repeats, args.budget))
    for key in args.peers:
        peer = ctx.peers[key]
        if not peer.available:
            rows.append(Row(key, PEER_LABELS[key], case.dtype, status=peer.reason or "-"))
            continue
        cm.settle()
        if key in ("pot", "pot-log"):
            method = "sinkhorn" if key == "pot" else "sinkhorn_log"
            row = run_pot(
                peer.handles["ot"],
                case,
                method,
                args.threads,
                args.repeats,
                args.budget,
                args.tol_slack,
            )
        elif key == "ott":
            row = run_ott(peer.handles, case, args.repeats, args.budget)
        else:
            row = run_geomloss(peer.handles, case, args.threads, args.repeats, args.budget)
        rows.append(row)
        gc.collect()
    for r in rows:
        if not r.status.startswith(("error", "not installed", "import failed")):
            _classify(r, case, args.tol_slack)
    return rows


# ---------------------------------------------------------------------------------------------
# Per-iteration time against the hardware bound


# pyot's dense scaling path (csrc/include/pyot/sinkhorn.hpp, ScalingKernel and solve_dense):
# from FUSED_MIN_ROWS rows on, an iteration reads K once (the row pass also accumulates the next
# column sums); K is stored in float only for float32 costs at tol >= FLOAT_KERNEL_MIN_TOL (and
# range(C) / eps <= 100 on at least 2^21 entries), else in double.
FUSED_MIN_ROWS = 256
FLOAT_KERNEL_MIN_TOL = 1e-7
# The log domain runs a float32 cost's exps in float lanes only at tol >= FLOAT_LANE_TOL
# (kFloatLaneTol: below it float lanes could never confirm convergence), so at tol = 0 a float32
# log row runs double lanes and is held to the double exp rate. The float lanes, which every
# float32 solve at tol >= 1e-6 runs, get a row of their own at tol = FLOAT_LANE_TOL: at eps =
# --bound-eps-float-lanes the solve lasts tens of iterations, and K2 is set just below the
# iteration it converges at (no confirmation pass inside the slope).
FLOAT_LANE_TOL = 1e-6


def _bound_model(method: str, n: int, dtype: str, tol: float) -> dict[str, Any]:
    """The work a per-iteration bound holds a path to: 2nm exp at the exp rate of the lanes
    the log domain uses, or the reads of K (in the dtype K is stored in) at the read bandwidth."""
    if method == "log":
        lanes = "float" if dtype == "float32" and tol >= FLOAT_LANE_TOL else "double"
        return {"exp_per_iter": 2 * n * n, "exp_lanes": lanes,
                "text": f"2nm exp / {lanes} exp rate"}  # fmt: skip
    reads = 1 if n >= FUSED_MIN_ROWS else 2
    float_k = dtype == "float32" and tol >= FLOAT_KERNEL_MIN_TOL
    why = ""
    if dtype == "float32" and not float_k:
        why = f" (tol={tol:g} < {FLOAT_KERNEL_MIN_TOL:g}: float32 C, double K)"
    return {
        "k_reads": reads,
        "k_dtype": "float32" if float_k else "float64",
        "k_bytes": 4 if float_k else 8,
        "text": f"{reads} read{'s' if reads > 1 else ''} of a "
        f"{'float32' if float_k else 'float64'} K / bandwidth{why}",
    }


def run_bounds(ctx: Context, hw: cm.HardwareBounds) -> list[dict[str, Any]]:
    args = ctx.args
    sizes = args.sizes or ((SIZES[0],) if args.quick else SIZES)
    dtypes = args.dtypes or DTYPES
    k1 = args.bound_iters[0]
    k2_fixed = args.bound_iters[1] if len(args.bound_iters) > 1 else None
    l3 = cm.cache_sizes().get("L3")
    eps = args.bound_eps
    out: list[dict[str, Any]] = []
    table = []
    for n in sizes:
        _, _, cost64, _ = _make_inputs(n, 2, args.seed, ctx.pyot)
        for dtype in dtypes:
            cost = cost64.astype(dtype, copy=dtype != "float64")
            a = np.full(n, 1.0 / n, dtype=dtype)
            paths = [("log", 2.0, eps, ctx.fixed_tol), ("scaling", 1.5, eps, ctx.fixed_tol)]
            if dtype == "float32":
                paths.insert(1, ("log", 2.0, args.bound_eps_float_lanes, FLOAT_LANE_TOL))
            for method, target, p_eps, tol in paths:
                rec: dict[str, Any] = {
                    "n": n, "dtype": dtype, "method": method, "eps": p_eps, "tol": tol
                }  # fmt: skip
                try:

                    def run_k(k: int, cost=cost, a=a, method=method, p_eps=p_eps, tol=tol):
                        timing, res = cm.measure(
                            lambda: ctx.solver.solve(cost, a, a, p_eps, tol, k, method=method),
                            args.repeats,
                            args.budget,
                        )
                        return timing.median, int(res.n_iter)

                    cm.settle()
                    t1, it1 = run_k(k1)
                    if tol > 0.0:
                        # Just below the iteration the solve converges at.
                        it_conv = int(
                            ctx.solver.solve(cost, a, a, p_eps, tol, 100_000, method=method).n_iter
                        )
                        k2 = k2_fixed or it_conv - 2
                        if k2 - it1 < 10:
                            raise RuntimeError(
                                f"converges at {it_conv} iterations: lower "
                                "--bound-eps-float-lanes or K1"
                            )
                    else:
                        # K2 so that t(K2) - t(K1) is ~0.3 s, well above the noise.
                        k2 = k2_fixed or k1 + min(5000, max(30, int(0.3 * it1 / max(t1, 1e-9))))
                    t2, it2 = run_k(k2)
                    if it2 <= it1:
                        raise RuntimeError(f"pyot stopped early ({it1}, {it2} iterations)")
                    if t2 <= t1:
                        raise RuntimeError(f"t({it2}) <= t({it1}): timing noise, rerun")
                    per_iter = (t2 - t1) / (it2 - it1)
                    model = _bound_model(method, n, dtype, tol)
                    if method == "log":
                        lanes_float = model["exp_lanes"] == "float"
                        bound = (
                            2.0 * n * n / (hw.exp_rate_for(dtype) if lanes_float else hw.exp_rate)
                        )
                    else:
                        bound = model["k_reads"] * n * n * model["k_bytes"] / hw.bandwidth
                    what = model["text"]
                    x_bound = per_iter / bound
                    in_cache = (
                        method == "scaling" and l3 is not None and n * n * model["k_bytes"] <= l3
                    )
                    rec.update(
                        per_iter_s=per_iter,
                        setup_s=max(0.0, t1 - it1 * per_iter),
                        bound_s=bound,
                        bound=what,
                        bound_model=model,
                        times_bound=x_bound,
                        fraction_of_bound=1.0 / x_bound,
                        target_times_bound=target,
                        met=x_bound <= target,
                        kernel_in_l3=in_cache,
                        iters=(it1, it2),
                        times_s=(t1, t2),
                    )
                    label = (
                        method if tol == ctx.fixed_tol else f"{method} (eps={p_eps:g}, tol={tol:g})"
                    )
                    table.append(
                        [
                            n,
                            dtype,
                            label,
                            cm.fmt_time(per_iter),
                            cm.fmt_time(rec["setup_s"]),
                            cm.fmt_time(bound),
                            what + (" (K fits in L3)" if in_cache else ""),
                            f"{1.0 / x_bound:.2f}",
                            f"<= {target:g}x: {'MET' if x_bound <= target else 'NOT MET'}"
                            f" ({x_bound:.2f}x)",
                        ]
                    )
                except Exception as exc:
                    rec["error"] = f"{type(exc).__name__}: {exc}"
                    table.append([n, dtype, method, "-", "-", "-", "-", "-", rec["error"][:60]])
                out.append(rec)
        del cost64
        gc.collect()
    cm.print_table(
        f"pyot per-iteration time vs the hardware bound (eps={eps:g}, tol={ctx.fixed_tol:g}, "
        f"per iteration = (t(K2) - t(K1)) / (K2 - K1), K1={k1}; exp rate "
        f"{hw.exp_rate / 1e9:.2f} G/s"
        + (f" (float exp {hw.exp_rate_single / 1e9:.2f} G/s)" if hw.exp_rate_single else "")
        + f", read bandwidth {hw.bandwidth / 1e9:.1f} GB/s, "
        f"{hw.threads} threads; log: 2nm exp at the rate of the lanes used, scaling: the reads "
        "of K per iteration in the dtype K is stored in)",
        [
            "n=m",
            "dtype",
            "method",
            "per iter",
            "setup",
            "bound",
            "bound model",
            "fraction of bound",
            "target (t/bound)",
        ],
        table,
        [True, False, False, True, True, True, False, True, False],
    )
    print(f"  exp rate: {hw.exp_source}\n  bandwidth: {hw.bandwidth_source}")
    return out


# ---------------------------------------------------------------------------------------------
# Online point clouds (subprocesses: peak RSS per solver)


def _run_worker(argv: list[str], timeout: float) -> dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "bench._online_worker", *argv]
    try:
        proc = subprocess.run(
            cmd, cwd=root, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": f"killed after {timeout:.0f} s (timeout)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"status": f"worker failed (rc={proc.returncode}): {' | '.join(tail)}"[:300]}
    return json.loads(lines[-1])


_PROGRESS_KEYS = (
    "time_s",
    "iters",
    "per_iter_s",
    "projected_per_iter_s",
    "probe_n",
    "probe_iters",
    "error",
    "converged",
    "peak_rss",
    "status",
)


def _online_row(label: str, r: dict[str, Any], py: dict[str, Any], tol: float, args) -> list:
    t = r.get("time_s")
    reached = r.get("error") is not None and r["error"] <= args.tol_slack * tol
    r["reached_tol"] = reached
    ratio = t / py["time_s"] if t and py.get("time_s") else None
    r["ratio_to_pyot"] = ratio
    status = r.get("status") or ("reached tol" if reached else "stalled (max_iter / budget)")
    r["status"] = status
    status = status if len(status) <= 90 else status[:87] + "..."
    obj_diff = (
        abs(r["objective"] - py["objective"])
        if r.get("objective") is not None and py.get("objective") is not None and r is not py
        else None
    )
    rss = r.get("peak_rss")
    per_iter = r.get("per_iter_s") or r.get("projected_per_iter_s")
    measured_at_n = r.get("probe_n") == r.get("n")
    per_iter_note = (
        ""
        if r.get("per_iter_s") or not per_iter
        else " (measured, probe)"
        if measured_at_n
        else f" (proj. from n={r.get('probe_n')})"
    )
    return [
        label,
        cm.fmt_time(t),
        r.get("iters", "-"),
        r.get("max_iter", "-"),
        cm.fmt_time(per_iter) + per_iter_note,
        cm.fmt_sci(r.get("error")),
        cm.fmt_sci(r.get("recomputed_error")),
        cm.fmt_sci(obj_diff),
        (f"{rss / 1e6:.0f} MB" if rss else "-"),
        status,
        ("" if reached or r is py else ">= ") + cm.fmt_ratio(ratio) if ratio else "-",
    ]


def run_online(ctx: Context) -> dict[str, Any]:
    """The online point-cloud entry. Each solver runs in its own subprocess at n (its time,
    iterations and peak RSS measured; OTT-JAX, hours at n = 200,000, only where its projection
    fits the budget, else its per-iteration time is measured at n over a few iterations), and
    again to tol at the reference size n_ref: the projected time at n is the per-iteration time
    measured at n times the iterations at n_ref (the count depends on eps and the geometry, not
    on n), reported beside the measured one."""
    args = ctx.args
    n = args.online_n or (10_000 if args.quick else 200_000)
    n_ref = args.online_ref_n if args.online_ref_n is not None else (0 if args.quick else 20_000)
    n_ref = n_ref if 0 < n_ref < n else 0
    d, eps, dtype = args.online_d, args.online_eps, args.online_dtype
    tol = args.online_tol or args.tol
    budget = args.online_budget or (args.budget if args.quick else 1800.0)
    timeout = 4 * budget + 300

    def common(size: int) -> list[str]:
        return [
            f"--n={size}", f"--d={d}", f"--eps={eps}", f"--tol={tol}", f"--dtype={dtype}",
            f"--budget={budget}", f"--seed={args.seed}", f"--threads={args.threads}",
        ]  # fmt: skip

    print(
        f"\nOnline point clouds: n=m={n}, d={d}, eps={eps:g}, {dtype}, tol={tol:g}, budget "
        f"{budget:.0f} s per solver, each solver in its own subprocess (peak RSS = its VmHWM)"
        + (f"; iteration counts also at n_ref={n_ref}" if n_ref else "")
    )
    tmp = tempfile.mkdtemp(prefix="pyot-bench-")
    ott = ctx.peers.get("ott")
    have_ott = ott is not None and ott.available
    results: dict[str, dict[str, Any]] = {}
    # pyot first, OTT-JAX at n last (the longest run by far: hours at n = 200,000).
    sizes = [(n, ""), (n_ref, "_ref")] if n_ref else [(n, "")]
    jobs = [("pyot", size, suffix) for size, suffix in sizes]
    jobs += [("ott", size, suffix) for size, suffix in reversed(sizes)]
    for solver, size, suffix in jobs:
        key = solver + suffix
        if solver == "ott" and not have_ott:
            results[key] = {"status": ott.reason if ott else "not requested"}
        else:
            extra = [f"--save={os.path.join(tmp, key + '.npz')}"]
            if solver == "ott":
                extra.append(f"--batch-size={args.online_batch}")
                if not suffix:  # at n: the per-iteration time measured at n, not projected
                    extra += [f"--probe-n={size}", f"--probe-iters={args.online_ott_probe_iters}"]
            results[key] = _run_worker([solver, *common(size), *extra], timeout)
        results[key].setdefault("n", size)
        brief = {k: results[key][k] for k in _PROGRESS_KEYS if k in results[key]}
        print(f"  [{key} n={size}] {json.dumps(brief)}", flush=True)
    # Recompute the marginal errors from the potentials where n is small enough for numpy.
    for key, res in results.items():
        size = res["n"]
        path = os.path.join(tmp, f"{key}.npz")
        if size <= args.online_verify_max and os.path.exists(path):
            x, y = cm.uniform_points(size, size, d, args.seed)
            s = 1.0 / math.sqrt(cm.max_sqdist(x, y))
            x, y = x * s, y * s
            w = np.full(size, 1.0 / size)

            def cost_rows(i0: int, i1: int, x=x, y=y) -> np.ndarray:
                diff = x[i0:i1, None, :] - y[None, :, :]
                return np.einsum("ijk,ijk->ij", diff, diff)

            pot = np.load(path)
            st = cm.potential_plan_stats(pot["f"], pot["g"], cost_rows, w, w, eps)
            res.update(recomputed_error=st.err, recomputed_value=st.value)
        if os.path.exists(path):
            os.remove(path)
    os.rmdir(tmp)
    py = results["pyot"]
    rows = [
        _online_row(f"pyot PointCloud, n={n}", py, py, tol, args),
        _online_row(
            f"OTT-JAX PointCloud(batch_size={args.online_batch}), n={n}",
            results["ott"],
            py,
            tol,
            args,
        ),
    ]
    if n_ref:
        py_ref = results["pyot_ref"]
        rows.append(_online_row(f"pyot PointCloud, n={n_ref}", py_ref, py_ref, tol, args))
        rows.append(
            _online_row(
                f"OTT-JAX PointCloud(batch_size={args.online_batch}), n={n_ref}",
                results["ott_ref"],
                py_ref,
                tol,
                args,
            )
        )
    cm.print_table(
        None,
        [
            "solver",
            "time",
            "iters",
            "max_iter",
            "per iter",
            "marg. err (own)",
            "marg. err (recomputed)",
            "|obj - obj_pyot|",
            "peak RSS",
            "status",
            "ratio (t/t_pyot)",
        ],
        rows,
        [False, True, True, True, True, True, True, True, True, False, True],
    )
    # Projections to n: per-iteration time measured at n x iterations to tol at n_ref.
    projection: dict[str, Any] = {}
    if n_ref:
        for key in ("pyot", "ott"):
            at_n, ref = results[key], results[key + "_ref"]
            per_iter = at_n.get("per_iter_s") or (
                at_n.get("projected_per_iter_s") if at_n.get("probe_n") == n else None
            )
            iters = ref.get("iters") if ref.get("reached_tol") else None
            projection[key] = {
                "per_iter_at_n_s": per_iter,
                "per_iter_measured_at_n": per_iter is not None,
                "iters_at_n_ref": iters,
                "projected_time_s": per_iter * iters if per_iter and iters else None,
            }
        p_py, p_ott = projection["pyot"], projection["ott"]
        t_py = py.get("time_s") if py.get("reached_tol") else None
        for key, p in projection.items():
            print(
                f"  projected {key:4s} at n={n}: per iteration at n (measured) "
                f"{cm.fmt_time(p['per_iter_at_n_s'])} x {p['iters_at_n_ref'] or '-'} iterations "
                f"(to tol at n={n_ref}) = {cm.fmt_time(p['projected_time_s'])}"
            )
        proj_ratio = (
            p_ott["projected_time_s"] / p_py["projected_time_s"]
            if p_ott["projected_time_s"] and p_py["projected_time_s"]
            else None
        )
        t_ott = p_ott["projected_time_s"]
        meas_ratio = t_ott / t_py if t_ott and t_py else None
        projection["ratio_projected"] = proj_ratio
        projection["ratio_ott_projected_to_pyot_measured"] = meas_ratio
        print(
            f"  OTT-JAX projected / pyot projected = {cm.fmt_ratio(proj_ratio)}; OTT-JAX "
            f"projected / pyot measured at n = {cm.fmt_ratio(meas_ratio)}"
        )
    rss_ok = bool(py.get("peak_rss")) and py["peak_rss"] <= args.online_rss_mb * 1e6
    speed = results["ott"].get("ratio_to_pyot")
    if speed is None and projection:
        speed = projection.get("ratio_ott_projected_to_pyot_measured")
    speed_ok = bool(py.get("reached_tol")) and speed is not None and speed >= 3.0
    print(
        f"  targets: pyot peak RSS < {args.online_rss_mb:g} MB -> "
        f"{'MET' if rss_ok else 'NOT MET'}; >= 3x OTT-JAX at the same tol -> "
        f"{'MET' if speed_ok else 'NOT MET' if speed is not None else 'OTT-JAX not measured'}"
        + (
            " (OTT-JAX's time at n projected, see above)"
            if results["ott"].get("time_s") is None and speed is not None
            else " (OTT-JAX did not reach tol within its budget: the ratio is a lower bound)"
            if speed is not None and not results["ott"].get("reached_tol")
            else ""
        )
    )
    print(
        "  'own' errors are the solvers' self-reported L1 marginal errors; 'recomputed' rebuilds"
        f" P from the returned potentials in numpy (only up to n={args.online_verify_max})."
    )
    foreign = ctx.foreign.fraction()
    if foreign is not None:
        warn = " -- WARNING: timings are unreliable" if foreign > 0.1 else ""
        print(f"  other processes used {100 * foreign:.0f}% of the cores during the run{warn}")
    return {
        "n": n,
        "n_ref": n_ref or None,
        "d": d,
        "eps": eps,
        "dtype": dtype,
        "tol": tol,
        "budget_s": budget,
        "solvers": results,
        "projection": projection,
        "targets": {"rss_met": rss_ok, "speed_met": speed_ok},
        "foreign_cpu_fraction": foreign,
    }


# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    wall = cm.Stopwatch()
    if args.pyot_methods is None:
        args.pyot_methods = ("auto",) if args.quick else ("auto", "log", "scaling")
    pyot = _import_pyot()
    if args.bounds_only:
        peers = {}
    elif args.online:  # the solvers run in subprocesses: only look for OTT-JAX here
        peers = (
            {"ott": cm.detect_peer("OTT-JAX", ("ott", "jax"), "ott-jax", load=False)}
            if "ott" in args.peers
            else {}
        )
    else:
        peers = _detect_peers(tuple(args.peers))
    ctx = Context(args=args, pyot=pyot, solver=PyotSolver(pyot, args.threads), peers=peers)
    machine = _print_machine(ctx, "python -m bench sinkhorn" + (" --online" if args.online else ""))
    meta = {
        "machine": machine,
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(vars(args).items())
        },
    }
    if args.online:
        return {**meta, "online": run_online(ctx)}
    ctx.fixed_tol = _fixed_iteration_tol(pyot)
    hw = cm.probe_hardware(getattr(pyot, "_core", None), args.threads, args.quick)
    print(
        f"hardware bound  : exp {hw.exp_rate / 1e9:.2f} G/s"
        + (f", float exp {hw.exp_rate_single / 1e9:.2f} G/s" if hw.exp_rate_single else "")
        + f" [{hw.exp_source}]; read bandwidth "
        f"{hw.bandwidth / 1e9:.1f} GB/s [{hw.bandwidth_source}]"
    )
    tol32 = args.tol_float32 or args.tol
    print(
        f"method          : tol={args.tol:g} (float32: {tol32:g}) on the L1 marginal error; "
        f"'reached tol' = ||P1-a||_1 + ||P'1-b||_1 <= {args.tol_slack:g} x tol, recomputed "
        "here in float64 from each solver's plan or potentials.\n"
        f"                  time = median of up to {args.repeats} runs after a warm-up "
        f"(runs over {args.budget / 2:g} s: one cold run); max_iter from a {PROBE_ITERS}-iteration "
        f"probe so one run fits in --budget {args.budget:g} s.\n"
        "                  POT stops on the L2 norm of one marginal (stopThr calibrated, see "
        "notes); OTT-JAX on the L1 norm of one marginal every 10 iterations, time excludes "
        "compilation;\n"
        "                  GeomLoss has no tolerance (eps-scaling schedule, scaling=0.9): "
        "flagged [different stopping rule].\n"
        "                  'stalled (max_iter)' = hit the budget cap without reaching tol; a peer "
        "'fails' (10x target) when it returns NaN/inf, overflows or its error stagnates."
    )
    if not args.bounds_only:
        with cm.blas_threads(args.threads):
            run_grid(ctx)
    bounds = [] if args.skip_bounds else run_bounds(ctx, hw)
    foreign = ctx.foreign.fraction()
    if foreign is not None:
        warn = " -- WARNING: timings are unreliable" if foreign > 0.1 else ""
        print(f"\nother processes used {100 * foreign:.0f}% of the cores during the run{warn}")
    if len(ctx.summary) > 1:
        cm.print_table(
            "Summary: pyot (method='auto') against the fastest peer that reached tol",
            ["case", "pyot", "fastest peer", "its time", "speed-up", "target", "met"],
            [
                [
                    t["case"],
                    cm.fmt_time(t["pyot_time_s"]) + ("" if t["pyot_reached_tol"] else " (!tol)"),
                    t["fastest_peer"] or "none reached tol",
                    cm.fmt_time(t["fastest_peer_time_s"]),
                    cm.fmt_ratio(t["speedup"]),
                    t["target"],
                    {True: "MET", False: "NOT MET", None: "-"}[t["met"]],
                ]
                for t in ctx.summary
            ],
            [False, True, False, True, True, False, False],
        )
    met = [s for s in ctx.summary if s["met"] is not None]
    print(
        f"\nTargets met: {sum(1 for s in met if s['met'])}/{len(met)} cases with a target "
        f"({len(ctx.summary)} cases run). Bench wall time {wall.elapsed():.0f} s."
    )
    return {
        **meta,
        "hardware": hw,
        "cases": ctx.results,
        "targets": ctx.summary,
        "bounds": bounds,
        "foreign_cpu_fraction": foreign,
        "wall_s": wall.elapsed(),
    }
