"""Command line.

- ``python -m pyot demo``: every solver on generated data, a table and a PNG.
- ``python -m pyot solve X.npy Y.npy --solver sinkhorn --eps 0.01``: OT between point files.
- ``python -m pyot bench [family] --quick``: the benchmark runner of a source checkout.
- ``python -m pyot --version``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys


def _bench(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("bench") is None:
        print("python -m pyot bench: the benchmarks live in the source tree (bench/); run this "
              "from a checkout of pyot", file=sys.stderr)
        return 2
    from bench.__main__ import FAMILIES
    from bench.__main__ import main as bench_main

    families = list(FAMILIES) if args.family == "all" else [args.family]
    if args.family != "all" and args.family not in FAMILIES:
        print(f"python -m pyot bench: unknown family {args.family!r} (choose from "
              f"{', '.join(FAMILIES)} or all)", file=sys.stderr)
        return 2
    extra = ["--quick"] if args.quick else []
    return max(bench_main([family, *extra]) for family in families)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run every solver on generated data and print a table")
    demo.add_argument("--out", default=".", help="folder for the PNG (default: current folder)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    from . import _cli

    _cli.add_parser(sub)
    bench = sub.add_parser("bench", help="run the benchmarks (from a source checkout)")
    bench.add_argument("family", nargs="?", default="all", help="a family, or all (default)")
    bench.add_argument("--quick", action="store_true", help="the smallest case of each")
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(out_dir=args.out, seed=args.seed)
    if args.command == "solve":
        return _cli.run(args)
    if args.command == "bench":
        return _bench(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
