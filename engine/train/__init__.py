"""Training and evaluation of registered models (the model lab).

* :mod:`engine.train.config` — :class:`TrainConfig` (TOML + ``--set`` overrides).
* :mod:`engine.train.data` — labelled-image datasets with a decoded-image cache.
* :mod:`engine.train.loop` — ``train_one_epoch``, ``evaluate``, ``fit``, ``predict``.
* :mod:`engine.train.protocols` — the papers' protocols (LOO, k-fold, repeated k-fold,
  fixed split), grouped by lesion/patient, and ``cross_validate``.
* :mod:`engine.train.distributed` — torchrun-compatible DDP.
"""

from engine.train.config import TrainConfig, load_config
from engine.train.loop import FitResult, evaluate, fit, predict, train_one_epoch

__all__ = ["FitResult", "TrainConfig", "evaluate", "fit", "load_config", "predict", "train_one_epoch"]
