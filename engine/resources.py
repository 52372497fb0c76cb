"""Locate the read-only ``resources/`` folder (models, demo study, icons), frozen or not.

The one place that knows where bundled resources live: ``engine.models.weights`` (shipped
models) and ``reader_app.main`` (demo study, icons) both call :func:`resource`.

Order of precedence:

1. ``$BREAST_READER_RESOURCES`` (set by the bundle's runtime hook
   ``packaging/rthooks/pyi_rth_breast_reader.py`` to ``<bundle>/_internal/resources``; a user
   or a test may also set it);
2. ``sys._MEIPASS/resources`` when running frozen (PyInstaller one-folder or one-file);
3. ``<source tree>/resources`` (editable install / repository checkout), found from this
   module's own location.

Everything returned is READ-ONLY: the bundle may be installed in a read-only folder (/opt,
Program Files). Writable user data belongs in QStandardPaths folders (reader_app/paths.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resources_root() -> Path:
    """Folder holding ``models/``, ``demo/``, ``icons/`` and ``LICENSES/``.

    Returns:
        Absolute path of the resources folder (it is not created).
    """
    env = os.environ.get("BREAST_READER_RESOURCES")
    if env:
        return Path(env).resolve()
    if is_frozen():
        return Path(sys._MEIPASS) / "resources"  # type: ignore[attr-defined]
    # engine/resources.py -> parents[1] is the repository root; inside a frozen bundle
    # __file__ is <_MEIPASS>/engine/resources.pyc, so this also resolves to _MEIPASS.
    return Path(__file__).resolve().parents[1] / "resources"


def resource(*parts: str) -> Path:
    """Path of a bundled resource, e.g. ``resource("demo")`` or ``resource("models", "defaults.json")``."""
    return resources_root().joinpath(*parts)


def resource_dir(name: str, env: str) -> Path:
    """A bundled resource folder that the environment variable ``env`` may point elsewhere.

    Args:
        name: Folder under ``resources/`` (``"models"``, ``"demo"``).
        env: Variable that overrides it (``BREAST_READER_MODELS``, ``BREAST_READER_DEMO``).
    """
    override = os.environ.get(env)
    return Path(override) if override else resource(name)
