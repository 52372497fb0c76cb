"""Crop-to-breast box: the one breast mask without the bright film-edge bands of digitised films."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.imaging.breast import breast_bbox, breast_view_box


def _film(rows: int = 900, cols: int = 560) -> np.ndarray:
    """A breast against the left edge of a film whose top and right edges carry bright bands."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    img = np.full((rows, cols), 200.0, np.float32)
    inside = (xx / (0.45 * cols)) ** 2 + ((yy - rows / 2) / (0.38 * rows)) ** 2 < 1
    img[inside] = 2500.0
    img[:14, :] = 3800.0  # film edge along the top, touching the breast's bands
    img[:, -12:] = 3800.0  # and down the right side
    img[:, :6] = 3000.0  # a strip at the chest wall edge, joining the two
    return img.astype(np.uint16)


def test_edge_bands_swallow_the_plain_box_but_not_the_view_box() -> None:
    film = _film()
    assert breast_bbox(film) == (0, 0, 560, 900)  # the bands join the mask: whole film
    x0, y0, x1, y1 = breast_view_box(film, margin=0.0)
    # the breast: x in [0, 0.45*cols], y in [0.12*rows, 0.88*rows] (ellipse), within a few pixels
    assert x0 <= 8 and abs(x1 - 0.45 * 560) < 12
    assert abs(y0 - 0.12 * 900) < 14 and abs(y1 - 0.88 * 900) < 14


def test_flat_and_small_images_give_the_whole_image() -> None:
    assert breast_view_box(np.zeros((40, 30), np.uint16)) == (0, 0, 30, 40)
    assert breast_view_box(np.full((40, 30), 7, np.uint8)) == (0, 0, 30, 40)


DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "cases"


@pytest.mark.parametrize("case", ["demo-11-cbis", "demo-12-cbis"])
def test_real_cbis_films_are_cropped_to_the_breast(case: str) -> None:
    from engine.io.reader import read_image

    files = sorted((DEMO / case).glob("*.dcm"))
    if not files:
        pytest.skip("the demo's CBIS-DDSM films are not in this checkout")
    for f in files:
        p = read_image(f).pixels
        x0, y0, x1, y1 = breast_view_box(p)
        area = (x1 - x0) * (y1 - y0) / (p.shape[0] * p.shape[1])
        assert area < 0.75, f"{f.name}: box {x0, y0, x1, y1} covers {area:.0%} of the film"
        # the chest wall lies on a side edge of the film, so the breast's box reaches it
        assert x0 == 0 or x1 == p.shape[1], f"{f.name}: the breast box touches neither side edge"


def test_noise_without_a_compact_breast_is_not_cropped() -> None:
    noise = (np.random.default_rng(0).random((900, 700)) * 4095).astype(np.uint16)
    assert breast_view_box(noise) == (0, 0, 700, 900)
