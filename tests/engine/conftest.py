"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.tiny_study import TinyBusi, write_tiny_busi


@pytest.fixture
def tiny_busi(tmp_path: Path) -> TinyBusi:
    """``tiny_busi(name="busi", **kw)`` writes :func:`write_tiny_busi` under ``tmp_path / name``."""

    def make(name: str = "busi", *, n: int = 14, normals: int = 0, shape: tuple[int, int] = (96, 128)) -> Path:
        return write_tiny_busi(tmp_path / name, n=n, normals=normals, shape=shape)

    return make
