"""Leave-source-out check of US models on mimbcd-dev ultrasound (Portugal; Toshiba Aplio / GE LOGIQ).

mimbcd-dev has **no pathology**: the label is the patient's BI-RADS (physician's where it exists,
else the UTA11 AI assistant's), and what is measured is how the model's score separates
BI-RADS >= 4 from BI-RADS <= 3 — a BI-RADS figure, not a malignancy AUC. The patient is the unit
(mean score over the patient's images); patients without a BI-RADS are left out.

Scenarios: ``no box`` (whole image; lesion models use their finder) and ``outline box`` (the
bounding box of the mapped lesion outline, only the images that have one). Every image goes
through the shipped :class:`engine.inference.Predictor`, i.e. exactly what ``breast-engine score``
does. mimbcd-dev: CC BY-SA 4.0 (Calisto et al.), used here for evaluation only.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="weights names or folders")
    ap.add_argument("--mimbcd", default=str(ROOT.parent / "shared" / "data" / "mimbcd-dev"))
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from engine.inference import Predictor
    from engine.io.reader import read_image
    from engine.stats.delong import auc_ci

    root = Path(args.mimbcd)
    birads: dict[str, int] = {}
    source: dict[str, str] = {}
    for r in csv.DictReader(open(root / "labels.csv", encoding="utf-8")):
        v = r["birads_final"] or r["ai_birads_uta11"]
        if v:
            birads[r["patient_id"]] = int(v)
            source[r["patient_id"]] = "physician" if r["birads_final"] else "AI assistant"
    outl = json.loads((root / "outlines.json").read_text())["outlines"]
    boxes: dict[str, list[float]] = {}
    for o in outl:
        if o["modality"] == "US" and o["path"] not in boxes:
            boxes[o["path"]] = o["bbox"]
    files = sorted(p.relative_to(root).as_posix() for p in (root / "us").glob("*/*.dcm"))
    res: dict[str, object] = {"n_images": len(files), "birads_sources": {}}
    for name in args.models:
        pred = Predictor(name, "cpu")
        per: dict[str, dict[str, list[float]]] = {"no box": {}, "outline box": {}}
        flags: list[int] = []
        for f in files:
            pid = f.split("/")[1]
            img = read_image(root / f)
            for scen, box in (("no box", None), ("outline box", boxes.get(f))):
                if scen == "outline box" and box is None:
                    continue
                try:
                    s = pred.predict(img, box=tuple(box) if box else None)  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(name, f, scen, "failed:", exc)
                    continue
                per[scen].setdefault(pid, []).append(s)
                if scen == "no box" and pred.lesion is not None:
                    flags.append(int(pred.assess(img, None).ood_flag))
        out: dict[str, object] = {}
        subsets = {"no box": per["no box"], "outline box": per["outline box"],
                   "no box, BI-RADS 2-3 vs >=4 (BI-RADS 1 left out)":
                       {p: v for p, v in per["no box"].items() if birads.get(p, 0) >= 2}}
        for scen, d in subsets.items():
            pids = [p for p in sorted(d) if p in birads]
            y = np.array([birads[p] >= 4 for p in pids], int)
            s = np.array([np.mean(d[p]) for p in pids])
            if y.min() == y.max():
                out[scen] = {"n_patients": len(pids), "note": "one class only"}
                continue
            a, lo, hi = auc_ci(y, s)
            out[scen] = {"auc_birads4_vs_le3": [a, lo, hi], "n_patients": len(pids), "n_birads_ge4": int(y.sum()),
                         "mean_score_ge4": float(s[y == 1].mean()), "mean_score_le3": float(s[y == 0].mean())}
        if flags:
            out["ood_flagged_fraction"] = float(np.mean(flags))
        out["per_patient_no_box"] = {p: [birads.get(p), float(np.mean(v))] for p, v in per["no box"].items()}
        res[pred.name] = out
        print(pred.name, json.dumps(out), flush=True)
    res["birads_sources"] = {k: sum(1 for v in source.values() if v == k) for k in set(source.values())}
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
