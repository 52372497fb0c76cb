"""pytest fixtures: a private Orthanc (own config, temp storage, random loopback port) per module.

Import them into a test module with ``from tests.orthanc_fixture import orthanc, orthanc_auth``.
They skip, naming the missing Debian package, only where Orthanc cannot be installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.interop.orthanc import PrivateOrthanc, missing_reason


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateOrthanc]:
    """A running private Orthanc without authentication."""
    reason = missing_reason()
    if reason:
        pytest.skip(f"{reason}: apt-get install orthanc orthanc-dicomweb")
    o = PrivateOrthanc(Path(tmp_path_factory.mktemp("orthanc")))
    o.start()
    try:
        yield o
    finally:
        o.stop()


@pytest.fixture(scope="module")
def orthanc_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateOrthanc]:
    """A running private Orthanc that requires the test user ``reader`` / ``s3cret-pw``."""
    reason = missing_reason()
    if reason:
        pytest.skip(f"{reason}: apt-get install orthanc orthanc-dicomweb")
    o = PrivateOrthanc(Path(tmp_path_factory.mktemp("orthanc-auth")), user="reader", password="s3cret-pw")
    o.start()
    try:
        yield o
    finally:
        o.stop()
