"""Training and evaluation of registered models (the model lab).

* :mod:`engine.train.config` — :class:`TrainConfig` (TOML + ``--set`` overrides).
* :mod:`engine.train.data` — labelled-image datasets with a decoded-image cache.
* :mod:`engine.train.loop` — ``train_one_epoch``, ``evaluate``, ``fit``, ``predict``.
* :mod:`engine.train.protocols` — the papers' protocols (LOO, k-fold, repeated k-fold,
  fixed split), grouped by lesion/patient, and ``cross_validate``.
* :mod:`engine.train.distributed` — torchrun-compatible DDP.
* :mod:`engine.train.recipes` / :mod:`engine.train.us_lesion` / :mod:`engine.train.ship` — the
  recipes (``train.mode``) that ``breast-engine ship`` / ``evaluate --protocol recipe`` run.
"""

from engine.train.config import TrainConfig, load_config
from engine.train.data import LabelledImages, load_dataset
from engine.train.loop import FitResult, build_model, evaluate, fit, predict, train_one_epoch
from engine.train.protocols import cross_validate, split_indices

__all__ = [
    "FitResult",
    "LabelledImages",
    "TrainConfig",
    "build_model",
    "cross_validate",
    "evaluate",
    "fit",
    "load_config",
    "load_dataset",
    "predict",
    "split_indices",
    "train_one_epoch",
]
