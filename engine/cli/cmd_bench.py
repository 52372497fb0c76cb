"""`breast-engine bench NAME --json`: benchmarks discovered from ``engine/bench/<name>.py``.

Each benchmark module defines ``NAME`` (the CLI name, e.g. ``"patch-map"``), ``HELP`` and
``run(args) -> dict`` plus optional ``add_arguments(parser)``. Results are measured side by
side in one run and printed as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from typing import Any

import engine.bench as _bench_pkg


def _handler(mod: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        result = mod.run(args)
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k}: {v}")
        return 0

    return run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``bench`` command and one subcommand per benchmark module."""
    p = sub.add_parser("bench", help="run a benchmark (JSON output)")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    bsub.required = True
    for m in sorted(x.name for x in pkgutil.iter_modules(_bench_pkg.__path__)):
        if m.startswith("_"):
            continue
        mod = importlib.import_module(f"engine.bench.{m}")
        bp = bsub.add_parser(mod.NAME, help=mod.HELP)
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(bp)
        bp.set_defaults(func=_handler(mod))
