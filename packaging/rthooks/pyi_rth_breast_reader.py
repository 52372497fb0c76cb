"""PyInstaller runtime hook for the breast-reader bundle (runs before the entry script).

* ``BREAST_READER_RESOURCES`` points at the bundled ``resources/`` folder, so code that
  locates resources (see engine/resources.py) finds the models and the demo study
  without knowing it is frozen. An explicit value set by the user wins.
* ``BREAST_READER_FROZEN=1`` lets the app say "bundle" in its About box / logs.
* The bundle must never write inside its own folder: Python byte-code writing is disabled
  (a script run through the bundle's interpreter would otherwise leave ``__pycache__``
  folders next to it). User data goes to QStandardPaths folders (the GUI's job).
"""

import os
import sys

_base = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(sys.executable)))
os.environ.setdefault("BREAST_READER_RESOURCES", os.path.join(_base, "resources"))
os.environ["BREAST_READER_FROZEN"] = "1"
sys.dont_write_bytecode = True
del _base
