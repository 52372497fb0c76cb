"""`breast-engine bench io --json`: open-to-array time of a full-field mammogram.

Writes (to a temporary folder) a 4096 x 3328 16-bit MONOCHROME1 MG DICOM (12 bits stored, the
most expensive uncompressed case: masking + inversion) and the same pixels as a 16-bit PNG,
then times :func:`engine.io.reader.read_image` on each (median of ``--repeats`` runs after one
warm-up). Target: <= 0.5 s for the DICOM on this machine (issue 2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "io"
HELP = "open-to-array time of a 4096x3328 16-bit mammogram (DICOM and PNG)"
TARGET_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per format (median reported)")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=3328)


def _synthetic_mammogram(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A breast-like 12-bit image: a bright half-disc on the left plus noise (compresses like
    a real image in PNG, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.sqrt(((yy - rows / 2) / (rows / 2)) ** 2 + (xx / (0.8 * cols)) ** 2)
    img = np.where(r < 1.0, 2500.0 * (1.0 - 0.6 * r), 60.0)
    img += rng.normal(0, 40, size=(rows, cols)).astype(np.float32)
    return np.clip(img, 0, 4095).astype(np.uint16)


def _time(fn: Any, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up: imports, page cache
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write the test images, time reading them, return the results."""
    import cv2

    from engine.io.reader import read_image
    from engine.io.writer import write_dicom

    rows, cols, repeats = int(getattr(args, "rows", 4096)), int(getattr(args, "cols", 3328)), int(getattr(args, "repeats", 5))
    img = _synthetic_mammogram(rows, cols)
    with tempfile.TemporaryDirectory(prefix="bench-io-") as tmp:
        dcm = write_dicom(
            Path(tmp) / "mg.dcm", 4095 - img, modality="MG", laterality="L", view="CC",
            photometric="MONOCHROME1", bits_stored=12, pixel_spacing=(0.07, 0.07), window=(2047, 4096),
        )
        png = Path(tmp) / "mg.png"
        cv2.imwrite(str(png), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        ok = bool(np.array_equal(read_image(dcm).pixels, img)) and bool(np.array_equal(read_image(png).pixels, img))
        dicom_s, dicom_runs = _time(lambda: read_image(dcm), repeats)
        png_s, png_runs = _time(lambda: read_image(png), repeats)
        sizes = {"dicom_bytes": dcm.stat().st_size, "png_bytes": png.stat().st_size}
    return {
        "dicom_s": round(dicom_s, 4),
        "png_s": round(png_s, 4),
        "rows": rows,
        "cols": cols,
        "dtype": "uint16",
        "target_s": TARGET_S,
        "dicom_meets_target": dicom_s <= TARGET_S,
        "png_meets_target": png_s <= TARGET_S,
        "pixels_match": ok,
        "repeats": repeats,
        "dicom_runs_s": [round(t, 4) for t in dicom_runs],
        "png_runs_s": [round(t, 4) for t in png_runs],
        **sizes,
    }
