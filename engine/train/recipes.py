"""Trainer modes that build the shipped defaults: linear probe and supervised attention.

Both prepare every image with the weights' own :class:`~engine.transforms.Preprocess`
(``spec.transforms()``), read through the app's reader, so what a model is trained and
evaluated on is exactly what the app feeds it.

* ``linear_probe`` (``train.mode``): the registered model's trunk stays frozen; its pooled
  features -- the model's multi-layer / multi-scale readout when it has one
  (``scale_features``: e.g. :class:`~engine.models.efficientnet_lite.MultiScaleLiteClassifier`),
  else the global average of ``forward_features`` -- feed one standardised, class-balanced L2
  logistic regression per scale, trained on the ``ship.views`` training views and folded into
  the model's linear head(s). Scoring = mean over the eval views (Qi 2019's five crops) of
  sigmoid(mean over scales of the logit).
* ``supervised_attention``: the MRI attention net from scratch on SYNTHETIC slices with the
  five BCE losses + the (class-balanced) attention BCE against the down-sampled lesion box.

:func:`evaluate_recipe` is the cross-validation ``breast-engine evaluate`` runs for these modes
and ``breast-engine ship`` writes into the model card; :func:`train_recipe` fits on all data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from engine.errors import ConfigError
from engine.models.weights import WeightsSpec
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig
from engine.transforms import Preprocess

Box = tuple[float, float, float, float]


@dataclass
class Item:
    """One labelled training/evaluation image (decoded through the app's reader)."""

    item_id: str
    image: Any  # LoadedImage or array
    label: int
    group: str
    box: Box | None = None
    modality: str = ""
    targets: list[int] = field(default_factory=list)  # multi-task labels (MRI)
    lesion_box: Box | None = None  # attention target (MRI)
    path: str = ""  # the file it was read from ("" for generated images)


# ----------------------------------------------------------------------------- data
def load_items(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> list[Item]:
    """The recipe's labelled images (``data.kind`` = ``busi``, ``mias_lesions`` or ``synthetic_mri``).

    Raises:
        ConfigError: an unknown kind or an empty data set.
    """
    kind = cfg.data.kind
    items: list[Item] = []
    if kind == "busi":
        from engine.data.busi import load_busi
        from engine.io.reader import read_image

        for r in load_busi(cfg.data.path):
            items.append(Item(r.image_id, read_image(str(r.image)), int(r.label), r.group, modality="US",
                              path=str(r.image)))
    elif kind == "mias_lesions":
        from engine.data.mias import circle_box, load_mias
        from engine.io.reader import read_image

        cache: dict[str, Any] = {}
        for im in load_mias(cfg.data.path):
            for k, a in enumerate(im.abnormalities):
                if a.centre is None:
                    continue
                img = cache.setdefault(im.refnum, read_image(str(im.path)))
                box = circle_box(a.centre, float(a.radius or 0.0), img.pixels.shape[:2])
                items.append(Item(f"{im.refnum}#{k}", img, int(a.label), str(im.patient),
                                  box=tuple(float(v) for v in box), modality="MG",  # type: ignore[arg-type]
                                  path=str(im.path)))
    elif kind == "synthetic_mri":
        from engine.data.synthetic import MRI_TASKS, synthetic_mri_case

        size = int(cfg.data.image_size[0])
        for s in range(cfg.data.synthetic_seed, cfg.data.synthetic_seed + cfg.data.synthetic_n):
            items.append(_mri_item(s, cfg.data.synthetic_slices, size, MRI_TASKS, synthetic_mri_case))
    else:
        raise ConfigError(f"data.kind {kind!r} is not read by the {cfg.train.mode} recipe "
                          "(busi, mias_lesions, synthetic_mri)")
    if not items:
        raise ConfigError(f"{cfg.data.path or kind}: no labelled images found")
    report(progress, len(items), len(items), f"{len(items)} images")
    return items


def _mri_item(seed: int, n_slices: int, size: int, tasks: tuple[str, ...], make: Callable[..., Any]) -> Item:
    case = make(seed, malignant=bool(seed % 2), n_slices=n_slices, size=size)
    s0, s1, x0, y0, x1, y1 = case["lesion_box"]
    z = (s0 + s1 - 1) // 2
    targets = [int(case["labels"][t]) for t in tasks]
    return Item(f"synthetic_mri_{seed}", case["volume"][z], targets[0], str(seed), modality="MR",
                targets=targets, lesion_box=(float(x0), float(y0), float(x1), float(y1)))


def make_spec(cfg: TrainConfig, metrics: dict[str, Any] | None = None, threshold: float = 0.5) -> WeightsSpec:
    """The :class:`WeightsSpec` the recipe trains for (its Preprocess prepares every image).

    Raises:
        ConfigError: ``[ship]`` lacks name/modality/preprocess, or the preprocess is invalid.
    """
    sh = cfg.ship
    if not sh.name or not sh.modality or not sh.preprocess:
        raise ConfigError("[ship] needs name, modality and preprocess (the model's typed preprocessing)")
    try:
        pre = Preprocess.from_json(sh.preprocess)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"ship.preprocess: {exc}") from None
    cfg_model = {k: v for k, v in cfg.model.cfg.items() if k != "pretrained"}
    extra = {**({"training_data": sh.training_data} if sh.training_data else {}), **sh.extra}
    for k in ("platt", "ood_threshold"):  # out-of-fold calibration / OOD warning (engine.train.calibrate_ood)
        if metrics and k in metrics:
            extra[k] = metrics[k]
    return WeightsSpec(name=sh.name, model=cfg.model.name, model_cfg=cfg_model, modality=sh.modality,
                       class_names=list(sh.class_names), threshold=float(threshold), synthetic=bool(sh.synthetic),
                       init=sh.init, preprocess=pre,
                       metrics={k: v for k, v in (metrics or {}).items() if not k.startswith("oof_")},
                       extra=extra)


def build_model(cfg: TrainConfig) -> nn.Module:
    """The registered architecture with its initial weights (``pretrained`` as configured), by
    the one builder (:func:`engine.train.loop.build_model`), checked against the channels and
    size of ``[ship] preprocess`` (what the recipe feeds it) rather than ``[data]``'s."""
    from engine.train.loop import build_model as build

    if not cfg.ship.preprocess:
        return build(cfg)
    try:
        pre = Preprocess.from_json(cfg.ship.preprocess)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"ship.preprocess: {exc}") from None
    return build(cfg, channels=int(pre.in_chans), image_size=[int(v) for v in pre.size])


@torch.no_grad()
def score_items(model: Any, spec: WeightsSpec, items: list[Item]) -> list[float]:
    """Malignancy probability of each item as evaluation computes it: ``spec.transforms()`` then
    the model (Qi's five crops averaged) -- no Predictor involved, for parity checks."""
    tf = spec.transforms()
    model.eval()
    out = []
    for it in items:
        t = tf(it.image, box=it.box, modality=it.modality or None).tensor
        x = t if t.ndim == 4 else t[None]
        out.append(float(model.malignancy(model(x).float()).mean()))
    return out


# --------------------------------------------------------------------- linear probe
def _features(model: Any, x: torch.Tensor) -> np.ndarray:
    """``(B, scales, D)`` pooled features: the model's readout (multi-layer/scale when it has one)."""
    with torch.no_grad():
        if hasattr(model, "scale_features"):
            return torch.stack(model.scale_features(x), 1).numpy()
        pooled: np.ndarray = model.forward_features(x).mean(dim=(2, 3))[:, None].numpy()
        return pooled


def probe_features(cfg: TrainConfig, model: nn.Module, spec: WeightsSpec, items: list[Item], *,
                   progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eval-view features ``(N, Ve, S, D)`` and training-view features ``(N, Vt, S, D)``.

    Eval views: the scoring input, then (``ship.eval_margins``) the box at each extra margin
    (test-time averaging; scores are the mean over the eval views).
    Training views (``ship.views``): ``eval`` (the scoring input itself), ``random_crops``
    (Qi 2019's random crops of the shorter-side-resized region + their mirrors; one generator
    seeded with ``train.seed`` across the data set, in data order) or ``margins`` (the lesion
    box at each margin, the first also mirrored).
    """
    from engine.imaging.geometry import random_crop_views

    model.eval()
    tf = spec.transforms()
    sh = cfg.ship
    gen = torch.Generator().manual_seed(cfg.train.seed)
    ev_l, tr_l = [], []
    t0 = time.time()
    for i, it in enumerate(items):
        p = tf(it.image, box=it.box, modality=it.modality or None)
        ev = p.tensor if p.tensor.ndim == 4 else p.tensor[None]
        if sh.eval_margins:  # test-time averaging over box margins (experiment arms only)
            from engine.transforms import EvalTransform

            ev = torch.cat([ev, *(EvalTransform(spec.pre.with_(box_margin=float(m)), default_modality=spec.modality)(
                it.image, box=it.box, modality=it.modality or None).tensor[None] for m in sh.eval_margins)])
        ev_f = _features(model, ev)
        if sh.views == "eval":
            tr_f = ev_f
        elif sh.views == "random_crops":
            region = tf.region_tensor(it.image, box=it.box, modality=it.modality or None)[0]
            views = random_crop_views(region, int(spec.pre.size[0]), sh.random_crops, gen)
            tr_f = _features(model, tf.normalise(views))
        else:
            if not sh.margins:
                raise ConfigError("ship.views = 'margins' needs ship.margins")
            vs = []
            for j, m in enumerate(sh.margins):
                t = spec.pre.with_(box_margin=float(m))
                from engine.transforms import EvalTransform

                v = EvalTransform(t, default_modality=spec.modality)(it.image, box=it.box,
                                                                     modality=it.modality or None).tensor
                vs.append(v)
                if j == 0:
                    vs.append(v.flip(-1))
            tr_f = _features(model, torch.stack(vs))
        ev_l.append(ev_f)
        tr_l.append(tr_f)
        if i % 25 == 0 or i == len(items) - 1:
            report(progress, i + 1, len(items), f"features ({time.time() - t0:.0f} s)")
    return np.stack(ev_l), np.stack(tr_l)


def fit_probe(tr: np.ndarray, y: np.ndarray, idx: np.ndarray, c: float) -> list[Any]:
    """One standardised, class-balanced L2 logistic regression per scale on the training views."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = []
    n_views, n_scales, d = tr.shape[1], tr.shape[2], tr.shape[3]
    for s in range(n_scales):
        x = tr[idx][:, :, s].reshape(-1, d)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced"))
        out.append(clf.fit(x, np.repeat(y[idx], n_views)))
    return out


def probe_scores(clfs: list[Any], ev: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over eval views of sigmoid(mean over scales of each scale's logit): the shipped model's output."""
    d = ev.shape[-1]
    z = np.mean([clf.decision_function(ev[idx][:, :, s].reshape(-1, d)).reshape(len(idx), -1)
                 for s, clf in enumerate(clfs)], 0)
    from scipy.special import expit

    return np.asarray(expit(z).mean(1), dtype=np.float64)


def fold_logistic_into_linear(fc: nn.Linear, coef: np.ndarray, intercept: float, mean: np.ndarray,
                              scale: np.ndarray) -> None:
    """Write a (StandardScaler -> LogisticRegression) into a 2-class softmax ``fc`` in place.

    softmax([0, z])[1] = sigmoid(z), z = sum_i w_i (x_i - mu_i) / sigma_i + b.
    """
    w = coef.reshape(-1) / scale
    b = float(intercept) - float(np.sum(coef.reshape(-1) * mean / scale))
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[1] = torch.as_tensor(w, dtype=fc.weight.dtype)
        fc.bias[1] = b


def write_probe(model: Any, clfs: list[Any]) -> None:
    """Fold the fitted regressions into the model's head(s) (``heads`` per scale, else ``head.fc``)."""
    heads = list(model.heads) if hasattr(model, "heads") else [model.head.fc]
    if len(heads) != len(clfs):
        raise ConfigError(f"{len(clfs)} fitted scales but the model has {len(heads)} linear heads")
    for head, clf in zip(heads, clfs):
        fold_logistic_into_linear(head, clf[1].coef_, float(clf[1].intercept_[0]), clf[0].mean_, clf[0].scale_)


# ------------------------------------------------------------------------- metrics
def stratified_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per sample: stratified by label, grouped (sklearn ``StratifiedGroupKFold``, shuffled)."""
    from sklearn.model_selection import StratifiedGroupKFold

    sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.zeros(len(labels), int)
    for f, (_, te) in enumerate(sgk.split(np.zeros(len(labels)), labels, groups)):
        fold[te] = f
    return fold


def f2_threshold(labels: np.ndarray, scores: np.ndarray, beta: float = 2.0) -> tuple[float, float, float, float]:
    """Threshold maximising F-beta (Qi 2019's selection metric) and its sensitivity/specificity/F-beta."""
    y = np.asarray(labels).astype(bool)
    best = (0.5, 0.0, 0.0, -1.0)
    for t in np.unique(scores):
        pred = scores >= t
        tp, fp = np.sum(pred & y), np.sum(pred & ~y)
        fn, tn = np.sum(~pred & y), np.sum(~pred & ~y)
        prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        f = (1 + beta**2) * prec * rec / max(beta**2 * prec + rec, 1e-12)
        if f > best[3]:
            best = (float(t), float(rec), float(tn / max(tn + fp, 1)), float(f))
    return best


def summarize_oof(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Per-fold AUC mean with a Student-t CI, pooled AUC with the DeLong CI, F2 operating point."""
    from engine.metrics.classification import mean_ci
    from engine.stats.delong import auc_ci
    from engine.stats.roc import empirical_auc

    aucs = [empirical_auc(labels[folds == f], scores[folds == f]) for f in range(int(folds.max()) + 1)]
    m, lo, hi = mean_ci(aucs)
    pooled, plo, phi = auc_ci(labels, scores)
    thr, sens, spec, f2 = f2_threshold(labels, scores)
    return {"fold_auc": [round(a, 4) for a in aucs], "auc_mean": round(m, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
            "pooled_auc": round(pooled, 4), "pooled_auc_delong_ci95": [round(float(plo), 4), round(float(phi), 4)],
            "f2_threshold": round(thr, 4), "sensitivity": round(sens, 4), "specificity": round(spec, 4),
            "f2": round(f2, 4), "n": int(len(labels)), "n_malignant": int(np.sum(labels))}


@dataclass
class RecipeState:
    """What a recipe needs between CV and the final fit (features are computed once)."""

    items: list[Item]
    labels: np.ndarray
    groups: np.ndarray
    eval_feats: np.ndarray | None = None
    train_feats: np.ndarray | None = None
    model: Any = None


def prepare(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> RecipeState:
    """Load the items (and, for the linear probe, the frozen model's features)."""
    torch.manual_seed(cfg.train.seed)
    items = load_items(cfg, progress=progress)
    st = RecipeState(items, np.array([it.label for it in items]), np.array([it.group for it in items]))
    if cfg.train.mode == "linear_probe":
        st.model = build_model(cfg).eval()
        cached = _feature_cache_path(cfg, items)
        if cached is not None and cached.is_file():
            with np.load(cached) as z:
                st.eval_feats, st.train_feats = z["eval"], z["train"]
            report(progress, len(items), len(items), f"features from the cache {cached.name}")
        else:
            st.eval_feats, st.train_feats = probe_features(cfg, st.model, make_spec(cfg), items, progress=progress)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(cached.stem + ".tmp.npz")
                np.savez(tmp, eval=st.eval_feats, train=st.train_feats)
                tmp.replace(cached)
    return st


#: Environment variable naming a folder (outside the repository) where frozen probe features are
#: cached between runs of configs that share model, preprocessing, views and data.
FEATURE_CACHE_ENV = "BREAST_ENGINE_FEATURE_CACHE"


def _feature_cache_path(cfg: TrainConfig, items: list[Item]) -> Any:
    """``$BREAST_ENGINE_FEATURE_CACHE/<key>.npz`` for this config's features, or None (no cache).

    The key hashes everything the features depend on: architecture and its config (heads and
    OOD settings excluded: they do not change the trunk), the typed preprocessing, the training
    views, the seed and every item's id, file and box.
    """
    import hashlib
    import json
    import os
    from pathlib import Path

    root = os.environ.get(FEATURE_CACHE_ENV, "")
    if not root:
        return None
    sh = cfg.ship
    pre = dict(sh.preprocess)
    pre.pop("description", None)
    mcfg = {k: v for k, v in cfg.model.cfg.items() if k not in ("num_classes", "ood_dims")}
    key = {"model": cfg.model.name, "cfg": mcfg, "pre": pre, "views": sh.views, "margins": list(sh.margins),
           "random_crops": sh.random_crops, "seed": cfg.train.seed, "torch": torch.__version__,
           "items": [[it.item_id, it.path, list(it.box) if it.box else None] for it in items]}
    if sh.eval_margins:  # only when set, so the keys of configs without it stay as they were
        key["eval_margins"] = list(sh.eval_margins)
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Path(root) / f"probe_{cfg.model.name}_{h}.npz"


def evaluate_recipe(cfg: TrainConfig, st: RecipeState | None = None, *,
                    progress: ProgressCallback | None = None) -> tuple[dict[str, Any], RecipeState]:
    """Cross-validate the recipe; returns the card's metrics (and the prepared state).

    ``linear_probe``: ``ship.repeats`` partitions (seeds ``train.seed + r``) of ``ship.folds``
    stratified, grouped folds; out-of-fold scores; with ``ship.c_grid`` the C with the best
    mean pooled AUC over the repeats is used (the grid is reported). Figures without a suffix
    are partition 0's (its F2 threshold is the shipped operating point).
    ``supervised_attention``: train on the data, test on an independent SYNTHETIC set.
    """
    st = st or prepare(cfg, progress=progress)
    if cfg.train.mode == "supervised_attention":
        return _evaluate_attention(cfg, st, progress=progress), st
    if cfg.train.mode != "linear_probe":
        raise ConfigError(f"train.mode {cfg.train.mode!r} has no recipe evaluation (use --protocol)")
    from engine.stats.roc import empirical_auc

    sh = cfg.ship
    y, g = st.labels, st.groups
    assert st.eval_feats is not None and st.train_feats is not None
    partitions = [stratified_folds(y, g, sh.folds, cfg.train.seed + r) for r in range(sh.repeats)]

    def oof(c: float, folds: np.ndarray) -> np.ndarray:
        out = np.zeros(len(y))
        for f in range(sh.folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            assert st.train_feats is not None and st.eval_feats is not None
            out[te] = probe_scores(fit_probe(st.train_feats, y, tr, c), st.eval_feats, te)
        return out

    grid: dict[str, float] = {}
    c_best = float(sh.c)
    if sh.c_grid:
        for c in sh.c_grid:
            grid[str(c)] = round(float(np.mean([empirical_auc(y, oof(float(c), p)) for p in partitions])), 4)
            report(progress, len(grid), len(sh.c_grid), f"C={c}: mean pooled AUC {grid[str(c)]:.4f}")
        c_best = float(max(sh.c_grid, key=lambda c: grid[str(c)]))
    runs = []
    oofs = []
    for r, p in enumerate(partitions):
        oofs.append(oof(c_best, p))
        runs.append(summarize_oof(y, oofs[-1], p))
        report(progress, r + 1, len(partitions), f"partition {r}: AUC {runs[-1]['auc_mean']:.4f}")
    means = [r["auc_mean"] for r in runs]
    pooled = [r["pooled_auc"] for r in runs]
    views = {"eval": "the scoring input", "random_crops": f"{sh.random_crops} random crops + mirrors",
             "margins": f"box margins {sh.margins} (+ mirror of the first)"}[sh.views]
    metrics: dict[str, Any] = {
        "protocol": (f"stratified {sh.folds}-fold CV grouped by {'patient' if cfg.data.kind == 'mias_lesions' else 'image'}, "
                     f"{sh.repeats} partition(s) (seeds {cfg.train.seed}-{cfg.train.seed + sh.repeats - 1}); "
                     "out-of-fold scores; figures without a suffix are partition 0's"),
        "recipe": f"linear_probe: frozen {cfg.model.name}, class-balanced L2 logistic C={c_best} per scale on {views}",
        **runs[0],
        "partition_seed": cfg.train.seed,
        "auc_mean_over_partitions": round(float(np.mean(means)), 4),
        "auc_range_over_partitions": [min(means), max(means)],
        "pooled_auc_mean_over_partitions": round(float(np.mean(pooled)), 4),
        "pooled_auc_range_over_partitions": [min(pooled), max(pooled)],
        "fold_auc_all_partitions": [a for r in runs for a in r["fold_auc"]],
        "c": c_best,
    }
    if grid:
        metrics["c_grid_mean_pooled_auc"] = grid
    if sh.calibrate:
        if sh.calibrate != "platt":
            raise ConfigError(f"ship.calibrate = {sh.calibrate!r}; expected 'platt' or ''")
        from engine.train.calibrate_ood import calibration_metrics

        metrics.update(calibration_metrics(y, oofs[0], partitions[0], list(zip(oofs[1:], partitions[1:]))))
    if sh.ood_percentile > 0:
        if not hasattr(st.model, "set_ood"):
            raise ConfigError(f"ship.ood_percentile needs a model with an OOD measure (set_ood); {cfg.model.name} has none")
        from engine.train.calibrate_ood import ood_metrics

        k = int(st.model.ood_proj.shape[0])
        metrics.update(ood_metrics(st.eval_feats[:, 0, 0], partitions[0], k, float(sh.ood_percentile)))
    # every partition's out-of-fold scores (item order), for paired comparisons between configs
    metrics["oof_ids"] = [it.item_id for it in st.items]
    metrics["oof_labels"] = [int(v) for v in y]
    metrics["oof_scores_all_partitions"] = [[round(float(v), 6) for v in o] for o in oofs]
    return metrics, st


def train_recipe(cfg: TrainConfig, metrics: dict[str, Any], st: RecipeState, *,
                 progress: ProgressCallback | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Fit on all the data with the evaluated settings; returns the model and its scores on the data.

    Returns:
        ``(model, {"scores": in-memory scores of the first items, "ids": their ids})``.
    """
    n_check = max(0, cfg.ship.parity_images)
    if cfg.train.mode == "linear_probe":
        if cfg.ship.eval_margins:
            raise ConfigError("ship.eval_margins (test-time margin averaging) is an experiment setting: the app "
                              "scores the one scoring input, so a model shipped with it would not match its card")
        assert st.eval_feats is not None and st.train_feats is not None
        idx = np.arange(len(st.items))
        clfs = fit_probe(st.train_feats, st.labels, idx, float(metrics.get("c", cfg.ship.c)))
        write_probe(st.model, clfs)
        if cfg.ship.ood_percentile > 0 and hasattr(st.model, "set_ood"):
            st.model.set_ood(st.eval_feats[:, 0, 0])  # all dev lesions; threshold from held-out folds
        scores = probe_scores(clfs, st.eval_feats, idx[:n_check])
        return st.model, {"scores": scores.tolist(), "ids": [it.item_id for it in st.items[:n_check]]}
    if cfg.train.mode == "supervised_attention":
        # the model evaluated on the independent test set is the one shipped (as the paper's
        # protocol: train once, test once)
        model = st.model if st.model is not None else _fit_attention(cfg, st.items, progress=progress)
        first = st.items[:n_check]
        return model, {"scores": score_items(model, make_spec(cfg), first), "ids": [it.item_id for it in first]}
    raise ConfigError(f"train.mode {cfg.train.mode!r} is not a ship recipe")


# --------------------------------------------------------------- supervised attention
def _attention_tensors(cfg: TrainConfig, items: list[Item]) -> tuple[torch.Tensor, np.ndarray, list[Box]]:
    tf = make_spec(cfg).transforms()
    x = torch.stack([tf(it.image, modality="MR").tensor for it in items])
    return x, np.array([it.targets for it in items]), [it.lesion_box for it in items if it.lesion_box is not None]


def _fit_attention(cfg: TrainConfig, items: list[Item], *, progress: ProgressCallback | None = None) -> nn.Module:
    """From-scratch training of the MRI attention net (five BCE + attention BCE against the box).

    Adam or SGD (Nesterov) per ``[optim]``, cosine decay per step, batch ``train.batch_size``,
    a random left-right mirror of each batch (image and target together), gradient clipping
    ``ship.grad_clip``. The attention BCE is class-balanced with ``ship.attention_balance`` (the
    box covers ~1 of 16 feature cells and the plain BCE drove the whole map to 0).
    """
    from engine.models.mri_attention import balanced_attention_loss, boxes_to_mask, mri_multitask_loss

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    x, y, boxes = _attention_tensors(cfg, items)
    h, w = int(cfg.data.image_size[0]), int(cfg.data.image_size[1])
    with torch.no_grad():
        fh, fw = model.forward_features(x[:1]).shape[-2:]  # type: ignore[operator]
    masks = torch.stack([boxes_to_mask([b], (h, w), (int(fh), int(fw))) for b in boxes])
    o = cfg.optim
    opt: torch.optim.Optimizer
    if o.name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                              weight_decay=o.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    bs = cfg.train.batch_size
    steps = math.ceil(len(x) / bs)
    total = steps * cfg.train.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    yt = torch.as_tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    for ep in range(cfg.train.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for s in range(steps):
            idx = perm[s * bs:(s + 1) * bs]
            xb, mb = x[idx], masks[idx]
            if torch.rand(1, generator=gen) < 0.5:  # left-right mirror (both breasts look alike)
                xb, mb = xb.flip(-1), mb.flip(-1)
            logits, att = model.forward_with_attention(xb)  # type: ignore[operator]
            if cfg.ship.attention_balance:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[idx]) + balanced_attention_loss(att, mb)
            else:
                loss = mri_multitask_loss(logits, yt[idx], att, mb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.ship.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.ship.grad_clip)
            opt.step()
            sched.step()
        report(progress, ep + 1, cfg.train.epochs, f"epoch {ep + 1}/{cfg.train.epochs} loss {float(loss.detach()):.4f}")
    return model.eval()


def _evaluate_attention(cfg: TrainConfig, st: RecipeState, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Train on the items and report per-task AUC (DeLong CI) on an independent SYNTHETIC test set."""
    from engine.data.synthetic import MRI_TASKS, synthetic_mri_case
    from engine.metrics.classification import mri_weighted_score
    from engine.stats.delong import auc_ci

    model = _fit_attention(cfg, st.items, progress=progress)
    st.model = model
    size = int(cfg.data.image_size[0])
    test = [_mri_item(s, cfg.data.synthetic_slices, size, MRI_TASKS, synthetic_mri_case)
            for s in range(cfg.ship.test_seed, cfg.ship.test_seed + cfg.ship.n_test)]
    xt, yt, _ = _attention_tensors(cfg, test)
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(model(xt[i:i + 32])) for i in range(0, len(xt), 32)]).numpy()
    per_task = {}
    for j, t in enumerate(MRI_TASKS):
        if 0 < yt[:, j].sum() < len(yt):
            a, lo, hi = auc_ci(yt[:, j], p[:, j])
            per_task[t] = [round(a, 4), round(lo, 4), round(hi, 4)]
    cats = [per_task[t][0] for t in MRI_TASKS[1:] if t in per_task]
    weighted = float(mri_weighted_score(per_task["malignancy"][0], cats)) if "malignancy" in per_task and cats else None
    return {"SYNTHETIC": True, "protocol": f"train {len(st.items)} / independent test {len(test)} synthetic cases",
            "test_auc_delong_ci95": per_task, "weighted_score": None if weighted is None else round(weighted, 4)}
