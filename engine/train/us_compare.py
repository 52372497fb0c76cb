"""``breast-engine evaluate --config configs/us_lesion_lite0_busi.toml --protocol compare``.

The ultrasound default (the ``us_lesion`` config's shipped ``ship.name``) side by side with the
whole-image model it averages in (``ship.context_config``'s shipped model, the previous default),
written by ``--out docs/results/us_default_comparison.json``:

* **other hospitals** -- ``ship.lso_data`` (mimbcd-dev ultrasound, Portugal, Toshiba Aplio / GE
  LOGIQ; never trained on): both *installed* models through the app's
  :class:`~engine.inference.Predictor` on the same images
  (:func:`engine.train.us_lesion.mimbcd_us_scores`), no box (the lesion model uses its finder)
  and the mapped outline's box; patient = unit; label BI-RADS >= 4 vs <= 3 (mostly the UTA11 AI
  assistant's: **not pathology**); paired DeLong difference (DeLong et al. 1988);
* **calibration of the previous default** -- expected calibration error of its out-of-fold BUSI
  probabilities, every partition of its own recipe (:func:`engine.train.recipes.evaluate_recipe`;
  it has no calibration step, so these are the probabilities it shows);
* **pointing game of the previous default** -- out of fold, through the viewer's saliency
  (:func:`engine.train.saliency_oof.evaluate_saliency_oof`), against the image-centre guess.

The lesion model's own BUSI figures (grouped CV with the same whole-image model's out-of-fold
scores, out-of-fold pointing and calibration) are its ``spec.json`` metrics, written by
``breast-engine ship`` of the same config; their sha256 is recorded here.
mimbcd-dev: CC BY-SA 4.0 (Calisto et al.); BUSI: CC BY 4.0 (Al-Dhabyani et al. 2020).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig


def _wilson(rate: dict[str, Any], n: int) -> list[float]:
    return [rate["rate"], rate["ci95"][0], rate["ci95"][1], n]


def compare_us_models(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """The comparison of the module docstring.

    Raises:
        ConfigError: not a ``us_lesion`` config with ``ship.context_config`` and ``ship.lso_data``.
        ModelNotFoundError: either model is not installed.
    """
    from engine.inference import Predictor
    from engine.stats.calibration import reliability
    from engine.stats.delong import auc_ci, paired_delong_test
    from engine.train.config import load_config
    from engine.train.recipes import evaluate_recipe
    from engine.train.saliency_oof import evaluate_saliency_oof
    from engine.train.us_lesion import LSO_SCENARIOS, lso_patients, mimbcd_us_scores

    sh = cfg.ship
    if cfg.train.mode != "us_lesion" or not sh.context_config or not sh.lso_data:
        raise ConfigError("--protocol compare needs a train.mode = 'us_lesion' config with ship.context_config "
                          "(the whole-image model) and ship.lso_data (mimbcd-dev)")
    t0 = time.time()
    ccfg = load_config(sh.context_config)
    if ccfg.data.path != cfg.data.path:
        ccfg = ccfg.override([f'data.path="{cfg.data.path}"'])
    les, old = str(sh.name), str(ccfg.ship.name)
    preds = {les: Predictor(les, "cpu"), old: Predictor(old, "cpu")}
    scores = {}
    for i, (name, pred) in enumerate(preds.items()):
        scores[name] = mimbcd_us_scores(pred, sh.lso_data)
        report(progress, i + 1, 4, f"{name}: {len(scores[name]['files'])} mimbcd-dev images")
    s_les = scores[les]
    lso: dict[str, Any] = {"label": "BI-RADS >= 4 vs <= 3 (physician's, else the UTA11 AI assistant's): NOT pathology",
                           "n_images": len(s_les["files"]), "n_images_with_outline": s_les["n_outlined"],
                           "lesion_model_ood_flagged": [int(sum(s_les["ood_flags"])), len(s_les["ood_flags"])]}
    for scen, which, min_b in LSO_SCENARIOS[:2]:
        pids, y, s1 = lso_patients(s_les, which, min_b)
        pids0, _, s0 = lso_patients(scores[old], which, min_b)
        if pids0 != pids:
            raise ConfigError(f"{sh.lso_data}: the two models scored different patients ({scen})")
        d, se, z, p = paired_delong_test(y, s1, s0)
        lso[scen] = {"n_patients": len(pids), "n_birads_ge4": int(y.sum()),
                     les: [round(float(v), 4) for v in auc_ci(y, s1)], old: [round(float(v), 4) for v in auc_ci(y, s0)],
                     "paired_delong_diff_se_z_p": [round(float(v), 4) for v in (d, se, z, p)],
                     "per_patient": {q: [int(s_les["birads"][q]), round(float(a), 5), round(float(b), 5)]
                                     for q, a, b in zip(pids, s1, s0)}}
    m, _ = evaluate_recipe(ccfg, progress=progress)
    y = np.asarray(m["oof_labels"], int)
    rel = [reliability(np.asarray(o, float), y) for o in m["oof_scores_all_partitions"]]
    cal = {"what": f"ECE (10 bins) of {old}'s out-of-fold BUSI probabilities, each partition of its recipe",
           "ece_oof_per_partition": [round(float(r.ece), 4) for r in rel], "ece_oof_partition0": round(float(rel[0].ece), 4),
           "reliability_partition0": [[round(float(v), 4) for v in rel[0].mean_predicted],
                                      [round(float(v), 4) for v in rel[0].fraction_positive],
                                      [int(v) for v in rel[0].counts]]}
    report(progress, 3, 4, f"{old}: out-of-fold ECE {cal['ece_oof_partition0']:.3f}")
    sal = evaluate_saliency_oof(ccfg, progress=progress)
    point: dict[str, Any] = {"what": sal["what"] + "; hit = peak inside the expert mask", "method": sal["method"]}
    for part, d_ in (("malignant", sal["by_class"]["malignant"]), ("benign", sal["by_class"]["benign"]),
                     ("all", sal["all"])):
        point[f"{sal['method']}_{part}"] = _wilson(d_["model"]["hit"], d_["model"]["n"])
        point[f"centre_{part}"] = _wilson(d_["centre_prior"]["hit"], d_["centre_prior"]["n"])
    report(progress, 4, 4, "pointing game done")
    return {"models": [les, old], "lesion_model_sha256": preds[les].spec.sha256,
            "whole_model_sha256": preds[old].spec.sha256,
            "calibration_whole_model": cal, "leave_source_out_mimbcd": lso, "pointing_whole_model": point,
            "wall_s": round(time.time() - t0, 1),
            "licence": "mimbcd-dev CC BY-SA 4.0 (Calisto et al.); BUSI CC BY 4.0 (Al-Dhabyani et al. 2020)"}
