"""Validate DICOM files with David Clunie's ``dciodvfy`` (Debian package ``dicom3tools``).

``dciodvfy`` checks an object against the IOD/module tables of the standard compiled into it
(no network, no XML download). Its ``Error -`` lines are failures; ``Warning -`` lines (e.g. our
declared local coding scheme ``99BRSTRDR``, or the source's retired one-component names) are not.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Validation:
    """``dciodvfy`` verdict on one file."""

    path: Path
    iod: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No ``Error`` line."""
        return not self.errors


def dciodvfy_path() -> str | None:
    """The ``dciodvfy`` executable, or None when dicom3tools is not installed."""
    return shutil.which("dciodvfy")


def validate(path: Path, *, timeout_s: float = 60.0) -> Validation:
    """Run ``dciodvfy`` on ``path``.

    Raises:
        FileNotFoundError: dciodvfy is not installed (``apt-get install dicom3tools``).
    """
    exe = dciodvfy_path()
    if exe is None:
        raise FileNotFoundError("dciodvfy is not installed (Debian package dicom3tools)")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=timeout_s, check=False)
    v = Validation(Path(path))
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line.startswith("Error"):
            v.errors.append(line)
        elif line.startswith("Warning"):
            v.warnings.append(line)
        elif line and not v.iod and " " not in line:
            v.iod = line
    return v
