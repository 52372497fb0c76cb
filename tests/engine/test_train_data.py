"""engine.train.data: manifest + study sources, 5-crop evaluation, augmentation, workers."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.errors import CaseFormatError
from engine.train.config import TrainConfig
from engine.train.data import load_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_train_fit import TinyNet, make_blob_folder, net  # noqa: E402

DEMO = Path(__file__).parents[2] / "resources" / "demo"


def test_manifest_boxes_label_map_and_modality(tmp_path: Path) -> None:
    img = np.zeros((40, 60), np.uint8)
    img[10:30, 30:50] = 200  # the "lesion" inside the box (>= 16 px a side: expand_box's minimum)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), img // 2)
    (tmp_path / "m.csv").write_text(
        "path,modality,label,group,x0,y0,x1,y1\n"
        "a.png,US,M,L1,30,10,50,30\n"
        "b.png,us,B,L2,30,10,50,30\n"
        "a.png,MG,M,L3,,,,\n")
    cfg = TrainConfig.from_dict({"data": {
        "kind": "manifest", "path": str(tmp_path / "m.csv"), "modality": "US", "crop_to_box": True,
        "box_margin": 0.0, "label_map": {"B": "benign", "M": "malignant"}, "image_size": [10, 20],
        "grayscale": True, "mean": [0.0], "std": [1.0]}})
    ds = load_dataset(cfg)
    assert len(ds) == 2 and ds.classes == ["benign", "malignant"] and ds.groups == ["L1", "L2"]
    x, y = ds[0]
    assert y == 1 and x.shape == (1, 10, 20)
    assert float(x.min()) == pytest.approx(200 / 255, abs=1e-3)  # cropped to the box exactly
    (tmp_path / "m.csv").write_text("path,modality,label,x0,y0,x1,y1\na.png,US,M,5,5,2,9\n")
    with pytest.raises(CaseFormatError, match="row 2.*x1 > x0"):
        load_dataset(cfg)


@pytest.mark.skipif(not (DEMO / "study.json").is_file(), reason="demo study not built")
def test_study_folder_source() -> None:
    cfg = TrainConfig.from_dict({"data": {"kind": "study", "path": str(DEMO), "modality": "US",
                                          "image_size": [32, 32], "grayscale": True}})
    ds = load_dataset(cfg)
    assert set(ds.classes) == {"benign", "malignant"}
    assert all(s.modality == "US" for s in ds.samples)
    assert ds.groups[0] == Path(ds.samples[0].path).parent.name  # group = case id
    x, _ = ds[0]
    assert x.shape == (1, 32, 32)


def test_shorter_side_random_crop_and_five_crops(tmp_path: Path) -> None:
    root = make_blob_folder(tmp_path / "b", n_per_class=2, size=24)
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (24, 1))  # 24 x 48, a horizontal ramp
    cv2.imwrite(str(root / "images" / "benign_0.png"), img)
    cfg = TrainConfig.from_dict({"data": {"path": str(root), "image_size": [12, 12], "grayscale": True,
                                          "eval_crops": 5, "mean": [0.0], "std": [1.0]},
                                 "augment": {"preset": "qi"}})
    ds = load_dataset(cfg)
    ev = ds.subset([0], train=False)
    x, _ = ev[0]
    assert x.shape == (5, 1, 12, 12)  # shorter side 24 -> 12, width 24: five crops along it
    left = x[:, 0, 0, 0].numpy()
    assert np.all(np.diff(left) > 0)  # uniformly spaced from the left edge to the right edge
    tr = ds.subset([0], train=True)
    crops = set()
    for e in range(6):
        tr.set_epoch(e)
        crops.add(round(float(tr[0][0][0, 0, 0]), 4))
    assert len(crops) > 1  # random crop position changes with the epoch
    tr.set_epoch(0)
    assert torch.equal(tr[0][0], tr[0][0])  # ...but is fixed for a given (seed, epoch, index)


def test_five_crop_scores_are_averaged(tmp_path: Path) -> None:
    from engine.train.loop import predict

    root = make_blob_folder(tmp_path / "b", n_per_class=3, size=24)
    base = {"path": str(root), "image_size": [16, 16], "grayscale": True, "resize": "shorter_side"}
    five = load_dataset(TrainConfig.from_dict({"data": dict(base, eval_crops=5)}))
    m = net()
    s5 = predict(m, five, device="cpu")
    x = torch.stack([five[i][0] for i in range(len(five))])  # (N, 5, 1, 16, 16)
    with torch.no_grad():
        manual = torch.sigmoid(m(x.flatten(0, 1))).view(len(five), 5).mean(1).numpy()
    np.testing.assert_allclose(s5, manual, rtol=1e-5)


def test_workers_give_the_same_training(tmp_path: Path) -> None:
    from engine.train.loop import fit

    root = make_blob_folder(tmp_path / "b", n_per_class=6, size=16)
    d = {"data": {"path": str(root), "image_size": [16, 16], "grayscale": True},
         "augment": {"preset": "hijab"},
         "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "select": []}}
    ds0 = load_dataset(TrainConfig.from_dict(d)).subset(range(12), train=True)
    a = fit(net(), ds0, cfg=TrainConfig.from_dict(d)).final_state
    d["train"]["num_workers"] = 2  # type: ignore[index]
    b = fit(net(), ds0, cfg=TrainConfig.from_dict(d)).final_state
    for k in a:
        assert torch.equal(a[k], b[k])
    assert isinstance(TinyNet(), torch.nn.Module)


def test_crop_to_mask_bounding_box(tmp_path: Path) -> None:
    img = np.full((40, 80), 10, np.uint8)
    img[8:24, 40:60] = 250
    mask = np.zeros((20, 40), np.uint8)  # half resolution: coordinates are rescaled
    mask[4:12, 20:30] = 255
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((20, 40), np.uint8))
    (tmp_path / "labels.csv").write_text("image,mask,label\na.png,m.png,malignant\na.png,empty.png,benign\n")
    cfg = TrainConfig.from_dict({"data": {"path": str(tmp_path), "image_size": [8, 20], "grayscale": True,
                                          "crop_to_box": True, "box_margin": 0.0, "mean": [0.0], "std": [1.0]}})
    ds = load_dataset(cfg)
    crop, _ = ds[0]
    assert float(crop.min()) == pytest.approx(250 / 255, abs=1e-3)  # only the lesion is left
    whole, _ = ds[1]
    assert float(whole.min()) < 0.1  # empty mask: whole image


def test_augmentation_warp_is_opencv_convention_with_edge_fill() -> None:
    """The one augmentation pipeline (engine.train.augment): a +2 px x-shift moves every column
    two to the right (dst(x) = src(x - 2), OpenCV warpAffine's convention) and fills the exposed
    border with the edge column (Keras/Hijab "nearest" fill), worked by hand on a ramp."""
    from engine.train.augment import augment, warp
    from engine.train.config import AugmentConfig

    ramp = torch.arange(8, dtype=torch.float32).repeat(1, 5, 1)  # (1, 5, 8): column c has value c
    out = warp(ramp, np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))
    assert torch.allclose(out[0, :, 2:], ramp[0, :, :-2], atol=1e-5)
    assert torch.allclose(out[0, :, :2], torch.zeros(5, 2), atol=1e-5)  # edge value 0 replicated
    aug = AugmentConfig(rotate90=True, shift=0.1, shear=10.0, zoom=0.1, hflip=True)  # preset "hijab"
    x = torch.rand(1, 12, 16)
    a = augment(x, aug, np.random.default_rng([0, 1, 2]))
    assert a.shape == x.shape and torch.equal(a, augment(x, aug, np.random.default_rng([0, 1, 2])))
    assert not torch.equal(a, augment(x, aug, np.random.default_rng([0, 2, 2])))


def test_augmentation_brightness_scales_within_its_range_and_is_seeded() -> None:
    from engine.train.augment import augment
    from engine.train.config import AugmentConfig

    t = torch.full((1, 8, 8), 0.5)
    assert torch.equal(augment(t, AugmentConfig(), np.random.default_rng(0)), t)  # off by default
    aug = AugmentConfig(brightness=0.1)
    outs = [augment(t, aug, np.random.default_rng(s)) for s in range(40)]
    factors = [float(o[0, 0, 0]) / 0.5 for o in outs]
    assert all(0.9 <= f <= 1.1 for f in factors) and max(factors) - min(factors) > 0.1  # spans the range
    assert all(float(o.max()) == float(o.min()) for o in outs)  # one factor per image: brightness, not noise
    assert torch.equal(augment(t, aug, np.random.default_rng(3)), outs[3])
