"""``--protocol mri_localiser``: the supervised-attention MRI model as a lesion LOCALISER on real
outlined MR slices (mimbcd-dev, ``data.kind = "mimbcd_outlines"``). No malignancy output is
trained or used.

Data: every mapped MR outline of ``outlines.json`` (approximate localisations the source
describes as AI findings, drawn on varying phases). Each outlined slice is a sample; its target
is the outline's bounding box. Every slice is prepared by the initial weights' own
``spec.transforms()`` (percentile intensity, bilinear antialiased resize, normalisation) at
``data.image_size``.

Protocol: ``--folds``-fold GroupKFold by patient (no patient in both train and test). Compared:

* ``brightest``: the brightest point of the Gaussian-smoothed slice (no learning);
* ``synthetic_zero_shot``: the ``[localiser] init`` weights' attention map as is;
* ``finetuned``: that model's attention fine-tuned on the training folds' boxes (class-balanced
  attention BCE, :func:`engine.models.mri_attention.balanced_attention_loss`; left-right mirror,
  both breasts being in the slice; Adam ``optim.lr``; ``train.epochs``, ``train.batch_size``),
  evaluated on the held-out patients.

Metrics per slice: pointing hit (the map's arg-max inside the box) and the IoU of the box of the
map's region at half its maximum (:func:`engine.lesion_us.box_from_prob`: the connected region
with the largest mass) with the outline's box. Means carry 95 % patient-bootstrap CIs
(:func:`engine.stats.bootstrap.cluster_bootstrap_mean`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.models.mri_attention import MRIAttentionNet
from engine.models.weights import WeightsSpec
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import TrainConfig
from engine.train.runtime import seed_everything
from engine.transforms import EvalTransform

METHODS = ("brightest", "synthetic_zero_shot", "finetuned")


@dataclass
class OutlinedSlice:
    """One outlined MR slice prepared for the model.

    Attributes:
        id: Outline id.
        patient: Patient id (the CV group).
        unit: ``(S, S)`` slice in [0, 1] after the preprocessing's intensity and resize steps.
        x: ``(1, S, S)`` normalised model input.
        box: Outline box ``(x0, y0, x1, y1)`` at the ``S x S`` input.
    """

    id: str
    patient: str
    unit: NDArray[np.float32]
    x: torch.Tensor
    box: tuple[float, float, float, float]


def load_outlined_slices(cfg: TrainConfig, tf: EvalTransform) -> list[OutlinedSlice]:
    """The mapped MR outlines of ``data.path/outlines.json``, prepared by ``tf`` (an
    :class:`engine.transforms.EvalTransform`).

    Raises:
        ConfigError: no ``outlines.json`` or no MR outline under ``data.path``.
    """
    from engine.io import read_image

    root = Path(cfg.data.path)
    src = root / "outlines.json"
    if not src.is_file():
        raise ConfigError(f"{root}: no outlines.json; data.path must be the mimbcd-dev folder")
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
        outlines = [o for o in doc["outlines"] if o["modality"] == "MR"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{src}: not an outlines file ({exc})") from None
    if not outlines:
        raise ConfigError(f"{src}: no MR outlines")
    rows_s, cols_s = (int(v) for v in cfg.data.image_size)
    out = []
    for o in outlines:
        img = read_image(root / o["path"])
        t, _, _, (rows, cols) = tf.region_tensor(img)
        unit = tf.resized(t)
        x0, y0, x1, y1 = (float(v) for v in o["bbox"])
        box = (x0 * cols_s / cols, y0 * rows_s / rows, x1 * cols_s / cols, y1 * rows_s / rows)
        out.append(OutlinedSlice(str(o["id"]), str(o["patient_id"]), unit[0].numpy().astype(np.float32),
                                 tf.normalise(unit), box))
    return out


def score_map(m: NDArray[np.float32], box: tuple[float, float, float, float]) -> tuple[int, float]:
    """``(pointing hit, IoU)`` of a map ``(S, S)`` against ``box`` at the same scale."""
    from engine.lesion_us import box_from_prob
    from engine.stats.froc import box_iou

    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    hit = int(box[0] <= c + 0.5 <= box[2] + 1 and box[1] <= r + 0.5 <= box[3] + 1)
    peak = float(np.max(m))
    found, _ = box_from_prob(m, threshold=0.5 * peak if peak > 0 else 0.0)
    fx0, fy0, fx1, fy1 = (float(v) for v in found)
    return hit, box_iou((fx0, fy0, fx1, fy1), box)


def _attention_model(init: str) -> tuple[MRIAttentionNet, WeightsSpec]:
    """The ``[localiser] init`` weights (a supervised-attention MRI model) and its spec."""
    from engine.models.weights import load_weights

    model, spec = load_weights(init)
    if not isinstance(model, MRIAttentionNet):
        raise ConfigError(f"localiser.init = {init!r} is a {type(model).__name__}, not a supervised-attention MRI model")
    return model, spec


def attention(model: MRIAttentionNet, x: torch.Tensor, size: tuple[int, int]) -> NDArray[np.float32]:
    """The model's attention for one ``(1, S, S)`` input, bilinearly upsampled to ``size``."""
    with torch.no_grad():
        _, a = model.forward_with_attention(x[None])
        up = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return np.asarray(up[0, 0].numpy(), np.float32)


def finetune(cfg: TrainConfig, train: list[OutlinedSlice], *, seed: int,
             cancel: CancelToken | None = None) -> MRIAttentionNet:
    """The ``[localiser] init`` model with its attention trained on ``train``'s boxes."""
    from engine.models.mri_attention import balanced_attention_loss, box_masks

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, _ = _attention_model(cfg.localiser.init)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    s_rows, s_cols = (int(v) for v in cfg.data.image_size)
    bs = cfg.train.batch_size
    for _ in range(cfg.train.epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), bs):
            check(cancel)
            xs, boxes = [], []
            for j in order[i:i + bs]:
                x, b = train[j].x, train[j].box
                if cfg.localiser.mirror and rng.random() < 0.5:  # both breasts are in the slice
                    x = x.flip(-1)
                    b = (s_cols - b[2], b[1], s_cols - b[0], b[3])
                xs.append(x)
                boxes.append(b)
            _, a = model.forward_with_attention(torch.stack(xs))
            masks = box_masks(torch.tensor(boxes, dtype=torch.float32), (s_rows, s_cols), (a.shape[-2], a.shape[-1]))
            loss = balanced_attention_loss(a, masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def evaluate_mri_localiser(cfg: TrainConfig, *, folds: int = 4, progress: ProgressCallback | None = None,
                           cancel: CancelToken | None = None) -> dict[str, Any]:
    """Cross-validate the localiser (see the module docstring).

    Raises:
        ConfigError: a data kind other than ``mimbcd_outlines``, fewer patients than folds.
    """
    from scipy import ndimage
    from sklearn.model_selection import GroupKFold

    from engine.stats.bootstrap import cluster_bootstrap_mean

    if cfg.data.kind != "mimbcd_outlines":
        raise ConfigError(f"--protocol mri_localiser needs data.kind = mimbcd_outlines, not {cfg.data.kind}")
    t0 = time.time()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    zero, spec = _attention_model(cfg.localiser.init)
    size = (int(cfg.data.image_size[0]), int(cfg.data.image_size[1]))
    tf = EvalTransform(spec.pre.with_(size=size), default_modality="MR")  # spec.transforms() at data.image_size
    samples = load_outlined_slices(cfg, tf)
    groups = [s.patient for s in samples]
    if len(set(groups)) < folds:
        raise ConfigError(f"{len(set(groups))} patients cannot fill {folds} folds")
    hits: dict[str, NDArray[np.float64]] = {m: np.full(len(samples), np.nan) for m in METHODS}
    ious: dict[str, NDArray[np.float64]] = {m: np.full(len(samples), np.nan) for m in METHODS}
    per_slice: list[dict[str, Any]] = []
    parts = list(GroupKFold(folds).split(samples, groups=groups))
    for fold, (tr, te) in enumerate(parts):
        check(cancel)
        model = finetune(cfg, [samples[i] for i in tr], seed=cfg.train.seed + fold, cancel=cancel)
        for i in te:
            s = samples[i]
            maps = {"brightest": np.asarray(ndimage.gaussian_filter(s.unit, cfg.localiser.smooth_sigma), np.float32),
                    "synthetic_zero_shot": attention(zero, s.x, size), "finetuned": attention(model, s.x, size)}
            row: dict[str, Any] = {"id": s.id, "patient": s.patient, "fold": fold}
            for name, m in maps.items():
                hit, ov = score_map(m, s.box)
                hits[name][i], ious[name][i] = hit, ov
                row[name] = {"hit": hit, "iou": round(ov, 4)}
            per_slice.append(row)
        report(progress, fold + 1, len(parts), f"fold {fold}: {len(te)} test slices")

    def ci(v: NDArray[np.float64]) -> dict[str, Any]:
        b = cluster_bootstrap_mean(v, groups, n_boot=cfg.localiser.n_boot, seed=cfg.train.seed)
        return {"mean": b.mean, "ci": [b.lo, b.hi], "n_slices": b.n, "n_patients": b.n_clusters}

    box_frac = float(np.mean([(s.box[2] - s.box[0]) * (s.box[3] - s.box[1]) / (size[0] * size[1])
                              for s in samples]))
    return {
        "protocol": "mri_localiser",
        "data": f"{cfg.data.path}: mimbcd-dev MR outlines (CC BY-SA 4.0; MIMBCD-UI / Calisto et al.), "
                f"{len(samples)} outlined slices of {len(set(groups))} patients; boxes from outlines",
        "init": cfg.localiser.init,
        "folds": folds,
        "grouping": "patient (GroupKFold)",
        "budget": {"input": list(size), "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
                   "lr": cfg.optim.lr, "mirror": cfg.localiser.mirror, "smooth_sigma": cfg.localiser.smooth_sigma},
        "n_slices": len(samples),
        "n_patients": len(set(groups)),
        "chance_pointing": box_frac,
        "metrics": {m: {"hit": ci(hits[m]), "iou": ci(ious[m])} for m in METHODS},
        "per_slice": per_slice,
        "device": "cpu",
        "wall_s": time.time() - t0,
    }
