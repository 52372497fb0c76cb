"""engine.train.config: TOML + --set overrides with type checks; example configs stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.train.config import TrainConfig, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.toml"))
BUSI = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"  # shared/ sits beside the clone


def test_overrides_are_typed_and_checked() -> None:
    cfg = TrainConfig().override(["train.epochs=3", "optim.lr=0.5", "train.select=[\"f2\"]",
                                  "model.name=foo", "model.cfg.in_chans=1", "data.image_size=[32, 48]"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == 0.5 and cfg.train.select == ["f2"]
    assert cfg.model.name == "foo" and cfg.model.cfg == {"in_chans": 1} and cfg.data.image_size == [32, 48]
    assert TrainConfig().override(["optim.lr=1"]).optim.lr == 1.0  # int accepted for float
    with pytest.raises(ConfigError, match="must be an integer"):
        TrainConfig().override(["train.epochs=2.5"])
    with pytest.raises(ConfigError, match="must be true or false"):
        TrainConfig().override(["train.amp=yes"])
    with pytest.raises(ConfigError, match="valid keys in \\[optim\\]: name, lr"):
        TrainConfig().override(["optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        TrainConfig().override(["epochs"])
    with pytest.raises(ConfigError, match="optim.name must be one of sgd, adam, adadelta"):
        TrainConfig().override(["optim.name=rmsprop"])
    with pytest.raises(ConfigError, match="train.select"):
        TrainConfig().override(["train.select=[\"auroc\"]"])


def test_presets_fill_augmentation() -> None:
    h = TrainConfig.from_dict({"augment": {"preset": "hijab", "shift": 0.2}})
    assert h.augment.rotate90 and h.augment.hflip and h.augment.shear > 0 and h.augment.shift == 0.2
    q = TrainConfig.from_dict({"augment": {"preset": "qi"}})
    assert q.augment.random_crop and q.data.resize == "shorter_side"


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"data": {"path": "/x", "label_map": {"B": "benign"}},
                                 "model": {"name": "m", "cfg": {"in_chans": 1, "loss": "lmcl"}},
                                 "train": {"epochs": 2}})
    cfg.save(tmp_path)
    back = load_config(tmp_path / "config.toml")
    assert back.to_dict() == cfg.to_dict()


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[train\nepochs = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_configs_are_valid(path: Path) -> None:
    from engine.models import model_info

    cfg = load_config(path)
    model_info(cfg.model.name)  # registered
    if cfg.data.kind == "image_folder_csv" and BUSI.is_dir():
        from engine.train.data import load_dataset

        assert Path(cfg.data.path).resolve() == BUSI.resolve()
        ds = load_dataset(cfg)
        # 418 benign+malignant; configs that keep the 82 normal images as non-malignant (Qi's
        # lesion-present Sn-Net proxy) have 500
        assert ds.classes == ["benign", "malignant"]
        assert len(ds) == (418 if "normal" in cfg.data.ignore_labels else 500)


def test_build_model_follows_data_channels_and_checks_size() -> None:
    from engine.train.loop import build_model

    cfg = TrainConfig.from_dict({"model": {"name": "habib_basic_cnn"}, "data": {"image_size": [64, 64]}})
    assert build_model(cfg).in_chans == 3  # default data is RGB; builder default would be 1
    cfg.model.cfg = {"in_chans": 1}
    with pytest.raises(ConfigError, match="takes 1-channel input but the data gives 3"):
        build_model(cfg)
    cfg = TrainConfig.from_dict({"model": {"name": "habib_basic_cnn"}, "data": {"image_size": [16, 16]}})
    with pytest.raises(ConfigError, match="at least 32 px"):
        build_model(cfg)
    cfg = TrainConfig.from_dict({"model": {"name": "habib_basic_cnn", "cfg": {"depth": 3}}})
    with pytest.raises(ConfigError, match="rejected its options"):
        build_model(cfg)
