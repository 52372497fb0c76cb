"""engine.train.protocols: grouped folds, per-lesion scores, cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.train.protocols import holdout_split, lesion_scores, split_indices


def _data(n_groups: int = 30, per_group: int = 3, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    g_label = (np.arange(n_groups) % 3 == 0).astype(np.int64)  # 1/3 malignant lesions
    labels, groups = [], []
    for g in range(n_groups):
        for _ in range(int(rng.integers(1, per_group + 1))):
            labels.append(g_label[g])
            groups.append(f"lesion{g}")
    return np.array(labels), groups


@pytest.mark.parametrize("protocol", ["loo", "kfold", "repeated-kfold", "split"])
def test_no_group_in_two_parts_and_test_parts_partition(protocol: str) -> None:
    y, g = _data()
    folds = split_indices(protocol, y, g, folds=3, repeats=3, seed=1, val_fraction=0.2)
    garr = np.array(g)
    for f in folds:
        parts = [set(garr[f.train]), set(garr[f.val]), set(garr[f.test])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert f.train.size + f.val.size + f.test.size == y.size
    if protocol in ("kfold", "repeated-kfold", "loo"):
        for r in {f.repeat for f in folds}:
            tests = np.concatenate([f.test for f in folds if f.repeat == r])
            assert np.array_equal(np.sort(tests), np.arange(y.size))  # every image tested once
    if protocol == "loo":
        assert len(folds) == 30 and all(len(set(garr[f.test])) == 1 for f in folds)
    if protocol == "repeated-kfold":
        assert len(folds) == 9  # the MRI paper's 3x3
        assert not np.array_equal(folds[0].test, folds[3].test)  # repeats reshuffle


def test_split_is_four_one_one_sixths_and_stratified() -> None:
    y, g = np.repeat([0, 1], 60), [str(i) for i in range(120)]
    (f,) = split_indices("split", y, g, seed=0)
    assert (f.train.size, f.val.size, f.test.size) == (80, 20, 20)
    for part in (f.train, f.val, f.test):
        assert y[part].mean() == pytest.approx(0.5)


def test_split_indices_is_reproducible_and_seeded() -> None:
    y, g = _data()
    a = split_indices("kfold", y, g, folds=5, seed=4)
    b = split_indices("kfold", y, g, folds=5, seed=4)
    c = split_indices("kfold", y, g, folds=5, seed=5)
    assert all(np.array_equal(x.test, z.test) for x, z in zip(a, b))
    assert any(not np.array_equal(x.test, z.test) for x, z in zip(a, c))


def test_protocol_errors() -> None:
    y, g = _data(n_groups=6)  # 2 malignant lesions
    with pytest.raises(ConfigError, match="only 2 lesion group"):
        split_indices("kfold", y, g, folds=3)
    with pytest.raises(ConfigError, match="unknown protocol"):
        split_indices("bootstrap", y, g)
    with pytest.raises(ConfigError, match="one class"):
        split_indices("kfold", np.zeros(10), None)


def test_holdout_split_grouped() -> None:
    y, g = _data()
    tr, va = holdout_split(y, g, 0.2, 0)
    garr = np.array(g)
    assert not set(garr[tr]) & set(garr[va])
    assert 0.1 < va.size / y.size < 0.35 and y[va].sum() > 0


def test_lesion_score_is_mean_over_images() -> None:
    ids, t, s = lesion_scores([0.2, 0.4, 0.9, 0.1], [1, 1, 0, 0], ["a", "a", "b", "b"])
    assert ids == ["a", "b"]
    assert t.tolist() == [1, 0]
    np.testing.assert_allclose(s, [0.3, 0.5])


def test_cli_protocol_choices_match() -> None:
    from engine.cli import cmd_evaluate
    from engine.train import protocols

    assert cmd_evaluate.PROTOCOLS == protocols.PROTOCOLS


def test_cross_validate_loo_and_split_on_blobs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sys
    from pathlib import Path

    import torch

    from engine.errors import Cancelled
    from engine.progress import CancelToken
    from engine.train.config import TrainConfig
    from engine.train.data import load_dataset
    from engine.train.protocols import cross_validate

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_fit import TinyNet, make_blob_folder

    torch.set_num_threads(1)
    root = make_blob_folder(tmp_path / "b", n_per_class=12, size=16, groups_of=3)  # 8 lesions
    cfg = TrainConfig.from_dict({
        "data": {"path": str(root), "image_size": [16, 16], "grayscale": True, "val_fraction": 0.0},
        "optim": {"name": "adam", "lr": 0.05},
        "train": {"epochs": 3, "batch_size": 8, "device": "cpu"}})
    ds = load_dataset(cfg)
    loo = cross_validate(cfg, ds, protocol="loo", model_factory=TinyNet)
    assert loo["n_lesions"] == 8 and len(loo["per_fold"]) == 8
    assert all(f["n_test_lesions"] == 1 and f["auc"] is None for f in loo["per_fold"])
    assert all("other folds" in f["threshold_source"] for f in loo["per_fold"])
    assert loo["pooled"]["auc"] > 0.9
    with pytest.raises(ConfigError, match="at least 6 lesions of each class"):
        cross_validate(cfg, ds, protocol="split", model_factory=TinyNet)
    cfg.data.path = str(make_blob_folder(tmp_path / "c", n_per_class=12, size=16))  # 24 lesions
    split = cross_validate(cfg, None, protocol="split", model_factory=TinyNet, run_dir=tmp_path / "s")
    (f,) = split["per_fold"]
    assert "validation" in f["threshold_source"] and f["n_val_images"] > 0
    assert (tmp_path / "s" / "cv.json").is_file() and (tmp_path / "s" / "r0f0" / "last.pt").is_file()
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        cross_validate(cfg, ds, protocol="kfold", folds=2, model_factory=TinyNet, cancel=tok)


def test_lesion_scores_of_multi_output_models_use_malignancy() -> None:
    """(N, K) scores (MRI attention: malignancy + 4 categories) are scored on task 0."""
    import numpy as np

    from engine.train.protocols import lesion_scores

    scores = np.array([[0.9, 0.0, 0.0, 0.0, 0.0], [0.7, 0.0, 0.0, 0.0, 0.0], [0.2, 1.0, 1.0, 1.0, 1.0]])
    labels = np.array([[1, 0, 0, 1, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 0]])
    ids, truth, mean = lesion_scores(scores, labels, ["a", "a", "b"])
    assert ids == ["a", "b"]
    assert truth.tolist() == [1, 0]
    assert mean.tolist() == pytest.approx([0.8, 0.2])
