"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A reader of the target sees the old file or the complete new one, never a partial or
0-byte file, whatever happens mid-write (disk full, kill, exception).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_open", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix); on success it replaces ``path``.

    On any exception the temp file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OSError(f"{target}: nothing was written")
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | PathLike[str], mode: str = "w", newline: str | None = None) -> Iterator[IO[str]]:
    """Text file opened for writing that appears at ``path`` only once fully written."""
    with atomic_path(path) as tmp, open(tmp, mode, newline=newline, encoding="utf-8") as fh:
        yield fh
        fh.flush()


def atomic_write_text(path: str | PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)
