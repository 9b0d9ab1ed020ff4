"""``python -m bench maps``: the entropic map and Monge-gap map fitting, pyot against peers.

Inputs (seeded): source x ~ N(0, I_d), targets y ~ N(1, I_d / 4), queries z ~ N(0, I_d),
float32 (OTT-JAX's default precision), squared-Euclidean cost, eps = 0.05 d (the mean cost is
about 2.25 d), uniform weights.

- Entropic map evaluation: ``--queries`` points (1e5) against ``--targets`` targets (1e4) in
  each d of ``--dims`` (2, 64). The potentials are fitted once, untimed (pyot: 2000 sources
  against the targets). Timed: ``EntropicMap(z)`` (one online pass of the core, no n x m
  array) against the same map written in numpy with POT's ``ot.dist`` (the plan-based
  barycentric projection ``softmax(log b + (g - C) / eps) @ y`` on the same potentials, chunked
  to 2000 queries) and OTT-JAX's ``DualPotentials.transport`` (OTT's own Sinkhorn fit, jitted,
  warmed up, chunked to 5000 queries). Accuracy of each: max |T - T_64| on the first 2000
  queries, T_64 pyot's map in float64 on the same potentials (OTT's own potentials add their
  convergence error).
- Monge-gap map fitting: one training step at batch ``--batch`` (1024) in each d and Sinkhorn
  tolerance (1e-6, and 1e-3, OTT-JAX's default threshold, for both): pyot's
  ``fit_monge_gap_map`` (per step of a short run: sinkhorn_divergence + monge_gap through the
  core, torch autograd, Adam) against the step of OTT-JAX's ``MongeGapEstimator`` (sinkdiv +
  ``monge_gap_from_samples``, ``jax.value_and_grad``, optax Adam, jitted), written out with the
  same pieces because ``ott.neural`` needs flax, which is not installed here. Same residual MLP
  (2 x 64 GELU), eps and tolerance (L1 marginal error in both). Times per step, over
  ``--steps`` consecutive steps.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

DIMS = (2, 64)
TOL = 1e-6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("maps options")
    group.add_argument("--dims", type=cm.int_list, default=DIMS, help="dimensions (2,64)")
    group.add_argument("--queries", type=int, default=100_000, help="query points (1e5)")
    group.add_argument("--targets", type=int, default=10_000, help="target points (1e4)")
    group.add_argument("--batch", type=int, default=1024, help="fitting batch size (1024)")
    group.add_argument("--steps", type=int, default=3, help="timed fitting steps per run (3)")


def _data(n: int, m: int, q: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * 0.5 + 1.0
    z = rng.normal(size=(q, d))
    return x, y, z


def _numpy_map(z: np.ndarray, y: np.ndarray, b: np.ndarray, g: np.ndarray, eps: float,
               ot: Any) -> np.ndarray:
    """softmax_j(log b_j + (g_j - C_ij) / eps) @ y, chunked (the plan-based projection)."""
    out = np.empty_like(z)
    hb = np.log(b) + g / eps
    for i in range(0, len(z), 2000):
        cost = ot.dist(z[i:i + 2000], y)  # squared Euclidean
        logits = hb[None, :] - cost / eps
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        out[i:i + 2000] = (logits @ y) / logits.sum(axis=1, keepdims=True)
    return out


def _ott_map(x: np.ndarray, y: np.ndarray, eps: float):
    """OTT's fit (untimed) and a chunked, jitted DualPotentials.transport."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.solvers import linear

    out = linear.solve(pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=eps),
                       threshold=TOL, max_iterations=10_000)
    pots = out.to_dual_potentials()
    transport = jax.jit(pots.transport)

    def run(z: np.ndarray) -> np.ndarray:
        parts = [transport(jnp.asarray(z[i:i + 5000])) for i in range(0, len(z), 5000)]
        return np.concatenate([np.asarray(jax.block_until_ready(p)) for p in parts])

    return run


def _map_case(ctx: dict[str, Any], d: int) -> dict[str, Any]:
    args, pyot = ctx["args"], ctx["pyot"]
    n_src = min(2000, args.targets)
    x, y, z = _data(n_src, args.targets, args.queries, d, args.seed)
    x, y, z = (v.astype(np.float32) for v in (x, y, z))  # float32 everywhere, as OTT-JAX runs
    eps = 0.05 * d
    emap = pyot.maps.EntropicMap(x, y, eps=eps, threads=args.threads)
    out: dict[str, Any] = {"d": d, "queries": args.queries, "targets": args.targets, "eps": eps}
    cm.settle()
    t, tz = cm.measure(lambda: emap(z), args.repeats, args.budget)
    out["pyot"] = t.as_dict()
    head = slice(0, min(2000, len(z)))  # accuracy: against a float64 map on the same potentials
    ref = emap.__class__.__new__(emap.__class__)
    ref.__dict__.update(emap.__dict__, y=y.astype(np.float64), _targets={})
    exact = ref(z[head].astype(np.float64))
    out["pyot"]["max_err"] = float(np.abs(tz[head] - exact).max())
    if ctx["ot"] is not None:
        ot = ctx["ot"]
        with cm.blas_threads(args.threads):
            cm.settle()
            t, tz_np = cm.measure(lambda: _numpy_map(z, y, emap.b, emap.g, eps, ot),
                                  args.repeats, args.budget)
        out["numpy"] = {**t.as_dict(), "max_err": float(np.abs(tz_np[head] - exact).max())}
    if ctx["ott"]:
        run = _ott_map(x, y, eps)
        run(z[:5000])  # compile
        cm.settle()
        t, tz_ott = cm.measure(lambda: run(z), args.repeats, args.budget)
        out["ott"] = {**t.as_dict(), "max_err": float(np.abs(tz_ott[head] - exact).max())}
    return out


# ----------------------------------------------------------------------------- fitting


def _pyot_step(ctx: dict[str, Any], x: np.ndarray, y: np.ndarray, eps: float, tol: float):
    args, pyot = ctx["args"], ctx["pyot"]

    def run():
        return pyot.maps.fit_monge_gap_map(x, y, eps=eps, reg=1.0, steps=args.steps, lr=1e-3,
                                           batch_size=args.batch, seed=0, tol=tol)

    return run


def _ott_step(x: np.ndarray, y: np.ndarray, eps: float, batch: int, threshold: float):
    """The MongeGapEstimator step: loss = sinkdiv(T(x_B), y_B) + monge_gap_from_samples(x_B,
    T(x_B)), value_and_grad, optax Adam; jitted and warmed up."""
    import jax
    import jax.numpy as jnp
    import optax
    from ott.geometry import pointcloud
    from ott.solvers import linear
    from ott.tools.sinkhorn_divergence import sinkdiv

    d = x.shape[1]
    key = jax.random.PRNGKey(0)
    sizes = [(d, 64), (64, 64), (64, d)]
    params = []
    for k, (i, o) in enumerate(sizes):
        key, sub = jax.random.split(key)
        bound = 1.0 / np.sqrt(i)
        w = jax.random.uniform(sub, (i, o), minval=-bound, maxval=bound)
        params.append((w * (k < 2), jnp.zeros(o)))

    def model(p, v):
        h = v
        for k, (w, b) in enumerate(p):
            h = h @ w + b
            if k < 2:
                h = jax.nn.gelu(h)
        return v + h

    solve_kwargs = {"threshold": threshold, "max_iterations": 2000}

    def loss(p, xb, yb):
        tb = model(p, xb)
        fit, _ = sinkdiv(tb, yb, epsilon=eps, solve_kwargs=solve_kwargs)
        geom = pointcloud.PointCloud(xb, tb, epsilon=eps)
        ent = linear.solve(geom, **solve_kwargs).ent_reg_cost
        gap = jnp.mean(jnp.sum((xb - tb) ** 2, axis=1)) - ent
        return fit + gap

    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def step(p, s, xb, yb):
        val, grads = jax.value_and_grad(loss)(p, xb, yb)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, val

    rng = np.random.default_rng(0)
    xs = jnp.asarray(x, dtype=jnp.float32)
    ys = jnp.asarray(y, dtype=jnp.float32)
    holder = {"p": params, "s": state}

    def run():
        ix = rng.choice(len(x), batch, replace=False)
        iy = rng.choice(len(y), batch, replace=False)
        holder["p"], holder["s"], val = step(holder["p"], holder["s"], xs[ix], ys[iy])
        return float(jax.block_until_ready(val))

    run()  # compile
    return run


def _fit_case(ctx: dict[str, Any], d: int) -> dict[str, Any]:
    args = ctx["args"]
    n = max(args.batch, 2 * args.batch if not args.quick else args.batch)
    x, y, _ = _data(n, n, 1, d, args.seed)
    x, y = x.astype(np.float32), y.astype(np.float32)
    eps = 0.05 * d
    out: dict[str, Any] = {"d": d, "batch": args.batch, "eps": eps, "steps": args.steps}
    for tol in (TOL, 1e-3):
        cm.settle()
        t, fitted = cm.measure(_pyot_step(ctx, x, y, eps, tol), args.repeats, args.budget)
        out[f"pyot_{tol:g}"] = {**t.as_dict(), "step_s": t.median / args.steps, "tol": tol,
                                "final_loss": float(fitted.loss_history[-1])}
        if ctx["ott"]:
            run = _ott_step(x, y, eps, min(args.batch, n), tol)
            cm.settle()
            t, val = cm.measure(_repeat(run, args.steps), args.repeats, args.budget)
            out[f"ott_{tol:g}"] = {**t.as_dict(), "step_s": t.median / args.steps,
                                   "threshold": tol, "loss": val}
    return out


def _repeat(run, steps: int):
    def go():
        for _ in range(steps):
            val = run()
        return val

    return go


def _ratio(peer: dict[str, Any] | None, mine: float) -> str:
    if not peer:
        return "-"
    key = "step_s" if "step_s" in peer else "median_s"
    return cm.fmt_ratio(peer[key] / mine)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    pot = cm.detect_peer("POT", ["ot"], "pot")
    ott = cm.detect_peer("OTT-JAX", ["jax", "ott", "optax"], "ott-jax")
    if args.quick:
        args.queries, args.targets, args.batch, args.steps = 2000, 1000, 128, 2
    dims = args.dims[:1] if args.quick else args.dims
    cm.print_header("pyot bench: maps", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", pot.status()), ("OTT-JAX", ott.status()),
        ("load (1 min)", str(cm.load_average())),
    ])
    ctx = {"args": args, "pyot": pyot, "ot": pot.handles.get("ot") if pot.available else None,
           "ott": ott.available}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' deprecation and convergence notices
        maps = [_map_case(ctx, d) for d in dims]
        fits = [_fit_case(ctx, d) for d in dims]
    cm.print_table(
        f"entropic map: {args.queries} queries x {args.targets} targets, float32, median time "
        "(err: max |T - T_float64| on the first 2000 queries)",
        ["d", "pyot", "err", "numpy/POT", "err", "numpy/pyot", "OTT", "err", "OTT/pyot"],
        [[str(c["d"]), cm.fmt_time(c["pyot"]["median_s"]), cm.fmt_sci(c["pyot"]["max_err"]),
          cm.fmt_time(c["numpy"]["median_s"]) if "numpy" in c else "-",
          cm.fmt_sci(c["numpy"]["max_err"]) if "numpy" in c else "-",
          _ratio(c.get("numpy"), c["pyot"]["median_s"]),
          cm.fmt_time(c["ott"]["median_s"]) if "ott" in c else "-",
          cm.fmt_sci(c["ott"]["max_err"]) if "ott" in c else "-",
          _ratio(c.get("ott"), c["pyot"]["median_s"])] for c in maps],
        right=[True] * 9,
    )
    rows = []
    for c in fits:
        for tol in (TOL, 1e-3):
            mine, peer = c[f"pyot_{tol:g}"], c.get(f"ott_{tol:g}")
            rows.append([str(c["d"]), f"{tol:g}", cm.fmt_time(mine["step_s"]),
                         cm.fmt_time(peer["step_s"]) if peer else "-",
                         _ratio(peer, mine["step_s"])])
    cm.print_table(
        f"Monge-gap map fitting: one training step, batch {args.batch}, median per step",
        ["d", "tol", "pyot", "OTT", "OTT/pyot"], rows, right=[True] * 5,
    )
    return {"maps": maps, "fit": fits}
