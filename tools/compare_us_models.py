#!/usr/bin/env python
"""Side-by-side evidence for the ultrasound default: ``us_lesion_lite0_busi`` vs ``us_effnet_lite0_busi``.

What is measured here (written to ``docs/results/us_default_comparison.json``):

* **other hospitals** -- mimbcd-dev ultrasound (Portugal; Toshiba Aplio / GE LOGIQ; never trained
  on): both models through the shipped :class:`engine.inference.Predictor` (what ``score`` and the
  app do) on the *same* images, whole image without a box (the lesion model uses its finder's
  box; the whole-image model ignores boxes anyway) and with the mapped outline's box; patient =
  unit (mean over the patient's images); label = BI-RADS >= 4 vs <= 3 (mostly the UTA11 AI
  assistant's BI-RADS: **not pathology**); paired DeLong difference between the models;
* **calibration of the previous default** -- expected calibration error of its out-of-fold BUSI
  scores (``docs/results/us_multilayer_cv.json``, 5 partitions; the model has no calibration
  step, so these are the probabilities it shows);
* **pointing game of the previous default's Grad-CAM** -- peak inside BUSI's expert mask, on
  every busi-dev lesion image, with the *shipped* model (trained on these images: in sample,
  i.e. optimistic for that model) against the image-centre guess.

The lesion model's BUSI figures (grouped CV, out-of-fold pointing, calibration) are in its
``spec.json`` metrics (``breast-engine ship configs/us_lesion_lite0_busi.toml``: both models'
out-of-fold scores on the same 418 images).
mimbcd-dev: CC BY-SA 4.0 (Calisto et al.); BUSI: CC BY 4.0 (Al-Dhabyani et al. 2020).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LESION, WHOLE = "us_lesion_lite0_busi", "us_effnet_lite0_busi"


def _lso(root: Path) -> dict[str, object]:
    from engine.inference import Predictor
    from engine.io.reader import read_image
    from engine.stats.delong import auc_ci, paired_delong_test

    birads: dict[str, int] = {}
    for r in csv.DictReader(open(root / "labels.csv", encoding="utf-8")):
        v = r["birads_final"] or r["ai_birads_uta11"]
        if v:
            birads[r["patient_id"]] = int(v)
    boxes: dict[str, list[float]] = {}
    for o in json.loads((root / "outlines.json").read_text())["outlines"]:
        if o["modality"] == "US" and o["path"] not in boxes:
            boxes[o["path"]] = o["bbox"]
    files = sorted(p.relative_to(root).as_posix() for p in (root / "us").glob("*/*.dcm"))
    per: dict[str, dict[str, dict[str, list[float]]]] = {}
    ood: list[int] = []
    for name in (LESION, WHOLE):
        pred = Predictor(name, "cpu")
        per[name] = {"no box": {}, "outline box": {}}
        for f in files:
            pid = f.split("/")[1]
            img = read_image(root / f)
            for scen, box in (("no box", None), ("outline box", boxes.get(f))):
                if scen == "outline box" and box is None:
                    continue
                if pred.lesion is not None:
                    a = pred.assess(img, tuple(box) if box else None)  # type: ignore[arg-type]
                    s = a.score
                    if scen == "no box":
                        ood.append(int(a.ood_flag))
                else:
                    s = pred.predict(img, box=tuple(box) if box else None)  # type: ignore[arg-type]
                per[name][scen].setdefault(pid, []).append(float(s))
    out: dict[str, object] = {"n_images": len(files), "n_images_with_outline": len(set(boxes) & set(files)),
                              "lesion_model_ood_flagged": [int(sum(ood)), len(ood)]}
    for scen in ("no box", "outline box"):
        pids = [p for p in sorted(per[LESION][scen]) if p in birads and p in per[WHOLE][scen]]
        y = np.array([birads[p] >= 4 for p in pids], int)
        s1 = np.array([np.mean(per[LESION][scen][p]) for p in pids])
        s0 = np.array([np.mean(per[WHOLE][scen][p]) for p in pids])
        d, se, z, pval = paired_delong_test(y, s1, s0)
        out[scen] = {"n_patients": len(pids), "n_birads_ge4": int(y.sum()),
                     LESION: list(auc_ci(y, s1)), WHOLE: list(auc_ci(y, s0)),
                     "paired_delong_diff_se_z_p": [d, se, z, pval],
                     "per_patient": {p: [birads[p], float(a), float(b)] for p, a, b in zip(pids, s1, s0)}}
    return out


def _calibration_of_whole_model() -> dict[str, object]:
    from engine.stats.calibration import reliability

    d = json.loads((ROOT / "docs" / "results" / "us_multilayer_cv.json").read_text())
    runs = d["recipes"][next(iter(d["recipes"]))]["runs"]
    y = np.asarray(d["labels"], int)
    eces = [float(reliability(np.asarray(r["oof"], float), y).ece) for r in runs]
    r0 = reliability(np.asarray(runs[0]["oof"], float), y)
    return {"ece_oof_per_partition": eces, "ece_oof_partition0": eces[0],
            "reliability_partition0": [r0.mean_predicted.tolist(), r0.fraction_positive.tolist(), r0.counts.tolist()]}


def _pointing_of_whole_model(busi: Path, limit: int) -> dict[str, object]:
    from engine.data.busi import load_busi, read_gray
    from engine.inference import Predictor
    from engine.stats.binary import wilson_ci

    pred = Predictor(WHOLE, "cpu")
    hits: dict[str, list[int]] = {"malignant": [], "benign": []}
    centre: dict[str, list[int]] = {"malignant": [], "benign": []}
    recs = [r for r in load_busi(busi) if r.mask is not None]
    if limit:
        recs = recs[:: max(1, len(recs) // limit)]
    for r in recs:
        g = read_gray(r.image)
        m = read_gray(r.mask) > 127  # type: ignore[arg-type]
        if not m.any():
            continue
        sal = pred.saliency(g, "gradcam").map
        py, px = np.unravel_index(int(np.argmax(sal)), sal.shape)
        hits[r.label_name].append(int(m[py, px]))
        centre[r.label_name].append(int(m[g.shape[0] // 2, g.shape[1] // 2]))

    def w(v: list[int]) -> list[float]:
        lo, hi = wilson_ci(int(sum(v)), len(v))
        return [sum(v) / max(len(v), 1), lo, hi, len(v)]

    allh, allc = hits["malignant"] + hits["benign"], centre["malignant"] + centre["benign"]
    return {"what": "Grad-CAM (model default method) of the shipped whole-image model on busi-dev lesion images it was "
                    "trained on (in sample: optimistic for it); hit = peak inside the expert mask",
            "gradcam_malignant": w(hits["malignant"]), "gradcam_benign": w(hits["benign"]), "gradcam_all": w(allh),
            "centre_malignant": w(centre["malignant"]), "centre_benign": w(centre["benign"]), "centre_all": w(allc)}


def main(argv: list[str] | None = None) -> int:
    """Run the three comparisons and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mimbcd", default=str(ROOT.parent / "shared" / "data" / "mimbcd-dev"))
    ap.add_argument("--busi", default=str(ROOT.parent / "shared" / "data" / "busi-dev"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "us_default_comparison.json"))
    ap.add_argument("--pointing-limit", type=int, default=0, help="subsample busi-dev for the pointing game (0 = all)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    res: dict[str, object] = {"models": [LESION, WHOLE]}
    res["calibration_whole_model"] = _calibration_of_whole_model()
    res["leave_source_out_mimbcd"] = _lso(Path(args.mimbcd))
    print("LSO", json.dumps({k: v for k, v in res["leave_source_out_mimbcd"].items()  # type: ignore[union-attr]
                             if k != "per_patient"}, default=str)[:1500], flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    res["pointing_whole_model"] = _pointing_of_whole_model(Path(args.busi), args.pointing_limit)
    res["wall_s"] = round(time.time() - t0, 1)
    res["command"] = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res["pointing_whole_model"]), json.dumps(res["calibration_whole_model"]["ece_oof_per_partition"]))  # type: ignore[index]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
