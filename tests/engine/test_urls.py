"""One rule for secrets in service URLs (PACS DICOMweb and the shared PostgreSQL database)."""

from __future__ import annotations

from engine.interop.dicomweb import PacsSettings
from engine.io.urls import safe_url
from engine.study import pg


def test_password_never_survives_and_the_user_only_when_asked() -> None:
    url = "https://alice:s3cret@pacs.example.org:8443/dicom-web?token=abc#x"
    assert safe_url(url) == "https://pacs.example.org:8443/dicom-web"
    assert safe_url(url, keep_user=True) == "https://alice@pacs.example.org:8443/dicom-web"
    assert safe_url("http://127.0.0.1/dicom-web") == "http://127.0.0.1/dicom-web"


def test_pacs_and_database_use_the_one_rule() -> None:
    db = "postgresql://reader:pw@127.0.0.1:5433/study"
    assert pg.safe_url(db) == "postgresql://reader@127.0.0.1:5433/study"
    assert "pw" not in pg.safe_url(db)
    ps = PacsSettings(url="http://user:pw@localhost:8042/dicom-web")
    assert ps.safe_url == "http://localhost:8042/dicom-web"
