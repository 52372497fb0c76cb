"""Every file: a clean error, a finite valid score, or a refusal (issue 16, deliverable 1).

Each case here was a measured failure on main: a batch killed by pydicom's valid multi-frame
colour ultrasound, NaN scores from absurd rescale/window values, NaN in ``info --json``, a
sheared decode, small files that decode huge, a 20 000-page TIFF scored page by page, and
raster files whose modality could not be told.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import tifffile

from engine.bench.fuzz import _png_zeros
from engine.cli.cmd_info import describe
from engine.cli.cmd_score import scoring_view
from engine.cli.main import main
from engine.errors import ImageReadError, ImageTooLargeError
from engine.io.errors import CorruptImageError, HeaderMismatchError
from engine.io.modality import guess_raster_modality
from engine.io.reader import read_image
from engine.io.writer import write_dicom

from test_cli_score import make_weights

YBR = Path(pydicom.data.__file__).parent / "test_files" / "examples_ybr_color.dcm"
GREY16 = (np.mgrid[0:48, 0:64][0] * 60 + np.mgrid[0:48, 0:64][1] * 17 + 5).astype(np.uint16)


@pytest.fixture()
def tiny_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))
    make_weights(models)
    (models / "defaults.json").write_text(json.dumps({"US": "tiny_us"}))
    return tmp_path


def _tampered(tmp: Path, name: str, **values: object) -> Path:
    p = tmp / name
    write_dicom(p, GREY16, modality="MG", laterality="L", window=(2000.0, 3000.0))
    ds = pydicom.dcmread(p)
    for k, v in values.items():
        setattr(ds, k, v)
    ds.save_as(p, enforce_file_format=False)
    return p


@pytest.mark.skipif(not YBR.is_file(), reason="pydicom's examples_ybr_color.dcm is not installed")
def test_batch_with_the_colour_multiframe_dicom_scores_every_other_file(tiny_models: Path) -> None:
    imgs = tiny_models / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    goods = []
    for i in range(6):
        p = imgs / f"g{i}.png"
        cv2.imwrite(str(p), (rng.random((60, 80)) * 255).astype(np.uint8))
        goods.append(str(p))
    out = tiny_models / "out.csv"
    rc = main(["score", "--modality", "US", goods[0], str(YBR), *goods[1:], "--out", str(out)])
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    assert all(0 <= float(r["score"]) <= 1 for r in rows), rows  # the cine loop too: its middle frame
    assert rc == 0


def test_scoring_rule_for_frames_and_stacks() -> None:
    img = read_image(YBR) if YBR.is_file() else None
    if img is not None:
        assert img.pixels.ndim == 4
        view, note = scoring_view(img, "US")
        assert view.pixels.shape == img.pixels.shape[1:] and "middle frame" in note
        assert np.array_equal(view.pixels, img.pixels[img.pixels.shape[0] // 2])
    from engine.io.types import ImageMeta, LoadedImage

    mr = LoadedImage(np.zeros((200, 16, 16), np.float32), ImageMeta(path="x", modality="MR", source_format="DICOM"))
    view, note = scoring_view(mr, "MR")
    assert view.pixels.shape[0] == 64 and "evenly spaced" in note
    big = LoadedImage(np.zeros((6000, 5000), np.uint8), ImageMeta(path="x", modality="US", source_format="PNG"))
    view, note = scoring_view(big, "US")
    assert view.pixels.size <= 25_000_000 and "resampled" in note


@pytest.mark.parametrize(("name", "values"), [
    ("slope.dcm", {"RescaleSlope": "1e38", "RescaleIntercept": "0"}),
    ("intercept.dcm", {"RescaleIntercept": "1e38"}),
    ("nan_slope.dcm", {"RescaleSlope": "NaN"}),
])
def test_absurd_rescale_is_refused(tmp_path: Path, name: str, values: dict[str, str]) -> None:
    p = _tampered(tmp_path, name, **values)
    with pytest.raises(CorruptImageError, match="Rescale"):
        read_image(p)


@pytest.mark.parametrize("center,width", [("NaN", "100"), ("1e300", "inf"), ("100", "NaN")])
def test_non_finite_windows_are_dropped_and_info_json_is_strict(tmp_path: Path, center: str, width: str) -> None:
    p = _tampered(tmp_path, "w.dcm", WindowCenter=center, WindowWidth=width)
    img = read_image(p)
    assert all(np.isfinite(c) and np.isfinite(w) and w > 0 for c, w in img.meta.windows)
    rec = describe(str(p))
    json.dumps(rec, allow_nan=False)  # raises on NaN/Infinity
    assert rec["window"] is None


def test_info_json_never_prints_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _tampered(tmp_path, "s.dcm", PixelSpacing=["inf", "NaN"], WindowCenter="NaN", WindowWidth="1")
    assert main(["info", "--json", str(p)]) == 0
    line = capsys.readouterr().out.strip()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["pixel_spacing"] is None


def test_columns_narrower_than_the_data_is_refused_not_sheared(tmp_path: Path) -> None:
    p = _tampered(tmp_path, "narrow.dcm", Columns=63)
    with pytest.raises(HeaderMismatchError, match="shear"):
        read_image(p)


def test_png_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    for name, data in (("rgba16.png", _png_zeros(6000, 6000, colour=6, depth=16)),
                       ("grey.png", _png_zeros(17000, 17000))):
        p = tmp_path / name
        p.write_bytes(data)
        t0 = time.perf_counter()
        with pytest.raises(ImageTooLargeError, match="refused before decoding"):
            read_image(p)
        assert time.perf_counter() - t0 < 2.0


def test_many_page_tiff_is_refused_and_a_short_one_is_a_stack(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for _ in range(1500):
            tw.write(np.zeros((1, 1), np.uint8), contiguous=False)
    p = tmp_path / "pages.tif"
    p.write_bytes(buf.getvalue())
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="1024 pages"):
        read_image(p)
    assert time.perf_counter() - t0 < 2.0
    p3 = tmp_path / "p3.tif"
    tifffile.imwrite(p3, np.stack([np.full((32, 32), v, np.uint8) for v in (10, 20, 30)]), photometric="minisblack")
    img = read_image(p3)
    view, note = scoring_view(img, "US")
    assert img.pixels.shape == (3, 32, 32) and int(view.pixels[0, 0]) == 20 and "frame 2 of 3" in note


def test_every_seed_and_hostile_file_is_an_answer_or_one_clean_error(tmp_path: Path) -> None:
    from engine.bench.fuzz import build_seeds

    seeds = build_seeds(tmp_path / "seeds")
    assert len(seeds) >= 30
    for name, p in seeds.items():
        try:
            img = read_image(p)
        except ImageReadError as exc:
            assert str(p) in str(exc) and "\n" not in str(exc), name
            continue
        px = np.asarray(img.pixels)
        if px.dtype.kind == "f":
            assert np.isfinite(px).all(), name


def test_modality_from_content() -> None:
    from engine.io.types import ImageMeta, LoadedImage

    def img(a: np.ndarray, bits: int = 8) -> LoadedImage:
        return LoadedImage(a, ImageMeta(path="x", modality="OT", source_format="PNG", bits_stored=bits))

    rng = np.random.default_rng(0)
    us = (rng.random((320, 420)) * 200 + 30).astype(np.uint8)
    assert guess_raster_modality(img(us))[0] == "US"
    mg = np.zeros((1024, 1024), np.uint8)
    mg[100:900, :450] = 180
    assert guess_raster_modality(img(mg))[0] == "MG"
    assert guess_raster_modality(img(GREY16, 16))[0] == "MG"
    mid = (rng.random((1200, 1200)) * 200 + 30).astype(np.uint8)
    mod, why = guess_raster_modality(img(mid))
    assert mod is None and "fits neither" in why


def test_auto_modality_message_for_raster_files(tiny_models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    p = tiny_models / "odd.png"
    cv2.imwrite(str(p), (rng.random((1200, 1200)) * 200 + 30).astype(np.uint8))
    us = tiny_models / "us.png"
    cv2.imwrite(str(us), (rng.random((300, 400)) * 200 + 30).astype(np.uint8))
    out = tiny_models / "o.csv"
    rc = main(["score", str(p), str(us), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot tell the modality of this PNG file from its content" in err and "--modality" in err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["score"] == "" and 0 <= float(rows[1]["score"]) <= 1  # the US-looking one is scored


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "busi-dev").is_dir() or not (SHARED / "mias-dev").is_dir(),
                    reason="shared dev data (../shared/data) not present")
def test_modality_rule_on_the_dev_data() -> None:
    """The content rule never calls a BUSI ultrasound MG or a mini-MIAS mammogram US."""
    counts = {("US", "US"): 0, ("US", "MG"): 0, ("US", None): 0, ("MG", "MG"): 0, ("MG", "US"): 0, ("MG", None): 0}
    for truth, folder in (("US", SHARED / "busi-dev" / "images"), ("MG", SHARED / "mias-dev" / "images")):
        for f in sorted(folder.iterdir())[::7]:
            try:
                guess = guess_raster_modality(read_image(f))[0]
            except ImageReadError:
                continue
            counts[(truth, guess)] += 1
    assert counts[("US", "MG")] == 0 and counts[("MG", "US")] == 0, counts
    assert counts[("US", "US")] >= 0.9 * (counts[("US", "US")] + counts[("US", None)]), counts
    assert counts[("MG", "MG")] >= 0.9 * (counts[("MG", "MG")] + counts[("MG", None)]), counts


def test_score_csv_on_a_full_disk_is_one_line_and_no_partial_file(tiny_models: Path) -> None:
    """RLIMIT_FSIZE makes writes past 64 bytes fail with EFBIG, as a full disk fails with ENOSPC."""
    import os
    import subprocess
    import sys

    img = tiny_models / "g.png"
    cv2.imwrite(str(img), (np.random.default_rng(1).random((60, 80)) * 255).astype(np.uint8))
    out = tiny_models / "out" / "scores.csv"
    code = ("import resource, sys\nfrom engine.cli.main import main\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))\n"
            f"sys.exit(main(['score', '--modality', 'US', {str(img)!r}, '--out', {str(out)!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert f"{out}: cannot write the scores" in p.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []  # no 0-byte, half or temp file


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, 1.7])
def test_case_scorer_refuses_a_model_output_that_is_not_a_probability(bad: float) -> None:
    """The workstation's path (CaseScorer): a broken model's NaN/inf/out-of-range output is an error
    line for that image, never a score on screen or in the fused case score."""
    from engine.inference.case import CaseImage, CaseInput, CaseScorer
    from engine.inference.predictor import ImageOutput
    from engine.io.types import ImageMeta, LoadedImage

    class Broken:
        name = "broken"

        def run(self, items, methods):  # noqa: ANN001, ANN201 - the scorer's model surface
            return [ImageOutput(score=bad if i == 0 else 0.25) for i, _ in enumerate(items)]

    img = LoadedImage(np.zeros((32, 32), np.uint8), ImageMeta(path="x.png", modality="US", source_format="PNG"))
    res = CaseScorer(lambda _m, _n: Broken()).score_case(
        CaseInput("c", [CaseImage("a", img, "US", None), CaseImage("b", img, "US", None)]))
    assert res.per_image == {"b": 0.25} and res.per_modality == {"US": 0.25}
    assert any(e.startswith("a: the model returned") and "not a probability" in e for e in res.errors), res.errors
