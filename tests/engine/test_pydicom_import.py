"""pydicom is imported without its downloader's HTTP stack on the way to the first DICOM image
(issue 17), and requests/tqdm stay importable afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys
from engine.io.reader import read_image
im = read_image(sys.argv[1])
print('SHAPE', im.shape, 'requests' in sys.modules, 'tqdm' in sys.modules)
import requests, tqdm
print('LATER', requests.__name__, tqdm.__name__)
"""


def test_first_dicom_read_skips_the_downloader_stack(tmp_path: Path) -> None:
    import numpy as np

    from engine.io.writer import write_dicom

    f = tmp_path / "mg.dcm"
    write_dicom(f, (np.arange(64 * 48) % 4096).astype(np.uint16).reshape(64, 48), modality="MG")
    p = subprocess.run([sys.executable, "-c", CODE, str(f)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "SHAPE (64, 48) False False" in p.stdout, p.stdout + p.stderr[-2000:]
    assert "LATER requests tqdm" in p.stdout
