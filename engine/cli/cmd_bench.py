"""`breast-engine bench NAME --json`: benchmarks discovered from ``engine/bench/<name>.py``.

Each benchmark module defines ``NAME`` (the CLI name: the module name with ``_`` -> ``-``),
``HELP`` and ``run(args) -> dict`` plus optional ``add_arguments(parser)``. Results are
measured side by side in one run and printed as JSON.

Benchmark modules import torch/scipy; they are imported only when ``bench`` runs, so that
other commands (``info``, ``score`` ...) start without paying for them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import engine.bench as _bench_pkg


def _bench_modules() -> dict[str, str]:
    """CLI name -> module name, from file names alone (no import)."""
    return {
        m.name.replace("_", "-"): m.name
        for m in pkgutil.iter_modules(_bench_pkg.__path__)
        if not m.name.startswith("_")
    }


def _run(args: argparse.Namespace) -> int:
    mod = importlib.import_module(f"engine.bench.{_bench_modules()[args.bench]}")
    parser = argparse.ArgumentParser(prog=f"breast-engine bench {mod.NAME}", description=mod.HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    if hasattr(mod, "add_arguments"):
        mod.add_arguments(parser)
    bargs = parser.parse_args(args.bench_args)
    result = mod.run(bargs)
    if bargs.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``bench`` command; ``bench NAME -h`` shows that benchmark's own options."""
    names = sorted(_bench_modules())
    p = sub.add_parser(
        "bench", help="run a benchmark (JSON output)",
        description="Benchmarks: " + ", ".join(names) + ". `bench NAME -h` for a benchmark's options.",
    )
    p.add_argument("bench", choices=names, metavar="NAME", help=" | ".join(names))
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of that benchmark (e.g. --json)")
    p.set_defaults(func=_run)
