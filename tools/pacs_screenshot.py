"""Screenshot of File → Open from PACS against a private Orthanc holding the SYNTHETIC demo cases.

    xvfb-run -a .venv/bin/python tools/pacs_screenshot.py docs/screenshots/pacs_dialog.png
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out: str) -> int:
    warnings.simplefilter("ignore", UserWarning)
    import os

    os.environ.setdefault("BREAST_READER_DATA", tempfile.mkdtemp(prefix="br-shot-"))
    from engine.interop.dicomweb import PacsClient, PacsSettings
    from engine.interop.orthanc import PrivateOrthanc
    from reader_app.qt_app import ensure_app
    from reader_app.qt_pacs import PacsDialog

    demo = ROOT / "resources" / "demo" / "cases"
    files = sorted(demo.glob("demo-08-synthetic/*.dcm")) + sorted(demo.glob("demo-09-mri-synthetic/mr_series/*.dcm"))
    app = ensure_app()
    with PrivateOrthanc() as o:
        PacsClient(PacsSettings(o.dicomweb_url)).store(files)
        dlg = PacsDialog(dest=Path(tempfile.mkdtemp()) / "pacs-study")
        dlg.conn.url.setText(o.dicomweb_url)
        dlg.date_from.setText("2026-01-01")
        done: list[int] = []
        dlg.searched.connect(done.append)
        dlg.show()
        dlg.search()
        while not done:
            app.processEvents()
        app.processEvents()
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        dlg.grab().save(out)
        print(f"{done[0]} studies; saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/pacs_dialog.png"))
