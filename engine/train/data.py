"""Labelled-image datasets for training and evaluation: ``load_dataset(cfg)`` (the entry point).

Three generic sources (:mod:`engine.train.datasets.sources`), all checked up front so a bad
dataset stops before any training with a message that says what to fix:

* ``image_folder_csv``: a folder plus a labels CSV with columns ``image,label`` and
  optionally ``group`` (lesion/patient id for grouped folds) and ``mask`` (BUSI layout).
* ``manifest``: a CSV ``path,modality,label[,group,x0,y0,x1,y1]`` (paths relative to it).
* ``study``: a breast-reader study folder (:mod:`engine.cases`); group = case id.

plus the paper-specific kinds (:mod:`engine.train.datasets.paper`). Every model input is made
by ``spec.transforms()`` of the config's :class:`~engine.transforms.Preprocess`
(:func:`preprocess_of`; :mod:`engine.train.datasets.images`), cached per image (decode once;
workers forked afterwards share the warm cache). Training augmentation
(:mod:`engine.train.augment`; Hijab et al. 2019 Sec. III.A, Qi et al. 2019 Sec. 3.3) acts on
the prepared tensor and draws its randomness from ``(seed, epoch, index)`` only, so it is
identical across runs, resumes, DataLoader workers and DDP processes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.errors import BreastReaderError, CaseFormatError, ConfigError, ImageReadError
from engine.train.config import TrainConfig
from engine.train.datasets.images import AuxLabelledImages, DecodedCache, LabelledImages, Transform, preprocess_of
from engine.train.datasets.paper import (
    BoxedSample,
    BoxedSlices,
    PairedLesions,
    PairedSample,
    _mri_free_slice,
    _mri_lesion_slice,
    load_heatmap_dataset,
    load_paper_dataset,
)
from engine.train.datasets.sources import (
    Sample,
    _from_image_folder,
    _from_manifest,
    _from_study,
    _infer_classes,
    decode_image,
    read_aux_labels,
    read_model_image,
)


def load_dataset(cfg: TrainConfig, *, train: bool = False) -> Any:
    """Build and validate the dataset described by ``cfg.data``.

    Args:
        cfg: The configuration.
        train: Apply augmentation (normally set on subsets via :meth:`LabelledImages.subset`).

    Returns:
        The dataset (images decoded lazily; call :meth:`LabelledImages.warm` to pre-decode).

    Raises:
        ConfigError: missing folder/file, unknown label, one class only.
        CaseFormatError: malformed CSV (names the file and row), listed images missing.
    """
    if cfg.data.kind in ("synthetic_paired", "synthetic_mri", "paired_manifest", "boxed_manifest"):
        return load_paper_dataset(cfg, train=train)
    if cfg.data.kind in ("mias_heatmap", "synthetic_heatmap"):
        return load_heatmap_dataset(cfg)
    if cfg.data.kind == "mimbcd_outlines":
        raise ConfigError("data.kind = 'mimbcd_outlines' (outlined MR slices) is read by "
                          "`breast-engine evaluate --protocol mri_localiser` only")
    if not cfg.data.path:
        raise ConfigError("data.path is empty; point it at an image folder, manifest CSV or study")
    loader = {"image_folder_csv": _from_image_folder, "manifest": _from_manifest,
              "study": _from_study}[cfg.data.kind]
    samples, source = loader(cfg)
    if cfg.data.label_map:
        samples = [replace(s, label=cfg.data.label_map.get(s.label, s.label)) for s in samples]
    if cfg.data.ignore_labels:
        samples = [s for s in samples if s.label not in cfg.data.ignore_labels]
        if not samples:
            raise ConfigError(f"{source}: every row has a label in data.ignore_labels {cfg.data.ignore_labels}")
    classes = _infer_classes([s.label for s in samples], cfg.data.classes, str(source))
    if cfg.data.aux_label:
        aux = read_aux_labels(cfg, samples, source)
        return AuxLabelledImages(samples, classes, Transform.from_config(cfg), aux, train=train,
                                 seed=cfg.train.seed, cache=DecodedCache(cfg.data.cache), source=str(source))
    return LabelledImages(samples, classes, Transform.from_config(cfg), train=train,
                          seed=cfg.train.seed, cache=DecodedCache(cfg.data.cache), source=str(source))


def check_readable(ds: LabelledImages, limit: int = 1) -> None:
    """Decode the first ``limit`` images so unreadable files fail before training."""
    for i in range(min(limit, len(ds))):
        try:
            ds.base_image(i)
        except BreastReaderError:
            raise
        except Exception as exc:  # noqa: BLE001 - turn decoder crashes into one clear line
            raise ImageReadError(ds.samples[i].path, f"cannot decode: {exc}") from None


__all__ = [
    "AuxLabelledImages",
    "BoxedSample",
    "BoxedSlices",
    "DecodedCache",
    "LabelledImages",
    "PairedLesions",
    "PairedSample",
    "Sample",
    "Transform",
    "check_readable",
    "preprocess_of",
    "read_model_image",
    "decode_image",
    "load_dataset",
    "load_paper_dataset",
    "read_aux_labels",
]
