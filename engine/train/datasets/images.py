"""The preprocessing a training config uses (``spec.transforms()``, the one input preparation) and the image datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from engine.errors import ConfigError
from engine.imaging.geometry import Box
from engine.io.types import LoadedImage
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import AugmentConfig, TrainConfig
from engine.train.datasets.sources import Sample, _mask_box, read_model_image
from engine.transforms import EvalTransform, Preprocess


def preprocess_of(cfg: TrainConfig) -> Preprocess:
    """The typed :class:`~engine.transforms.Preprocess` a config trains with (and ships).

    ``[ship] preprocess`` when the config gives one; else derived from ``[data]``: ``image_size``,
    channels, ``mean``/``std``, ``grayscale`` (colour policy), ``crop_to_box`` / manifest boxes
    (``lesion_box`` with ``box_margin``, reader's box optional) and ``resize`` (``stretch``, or
    ``shorter_side`` -> Qi's ``five_crop`` with ``eval_crops = 5`` else ``center_crop``), area
    interpolation.

    Raises:
        ConfigError: an invalid ``[ship] preprocess``, or ``shorter_side`` with a non-square size.
    """
    if cfg.ship.preprocess:
        try:
            return Preprocess.from_json(cfg.ship.preprocess)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"ship.preprocess: {exc}") from None
    d = cfg.data
    mean, std = cfg.norm
    h, w = (int(v) for v in d.image_size)
    if d.resize == "shorter_side" and h != w:
        raise ConfigError(f"data.resize = 'shorter_side' crops squares: data.image_size must be [s, s], got {[h, w]}")
    boxes = d.crop_to_box or d.kind == "manifest"
    try:
        return Preprocess(size=(h, w), in_chans=cfg.channels, mean=tuple(mean), std=tuple(std),
                          colour="gray" if cfg.channels == 1 or d.grayscale else "keep",
                          crop="lesion_box" if boxes else "whole", box="optional" if boxes else "ignored",
                          box_margin=float(d.box_margin),
                          resize="stretch" if d.resize == "stretch" else ("five_crop" if d.eval_crops == 5 else "center_crop"),
                          interpolation="area", antialias=False,
                          description=f"from the training config's [data] ({d.kind})")
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None


@dataclass
class Transform:
    """How an image becomes a tensor: the config's :class:`Preprocess` (``spec.transforms()``,
    the one input preparation) plus the training augmentation."""

    pre: Preprocess
    augment: AugmentConfig

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Transform:
        """The transform of ``cfg`` (augmentation parameters included)."""
        return cls(preprocess_of(cfg), cfg.augment)

    @property
    def size(self) -> tuple[int, int]:
        """Network input ``(h, w)``."""
        return (int(self.pre.size[0]), int(self.pre.size[1]))

    @property
    def channels(self) -> int:
        """Channels fed to the network."""
        return int(self.pre.in_chans)

    @property
    def eval(self) -> EvalTransform:
        """``spec.transforms()`` of the preprocessing (cached)."""
        tf = self.__dict__.get("_eval")
        if tf is None:
            tf = self.__dict__["_eval"] = EvalTransform(self.pre)
        return tf

    def train_view(self, image: LoadedImage | NDArray[Any], box: Box | None) -> torch.Tensor:
        """Steps 1-5 of the preprocessing before any crop, un-normalised (what augmentation starts from)."""
        t = self.eval.region_tensor(image, box=box)[0]
        return self.eval.resized(t)

    def train_item(self, base: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Random crop (shorter-side resize), augmentation, then the preprocessing's normalisation."""
        from engine.train.augment import augment, random_crop

        if self.pre.resize != "stretch":
            s = self.size[0]
            base = random_crop(base, (s, s), rng, random=self.augment.random_crop)
        return self.eval.normalise(augment(base, self.augment, rng))


class DecodedCache:
    """Prepared images (tensors from the preprocessing, or decoded arrays) keyed by (path, how); shared by subsets."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._store: dict[tuple[str, Any], Any] = {}

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: tuple[str, Any]) -> Any:
        """Cached array or None."""
        return self._store.get(key)

    def put(self, key: tuple[str, Any], arr: Any) -> None:
        """Store ``arr`` when caching is enabled."""
        if self.enabled:
            self._store[key] = arr

    @property
    def nbytes(self) -> int:
        """Memory held by the cache."""
        return sum(a.nbytes for a in self._store.values())


# ------------------------------------------------------------------------------ dataset
class SampleDataset(Dataset):  # type: ignore[type-arg]
    """State every sample-list dataset shares (:class:`LabelledImages`, and the paper kinds'
    :class:`~engine.train.datasets.paper.PairedLesions` / ``BoxedSlices``): samples with a
    ``label`` and a ``group``, the config's transform, a decoded cache shared by subsets, and the
    epoch that selects the augmentation stream.

    Attributes:
        samples: The items.
        classes: Class names; index 1 is the positive class of a binary task.
        labels: int64 class index per sample.
        groups: Group id per sample (lesion / patient): never in two folds.
        train: Whether augmentation/random cropping is applied.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        classes: Sequence[str],
        transform: Transform,
        *,
        train: bool = False,
        seed: int = 0,
        cache: DecodedCache | None = None,
        source: str = "",
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.cache = cache if cache is not None else DecodedCache()
        self.source = source
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels: NDArray[np.int64] = np.array([index[s.label] for s in self.samples], dtype=np.int64)
        self.groups: list[str] = [s.group for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (called by the training loop)."""
        self.epoch = epoch

    def _extra_kwargs(self) -> dict[str, Any]:
        """Constructor arguments a subclass adds (kept by :meth:`subset`)."""
        return {}

    def subset(self, indices: Sequence[int] | NDArray[np.int64], *, train: bool) -> Self:
        """A view on ``indices`` sharing the decoded cache."""
        return type(self)([self.samples[int(i)] for i in indices], self.classes, self.transform, train=train,
                          seed=self.seed, cache=self.cache, source=self.source, **self._extra_kwargs())

    _noun = "images"

    def _warm_one(self, i: int) -> None:
        """Decode / prepare item ``i`` into the cache."""
        raise NotImplementedError

    def warm(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Decode and prepare every item once into the cache (before DataLoader workers fork)."""
        if not self.cache.enabled:
            return
        n = len(self)
        for i in range(n):
            check(cancel)
            self._warm_one(i)
            if i % 16 == 0 or i == n - 1:
                report(progress, i + 1, n, f"preparing {self._noun}")


class LabelledImages(SampleDataset):
    """Labelled images -> ``(tensor, class_index)`` pairs.

    The tensor is float32 (C, H, W), or (5, C, H, W) with 5-crop evaluation (Qi et al.
    2019 multi-input prediction; :func:`engine.train.loop.predict` averages the crops).
    Attributes as :class:`SampleDataset`; ``samples`` are :class:`~engine.train.datasets.sources.Sample`.
    """

    samples: list[Sample]

    def with_transform(self, transform: Transform) -> LabelledImages:
        """Same samples, another transform (new cache: the base size may differ)."""
        return LabelledImages(self.samples, self.classes, transform, train=self.train,
                              seed=self.seed, source=self.source)

    def _key(self, s: Sample, train: bool) -> tuple[str, Any]:
        return (s.path, (s.box, s.mask if self.transform.pre.crop == "lesion_box" else None, train,
                         self.transform.pre))

    def image_and_box(self, i: int) -> tuple[LoadedImage, Box | None]:
        """Image ``i`` as the app reads it and the lesion box the preprocessing crops to (or None)."""
        s = self.samples[i]
        img = read_model_image(s.path)
        box = s.box
        if box is None and s.mask and self.transform.pre.crop == "lesion_box":
            box = _mask_box(s.mask, (int(img.pixels.shape[0]), int(img.pixels.shape[1])))
        return img, box

    def base_image(self, i: int) -> torch.Tensor:
        """Item ``i`` as the model sees it at evaluation: ``spec.transforms()`` of the image
        (``(C, H, W)``, or ``(5, C, H, W)`` Qi crops), from the cache when warm."""
        return self._prepared(i, train=False)

    def _prepared(self, i: int, *, train: bool) -> torch.Tensor:
        s = self.samples[i]
        key = self._key(s, train)
        hit: torch.Tensor | None = self.cache.get(key)
        if hit is None:
            img, box = self.image_and_box(i)
            tf = self.transform
            hit = tf.train_view(img, box) if train else tf.eval(img, box=box, modality=s.modality or None).tensor
            self.cache.put(key, hit)
        return hit

    def _warm_one(self, i: int) -> None:
        self._prepared(i, train=self.train)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return self.transform.train_item(self._prepared(i, train=True), rng), int(self.labels[i])
        return self.base_image(i), int(self.labels[i])


class AuxLabelledImages(LabelledImages):
    """:class:`LabelledImages` whose items carry a second 0/1 target: ``(x, y, y_aux)``.

    Qi et al. 2019 train the Sn-Net (solid nodule vs none) on the same images as the Mt-Net
    (malignant vs not), so Algorithm 1 needs both labels per image (``data.aux_label``).
    """

    def __init__(self, samples: Sequence[Sample], classes: Sequence[str], transform: Transform,
                 aux: Sequence[int], **kw: Any) -> None:
        super().__init__(samples, classes, transform, **kw)
        if len(aux) != len(self.samples):
            raise ValueError("one auxiliary label per sample is required")
        self.aux: NDArray[np.int64] = np.asarray(aux, dtype=np.int64)

    def subset(self, indices: Sequence[int] | NDArray[np.int64], *, train: bool) -> AuxLabelledImages:
        """A view on ``indices`` sharing the decoded cache."""
        idx = [int(i) for i in indices]
        return AuxLabelledImages([self.samples[i] for i in idx], self.classes, self.transform,
                                 [int(self.aux[i]) for i in idx], train=train, seed=self.seed,
                                 cache=self.cache, source=self.source)

    def with_transform(self, transform: Transform) -> AuxLabelledImages:
        """Same samples, another transform."""
        return AuxLabelledImages(self.samples, self.classes, transform, list(self.aux), train=self.train,
                                 seed=self.seed, source=self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:  # type: ignore[override]
        x, y = super().__getitem__(i)
        return x, y, int(self.aux[i])
