"""Search, retrieve and send through a PACS's DICOMweb services (dicomweb-client).

* :meth:`PacsClient.search` — QIDO-RS studies by patient (ID or name, wildcards), study date
  range and modality;
* :meth:`PacsClient.retrieve_study` — WADO-RS the study's instances into a download folder,
  with progress and cancel, bounded by instance count and bytes; then
  :func:`retrieve_into_study` imports them with the engine's DICOM importer
  (:func:`engine.cases.import_dicom_folder`: one case per patient/study/laterality);
* :meth:`PacsClient.store` — STOW-RS of the SR/SEG (and Secondary Capture wrappers).

Every failure — server down, refused login, a reply that is not DICOMweb, a study over the
limits — is one :class:`~engine.interop.errors.PacsError` naming the server URL *without*
credentials. A failed or cancelled retrieval removes its download folder and leaves the local
study exactly as it was. Passwords are never part of a message, a ``repr`` or a log line.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Cancelled
from engine.interop.errors import PacsError
from engine.io.urls import safe_url
from engine.progress import CancelToken, ProgressCallback, check, report

#: Refuse a retrieval of more instances than this unless the caller raises it.
MAX_INSTANCES = 5000
#: ... or more bytes than this (sum of the received instances).
MAX_BYTES = 4 * 1024**3
MODALITY_FILTERS = ("", "MG", "US", "MR", "SR", "SEG")


@dataclass
class PacsSettings:
    """How to reach a PACS's DICOMweb root (e.g. ``https://pacs.example.org/dicom-web``).

    The password is kept out of ``repr`` and of every message.
    """

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    max_instances: int = MAX_INSTANCES
    max_bytes: int = MAX_BYTES
    verify_tls: bool = True

    @property
    def safe_url(self) -> str:
        """The URL without any user:password part (for messages)."""
        return safe_url(self.url)


@dataclass
class StudyHit:
    """One QIDO-RS study result."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    description: str = ""
    accession: str = ""
    modalities: list[str] = field(default_factory=list)
    n_series: int | None = None
    n_instances: int | None = None


@dataclass
class StoreResult:
    """What STOW-RS accepted and refused."""

    stored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _value(attrs: dict[str, Any], tag: str) -> Any:
    """First value of a DICOM JSON attribute (PS3.18 F.2), or None."""
    el = attrs.get(tag)
    if not isinstance(el, dict):
        return None
    vals = el.get("Value")
    if not isinstance(vals, list) or not vals:
        return None
    v = vals[0]
    if isinstance(v, dict):  # PersonName
        return v.get("Alphabetic") or ""
    return v


def _values(attrs: dict[str, Any], tag: str) -> list[str]:
    el = attrs.get(tag)
    vals = el.get("Value") if isinstance(el, dict) else None
    return [str(v) for v in vals] if isinstance(vals, list) else []


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def parse_study(attrs: Any, where: str) -> StudyHit:
    """A QIDO-RS study record -> :class:`StudyHit`.

    Raises:
        PacsError: The record is not DICOM JSON or has no StudyInstanceUID.
    """
    if not isinstance(attrs, dict):
        raise PacsError(f"{where}: malformed QIDO-RS reply (a study record is {type(attrs).__name__}, not an object)")
    uid = _value(attrs, "0020000D")
    if not uid or not isinstance(uid, str):
        raise PacsError(f"{where}: malformed QIDO-RS reply (a study has no StudyInstanceUID)")
    return StudyHit(
        study_uid=uid,
        patient_id=str(_value(attrs, "00100020") or ""),
        patient_name=str(_value(attrs, "00100010") or ""),
        study_date=str(_value(attrs, "00080020") or ""),
        description=str(_value(attrs, "00081030") or ""),
        accession=str(_value(attrs, "00080050") or ""),
        modalities=_values(attrs, "00080061"),
        n_series=_int(_value(attrs, "00201206")),
        n_instances=_int(_value(attrs, "00201208")),
    )


def date_range(date_from: str | None, date_to: str | None) -> str | None:
    """A QIDO StudyDate range ``YYYYMMDD-YYYYMMDD`` (either end open), or None."""
    a = (date_from or "").replace("-", "").strip()
    b = (date_to or "").replace("-", "").strip()
    for d in (a, b):
        if d and (len(d) != 8 or not d.isdigit()):
            raise PacsError(f"date {d!r} must be YYYYMMDD or YYYY-MM-DD")
    if not a and not b:
        return None
    return a if a and a == b else f"{a}-{b}"


def _wildcard_session() -> Any:
    import requests

    class WildcardSession(requests.Session):
        """Sends QIDO's ``*`` wildcard literally (it is a legal query character, RFC 3986).

        dicomweb-client percent-encodes it as ``%2A``, which Orthanc 1.10's DICOMweb plugin
        does not decode: a wildcard name search would silently match nothing.
        """

        def send(self, request: Any, **kwargs: Any) -> Any:
            if request.url and "?" in request.url:
                base, query = request.url.split("?", 1)
                request.url = base + "?" + query.replace("%2A", "*").replace("%2a", "*")
            return super().send(request, **kwargs)

    return WildcardSession()


class PacsClient:
    """DICOMweb client of one PACS (see module doc)."""

    def __init__(self, settings: PacsSettings) -> None:
        self.settings = settings
        self._client: Any = None

    @property
    def where(self) -> str:
        """The server as named in messages."""
        return f"PACS {self.settings.safe_url}"

    def client(self) -> Any:
        """The dicomweb-client object (created lazily)."""
        if self._client is None:
            import requests
            from dicomweb_client.api import DICOMwebClient

            s = self.settings
            if not s.url.lower().startswith(("http://", "https://")):
                raise PacsError(f"PACS URL {s.safe_url!r} must start with http:// or https://")
            session = _wildcard_session()
            session.verify = s.verify_tls
            if s.user:
                session.auth = (s.user, s.password or "")
            client = DICOMwebClient(url=s.safe_url, session=session, timeout=s.timeout_s)
            # dicomweb-client retries EVERY failure (connection refused included) 5 times with
            # 1-2-4-8 s back-off: a PACS that is down would hang the dialog for half a minute.
            client.set_http_retry_params(retry=True, max_attempts=2, wait_exponential_multiplier=200)
            # ... and logs each retried failure as a WARNING with a traceback: keep logs clean,
            # the one message the user sees is the PacsError below.
            logging.getLogger("retrying").setLevel(logging.ERROR)
            self._client = client
        return self._client

    def _fail(self, exc: BaseException, what: str) -> PacsError:
        import requests

        if isinstance(exc, PacsError):
            return exc
        if isinstance(exc, requests.exceptions.ConnectionError):
            return PacsError(f"{self.where} is not reachable ({what}): is it running and is the URL right?")
        if isinstance(exc, requests.exceptions.Timeout):
            return PacsError(f"{self.where} did not answer within {self.settings.timeout_s:g} s ({what})")
        if isinstance(exc, requests.exceptions.HTTPError):
            code = exc.response.status_code if exc.response is not None else "?"
            hint = " (check user and password)" if code in (401, 403) else ""
            return PacsError(f"{self.where} refused {what}: HTTP {code}{hint}")
        return PacsError(f"{self.where} sent a malformed reply to {what} ({type(exc).__name__})")

    # ------------------------------------------------------------------ QIDO-RS
    def search(
        self,
        patient: str = "",
        *,
        date_from: str | None = None,
        date_to: str | None = None,
        modality: str = "",
        limit: int = 200,
    ) -> list[StudyHit]:
        """QIDO-RS studies.

        Args:
            patient: PatientID, or a name with ``*`` wildcards (a value with a letter and no
                digit is taken as a name); empty = any.
            date_from, date_to: Study date range (YYYYMMDD or YYYY-MM-DD), either may be empty.
            modality: One of :data:`MODALITY_FILTERS` (ModalitiesInStudy).
            limit: At most this many studies.
        """
        filters: dict[str, Any] = {}
        p = patient.strip()
        if p:
            is_name = any(c.isalpha() for c in p) and not any(c.isdigit() for c in p)
            filters["PatientName" if is_name else "PatientID"] = p
        dr = date_range(date_from, date_to)
        if dr:
            filters["StudyDate"] = dr
        if modality:
            if modality.upper() not in MODALITY_FILTERS:
                raise PacsError(f"modality {modality!r} is not one of {', '.join(m for m in MODALITY_FILTERS if m)}")
            filters["ModalitiesInStudy"] = modality.upper()
        fields = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                  "NumberOfStudyRelatedInstances", "AccessionNumber"]
        try:
            raw = self.client().search_for_studies(search_filters=filters, limit=limit, fields=fields)
        except Exception as exc:  # noqa: BLE001 - every transport/format failure is one message
            raise self._fail(exc, "the study search") from None
        if not isinstance(raw, list):
            raise PacsError(f"{self.where}: malformed QIDO-RS reply (expected a JSON array)")
        return [parse_study(r, self.where) for r in raw]

    def study(self, study_uid: str) -> StudyHit:
        """QIDO-RS of one study (with its instance count)."""
        try:
            raw = self.client().search_for_studies(
                search_filters={"StudyInstanceUID": study_uid},
                fields=["NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries", "ModalitiesInStudy"],
            )
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, "the study look-up") from None
        if not isinstance(raw, list) or not raw:
            raise PacsError(f"{self.where} has no study {study_uid}")
        return parse_study(raw[0], self.where)

    # ------------------------------------------------------------------ WADO-RS
    def retrieve_study(
        self,
        study_uid: str,
        dest: Path,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Path]:
        """WADO-RS every instance of a study into ``dest`` (one ``<SOPInstanceUID>.dcm`` each).

        Raises:
            PacsError: Server failure, malformed reply, or the study is over the limits.
            Cancelled: ``cancel`` was triggered (the files written so far stay in ``dest``;
                :func:`retrieve_into_study` removes them).
        """
        s = self.settings
        hit = self.study(study_uid)
        total = hit.n_instances or 0
        if total > s.max_instances:
            raise PacsError(f"{self.where}: study {study_uid} has {total} instances, over the limit of "
                            f"{s.max_instances}; raise the limit in the PACS settings to retrieve it")
        dest.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        nbytes = 0
        report(progress, 0, total, "asking the PACS for the study")
        try:
            it = self.client().iter_study(study_uid)
            for ds in it:
                check(cancel)
                if not hasattr(ds, "SOPInstanceUID"):
                    raise PacsError(f"{self.where}: malformed WADO-RS reply (a part is not a DICOM instance)")
                if len(out) + 1 > s.max_instances:
                    raise PacsError(f"{self.where}: study {study_uid} sends more than {s.max_instances} "
                                    "instances; stopped")
                path = dest / f"{ds.SOPInstanceUID}.dcm"
                ds.save_as(path, enforce_file_format=False)
                nbytes += path.stat().st_size
                if nbytes > s.max_bytes:
                    raise PacsError(f"{self.where}: study {study_uid} is over {s.max_bytes / 1024**2:.0f} MB; "
                                    "stopped (raise the limit in the PACS settings)")
                out.append(path)
                report(progress, len(out), max(total, len(out)), f"{len(out)} instance(s), {nbytes / 1024**2:.1f} MB")
        except (Cancelled, PacsError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, "the study retrieval") from None
        if not out:
            raise PacsError(f"{self.where} returned no instances for study {study_uid}")
        return out

    # ------------------------------------------------------------------ STOW-RS
    def store(self, paths: list[Path], *, progress: ProgressCallback | None = None,
              cancel: CancelToken | None = None) -> StoreResult:
        """STOW-RS the files (one request per study).

        Raises:
            PacsError: The server is down, refuses, or replies with something malformed.
        """
        import pydicom

        by_study: dict[str, list[Any]] = {}
        for p in paths:
            try:
                ds = pydicom.dcmread(p)
            except Exception as exc:  # noqa: BLE001
                raise PacsError(f"{p}: not a readable DICOM file ({type(exc).__name__}); nothing sent") from None
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(ds)
        res = StoreResult()
        done = 0
        for study_uid, dsets in by_study.items():
            check(cancel)
            try:
                reply = self.client().store_instances(datasets=dsets, study_instance_uid=study_uid)
            except Exception as exc:  # noqa: BLE001
                raise self._fail(exc, "storing the results") from None
            ok = {str(getattr(x, "ReferencedSOPInstanceUID", "")) for x in reply.get("ReferencedSOPSequence", [])}
            bad = {str(getattr(x, "ReferencedSOPInstanceUID", "")) for x in reply.get("FailedSOPSequence", [])}
            for ds in dsets:
                uid = str(ds.SOPInstanceUID)
                (res.stored if uid in ok and uid not in bad else res.failed).append(uid)
            done += len(dsets)
            report(progress, done, len(paths), f"sent {done} of {len(paths)}")
        return res


def retrieve_into_study(
    client: PacsClient,
    study_uid: str,
    study_dir: Path,
    *,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Retrieve a PACS study and import it into the local study ``study_dir``.

    The instances go to a temporary download folder first; only a complete retrieval is
    imported (:func:`engine.cases.import_dicom_folder`), so a failure or a cancel leaves the
    local study — and every saved annotation and rating in it — untouched.

    Returns:
        The :class:`engine.cases.ImportResult`.
    """
    from engine.cases import import_dicom_folder

    tmp = Path(tempfile.mkdtemp(prefix="br-wado-"))
    try:
        def half(done: int, total: int, message: str) -> None:
            report(progress, done, total * 2 if total else 0, f"retrieving: {message}")

        files = client.retrieve_study(study_uid, tmp, progress=half, cancel=cancel)
        n = len(files)

        def rest(done: int, total: int, message: str) -> None:
            report(progress, n + done, n + (total or n), f"importing: {message}")

        check(cancel)
        return import_dicom_folder(tmp, study_dir, name=name, progress=rest, cancel=cancel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "MAX_BYTES", "MAX_INSTANCES", "MODALITY_FILTERS", "PacsClient", "PacsSettings", "StoreResult", "StudyHit",
    "date_range", "parse_study", "retrieve_into_study",
]
