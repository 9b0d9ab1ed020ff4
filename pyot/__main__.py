"""Command line: ``python -m pyot demo`` (a tour on generated data) and ``--version``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyot", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run every solver on generated data and print a table")
    demo.add_argument("--out", default=".", help="folder for the PNG (default: current folder)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(out_dir=args.out, seed=args.seed)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
