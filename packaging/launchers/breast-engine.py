"""Frozen entry point of the headless ``breast-engine`` CLI (``engine.cli.main:main``)."""

import sys

from engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
