"""Generic labelled-image datasets for training and evaluation.

Three sources, all checked up front so a bad dataset stops before any training with a
message that says what to fix:

* ``image_folder_csv``: a folder plus a labels CSV with columns ``image,label`` and
  optionally ``group`` (lesion/patient id for grouped folds) and ``mask`` (BUSI layout).
* ``manifest``: a CSV ``path,modality,label[,group,x0,y0,x1,y1]`` (paths relative to it).
* ``study``: a breast-reader study folder (:mod:`engine.cases`); group = case id.

Decoded images are cached in memory as uint8 arrays already resized to the network's
base size (decode once; workers forked afterwards share the warm cache), so loading does
not starve the training step. Augmentation (Hijab et al. 2019 Sec. III.A; Qi et al. 2019
Sec. 3.3) draws its randomness from ``(seed, epoch, index)`` only, so it is identical
across runs, resumes, DataLoader workers and DDP processes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from engine.errors import BreastReaderError, CaseFormatError, ConfigError, ImageReadError
from engine.imaging.geometry import Box
from engine.io.types import LoadedImage
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import AugmentConfig, TrainConfig
from engine.transforms import EvalTransform, Preprocess

_RASTER = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff"}
_MAX_LISTED = 5


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        path: Absolute image path.
        label: Class name as written in the source.
        group: Lesion/patient id; images sharing a group never straddle train and test.
        box: Optional (x0, y0, x1, y1) crop in pixels.
        modality: MG/US/MR/OT or "".
        mask: Optional lesion mask image (BUSI layout); with ``data.crop_to_box`` the image
            is cropped to the mask's bounding box.
    """

    path: str
    label: str
    group: str
    box: tuple[float, float, float, float] | None = None
    modality: str = ""
    mask: str | None = None


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


# ----------------------------------------------------------------------------- decoding
def _to_uint8(a: NDArray[Any]) -> NDArray[np.uint8]:
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def decode_image(path: str, channels: int) -> NDArray[np.uint8]:
    """Decode one image to uint8 (rows, cols) for 1 channel or (rows, cols, 3) RGB.

    Common raster formats are read with OpenCV; DICOM and anything else go through
    :func:`engine.io.reader.read_image` (MR stacks: the middle slice). Intensities follow the
    app's input preparation (:func:`engine.imaging.intensity.to_unit_range`: 8-bit as is, else
    the first DICOM window, else the 0.5-99.5 percentiles), so a model trained here sees 16-bit
    and windowed images as it will at inference, not min-max stretched.

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(path, "file does not exist")
    arr: NDArray[Any] | None = None
    windows = None
    if p.suffix.lower() in _RASTER:
        buf = np.fromfile(str(p), dtype=np.uint8)
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if arr is None:
        try:
            from engine.io.reader import read_image
        except ImportError:  # pragma: no cover - the reader is part of the package
            raise ImageReadError(path, "cannot decode (no reader for this format)") from None
        img = read_image(str(p))
        arr = np.asarray(img.pixels)
        windows = img.meta.windows
        if arr.ndim == 3 and arr.shape[-1] != 3:  # (frames, rows, cols)
            arr = arr[arr.shape[0] // 2]
    if arr.dtype != np.uint8:
        from engine.imaging.intensity import to_unit_range

        arr = np.round(to_unit_range(arr, windows) * 255.0).astype(np.uint8)
    if channels == 1 and arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def read_model_image(path: str) -> LoadedImage:
    """The image as the app reads it (:func:`engine.io.reader.read_image`), for ``spec.transforms()``.

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
    """
    if not Path(path).is_file():
        raise ImageReadError(path, "file does not exist")
    from engine.io.reader import read_image

    return read_image(path)


def _mask_box(path: str, shape: tuple[int, ...]) -> tuple[float, float, float, float] | None:
    """Bounding box (x0, y0, x1, y1) of a mask's non-zero pixels, in image coordinates."""
    m = decode_image(path, 1)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return None  # empty mask (e.g. a normal image): keep the whole image
    sy, sx = shape[0] / m.shape[0], shape[1] / m.shape[1]
    return (xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy)


# ------------------------------------------------------------------------------ dataset
class LabelledImages(Dataset):  # type: ignore[type-arg]
    """Labelled images -> ``(tensor, class_index)`` pairs.

    The tensor is float32 (C, H, W), or (5, C, H, W) with 5-crop evaluation (Qi et al.
    2019 multi-input prediction; :func:`engine.train.loop.predict` averages the crops).

    Attributes:
        samples: The images.
        classes: Class names; index 1 is the positive class of a binary task.
        labels: int64 class index per sample.
        groups: Group id per sample.
        train: Whether augmentation/random cropping is applied.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
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

    def subset(self, indices: Sequence[int] | NDArray[np.int64], *, train: bool) -> LabelledImages:
        """A view on ``indices`` sharing the decoded cache."""
        return LabelledImages([self.samples[int(i)] for i in indices], self.classes, self.transform,
                              train=train, seed=self.seed, cache=self.cache, source=self.source)

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
        hit = self.cache.get(key)
        if hit is None:
            img, box = self.image_and_box(i)
            tf = self.transform
            hit = tf.train_view(img, box) if train else tf.eval(img, box=box, modality=s.modality or None).tensor
            self.cache.put(key, hit)
        return hit

    def warm(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Decode and prepare every image once into the cache (before DataLoader workers fork)."""
        if not self.cache.enabled:
            return
        n = len(self)
        for i in range(n):
            check(cancel)
            self._prepared(i, train=self.train)
            if i % 16 == 0 or i == n - 1:
                report(progress, i + 1, n, "decoding images")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return self.transform.train_item(self._prepared(i, train=True), rng), int(self.labels[i])
        return self.base_image(i), int(self.labels[i])


# ------------------------------------------------------------------------------ loaders
def _infer_classes(labels: Sequence[str], configured: Sequence[str], source: str) -> list[str]:
    present = sorted(set(labels))
    if configured:
        classes = list(configured)
        unknown = [lab for lab in present if lab not in classes]
        if unknown:
            raise ConfigError(
                f"{source}: label(s) {', '.join(map(repr, unknown))} are not in data.classes "
                f"({', '.join(classes)}); fix the labels, data.classes or data.ignore_labels"
            )
    elif set(present) <= {"benign", "malignant"}:
        classes = ["benign", "malignant"]
    elif set(present) <= {"0", "1"}:
        classes = ["0", "1"]
    else:
        classes = present
    if len(present) < 2:
        raise ConfigError(
            f"{source}: only one class ({present[0] if present else 'none'!r}) in the labels; "
            "training and AUC need at least two classes (e.g. benign and malignant)"
        )
    return classes


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"labels file {path} does not exist; set data.path / data.labels")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [c for c in required if c not in fields]
            if missing:
                raise CaseFormatError(
                    path, f"missing column(s) {', '.join(missing)}; found: {', '.join(fields) or 'none'}; "
                    f"the header must include {', '.join(required)}"
                )
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except UnicodeDecodeError:
        raise CaseFormatError(path, "not a UTF-8 text CSV") from None
    if not rows:
        raise CaseFormatError(path, "no rows after the header")
    return rows


def _missing_files(samples: Sequence[Sample], rows: Sequence[int], source: Path) -> None:
    missing = [(r, s.path) for r, s in zip(rows, samples) if not Path(s.path).is_file()]
    if missing:
        shown = "; ".join(f"row {r}: {p}" for r, p in missing[:_MAX_LISTED])
        more = f" (and {len(missing) - _MAX_LISTED} more)" if len(missing) > _MAX_LISTED else ""
        raise CaseFormatError(
            source, f"{len(missing)} of {len(samples)} listed images do not exist: {shown}{more}; "
            "the image column must hold paths relative to the labels file's folder"
        )


def _from_image_folder(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    root = Path(cfg.data.path)
    if not root.is_dir():
        raise ConfigError(f"data.path {root} is not a folder (data.kind = image_folder_csv)")
    csv_path = root / cfg.data.labels
    rows = _read_csv(csv_path, ("image", "label"))
    samples: list[Sample] = []
    line_nos: list[int] = []
    for n, r in enumerate(rows, start=2):
        if not r.get("image") or not r.get("label"):
            raise CaseFormatError(csv_path, "empty image or label", row=n)
        img = (root / r["image"]).resolve()
        mask = str((root / r["mask"]).resolve()) if r.get("mask") else None
        samples.append(Sample(str(img), r["label"], r.get("group") or r["image"], mask=mask))
        line_nos.append(n)
    _missing_files(samples, line_nos, csv_path)
    if cfg.data.crop_to_box:
        masks = [Sample(m.mask, m.label, m.group) for m in samples if m.mask]
        _missing_files(masks, [n for n, m in zip(line_nos, samples) if m.mask], csv_path)
    return samples, csv_path


def _float(v: str, path: Path, row: int, col: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise CaseFormatError(path, f"column {col} must be a number, got {v!r}", row=row) from None


def _from_manifest(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    path = Path(cfg.data.path)
    rows = _read_csv(path, ("path", "modality", "label"))
    samples: list[Sample] = []
    line_nos: list[int] = []
    for n, r in enumerate(rows, start=2):
        if cfg.data.modality and r["modality"].upper() != cfg.data.modality.upper():
            continue
        box = None
        if all(r.get(k) for k in ("x0", "y0", "x1", "y1")):
            x0, y0, x1, y1 = (_float(r[k], path, n, k) for k in ("x0", "y0", "x1", "y1"))
            b = (x0, y0, x1, y1)
            if b[2] <= b[0] or b[3] <= b[1]:
                raise CaseFormatError(path, f"box {b} needs x1 > x0 and y1 > y0", row=n)
            box = b if cfg.data.crop_to_box else None
        p = Path(r["path"]).expanduser()
        p = p if p.is_absolute() else (path.parent / p)
        samples.append(Sample(str(p.resolve()), r["label"], r.get("group") or r["path"], box,
                              r["modality"].upper()))
        line_nos.append(n)
    if not samples:
        raise ConfigError(f"{path}: no rows with modality {cfg.data.modality!r}")
    _missing_files(samples, line_nos, path)
    return samples, path


def _from_study(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    from engine.cases import load_study

    root = Path(cfg.data.path)
    if not root.is_dir():
        raise ConfigError(f"data.path {root} is not a study folder (data.kind = study)")
    study = load_study(root)
    samples: list[Sample] = []
    for case in study.cases:
        if case.truth is None or not case.truth.label:
            continue  # unlabelled cases cannot be trained on
        for im in case.images:
            if cfg.data.modality and (im.modality or "").upper() != cfg.data.modality.upper():
                continue
            samples.append(Sample(str(im.path), case.truth.label, case.case_id, None, im.modality or ""))
    if not samples:
        raise ConfigError(f"{root}: no case with a truth label (and modality {cfg.data.modality or 'any'})")
    _missing_files(samples, list(range(1, len(samples) + 1)), root / "study.json")
    return samples, root


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


# ------------------------------------------------- paper-specific kinds (Habib, Qi, MRI)
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


def read_aux_labels(cfg: TrainConfig, samples: Sequence[Sample], source: Path) -> list[int]:
    """The ``data.aux_label`` target of every sample (never invented: a missing value is an error).

    ``"mask_nonempty"``: 1 when the sample's mask image has a non-zero pixel (a lesion is
    outlined), 0 for an empty mask (BUSI ``normal``). This is a *lesion-present* proxy, not a
    solid-nodule label. Any other value names a CSV column (labels CSV or manifest) of 0/1.

    Raises:
        ConfigError: no mask column, unknown column, a value that is not 0/1.
    """
    name = cfg.data.aux_label
    if name == "mask_nonempty":
        out: list[int] = []
        for s in samples:
            if not s.mask:
                raise ConfigError(
                    f"{source}: data.aux_label = 'mask_nonempty' needs a mask column (image_folder_csv); "
                    f"{s.path} has none")
            out.append(int(np.count_nonzero(decode_image(s.mask, 1)) > 0))
        return out
    csv_path = source if source.suffix.lower() == ".csv" else Path(cfg.data.path) / cfg.data.labels
    key = "path" if cfg.data.kind == "manifest" else "image"
    rows = _read_csv(csv_path, (key,))
    if name not in rows[0]:
        raise ConfigError(f"{csv_path}: data.aux_label column {name!r} not found; columns: {', '.join(rows[0])}")
    values: dict[str, str] = {}
    for r in rows:
        p = Path(r[key]).expanduser()
        p = p if p.is_absolute() else csv_path.parent / p
        values[str(p.resolve())] = r[name]
    out = []
    for s in samples:
        v = values.get(s.path, "")
        if v not in ("0", "1"):
            raise ConfigError(f"{csv_path}: column {name!r} must be 0 or 1 for every used row; "
                              f"got {v!r} for {s.path}")
        out.append(int(v))
    return out


@dataclass(frozen=True)
class PairedSample:
    """One lesion seen in two modalities (Habib et al. 2020): MG and US image of the same lesion.

    ``synthetic_seed`` >= 0 marks a SYNTHETIC pair drawn from
    :func:`engine.data.synthetic.synthetic_paired_lesion` (then the paths are ``synthetic://``).
    """

    mg_path: str
    us_path: str
    label: str
    group: str
    synthetic_seed: int = -1

    @property
    def path(self) -> str:
        """A printable id of the pair (``split.json``)."""
        return f"{self.mg_path}|{self.us_path}"


class _SampleSet(Dataset):  # type: ignore[type-arg]
    """State shared by the sample-list datasets (:class:`PairedLesions`, :class:`BoxedSlices`):
    samples with ``label``/``group``/``synthetic_seed``, a decoded cache shared by subsets, and
    the epoch that selects the augmentation stream."""

    def __init__(self, samples: Sequence[Any], classes: Sequence[str], transform: Transform, *,
                 train: bool = False, seed: int = 0, cache: DecodedCache | None = None, source: str = "") -> None:
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
        self.synthetic = any(s.synthetic_seed >= 0 for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream (and the epoch reported in paired items)."""
        self.epoch = epoch

    def _extra_kwargs(self) -> dict[str, Any]:
        """Constructor arguments a subclass adds (kept by :meth:`subset`)."""
        return {}

    def subset(self, indices: Sequence[int] | NDArray[np.int64], *, train: bool) -> Any:
        """A view on ``indices`` sharing the decoded cache."""
        return type(self)([self.samples[int(i)] for i in indices], self.classes, self.transform, train=train,
                          seed=self.seed, cache=self.cache, source=self.source, **self._extra_kwargs())

    _noun = "items"

    def _decoded(self, i: int) -> tuple[Any, ...]:
        """Item ``i`` decoded/generated and resized (cached); its first element is an image."""
        raise NotImplementedError

    def base_image(self, i: int) -> NDArray[np.uint8]:
        """The first decoded image of item ``i`` (the MG patch of a pair, the slice of a boxed
        slice), used by :func:`check_readable`."""
        return np.asarray(self._decoded(i)[0])

    def warm(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Decode/generate every item once."""
        if not self.cache.enabled:
            return
        for i in range(len(self)):
            check(cancel)
            self._decoded(i)
            report(progress, i + 1, len(self), f"preparing {self._noun}")


class PairedLesions(_SampleSet):
    """Paired MG+US lesion patches -> ``((mg, us), label, epoch)`` (Habib et al. 2020).

    Both patches are grey (1 channel), resized to ``data.image_size`` and normalised with
    ``data.mean/std``. Training items are flipped (independently per modality) when
    ``augment.hflip``/``vflip`` are set. The third element is the current epoch (set by
    :func:`engine.train.loop.fit` through :meth:`set_epoch`): the joint model's two-step
    procedure uses it to switch from the per-modality phase to the fusion phase.

    Attributes:
        samples, classes, labels (int64), groups: as :class:`LabelledImages`.
        synthetic: True when the pairs are generated (SYNTHETIC).
    """

    def base_pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """MG and US patches of pair ``i`` after the preprocessing's steps 1-5 (un-normalised, cached)."""
        s = self.samples[i]
        key = (s.path, (s.synthetic_seed, self.transform.pre))
        hit = self.cache.get(key)
        if hit is not None:
            return hit[0], hit[1]
        h, w = self.transform.size
        mg: Any
        us: Any
        if s.synthetic_seed >= 0:
            from engine.data.synthetic import synthetic_paired_lesion

            les = synthetic_paired_lesion(s.synthetic_seed, malignant=s.label == self.classes[1], size=max(h, w))
            mg, us = _to_uint8(les["mg"].astype(np.float32)), les["us"].astype(np.uint8)
        else:
            mg, us = read_model_image(s.mg_path), read_model_image(s.us_path)
        pair = (self.transform.train_view(mg, None), self.transform.train_view(us, None))
        self.cache.put(key, pair)
        return pair

    _noun = "pairs"

    def _decoded(self, i: int) -> tuple[Any, ...]:
        return self.base_pair(i)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int, int]:
        from engine.train.augment import augment

        mg, us = self.base_pair(i)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            a = self.transform.augment
            mg = augment(mg, a, rng)
            us = augment(us, a, rng)
        nm = self.transform.eval.normalise
        return (nm(mg), nm(us)), int(self.labels[i]), self.epoch


@dataclass(frozen=True)
class BoxedSample:
    """One MRI slice with its lesion box and the five task targets (MRI attention paper).

    Attributes:
        path: Image path, or ``synthetic://mri/<seed>`` for a SYNTHETIC case.
        label: Malignancy class name (stratification, binary metrics).
        group: Lesion/patient id.
        box: ``(x0, y0, x1, y1)`` in the original image's pixels, or None.
        targets: 0/1 per output (malignancy, mammary gland, other benign, IDC, other malignant).
        synthetic_seed: >= 0 for a generated case.
    """

    path: str
    label: str
    group: str
    box: tuple[float, float, float, float] | None
    targets: tuple[int, ...]
    synthetic_seed: int = -1


class BoxedSlices(_SampleSet):
    """Slices -> ``(x, targets (K,), box (4,))`` for supervised attention (MRI 2019 paper).

    ``box`` is in the *network input's* pixels (after the resize), ``-1`` everywhere when the
    image has none (then the attention term is skipped for it). ``labels`` (malignancy) drive
    the grouped, stratified splits; the batch target is the K-vector, so validation reports
    per-task AUCs ``auc_<k>`` and the challenge score ``mri_score``.
    """

    def __init__(self, samples: Sequence[BoxedSample], classes: Sequence[str], transform: Transform, *,
                 train: bool = False, seed: int = 0, cache: DecodedCache | None = None, source: str = "",
                 n_slices: int = 8) -> None:
        super().__init__(samples, classes, transform, train=train, seed=seed, cache=cache, source=source)
        self.n_slices = n_slices

    def _extra_kwargs(self) -> dict[str, Any]:
        return {"n_slices": self.n_slices}

    def base_item(self, i: int) -> tuple[torch.Tensor, tuple[float, float, float, float] | None]:
        """Slice after the preprocessing's steps 1-5 (un-normalised, cached) and its box in the
        network input's pixels."""
        s = self.samples[i]
        key = (s.path, (self.transform.pre, self.n_slices))
        hit = self.cache.get(key)
        h, w = self.transform.size
        if s.synthetic_seed >= 0:
            if hit is None:
                from engine.data.synthetic import synthetic_mri_case

                case = synthetic_mri_case(s.synthetic_seed, malignant=bool(s.targets[0]),
                                          n_slices=self.n_slices, size=max(h, w))
                free = _mri_free_slice(case) if s.path.endswith("/lesion-free") else None
                hit = self.transform.train_view(free if free is not None else _mri_lesion_slice(case), None)
                self.cache.put(key, hit)
            box = s.box  # generated at the input size (square) -> scale to (h, w)
            if box is not None:
                side = float(max(h, w))
                box = (box[0] * w / side, box[1] * h / side, box[2] * w / side, box[3] * h / side)
            return hit, box
        if hit is None:
            img = read_model_image(s.path)
            hit = self.transform.train_view(img, None)
            self.cache.put(key, hit)
            self.cache.put((s.path, "shape"), tuple(int(v) for v in img.pixels.shape[-2:]))
        box = s.box
        if box is not None:
            shp = self.cache.get((s.path, "shape"))
            rows, cols = shp if shp is not None else read_model_image(s.path).pixels.shape[-2:]
            box = (box[0] * w / cols, box[1] * h / rows, box[2] * w / cols, box[3] * h / rows)
        return hit, box

    _noun = "slices"

    def _decoded(self, i: int) -> tuple[Any, ...]:
        return self.base_item(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img, box = self.base_item(i)
        h, w = self.transform.size
        b = torch.full((4,), -1.0) if box is None else torch.tensor(box, dtype=torch.float32)
        if self.train and self.transform.augment.hflip:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            if rng.random() < 0.5:  # left-right mirror: the box follows the image
                img = img.flip(-1)
                if box is not None:
                    b = torch.tensor([w - box[2], box[1], w - box[0], box[3]], dtype=torch.float32)
        t = self.transform
        return t.eval.normalise(img.contiguous()), torch.tensor(self.samples[i].targets, dtype=torch.float32), b


def _synthetic_paired(cfg: TrainConfig) -> PairedLesions:
    d = cfg.data
    classes = ["benign", "malignant"]
    samples = [PairedSample(f"synthetic://paired/{d.synthetic_seed + i}/mg", f"synthetic://paired/{d.synthetic_seed + i}/us",
                            classes[i % 2], f"syn-{d.synthetic_seed + i}", d.synthetic_seed + i)
               for i in range(d.synthetic_n)]
    return PairedLesions(samples, classes, Transform.from_config(cfg), seed=cfg.train.seed,
                         cache=DecodedCache(d.cache), source="SYNTHETIC engine.data.synthetic.synthetic_paired_lesion")


def _paired_manifest(cfg: TrainConfig) -> PairedLesions:
    path = Path(cfg.data.path)
    rows = _read_csv(path, ("mg_path", "us_path", "label"))
    samples: list[PairedSample] = []
    line_nos: list[int] = []

    def resolve(v: str) -> str:
        p = Path(v).expanduser()
        return str((p if p.is_absolute() else path.parent / p).resolve())

    for n, r in enumerate(rows, start=2):
        if not r["mg_path"] or not r["us_path"] or not r["label"]:
            raise CaseFormatError(path, "empty mg_path, us_path or label", row=n)
        lab = cfg.data.label_map.get(r["label"], r["label"])
        if lab in cfg.data.ignore_labels:
            continue
        samples.append(PairedSample(resolve(r["mg_path"]), resolve(r["us_path"]), lab,
                                    r.get("group") or r["mg_path"]))
        line_nos.append(n)
    for col in ("mg_path", "us_path"):
        _missing_files([Sample(getattr(s, col), s.label, s.group) for s in samples], line_nos, path)
    classes = _infer_classes([s.label for s in samples], cfg.data.classes, str(path))
    if len(classes) != 2:
        raise ConfigError(f"{path}: paired training is binary (benign vs malignant); classes are {classes}")
    return PairedLesions(samples, classes, Transform.from_config(cfg), seed=cfg.train.seed,
                         cache=DecodedCache(cfg.data.cache), source=str(path))


def _mri_lesion_slice(case: dict[str, Any]) -> NDArray[np.float32]:
    """The slice through the lesion centre (raw intensities: the preprocessing windows it)."""
    z0, z1 = case["lesion_box"][:2]
    out: NDArray[np.float32] = case["volume"][(z0 + z1 - 1) // 2].astype(np.float32)
    return out


def _mri_free_slice(case: dict[str, Any]) -> NDArray[np.float32] | None:
    """A slice outside the lesion's slab, or None if the lesion spans all."""
    z0, z1 = case["lesion_box"][:2]
    n = case["volume"].shape[0]
    outside = [z for z in range(n) if z < z0 or z >= z1]
    if not outside:
        return None
    z = max(outside, key=lambda k: min(abs(k - z0), abs(k - (z1 - 1))))
    return _mri_lesion_slice({**case, "lesion_box": (z, z + 1, *case["lesion_box"][2:])})


def _synthetic_mri(cfg: TrainConfig) -> BoxedSlices:
    from engine.data.synthetic import MRI_TASKS, synthetic_mri_case

    d = cfg.data
    h, w = int(d.image_size[0]), int(d.image_size[1])
    cache = DecodedCache(d.cache)
    tf = Transform.from_config(cfg)
    samples: list[BoxedSample] = []
    for i in range(d.synthetic_n):
        seed = d.synthetic_seed + i
        # labels and box come from the generator; the slice is cached at once (generated once)
        case = synthetic_mri_case(seed, malignant=bool(i % 2), n_slices=d.synthetic_slices, size=max(h, w))
        _, _, x0, y0, x1, y1 = case["lesion_box"]
        path = f"synthetic://mri/{seed}"
        samples.append(BoxedSample(path, "malignant" if i % 2 else "benign", f"syn-{seed}",
                                   (float(x0), float(y0), float(x1), float(y1)),
                                   tuple(int(case["labels"][t]) for t in MRI_TASKS), seed))
        cache.put((path, (tf.pre, d.synthetic_slices)), tf.train_view(_mri_lesion_slice(case), None))
    # lesion-free slices (the paper's images without a lesion: an empty attention mask)
    i = 0
    added = 0
    while added < d.synthetic_lesion_free and i < 4 * d.synthetic_lesion_free + 8:
        seed = d.synthetic_seed + d.synthetic_n + i
        case = synthetic_mri_case(seed, malignant=False, n_slices=d.synthetic_slices, size=max(h, w))
        free = _mri_free_slice(case)
        i += 1
        if free is None:
            continue
        path = f"synthetic://mri/{seed}/lesion-free"
        samples.append(BoxedSample(path, "benign", f"syn-free-{seed}", None, tuple(0 for _ in MRI_TASKS), seed))
        cache.put((path, (tf.pre, d.synthetic_slices)), tf.train_view(free, None))
        added += 1
    if added < d.synthetic_lesion_free:
        raise ConfigError(f"data.synthetic_lesion_free = {d.synthetic_lesion_free}: only {added} generated "
                          f"volumes had a slice outside the lesion; raise data.synthetic_slices")
    return BoxedSlices(samples, ["benign", "malignant"], tf, seed=cfg.train.seed,
                       cache=cache, source="SYNTHETIC engine.data.synthetic.synthetic_mri_case",
                       n_slices=d.synthetic_slices)


def _boxed_manifest(cfg: TrainConfig) -> BoxedSlices:
    from engine.models.mri_attention import MRI_OUTPUTS

    path = Path(cfg.data.path)
    rows = _read_csv(path, ("path", "label", *MRI_OUTPUTS))
    samples: list[BoxedSample] = []
    line_nos: list[int] = []
    for n, r in enumerate(rows, start=2):
        lab = cfg.data.label_map.get(r["label"], r["label"])
        if lab in cfg.data.ignore_labels:
            continue
        targets = []
        for t in MRI_OUTPUTS:
            if r[t] not in ("0", "1"):
                raise CaseFormatError(path, f"column {t} must be 0 or 1, got {r[t]!r}", row=n)
            targets.append(int(r[t]))
        box = None
        if all(r.get(k) for k in ("x0", "y0", "x1", "y1")):
            x0, y0, x1, y1 = (_float(r[k], path, n, k) for k in ("x0", "y0", "x1", "y1"))
            if x1 <= x0 or y1 <= y0:
                raise CaseFormatError(path, f"box {(x0, y0, x1, y1)} needs x1 > x0 and y1 > y0", row=n)
            box = (x0, y0, x1, y1)
        p = Path(r["path"]).expanduser()
        p = p if p.is_absolute() else path.parent / p
        samples.append(BoxedSample(str(p.resolve()), lab, r.get("group") or r["path"], box, tuple(targets)))
        line_nos.append(n)
    _missing_files([Sample(s.path, s.label, s.group) for s in samples], line_nos, path)
    classes = _infer_classes([s.label for s in samples], cfg.data.classes, str(path))
    return BoxedSlices(samples, classes, Transform.from_config(cfg), seed=cfg.train.seed,
                       cache=DecodedCache(cfg.data.cache), source=str(path))


def load_paper_dataset(cfg: TrainConfig, *, train: bool = False) -> PairedLesions | BoxedSlices:
    """The paired (Habib 2020) and boxed (MRI 2019) kinds of ``cfg.data.kind``.

    * ``synthetic_paired``: ``data.synthetic_n`` SYNTHETIC MG+US pairs (alternating benign/
      malignant, seeds ``synthetic_seed + i``), group = the lesion.
    * ``paired_manifest``: CSV ``mg_path,us_path,label[,group]`` (paths relative to it).
    * ``synthetic_mri``: SYNTHETIC lesion slices with their box and the five task labels.
    * ``boxed_manifest``: CSV ``path,label,malignant,mammary_gland,other_benign,idc,
      other_malignant[,group,x0,y0,x1,y1]`` (2-D slices; the box in the image's pixels; rows
      without a box add no attention term).

    Raises:
        ConfigError / CaseFormatError: as :func:`load_dataset`.
    """
    if cfg.channels != 1:
        raise ConfigError(f"data.kind = {cfg.data.kind} gives grey images: set data.grayscale = true "
                          f"(data.in_chans = 1), not {cfg.channels} channels")
    if cfg.data.kind == "synthetic_paired":
        ds: PairedLesions | BoxedSlices = _synthetic_paired(cfg)
    elif cfg.data.kind == "synthetic_mri":
        ds = _synthetic_mri(cfg)
    elif cfg.data.kind == "boxed_manifest":
        if not cfg.data.path:
            raise ConfigError("data.path is empty; point it at the boxed manifest CSV")
        ds = _boxed_manifest(cfg)
    else:
        if not cfg.data.path:
            raise ConfigError("data.path is empty; point it at the paired manifest CSV (mg_path,us_path,label)")
        ds = _paired_manifest(cfg)
    ds.train = train
    return ds


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
    "decode_image",
    "load_dataset",
    "load_paper_dataset",
    "read_aux_labels",
]
