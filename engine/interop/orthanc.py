"""A private, throw-away Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) for tests and CI.

Never the system service: its own JSON configuration, its own storage in a temporary folder,
a random free HTTP port, ``RemoteAccessAllowed: false`` (Orthanc 1.10 has no bind-address
option; with remote access off it answers only clients on the loopback interface), the DICOM
(DIMSE) server off, and optionally one HTTP basic-auth user. The DICOMweb plugin answers at
``http://127.0.0.1:<port>/dicom-web``.

Command line (for ``.ci/run`` or a manual check)::

    python -m engine.interop.orthanc --check     # start, query /system and DICOMweb, stop
    python -m engine.interop.orthanc             # start and wait (Ctrl+C stops it)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from types import TracebackType

from engine.interop.errors import PacsError

#: Where Debian's orthanc-dicomweb puts the plugin (``dpkg -L orthanc-dicomweb``).
PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def orthanc_binary() -> str | None:
    """The Orthanc executable (``Orthanc`` on PATH or /usr/sbin), or None."""
    return shutil.which("Orthanc") or (("/usr/sbin/Orthanc") if os.access("/usr/sbin/Orthanc", os.X_OK) else None)


def dicomweb_plugin() -> str | None:
    """The DICOMweb plugin shared object, or None when orthanc-dicomweb is not installed."""
    for p in PLUGIN_CANDIDATES:
        if os.path.exists(p):
            return p
    found = sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")) if Path("/usr/lib/orthanc").is_dir() else []
    return str(found[0]) if found else None


def missing_reason() -> str | None:
    """Why a private Orthanc cannot start here (None when it can)."""
    if orthanc_binary() is None:
        return "Orthanc is not installed (Debian package orthanc)"
    if dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateOrthanc:
    """Start/stop a private Orthanc; use as a context manager.

    Args:
        root: Folder for its configuration, storage and log (a temporary one if None; removed
            on stop when it was created here).
        user, password: Optional HTTP basic-auth user (authentication is then enabled).
        max_storage_mb: Orthanc's MaximumStorageSize (0 = unlimited).
    """

    def __init__(self, root: Path | None = None, *, user: str | None = None, password: str | None = None,
                 max_storage_mb: int = 0) -> None:
        self._own_root = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="br-orthanc-"))
        self.user, self.password = user, password
        self.max_storage_mb = max_storage_mb
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Base URL of the DICOMweb services (QIDO/WADO/STOW-RS)."""
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, object]:
        """The JSON configuration written for this instance."""
        plugin = dicomweb_plugin()
        auth = self.user is not None
        return {
            "Name": "breast-reader-private",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "StorageCompression": False,
            "MaximumStorageSize": self.max_storage_mb,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": auth,
            "RegisteredUsers": {self.user: self.password or ""} if auth else {},
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "Plugins": [plugin] if plugin else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False,
                         "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
            "SaveJobs": False,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
            "StableAge": 1,
            "OverwriteInstances": True,
        }

    def start(self, timeout_s: float = 30.0) -> PrivateOrthanc:
        """Write the configuration, launch Orthanc and wait until its REST API answers.

        Raises:
            PacsError: Orthanc or its DICOMweb plugin is missing, or it did not come up.
        """
        reason = missing_reason()
        if reason:
            raise PacsError(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port may be taken between probing and binding
            self.http_port = free_port()
            cfg = self.root / "orthanc.json"
            cfg.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
            log = (self.root / "orthanc.log").open("ab")
            self.proc = subprocess.Popen(
                [str(orthanc_binary()), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._alive():
                    return self
                time.sleep(0.1)
            self.stop(remove=False)
        tail = (self.root / "orthanc.log").read_text(errors="replace")[-800:]
        raise PacsError(f"private Orthanc did not start (log {self.root / 'orthanc.log'}): {tail.strip()}")

    def _headers(self) -> dict[str, str]:
        if self.user is None:
            return {}
        token = b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _alive(self) -> bool:
        try:
            req = urllib.request.Request(f"{self.url}/system", headers=self._headers())
            with urllib.request.urlopen(req, timeout=1.0) as r:  # noqa: S310 - loopback URL we built
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def get_json(self, path: str) -> object:
        """GET a REST path (e.g. ``/statistics``) and decode its JSON."""
        req = urllib.request.Request(f"{self.url}{path}", headers=self._headers())
        with urllib.request.urlopen(req, timeout=10.0) as r:  # noqa: S310 - loopback URL we built
            return json.loads(r.read().decode())

    def stop(self, *, remove: bool = True) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after 10 s) and remove a temporary root."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if remove and self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivateOrthanc:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.interop.orthanc [--check]``."""
    args = sys.argv[1:] if argv is None else argv
    reason = missing_reason()
    if reason:
        print(f"orthanc: {reason}", file=sys.stderr)
        return 2
    with PrivateOrthanc() as o:
        system = o.get_json("/system")
        assert isinstance(system, dict)
        print(f"private Orthanc {system.get('Version')} at {o.dicomweb_url} (storage {o.root})")
        if "--check" in args:
            o.get_json("/dicom-web/studies")
            print("DICOMweb answers; stopping")
            return 0
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
