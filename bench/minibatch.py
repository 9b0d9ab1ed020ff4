"""``python -m bench minibatch``: mini-batch OT and the OT-CFM pairing, pyot against POT.

- m-OT: two clouds of ``--points`` points in d = 64 (uniform in the unit cube, seeded), batch
  sizes 64, 256, 1024, ``--batches`` (1000) batches, float64. ``pyot.minibatch_ot`` on the
  core's threads against the Python loop users write today (POT issue 598): per batch the same
  draws (the seeding of ALGORITHMS 7: one ``SeedSequence``, a child per batch drawing I then
  J), ``ot.dist`` then ``ot.emd``, value ``<plan, M>``. Where the POT loop would not fit in the
  budget it runs over the first batches only and its time is scaled to all of them (marked
  ``est.``). Both see the same batches, so the values agree to round-off (printed); both
  times include the batch draws.
- Dask: the same m-OT at batch size 256 on a ``distributed.LocalCluster`` of 2 worker
  processes (one thread each) against pyot's own threads (2); the cluster's start-up is not
  timed; the results are compared bit for bit. Skipped without ``distributed``, and in
  ``--quick`` runs unless ``--dask`` is given.
- ot_pairs: mini-batches of 256 points in d = 3072 (CIFAR-10 images, float32 torch tensors):
  ``pyot.torch.ot_pairs`` against what OT-CFM code does today (torchcfm's ``OTPlanSampler``):
  ``ot.dist``, ``ot.emd`` on uniform weights, the pairs from the plan; one mini-batch, and
  ``--pairs-batch`` (8) mini-batches at once. Both pairings must have the same total cost.
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

import numpy as np

from bench import _common as cm

BATCH_SIZES = (64, 256, 1024)
DIM = 64
PAIRS_N, PAIRS_DIM = 256, 3072


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("minibatch options")
    group.add_argument("--batch-sizes", type=_ints, default=BATCH_SIZES,
                       help="m-OT batch sizes (64,256,1024)")
    group.add_argument("--batches", type=int, default=1000, help="m-OT batches (1000)")
    group.add_argument("--points", type=int, default=10_000, help="points per cloud (10000)")
    group.add_argument("--dask", action="store_true", help="run the Dask case in --quick runs")
    group.add_argument("--no-dask", action="store_true", help="skip the Dask case")
    group.add_argument("--pairs-batch", type=int, default=8,
                       help="mini-batches of the batched ot_pairs case (8)")


def _pot_loop(ot: Any, x: np.ndarray, y: np.ndarray, size: int, k: int, seed: int,
              budget: float) -> tuple[float, int, np.ndarray]:
    """The Python loop over POT, batch draws included (the seeding of ALGORITHMS 7, so the
    batches are pyot's), over as many batches as fit in the budget: (seconds per batch,
    batches run, their values)."""
    w = np.full(size, 1.0 / size)
    values = []
    watch = cm.Stopwatch()
    for child in np.random.SeedSequence(seed).spawn(k):
        rng = np.random.default_rng(child)
        rows = rng.choice(len(x), size=size, replace=False)
        cols = rng.choice(len(y), size=size, replace=False)
        cost = ot.dist(x[rows], y[cols])
        plan = ot.emd(w, w, cost)
        values.append(float((plan * cost).sum()))
        if watch.elapsed() > budget:
            break
    return watch.elapsed() / len(values), len(values), np.array(values)


def _mot_case(ctx: dict[str, Any], size: int) -> dict[str, Any]:
    args, pyot, ot = ctx["args"], ctx["pyot"], ctx["ot"]
    x, y = ctx["points"]
    k = ctx["batches"]
    out: dict[str, Any] = {"batch_size": size, "n_batches": k, "d": x.shape[1]}
    cm.settle()
    t, res = cm.measure(
        lambda: pyot.minibatch_ot(x, y, batch_size=size, n_batches=k, seed=args.seed,
                                  threads=args.threads),
        args.repeats, args.budget,
    )
    out["pyot"] = {**t.as_dict(), "value": res.value}
    if ot is not None:
        cm.settle()
        per_batch, ran, values = _pot_loop(ot, x, y, size, k, args.seed, args.budget / 2)
        out["pot"] = {"median_s": per_batch * k, "batches_run": ran, "estimated": ran < k,
                      "max_abs_diff": float(np.abs(values - res.batch_values[:ran]).max())}
    return out


def _dask_case(ctx: dict[str, Any]) -> dict[str, Any] | None:
    args, pyot = ctx["args"], ctx["pyot"]
    try:
        import distributed
    except ImportError:
        return {"skipped": "distributed not installed (pip install 'dask[distributed]')"}
    x, y = ctx["points"]
    size = min(256, len(x))
    k = ctx["batches"]
    out: dict[str, Any] = {"batch_size": size, "n_batches": k, "workers": 2}

    def run(executor: Any, threads: int | None) -> Any:
        return pyot.minibatch_ot(x, y, batch_size=size, n_batches=k, seed=args.seed,
                                 executor=executor, threads=threads, return_plan=False)

    cm.settle()
    t, threaded = cm.measure(lambda: run(None, 2), args.repeats, args.budget)
    out["pyot_threads"] = t.as_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's start-up notices
        with (
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None) as cluster,
            distributed.Client(cluster) as client,
        ):
            executor = client.get_executor()
            t, dask = cm.measure(lambda: run(executor, None), args.repeats, args.budget)
    out["dask"] = t.as_dict()
    out["identical"] = bool(
        dask.value == threaded.value and np.array_equal(dask.batch_values, threaded.batch_values)
    )
    return out


def _pairs_case(ctx: dict[str, Any], batch: int) -> dict[str, Any]:
    args, ot = ctx["args"], ctx["ot"]
    import torch

    from pyot.torch import ot_pairs

    n, d = ctx["pairs_shape"]
    gen = torch.Generator().manual_seed(args.seed)
    shape = (batch, n, d) if batch > 1 else (n, d)
    x0 = torch.randn(*shape, generator=gen)
    x1 = torch.rand(*shape, generator=gen)
    out: dict[str, Any] = {"n": n, "d": d, "mini_batches": batch}
    torch.set_num_threads(args.threads)
    cm.settle()
    t, (p0, p1) = cm.measure(lambda: ot_pairs(x0, x1), args.repeats, args.budget)
    total = float(((p0 - p1) ** 2).sum())
    out["pyot"] = {**t.as_dict(), "total_cost": total}
    if ot is not None:
        w = np.full(n, 1.0 / n)

        def pot() -> float:
            costs = 0.0
            for u, v in zip(x0.reshape(-1, n, d), x1.reshape(-1, n, d), strict=True):
                cost = ot.dist(u.numpy(), v.numpy())
                plan = ot.emd(w, w, cost)
                paired = v[torch.as_tensor(plan.argmax(axis=1))]
                costs += float(((u - paired) ** 2).sum())
            return costs

        cm.settle()
        t, pot_total = cm.measure(pot, args.repeats, args.budget)
        out["pot"] = {**t.as_dict(), "total_cost": pot_total}
    return out


def _ratio(slow: float | None, fast: float | None) -> str:
    if slow is None or fast is None:
        return "-"
    return cm.fmt_ratio(slow / fast)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pyot = cm.import_pyot()
    peer = cm.detect_peer("POT", ["ot"], "pot")
    torch_peer = cm.detect_peer("torch", ["torch"], "torch")
    dask_peer = cm.detect_peer("distributed", ["distributed"], "distributed", load=False)
    quick = args.quick
    sizes = (32,) if quick else args.batch_sizes
    points = 500 if quick else args.points
    dim = 8 if quick else DIM
    batches = 50 if quick else args.batches
    pairs_shape = (64, 48) if quick else (PAIRS_N, PAIRS_DIM)
    cm.print_header("pyot bench: minibatch", [
        ("cpu", cm.cpu_model()), ("threads", str(args.threads)), ("pyot", pyot.__version__),
        ("POT", peer.status()), ("torch", torch_peer.status()),
        ("distributed", dask_peer.status()),
        ("m-OT", f"{points} points per cloud, d = {dim}, {batches} batches, float64"),
        ("ot_pairs", f"{pairs_shape[0]} points, d = {pairs_shape[1]}, float32"),
        ("load (1 min)", str(cm.load_average())),
    ])
    x, y = cm.uniform_points(points, points, dim, args.seed)
    ctx = {"args": args, "pyot": pyot, "ot": peer.handles.get("ot") if peer.available else None,
           "points": (x, y), "batches": batches, "pairs_shape": pairs_shape}
    result: dict[str, Any] = {}
    with cm.blas_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mot = [_mot_case(ctx, size) for size in sizes if size <= points]
        result["mot"] = mot
        cm.print_table(
            f"m-OT, {batches} batches: pyot ({args.threads} threads) vs a Python loop over "
            "POT ot.dist + ot.emd",
            ["batch", "pyot", "POT loop", "POT batches run", "max |dvalue|", "POT/pyot"],
            [[str(c["batch_size"]), cm.fmt_time(c["pyot"]["median_s"]),
              (cm.fmt_time(c["pot"]["median_s"]) + (" est." if c["pot"]["estimated"] else ""))
              if "pot" in c else "-",
              str(c["pot"]["batches_run"]) if "pot" in c else "-",
              cm.fmt_sci(c["pot"]["max_abs_diff"]) if "pot" in c else "-",
              _ratio(c.get("pot", {}).get("median_s"), c["pyot"]["median_s"])] for c in mot],
            right=[True] * 6,
        )
        run_dask = not args.no_dask and (args.dask or not quick)
        if run_dask:
            dask = _dask_case(ctx)
            result["dask"] = dask
            if "skipped" in dask:
                print(f"\nDask: skipped ({dask['skipped']})")
            else:
                cm.print_table(
                    f"m-OT on Dask: LocalCluster, 2 worker processes x 1 thread, vs pyot on 2 "
                    f"threads (batch {dask['batch_size']}, {dask['n_batches']} batches)",
                    ["pyot threads", "Dask", "Dask/pyot", "identical"],
                    [[cm.fmt_time(dask["pyot_threads"]["median_s"]),
                      cm.fmt_time(dask["dask"]["median_s"]),
                      _ratio(dask["dask"]["median_s"], dask["pyot_threads"]["median_s"]),
                      str(dask["identical"])]],
                    right=[True] * 4,
                )
        if torch_peer.available:
            pairs = [_pairs_case(ctx, 1), _pairs_case(ctx, 1 if quick else args.pairs_batch)]
            if quick:
                pairs = pairs[:1]
            result["ot_pairs"] = pairs
            cm.print_table(
                "ot_pairs (OT-CFM pairing) vs POT ot.dist + ot.emd + pairs from the plan",
                ["mini-batches", "n", "d", "pyot", "POT", "total cost rel. diff", "POT/pyot"],
                [[str(c["mini_batches"]), str(c["n"]), str(c["d"]),
                  cm.fmt_time(c["pyot"]["median_s"]),
                  cm.fmt_time(c["pot"]["median_s"]) if "pot" in c else "-",
                  cm.fmt_sci(abs(c["pyot"]["total_cost"] - c["pot"]["total_cost"])
                             / max(abs(c["pot"]["total_cost"]), math.ulp(1.0)))
                  if "pot" in c else "-",
                  _ratio(c.get("pot", {}).get("median_s"), c["pyot"]["median_s"])]
                 for c in pairs],
                right=[True] * 7,
            )
        else:
            print("\n" + f"ot_pairs: skipped ({torch_peer.status()})")
    return result
