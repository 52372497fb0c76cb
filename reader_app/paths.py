"""Per-user data and settings locations (never the install folder)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, QStandardPaths

from engine.resources import resource_dir

ORG = "breast-reader"
APP = "breast-reader"
MAX_RECENT = 8


def _ensure_names() -> None:
    if not QCoreApplication.organizationName():
        QCoreApplication.setOrganizationName(ORG)
    if not QCoreApplication.applicationName():
        QCoreApplication.setApplicationName(APP)


def demo_study_dir() -> Path:
    """The bundled demo study (``$BREAST_READER_DEMO`` overrides; PyInstaller bundles supported)."""
    return resource_dir("demo", "BREAST_READER_DEMO")


def user_data_dir() -> Path:
    """Writable per-user folder (``$BREAST_READER_DATA`` overrides, e.g. in tests)."""
    env = os.environ.get("BREAST_READER_DATA")
    if env:
        p = Path(env)
    else:
        _ensure_names()
        p = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
    p.mkdir(parents=True, exist_ok=True)
    return p


def settings() -> QSettings:
    """Application settings (an INI file in the user data dir when ``$BREAST_READER_DATA`` is set)."""
    if os.environ.get("BREAST_READER_DATA"):
        return QSettings(str(user_data_dir() / "settings.ini"), QSettings.Format.IniFormat)
    _ensure_names()
    return QSettings()


def recent_studies() -> list[str]:
    """Recently opened study folders that still exist, newest first."""
    raw = settings().value("recent_studies", [])
    items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else []
    return [str(p) for p in items if Path(str(p)).is_dir()][:MAX_RECENT]


def add_recent_study(folder: str | os.PathLike[str]) -> list[str]:
    """Put ``folder`` first in the recent list; returns the new list."""
    f = str(Path(folder).resolve())
    items = [f] + [p for p in recent_studies() if p != f]
    s = settings()
    s.setValue("recent_studies", items[:MAX_RECENT])
    s.sync()
    return items[:MAX_RECENT]
