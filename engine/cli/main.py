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


def _command_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(_cli_pkg.__path__) if m.name.startswith("cmd_"))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser.

    Args:
        command: When given and it names a subcommand module, only that module is imported
            (``info`` should not pay for importing torch); otherwise every subcommand is
            registered (top-level ``--help``).
    """
    parser = argparse.ArgumentParser(
        prog="breast-engine",
        description="Headless breast-imaging engine: image info, scoring, models, training, "
        "evaluation, reader-study statistics and benchmarks. Scores are research decision "
        "support, not a diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = _command_modules()
    wanted = f"cmd_{command.replace('-', '_')}" if command else None
    if wanted in modules:
        modules = [wanted]
    for mod in modules:
        importlib.import_module(f"engine.cli.{mod}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``breast-engine``; returns the process exit status."""
    from engine import threads

    threads.apply()  # OpenMP's passive wait, before any command imports torch (bench threads)
    threads.keep_freed_memory()  # one image's arrays reused by the next (score, bench score)
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(args_list)
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
