"""breast-reader engine: image I/O, cases, models, saliency, training and statistics.

Headless by contract: nothing under ``engine`` imports Qt (checked by import-linter and by
``tests/engine/test_headless.py``). Scores produced here are research decision support, not
a diagnosis.
"""

from __future__ import annotations

__version__ = "0.1.0"
