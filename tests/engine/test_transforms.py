"""Preprocessing as data: the typed Preprocess of a weights spec and the one transform built from it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.errors import WeightsMismatchError
from engine.io.types import ImageMeta, LoadedImage
from engine.models.weights import WeightsSpec
from engine.transforms import BoxRequired, Preprocess, from_legacy


def _img(px: np.ndarray, modality: str = "US") -> LoadedImage:
    return LoadedImage(px, ImageMeta(path="x.png", modality=modality))  # type: ignore[arg-type]


def test_round_trip_and_spec_mirrors_it() -> None:
    pre = Preprocess(size=(64, 48), in_chans=1, mean=(0.3,), std=(0.25,), crop="lesion_box", box="required",
                     box_margin=0.2, resize="stretch", interpolation="bicubic")
    assert Preprocess.from_json(pre.to_json()) == pre
    spec = WeightsSpec(name="n", model="habib_basic_cnn", preprocess=pre)
    assert spec.input_size == [64, 48] and spec.in_chans == 1 and spec.mean == [0.3]
    again = WeightsSpec.from_json(spec.to_json())
    assert again.pre == pre


@pytest.mark.parametrize("bad", [{"crop": "zoom"}, {"interpolation": "lanczos"}, {"box": "maybe"},
                                 {"size": [3]}, {"colour": "sepia"}, {"mystery": 1}])
def test_bad_preprocess_is_refused_with_the_key(bad: dict) -> None:
    data = {**Preprocess().to_json(), **bad}
    with pytest.raises(WeightsMismatchError, match=next(iter(bad))):
        WeightsSpec.from_json({"name": "n", "model": "m", "preprocess": data})


def test_legacy_prose_spec_gets_the_preprocessing_its_fields_imply() -> None:
    pre = from_legacy({"input_size": [128, 128], "in_chans": 3, "mean": [0.5] * 3, "std": [0.5] * 3,
                       "modality": "MG", "preprocess": "old prose",
                       "extra": {"needs_box": True, "box_margin": 0.1, "multi_input": False}})
    assert (pre.box, pre.crop, pre.box_margin, pre.orient, pre.resize, pre.colour) == (
        "required", "lesion_box", 0.1, True, "stretch", "keep")
    assert pre.description == "old prose"
    whole = from_legacy({"modality": "US", "extra": {"needs_box": False, "multi_input": True}})
    assert (whole.box, whole.crop, whole.resize, whole.orient) == ("ignored", "whole", "five_crop", False)


def test_tinted_png_is_read_as_training_read_it(tmp_path: Path) -> None:
    """A colour-tinted ultrasound PNG: the app sees the luminance the training read (cv2.IMREAD_GRAYSCALE),
    not the tint (before, 3-channel models were fed the RGB and scored it 0.885 vs 0.936)."""
    from engine.io.reader import read_image

    rng = np.random.default_rng(0)
    g = (rng.random((60, 90)) * 255).astype(np.uint8)
    rgb = np.stack([g, (g * 0.8).astype(np.uint8), (g * 0.5).astype(np.uint8)], -1)
    f = tmp_path / "tinted.png"
    cv2.imwrite(str(f), rgb[..., ::-1])
    pre = Preprocess(size=(32, 32), in_chans=3, mean=(0.5,) * 3, std=(0.5,) * 3, box="ignored")
    spec = WeightsSpec(name="n", model="efficientnet_lite0", preprocess=pre)
    t_app = spec.transforms()(read_image(str(f))).tensor
    t_train = spec.transforms()(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)).tensor
    # libpng's grey conversion (imread) and OpenCV's cvtColor differ by at most one grey level
    assert float((t_app - t_train).abs().max()) <= 1.01 / 255 / 0.5
    kept = WeightsSpec(name="n", model="efficientnet_lite0", preprocess=pre.with_(colour="keep")).transforms()
    assert float((kept(read_image(str(f))).tensor - t_train).abs().max()) > 0.2  # the tint really differs
    assert torch.equal(t_app[0], t_app[2])  # gray replicated, not the tint


def test_box_policy_margin_and_orientation() -> None:
    pre = Preprocess(size=(16, 16), in_chans=1, mean=(0.0,), std=(1.0,), crop="lesion_box", box="required",
                     box_margin=0.5, orient=True)
    tf = WeightsSpec(name="n", model="m", modality="MG", preprocess=pre).transforms()
    px = np.zeros((100, 100), np.uint8)
    px[:, 60:] = 200  # tissue on the right: chest wall on the right -> mirrored
    with pytest.raises(BoxRequired):
        tf(_img(px, "MG"))
    p = tf(_img(px, "MG"), box=(40, 40, 60, 60))
    assert p.region == (30, 30, 70, 70)  # 50 % of the 20 px box added per side
    assert p.flipped
    ignored = WeightsSpec(name="n", model="m", preprocess=pre.with_(crop="whole", box="ignored")).transforms()
    assert ignored(_img(px), box=(40, 40, 60, 60)).region == (0, 0, 100, 100)


def test_five_crop_is_normalised_after_cropping() -> None:
    pre = Preprocess(size=(20, 20), in_chans=1, mean=(0.5,), std=(0.25,), resize="five_crop", box="ignored")
    px = np.tile(np.linspace(0, 255, 100).astype(np.uint8), (20, 1))
    t = WeightsSpec(name="n", model="m", preprocess=pre).transforms()(_img(px)).tensor
    assert t.shape == (5, 1, 20, 20)
    means = t.mean(dim=(1, 2, 3))
    assert bool((means[1:] > means[:-1]).all())  # left-to-right along the long side
    assert float(t[0].mean()) == pytest.approx((np.linspace(0, 255, 100)[:20].mean() / 255 - 0.5) / 0.25, abs=0.02)


def test_training_decode_scales_16_bit_images_as_the_app_does(tmp_path: Path) -> None:
    """A 16-bit PNG with one hot pixel: the training dataset's input is exactly spec.transforms()
    of the image as the app reads it (percentile scaling, not a min-max stretch that the outlier
    would squash to near black)."""
    from engine.imaging.intensity import to_unit_range
    from engine.io.reader import read_image
    from engine.train.config import TrainConfig
    from engine.train.data import decode_image, load_dataset, preprocess_of

    px = np.tile(np.linspace(1000, 3000, 64).astype(np.uint16), (64, 1))
    px[0, 0] = 65000
    f = tmp_path / "x16.png"
    cv2.imwrite(str(f), px)
    got = decode_image(str(f), 1)  # masks / aux labels still decode with this
    assert np.array_equal(got, np.round(to_unit_range(px) * 255).astype(np.uint8))
    assert got[32].max() == 255 and got[32, 32] > 100  # a min-max stretch would give ~8
    (tmp_path / "labels.csv").write_text("image,label\nx16.png,benign\nx16.png,malignant\n")
    cfg = TrainConfig.from_dict({"data": {"path": str(tmp_path), "image_size": [32, 32], "grayscale": True,
                                          "mean": [0.0], "std": [1.0]}})
    x, _ = load_dataset(cfg)[0]
    want = WeightsSpec(name="n", model="m", preprocess=preprocess_of(cfg)).transforms()(read_image(str(f))).tensor
    assert torch.equal(x, want) and float(x[0, 16].max()) > 0.95


def test_center_crop_reports_the_part_of_the_image_it_kept() -> None:
    """Shorter side 40 -> 20 on a 40 x 80 image gives 20 x 40; the centred 20 x 20 crop starts at
    column 10 of that, i.e. columns 20..60 of the image (worked by hand): that is the region."""
    pre = Preprocess(size=(20, 20), in_chans=1, mean=(0.0,), std=(1.0,), resize="center_crop", box="ignored")
    px = np.tile(np.arange(80, dtype=np.uint8) * 3, (40, 1))
    p = WeightsSpec(name="n", model="m", preprocess=pre).transforms()(_img(px))
    assert p.tensor.shape == (1, 20, 20) and p.region == (20, 0, 60, 40)
    assert float(p.tensor[0, 0, 0]) == pytest.approx(float(px[0, 20:22].mean()) / 255, abs=0.01)
