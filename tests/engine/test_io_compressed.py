"""Compressed mammograms (JPEG 2000, JPEG-LS, JPEG lossless) on a real full-field film:
bit-exact decoding, a decode that never holds the GIL for long, and JPEG 2000 first views.

The film is a CBIS-DDSM exam from the ``mammograms`` package (dev extra) when installed, else a
MIAS film upscaled, else the synthetic mammogram (see :mod:`engine.bench._files`); the files are
written in a temporary folder at test time (the JPEG 2000 one takes a few seconds to encode).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from engine.bench._files import real_mammogram, write_mammogram
from engine.bench.decode_stall import stall_while
from engine.errors import ImageReadError
from engine.io import read_image
from engine.io.dicom import decode_preview, gil_free_available
from engine.io.dicom.codecs import j2k_levels

pytest.importorskip("imagecodecs")

COMPRESSED = ("JPEG2000Lossless", "JPEGLSLossless", "JPEGLosslessSV1")


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    return real_mammogram()[0]


@pytest.fixture(scope="module")
def files(film: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compressed")
    return {s: write_mammogram(root, s, film)[0] for s in (*COMPRESSED, "ExplicitVRLittleEndian")}


def test_the_film_is_a_full_field_16_bit_mammogram(film: np.ndarray) -> None:
    assert film.dtype == np.uint16 and min(film.shape) >= 2800 and max(film.shape) >= 4000
    assert film.max() > 4095  # more than 12 bits are used: a real 16-bit decode is exercised


@pytest.mark.parametrize("syntax", COMPRESSED)
def test_lossless_syntaxes_decode_bit_exact_like_pydicom(files: dict[str, Path], film: np.ndarray, syntax: str) -> None:
    import pydicom

    path = files[syntax]
    img = read_image(path)
    assert img.meta.extra["transfer_syntax"] == str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    assert img.pixels.dtype == np.uint16 and np.array_equal(img.pixels, film)
    if syntax != "JPEG2000Lossless":  # (gdcm's JPEG 2000 decode takes seconds; the stall test runs it)
        assert np.array_equal(np.asarray(pydicom.dcmread(path).pixel_array), img.pixels)  # gdcm agrees
    assert img.meta.laterality == "R" and img.meta.view == "CC" and img.meta.pixel_spacing == (0.05, 0.05)


def test_compressed_decode_in_a_thread_never_stalls_the_loop(files: dict[str, Path], film: np.ndarray) -> None:
    """A 5 ms beat keeps beating while a worker thread decodes each compressed mammogram.

    The old path (pydicom's gdcm/Pillow plugins, GIL held) is measured in the same run on the
    JPEG 2000 file: the beat stops for most of its decode, which is what the GUI froze on.
    """
    assert gil_free_available()
    idle = max(stall_while(lambda: time.sleep(0.3))[1] for _ in range(2))
    for syntax in COMPRESSED:
        seconds, worst, img = stall_while(lambda: read_image(files[syntax]))
        assert np.array_equal(img.pixels, film)
        assert worst < 0.1 or worst - idle < 0.05, (syntax, worst, idle, seconds)
    import pydicom

    old_s, old_worst, _ = stall_while(lambda: pydicom.dcmread(files["JPEG2000Lossless"]).pixel_array)
    assert old_worst > 0.3 and old_worst > 0.5 * old_s  # the GIL-holding decoder freezes the loop


def test_jpeg2000_preview_is_a_reduced_level_of_the_same_image(files: dict[str, Path], film: np.ndarray) -> None:
    path = files["JPEG2000Lossless"]
    t0 = time.perf_counter()
    pv = decode_preview(path, max_side=1024)
    preview_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = read_image(path)
    full_s = time.perf_counter() - t0
    assert pv is not None
    rows, cols = film.shape
    r = int(pv.meta.extra["preview_reduce"])
    assert r == 3 and pv.pixels.shape == (-(-rows // 8), -(-cols // 8)) and max(pv.pixels.shape) <= 1024
    assert pv.meta.pixel_spacing == (0.4, 0.4) and pv.meta.laterality == "R" and pv.meta.extra["preview"] == "1"
    # the 5/3 wavelet's low-pass band is close to an 8 x 8 block mean of the full image
    crop = film[: rows // 8 * 8, : cols // 8 * 8].astype(np.float64)
    block = crop.reshape(rows // 8, 8, cols // 8, 8).mean(axis=(1, 3))
    small = pv.pixels[: rows // 8, : cols // 8].astype(np.float64)
    assert np.corrcoef(block.ravel(), small.ravel())[0, 1] > 0.995
    assert np.median(np.abs(block - small)) < 0.01 * float(np.ptp(film))
    # made for the first view: within 0.5 s, or (machine loaded) a small part of the full decode
    assert preview_s < 0.5 or preview_s < full_s / 4, (preview_s, full_s)
    assert np.array_equal(full.pixels, film)


def test_full_size_preview_has_the_full_geometry(files: dict[str, Path], film: np.ndarray) -> None:
    pv = decode_preview(files["JPEG2000Lossless"], full_size=True)
    assert pv is not None and pv.pixels.shape == film.shape and pv.meta.pixel_spacing == (0.05, 0.05)
    assert pv.pixels.dtype == film.dtype
    assert np.corrcoef(pv.pixels[::16, ::16].ravel().astype(float), film[::16, ::16].ravel().astype(float))[0, 1] > 0.98


def test_no_preview_where_there_is_no_quicker_first_view(files: dict[str, Path], tmp_path: Path, film: np.ndarray) -> None:
    assert decode_preview(files["JPEGLSLossless"]) is None
    assert decode_preview(files["ExplicitVRLittleEndian"]) is None
    small, _ = write_mammogram(tmp_path, "JPEG2000Lossless", np.ascontiguousarray(film[::8, ::8]))
    assert decode_preview(small, max_side=1024) is None  # already small enough
    assert j2k_levels(_first_frame(files["JPEG2000Lossless"])) == 5  # 6 resolutions = 5 decompositions


def _first_frame(path: Path) -> bytes:
    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(path)
    return bytes(next(generate_frames(ds.PixelData, number_of_frames=1)))


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_cut_compressed_file_is_one_clear_error(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["JPEG2000Lossless"].read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) * 3 // 5])
    with pytest.raises(ImageReadError) as err:
        read_image(cut)
    assert "cut.dcm" in str(err.value)
    with pytest.raises(ImageReadError):
        decode_preview(cut)


def test_writer_refuses_colour_in_lossless_grey_syntaxes(tmp_path: Path) -> None:
    from engine.io import write_dicom

    rgb = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="grey"):
        write_dicom(tmp_path / "c.dcm", rgb, modality="US", photometric="RGB", transfer_syntax="JPEG2000Lossless")


@pytest.mark.slow
def test_bench_decode_stall_reports_each_decoder_side_by_side() -> None:
    import argparse

    from engine.bench import decode_stall

    out = decode_stall.run(argparse.Namespace(repeats=1, syntaxes="JPEGLSLossless,JPEG2000Lossless", no_process=False))
    assert {"image", "shape", "gil_free_decoders", "idle_max_gap_ms", "process_pool_start_s", "load_avg_1min"} <= set(out)
    ls, j2k = out["syntaxes"]["JPEGLSLossless"], out["syntaxes"]["JPEG2000Lossless"]
    assert {"pydicom", "imagecodecs", "process"} <= set(ls) and "preview" in j2k and "preview" not in ls
    for row in (ls, j2k):
        assert all(row[k]["equals_source"] for k in ("pydicom", "imagecodecs", "process"))
        assert row["imagecodecs"]["max_stall_ms"] < row["pydicom"]["max_stall_ms"]
