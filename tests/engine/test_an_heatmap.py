"""An 2019 heatmap regression: dataset kind (image, local map, blurred target), the
``an_heatmap`` protocol (patient-grouped folds, MSE + pointing with patient-bootstrap CIs,
paired with-vs-without difference) and its statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.models.an import AnHeatmapFCN, heatmap_target
from engine.stats.bootstrap import _replicates, cluster_bootstrap_mean, paired_cluster_bootstrap
from engine.train.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]
MIAS = REPO.parent / "shared" / "data" / "mias-dev"
needs_mias = pytest.mark.skipif(not (MIAS / "Info.txt").is_file(),
                                reason=f"mini-MIAS dev data not found at {MIAS} (../shared/data is absent)")


def _syn_config(tmp: Path, model: str, *, n: int = 24) -> Path:
    """A tiny-budget SYNTHETIC copy of the shipped heatmap config (same sections)."""
    text = (REPO / "configs" / "an_heatmap_mias_local.toml").read_text(encoding="utf-8")
    repl = {'kind = "mias_heatmap"': 'kind = "synthetic_heatmap"',
            'path = "../../shared/data/mias-dev"': f"synthetic_n = {n}",
            "image_size = [128, 128]": "image_size = [64, 64]", "crop = 1024": "crop = 256",
            "patch = 64": "patch = 32", "patch_widths = [8, 16, 32]": "patch_widths = [8, 16]",
            "neg_stride = 16": "neg_stride = 8", "map_stride = 16": "map_stride = 8",
            "patch_epochs = 4": "patch_epochs = 1", "n_boot = 2000": "n_boot = 200",
            "epochs = 15": "epochs = 2", 'name = "an_heatmap_fcn_local"': f'name = "{model}"'}
    for a, b in repl.items():
        assert a in text, a
        text = text.replace(a, b)
    p = tmp / f"{model}.toml"
    p.write_text(text, encoding="utf-8")
    return p


# -- the blurred target --------------------------------------------------------------------------
def test_heatmap_target_is_the_gaussian_blur_of_the_disc_worked_by_hand() -> None:
    # 64 px image, 8x8 output (cells of 8 px): a lesion of radius 1 at (36, 36) -> the disc is
    # the one cell (4, 4) (radius raised to half a cell), then a sigma-1 Gaussian, max 1:
    # neighbours exp(-1/2), diagonals exp(-1).
    t = heatmap_target([(36.0, 36.0, 1.0)], (64, 64), out=8, sigma=1.0)
    assert t[4, 4] == pytest.approx(1.0)
    assert t[4, 5] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert t[3, 4] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert t[5, 5] == pytest.approx(math.exp(-1.0), rel=1e-5)
    assert t[4, 6] == pytest.approx(math.exp(-2.0), rel=1e-4)


def test_dataset_target_is_blurred_and_sigma_zero_is_rejected(tmp_path: Path) -> None:
    from engine.train.data import load_dataset

    cfg = load_config(_syn_config(tmp_path, "an_heatmap_fcn"))
    ds = load_dataset(cfg)
    i = int(np.nonzero(ds.labels)[0][0])
    x, lm, t = ds[i]
    assert x.shape == (1, 64, 64) and t.shape == (1, 8, 8) and lm.shape == (1, *ds.map_grid())
    v = t.numpy()
    assert v.max() == pytest.approx(1.0)
    assert ((v > 0.01) & (v < 0.99)).sum() >= 4  # a soft edge, not a 0/1 disc
    with pytest.raises(ConfigError, match="sigma"):
        load_config(_syn_config(tmp_path, "an_heatmap_fcn"), ["heatmap.sigma=0.0"])


# -- the local map reaches the FCN -----------------------------------------------------------------
def test_local_map_channel_changes_the_fcn_output() -> None:
    torch.manual_seed(0)
    net = AnHeatmapFCN(use_local_map=True, widths=(8, 8, 8, 8)).eval()
    x = torch.rand(1, 1, 64, 64)
    a = net(x, torch.zeros(1, 1, 5, 5))
    b = net(x, torch.ones(1, 1, 5, 5))
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="local map"):
        net(x)


def test_protocol_feeds_the_fold_local_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same local-map run with the classifier's maps replaced by zeros scores differently."""
    import engine.models.an as an
    from engine.train.an_heatmap import evaluate_an_heatmap
    from engine.train.data import load_dataset

    cfg = load_config(_syn_config(tmp_path, "an_heatmap_fcn_local", n=12))
    real = evaluate_an_heatmap(cfg, load_dataset(cfg), folds=2)
    assert real["local_map"] is True and real["per_fold"][0]["patches"]["n_pos"] > 0
    seen: list[np.ndarray] = []
    orig = an.local_map_dense

    def zeros(*a: object, **k: object) -> np.ndarray:
        m = orig(*a, **k)  # type: ignore[arg-type]
        seen.append(m)
        return np.zeros_like(m)

    monkeypatch.setattr(an, "local_map_dense", zeros)
    blank = evaluate_an_heatmap(cfg, load_dataset(cfg), folds=2)
    assert seen and float(np.ptp(np.concatenate([s.ravel() for s in seen]))) > 0  # real maps vary
    assert [r["mse"] for r in real["per_image"]] != [r["mse"] for r in blank["per_image"]]


# -- folds -----------------------------------------------------------------------------------------
@needs_mias
def test_mias_heatmap_folds_never_split_a_woman() -> None:
    from engine.train.an_heatmap import heatmap_folds
    from engine.train.data import load_dataset

    cfg = load_config(REPO / "configs" / "an_heatmap_mias_local.toml")
    ds = load_dataset(cfg)
    ids = {s.id: g for s, g in zip(ds.samples, ds.groups)}
    assert ids["mdb001"] == ids["mdb002"] and ids["mdb002"] != ids["mdb005"]
    assert "Suckling" in ds.source and (MIAS / "Licence.txt").is_file()
    folds = heatmap_folds(ds, 3, 0)
    seen: dict[str, int] = {}
    for f in folds:
        tr = {ds.groups[i] for i in f.train}
        te = {ds.groups[i] for i in f.test}
        assert not tr & te
        for g in te:
            assert seen.setdefault(g, f.fold) == f.fold
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ds)))
    # y measured from the bottom: mdb001 (x 535, y 425, r 197) -> its target peaks inside the circle
    i = [s.id for s in ds.samples].index("mdb001")
    (cx, cy, r), = ds.crop_lesions(i)
    t = ds.target(i)[0].numpy()
    rr, cc = np.unravel_index(int(np.argmax(t)), t.shape)
    side = cfg.heatmap.crop / t.shape[0]
    assert math.hypot((cc + 0.5) * side - cx, (rr + 0.5) * side - cy) <= r


# -- the protocol through the CLI, tiny budget, SYNTHETIC ------------------------------------------
def test_tiny_synthetic_evaluate_writes_both_arms_and_the_paired_difference(tmp_path: Path) -> None:
    from engine.cli.main import main

    base, local = tmp_path / "base.json", tmp_path / "local.json"
    assert main(["evaluate", "--config", str(_syn_config(tmp_path, "an_heatmap_fcn")), "--protocol", "an_heatmap",
                 "--folds", "3", "--quiet", "--out", str(base)]) == 0
    assert main(["evaluate", "--config", str(_syn_config(tmp_path, "an_heatmap_fcn_local")), "--protocol",
                 "an_heatmap", "--folds", "3", "--quiet", "--paired", str(base), "--out", str(local)]) == 0
    b, a = json.loads(base.read_text()), json.loads(local.read_text())
    for r in (a, b):
        assert r["synthetic"] is True and "SYNTHETIC" in r["data"]
        for k in ("mse", "mse_lesion", "pointing"):
            lo, hi = r[k]["ci"]
            assert lo <= r[k]["mean"] <= hi
        assert r["n_patients"] == 12 and r["budget"]["fcn_input"] == 64
        folds_of: dict[str, set[int]] = {}
        for row in r["per_image"]:
            folds_of.setdefault(row["group"], set()).add(row["fold"])
        assert all(len(v) == 1 for v in folds_of.values())
        assert 0 < r["pointing_chance"] < 1 and r["mse_zero_prediction"] > 0
    assert a["local_map"] and not b["local_map"] and "map_stride" in a["budget"]
    assert b["local_map_pointing"] is None and 0 <= a["local_map_pointing"]["mean"] <= 1
    d = a["paired"]["mse"]
    assert d["mean"] == pytest.approx(a["mse"]["mean"] - b["mse"]["mean"], abs=1e-9)
    assert d["ci"][0] <= d["mean"] <= d["ci"][1] and 0 <= d["p_two_sided"] <= 1
    assert "pointing" in a["paired"]


def test_an_heatmap_rejects_a_classifier_dataset(tmp_path: Path) -> None:
    from engine.cli.main import main

    cfg = REPO / "configs" / "habib_fusion_synthetic.toml"
    assert main(["evaluate", "--config", str(cfg), "--protocol", "an_heatmap", "--quiet"]) != 0


def test_pointing_hit_and_chance_worked_by_hand() -> None:
    from engine.train.an_heatmap import pointing_chance, pointing_hit

    pred = np.zeros((4, 4), np.float32)
    pred[1, 2] = 1.0  # cell centre (x 40, y 24) of a 64 px crop (cells of 16 px)
    assert pointing_hit(pred, [(40.0, 24.0, 3.0)], 64)  # radius raised to half a cell
    assert not pointing_hit(pred, [(8.0, 8.0, 10.0)], 64)
    assert pointing_chance([(40.0, 24.0, 3.0)], 64, 4) == pytest.approx(1 / 16)
    assert pointing_chance([(32.0, 32.0, 200.0)], 64, 4) == 1.0


def test_local_map_pointing_maps_the_window_back_to_the_crop() -> None:
    from engine.train.an_heatmap import local_map_pointing

    lm = np.zeros((5, 5), np.float32)
    lm[2, 3] = 1.0  # window (row 2, col 3), stride 16, patch 64 at x0.25 -> centre x (48+32)*4, y (32+32)*4
    assert local_map_pointing(lm, [(320.0, 256.0, 10.0)], scale=0.25, patch=64, stride=16)
    assert not local_map_pointing(lm, [(256.0, 320.0, 10.0)], scale=0.25, patch=64, stride=16)


# -- the patient bootstrap -------------------------------------------------------------------------
def test_cluster_bootstrap_resamples_patients_not_images() -> None:
    v = np.array([1.0, 1.0, 0.0, 0.0])
    reps, k = _replicates(v, ["a", "a", "b", "b"], 500, 0)
    assert k == 2 and set(np.round(reps, 6)) <= {0.0, 0.5, 1.0}
    ci = cluster_bootstrap_mean(v, ["a", "a", "b", "b"], n_boot=500)
    assert ci.mean == 0.5 and ci.lo == 0.0 and ci.hi == 1.0 and ci.n_clusters == 2
    same = cluster_bootstrap_mean([0.3, 0.3, 0.3], ["a", "b", "c"])
    assert same.lo == pytest.approx(0.3) and same.hi == pytest.approx(0.3)


def test_paired_bootstrap_difference_sign_and_p() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(40)
    groups = [f"p{i // 2}" for i in range(40)]
    d = paired_cluster_bootstrap(b + 0.1, b, groups)
    assert d.mean == pytest.approx(0.1) and d.lo == pytest.approx(0.1) and d.p_two_sided == 0.0
    noisy = paired_cluster_bootstrap(b, rng.permutation(b), groups)
    assert noisy.lo < 0 < noisy.hi and noisy.p_two_sided > 0.05
    with pytest.raises(ValueError):
        paired_cluster_bootstrap([1.0], [1.0, 2.0], ["a"])


def test_heatmap_config_section_round_trips() -> None:
    cfg = TrainConfig.from_dict({"data": {"kind": "synthetic_heatmap", "image_size": [64, 64]},
                                 "model": {"name": "an_heatmap_fcn"}, "heatmap": {"map_stride": 8,
                                                                                   "patch_widths": [8, 16]}})
    assert cfg.heatmap.map_stride == 8
    with pytest.raises(ConfigError, match="map_stride"):
        TrainConfig.from_dict({"data": {"kind": "synthetic_heatmap"}, "heatmap": {"map_stride": 12}})


def test_patch_classifier_is_augmented_by_the_one_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tissue patches go through engine.train.augment.augment with the config's [augment]
    (An Sec. 4.1: flips, 90-degree rotations, brightness), one call per patch and epoch."""
    import engine.train.an_heatmap as ah
    from engine.train.augment import augment
    from engine.train.data import load_dataset

    cfg = load_config(_syn_config(tmp_path, "an_heatmap_fcn_local", n=8))
    assert cfg.augment.rotate90 and cfg.augment.hflip and cfg.augment.brightness == pytest.approx(0.1)
    calls: list[object] = []

    def spy(t: torch.Tensor, aug: object, rng: np.random.Generator) -> torch.Tensor:
        calls.append(aug)
        return augment(t, aug, rng)  # type: ignore[arg-type]

    monkeypatch.setattr(ah, "augment", spy)
    ds = load_dataset(cfg)
    _, counts = ah.train_patch_classifier(ds, np.arange(len(ds)), seed=0, aug=cfg.augment)
    assert len(calls) == (counts["n_pos"] + counts["n_neg"]) * cfg.heatmap.patch_epochs
    assert all(a is cfg.augment for a in calls)
