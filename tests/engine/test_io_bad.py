"""engine.io on the good/ill corpus (tests/engine/badfiles.py): specific errors, no allocation."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from badfiles import GOOD, ILL, png_bomb, write_corpus

from engine.errors import ImageReadError, ImageTooLargeError
from engine.io.reader import probe, read_image

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("good"), GOOD)


@pytest.fixture(scope="module")
def ill(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("ill"), ILL)


@pytest.mark.parametrize("name,shape,dtype,expected", [(g[0], g[2], g[3], g[4]) for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_inputs_decode(good: dict[str, Path], name: str, shape: tuple[int, ...], dtype: str,
                            expected: np.ndarray | None) -> None:
    img = read_image(good[name])
    assert img.shape == shape
    assert str(img.pixels.dtype) == dtype
    assert img.pixels.flags.writeable
    if expected is not None:
        np.testing.assert_array_equal(img.pixels, expected)
    else:  # lossy JPEG: close to the source
        from badfiles import GREY8, RGB8

        ref = RGB8 if img.pixels.ndim == 3 else GREY8
        assert np.abs(img.pixels.astype(int) - ref).mean() < 12
    # probe() predicts the decoded shape from the header alone
    assert probe(good[name]).extra["shape"] == "x".join(map(str, shape))


@pytest.mark.parametrize("name,err,reason", [(c[0], c[2], c[3]) for c in ILL], ids=[c[0] for c in ILL])
def test_ill_inputs_raise_specific_error(ill: dict[str, Path], name: str, err: type[ImageReadError], reason: str) -> None:
    with pytest.raises(err) as info:
        read_image(ill[name])
    exc = info.value
    assert isinstance(exc, ImageReadError)
    assert exc.path == str(ill[name]) and name in str(exc)  # the message names the file
    assert reason in exc.reason
    assert "\n" not in str(exc)  # one line for the CLI / a dialog


@pytest.mark.parametrize("name", ["bomb.png", "bomb.jpg", "bomb.pgm", "bomb.dcm", "bomb.tif"])
def test_bombs_refused_fast_without_allocating(ill: dict[str, Path], name: str) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        read_image(ill[name])
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 8 * 2**20  # 60000 x 60000 would be 3.4 GiB


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    p = tmp_path / "small_bomb.png"
    p.write_bytes(png_bomb(300, 200))
    with pytest.raises(ImageTooLargeError, match="50,000-pixel limit"):
        read_image(p, max_pixels=50_000)


def test_missing_file_and_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.dcm")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ImageReadError, match="no readable image slices"):
        read_image(tmp_path)
