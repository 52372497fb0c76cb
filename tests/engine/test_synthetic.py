"""Tests of the SYNTHETIC generators (engine.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.data.synthetic import (
    MRI_TASKS,
    margin_irregularity,
    star_mask,
    synthetic_mammogram,
    synthetic_mri_case,
    synthetic_paired_lesion,
)


def test_paired_lesion_deterministic_and_typed() -> None:
    a = synthetic_paired_lesion(7, malignant=True, size=64)
    b = synthetic_paired_lesion(7, malignant=True, size=64)
    c = synthetic_paired_lesion(8, malignant=True, size=64)
    assert np.array_equal(a["mg"], b["mg"]) and np.array_equal(a["us"], b["us"])
    assert not np.array_equal(a["mg"], c["mg"])
    assert a["mg"].dtype == np.uint16 and a["mg"].shape == (64, 64) and a["mg"].max() <= 4095
    assert a["us"].dtype == np.uint8 and a["us"].shape == (64, 64)
    assert a["synthetic"] is True and a["label"] == 1
    x0, y0, x1, y1 = a["box"]
    m = a["masks"]["mg"]
    assert m[y0:y1, x0:x1].sum() == m.sum() > 0
    # The lesion is brighter than the surroundings in MG and darker (hypoechoic) in US.
    assert a["mg"][m].mean() > a["mg"][~m].mean()
    mu = a["masks"]["us"]
    assert a["us"][mu].mean() < a["us"][~mu].mean()


def test_margin_feature_separates_classes_but_not_perfectly() -> None:
    feats, labels = [], []
    for s in range(60):
        mal = s % 2 == 1
        les = synthetic_paired_lesion(1000 + s, malignant=mal, size=64)
        feats.append(margin_irregularity(les["masks"]["mg"]))
        labels.append(int(mal))
    auc = roc_auc_score(labels, feats)
    assert 0.75 <= auc < 0.995, auc


def test_margin_irregularity_on_known_shapes() -> None:
    circle = star_mask((64, 64), (32, 32), 15, np.ones(360))
    assert margin_irregularity(circle) < 0.08
    star = star_mask((64, 64), (32, 32), 10, 1 + 1.5 * (np.cos(6 * np.linspace(0, 2 * np.pi, 360)) > 0.9))
    assert margin_irregularity(star) > 0.3


def test_mri_case_shapes_box_and_labels() -> None:
    case = synthetic_mri_case(3, malignant=False, n_slices=8, size=64)
    again = synthetic_mri_case(3, malignant=False, n_slices=8, size=64)
    vol = case["volume"]
    assert np.array_equal(vol, again["volume"])
    assert vol.dtype == np.uint16 and vol.shape == (8, 64, 64)
    s0, s1, x0, y0, x1, y1 = case["lesion_box"]
    assert 0 <= s0 < s1 <= 8 and 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert case["lesion_mask"][s0:s1, y0:y1, x0:x1].sum() == case["lesion_mask"].sum()
    labels = case["labels"]
    assert set(labels) == set(MRI_TASKS) and labels["malignancy"] == 0
    assert labels["mammary_gland"] + labels["other_benign"] == 1
    assert labels["idc"] == labels["other_malignant"] == 0
    # The lesion enhances: brighter than the rest of the breast slab.
    assert vol[case["lesion_mask"]].mean() > 1.5 * np.median(vol[vol > 50])
    assert len(case["spacing_mm"]) == 3 and case["synthetic"] is True


def test_mri_malignant_subtypes() -> None:
    case = synthetic_mri_case(4, malignant=True, n_slices=6, size=48)
    assert case["labels"]["malignancy"] == 1
    assert case["labels"]["idc"] + case["labels"]["other_malignant"] == 1


@pytest.mark.parametrize("lat", ["L", "R"])
def test_mammogram_lesion_in_breast(lat: str) -> None:
    mg = synthetic_mammogram(5, laterality=lat, rows=256, cols=208)
    img = mg["image"]
    assert img.dtype == np.uint16 and img.shape == (256, 208)
    x0, y0, x1, y1 = mg["box"]
    assert mg["breast_mask"][mg["mask"]].all()
    assert mg["mask"][y0:y1, x0:x1].sum() == mg["mask"].sum()
    # Chest wall side: the breast touches the left edge for L, the right edge for R.
    edge = mg["breast_mask"][:, 0] if lat == "L" else mg["breast_mask"][:, -1]
    assert edge.any()
    none = synthetic_mammogram(5, lesion=False, rows=128, cols=104)
    assert none["box"] is None and not none["mask"].any()
