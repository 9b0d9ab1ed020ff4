"""Benchmark runner: ``python -m bench <family> [--quick] [--json PATH] [--repeats K] ...``.

Families are registered in :data:`FAMILIES` as ``name -> (module, one-line description)``; the
module is imported only when its family runs, so one family's peers never slow another's start.
A family module provides ``add_arguments(parser)`` (its own options) and ``run(args) -> dict``
(prints its tables, returns everything measured, which ``--json`` writes out).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import _common

FAMILIES: dict[str, tuple[str, str]] = {
    "sinkhorn": (
        "bench.sinkhorn",
        "entropic OT: time to tol, accuracy and per-iteration hardware bound vs POT, OTT-JAX, "
        "GeomLoss",
    ),
    "exact": (
        "bench.exact",
        "network simplex (single, threaded, batched) vs POT ot.emd and scipy "
        "linear_sum_assignment; wasserstein_1d vs POT and scipy",
    ),
    "partial": (
        "bench.partial",
        "partial OT, exact and entropic, vs POT ot.partial at the same tolerance",
    ),
    "sparse": (
        "bench.sparse",
        "sparsity-constrained and quadratic OT: time to POT's marginal error vs POT smooth_ot",
    ),
    "torch": (
        "bench.torch",
        "SinkhornLoss forward + backward vs GeomLoss, POT's torch backend and OTT-JAX jax.grad",
    ),
    "sliced": (
        "bench.sliced",
        "sliced Wasserstein: time vs POT and OTT-JAX, sort phase vs std::sort, estimation error "
        "against L for random / orthogonal / QMC directions",
    ),
    "minibatch": (
        "bench.minibatch",
        "m-OT on threads vs a Python loop over POT ot.emd; Dask LocalCluster vs threads; "
        "ot_pairs (OT-CFM pairing) vs POT ot.dist + ot.emd",
    ),
    "inverse": (
        "bench.inverse",
        "inverse OT (bilinear cost, l1): time to tol and support F1 vs FISTA over POT "
        "ot.sinkhorn",
    ),
    "cuda": (
        "bench.cuda",
        "CUDA kernels (needs a GPU): online Sinkhorn vs GeomLoss/KeOps and flash-sinkhorn at "
        "the same tolerance, float32/float64; sliced Wasserstein vs POT on CUDA tensors",
    ),
    "maps": (
        "bench.maps",
        "EntropicMap evaluation vs a numpy/POT barycentric projection and OTT-JAX "
        "DualPotentials.transport; one fit_monge_gap_map step vs OTT-JAX's MongeGapEstimator step",
    ),
}


def _family_list() -> str:
    width = max(len(name) for name in FAMILIES)
    return "\n".join(f"  {name:<{width}}  {desc}" for name, (_, desc) in FAMILIES.items())


def _usage() -> str:
    return (
        "usage: python -m bench <family> [--quick] [--json PATH] [--repeats K] [options]\n"
        "       python -m bench <family> --help   (the family's own options)\n\n"
        f"families:\n{_family_list()}\n"
    )


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--quick", action="store_true", help="run the smallest case only (what CI runs)"
    )
    group.add_argument("--json", metavar="PATH", help="write every number measured to PATH")
    group.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="K",
        help="timed repeats after one warm-up run; the median is reported (default 3)",
    )
    group.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall budget per solver and case; sets each solver's iteration cap from a short "
        "probe run (default 60, 4 with --quick)",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for pyot and every peer (default: all cores available to the process)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), end="")
        return 0 if argv else 2
    family, rest = argv[0], argv[1:]
    if family not in FAMILIES:
        print(f"python -m bench: unknown family {family!r}\n", file=sys.stderr)
        print(_usage(), end="", file=sys.stderr)
        return 2
    module = importlib.import_module(FAMILIES[family][0])
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {family}", description=FAMILIES[family][1]
    )
    _common_arguments(parser)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.budget is None:
        args.budget = 4.0 if args.quick else 60.0
    if args.budget <= 0:
        parser.error("--budget must be positive")
    args.threads = args.threads or _common.available_cores()
    result = module.run(args)
    if args.json:
        _common.write_json(args.json, {"family": family, "argv": argv, **result})
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
