"""An 2019 stride-64 local map: background skipping / bounding-box pass equal the per-patch loop."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models import get_model

torch.set_num_threads(1)


def _breast_like(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Textured half-ellipse on a zero background, plus a flat non-zero block (a label)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    inside = ((xx - 0) / (0.55 * cols)) ** 2 + ((yy - rows / 2) / (0.4 * rows)) ** 2 <= 1
    img = np.where(inside, rng.random((rows, cols)), 0.0).astype(np.float32)
    img[rows - 40:rows - 10, cols - 50:cols - 10] = 0.7  # flat but not background
    return img


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model("an_patch_classifier", patch=64, widths=(4, 8, 8), hidden=8).eval()


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_skip_background_equals_loop_on_all_windows(stride: int) -> None:
    from engine.models.an import background_windows, local_map_dense, local_map_loop

    model = _tiny()
    img = _breast_like(230, 300)
    loop = local_map_loop(model, img, stride=stride)
    bg = background_windows(img, 64, stride)
    assert bg.any() and not bg.all()  # both kinds of windows are exercised
    for tile in (64, 1024):
        ours = local_map_dense(model, img, stride=stride, tile=tile)
        assert ours.shape == loop.shape
        assert np.abs(ours - loop).max() <= 1e-5
    assert loop.std() > 0
    # without skipping (the plain fully convolutional pass) the same map
    assert np.abs(local_map_dense(model, img, stride=stride, skip_background=False) - loop).max() <= 1e-5


def test_background_windows_are_exact() -> None:
    from engine.models.an import background_value, background_windows

    img = np.zeros((160, 160), np.float32)
    img[100, 150] = 1e-6  # a single non-background pixel
    assert background_value(img) == 0.0
    bg = background_windows(img, 64, 32)
    assert bg.shape == (4, 4)
    # windows with columns 96..159 / 128..191 and rows 64..127 / 96..159 contain (100, 150)
    expect = np.ones((4, 4), bool)
    expect[2:4, 3] = False
    assert (bg == expect).all()


def test_flat_and_fully_textured_images() -> None:
    from engine.models.an import local_map_dense, local_map_loop

    model = _tiny()
    flat = np.full((128, 160), 0.3, np.float32)
    assert np.abs(local_map_dense(model, flat, stride=32) - local_map_loop(model, flat, stride=32)).max() <= 1e-5
    tex = np.random.default_rng(1).random((128, 160)).astype(np.float32)  # no background at all
    assert np.abs(local_map_dense(model, tex, stride=32) - local_map_loop(model, tex, stride=32)).max() <= 1e-5


def test_bbox_pass_only_convolves_the_breast_box() -> None:
    """The first convolution sees the breast's box (+ kernel margin), not the whole image."""
    import engine.models.an as an

    model = _tiny()
    img = np.zeros((256, 256), np.float32)
    img[100:160, 20:80] = np.random.default_rng(2).random((60, 60))
    seen: list[tuple[int, ...]] = []
    orig = an._conv_nhwc

    def spy(x: torch.Tensor, m: torch.nn.Conv2d, *, relu: bool) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return orig(x, m, relu=relu)

    an._conv_nhwc = spy  # type: ignore[assignment]
    try:
        ours = an.local_map_dense(model, img, stride=32)
    finally:
        an._conv_nhwc = orig  # type: ignore[assignment]
    assert seen and seen[0][-2] < 100 and seen[0][-1] < 100
    assert np.abs(ours - an.local_map_loop(model, img, stride=32)).max() <= 1e-5


@pytest.mark.parametrize("which", ["shared", "absent"])
def test_bench_patch_map_small_real_image(which: str, tmp_path: Path) -> None:
    """With mini-MIAS (../shared/data) and, as in a clone without it, with the SYNTHETIC fallback."""
    from engine.bench import patch_map

    mias = Path(patch_map.DEFAULT_MIAS) if which == "shared" else tmp_path / "no-mias"
    if which == "shared" and not (mias / "images" / "mdb023.png").is_file():
        pytest.skip("needs ../shared/data/mias-dev")
    args = argparse.Namespace(size=768, scale=0.5, stride=64, mias_dir=str(mias), mias_id="mdb023", synthetic=False,
                              repeats=1, device="cpu", threads="1", strong_baseline=False)
    out = patch_map.run(args)
    for key in ("baseline_s", "ours_s", "speedup", "max_abs_diff", "threads", "load_avg_1min_before", "runs"):
        assert key in out
    assert out["max_abs_diff"] <= 1e-4
    assert out["map_shape"] == [3, 3]
    real = (mias / "images" / "mdb023.png").is_file()
    assert out["image"].startswith("mini-MIAS mdb023") == real  # the JSON says which image it used
    assert out["image"].startswith("SYNTHETIC") == (not real)
