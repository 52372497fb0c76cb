"""Paired comparison of MG lesion recipes by grouped CV (out-of-fold scores of the same lesions).

Reads the ``breast-engine evaluate --protocol recipe --json`` outputs of several configs (each
holds every partition's out-of-fold scores, ``oof_scores_all_partitions``, in the same item
order) and, per partition, runs the paired DeLong test (DeLong 1988) of each config against the
reference (the first file). Writes one JSON with, per config: pooled AUC per partition with its
DeLong 95 % CI, the paired difference to the reference with its p-value, and the calibration /
OOD figures the recipe reported. mini-MIAS: research use only (Suckling 1994).

    python tools/mg_compare_cv.py REF.json OTHER.json ... --names ref other ... --out docs/site-robust/mg_lesion_cv.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evals", nargs="+")
    ap.add_argument("--names", nargs="+", required=True)
    ap.add_argument("--configs", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from engine.stats.delong import auc_ci, paired_delong_test

    if len(args.names) != len(args.evals):
        raise SystemExit("one --names entry per eval file")
    runs = [json.loads(Path(p).read_text()) for p in args.evals]
    ref = runs[0]
    y = np.asarray(ref["oof_labels"])
    out: dict[str, object] = {"reference": args.names[0], "n": int(len(y)), "n_malignant": int(y.sum()),
                              "test": "paired DeLong (1988) per CV partition, same lesions and folds", "configs": {}}
    for i, (name, m) in enumerate(zip(args.names, runs)):
        if m["oof_ids"] != ref["oof_ids"]:
            raise SystemExit(f"{name}: items differ from the reference")
        parts = []
        for r, (a, b) in enumerate(zip(m["oof_scores_all_partitions"], ref["oof_scores_all_partitions"])):
            auc, lo, hi = auc_ci(y, np.asarray(a))
            row = {"partition": r, "pooled_auc": round(auc, 4), "delong_ci95": [round(float(lo), 4), round(float(hi), 4)]}
            if i:
                diff, se, _z, p = paired_delong_test(y, np.asarray(a), np.asarray(b))
                row.update(diff_vs_reference=round(diff, 4), p=round(p, 4) if p == p else None)
            parts.append(row)
        keep = ("recipe", "c", "c_grid_mean_pooled_auc", "auc_mean_over_partitions", "pooled_auc_mean_over_partitions",
                "pooled_auc_range_over_partitions", "ece_raw", "ece_platt_crossfit", "ece_raw_mean_over_partitions",
                "ece_platt_crossfit_mean_over_partitions", "brier_raw_mean_over_partitions",
                "brier_platt_crossfit_mean_over_partitions", "brier_base_rate", "platt", "ood_threshold")
        entry = {k: m[k] for k in keep if k in m}
        entry["partitions"] = parts
        if i:
            diffs = [p["diff_vs_reference"] for p in parts]
            entry["mean_diff_vs_reference"] = round(float(np.mean(diffs)), 4)
            entry["partitions_better_p_lt_0.05"] = sum(1 for p in parts if p["diff_vs_reference"] > 0 and (p["p"] or 1) < 0.05)
        if i < len(args.configs):
            entry["config"] = args.configs[i]
        out["configs"][name] = entry  # type: ignore[index]
        print(name, entry.get("pooled_auc_mean_over_partitions"), entry.get("mean_diff_vs_reference", ""),
              [p.get("p") for p in parts])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
