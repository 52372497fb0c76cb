#!/usr/bin/env python
"""Train the shipped ultrasound malignancy model (EfficientNet-Lite0, ImageNet init) on BUSI.

Protocol (written into resources/models/us_effnet_lite0_busi/MODEL_CARD.md):
1. benign vs malignant BUSI images (``normal`` excluded: no lesion to characterise);
2. stratified 5-fold CV (the image is the lesion unit: BUSI has no patient ids) for each
   candidate recipe; out-of-fold scores of the LAST epoch (no selection on the held-out fold);
3. the recipe with the best pooled out-of-fold AUC is retrained on all images -> shipped weights.

Recipes (CPU-affordable, see ``effnet_tail.py``): the ImageNet trunk is frozen, K augmented views
of each image are pushed through it once, and the tail is fine-tuned on the cached views:
``tail13`` (blocks 13-15 + head), ``tail15`` (block 15 + head), ``linear`` (logistic regression on
the frozen 1280-d features). ``--full`` fine-tunes the whole network instead (GPU).

Example (about 30-40 min on 2 shared CPU cores):
    nice -n 10 python scripts/train_default_us.py --data ../shared/data/busi-dev \
        --out /tmp/lab/us --recipes linear tail15 tail13 --final
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import effnet_tail as et  # noqa: E402
import labkit  # noqa: E402

TAIL_RECIPES: dict[str, tuple[int, et.TailCfg]] = {
    "tail15": (15, et.TailCfg(epochs=8, lr=3e-4, head_lr=3e-3)),
    "tail13": (13, et.TailCfg(epochs=16, lr=2e-4, head_lr=2e-3)),
    "tail15_long": (15, et.TailCfg(epochs=16, lr=3e-4, head_lr=3e-3)),
}
CACHE_SPLIT = 13


def _linear_oof(feats: torch.Tensor, labels: np.ndarray, folds: np.ndarray, C: float = 0.5) -> np.ndarray:
    """Logistic regression on frozen features; training uses every view, testing views 0+1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, v, d = feats.shape
    oof = np.zeros(n)
    for f in range(int(folds.max()) + 1):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, class_weight="balanced"))
        clf.fit(feats[tr].reshape(-1, d).numpy(), np.repeat(labels[tr], v))
        oof[te] = np.mean([clf.predict_proba(feats[te, j].numpy())[:, 1] for j in (0, 1)], axis=0)
    return oof


def main(argv: list[str] | None = None) -> int:
    """Cross-validate the recipes, then optionally retrain the best one on everything."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/busi-dev")
    ap.add_argument("--work", default="/tmp/lab", help="cache folder (decoded images, trunk views)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--recipes", nargs="+", default=["linear", "tail15", "tail13"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--final", action="store_true", help="retrain the best recipe on all images")
    ap.add_argument("--reuse", action="store_true", help="skip recipes already in OUT/us_cv.json (same folds)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    logf = (out / "log.txt").open("a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    from engine.data.busi import load_busi, load_busi_arrays

    recs = load_busi(args.data)
    imgs, _, labels = load_busi_arrays(recs, size=256, cache=work / "busi256.npz")
    ids = np.array([r.image_id for r in recs])
    X = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    folds = labkit.stratified_folds(labels, ids, args.folds, seed=args.seed)
    log(f"{len(labels)} images, {int(labels.sum())} malignant; device {labkit.device_name(torch.device('cpu'))}")

    model = labkit.efficientnet_lite0(2, pretrained=True)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    cpath = work / f"us_lite_trunk_s{CACHE_SPLIT}_v{args.views}_{args.size}_seed{args.seed}.pt"
    t0 = time.time()
    side = cpath.with_suffix(".json")
    if cpath.is_file():
        cache = torch.load(cpath)
        cache_s = json.loads(side.read_text())["build_s"] if side.is_file() else time.time() - t0
    else:
        log(f"building trunk cache ({args.views} views, {args.size} px)")
        cache = et.build_view_cache(model, X, split=CACHE_SPLIT, size=args.size, views=args.views,
                                    seed=args.seed, log=log)
        torch.save(cache, cpath)
        cache_s = time.time() - t0
        side.write_text(json.dumps({"build_s": cache_s}))
    log(f"cache {tuple(cache.shape)} in {cache_s:.0f}s")

    # Derived caches for later splits (frozen blocks applied once, eval mode).
    @torch.no_grad()
    def advance(c: torch.Tensor, to: int) -> torch.Tensor:
        model.load_state_dict(init_state)
        model.eval()
        outs = []
        for i in range(0, c.shape[0], 32):
            h = c[i : i + 32].float().flatten(0, 1)
            for b in model._blocks[CACHE_SPLIT:to]:
                h = b(h)
            outs.append(h.view(c[i : i + 32].shape[:2] + h.shape[1:]).half())
        return torch.cat(outs)

    caches = {CACHE_SPLIT: cache}
    results: dict[str, dict] = {}
    prev = out / "us_cv.json"
    if prev.is_file():  # resume: keep recipes already cross-validated on the same folds
        old = json.loads(prev.read_text())
        if old.get("folds") == folds.tolist():
            results.update({k: v for k, v in old["recipes"].items() if k not in args.recipes or args.reuse})
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])

    def save() -> None:
        payload = {"ids": ids.tolist(), "labels": labels.tolist(), "folds": folds.tolist(),
                   "device": labkit.device_name(torch.device("cpu")), "cache_s": cache_s,
                   "recipes": results, "command": cmd}
        (out / "us_cv.json").write_text(json.dumps(payload))

    from sklearn.metrics import roc_auc_score

    for name in args.recipes:
        if args.reuse and name in results:
            log(f"recipe {name}: reusing the CV results in {prev}")
            continue
        t1 = time.time()
        if name in ("linear", "linear_ms"):
            with torch.no_grad():
                model.load_state_dict(init_state)
                model.eval()
                c = caches[CACHE_SPLIT]
                per_view = []
                for v in range(c.shape[1]):
                    fs = []
                    for i in range(0, c.shape[0], 64):
                        h = c[i : i + 64, v].float()
                        if name == "linear":
                            fs.append(et.tail_features(model, h, CACHE_SPLIT))
                            continue
                        # Multi-scale: avg+max pooling of block-12 output and of the head.
                        hh = h
                        for b in model._blocks[CACHE_SPLIT:]:
                            hh = b(hh)
                        hh = model._swish(model._bn1(model._conv_head(hh)))
                        fs.append(torch.cat([hh.mean((2, 3)), hh.amax((2, 3)), h.mean((2, 3)), h.amax((2, 3))], 1))
                    per_view.append(torch.cat(fs))
                feats = torch.stack(per_view, 1)
            oof = _linear_oof(feats, labels, folds, C=0.5 if name == "linear" else 0.1)
            cfg_d: dict = {"C": 0.5 if name == "linear" else 0.1,
                           "features": "ImageNet EfficientNet-Lite0 pooled 1280-d (frozen)" if name == "linear" else
                           "frozen EfficientNet-Lite0: avg+max pooled head (2x1280) and block-12 (2x192)"}
        else:
            split, cfg = TAIL_RECIPES[name]
            if split not in caches:
                caches[split] = advance(caches[CACHE_SPLIT], split)
            oof = np.zeros(len(labels))
            for f in range(args.folds):
                tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
                log(f" {name} fold {f + 1}/{args.folds}")
                model.load_state_dict(init_state)
                et.train_tail(model, caches[split][tr], labels[tr], split, cfg, log=log)
                oof[te] = et.predict_tail(model, caches[split][te], split)
            cfg_d = {"split": split, **cfg.__dict__}
        wall = time.time() - t1
        aucs = labkit.fold_aucs(labels, oof, folds)
        m, lo, hi = labkit.mean_ci(aucs)
        pooled = float(roc_auc_score(labels, oof))
        log(f"recipe {name}: fold AUCs {np.round(aucs, 3).tolist()} mean {m:.3f} [{lo:.3f}, {hi:.3f}] "
            f"pooled {pooled:.3f} ({wall:.0f}s)")
        results[name] = {"cfg": cfg_d, "oof": oof.tolist(), "fold_aucs": aucs, "pooled_auc": pooled,
                         "mean_ci": [m, lo, hi], "wall_s": wall}
        save()

    if args.final:
        tails = [k for k in results if k in TAIL_RECIPES]
        best = max(tails, key=lambda k: results[k]["pooled_auc"])
        split, cfg = TAIL_RECIPES[best]
        log(f"final: recipe {best} on all {len(labels)} images")
        t1 = time.time()
        model.load_state_dict(init_state)
        et.train_tail(model, caches[split], labels, split, cfg, log=log)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, out / "us_final_raw.pt")
        # End-to-end check on raw images through the WHOLE network (trunk + tail).
        p = labkit.predict_proba(model, X, torch.device("cpu"), size=args.size, amp=False,
                                 mean=labkit.LITE_MEAN, std=labkit.LITE_STD)
        p_cache = et.predict_tail(model, caches[split], split)
        (out / "us_final.json").write_text(json.dumps({
            "recipe": best, "split": split, "cfg": cfg.__dict__, "train_auc": float(roc_auc_score(labels, p)),
            "max_abs_diff_full_vs_cache": float(np.abs(p - p_cache).max()), "wall_s": time.time() - t1,
            "size": args.size, "views": args.views}))
        log(f"final done ({time.time() - t1:.0f}s); resubstitution AUC {roc_auc_score(labels, p):.3f}; "
            f"full-vs-cache max diff {np.abs(p - p_cache).max():.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
