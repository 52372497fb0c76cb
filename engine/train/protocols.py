"""The seed papers' evaluation protocols, grouped so no lesion/patient straddles train and test.

* ``loo`` — leave-one-out over lesions (Habib et al. 2020 Sec. 4.1: 119 lesions train, 1 test,
  the lesion's score is the mean over its images, AUC over all test scores).
* ``kfold`` — stratified k-fold (the BUSI comparisons in docs/results.md).
* ``repeated-kfold`` — k-fold repeated with different shuffles (MRI supervised-attention
  paper: three-fold cross-validation repeated over three splits, 3x3).
* ``split`` — fixed 4/6 train, 1/6 validation, 1/6 test, classes uniformly distributed
  (Qi et al. 2019 Sec. 4.1).

Folds are built with scikit-learn's ``StratifiedGroupKFold`` / ``LeaveOneGroupOut``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn
from numpy.typing import ArrayLike, NDArray

from engine.errors import ConfigError
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import TrainConfig

PROTOCOLS = ("loo", "kfold", "repeated-kfold", "split")


@dataclass(frozen=True)
class Fold:
    """Indices of one train/validation/test partition.

    Attributes:
        repeat: Repeat index (0 unless repeated-kfold).
        fold: Fold index within the repeat.
        train: Training indices.
        val: Validation indices (may be empty).
        test: Test indices.
    """

    repeat: int
    fold: int
    train: NDArray[np.int64]
    val: NDArray[np.int64]
    test: NDArray[np.int64]

    @property
    def name(self) -> str:
        """``r<repeat>f<fold>``."""
        return f"r{self.repeat}f{self.fold}"


def _groups(labels: NDArray[np.int64], groups: Sequence[Any] | None) -> NDArray[np.int64]:
    if groups is None:
        return np.arange(labels.size, dtype=np.int64)
    if len(groups) != labels.size:
        raise ConfigError(f"{len(groups)} group ids for {labels.size} labels")
    _, inv = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return inv.astype(np.int64)


def _check_enough(labels: NDArray[np.int64], g: NDArray[np.int64], k: int, what: str,
                  hint: str | None = None) -> None:
    for c in np.unique(labels):
        n = np.unique(g[labels == c]).size
        if n < k:
            raise ConfigError(
                f"{what}: class {int(c)} has only {n} lesion group(s), fewer than the {k} folds; "
                + (hint or f"use fewer folds (--folds {max(2, n)}) or more data")
            )


def _sgkf(labels: NDArray[np.int64], g: NDArray[np.int64], k: int, seed: int) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    from sklearn.model_selection import StratifiedGroupKFold

    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    x = np.zeros((labels.size, 1))
    return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in skf.split(x, labels, g)]


def holdout_split(
    labels: ArrayLike, groups: Sequence[Any] | None, fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Grouped, stratified ``(train, held_out)`` with about ``fraction`` held out.

    Returns ``(all indices, empty)`` for ``fraction <= 0``.
    """
    y = np.asarray(labels, dtype=np.int64)
    idx = np.arange(y.size, dtype=np.int64)
    if fraction <= 0:
        return idx, idx[:0]
    g = _groups(y, groups)
    k = max(2, int(round(1.0 / fraction)))
    k = min(k, min(np.unique(g[y == c]).size for c in np.unique(y)))
    if k < 2:
        return idx, idx[:0]
    tr, te = _sgkf(y, g, k, seed)[0]
    return np.sort(tr), np.sort(te)


def split_indices(
    protocol: str,
    labels: ArrayLike,
    groups: Sequence[Any] | None = None,
    *,
    folds: int = 5,
    repeats: int = 3,
    seed: int = 0,
    val_fraction: float = 0.0,
) -> list[Fold]:
    """Partitions of a dataset for ``protocol``; no group is in two parts of one fold.

    Args:
        protocol: ``loo``, ``kfold``, ``repeated-kfold`` or ``split``.
        labels: Class index per image.
        groups: Lesion/patient id per image (default: every image is its own group).
        folds: k for (repeated) k-fold.
        repeats: Repeats for repeated k-fold (the MRI paper uses 3 folds x 3 repeats).
        seed: Shuffling seed (repeat r uses ``seed + r``).
        val_fraction: For loo/kfold/repeated-kfold, a grouped, stratified fraction of each
            training part held out for model selection (0 = none). ``split`` always has
            Qi's 1/6 validation part.

    Returns:
        The folds.

    Raises:
        ConfigError: unknown protocol, too few groups of a class for the folds.
    """
    y = np.asarray(labels, dtype=np.int64)
    g = _groups(y, groups)
    if np.unique(y).size < 2:
        raise ConfigError("the labels hold one class only; cross-validation needs two")
    out: list[Fold] = []
    empty = np.zeros(0, dtype=np.int64)

    def with_val(r: int, f: int, tr: NDArray[np.int64], te: NDArray[np.int64]) -> Fold:
        val = empty
        if val_fraction > 0:
            sub_tr, sub_val = holdout_split(y[tr], g[tr].tolist(), val_fraction, seed + 7919 * (r + 1) + f)
            tr, val = tr[sub_tr], tr[sub_val]
        return Fold(r, f, np.sort(tr), np.sort(val), np.sort(te))

    if protocol == "loo":
        for f, gid in enumerate(np.unique(g)):
            te = np.nonzero(g == gid)[0].astype(np.int64)
            tr = np.nonzero(g != gid)[0].astype(np.int64)
            out.append(with_val(0, f, tr, te))
    elif protocol in ("kfold", "repeated-kfold"):
        if folds < 2:
            raise ConfigError(f"--folds must be >= 2, got {folds}")
        reps = repeats if protocol == "repeated-kfold" else 1
        if reps < 1:
            raise ConfigError(f"--repeats must be >= 1, got {repeats}")
        _check_enough(y, g, folds, protocol)
        for r in range(reps):
            for f, (tr, te) in enumerate(_sgkf(y, g, folds, seed + r)):
                out.append(with_val(r, f, tr, te))
    elif protocol == "split":
        _check_enough(y, g, 6, "split (4/6-1/6-1/6)",
                      "the fixed split needs at least 6 lesions of each class; use kfold or loo")
        parts = [te for _, te in _sgkf(y, g, 6, seed)]
        te, val = parts[0], parts[1]
        tr = np.concatenate(parts[2:])
        out.append(Fold(0, 0, np.sort(tr), np.sort(val), np.sort(te)))
    else:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    return out


# --------------------------------------------------------------------- per lesion
def lesion_scores(
    scores: ArrayLike, labels: ArrayLike, groups: Sequence[Any]
) -> tuple[list[str], NDArray[np.int64], NDArray[np.float64]]:
    """Per-lesion score = mean over the lesion's images (Habib et al. 2020 Sec. 4.1).

    Multi-output models (``(N, K)`` scores, e.g. the MRI attention model's five sigmoid
    outputs) are scored on task 0, malignancy: that is the binary question cross-validation
    answers. Averaging all K tasks would mix in "mammary gland" or "IDC" probabilities.

    Returns:
        ``(group ids, truth per group (max over its images), mean score per group)`` in
        order of first appearance.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.ndim == 2:
        s = s[:, 0]
    if y.ndim == 2:
        y = y[:, 0]
    order: dict[str, list[int]] = {}
    for i, gid in enumerate(groups):
        order.setdefault(str(gid), []).append(i)
    ids = list(order)
    truth = np.array([int(y[order[k]].max()) for k in ids], dtype=np.int64)
    mean = np.array([float(s[order[k]].mean()) for k in ids], dtype=np.float64)
    return ids, truth, mean


@dataclass
class FoldResult:
    """Out-of-fold scores and metrics of one fold (lesion level)."""

    fold: Fold
    groups: list[str]
    truth: NDArray[np.int64]
    scores: NDArray[np.float64]
    threshold: float
    threshold_source: str
    metrics: dict[str, Any]
    wall_s: float
    history: list[dict[str, float]]


def _select_threshold(truth: NDArray[np.int64], scores: NDArray[np.float64], metric: str) -> float | None:
    from engine.metrics import best_threshold

    if truth.size and 0 < truth.sum() < truth.size:
        return best_threshold(truth, scores, metric)  # type: ignore[arg-type]
    return None


def cross_validate(
    cfg: TrainConfig,
    dataset: Any | None = None,
    *,
    protocol: str = "kfold",
    folds: int = 5,
    repeats: int = 3,
    model_factory: Callable[[], nn.Module] | None = None,
    threshold_metric: str = "f2",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``protocol`` on ``dataset``: train a fresh model per fold, score the test part.

    For every fold the model is built from the same seed, trained with :func:`fit`
    (selected on the fold's validation part by ``cfg.train.select[0]`` when it has one,
    else the final epoch), and its test images are scored; a lesion's score is the mean
    over its images. The operating threshold of a fold (F2, Qi et al. 2019) is chosen on
    data that did not touch its test lesions: the fold's validation lesions when there
    are any, otherwise the out-of-fold scores of the *other* folds of the same repeat
    (cross-fitted); only a single fold without validation falls back to its own scores,
    and says so.

    Pooled results use every lesion's out-of-fold score (averaged over repeats for
    repeated k-fold): AUC with the DeLong 95 % CI, and sensitivity/specificity/F2 from
    the per-fold thresholded calls.

    Args:
        cfg: Configuration (data, model, training).
        dataset: A :class:`engine.train.data.LabelledImages` (default: ``load_dataset(cfg)``).
        protocol: ``loo``, ``kfold``, ``repeated-kfold`` or ``split``.
        folds: k.
        repeats: Repeats of repeated k-fold.
        model_factory: Builds an untrained model (default: ``build_model(cfg)``).
        threshold_metric: Threshold selection metric (``f2``).
        progress: ``(done, total, message)`` over all folds.
        cancel: Cancellation token.
        run_dir: Folder for per-fold runs, ``scores.csv``, ``cv.json``, ``roc.png``.

    Returns:
        A JSON-ready dict (see ``breast-engine evaluate --json``).
    """
    from engine.metrics import evaluation_report, fbeta, mean_ci, plot_roc, sensitivity, specificity
    from engine.train.data import load_dataset
    from engine.train.loop import build_model, fit, predict, seed_everything

    t0 = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset(cfg)
    binary = len(ds.classes) == 2
    if not binary:
        raise ConfigError(f"cross_validate scores binary tasks; the data has classes {ds.classes}")
    plan = split_indices(protocol, ds.labels, ds.groups, folds=folds, repeats=repeats,
                         seed=cfg.train.seed, val_fraction=cfg.data.val_fraction if protocol != "split" else 0.0)
    factory = model_factory or (lambda: build_model(cfg))
    rdir = Path(run_dir) if run_dir is not None else None
    if rdir is not None:
        rdir.mkdir(parents=True, exist_ok=True)
        cfg.save(rdir)
    ds.warm(None, cancel)
    n = len(plan)
    select = cfg.train.select[0] if cfg.train.select else None
    results: list[FoldResult] = []
    task_rows: list[tuple[NDArray[np.float64], NDArray[np.int64], list[str], NDArray[np.int64]]] = []
    part_rows: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
    device = "cpu"
    for fi, fold in enumerate(plan):
        check(cancel)
        tf = time.perf_counter()

        def sub(done: int, total: int, msg: str, _fi: int = fi) -> None:
            frac = done / total if total else 0.0
            report(progress, int(1000 * (_fi + frac)), 1000 * n, f"fold {_fi + 1}/{n} {msg}")

        seed_everything(cfg.train.seed)
        model = factory()
        tr = ds.subset(fold.train, train=True)
        va = ds.subset(fold.val, train=False) if fold.val.size else None
        te = ds.subset(fold.test, train=False)
        fr = fit(model, tr, va, cfg=cfg, progress=sub if progress else None,  # type: ignore[arg-type]
                 cancel=cancel,
                 run_dir=(rdir / fold.name) if rdir is not None else None)
        device = fr.device
        model.load_state_dict(fr.state_for(select if va is not None else None))
        s = predict(model, te, batch_size=max(1, cfg.train.batch_size * 2), device=fr.device, cancel=cancel)
        gids, truth, mean = lesion_scores(s, ds.labels[fold.test], [ds.groups[i] for i in fold.test])
        parts = _part_scores(model, te, fr.device, [ds.groups[i] for i in fold.test], gids)
        if parts is not None:
            part_rows.append((truth, parts))
        tasks = _task_scores(model, fr, s, ds, fold, cfg, select, va is not None, cancel)
        if tasks is not None:
            task_rows.append(tasks)
        thr, src = None, ""
        if va is not None:
            sv = predict(model, va, batch_size=max(1, cfg.train.batch_size * 2), device=fr.device, cancel=cancel)
            _, tv, mv = lesion_scores(sv, ds.labels[fold.val], [ds.groups[i] for i in fold.val])
            thr = _select_threshold(tv, mv, threshold_metric)
            src = f"best {threshold_metric} on the fold's validation lesions"
        results.append(FoldResult(fold, gids, truth, mean, thr if thr is not None else math.nan, src,
                                  {}, time.perf_counter() - tf, fr.history))
        report(progress, 1000 * (fi + 1), 1000 * n, f"fold {fi + 1}/{n} done")

    # thresholds for folds without validation: cross-fitted on the other folds of the repeat
    for r in results:
        if r.threshold_source:
            continue
        others = [o for o in results if o.fold.repeat == r.fold.repeat and o is not r]
        if others:
            t_o = np.concatenate([o.truth for o in others])
            s_o = np.concatenate([o.scores for o in others])
            thr = _select_threshold(t_o, s_o, threshold_metric)
            r.threshold_source = f"best {threshold_metric} on the other folds' out-of-fold scores"
        else:
            thr = _select_threshold(r.truth, r.scores, threshold_metric)
            r.threshold_source = f"best {threshold_metric} on this fold's own test scores (optimistic)"
        r.threshold = thr if thr is not None else 0.5

    per_fold: list[dict[str, Any]] = []
    for r in results:
        both = 0 < r.truth.sum() < r.truth.size
        rep = evaluation_report(r.truth, r.scores, r.threshold) if both else None
        pred = (r.scores >= r.threshold).astype(np.int64)
        r.metrics = {
            "repeat": r.fold.repeat, "fold": r.fold.fold,
            "n_train_images": int(r.fold.train.size), "n_val_images": int(r.fold.val.size),
            "n_test_images": int(r.fold.test.size), "n_test_lesions": int(r.truth.size),
            "auc": rep["auc"] if rep else None,
            "auc_ci": rep["auc_ci"] if rep else [None, None],
            "threshold": float(r.threshold), "threshold_source": r.threshold_source,
            "sensitivity": _nan_none(sensitivity(r.truth, pred)),
            "specificity": _nan_none(specificity(r.truth, pred)),
            "f2": _nan_none(fbeta(r.truth, pred, 2.0)),
            "epochs": len(r.history), "wall_s": round(r.wall_s, 3),
        }
        per_fold.append(r.metrics)

    # pooled: one out-of-fold score per lesion (mean over repeats)
    acc: dict[str, list[float]] = {}
    truth_of: dict[str, int] = {}
    calls_t: list[int] = []
    calls_p: list[int] = []
    for r in results:
        for gid, t, s in zip(r.groups, r.truth, r.scores):
            acc.setdefault(gid, []).append(float(s))
            truth_of[gid] = int(t)
            calls_t.append(int(t))
            calls_p.append(int(s >= r.threshold))
    gids = list(acc)
    pt = np.array([truth_of[k] for k in gids], dtype=np.int64)
    ps = np.array([np.mean(acc[k]) for k in gids], dtype=np.float64)
    pooled = evaluation_report(pt, ps, None, threshold_metric=threshold_metric)
    pooled["threshold_source"] = (f"best {threshold_metric} on the pooled out-of-fold scores (in-sample, "
                                  "optimistic; 'calls' holds the honest operating-point figures)")
    ct, cp = np.array(calls_t), np.array(calls_p)
    from engine.metrics import confusion_matrix

    pooled["calls"] = {
        "description": "sensitivity/specificity/F2 of the per-fold thresholded calls "
                       "(thresholds chosen without the fold's test lesions), summed over folds"
                       + (" and repeats" if protocol == "repeated-kfold" else ""),
        "confusion": confusion_matrix(ct, cp).tolist(),
        "sensitivity": _nan_none(sensitivity(ct, cp)),
        "specificity": _nan_none(specificity(ct, cp)),
        "f2": _nan_none(fbeta(ct, cp, 2.0)),
    }
    summary: dict[str, Any] = {}
    for key in ("auc", "sensitivity", "specificity", "f2"):
        vals = [m[key] for m in per_fold if m[key] is not None]
        if len(vals) >= 2:
            m_, lo, hi = mean_ci(vals)
            summary[key] = {"mean": m_, "ci95": [lo, hi], "n_folds": len(vals)}
    out: dict[str, Any] = {
        "protocol": protocol,
        "folds": folds if protocol in ("kfold", "repeated-kfold") else len(plan),
        "repeats": repeats if protocol == "repeated-kfold" else 1,
        "model": cfg.model.name,
        "classes": ds.classes,
        "n_images": len(ds),
        "n_lesions": int(pt.size),
        "per_fold": per_fold,
        "fold_mean": summary,
        "pooled": pooled,
        "device": device,
        "wall_s": round(time.perf_counter() - t0, 3),
        "roc_png": None,
    }
    if task_rows:
        out["per_task"] = _pooled_tasks(task_rows)
    if part_rows:
        names = tuple(getattr(_inner(model), "part_names", ()))
        out["per_part"] = _pooled_parts(part_rows, names)
    if rdir is not None:
        with (rdir / "scores.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["repeat", "fold", "lesion", "truth", "score", "threshold"])
            for r in results:
                for gid, t, s in zip(r.groups, r.truth, r.scores):
                    w.writerow([r.fold.repeat, r.fold.fold, gid, int(t), f"{s:.6g}", f"{r.threshold:.6g}"])
        curves: dict[str, tuple[ArrayLike, ArrayLike]] = {}
        if len(results) <= 10:
            curves = {r.fold.name: (r.truth, r.scores) for r in results
                      if 0 < r.truth.sum() < r.truth.size}
        c = pooled["calls"]
        op = (1 - c["specificity"], c["sensitivity"]) if None not in (c["specificity"], c["sensitivity"]) else None
        roc = plot_roc(pt, ps, rdir / "roc.png", curves=curves, operating_point=op,
                       title=f"{cfg.model.name or 'model'} - {protocol} (lesion level)")
        out["roc_png"] = str(roc)
        (rdir / "cv.json").write_text(json.dumps(out, indent=2))
    return out


def _inner(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _part_scores(model: nn.Module, te: Any, device: Any, groups: list[Any], gids: list[str]) -> NDArray[np.float64] | None:
    """Lesion-mean scores of each part of a model with ``part_scores`` (Habib 2020: MG, US, fused).

    Returns ``(n_lesions, P)`` in the order of ``gids``, or None for other models.
    """
    import torch
    from torch.utils.data import DataLoader

    from engine.train.loop import to_device

    inner = _inner(model)
    fn = getattr(inner, "part_scores", None)
    if not callable(fn):
        return None
    was = inner.training
    inner.eval()
    rows = []
    try:
        with torch.no_grad():
            for batch in DataLoader(te, batch_size=16, shuffle=False):
                rows.append(fn(to_device(batch[0], device)).float().cpu().numpy())
    finally:
        inner.train(was)
    s = np.concatenate(rows).astype(np.float64)
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(str(g), []).append(i)
    return np.stack([s[by[g]].mean(axis=0) for g in gids])


def _pooled_parts(rows: list[tuple[NDArray[np.int64], NDArray[np.float64]]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Pooled lesion-level AUC with DeLong 95 % CI of each part's out-of-fold scores."""
    from engine.metrics import evaluation_report

    t = np.concatenate([r[0] for r in rows])
    s = np.concatenate([r[1] for r in rows])
    out: list[dict[str, Any]] = []
    for k in range(s.shape[1]):
        both = 0 < int(t.sum()) < t.size
        rep = evaluation_report(t, s[:, k], 0.5) if both else None
        out.append({"part": names[k] if k < len(names) else str(k), "n_lesions": int(t.size),
                    "auc": rep["auc"] if rep else None, "auc_ci": rep["auc_ci"] if rep else [None, None]})
    return out


def _task_scores(model: nn.Module, fr: Any, s: NDArray[np.float64], ds: Any, fold: Fold, cfg: TrainConfig,
                 select: str | None, has_val: bool, cancel: CancelToken | None,
                 ) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str], NDArray[np.int64]] | None:
    """Per-task test scores of a multi-output model (MRI 2019 paper: five tasks).

    Task ``k``'s scores come from its own best-validation copy (``best_auc_<k>``, the paper's
    per-task model selection) when ``train.select`` lists ``auc_<k>`` and the fold has a
    validation part, else from the copy used for the main score.

    Returns:
        ``(scores (n, K), truth (n, K), source per task, image indices)`` over the fold's test images, or None
        for single-output models / datasets without per-task targets.
    """
    from engine.train.loop import predict

    samples = getattr(ds, "samples", None)
    if s.ndim != 2 or samples is None or not hasattr(samples[0], "targets"):
        return None
    truth = np.array([samples[i].targets for i in fold.test], dtype=np.int64)
    if truth.shape != s.shape:
        return None
    out = s.copy()
    src = [f"best {select}" if has_val and select else "last epoch"] * s.shape[1]
    te = ds.subset(fold.test, train=False)
    for k in range(s.shape[1]):
        key = f"auc_{k}"
        if has_val and key in cfg.train.select and key != select and key in fr.best:
            model.load_state_dict(fr.state_for(key))
            sk = predict(model, te, batch_size=max(1, cfg.train.batch_size * 2), device=fr.device, cancel=cancel)
            out[:, k] = np.asarray(sk, dtype=np.float64)[:, k]
            src[k] = f"best {key}"
    if select is not None and has_val:
        model.load_state_dict(fr.state_for(select))
    return out, truth, src, fold.test


def _pooled_tasks(rows: list[tuple[NDArray[np.float64], NDArray[np.int64], list[str], NDArray[np.int64]]]
                  ) -> list[dict[str, Any]]:
    """Pooled image-level AUC with DeLong 95 % CI per task: one out-of-fold score per image
    (the mean over repeats, so repeated k-fold does not count an image twice)."""
    from engine.metrics import evaluation_report

    idx = np.concatenate([r[3] for r in rows])
    s_all = np.concatenate([r[0] for r in rows])
    t_all = np.concatenate([r[1] for r in rows])
    uniq, inv = np.unique(idx, return_inverse=True)
    s = np.zeros((uniq.size, s_all.shape[1]))
    np.add.at(s, inv, s_all)
    s /= np.bincount(inv)[:, None]
    t = np.zeros((uniq.size, t_all.shape[1]), dtype=np.int64)
    t[inv] = t_all
    out: list[dict[str, Any]] = []
    for k in range(s.shape[1]):
        both = 0 < int(t[:, k].sum()) < t.shape[0]
        rep = evaluation_report(t[:, k], s[:, k], 0.5) if both else None
        out.append({"task": k, "n": int(t.shape[0]), "positives": int(t[:, k].sum()),
                    "auc": rep["auc"] if rep else None, "auc_ci": rep["auc_ci"] if rep else [None, None],
                    "copy": sorted({r[2][k] for r in rows}),
                    "description": "one out-of-fold score per image (mean over repeats)"})
    return out


def _nan_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
