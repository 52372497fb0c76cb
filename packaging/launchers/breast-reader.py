"""Frozen entry point of the ``breast-reader`` GUI: the same function as the console script.

PyInstaller runs its entry script as ``__main__``; calling ``reader_app.main:main`` from this
launcher (instead of freezing ``reader_app/main.py`` as a script) keeps the package's relative
imports and ``if __name__ == "__main__"`` guards working exactly as in the installed app.
"""

import multiprocessing
import sys

from reader_app.main import main

if __name__ == "__main__":
    # Data-loader workers started with "spawn" (Windows, macOS) re-run this executable.
    multiprocessing.freeze_support()
    sys.exit(main())
