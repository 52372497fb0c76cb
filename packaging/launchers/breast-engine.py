"""Frozen entry point of the headless ``breast-engine`` CLI (``engine.cli.main:main``)."""

import multiprocessing
import sys

from engine.cli.main import main

if __name__ == "__main__":
    # Data-loader workers started with "spawn" (Windows, macOS) re-run this executable.
    multiprocessing.freeze_support()
    sys.exit(main())
