"""Reader-study screens (Qt) and the ``breast-reader study`` commands.

``open_reading_session(definition, parent=None)`` opens the blinded reading window; the
session logic itself is Qt-free in :mod:`engine.study.session`.
"""

from __future__ import annotations

from typing import Any


def open_reading_session(definition: Any, parent: Any = None, **kwargs: Any) -> Any:
    """Open a reading session window on a study definition (TOML file or its folder)."""
    from reader_app.study.qt_session import open_reading_session as _open

    return _open(definition, parent, **kwargs)


__all__ = ["open_reading_session"]
