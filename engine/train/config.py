"""Training/evaluation configuration: a TOML file + ``--set section.key=value`` overrides.

The layout follows torchvision ``references/classification/train.py`` / timm ``train.py``:
one resolved configuration that is saved next to every checkpoint. Sections:

``[data]`` what to train on, ``[model]`` registry name + builder options,
``[augment]`` training-time augmentation (Hijab et al. 2019 / Qi et al. 2019 presets),
``[optim]`` optimiser (SGD with (Nesterov) momentum, Adam, Adadelta as in Qi et al.),
``[schedule]`` learning-rate schedule, ``[train]`` epochs, batch, seed, device, selection.

Example::

    [data]
    kind = "image_folder_csv"
    path = "../shared/data/busi-dev"
    labels = "labels.csv"
    image_size = [224, 224]

    [model]
    name = "hijab_vgg16_finetune"

    [train]
    epochs = 10
    batch_size = 16
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DataConfig:
    """Where the labelled images are and how they are decoded.

    Attributes:
        kind: ``image_folder_csv`` (folder + CSV image,label[,group][,mask]),
            ``manifest`` (CSV path,modality,label[,group,x0,y0,x1,y1]), ``study``
            (a breast-reader study folder, :mod:`engine.cases`), or the paper-specific kinds
            (:func:`engine.train.data.load_paper_dataset`): ``paired_manifest`` (CSV
            mg_path,us_path,label[,group]: Habib MG+US pairs), ``boxed_manifest`` (CSV
            path,label + the five MRI task columns [,group,x0,y0,x1,y1]), ``synthetic_paired``
            and ``synthetic_mri`` (SYNTHETIC).
        path: The folder (image_folder_csv, study) or the manifest CSV.
        labels: CSV file name inside ``path`` (image_folder_csv only).
        classes: Class names, negative first (default: ``benign, malignant`` when the
            labels are those, else sorted). A label outside this list is an error.
        label_map: Renames labels as read (e.g. ``{B = "benign", M = "malignant"}``).
        ignore_labels: Rows with these labels (after ``label_map``) are dropped, e.g.
            ``["normal"]`` for BUSI's benign-vs-malignant task.
        image_size: Network input ``[h, w]``.
        grayscale: Decode to one channel (else three; grey images are replicated).
        in_chans: Channels fed to the model (1 or 3); 0 = 1 if grayscale else 3.
        resize: ``stretch`` (resize to image_size) or ``shorter_side`` (Qi et al. 2019:
            scale the shorter side to image_size, keep the aspect, then crop; needs a square
            image_size). Becomes the :class:`~engine.transforms.Preprocess` resize
            (``stretch`` / ``five_crop`` / ``center_crop``, see ``engine.train.data.preprocess_of``).
        eval_crops: Crops at evaluation with ``shorter_side``: 1 (centre) or 5 (Qi's
            multi-input prediction: five uniformly spaced crops, scores averaged).
        crop_to_box: Crop each image to its lesion box (+ margin): the manifest's
            x0,y0,x1,y1 columns, or the bounding box of the labels CSV's ``mask`` image
            (BUSI); images without a box/mask (or with an empty mask) stay whole.
        box_margin: Fraction of the box size added on each side when cropping.
        modality: Keep only manifest/study images of this modality ("" = all).
        mean: Normalisation mean per channel (default ImageNet for 3 channels, 0.5 for 1).
        std: Normalisation std per channel (default ImageNet, 0.25 for 1 channel).
        cache: Keep each image's prepared input (``spec.transforms()`` output, float32) in
            memory (decode once).
        val_fraction: Fraction of the training set held out (grouped, stratified) for
            validation/model selection by ``breast-engine train`` (0 = none).
        synthetic_n: Number of generated cases for the SYNTHETIC kinds
            (``synthetic_paired``: Habib-style MG+US lesion pairs; ``synthetic_mri``: MRI
            slices through a lesion with its box and five task labels).
        synthetic_seed: First seed of the generator (case ``i`` uses ``synthetic_seed + i``).
        synthetic_slices: Slices of each generated MRI volume (``synthetic_mri``).
        synthetic_lesion_free: ``synthetic_mri`` only: this many extra SYNTHETIC lesion-free
            slices (a slice of case ``i``'s volume outside its lesion, no box, every task 0).
        aux_label: Second per-image target appended to every item, ``(x, y, y_aux)``
            (Qi et al. 2019's Sn-Net target): ``""`` (none), the name of a labels-CSV/
            manifest column holding 0/1, or ``"mask_nonempty"`` (1 when the row's lesion mask
            is non-empty: *lesion present*, a proxy, not Qi's solid-nodule label).
    """

    kind: str = "image_folder_csv"
    path: str = ""
    labels: str = "labels.csv"
    classes: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    ignore_labels: list[str] = field(default_factory=list)
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    grayscale: bool = False
    in_chans: int = 0
    resize: str = "stretch"
    eval_crops: int = 1
    crop_to_box: bool = False
    box_margin: float = 0.15  # the app's default (engine.transforms.Preprocess.box_margin)
    modality: str = ""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    cache: bool = True
    val_fraction: float = 0.2
    synthetic_n: int = 64
    synthetic_seed: int = 0
    synthetic_slices: int = 8
    synthetic_lesion_free: int = 0
    aux_label: str = ""


#: Dataset kinds: the three image sources plus the paired / boxed kinds of the paper-specific
#: procedures (Habib 2020 MG+US pairs, MRI lesion boxes; see :mod:`engine.train.data`).
# ``busi`` / ``mias_lesions`` are read by the ship recipes (engine.train.recipes) through the
# app's own reader and the weights' Preprocess.
RECIPE_KINDS = ("busi", "mias_lesions", "synthetic_mri")
TRAIN_MODES = ("finetune", "linear_probe", "supervised_attention", "us_lesion", "lp_finetune")
DATA_KINDS = ("busi", "mias_lesions", "image_folder_csv", "manifest", "study", "paired_manifest", "synthetic_paired",
              "synthetic_mri",
              "boxed_manifest", "mias_heatmap", "synthetic_heatmap", "mimbcd_outlines")
SYNTHETIC_KINDS = ("synthetic_paired", "synthetic_mri", "synthetic_heatmap")
#: Kinds of An 2019's heatmap regression (image, local map, blurred target): evaluated by
#: ``breast-engine evaluate --protocol an_heatmap`` (engine.train.an_heatmap).
HEATMAP_KINDS = ("mias_heatmap", "synthetic_heatmap")


@dataclass
class ModelConfig:
    """The registered model and its builder keyword options (``[model.cfg]``)."""

    name: str = ""
    cfg: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Training-time augmentation (off at evaluation).

    ``preset = "hijab"`` sets Hijab et al. 2019 Sec. III.A (rotations by 90/180/270,
    width/height shift, shear, zoom, horizontal flip, nearest filling); ``"qi"`` sets
    Qi et al. 2019 Sec. 3.3 (shorter side to the input size, random crop); explicit keys
    override the preset.

    Attributes:
        preset: ``none``, ``hijab`` or ``qi``.
        rotate90: Random rotation by a multiple of 90 degrees.
        shift: Max width/height shift as a fraction of the size.
        shear: Max shear angle in degrees.
        zoom: Max zoom change (scale drawn in [1 - zoom, 1 + zoom]).
        hflip: Random horizontal flip.
        vflip: Random vertical flip.
        random_crop: Random crop after the ``shorter_side`` resize (else centre crop).
        brightness: Max relative brightness change (intensity scaled by a factor drawn in
            [1 - brightness, 1 + brightness]; An 2019's tissue patches).
    """

    preset: str = "none"
    rotate90: bool = False
    shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    hflip: bool = False
    vflip: bool = False
    random_crop: bool = False
    brightness: float = 0.0


@dataclass
class OptimConfig:
    """Optimiser: ``sgd`` (``momentum``, ``nesterov``), ``adam`` or ``adadelta`` (Qi)."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    rho: float = 0.9


@dataclass
class ScheduleConfig:
    """Learning-rate schedule stepped once per epoch: ``none``, ``step`` or ``cosine``."""

    name: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0


@dataclass
class RunConfig:
    """The training run.

    Attributes:
        epochs: Passes over the training set.
        batch_size: Global (effective) batch size; split over DDP processes.
        seed: Seeds torch, numpy, python, the sampler and the augmentation.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``/``cuda:N``.
        amp: Mixed precision (CUDA only; ignored on CPU).
        num_workers: DataLoader worker processes (0 = load in the main process).
        select: Selection metrics on the validation set; the best checkpoint for each
            is kept (``auc``, ``f2`` (Qi), ``accuracy``, ``loss`` (lowest), ``mri_score``
            (the JFR 2018 weighted AUC of a five-task multi-label model), ``auc_<k>`` (AUC of
            output k of a multi-label model: per-task best checkpoints)).
        output_dir: Parent folder of run folders.
        run_name: Run folder name (default: ``<model>-<timestamp>``).
        deterministic: ``torch.use_deterministic_algorithms`` (warn-only) during fit.
        threads: torch intra-op threads on CPU (0 = leave torch's default).
        log_every: Progress callback every N steps.
        mode: Trainer mode: ``finetune`` (the gradient loop, :func:`engine.train.loop.fit`;
            which parameters train is the model's own freezing), ``linear_probe`` (frozen
            trunk, class-balanced L2 logistic regression on pooled features -- the model's
            multi-layer / multi-scale readout when it has one -- folded into its linear
            head(s)) or ``supervised_attention`` (from-scratch training of the MRI attention
            net with the attention loss) or ``us_lesion`` (the ultrasound lesion finder +
            lesion-centred classifier + whole-image context, :mod:`engine.train.us_lesion`) or
            ``lp_finetune`` (linear probe, then the last MBConv blocks fine-tuned:
            :mod:`engine.train.lp_finetune`; evaluated by ``--protocol recipe``).
            The last three are the recipes of the shipped defaults (:mod:`engine.train.recipes`).
    """

    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    select: list[str] = field(default_factory=lambda: ["auc"])
    output_dir: str = "runs"
    run_name: str = ""
    deterministic: bool = True
    threads: int = 0
    log_every: int = 1
    mode: str = "finetune"


@dataclass
class ShipConfig:
    """What ``breast-engine ship`` writes and how the recipe is evaluated (``[ship]``).

    Attributes:
        name: Weights folder name (``resources/models/<name>``).
        modality: ``US``, ``MG`` or ``MR`` (the model's modality in ``spec.json``).
        preprocess: The typed :class:`engine.transforms.Preprocess` (JSON form); the recipe
            prepares every training and test image with it, as the app does.
        class_names: Output names (malignancy output ``"malignant"``).
        c: Inverse L2 strength of the linear probe's logistic regression.
        c_grid: Candidate ``c`` values; the best mean CV AUC over the repeats wins (in the card).
        views: Training views of the linear probe: ``eval`` (the scoring input), ``random_crops``
            (Qi 2019 random crops + mirrors of the shorter-side-resized image) or ``margins``
            (the box at each of ``margins``, plus the mirror of the first).
        random_crops: Random crops per image (``views = "random_crops"``).
        margins: Box margins (``views = "margins"``).
        folds: CV folds.
        repeats: CV partitions / repeats (seeds ``train.seed .. + repeats - 1``).
        n_test: Independent SYNTHETIC test cases (``supervised_attention``).
        test_seed: First seed of the independent synthetic test set.
        attention_balance: Class-balanced attention BCE (``supervised_attention``).
        grad_clip: Gradient-norm clip (``supervised_attention``; 0 = off).
        fp16_weights: Store ``weights.pt`` in float16.
        synthetic: Trained on SYNTHETIC data (shown in the card and the app).
        init: Initial weights, for the card and ``spec.json``.
        training_data: Data set name, for the card.
        data_licence: Licence and citation of the data (card).
        licence_file: File copied next to the weights (e.g. mini-MIAS ``Licence.txt``).
        licence_name: Name of that copy (default: the file's own name).
        card_notes: Markdown appended to the generated model card (limitations, history).
        extra: Extra ``spec.json`` entries (e.g. ``saliency_note``).
        parity_images: Images re-scored through the app's Predictor after writing (max abs
            difference must stay under 1e-4).
        calibrate: ``platt`` to fit Platt scaling on partition 0's out-of-fold logits (shipped
            in ``spec.extra["platt"]``; its ECE is cross-fitted over the folds), or ``""``.
        ood_percentile: With a model that has an OOD measure (``set_ood``), the warning
            threshold is this percentile of the out-of-fold (held-out) distances; 0 = off.
        context_config: ``us_lesion``: the whole-image model's config (relative to this TOML);
            its recipe's out-of-fold scores are averaged in (logit) and its ``[ship] name`` is
            the context model the app loads; ``""`` = no context.
        context_weight: ``us_lesion``: weight of the context logit.
        lso_data: ``us_lesion``: the mimbcd-dev folder of the leave-source-out BI-RADS check
            (relative to this TOML); ``""`` = not run.
        finder_tta: ``us_lesion``: the finder's map is the mean of the image's and its mirror
            image's (one more encoder pass when no box is given).
        finder_margins: ``us_lesion``: the finder's box is scored at each of these context
            margins (mean logit); ``[]`` = ``data.box_margin`` only.
        finder_candidates: ``us_lesion``: up to this many finder regions are scored (those with at
            least ``finder_candidate_mass`` of the largest one's probability mass), their logits
            weighted by mass; 1 = the largest region only.
        finder_candidate_mass: ``us_lesion``: see ``finder_candidates``.
        context_weight_finder: ``us_lesion``: the context weight when the finder gave the box
            (a finder box is less exact than a reader's); < 0 = ``context_weight``.
        not_for: What the model must not be used for, one card bullet each.
        bench_result: A ``breast-engine bench score`` JSON (relative to this TOML) whose case of
            this modality the card quotes as its speed; ``""`` = no speed section.
        baseline_saliency: ``us_lesion``: the context model's ``evaluate --protocol saliency``
            JSON (relative to this TOML), quoted in the card's "Default?" comparison.
        eval_margins: ``linear_probe`` experiments: extra box margins scored beside the scoring
            input and averaged (multi-scale test-time averaging); not shippable.
        unfreeze_blocks: ``lp_finetune``: MBConv blocks fine-tuned (the last ones) besides the
            head conv and the head.
        bank_views: ``lp_finetune``: prepared views per lesion (scoring input, its mirror,
            augmented ``margins`` boxes) the tail is trained on.
    """

    name: str = ""
    modality: str = ""
    preprocess: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=lambda: ["benign", "malignant"])
    c: float = 1.0
    c_grid: list[float] = field(default_factory=list)
    views: str = "eval"
    random_crops: int = 2
    margins: list[float] = field(default_factory=list)
    folds: int = 5
    repeats: int = 1
    n_test: int = 0
    test_seed: int = 100000
    attention_balance: bool = True
    grad_clip: float = 0.0
    fp16_weights: bool = False
    synthetic: bool = False
    init: str = ""
    training_data: str = ""
    data_licence: str = ""
    licence_file: str = ""
    licence_name: str = ""
    card_notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    parity_images: int = 2
    calibrate: str = ""
    ood_percentile: float = 0.0
    context_config: str = ""
    context_weight: float = 0.5
    lso_data: str = ""
    finder_tta: bool = False
    finder_margins: list[float] = field(default_factory=list)
    finder_candidates: int = 1
    finder_candidate_mass: float = 0.25
    context_weight_finder: float = -1.0
    not_for: list[str] = field(default_factory=list)
    bench_result: str = ""
    baseline_saliency: str = ""
    eval_margins: list[float] = field(default_factory=list)
    unfreeze_blocks: int = 1
    bank_views: int = 16


@dataclass
class HeatmapConfig:
    """An 2019 heatmap regression at a budget (``[heatmap]``; kinds ``mias_heatmap`` /
    ``synthetic_heatmap``, protocol ``an_heatmap``).

    The FCN sees the nipple-aligned crop resized to ``data.image_size``; its target is the
    annotation discs down-sampled to the FCN's output (input / 8) and Gaussian blurred by
    ``sigma`` output pixels. The local map comes from the tissue classifier
    (``an_patch_classifier``) trained per fold on the training images' patches only.

    Attributes:
        crop: Side of the nipple-aligned crop at full resolution (An: 2048; mini-MIAS: 1024).
        sigma: Target blur in output pixels (0 is rejected: the paper blurs).
        patch_scale: Magnification of the tissue patches (An: 0.5, 0.33, 0.25).
        patch: Patch side at that magnification (An: 256).
        patch_widths: Tissue-classifier block widths (5 blocks in the paper).
        neg_stride: Stride of the negative patches (An: 32 at patch 256).
        map_stride: Stride of the aggregated local map (An: 64 at patch 256).
        max_negatives: Negatives kept per training image (random subset; 0 = all).
        patch_epochs: Tissue-classifier epochs per fold.
        patch_lr: Tissue-classifier Adam learning rate.
        n_boot: Patient-bootstrap resamples for the CIs.
    """

    crop: int = 1024
    sigma: float = 1.0
    patch_scale: float = 0.25
    patch: int = 64
    patch_widths: list[int] = field(default_factory=lambda: [8, 16, 32])
    neg_stride: int = 16
    map_stride: int = 16
    max_negatives: int = 12
    patch_epochs: int = 4
    patch_lr: float = 1e-3
    n_boot: int = 2000


@dataclass
class LocaliserConfig:
    """The MRI lesion-localiser protocol (``[localiser]``; kind ``mimbcd_outlines``, protocol
    ``mri_localiser``, :mod:`engine.train.mri_localiser`).

    Attributes:
        init: Weights folder (name under ``resources/models`` or a path) the attention is
            fine-tuned from and scored zero-shot.
        mirror: Random left-right mirror of the training slices (both breasts are in an axial slice).
        smooth_sigma: Gaussian sigma (input pixels) of the brightest-point baseline.
        n_boot: Patient-bootstrap resamples for the CIs.
    """

    init: str = "mri_attention_synthetic"
    mirror: bool = True
    smooth_sigma: float = 3.0
    n_boot: int = 2000


@dataclass
class CompareConfig:
    """A paired comparison of recipe configs (``[compare]``, ``--protocol compare``).

    Every arm is a ``--protocol recipe`` config whose metrics carry every partition's
    out-of-fold scores in the same item order (same data, folds and seeds); each is paired with
    the reference per partition by DeLong's test (DeLong et al. 1988).

    Attributes:
        reference: The reference arm's config (relative to this TOML).
        arms: The other arms' configs (relative to this TOML).
        names: One short name per arm, reference first (default: the files' stems).
        ensembles: Unweighted out-of-fold ensembles (mean logit) of named arms, e.g.
            ``[["head", "an_patch"]]``: no fitting, so no extra selection.
    """

    reference: str = ""
    arms: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ensembles: list[list[str]] = field(default_factory=list)


@dataclass
class TrainConfig:
    """The complete, resolved configuration (saved as ``config.json``/``config.toml``)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: RunConfig = field(default_factory=RunConfig)
    ship: ShipConfig = field(default_factory=ShipConfig)
    heatmap: HeatmapConfig = field(default_factory=HeatmapConfig)
    localiser: LocaliserConfig = field(default_factory=LocaliserConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a nested dict, checking every key and type.

        Raises:
            ConfigError: unknown section/key or a value of the wrong type.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a table of sections")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for sec, body in d.items():
            if sec not in sections:
                raise ConfigError(
                    f"{source}: unknown section [{sec}]; valid sections: {', '.join(sections)}"
                )
            sec_cls = _section_class(sec)
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: [{sec}] must be a table")
            kwargs[sec] = _build_section(sec_cls, sec, body, source)
        cfg = cls(**kwargs)
        cfg.apply_presets()
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML serialisable)."""
        return asdict(self)

    def copy(self) -> TrainConfig:
        """A deep copy."""
        return TrainConfig.from_dict(json.loads(json.dumps(self.to_dict())))

    # --------------------------------------------------------------------- checks
    def apply_presets(self) -> None:
        """Fill augmentation fields from ``augment.preset`` where they are at defaults."""
        preset = self.augment.preset
        defaults = AugmentConfig()
        values: dict[str, Any]
        if preset == "hijab":
            # Hijab et al. 2019 Sec. III.A: rotations 90/180/270, width/height shift,
            # shearing, zooming, horizontal flipping, filling (nearest).
            values = dict(rotate90=True, shift=0.1, shear=10.0, zoom=0.1, hflip=True)
        elif preset == "qi":
            # Qi et al. 2019 Sec. 3.3: shorter side -> input size, random crop for training.
            values = dict(random_crop=True)
            if self.data.resize == "stretch":
                self.data.resize = "shorter_side"
        elif preset == "none":
            values = {}
        else:
            raise ConfigError(f"augment.preset must be none, hijab or qi, not {preset!r}")
        for k, v in values.items():
            if getattr(self.augment, k) == getattr(defaults, k):
                setattr(self.augment, k, v)

    def validate(self) -> None:
        """Check enumerations and ranges (not the data files: see engine.train.data).

        Raises:
            ConfigError: naming the key and the allowed values.
        """
        _choice("data.kind", self.data.kind, DATA_KINDS)
        _choice("train.mode", self.train.mode, TRAIN_MODES)
        _choice("ship.views", self.ship.views, ("eval", "random_crops", "margins"))
        if self.data.kind in ("busi", "mias_lesions") and self.train.mode == "finetune":
            raise ConfigError(f"data.kind = {self.data.kind!r} is read by the ship recipes: set train.mode to "
                              "linear_probe (or use image_folder_csv / manifest for finetune)")
        _choice("data.resize", self.data.resize, ("stretch", "shorter_side"))
        _choice("data.eval_crops", self.data.eval_crops, (1, 5))
        _choice("optim.name", self.optim.name, ("sgd", "adam", "adadelta"))
        _choice("schedule.name", self.schedule.name, ("none", "step", "cosine"))
        if len(self.data.image_size) != 2 or min(self.data.image_size) < 8:
            raise ConfigError(f"data.image_size must be [height, width] >= 8, got {self.data.image_size}")
        if self.data.in_chans not in (0, 1, 3):
            raise ConfigError(f"data.in_chans must be 0 (auto), 1 or 3, got {self.data.in_chans}")
        for m in self.train.select:
            # auc_<k>: one best checkpoint per task of a multi-output model (the MRI paper keeps
            # a copy of the weights per task, chosen on its own validation AUC).
            if not re.fullmatch(r"auc_\d+", m):
                _choice("train.select", m, ("auc", "f2", "accuracy", "loss", "mri_score", "auc_<k>"))
        if self.data.kind in SYNTHETIC_KINDS and self.data.synthetic_n < 4:
            raise ConfigError(f"data.synthetic_n must be >= 4 for {self.data.kind}, got {self.data.synthetic_n}")
        if self.data.kind in HEATMAP_KINDS:
            h = self.heatmap
            if h.sigma <= 0:
                raise ConfigError(f"heatmap.sigma must be > 0 (An 2019 blur the target), got {h.sigma}")
            if h.map_stride % 2 ** len(h.patch_widths):
                raise ConfigError(f"heatmap.map_stride {h.map_stride} must be a multiple of the tissue "
                                  f"classifier's stride {2 ** len(h.patch_widths)}")
        if not 0.0 <= self.augment.brightness < 1.0:
            raise ConfigError(f"augment.brightness must be in [0, 1), got {self.augment.brightness}")
        if self.train.epochs < 0 or self.train.batch_size < 1:
            raise ConfigError("train.epochs must be >= 0 and train.batch_size >= 1")
        if not 0.0 <= self.data.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.data.val_fraction}")
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.optim.lr}")
        dev = self.train.device
        if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {dev!r}")

    @property
    def channels(self) -> int:
        """Channels fed to the model."""
        return self.data.in_chans or (1 if self.data.grayscale else 3)

    @property
    def norm(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel, defaulted from the channel count."""
        c = self.channels
        mean = self.data.mean or (IMAGENET_MEAN if c == 3 else [0.5])
        std = self.data.std or (IMAGENET_STD if c == 3 else [0.25])
        if len(mean) != c or len(std) != c:
            raise ConfigError(f"data.mean/std need {c} values, got {mean} / {std}")
        return list(mean), list(std)

    # ------------------------------------------------------------------ overrides
    def override(self, assignments: list[str]) -> TrainConfig:
        """Apply ``section.key=value`` strings (values parsed as TOML, else as strings).

        Returns:
            A new, validated configuration.

        Raises:
            ConfigError: malformed assignment, unknown key (listing the valid ones) or a
                value of the wrong type.
        """
        d = self.to_dict()
        for a in assignments:
            if "=" not in a:
                raise ConfigError(f"--set expects section.key=value, got {a!r}")
            key, raw = a.split("=", 1)
            parts = key.strip().split(".")
            if len(parts) < 2:
                raise ConfigError(
                    f"--set key {key!r} needs a section, e.g. train.epochs=5; sections: {', '.join(d)}"
                )
            sec, name = parts[0], parts[1]
            if sec not in d:
                raise ConfigError(f"--set: unknown section {sec!r}; valid sections: {', '.join(d)}")
            value = _parse_value(raw.strip())
            if sec == "model" and name == "cfg" and len(parts) > 2:
                d["model"]["cfg"][".".join(parts[2:])] = value
                continue
            if len(parts) != 2:
                raise ConfigError(f"--set key {key!r}: use section.key (or model.cfg.option)")
            if name not in d[sec]:
                raise ConfigError(
                    f"--set: unknown key {sec}.{name}; valid keys in [{sec}]: {', '.join(d[sec])}"
                )
            d[sec][name] = value
        return TrainConfig.from_dict(d, source="--set")

    # ---------------------------------------------------------------------- saving
    def save(self, folder: str | PathLike[str]) -> Path:
        """Write ``config.toml`` (readable, reloadable) and ``config.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.to_dict(), indent=2))
        path = folder / "config.toml"
        path.write_text(to_toml(self.to_dict()))
        return path


def to_toml(d: dict[str, Any]) -> str:
    """Serialise a two-level config dict (plus ``[model.cfg]``) to TOML."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or v == v else "nan"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines: list[str] = []
    for sec, body in d.items():
        lines.append(f"[{sec}]")
        for k, v in body.items():
            if sec == "model" and k == "cfg":
                continue
            lines.append(f"{k} = {val(v)}")
        if sec == "model":
            lines.append("")
            lines.append("[model.cfg]")
            for k, v in body.get("cfg", {}).items():
                lines.append(f"{json.dumps(k)} = {val(v)}")
        lines.append("")
    return "\n".join(lines)


def load_config(path: str | PathLike[str], overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config, apply ``--set`` overrides and resolve relative data paths.

    ``data.path`` relative paths are taken relative to the TOML file's folder.

    Raises:
        ConfigError: missing/unparseable file, unknown keys, wrong types.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and data["path"]:
        dp = Path(data["path"]).expanduser()
        if not dp.is_absolute():
            data["path"] = str((p.parent / dp).resolve())
    ship = raw.get("ship")
    if isinstance(ship, dict):  # card notes and licence files are named relative to the TOML too
        for key in ("context_config", "lso_data", "bench_result", "baseline_saliency"):
            v = ship.get(key)
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                ship[key] = str((p.parent / Path(v).expanduser()).resolve())
        for key in ("card_notes", "licence_file"):
            v = ship.get(key)
            if isinstance(v, str) and v and (key == "licence_file" or v.endswith(".md")):
                fp = Path(v).expanduser()
                fp = fp if fp.is_absolute() else (p.parent / fp).resolve()
                if key == "card_notes":
                    if not fp.is_file():
                        raise ConfigError(f"{p}: ship.card_notes file {fp} does not exist")
                    ship[key] = fp.read_text(encoding="utf-8")
                else:
                    ship[key] = str(fp)
    compare = raw.get("compare")
    if isinstance(compare, dict):  # the compared configs are named relative to the TOML
        for key in ("reference",):
            v = compare.get(key)
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                compare[key] = str((p.parent / Path(v).expanduser()).resolve())
        if isinstance(compare.get("arms"), list):
            compare["arms"] = [str((p.parent / Path(a).expanduser()).resolve()) if isinstance(a, str) and
                               not Path(a).expanduser().is_absolute() else a for a in compare["arms"]]
    cfg = TrainConfig.from_dict(raw, source=str(p))
    if overrides:
        cfg = cfg.override(overrides)
    return cfg


# ------------------------------------------------------------------------- helpers
def _section_class(sec: str) -> type:
    hints = typing.get_type_hints(TrainConfig)
    return hints[sec]  # type: ignore[no-any-return]


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def _choice(key: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and item is str:
            value = [value] if not isinstance(value, str) else [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):  # pragma: no cover - not used yet
        return value
    return value


def _build_section(sec_cls: type, sec: str, body: dict[str, Any], source: str) -> Any:
    hints = typing.get_type_hints(sec_cls)
    valid = [f.name for f in dataclasses.fields(sec_cls)]
    kwargs: dict[str, Any] = {}
    for k, v in body.items():
        if k not in hints:
            raise ConfigError(
                f"{source}: unknown key {sec}.{k}; valid keys in [{sec}]: {', '.join(valid)}"
            )
        kwargs[k] = _check_type(v, hints[k], f"{source}: {sec}.{k}")
    return sec_cls(**kwargs)
