"""Entry point of ``breast-engine``.

Subcommands are discovered from ``engine/cli/cmd_*.py`` modules; each defines
``register(subparsers) -> None`` that adds its parser and sets ``func=handler`` where
``handler(args) -> int`` returns the exit status. Errors derived from
:class:`engine.errors.BreastReaderError` become one ``breast-engine: error: ...`` line.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import engine.cli as _cli_pkg
from engine import __version__
from engine.errors import BreastReaderError


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="breast-engine",
        description="Headless breast-imaging engine: image info, scoring, models, training, "
        "evaluation, reader-study statistics and benchmarks. Scores are research decision "
        "support, not a diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in sorted(m.name for m in pkgutil.iter_modules(_cli_pkg.__path__)):
        if mod.startswith("cmd_"):
            importlib.import_module(f"engine.cli.{mod}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``breast-engine``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BreastReaderError as exc:
        print(f"breast-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("breast-engine: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
