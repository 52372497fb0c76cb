"""Paper-specific dataset kinds: Habib 2020 paired MG+US lesions, MRI 2019 boxed slices (real and SYNTHETIC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from engine.errors import CaseFormatError, ConfigError
from engine.train.config import TrainConfig
from engine.train.datasets.images import DecodedCache, SampleDataset, Transform
from engine.train.datasets.sources import Sample, _float, _infer_classes, _missing_files, _read_csv, _to_uint8, read_model_image


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


class _SampleSet(SampleDataset):
    """:class:`~engine.train.datasets.images.SampleDataset` of the paper kinds
    (:class:`PairedLesions`, :class:`BoxedSlices`): samples also carry ``synthetic_seed``
    (>= 0 = SYNTHETIC) and decode to a tuple whose first element is an image."""

    def __init__(self, samples: Sequence[Any], classes: Sequence[str], transform: Transform, *,
                 train: bool = False, seed: int = 0, cache: DecodedCache | None = None, source: str = "") -> None:
        super().__init__(samples, classes, transform, train=train, seed=seed, cache=cache, source=source)
        self.synthetic = any(s.synthetic_seed >= 0 for s in self.samples)

    _noun = "items"

    def _decoded(self, i: int) -> tuple[Any, ...]:
        """Item ``i`` decoded/generated and resized (cached); its first element is an image."""
        raise NotImplementedError

    def base_image(self, i: int) -> NDArray[np.uint8]:
        """The first decoded image of item ``i`` (the MG patch of a pair, the slice of a boxed
        slice), used by :func:`check_readable`."""
        return np.asarray(self._decoded(i)[0])

    def _warm_one(self, i: int) -> None:
        self._decoded(i)


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


# -- An 2019 heatmap regression: (image, local map, blurred target) ---------------------------------
@dataclass(frozen=True)
class HeatmapSample:
    """One mammogram for An 2019's heatmap regression.

    Attributes:
        path: Image path, or ``synthetic://heatmap/<seed>`` (SYNTHETIC).
        group: Patient id (mini-MIAS: the two breasts of one woman share it).
        lesions: ``(cx, cy, r)`` per annotation in the source image's pixels (y from the top).
        synthetic_seed: >= 0 for a generated mammogram.
    """

    path: str
    group: str
    lesions: tuple[tuple[float, float, float], ...]
    synthetic_seed: int = -1

    @property
    def id(self) -> str:
        """A printable id (file stem or synthetic path)."""
        return self.path if self.synthetic_seed >= 0 else Path(self.path).stem


class HeatmapImages(Dataset):  # type: ignore[type-arg]
    """Mammograms -> ``(image (1, S, S), local map (1, g, g), target (1, S/8, S/8))`` (An 2019).

    Each scan is flipped to one orientation and cropped ``heatmap.crop`` px right-aligned on the
    nipple (:func:`engine.models.an.orient_and_crop`), grey levels scaled to [0, 1]. The FCN input
    is that crop area-resized to ``data.image_size``; the target is the annotation discs at the
    FCN's output size, Gaussian blurred (:func:`engine.models.an.heatmap_target`). The local map
    is the tissue classifier's stride-``map_stride`` aggregation on the crop at ``patch_scale``;
    it depends on the fold (the classifier is trained on the fold's training images only), so the
    protocol sets :attr:`local_maps` per fold; without it the channel is zeros.

    Attributes:
        samples, groups: The mammograms and their patient ids.
        labels: 1 when the image has a located finding (stratifies the folds).
        synthetic: True for generated mammograms (SYNTHETIC).
        local_maps: Image index -> ``(g, g)`` local map of the current fold.
    """

    def __init__(self, samples: Sequence[HeatmapSample], cfg: Any, *, source: str = "") -> None:
        from engine.train.config import HeatmapConfig

        self.samples = list(samples)
        self.h: HeatmapConfig = cfg.heatmap
        self.size = int(cfg.data.image_size[0])
        if int(cfg.data.image_size[1]) != self.size or self.size % 8:
            raise ConfigError(f"data.image_size must be square and a multiple of 8 for the heatmap FCN, "
                              f"got {cfg.data.image_size}")
        self.out = self.size // 8
        self.source = source
        self.groups: list[str] = [s.group for s in self.samples]
        self.labels: NDArray[np.int64] = np.array([int(bool(s.lesions)) for s in self.samples], dtype=np.int64)
        self.synthetic = any(s.synthetic_seed >= 0 for s in self.samples)
        self.local_maps: dict[int, NDArray[np.float32]] = {}
        self._crops: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def crop(self, i: int) -> Any:
        """The nipple-aligned :class:`engine.models.an.AnCrop` of image ``i`` (grey in [0, 1], cached)."""
        hit = self._crops.get(i)
        if hit is not None:
            return hit
        from engine.models.an import orient_and_crop

        s = self.samples[i]
        if s.synthetic_seed >= 0:
            from engine.data.synthetic import synthetic_mammogram

            side = self.h.crop
            m = synthetic_mammogram(s.synthetic_seed, rows=side, cols=side, lesion=bool(s.lesions),
                                    malignant=bool(s.synthetic_seed % 3), view="CC",
                                    laterality="L" if s.synthetic_seed % 2 else "R")
            px = m["image"].astype(np.float32) / 4095.0
        else:
            import cv2

            raw = cv2.imread(s.path, cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise CaseFormatError(s.path, "not a readable image")
            if raw.ndim == 3:
                raw = cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)
            top = float(np.iinfo(raw.dtype).max) if raw.dtype.kind in "ui" else 1.0  # type: ignore[type-var]
            px = raw.astype(np.float32) / top
        c = orient_and_crop(px, size=self.h.crop)
        self._crops[i] = c
        return c

    def crop_lesions(self, i: int) -> list[tuple[float, float, float]]:
        """Annotations ``(cx, cy, r)`` in the crop's full-resolution pixels."""
        c = self.crop(i)
        out = []
        for cx, cy, r in self.samples[i].lesions:
            x, y = c.to_crop(cx, cy)
            out.append((float(x), float(y), float(r)))
        return out

    def image(self, i: int) -> torch.Tensor:
        """FCN input ``(1, S, S)``: the crop area-resized to ``data.image_size``."""
        import cv2

        img = cv2.resize(self.crop(i).image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]

    def target(self, i: int) -> torch.Tensor:
        """Blurred annotation heatmap ``(1, S/8, S/8)`` (the MSE target)."""
        from engine.models.an import heatmap_target

        c = self.h.crop
        t = heatmap_target(self.crop_lesions(i), (c, c), out=self.out, sigma=self.h.sigma)
        return torch.from_numpy(t)[None]

    def patch_image(self, i: int) -> NDArray[np.float32]:
        """The crop at the tissue classifier's magnification (where the local map is read)."""
        from engine.models.an import rescale

        out: NDArray[np.float32] = rescale(self.crop(i).image, self.h.patch_scale)
        return out

    def map_grid(self) -> tuple[int, int]:
        """Local map shape ``(g, g)``."""
        from engine.models.an import local_map_grid

        side = max(1, round(self.h.crop * self.h.patch_scale))
        return local_map_grid((side, side), self.h.patch, self.h.map_stride)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lm = self.local_maps.get(i)
        m = torch.zeros((1, *self.map_grid())) if lm is None else torch.from_numpy(np.asarray(lm, np.float32))[None]
        return self.image(i), m, self.target(i)


def _mias_heatmap(cfg: TrainConfig) -> HeatmapImages:
    """mini-MIAS (``Info.txt``: x, y from the bottom-left, radius) -> heatmap samples.

    Images with a finding but no coordinates (e.g. mdb216) cannot be scored for localisation
    and are left out (counted in ``source``).
    """
    from engine.data.mias import MIAS_CITATION, load_mias

    root = Path(cfg.data.path)
    if not (root / "Info.txt").is_file():
        raise ConfigError(f"{root}: no Info.txt; data.path must be a mini-MIAS folder (Info.txt, images/)")
    samples, dropped = [], 0
    for im in load_mias(root):
        if any(a.centre is None for a in im.abnormalities):
            dropped += 1
            continue
        les = tuple((a.centre[1], a.centre[0], float(a.radius or 0.0)) for a in im.abnormalities
                    if a.centre is not None)
        samples.append(HeatmapSample(str(im.path), im.patient, les))
    if not samples:
        raise ConfigError(f"{root}: no mini-MIAS images found under images/")
    return HeatmapImages(samples, cfg, source=f"{root} ({MIAS_CITATION}; {dropped} images with an "
                         f"unlocated finding left out)")


def _synthetic_heatmap(cfg: TrainConfig) -> HeatmapImages:
    """SYNTHETIC mammograms (:func:`engine.data.synthetic.synthetic_mammogram`), 2 of 3 with a lesion."""
    from engine.data.synthetic import synthetic_mammogram

    d = cfg.data
    samples = []
    for i in range(d.synthetic_n):
        seed = d.synthetic_seed + i
        lesion = i % 3 != 2
        les: tuple[tuple[float, float, float], ...] = ()
        if lesion:
            side = cfg.heatmap.crop
            m = synthetic_mammogram(seed, rows=side, cols=side, lesion=True, malignant=bool(seed % 3), view="CC",
                                    laterality="L" if seed % 2 else "R")
            x0, y0, x1, y1 = m["box"]
            les = (((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2),)
        # two images per synthetic "patient", like mini-MIAS's consecutive left/right pairs
        samples.append(HeatmapSample(f"synthetic://heatmap/{seed}", f"syn-patient{i // 2}", les, seed))
    return HeatmapImages(samples, cfg, source="SYNTHETIC engine.data.synthetic.synthetic_mammogram")


def load_heatmap_dataset(cfg: TrainConfig) -> HeatmapImages:
    """The An 2019 heatmap kinds: ``mias_heatmap`` (``data.path`` = a mini-MIAS folder) or
    ``synthetic_heatmap`` (``data.synthetic_n`` SYNTHETIC mammograms).

    Raises:
        ConfigError: wrong kind, no data, non-square image size.
    """
    if cfg.data.kind == "synthetic_heatmap":
        return _synthetic_heatmap(cfg)
    if cfg.data.kind != "mias_heatmap":
        raise ConfigError(f"data.kind = {cfg.data.kind!r} has no local maps or heatmap targets: use "
                          "mias_heatmap or synthetic_heatmap for --protocol an_heatmap")
    if not cfg.data.path:
        raise ConfigError("data.path is empty; point it at the mini-MIAS folder (Info.txt, images/)")
    return _mias_heatmap(cfg)
