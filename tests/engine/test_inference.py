"""Predictor: preprocessing (box crop, grayscale, MG orientation), scores, saliency placement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ModelNotFoundError
from engine.inference import Predictor, expand_box, load_predictor, prepare_input
from engine.io.types import ImageMeta, LoadedImage
from engine.models import get_model
from engine.models.weights import WeightsSpec, save_weights

torch.set_num_threads(1)


def make_weights(root: Path, name: str = "tiny_us", modality: str = "US") -> Path:
    torch.manual_seed(0)
    spec = WeightsSpec(name=name, model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality=modality,
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)")
    return save_weights(get_model("habib_basic_cnn", in_chans=1), spec, root / name)


def _img(px: np.ndarray, modality: str = "US") -> LoadedImage:
    return LoadedImage(px, ImageMeta(path="mem.png", modality=modality))  # type: ignore[arg-type]


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BREAST_READER_MODELS", str(tmp_path))
    return tmp_path


def test_no_default_model_is_an_error_never_random(root: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no default model is installed for US"):
        load_predictor("US")
    with pytest.raises(ModelNotFoundError, match="architecture without trained weights"):
        load_predictor("US", model="efficientnet_lite0")


def test_predict_in_unit_interval_and_box_changes_input(root: Path) -> None:
    make_weights(root)
    (root / "defaults.json").write_text(json.dumps({"US": "tiny_us"}))
    pred = load_predictor("US")
    rng = np.random.default_rng(0)
    px = (rng.random((120, 160)) * 255).astype(np.uint8)
    px[60:80, 100:130] = 255
    p = pred.predict(_img(px))
    assert 0.0 <= p <= 1.0
    box = (100, 60, 130, 80)
    prep = pred.prepare(_img(px), box=box)
    assert prep.region == (95, 57, 135, 83)  # 15 % margin per side
    # the box crop of a uniform-bright lesion is brighter on average than the whole image
    assert float(prep.tensor.mean()) > float(pred.prepare(_img(px)).tensor.mean())
    assert pred.predict_batch([_img(px), _img(px)], [None, box]) == pytest.approx([p, pred.predict(_img(px), box)],
                                                                                abs=1e-5)


def test_rgb_and_16bit_inputs(root: Path) -> None:
    make_weights(root)
    pred = Predictor(root / "tiny_us")
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 1] = 200
    t = pred.prepare(_img(rgb)).tensor
    assert t.shape == (1, 32, 32)
    # luminance as OpenCV computes it on 8-bit input (what cv2.IMREAD_GRAYSCALE gave in training)
    assert float(t.mean()) == pytest.approx((round(0.587 * 200) / 255 - 0.5) / 0.25, abs=1e-5)
    px16 = np.linspace(0, 4095, 40 * 50).reshape(40, 50).astype(np.uint16)
    t16 = pred.prepare(_img(px16)).tensor
    assert float(t16.min()) >= (0 - 0.5) / 0.25 - 1e-4 and float(t16.max()) <= (1 - 0.5) / 0.25 + 1e-4


def test_mg_orientation_flips_right_sided_breast() -> None:
    spec = WeightsSpec(name="x", model="habib_basic_cnn", modality="MG", input_size=[16, 16], in_chans=1,
                       mean=[0.0], std=[1.0])
    px = np.zeros((64, 64), np.uint8)
    px[8:56, 40:64] = 200  # tissue on the right: chest wall on the right
    px[30:34, 44:48] = 255
    prep = prepare_input(_img(px, "MG"), spec)
    assert prep.flipped
    assert float(prep.tensor[0, :, :6].mean()) > float(prep.tensor[0, :, 10:].mean())
    left = prepare_input(_img(px[:, ::-1].copy(), "MG"), spec)
    assert not left.flipped
    assert torch.allclose(prep.tensor, left.tensor, atol=1e-5)


def test_saliency_in_image_coordinates_inside_box(root: Path) -> None:
    make_weights(root)
    pred = Predictor(root / "tiny_us")
    px = (np.random.default_rng(1).random((100, 140)) * 255).astype(np.uint8)
    sal = pred.saliency(_img(px), "gradcam", box=(40, 30, 80, 70))
    assert sal.map.shape == (100, 140) and sal.method == "gradcam"
    x0, y0, x1, y1 = sal.box  # type: ignore[misc]
    outside = sal.map.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0 and sal.map.max() > 0


def test_expand_box_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        expand_box((500, 500, 600, 600), (100, 100))
    assert expand_box((10, 10, 12, 12), (100, 100))[2] - expand_box((10, 10, 12, 12), (100, 100))[0] >= 16


def test_analyse_score_equals_predict(root: Path) -> None:
    make_weights(root)
    pred = Predictor(root / "tiny_us")
    px = (np.random.default_rng(2).random((64, 64)) * 255).astype(np.uint8)
    for method in ("gradcam",):
        score, sal = pred.analyse(_img(px), method, box=(10, 10, 50, 50))
        assert score == pytest.approx(pred.predict(_img(px), box=(10, 10, 50, 50)), abs=1e-5)
        assert sal.method == method


def test_qi_multi_input_spec_averages_five_crops(root: Path) -> None:
    from engine.models.qi import five_crops

    torch.manual_seed(0)
    model = get_model("qi_mtnet", repeats=(1, 1, 1))
    spec = WeightsSpec(name="qi_tiny", model="qi_mtnet", model_cfg={"repeats": [1, 1, 1]}, modality="US",
                       input_size=[75, 75], in_chans=3, mean=[0.5] * 3, std=[0.5] * 3,
                       extra={"multi_input": True})
    save_weights(model, spec, root / "qi_tiny")
    pred = Predictor(root / "qi_tiny")
    px = (np.random.default_rng(3).random((90, 150)) * 255).astype(np.uint8)
    p = pred.predict(_img(px))
    x = torch.from_numpy(px.astype(np.float32) / 255.0)[None].expand(3, -1, -1)
    crops = (five_crops(x.contiguous(), 75) - 0.5) / 0.5
    with torch.no_grad():
        expect = float(pred.model.malignancy(pred.model(crops)).mean())
    assert p == pytest.approx(expect, abs=1e-5)
    assert pred.predict_batch([_img(px)]) == pytest.approx([p], abs=1e-6)
    score, sal = pred.analyse(_img(px), "cam")
    assert score == pytest.approx(p, abs=1e-5) and sal.map.shape == (90, 150)


def _weights_with(root: Path, name: str, extra: dict) -> Path:
    torch.manual_seed(0)
    spec = WeightsSpec(name=name, model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality="US",
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)", extra=extra)
    return save_weights(get_model("habib_basic_cnn", in_chans=1), spec, root / name)


def test_whole_image_model_ignores_a_readers_box(root: Path) -> None:
    pred = Predictor(_weights_with(root, "whole", {"needs_box": False}))
    px = (np.random.default_rng(1).random((90, 120)) * 255).astype(np.uint8)
    box = (10, 10, 40, 40)
    assert pred.predict(_img(px), box) == pytest.approx(pred.predict(_img(px)))
    assert pred.predict_batch([_img(px)], [box]) == pytest.approx([pred.predict(_img(px))])
    assert pred.saliency(_img(px), "gradcam", box=box).box is None  # map over the whole image


def test_lesion_model_refuses_to_score_without_a_box(root: Path) -> None:
    from engine.errors import BoxRequiredError

    pred = Predictor(_weights_with(root, "lesion", {"needs_box": True}))
    px = np.zeros((64, 64), np.uint8)
    with pytest.raises(BoxRequiredError, match="draw a box"):
        pred.predict(_img(px))
    # the score is the same weights' score of the box grown by 15 % per side (worked by hand:
    # a 20 px box gains 3 px a side -> rows/cols 7..32), not of the whole image
    rng = np.random.default_rng(3)
    px = (rng.random((64, 64)) * 255).astype(np.uint8)
    px[12:28, 12:28] = 250
    whole = Predictor(_weights_with(root, "lesion_whole", {"needs_box": False}))  # same seed, same weights
    p_box = pred.predict(_img(px), (10, 10, 30, 30))
    assert p_box == pytest.approx(whole.predict(_img(px[7:33, 7:33].copy())), abs=1e-6)
    assert abs(p_box - whole.predict(_img(px))) > 2e-4  # random-init net: small, but 200x the tolerance


@pytest.mark.parametrize("shape", [(40, 100), (100, 40), (50, 50)])
def test_five_crop_layout_matches_five_crops(shape: tuple[int, int]) -> None:
    from engine.models.qi import five_crop_layout, five_crops, resize_shorter_side

    img = torch.arange(shape[0] * shape[1], dtype=torch.float32).reshape(1, *shape)
    crops = five_crops(img, 32)
    (rh, rw), offsets = five_crop_layout(shape, 32)
    resized = resize_shorter_side(img, 32)
    assert tuple(resized.shape[-2:]) == (rh, rw)
    for crop, (t, l) in zip(crops, offsets):
        assert torch.equal(crop, resized[:, t:t + 32, l:l + 32])
    ends = [max(t, l) + 32 for t, l in offsets]
    assert max(ends) == max(rh, rw) and min(max(t, l) for t, l in offsets) == 0  # crops span the long side


def test_five_crop_saliency_lands_where_each_crop_came_from(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a saliency 'method' that returns the input itself, the placed map must reproduce the
    image: a crop placed at the wrong offset (or one crop stretched over all) would not."""
    import engine.inference.predictor as inf
    from engine.saliency.base import SaliencyMethod

    class Identity(SaliencyMethod):
        name = "identity"

        def compute_map(self, x: torch.Tensor) -> torch.Tensor:
            return x[0, 0]

    monkeypatch.setattr(inf, "get_saliency", lambda method: Identity)
    monkeypatch.setattr(inf.Predictor, "saliency_methods", lambda self: ("identity",))
    pred = Predictor(_weights_with(root, "five", {"multi_input": True}))
    yy, xx = np.mgrid[0:60, 0:200]
    px = (127 + 120 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)  # structure along the long side
    smap = pred.saliency(_img(px), "identity")
    assert smap.map.shape == px.shape
    r = np.corrcoef(smap.map.ravel(), px.astype(np.float32).ravel())[0, 1]
    assert r > 0.97


def test_unannotated_stack_is_read_at_its_most_suspicious_slice(root: Path) -> None:
    """An MR stack without a chosen slice scores max over slices, and the map is of that slice."""
    pred = Predictor(_weights_with(root, "mr", {"needs_box": False}))
    rng = np.random.default_rng(3)
    stack = (rng.random((7, 40, 40)) * 255).astype(np.uint8)
    img = LoadedImage(stack, ImageMeta(path="s", modality="MR"))  # type: ignore[arg-type]
    per_slice = pred.slice_scores(img)
    assert per_slice.shape == (7,)
    assert per_slice == pytest.approx([pred.predict(img, frame=f) for f in range(7)], abs=1e-6)
    best = int(np.argmax(per_slice))
    assert pred.predict(img) == pytest.approx(float(per_slice.max()), abs=1e-6)
    assert pred.saliency(img, "gradcam").extra["frame"] == best
