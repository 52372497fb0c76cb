"""DICOMweb against a real, private Orthanc: QIDO search, WADO retrieve into a study, STOW of
SR/SEG, and every bad boundary (server down, refused login, malformed replies, huge studies)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from engine.cases import load_study
from engine.errors import Cancelled
from engine.interop.dicomweb import PacsClient, PacsSettings, date_range, retrieve_into_study
from engine.interop.errors import PacsError
from engine.interop.export import export_case
from engine.interop.orthanc import free_port
from engine.interop.sources import case_sources
from engine.interop.sr import read_report
from engine.progress import CancelToken
from tests.engine.interop_cases import build_case
from tests.orthanc_fixture import orthanc, orthanc_auth  # noqa: F401 - fixtures

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def loaded(orthanc, tmp_path_factory):  # noqa: F811
    """The SYNTHETIC interop case's images stored in Orthanc (via STOW-RS)."""
    case = build_case(Path(tmp_path_factory.mktemp("src")) / "study")
    files = [p for im in case.images if im.path.suffix == ".dcm" for p in [im.path]]
    files += sorted((case.folder / "mr").glob("*.dcm"))
    client = PacsClient(PacsSettings(orthanc.dicomweb_url))
    res = client.store(files)
    assert len(res.stored) == len(files) and not res.failed
    return case, client


def test_qido_search_by_patient_date_modality(loaded) -> None:
    case, client = loaded
    hits = client.search("SYN-1")
    assert len(hits) == 1 and hits[0].patient_id == "SYN-1"
    assert set(hits[0].modalities) >= {"MG", "US", "MR"}
    assert hits[0].n_instances == 3 + 6
    assert client.search("Synthetic*")[0].study_uid == hits[0].study_uid
    assert client.search("SYN-1", modality="MG") and not client.search("SYN-1", modality="SEG")
    today = pydicom.dcmread(case.image("mg_cc").path).StudyDate
    assert client.search(date_from=today, date_to=today)
    assert not client.search(date_from="19000101", date_to="19000102")
    assert not client.search("NOBODY")


def test_wado_retrieve_into_a_local_study_with_progress(loaded, tmp_path: Path) -> None:
    case, client = loaded
    uid = client.search("SYN-1")[0].study_uid
    seen: list[tuple[int, int]] = []
    res = retrieve_into_study(client, uid, tmp_path / "local", progress=lambda d, t, m: seen.append((d, t)))
    study = load_study(tmp_path / "local")
    mods = sorted(im.modality for c in study.cases for im in c.images)
    assert mods == ["MG", "MG", "MR", "US"], mods
    mr = next(im for c in study.cases for im in c.images if im.modality == "MR")
    assert len(list(Path(mr.path).glob("*.dcm"))) == 6
    assert not res.problems
    assert seen and seen[-1][0] == seen[-1][1]


def test_cancelled_retrieve_leaves_the_local_study_untouched(loaded, tmp_path: Path) -> None:
    case, client = loaded
    uid = client.search("SYN-1")[0].study_uid
    retrieve_into_study(client, uid, tmp_path / "local")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "local").rglob("*"))
    token = CancelToken()

    def cancel_after_two(done: int, total: int, msg: str) -> None:
        if done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        retrieve_into_study(client, uid, tmp_path / "local", progress=cancel_after_two, cancel=token)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "local").rglob("*")) == before


def test_stow_sr_and_seg_then_read_them_back_from_the_pacs(loaded, tmp_path: Path) -> None:
    case, client = loaded
    exp = export_case(case, tmp_path / "out", birads="4C")
    res = client.store(exp.files)
    assert len(res.stored) == len(exp.files) and not res.failed
    uid = client.search("SYN-1")[0].study_uid
    assert {"SR", "SEG"} <= set(client.search("SYN-1")[0].modalities)
    got = client.retrieve_study(uid, tmp_path / "dl")
    sr = next(p for p in got if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SR")
    back = read_report(sr, case_sources(case, tmp_path / "out" / "source"))
    assert [a.ann_id for a in back.annotations] == [a.ann_id for a in case.annotations]
    assert back.birads == "4C"


def test_huge_study_is_refused_before_download(loaded, tmp_path: Path, orthanc) -> None:  # noqa: F811
    case, _ = loaded
    small = PacsClient(PacsSettings(orthanc.dicomweb_url, max_instances=3))
    uid = small.search("SYN-1")[0].study_uid
    with pytest.raises(PacsError, match="over the limit of 3"):
        retrieve_into_study(small, uid, tmp_path / "local")
    assert not (tmp_path / "local").exists()
    tiny = PacsClient(PacsSettings(orthanc.dicomweb_url, max_bytes=50_000))
    with pytest.raises(PacsError, match="over 0 MB; stopped"):
        tiny.retrieve_study(uid, tmp_path / "dl")


def test_pacs_down_is_one_clear_message(tmp_path: Path) -> None:
    client = PacsClient(PacsSettings(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2))
    with pytest.raises(PacsError, match="is not reachable"):
        client.search("x")
    with pytest.raises(PacsError, match="is not reachable"):
        retrieve_into_study(client, "1.2.3", tmp_path / "local")
    assert not (tmp_path / "local").exists()


def test_wrong_password_is_refused_and_never_echoed(orthanc_auth) -> None:  # noqa: F811
    good = PacsClient(PacsSettings(orthanc_auth.dicomweb_url, user="reader", password="s3cret-pw"))
    assert good.search() == []
    bad = PacsSettings(orthanc_auth.dicomweb_url, user="reader", password="wrong-pw-123")
    with pytest.raises(PacsError, match="HTTP 401") as ei:
        PacsClient(bad).search()
    assert "wrong-pw-123" not in str(ei.value) and "wrong-pw-123" not in repr(bad)
    inline = PacsSettings(orthanc_auth.dicomweb_url.replace("http://", "http://reader:s3cret-pw@"))
    assert "s3cret-pw" not in inline.safe_url


class _Garbage(http.server.BaseHTTPRequestHandler):
    body = b"<html>proxy error</html>"
    ctype = "text/html"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", self.ctype)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[type[_Garbage]]:
    handler = type("H", (_Garbage,), {})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{srv.server_address[1]}/dicom-web"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("body,ctype,match", [
    (b"<html>proxy error</html>", "text/html", "malformed"),
    (b'{"not": "a list"}', "application/dicom+json", "malformed"),
    (json.dumps([{"00100020": {"vr": "LO", "Value": ["X"]}}]).encode(), "application/dicom+json", "no StudyInstanceUID"),
    (b"[1, 2, 3]", "application/dicom+json", "malformed"),
])
def test_malformed_dicomweb_replies(garbage_server, body, ctype, match, tmp_path: Path) -> None:
    garbage_server.body, garbage_server.ctype = body, ctype
    client = PacsClient(PacsSettings(garbage_server.url, timeout_s=3))  # type: ignore[attr-defined]
    with pytest.raises(PacsError, match=match):
        client.search("x")
    with pytest.raises(PacsError):
        retrieve_into_study(client, "1.2.3", tmp_path / "local")
    assert not (tmp_path / "local").exists()


def test_date_range_validation() -> None:
    assert date_range("2024-01-02", "") == "20240102-"
    assert date_range("20240102", "20240102") == "20240102"
    assert date_range(None, None) is None
    with pytest.raises(PacsError, match="YYYYMMDD"):
        date_range("2024/01/02", None)
