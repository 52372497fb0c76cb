"""engine.io.orientation: chest wall to the left (An et al. 2019), coordinate maps, breast box."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.breast import breast_bbox, chest_wall_side
from engine.io.orientation import (
    map_box_back,
    map_points_back,
    normalise_mammogram_orientation,
)
from engine.io.types import ImageMeta, LoadedImage


def synthetic_breast(chest_wall: str = "left", rows: int = 200, cols: int = 160) -> np.ndarray:
    """A half-disc of tissue against one edge, plus a small bright label on the other side."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    x_from_wall = xx if chest_wall == "left" else cols - 1 - xx
    r = np.sqrt(((yy - rows / 2) / (rows * 0.45)) ** 2 + (x_from_wall / (cols * 0.6)) ** 2)
    img = np.where(r < 1, 3000 - 1500 * r, 50).astype(np.uint16)
    lx = cols - 12 if chest_wall == "left" else 4
    img[5:13, lx : lx + 8] = 4000  # film label: must not become part of the breast box
    return img


@pytest.mark.parametrize("side", ["left", "right"])
def test_chest_wall_side_detected(side: str) -> None:
    assert chest_wall_side(synthetic_breast(side)) == side


def test_normalise_by_laterality_and_by_detection() -> None:
    right = synthetic_breast("right")
    out, flipped = normalise_mammogram_orientation(right, "R")
    assert flipped and np.shares_memory(out, right)  # a view, no copy
    np.testing.assert_array_equal(out, right[:, ::-1])
    out, flipped = normalise_mammogram_orientation(right, "L")
    assert not flipped and out is right
    out, flipped = normalise_mammogram_orientation(right)  # unknown laterality: from the pixels
    assert flipped and chest_wall_side(out) == "left"
    out, flipped = normalise_mammogram_orientation(synthetic_breast("left"), None)
    assert not flipped
    img = LoadedImage(pixels=right, meta=ImageMeta(path="x", modality="MG", laterality="R"))
    assert normalise_mammogram_orientation(img)[1] is True
    assert normalise_mammogram_orientation(img, detect=True)[1] is True


def test_points_and_boxes_map_back() -> None:
    img = synthetic_breast("right")
    width = img.shape[1]
    out, flipped = normalise_mammogram_orientation(img, "R")
    pts = np.array([[0, 3], [10, 20], [width - 1, 199]])
    back = map_points_back(pts, width, flipped)
    for (x, y), (bx, by) in zip(pts, back):
        assert out[y, x] == img[int(by), int(bx)]
    np.testing.assert_array_equal(map_points_back(back, width, flipped), pts)  # involution
    np.testing.assert_array_equal(map_points_back(pts, width, False), pts)
    x0, y0, x1, y1 = 10, 20, 50, 60
    bx0, by0, bx1, by1 = map_box_back((x0, y0, x1, y1), width, True)
    assert (bx0, by0, bx1, by1) == (width - 50, 20, width - 10, 60)
    np.testing.assert_array_equal(out[y0:y1, x0:x1], img[int(by0):int(by1), int(bx0):int(bx1)][:, ::-1])


def test_breast_bbox_excludes_label_and_background() -> None:
    img = synthetic_breast("left")
    x0, y0, x1, y1 = breast_bbox(img)
    assert x0 == 0 and x1 < img.shape[1] - 20  # label at the right edge is excluded
    assert 5 <= y0 <= 20 and img.shape[0] - 20 <= y1 <= img.shape[0]
    assert breast_bbox(np.zeros((30, 40), np.uint8)) == (0, 0, 40, 30)  # flat: whole image
    bx = breast_bbox(img, margin=5)
    assert bx[0] == 0 and bx[2] == x1 + 5


def test_breast_bbox_on_large_image_uses_thumbnail_scale() -> None:
    big = np.kron(synthetic_breast("right"), np.ones((8, 8), np.uint16))  # 1600 x 1280
    x0, y0, x1, y1 = breast_bbox(big)
    sx0, sy0, sx1, sy1 = breast_bbox(synthetic_breast("right"))
    assert abs(x0 - 8 * sx0) <= 24 and abs(x1 - 8 * sx1) <= 24 and abs(y1 - 8 * sy1) <= 24
