"""Reliability diagram of an MG lesion recipe's out-of-fold scores, before and after Platt scaling.

Reads the JSON of ``breast-engine evaluate --config CONFIG --protocol recipe --json`` (a config
with ``ship.calibrate = "platt"``) and draws the equal-width-bin reliability curves it reports:
raw out-of-fold probabilities and the cross-fitted Platt-calibrated ones (each fold calibrated
by a fit on the other folds), with the ECE of each. mini-MIAS: research use only (Suckling 1994).

    python tools/mg_reliability_figure.py EVAL.json --out docs/site-robust/mg_reliability.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="MG lesion model, mias-dev, out-of-fold (partition 0)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = json.loads(Path(args.eval_json).read_text())
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    for key, name, colour in (("calibration_raw", "raw", "tab:red"), ("calibration_platt_crossfit", "Platt (cross-fitted)", "tab:blue")):
        r = m[key]
        pts = [(p, f, c) for p, f, c in zip(r["mean_predicted"], r["fraction_positive"], r["counts"]) if c]
        ax.plot([p for p, _, _ in pts], [f for _, f, _ in pts], marker="o", color=colour,
                label=f"{name}: ECE {r['ece']:.3f}, Brier {r['brier']:.3f}")
        for p, f, c in pts:
            ax.annotate(str(c), (p, f), textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (5 equal-width bins)")
    ax.set_ylabel("fraction malignant")
    ax.set_title(args.title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.text(0.01, 0.01, f"n = {m['n']} lesions ({m['n_malignant']} malignant); numbers = lesions per bin",
             fontsize=6, color="0.3")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
