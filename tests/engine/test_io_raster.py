"""engine.io raster formats: real BUSI / mini-MIAS files, PNM/TIFF/PNG variants, slice folders, bench."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import ImageReadError
from engine.io.reader import detect_format, probe, read_image
from engine.io.sniff import sniff_format

BUSI = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"  # shared/ sits beside the clone
MIAS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mias-dev"


@pytest.mark.skipif(not BUSI.exists(), reason="BUSI dev data not available")
def test_real_busi_images_and_masks() -> None:
    with open(BUSI / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))[:3]
    for row in rows:
        img = read_image(BUSI / row["image"], modality_hint="US")
        mask = read_image(BUSI / row["mask"])
        assert img.meta.modality == "US" and img.pixels.ndim in (2, 3) and img.pixels.dtype == np.uint8
        assert mask.shape[:2] == img.shape[:2]
        assert set(np.unique(mask.pixels)) <= {0, 255}


@pytest.mark.skipif(not MIAS.exists(), reason="mini-MIAS dev data not available")
def test_real_mini_mias_image() -> None:
    path = sorted((MIAS / "images").iterdir())[0]
    img = read_image(path, modality_hint="MG")
    assert img.shape == (1024, 1024) and img.pixels.dtype == np.uint8 and img.meta.modality == "MG"
    assert probe(path).extra["shape"] == "1024x1024"


def test_pgm_16bit_is_big_endian_and_comments_are_skipped(tmp_path: Path) -> None:
    p = tmp_path / "a.pgm"
    p.write_bytes(b"P5 # comment after magic\n# full comment line\n3 1\n# another\n1000\n" + bytes([0x01, 0x02, 0x03, 0xE8, 0x00, 0x07]))
    img = read_image(p)
    assert img.pixels.dtype == np.uint16 and img.meta.bits_stored == 16 and img.meta.extra["maxval"] == "1000"
    np.testing.assert_array_equal(img.pixels, [[0x0102, 1000, 7]])
    assert img.meta.source_format == "PGM"


def test_png_variants_alpha_palette(tmp_path: Path) -> None:
    from PIL import Image

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png").pixels, grey)  # grey + alpha -> grey
    rgba = np.dstack([grey, grey // 2, 255 - grey, np.full_like(grey, 9)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png").pixels, rgba[..., :3])  # alpha dropped
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").shape == (3, 4, 3)


def test_tiff_miniswhite_inverted(tmp_path: Path) -> None:
    import tifffile

    x = np.array([[0, 1000], [65535, 7]], np.uint16)
    tifffile.imwrite(tmp_path / "w.tif", x, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "w.tif").pixels, 65535 - x)


def test_content_wins_over_extension(tmp_path: Path) -> None:
    p = tmp_path / "really_png.jpg"
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((3, 3), np.uint8))
    p.write_bytes((tmp_path / "x.png").read_bytes())
    assert detect_format(p) == "PNG"
    assert read_image(p).meta.source_format == "PNG"
    assert sniff_format(b"\x00" * 128 + b"DICM" + b"\x00" * 8) == "DICOM"
    assert sniff_format(b"hello world, plain text", "x.dcm") is None


def test_folder_of_png_slices_is_a_stack(tmp_path: Path) -> None:
    for k in (10, 2, 1):  # natural order: 1, 2, 10
        cv2.imwrite(str(tmp_path / f"slice{k}.png"), np.full((4, 5), k, np.uint8))
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    img = read_image(tmp_path, modality_hint="MR")
    assert img.shape == (3, 4, 5) and [int(s[0, 0]) for s in img.pixels] == [1, 2, 10]
    assert img.meta.modality == "MR" and img.meta.extra["files"] == "3"
    cv2.imwrite(str(tmp_path / "slice3.png"), np.zeros((6, 6), np.uint8))
    with pytest.raises(ImageReadError, match="different sizes"):
        read_image(tmp_path)


def test_bench_io_small(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.bench import io as bench_io

    res = bench_io.run(argparse.Namespace(rows=256, cols=208, repeats=1))
    assert res["rows"] == 256 and res["cols"] == 208 and res["target_s"] == 0.5
    assert res["pixels_match"] is True
    assert 0 < res["dicom_s"] < 0.5 and res["png_s"] > 0
