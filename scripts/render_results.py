"""Render docs/results.md from the JSON result files in docs/results/ (the only script left).

    python scripts/render_results.py

Each JSON names the command that wrote it. The model lab's lab scripts are gone: the shipped
defaults and the experiments are configs under configs/ run by `breast-engine ship` /
`breast-engine evaluate` (section 0 of the rendered page maps each figure to its config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
DOC = REPO / "docs" / "results.md"
MODELS = REPO / "resources" / "models"


def _load(name: str) -> dict[str, Any] | None:
    f = RESULTS / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _mci(m: list[float]) -> str:
    """mean ± half-width (CI clipped to [0, 1] for display: with 3 folds the t-interval can overflow)."""
    return f"{m[0]:.3f} ± {(m[2] - m[1]) / 2:.3f} ({max(m[1], 0.0):.3f}–{min(m[2], 1.0):.3f})"


def _footer(d: dict[str, Any]) -> str:
    return (f"\n*Command:* `{d['command']}`  \n*Wall time:* {d['wall_s']:.0f} s  \n*Device:* {d['device']}\n")


def _missing(name: str, how: str) -> str:
    return f"\n*Not run in this session* (`{name}`): {how}\n"


SECTION0 = """## 0. Where each figure comes from now (configs, not scripts)

| figure | rebuilt / re-run by | status |
|---|---|---|
| US default (section 1) | `breast-engine ship configs/us_effnet_lite0_busi.toml --out resources/models/us_effnet_lite0_busi` | re-shipped by `ship` (issue 11): partition-0 CV AUC 0.9311 (95 % CI 0.9066–0.9557), pooled 0.9284 (DeLong 0.9030–0.9537), mean over 5 partitions 0.9397 (the lab script's build: 0.9311 / 0.9284 / 0.9398) |
| MG lesion arms by repeated grouped CV (issue 12 item 8; `mg_lesion_lite0_mias` is the MG default) | `breast-engine evaluate --config configs/experiments/mg_lesion_compare.toml --protocol compare --out docs/site-robust/mg_lesion_cv` (each arm a `configs/experiments/mg_lesion_*.toml`, `--protocol recipe`); reliability: `--protocol reliability`, OOD smoke: `--protocol ood_smoke` on `configs/mg_lesion_lite0_mias.toml` | section 1, "MG lesion arms" |
| MG previous default, still installed (section 1) | `breast-engine ship configs/mg_effnet_lite0_mias_lesion.toml --out resources/models/mg_effnet_lite0_mias_lesion` | re-shipped: same figures as the lab build (pooled OOF AUC 0.656, DeLong 0.529–0.784; mean over 5 repeats 0.668; C = 0.001) |
| MR default (section 1, SYNTHETIC) | `breast-engine ship configs/mri_attention_synthetic_default.toml --out resources/models/mri_attention_synthetic` | re-shipped: independent synthetic test malignancy AUC 0.718 (DeLong 0.618–0.817), weighted 0.677 (lab build 0.721 / 0.678) |
| US head-only / previous default | `breast-engine evaluate --config configs/experiments/us_head_only_lite0_fivecrop.toml --protocol recipe` | re-run from the config (issue 11): partition 0 AUC 0.9122 (95 % CI 0.8674–0.9571), pooled 0.9095 (DeLong 0.8807–0.9382), mean over 5 partitions 0.9212 — the lab script's row below: 0.912 / 0.909 / 0.921 |
| Qi basic vs multi-input (section 2) | `configs/experiments/us_qi_basic_lite0_probe.toml`, `configs/experiments/us_qi_fivecrop_lite0_probe.toml` (`--protocol recipe`) | re-run from the configs (issue 11; classifier trained on the eval view, C = 0.05, 1 partition): basic AUC 0.857 (0.805–0.909), pooled 0.855 (DeLong 0.816–0.894); five-crop 0.911 (0.881–0.940), pooled 0.907 (DeLong 0.878–0.936). The table in section 2 (the removed script: random-crop training) says the same: five-crop > basic |
| Habib basic CNN on BUSI | `breast-engine evaluate --config configs/busi_habib_basic_cnn_quick.toml --protocol kfold` | config (figure below from the removed reproduce script, its own loop) |
| Hijab VGG16 from scratch | `breast-engine evaluate --config configs/busi_hijab_vgg16_scratch_reduced.toml --protocol kfold` | config (same caveat) |
| Habib fusion (SYNTHETIC) | `breast-engine evaluate --config configs/habib_fusion_synthetic.toml --protocol kfold` (`--set model.cfg.procedure=...`, `model.cfg.loss=...`) | config (same caveat) |
| US fine-tune / tail / squashed-224 rows | none: labkit's batched GPU augmentation loop was removed; `configs/busi_efficientnet_lite0.toml` is the engine's fine-tune | lost experiments, figures kept as measured |
| An tissue patches (section 3) | none yet: no `mias_patches` data kind in `breast-engine evaluate` | figure kept as measured by the removed script; not re-runnable until ported |
| An heatmap FCN ± local map (section 5) | `breast-engine evaluate --config configs/an_heatmap_mias_base.toml --protocol an_heatmap --folds 3`, then `configs/an_heatmap_mias_local.toml ... --paired` on the first result | run from the configs (issue 11 item 7) at a CPU budget |
| MRI attention as a lesion localiser on real outlines (`docs/results/mri_localiser.md`) | `breast-engine evaluate --config configs/mri_localiser_mimbcd.toml --protocol mri_localiser --folds 4` (`--set data.image_size=[256,256]` for 256 px) | run from the config; reproduces the removed `tools/mri_localiser_cv.py` (same pointing, IoU within 0.002) |
| US saliency localisation (whole-image model, out of fold) | `breast-engine evaluate --config configs/us_effnet_lite0_busi.toml --protocol saliency --out docs/results/us_saliency_oof.json` | protocol (issue 12): fold models of the recipe's partition 0 through `Predictor.saliency` |
| US default vs previous default (section 0b) | `breast-engine evaluate --config configs/us_lesion_lite0_busi.toml --protocol compare --out docs/results/us_default_comparison.json` | protocol (issue 12): installed models, mimbcd-dev BI-RADS, calibration, out-of-fold pointing |
"""


def _mg_arms() -> list[str]:
    """The MG lesion arms of ``--protocol compare`` (docs/site-robust/mg_lesion_cv/compare.json)."""
    f = REPO / "docs" / "site-robust" / "mg_lesion_cv" / "compare.json"
    if not f.is_file():
        return [_missing("mg_lesion_cv/compare.json", "breast-engine evaluate --config "
                         "configs/experiments/mg_lesion_compare.toml --protocol compare --out docs/site-robust/mg_lesion_cv")]
    d = json.loads(f.read_text())
    o = [f"### MG lesion arms by repeated grouped CV (mias-dev, {d['n']} lesions, {d['n_malignant']} malignant; "
         f"{d['partitions']} partitions x 5 folds grouped by woman)\n",
         "Pooled out-of-fold AUC per partition; DeLong 95 % CI of partition 0; paired DeLong difference to "
         f"`{d['reference']}` (the MG default until session 5, 224 px input) per partition. `input320` is the recipe "
         "of the re-shipped MG default `mg_lesion_lite0_mias` (higher in all 5 partitions; the AUC is not smooth in "
         "the input size, and the arm was selected among these on the same 72 lesions: optimistic). Issue 12's goal "
         "of 0.80 is not reached by any arm. Why and what lost: `resources/models/mg_lesion_lite0_mias/MODEL_CARD.md`.\n",
         "| arm | config | pooled AUC, mean over partitions (range) | partition 0 (DeLong 95 % CI) | mean paired diff | "
         "partitions higher / better at p < 0.05 | smallest p (either sign) |",
         "|---|---|---|---|---|---|---|"]
    for name, c in d["configs"].items():
        p0 = c["partitions"][0]
        lo, hi = c["pooled_auc_range_over_partitions"]
        diff = "reference" if name == d["reference"] else f"{c['mean_diff_vs_reference']:+.3f}"
        cnt = "" if name == d["reference"] else f"{c['partitions_higher']} / {c['partitions_better_p_lt_0.05']}"
        mp = "" if name == d["reference"] or c.get("min_p") is None else f"{c['min_p']:.3f}"
        cfg = f"`{c['config']}`" if c.get("config") else "ensemble (no fitting)"
        o.append(f"| {name} | {cfg} | {c['pooled_auc_mean_over_partitions']:.3f} ({lo:.3f}–{hi:.3f}) | "
                 f"{p0['pooled_auc']:.3f} ({p0['delong_ci95'][0]:.3f}–{p0['delong_ci95'][1]:.3f}) | {diff} | {cnt} | {mp} |")
    o.append("")
    return o


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _us_default_decision() -> str:
    """Issue 12: the two US models side by side, and the decision it supports."""
    cmp_ = _load("us_default_comparison")
    les, old = "us_lesion_lite0_busi", "us_effnet_lite0_busi"
    spec_f, cv_f = MODELS / les / "spec.json", MODELS / les / "cv_results.json"
    m = json.loads(spec_f.read_text()).get("metrics", {}) if spec_f.is_file() else {}
    if cmp_ is None or not (cv_f.is_file() or "partitions" in m.get("cv_auc", {}).get("box", {})):
        return _missing("us_default_comparison", "breast-engine evaluate --config configs/us_lesion_lite0_busi.toml "
                        "--protocol compare --out docs/results/us_default_comparison.json")
    if "partitions" in m.get("cv_auc", {}).get("box", {}):
        # shipped by `breast-engine ship configs/us_lesion_lite0_busi.toml`: the recipe's figures in spec.json
        w = {sc: {"partitions": [{"old": p["context_only"], "ensemble": p["combined"],
                                  "paired_diff_se_z_p": p["paired_diff_se_z_p"]} for p in m["cv_auc"][sc]["partitions"]],
                  "ece_raw": m["calibration"][sc]["raw"]["ece"],
                  "ece_platt_crossfit": m["calibration"][sc]["platt_crossfit"]["ece"]} for sc in ("box", "finder")}
        pt, ood_thr = m.get("pointing", {}), float(m["ood"]["threshold"])
        src = "spec.json` metrics, from `breast-engine ship configs/us_lesion_lite0_busi.toml"
    else:
        cv = json.loads(cv_f.read_text())
        w = cv["with_context_cv"]
        pt, ood_thr = cv["lesion_only_cv"].get("pointing", {}), float(cv["ood_whole_image"]["threshold_p95"])
        src = "cv_results.json"

    def parts(sc: str) -> tuple[str, str, str]:
        ps = w[sc]["partitions"]
        o = sum(p["old"][0] for p in ps) / len(ps)
        e = sum(p["ensemble"][0] for p in ps) / len(ps)
        d = [p["paired_diff_se_z_p"] for p in ps]
        rng = (f"Δ {min(x[0] for x in d):+.3f} … {max(x[0] for x in d):+.3f}, "
               f"p {_p(min(x[3] for x in d))}–{max(x[3] for x in d):.3f}")
        return f"{o:.3f}", f"{e:.3f}", rng

    lso = cmp_["leave_source_out_mimbcd"]

    def lso_row(sc: str) -> tuple[str, str, str]:
        x = lso[sc]
        a, b = x[old], x[les]
        d = x["paired_delong_diff_se_z_p"]
        return (f"{a[0]:.3f} ({a[1]:.3f}–{a[2]:.3f})", f"{b[0]:.3f} ({b[1]:.3f}–{b[2]:.3f})",
                f"Δ {d[0]:+.3f} (SE {d[1]:.3f}, p = {d[3]:.2f}); {x['n_patients']} patients, "
                f"{x['n_birads_ge4']} BI-RADS ≥ 4")

    pw = cmp_["pointing_whole_model"]
    pw_how = "out of fold" if "out of fold" in pw.get("what", "") else "in sample"

    def pc(v: list[float]) -> str:
        return f"{100 * v[0]:.1f} % ({100 * v[1]:.1f}–{100 * v[2]:.1f})"

    cal = cmp_["calibration_whole_model"]
    bf = REPO / "benchmarks" / "results" / "bench_score_us_default.json"
    bench = json.loads(bf.read_text()) if bf.is_file() else None
    rows = [
        ("BUSI grouped CV AUC, reader's box (mean of the previous default's 5 partitions; paired DeLong per partition)",
         *parts("box")),
        ("BUSI grouped CV AUC, no box (lesion model: its finder's box)", *parts("finder")),
        ("mimbcd-dev leave-source-out AUC, whole image, no box (finder) — BI-RADS ≥ 4 vs ≤ 3", *lso_row("no box")),
        ("mimbcd-dev leave-source-out AUC, mapped outline's box — BI-RADS ≥ 4 vs ≤ 3", *lso_row("outline box")),
    ]
    if pt:
        rows.append(("pointing game, malignant BUSI (peak in the expert mask)",
                     f"{pc(pw['gradcam_malignant'])} Grad-CAM, {pw_how}",
                     f"**{pc(pt['attention_malignant'])}** attention, out of fold",
                     f"centre guess {pc(pw['centre_malignant'])}"))
        rows.append(("pointing game, all BUSI lesions",
                     f"{pc(pw['gradcam_all'])} Grad-CAM, {pw_how}",
                     f"**{pc(pt['attention_all'])}** attention, out of fold",
                     f"centre guess {pc(pw['centre_all'])}"))
    wb, wf = w["box"], w["finder"]
    rows.append(("calibration: ECE of the probability shown, out of fold (10 bins)",
                 f"{cal['ece_oof_partition0']:.3f} (not calibrated; 5 partitions "
                 f"{min(cal['ece_oof_per_partition']):.3f}–{max(cal['ece_oof_per_partition']):.3f})",
                 f"**{wb['ece_platt_crossfit']:.3f}** reader box, **{wf['ece_platt_crossfit']:.3f}** finder box "
                 "(Platt, cross-fitted)",
                 f"before Platt {wb['ece_raw']:.3f} / {wf['ece_raw']:.3f}"))
    fl = lso["lesion_model_ood_flagged"]
    rows.append(("OOD warning", "none",
                 f"{fl[0]} of {fl[1]} mimbcd-dev images flagged; 5 % of held-out BUSI by construction",
                 f"threshold {ood_thr:.2f} (95th percentile of out-of-fold BUSI distances)"))
    if bench is not None:
        c = bench["cases"]["US"]
        o = c.get("compare", {}).get(old, {})
        rows.append(("`bench score` US case (score + saliency, no box), 2 threads, machine LOADED",
                     f"{o['seconds']:.2f} s" if o else "—", f"{c['seconds']:.2f} s",
                     f"same run, repeats interleaved; load average {bench.get('load_avg_1min')} on "
                     f"{bench.get('cpu_count')} cores; target 0.5 s"))
    body = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    head = (f"## 0b. Ultrasound default: `{les}` replaces `{old}` (issue 12)\n\n"
            "Both models on the same images: the 418 busi-dev lesion images (out of fold: the lesion model's\n"
            "own 5-fold CV combined with the whole-image model's out-of-fold scores of each of its 5\n"
            f"partitions, `resources/models/{les}/{src}`), and the same 37 mimbcd-dev ultrasound\n"
            "images through the shipped `Predictor` (`docs/results/us_default_comparison.json`, written by\n"
            "`breast-engine evaluate --config configs/us_lesion_lite0_busi.toml --protocol compare`). mimbcd-dev\n"
            "has **no pathology**: the label is BI-RADS (mostly the UTA11 AI assistant's), patient = unit,\n"
            "13–26 patients: one or two patients move the AUC by 0.03–0.08. Both pointing games are out of\n"
            f"fold (the previous default's: {pw_how}, fold models of its recipe through `Predictor.saliency`).\n\n"
            f"| check | `{old}` (previous default) | `{les}` | difference / note |\n|---|---|---|---|\n")
    nb, ob = lso["no box"]["paired_delong_diff_se_z_p"], lso["outline box"]["paired_delong_diff_se_z_p"]
    pbox = [p["paired_diff_se_z_p"] for p in w["box"]["partitions"]]
    fin_mean = sum(p["ensemble"][0] for p in w["finder"]["partitions"]) / len(w["finder"]["partitions"])
    crop = (m.get("leave_source_out_birads") or {}).get("lesion_crop_only", {}).get("no box")
    crop_txt = f"the lesion crop alone: {crop[0]:.3f} without a box" if crop else "the lesion crop alone: see the card"
    att = f"{100 * pt['attention_all'][0]:.0f} %" if pt else "n/a"
    tail = ("\n\n**Decision.** The rule for the switch: at least equal on the other-hospital check and not\n"
            f"worse on BUSI. Other hospital: {nb[0]:+.3f} without a box (p = {nb[3]:.2f}) and {ob[0]:+.3f} with the "
            f"outline box (p = {ob[3]:.2f}):\nwithin what 13–26 patients can show. BUSI: with a reader's box "
            f"Δ {min(x[0] for x in pbox):+.3f} … {max(x[0] for x in pbox):+.3f} (p ≤ {max(x[3] for x in pbox):.3f}), "
            "without one see the row above. The lesion model\n"
            f"also points at the lesion ({att} of all lesions out of fold vs the previous default's "
            f"{pc(pw['gradcam_all'])} {pw_how},\nand the centre guess), is calibrated and warns on unfamiliar input. So\n"
            f"**`{les}` is the US default** (`resources/models/defaults.json`). Caveats the switch does not\n"
            f"remove: its transfer to mimbcd-dev comes from the whole-image context it averages in ({crop_txt});\n"
            "the issue's goal \"≥ 0.85 at other hospitals\" holds here only as a BI-RADS figure, with lower CI\n"
            f"bounds {min(lso[k][les][1] for k in ('no box', 'outline box')):.3f}–"
            f"{max(lso[k][les][1] for k in ('no box', 'outline box')):.3f}; \"≥ 0.95 on BUSI\" holds by CV with a reader's box only ({fin_mean:.3f} without one);\n"
            "no pathology-labelled external set was available.\n")
    return head + body + tail


def _us_finder_arms() -> str:
    """Issue 12: the no-box (finder) arms of the US lesion recipe, each a config."""
    d = _load("us_finder_arms")
    if d is None:
        return _missing("us_finder_arms", "see configs/experiments/us_lesion_finder_*.toml")

    def c3(v: list[float]) -> str:
        return f"{v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f})"

    rows = []
    for key, r in d["arms"].items():
        cells = []
        for w in ("w0.5", "w0.7"):
            ps = r[w]["partitions"]
            cells.append(f"{r[w]['mean']:.4f} ({min(a[0] for a in ps):.3f}–{max(a[0] for a in ps):.3f})")
        dd = r["w0.7"]["paired_vs_previous_build_diff_se_z_p"]
        rows.append(f"| {r['label']} | `{r['run']}` | {c3(r['lesion_only'])} | {cells[0]} | {cells[1]} | "
                    f"{r['nested_weight']['mean']:.4f} | {min(x[0] for x in dd):+.4f} … {max(x[0] for x in dd):+.4f}, "
                    f"p {min(x[3] for x in dd):.3f}–{max(x[3] for x in dd):.3f} |")
    alone = d["whole_image_model_alone"]
    return ("\n## 0c. Ultrasound without a reader's box: finder arms (issue 12)\n\n"
            f"{d['what']}. {d['how']}. Each arm is a config (`breast-engine evaluate --config ... --protocol recipe`; "
            "the weight-0.7 column adds `--set ship.context_weight_finder=0.7`);"
            " the shipped default takes the mass-weighted regions with context weight 0.7 without a box "
            "(`configs/us_lesion_lite0_busi.toml`). The whole-image model alone: "
            f"{min(alone):.3f}–{max(alone):.3f} over its partitions (mean {sum(alone) / len(alone):.4f}).\n\n"
            "| arm | run | lesion crop alone, pooled OOF AUC | + context, weight 0.5: mean (range) over 5 partitions | "
            "weight 0.7 | nested weight (mean) | weight 0.7 vs previous build (paired DeLong Δ, p per partition) |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "None reaches the goal \"≥ 0.95 on unseen BUSI\" without a box: the best arm by every partition (three "
            "regions mass-weighted, context 0.7) gives 0.941–0.954, mean 0.947 — a consistent gain over the previous "
            "build (+0.007 to +0.012 per partition) but within 0.01 of the whole-image model alone; the finder's "
            "box (Dice 0.67, IoU ≥ 0.5 in 66 %) is the limit. Mirror TTA and margins change nothing beyond noise.\n")


def _ci(a: float, c: list[float]) -> str:
    return f"{a:.3f} ({c[0]:.3f}–{c[1]:.3f})"


def _qi112() -> str:
    """The 112 px BASIC/REM pairs (one per seed; the seed also draws the split), with a paired DeLong test."""
    pairs = [(sfx, _load(f"paper_qi112_basic{sfx}"), _load(f"paper_qi112_rem{sfx}")) for sfx in ("", "_s1")]
    pairs = [(sfx, b, r) for sfx, b, r in pairs if b and r]
    if not pairs:
        return ("a 112 px BASIC/REM pair (same configs, `--set 'data.image_size=[112,112]'`) was started but "
                "stopped half-way through its one epoch (5.7 min) to free the CPU before the session's deadline: "
                "no figure, BASIC vs REM remains untested.")
    import numpy as np
    from engine.stats.delong import paired_delong_test

    sc = {r["seed"]: r for r in (_load("paper_qi112_paired") or {}).get("runs", [])}
    rows = []
    for sfx, b, r in pairs:
        seed = 1 if sfx else 0
        cb, cr = b["pooled"]["calls"], r["pooled"]["calls"]
        test = "—"
        if seed in sc:
            t = sc[seed]
            diff, se, _, pv = paired_delong_test(np.array(t["truth"]), np.array(t["rem"]), np.array(t["basic"]))
            test = f"{diff:+.3f} (95 % CI {diff - 1.96 * se:+.3f} to {diff + 1.96 * se:+.3f}), p = {pv:.3f}"
        rows.append(f"| {seed} | {b['n_lesions']} | {_ci(b['pooled']['auc'], b['pooled']['auc_ci'])} | "
                    f"{_ci(r['pooled']['auc'], r['pooled']['auc_ci'])} | {test} | "
                    f"{cb['sensitivity']:.3f} / {cb['specificity']:.3f} · {cr['sensitivity']:.3f} / {cr['specificity']:.3f} | "
                    f"{b['wall_s']:.0f} s / {r['wall_s']:.0f} s |")
    return ("at 112 px both grids are 2 × 2 and the CAM is spatial (`tests/engine/test_paper_training.py::"
            "test_basic_and_rem_differ_where_the_cam_is_spatial` proves the two configs then give different "
            "scores and losses from the same initial weights, and identical ones at 80 px). The pair ran at 112 px "
            "(same configs, `--set 'data.image_size=[112,112]'` and `--set train.seed=S`; the seed also draws "
            "the split, so the two seeds have different test images), **1 epoch, the same reduced budget**:\n\n"
            "| seed | test images | BASIC AUC (DeLong 95 % CI) | REM AUC (DeLong 95 % CI) | REM − BASIC, paired DeLong | "
            "sens / spec at the validation-F2 threshold (BASIC · REM) | wall (BASIC / REM) |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n**Reading (112 px).** REM scored higher than BASIC in both seeds; the paired "
            "difference's CI and p-value are in the table: one epoch, 84 test images per seed, so this is a direction "
            "at a tiny budget, not the paper's result (at 1 epoch BASIC's own AUC is barely above chance). Code: main at "
            "008db96, before this issue's port of the training datasets to `spec.transforms()`.")


def _mri_reading(ms: list[tuple[str, dict[str, Any] | None]]) -> str:
    """Which tasks' DeLong CIs exclude chance, per run (no claim beyond that)."""
    names = ["malignancy", "mammary gland", "other benign", "IDC", "other malignant"]
    parts = []
    for k, m in ms:
        if not m or "per_task" not in m:
            continue
        above = [names[t["task"]] for t in m["per_task"] if t["auc"] is not None and t["auc_ci"][0] > 0.5]
        label = "with the empty mask" if k == "mri_3x3" else "without it"
        parts.append(f"{label}: CI above 0.5 for {', '.join(above) if above else 'no task'}")
    return ("Tasks whose 95 % CI excludes chance — " + "; ".join(parts) + ". The two columns differ by less "
            "than their CIs, so no claim is made that the empty mask helps at this budget.") if parts else ""


def _an_heatmap() -> str:
    """An 2019 heatmap FCN with and without the local map (docs/results/an_heatmap_mias_*.json)."""
    b, a = _load("an_heatmap_mias_base"), _load("an_heatmap_mias_local")
    if not (a and b):
        return ""
    bd = a["budget"]

    def m(r: dict[str, Any] | None, fmt: str = ".4f") -> str:
        return "—" if not r else f"{r['mean']:{fmt}} ({r['ci'][0]:{fmt}}–{r['ci'][1]:{fmt}})"

    def d(k: str, fmt: str = "+.4f") -> str:
        x = a.get("paired", {}).get(k)
        return "—" if not x else f"{x['mean']:{fmt}} ({x['ci'][0]:{fmt}} to {x['ci'][1]:{fmt}}), p = {x['p_two_sided']:.3f}"

    def verdict(k: str, lower_better: bool) -> str:
        x = a.get("paired", {}).get(k)
        if not x:
            return f"{k}: no paired figure"
        lo, hi = x["ci"]
        if lo <= 0 <= hi:
            return f"{k}: the paired 95 % CI includes 0 (no difference shown)"
        better = (hi < 0) == lower_better
        return f"{k}: the local map {'helped' if better else 'hurt'} (paired 95 % CI excludes 0)"

    rows = [
        "### An 2019 heatmap FCN with and without the local map (mini-MIAS; their Table 3 analogue, CPU budget)\n",
        f"`breast-engine evaluate --protocol an_heatmap` (`engine/train/an_heatmap.py`) on mias-dev "
        f"({a['n_images']} images with a located finding or none, {a['n_lesion_images']} with a finding, "
        f"{a['n_patients']} women; Suckling 1994, research use only), {a['folds']}-fold CV grouped by woman "
        f"(mdbNNN odd/even pairs). **Budget**: {bd['crop']} px nipple-aligned crop, FCN input {bd['fcn_input']} px, "
        f"output {bd['fcn_output']}², widths {bd['fcn_widths']}, {bd['epochs']} epochs (paper: 256 px in, 32² out, "
        f"DDSM). Target: annotation discs at the output size, Gaussian blur σ = {bd['sigma']} output px. Local map: "
        f"tissue classifier (`an_patch_classifier`, widths {bd['patch_widths']}) trained per fold on the training "
        f"women's patches only ({bd['patch']} px at ×{bd['patch_scale']}, `engine.models.an.sample_patches`: positives "
        f"on the annotation centres, very large ones ignored; negatives every {bd['neg_stride']} px whose square meets no "
        f"annotation disc, empty space kept as in the paper, {bd['max_negatives']} "
        f"kept per image at random, {bd['patch_epochs']} epochs), run every {bd['map_stride']} px ({bd['map_grid'][0]}² map). "
        "MSE is per image at the output size; pointing = the heatmap's peak inside an annotation circle "
        "(images with a finding). 95 % CIs: patient bootstrap; the difference is paired per image.\n",
        "| FCN | MSE, all images | MSE, images with a finding | pointing | wall |",
        "|---|---|---|---|---|",
        f"| without local map (`{b['model']}`) | {m(b['mse'])} | {m(b['mse_lesion'])} | {m(b['pointing'], '.3f')} | {b['wall_s']:.0f} s |",
        f"| with local map (`{a['model']}`) | {m(a['mse'])} | {m(a['mse_lesion'])} | {m(a['pointing'], '.3f')} | {a['wall_s']:.0f} s |",
        f"| with − without (paired) | {d('mse')} | — | {d('pointing', '+.3f')} | |",
        f"| reference: all-zero heatmap / random peak | {a['mse_zero_prediction']:.4f} | — | {a['pointing_chance']:.3f} | |",
        "",
        f"**Reading.** A CPU budget ({bd['epochs']} epochs, {bd['fcn_input']} px, tiny widths, one seed): a direction, "
        f"not An et al.'s Table 3. {verdict('mse', True)}; {verdict('pointing', False)}. Against the references: "
        f"the FCNs' MSE is {b['mse']['mean'] / a['mse_zero_prediction']:.0%} (without) and "
        f"{a['mse']['mean'] / a['mse_zero_prediction']:.0%} (with) of an all-zero heatmap's"
        f"{' (little pixel-wise signal at this budget)' if a['mse']['mean'] > 0.9 * a['mse_zero_prediction'] else ''}, while the peak falls inside a lesion {b['pointing']['mean'] / a['pointing_chance']:.0f}× "
        f"(without) and {a['pointing']['mean'] / a['pointing_chance']:.0f}× (with) as often as a random peak. The tissue "
        f"classifier alone (the local map's peak, held-out women) points at a lesion in {m(a.get('local_map_pointing'), '.3f')}. "
        "Training images' local maps are in-sample for their fold's classifier (as in the paper's two-stage pipeline); "
        "test images' maps are not. The with-map figures move with the tissue classifier's random draws (one seed): "
        "with negatives judged against each disc's bounding square and an inline batch augmentation, pointing was "
        "0.185 (0.094–0.281), paired +0.031 (-0.063 to +0.136); with the exact disc test (the same counts, other "
        "negatives) 0.138 (0.062–0.227), paired -0.015 (-0.125 to +0.092); the table is the run with the one sampler "
        "and per-patch augmentation through the one pipeline (`[augment]`). Every paired CI includes 0. A larger "
        "input (the paper's 256 px), wider nets, more epochs and seeds are needed before any claim about the local map.",
        f"\n*Commands:* `{b['command']}`; `{a['command']}`  \n*Device:* {a['device']} (shared 2-core machine, loaded)\n",
    ]
    return "\n".join(rows)


def _paper_protocols() -> list[str]:
    """Section 5: the paper protocols run through `breast-engine evaluate` configs (issue 11 item 7).

    Reads docs/results/paper_*.json (the `evaluate --json` output of each config, plus its command).
    """
    ci = _ci
    o: list[str] = []
    o.append("""## 5. Paper protocols at a reduced budget (issue 11 item 7)

    Each row is one `breast-engine evaluate` run of the named config under `configs/` (no script),
    on the shared 2-core CPU (`OMP_NUM_THREADS=1`, other jobs running). AUCs are pooled out-of-fold,
    lesion level unless stated, with the DeLong 95 % CI. Budgets are far below the papers': these
    runs show that each protocol runs end to end and what it gives at this budget, not the papers'
    figures.
    """)
    h=_load("paper_habib_loo")
    if h:
        p={x["part"]:x for x in h["per_part"]}
        c=h["pooled"]["calls"]
        o.append(f"""### Habib 2020 — leave-one-lesion-out, basic CNN, **SYNTHETIC** paired MG+US lesions

    Config `habib_fusion_synthetic_loo.toml`, `--protocol loo`: {h['n_lesions']} SYNTHETIC lesions
    (12 benign / 12 malignant), 48² patches, basic CNN per modality, two-step procedure (3 epochs per-modality
    nets, then 3 epochs fusion net on frozen descriptors), BCE, Adam 1e-3; each of the {h['folds']} folds
    trains on 23 lesions (of which a grouped 20 % is held out to select the epoch) and scores the held-out one.
    Per-modality scores come from the same trained joint model (`part_scores`: MG head, US head,
    fusion head), beside the fused one. Wall {h['wall_s']:.0f} s.

    | score | LOO AUC (DeLong 95 % CI), 24 lesions |
    |---|---|
    | MG net alone | {ci(p['MG']['auc'], p['MG']['auc_ci'])} |
    | US net alone | {ci(p['US']['auc'], p['US']['auc_ci'])} |
    | fused (MG+US) | {ci(p['fused']['auc'], p['fused']['auc_ci'])} |

    Fused calls at the per-fold F2 thresholds (chosen on each fold's validation lesions):
    sensitivity {c['sensitivity']:.3f}, specificity {c['specificity']:.3f}, F2 {c['f2']:.3f}.

    **Reading.** With 24 lesions every CI is wide; only the per-modality AUCs below 0.5 are outside
    chance, and they are *below* it. That is the known leave-one-out bias for weak learners (leaving a
    malignant lesion out makes the training set benign-heavy, so the weak net scores it lower; Habib's
    120 lesions and a real learner shrink it), not evidence that the modalities are informative in
    reverse. The fused head's {p['fused']['auc']:.3f} does not exclude chance. The paper's GoogLeNet half was not run
    (no offline ImageNet GoogLeNet weights; `pretrained=True` stops with a message naming the file).

    *Command:* `OMP_NUM_THREADS=1 breast-engine evaluate --config configs/habib_fusion_synthetic_loo.toml --protocol loo --json`
    """)
    rows=[]
    qn = next((q["n_images"] for q in (_load(f"paper_qi_{v}") for v in ("basic", "rem")) if q), "the")
    for v in ("basic","rem"):
        q=_load(f"paper_qi_{v}")
        if q:
            p=q["pooled"]; c=p["calls"]
            rows.append(f"| {'BASIC (lam = 0: no region enhance)' if v=='basic' else 'REM (lam = 1: region enhance, each net gets the other CAM)'} | `qi_mtnet_snnet_{v}_reduced.toml` | {q['n_lesions']} | {ci(p['auc'], p['auc_ci'])} | {c['sensitivity']:.3f} / {c['specificity']:.3f} / {c['f2']:.3f} | {q['wall_s']:.0f} s |")
        else:
            rows.append(f"| {v.upper()} | `qi_mtnet_snnet_{v}_reduced.toml` | — | **did not finish in this session** | — | — |")
    o.append("""### Qi 2019 — Mt-Net + Sn-Net, BASIC vs REM (Algorithm 1 cross-training), BUSI busi-dev

    Qi's fixed 4/6–1/6–1/6 split (`--protocol split`), all """+str(qn)+""" busi-dev images (normal kept as
    non-malignant; malignancy is the Mt-Net target; the Sn-Net target is the explicit
    *lesion-present* proxy `mask_nonempty`, since BUSI has no solid-nodule label). **Reduced budget:**
    80 px (paper 299), Mt-Net repeats 1/1/1 (paper 10/20/9), Sn-Net Inception-v3 from scratch (no
    offline ImageNet weights; the paper fine-tuned ImageNet weights), **1 epoch** (paper: until the F2
    stopped improving), Adadelta, batch 10, one prediction per image (no five-crop). The two configs
    differ only in `model.cfg.lam`. Test AUC over the test sixth's images (the image is the lesion).

    | variant | config | test images | AUC (DeLong 95 % CI) | sens / spec / F2 at the validation-F2 threshold | wall |
    |---|---|---|---|---|---|
    """ + "\n".join(rows) + """

    **Reading: this pair does NOT compare BASIC with REM.** The two runs gave bit-identical scores.
    At 80 px both nets' last feature grid is 1 × 1, so the CAM (Eq. 3, min-max normalised per
    image) is identically 0 and the region-enhance term λ·F_cam(CAM) vanishes: REM degenerates to
    BASIC. A spatial CAM needs at least 112 px here (2 × 2 grid); """ + _qi112() + """ The paper's
    budget (299 px, full depth, ImageNet Sn-Net, F2 early stopping) did not run.

    *Commands:* `OMP_NUM_THREADS=1 breast-engine evaluate --config configs/qi_mtnet_snnet_basic_reduced.toml --protocol split --json` (and `..._rem_reduced.toml`)
    """)
    names=["malignancy","mammary gland","other benign","IDC","other malignant"]
    ms=[(k, _load(f"paper_{k}")) for k in ("mri_3x3", "mri_3x3_noempty")]
    head="| task | " + " | ".join(("empty mask on lesion-free slices" if k=="mri_3x3" else "no attention term on lesion-free slices") + " — AUC (DeLong 95 % CI) [copy]" for k,_ in ms) + " |"
    o.append("""### MRI 2019 — supervised attention, 3×3 CV, per-task best copies, empty mask, **SYNTHETIC** slices

    Config `mri_attention_synthetic_3x3.toml`, `--protocol repeated-kfold --folds 3 --repeats 3`:
    36 SYNTHETIC lesion slices + 12 SYNTHETIC lesion-free slices (a slice of a generated volume
    outside its lesion: no box, every task 0). ResNet-18 trunk from scratch (paper: ResNet-50
    ImageNet), 64 px, 3 epochs per fold, Adam 1e-3, class-balanced attention BCE. Lesion-free slices
    are supervised towards an all-zero attention mask (`model.cfg.attention_empty_mask = true`, the
    paper's empty mask); the second column is the same run with that term off. Each task k is scored
    by its own best-validation copy (`best_auc_<k>`; "[copy]" lists what the nine folds used: a fold
    whose validation part has no positive of task k falls back to the malignancy copy). Per-task
    AUCs are image level, one out-of-fold score per image (mean over the 3 repeats), n = 48.
    """)
    o.append(head); o.append("|---|" + "---|"*len(ms))
    for k in range(5):
        cells=[]
        for _,m in ms:
            if m and "per_task" in m:
                t=m["per_task"][k]; cells.append(f"{ci(t['auc'], t['auc_ci'])} [{', '.join(t['copy'])}]" if t["auc"] is not None else "—")
            else: cells.append("**did not finish in this session**")
        o.append(f"| {names[k]} ({k}) | " + " | ".join(cells) + " |")
    cells=[]
    for _,m in ms:
        cells.append(f"{ci(m['pooled']['auc'], m['pooled']['auc_ci'])}; fold mean {m['fold_mean']['auc']['mean']:.3f}; wall {m['wall_s']:.0f} s" if m else "—")
    o.append("| malignancy, lesion level (main score, best `auc_0` copy) | " + " | ".join(cells) + " |")
    o.append("""
    **Reading.** SYNTHETIC data, 48 slices, 3 epochs: a procedure check, not a result. """ + _mri_reading(ms) + """

    *Command:* `OMP_NUM_THREADS=1 breast-engine evaluate --config configs/mri_attention_synthetic_3x3.toml --protocol repeated-kfold --folds 3 --repeats 3 --json` (second column: `--set model.cfg.attention_empty_mask=false`)
    """)
    hm = _an_heatmap()
    if hm:
        o.append(hm)
    else:
        o.append("""### An 2019 heatmap FCN\n
    *Not run in this session*: `breast-engine evaluate --config configs/an_heatmap_mias_base.toml --protocol an_heatmap --folds 3`
    and the same with `configs/an_heatmap_mias_local.toml --paired` on its result.
    """)
    o.append("""### Not run in this session

    - **Habib GoogLeNet**: needs ImageNet GoogLeNet weights, not available offline.
    - **Qi at the paper's budget** (299 px, 10/20/9 repeats, ImageNet Sn-Net, five-crop test) and the
      **MRI paper's ResNet-50 on real MRI**: beyond this CPU; no real labelled breast-MRI set with
      the challenge's five tasks is available here.
    """)
    # the strings above are indented with the code: markdown must not see leading spaces
    return ["\n".join(line.strip() for line in block.split("\n")) for block in o]


def render(doc: Path = DOC) -> Path:
    """Write docs/results.md (or ``doc``)."""
    out: list[str] = ["""# Results — reduced-budget reproductions of the seed papers' comparisons

Generated by `python scripts/render_results.py` from the JSON files in `docs/results/` (each
written by the command shown under its table; commands naming `scripts/*.py` ran the lab scripts
that issue 11 replaced by configs, see section 0). **Every experiment ran
on the project's shared 2-core CPU with no GPU**: input sizes, epochs, folds and model sizes are
far below the papers' budgets. These are honest numbers for this code at this budget, not
reproductions of the papers' figures, and they must not be compared with them one to one.
Intervals are mean ± half-width of the Student-t 95 % CI over folds unless marked DeLong
(pooled out-of-fold scores). Folds are stratified; mini-MIAS folds are grouped by patient;
BUSI has no patient ids, so the image is the lesion unit (CV may be optimistic). Wall times were
measured while other engineers' jobs loaded the same 2 cores (load average 3–9), so they vary by
up to 20× between identical steps and are not speed benchmarks.
"""]

    out.append(SECTION0)
    out.append(_us_default_decision())
    out.append(_us_finder_arms())

    # 1. Shipped defaults -----------------------------------------------------------------
    out.append("## 1. Shipped default models (cross-validated)\n")
    us = _load("us_cv")
    if us:
        out.append("### Ultrasound — EfficientNet-Lite0 (ImageNet) on BUSI busi-dev, 5-fold CV (benign 282 / malignant 136; normal excluded)\n")
        out.append("| recipe | fold AUCs | AUC mean ± 95 % CI | pooled OOF AUC | wall |")
        out.append("|---|---|---|---|---|")
        for k, v in us["recipes"].items():
            out.append(f"| {k} | {', '.join(f'{a:.3f}' for a in v['fold_aucs'])} | {_mci(v['mean_ci'])} | "
                       f"{v['pooled_auc']:.3f} | {v['wall_s']:.0f} s |")
        mu = _load("us_multi_cv")
        if mu:
            for c, v in mu["C_grid"].items():
                out.append(f"| frozen + logistic C={c}, Qi multi-input {mu['size']} px (5 crops) | "
                           f"{', '.join(f'{a:.3f}' for a in v['fold_auc'])} | "
                           f"{v['auc_mean']:.3f} ± {(v['auc_ci95'][1] - v['auc_ci95'][0]) / 2:.3f} "
                           f"({v['auc_ci95'][0]:.3f}–{v['auc_ci95'][1]:.3f}) | {v['pooled_auc']:.3f} | "
                           f"features {mu['feature_s']:.0f} s |")
            for S in (96, 160, 224):
                fs = _load(f"us_multi_cv_{S}")
                if fs:
                    v = fs["C_grid"][str(fs["best_C"])]
                    out.append(f"| frozen + logistic C={fs['best_C']} (best of {len(fs['C_grid'])}), multi-input {S} px | "
                               f"{', '.join(f'{a:.3f}' for a in v['fold_auc'])} | "
                               f"{v['auc_mean']:.3f} ± {(v['auc_ci95'][1] - v['auc_ci95'][0]) / 2:.3f} "
                               f"({v['auc_ci95'][0]:.3f}–{v['auc_ci95'][1]:.3f}) | {v['pooled_auc']:.3f} | "
                               f"features {fs['feature_s']:.0f} s |")
            mt = _load("us_multi_tail_cv")
            if mt:
                out.append(f"| multi-input {mt['size']} px + tail fine-tune (blocks {mt['split']}–15 + head, "
                           f"{mt['cfg']['epochs']} epochs) | {', '.join(f'{a:.3f}' for a in mt['fold_auc'])} | "
                           f"{mt['auc_mean']:.3f} ± {(mt['auc_ci95'][1] - mt['auc_ci95'][0]) / 2:.3f} "
                           f"({mt['auc_ci95'][0]:.3f}–{mt['auc_ci95'][1]:.3f}) | {mt['pooled_auc']:.3f} | "
                           f"cache {mt['cache_s']:.0f} s + {mt['train_s']:.0f} s |")
            ft = _load("us_finetune_cv")
            if ft:
                r = ft["runs"][0]
                out.append(f"| fine-tune ALL layers, multi-input {ft['cfg']['size']} px, {ft['cfg']['epochs']} epochs "
                           f"(AdamW, cosine, label smoothing 0.1) | {', '.join(f'{a:.3f}' for a in r['fold_auc'])} | "
                           f"{r['auc_mean']:.3f} ± {(r['auc_ci95'][1] - r['auc_ci95'][0]) / 2:.3f} "
                           f"({r['auc_ci95'][0]:.3f}–{r['auc_ci95'][1]:.3f}) | {r['pooled_auc']:.3f} | {r['wall_s']:.0f} s |")
            if mt:
                out.append(f"\nTail row: `{mt['command']}`.")
            if ft:
                out.append(f"\nFine-tune row: `{ft['command']}`.")
            out.append(f"\nMulti-input rows: `{mu['command']}` (other sizes: same command with `--size S`). "
                       "Sizes and C were chosen on these same folds — "
                       f"{sum(len((_load(f'us_multi_cv_{S}') or {}).get('C_grid', {})) for S in (96, 160, 224)) + len(mu['C_grid'])} "
                       "configurations — so these figures carry a selection bias of maybe 0.01.")
        ml = _load("us_multilayer_cv")
        if ml:
            out.append("\n**Shipped default** (`efficientnet_lite0_multiscale`): frozen Lite0 read at blocks 10/14/15 + head, "
                       "each 128 px crop also seen at 112 px, one logistic head per scale. Its design was chosen on "
                       "partition 0 (the folds above), so it is also scored on 4 new partitions of the same images, "
                       "side by side with the previous default:\n")
            out.append("| recipe | partition | fold AUCs | AUC mean ± 95 % CI | pooled OOF AUC |")
            out.append("|---|---|---|---|---|")
            for name, rec in ml["recipes"].items():
                for r in rec["runs"]:
                    out.append(f"| {name} | {r['partition_seed']} | {', '.join(f'{a:.3f}' for a in r['fold_auc'])} | "
                               f"{r['auc_mean']:.3f} ± {(r['auc_ci95'][1] - r['auc_ci95'][0]) / 2:.3f} "
                               f"({r['auc_ci95'][0]:.3f}–{r['auc_ci95'][1]:.3f}) | {r['pooled_auc']:.3f} |")
                out.append(f"| {name} | **mean of 5** | | **{rec['auc_mean_over_partitions']:.3f}** "
                           f"(range {rec['auc_range'][0]:.3f}–{rec['auc_range'][1]:.3f}) | "
                           f"{rec['pooled_auc_mean_over_partitions']:.3f} |")
            out.append(f"\n*Command:* `{ml['command']}` (features {ml['feature_s']:.0f} s, whole CV {ml['cv_s']:.0f} s)  \n"
                       f"*Device:* {ml['device']}\n")
        spec_f = MODELS / "us_effnet_lite0_busi" / "spec.json"
        if spec_f.is_file():
            m = json.loads(spec_f.read_text())["metrics"]
            out.append(f"\nShipped recipe `{m['recipe']}`: pooled AUC {m['pooled_auc']:.3f} (DeLong 95 % CI "
                       f"{m['pooled_auc_delong_ci95'][0]:.3f}–{m['pooled_auc_delong_ci95'][1]:.3f}); at the F2-selected "
                       f"threshold {m['f2_threshold']:.3f}: sensitivity {m['sensitivity']:.3f}, specificity "
                       f"{m['specificity']:.3f}, F2 {m['f2']:.3f}.")
        out.append("\n`linear`: logistic regression on frozen pooled features; `linear_ms`: frozen multi-scale "
                   "avg+max pooled features; `tailNN`: MBConv blocks NN–15 + head fine-tuned on cached augmented "
                   "views of the frozen trunk (scripts/effnet_tail.py). Trunk cache: "
                   f"{us.get('cache_s', 0):.0f} s.")
        out.append(f"\n*Command:* `{us['command']}`  \n*Device:* {us['device']}\n")
    else:
        out.append(_missing("us_cv", "scripts/train_default_us.py"))
    mg = _load("mg_cv")
    if mg:
        out.append("### Mammography lesion classifier (An-style lesion crops; mini-MIAS mias-dev, 72 located abnormalities, 5-fold grouped by patient, 5 repeats)\n")
        out.append("| C (logistic) | pooled OOF AUC, mean over 5 repeats |")
        out.append("|---|---|")
        for c, a in mg["C_grid"].items():
            out.append(f"| {c} | {a:.3f} |")
        r0 = mg["repeats"][0]["summary"]
        out.append(f"\nShipped C = {mg['best_C']} (chosen by this CV: mildly optimistic). Seed 0: pooled AUC "
                   f"{r0['pooled_auc']:.3f} (DeLong {r0['pooled_auc_delong_ci95'][0]:.3f}–{r0['pooled_auc_delong_ci95'][1]:.3f}); "
                   f"fold AUC mean {r0['auc_mean']:.3f} ± {(r0['auc_ci95'][1] - r0['auc_ci95'][0]) / 2:.3f}. "
                   "A modest model, as expected from 72 mixed-type abnormalities.")
        out.append(f"\n*Command:* `{mg['command']}`  \n*Feature extraction:* {mg['feature_s']:.0f} s{' (' + mg['note'] + ')' if mg.get('note') else ''}  \n*Device:* {mg['device']}\n")
    out.extend(_mg_arms())
    mri = _load("mri_eval")
    if mri:
        out.append("### MRI supervised attention — **SYNTHETIC** data only\n")
        out.append(f"Trained on {mri['n_train']} synthetic slices, tested on {mri['n_test']} independent synthetic slices "
                   f"({mri['size']} px, {len(mri['epochs'])} epochs, from scratch).\n")
        if mri.get("note"):
            out.append(f"Model: `{mri.get('model', 'mri_attention_resnet50')}`. {mri['note']}\n")
        out.append("| task | AUC | DeLong 95 % CI |")
        out.append("|---|---|---|")
        for k, v in mri["per_task_auc_ci"].items():
            out.append(f"| {k} | {v[0]:.3f} | {v[1]:.3f}–{v[2]:.3f} |")
        out.append(f"\nChallenge weighted score (SYNTHETIC): {mri['weighted_score']:.3f}. Training {mri['train_s']:.0f} s.")
        out.append(f"\n*Command:* `{mri['command']}`  \n*Device:* {mri['device']}\n")

    # 2. BUSI comparisons -------------------------------------------------------------------
    out.append("## 2. BUSI (busi-dev): Hijab VGG16 variants, EfficientNet-Lite0, Habib basic CNN, Qi multi-input\n")
    rows = []
    if us:
        for k, v in us["recipes"].items():
            rows.append(f"| EfficientNet-Lite0 ImageNet, {k} (224 px) | 5 | {_mci(v['mean_ci'])} | see §1 |")
    mu2 = _load("us_multi_cv")
    if mu2:
        b = mu2["C_grid"][str(mu2["best_C"])]
        rows.append(f"| EfficientNet-Lite0 ImageNet frozen + logistic, Qi multi-input {mu2['size']} px (previous default) | 5 | "
                    f"{b['auc_mean']:.3f} ± {(b['auc_ci95'][1] - b['auc_ci95'][0]) / 2:.3f} ({b['auc_ci95'][0]:.3f}–{b['auc_ci95'][1]:.3f}) | "
                    f"sens {b['sensitivity']:.3f} / spec {b['specificity']:.3f} / F2 {b['f2']:.3f} |")
    ml2 = _load("us_multilayer_cv")
    if ml2:
        rec = next(iter(ml2["recipes"].values()))
        r0 = rec["runs"][0]
        rows.append(f"| EfficientNet-Lite0 ImageNet frozen, blocks 10/14/15 + head, 2 scales, Qi multi-input 128 px "
                    f"(**shipped default**) | 5 × 5 partitions | {rec['auc_mean_over_partitions']:.3f} (partition 0: "
                    f"{r0['auc_mean']:.3f}, {r0['auc_ci95'][0]:.3f}–{r0['auc_ci95'][1]:.3f}) | "
                    f"sens {r0['sensitivity']:.3f} / spec {r0['specificity']:.3f} / F2 {r0['f2']:.3f} (partition 0) |")
    bc = _load("busi_basic_cnn")
    if bc:
        rows.append(f"| Habib basic CNN from scratch ({bc['size']} px, {bc['epochs']} epochs) | {bc['folds']} | "
                    f"{_mci(bc['mean_ci'])} | sens {bc['sensitivity']:.3f} / spec {bc['specificity']:.3f} / F2 {bc['f2']:.3f} |")
    out.append("| model | folds | AUC mean ± 95 % CI | at F2-selected threshold (pooled OOF) |")
    out.append("|---|---|---|---|")
    out += rows
    hj = _load("hijab_scratch")
    if hj:
        out.append(f"| Hijab VGG16 from scratch (**reduced budget**: {hj['size']} px, {hj['epochs']} epochs, batch {hj['batch']}) | "
                   f"{hj['folds']} | {_mci(hj['mean_ci'])} | sens {hj['sensitivity']:.3f} / spec {hj['specificity']:.3f} / "
                   f"F2 {hj['f2']:.3f}; pooled AUC {hj['pooled_auc']:.3f} (DeLong {hj['pooled_auc_delong_ci95'][0]:.3f}–"
                   f"{hj['pooled_auc_delong_ci95'][1]:.3f}) |")
    else:
        out.append("| Hijab VGG16 from scratch | — | not run | — |")
    out.append("| Hijab VGG16 ImageNet frozen features + classifier | — | not run: no offline ImageNet VGG16 weights | — |")
    out.append("| Hijab VGG16 ImageNet, last conv block fine-tuned (SGD) | — | not run: no offline ImageNet VGG16 weights | — |")
    out.append("\nHijab's two transfer variants need ImageNet VGG16 weights, which are not available offline "
               "here (torchvision's cache is empty and nothing may be downloaded); the registered models "
               "`hijab_vgg16_frozen` / `hijab_vgg16_finetune` train when weights are present (`breast-engine train "
               "--config configs/busi_hijab_vgg16_finetune.toml`). The EfficientNet-Lite0 rows are the "
               "transfer-learning comparison we could afford (frozen features vs partially fine-tuned).")
    if bc:
        out.append(_footer(bc))
    else:
        out.append(_missing("busi_basic_cnn", "python scripts/reproduce_results.py run busi_basic_cnn --folds 5 --size 96 --epochs 15"))
    if hj:
        out.append(f"\n**Hijab VGG16 from scratch — reduced budget.** `hijab_vgg16_scratch` (13 conv layers, no batch "
                   f"norm, Kaiming init as torchvision's VGG, grayscale input), the paper's augmentation preset "
                   f"`{hj['augment']}`, {hj['optimizer']}, plain cross-entropy, {hj['folds']}-fold stratified "
                   f"grouped CV (StratifiedGroupKFold) on n = {hj['n']} ({hj['n_malignant']} malignant), "
                   f"{hj['size']}² input, {hj['epochs']} epochs ({hj['mean_epoch_s']:.0f} s per epoch). The paper "
                   "trained its from-scratch baseline (\"a small network\", not necessarily VGG16) on its own ~1000 images "
                   "for 50 epochs (batch 20, lr 1e-3) and reports accuracy 0.79 / AUC 0.81; their VGG16 transfer "
                   "models reached AUC 0.97 (frozen) and 0.98 (fine-tuned) at VGG16's native input (224 px). This run "
                   f"is a much smaller budget ({hj['size']} px, {hj['epochs']} epochs, 2 shared CPU cores), so it is a "
                   "lower bound for this code, not a replication. "
                   f"Per-fold AUC: {', '.join(f'{a:.3f}' for a in hj['fold_auc'])}; F2-selected threshold "
                   f"{hj['f2_threshold']:.3f} on the pooled out-of-fold scores.")
        out.append(f"\n**Reading.** The from-scratch VGG16 ranks malignant above benign better than chance (pooled "
                   f"DeLong CI {hj['pooled_auc_delong_ci95'][0]:.3f}–{hj['pooled_auc_delong_ci95'][1]:.3f} excludes 0.5) "
                   "but is under-trained: the training loss only fell from ≈ 0.69 to ≈ 0.63 in these epochs, and the "
                   f"F2-selected threshold calls almost every lesion malignant (sensitivity {hj['sensitivity']:.3f}, "
                   f"specificity {hj['specificity']:.3f}). It is no better than Habib's basic CNN at 96 px and far "
                   "below the ImageNet EfficientNet-Lite0 rows, consistent with Hijab's finding that training from "
                   "scratch is the weakest of their three approaches; the absolute gap to their 0.81 is not "
                   "comparable (different data, 64 px, 10 of 50 epochs).")
        out.append(_footer(hj))
    else:
        out.append(_missing("hijab_scratch", "python scripts/reproduce_results.py run hijab_scratch --folds 3 --size 64 --epochs 10"))
    qi = _load("qi_multicrop")
    out.append("### Qi 2019: basic vs multi-input (five-crop) prediction\n")
    if qi:
        out.append(f"BUSI busi-dev, {qi['folds']}-fold CV, n = {qi['n']} ({qi['n_malignant']} malignant). Frozen ImageNet "
                   f"EfficientNet-Lite0 features + logistic regression (Mt-Net itself is too costly to train on this CPU). "
                   f"basic: whole image resized to {qi['size']}²; multi-input: shorter side to {qi['size']}, classifier "
                   "trained on random crops, prediction = mean over five uniformly spaced crops.\n")
        out.append("| prediction | AUC mean ± 95 % CI | pooled AUC (DeLong CI) | sens | spec | F2 (F2-selected threshold) |")
        out.append("|---|---|---|---|---|---|")
        for k, v in qi["methods"].items():
            out.append(f"| {k} | {_mci(v['mean_ci'])} | {v['pooled_auc']:.3f} ({v['pooled_auc_delong_ci95'][0]:.3f}–"
                       f"{v['pooled_auc_delong_ci95'][1]:.3f}) | {v['sensitivity']:.3f} | {v['specificity']:.3f} | {v['f2']:.3f} |")
        out.append(_footer(qi))
    else:
        out.append(_missing("qi_multicrop", "python scripts/reproduce_results.py run qi_multicrop --folds 5 --size 128"))

    # 3. mini-MIAS --------------------------------------------------------------------------
    out.append("## 3. mini-MIAS (mias-dev): An 2019 tissue-patch classifier at three magnifications\n")
    an = _load("an_patches")
    if an:
        out.append(f"Patches {an['patch']}² on the down-scaled mammogram: positives at the annotation centres, "
                   f"negatives on a stride-32 grid inside the breast and off every annotation ({an['neg_per_image']} "
                   f"random negatives kept per image), {an['folds']}-fold CV grouped by patient, threshold 0.5.\n")
        out.append("| magnification | positives | negatives | AUC mean ± 95 % CI | TP | FP | TN | FN |")
        out.append("|---|---|---|---|---|---|---|---|")
        for s, v in an["scales"].items():
            tp, fp, tn, fn = v["confusion_total"]
            out.append(f"| ×{s} | {v['n_pos']} | {v['n_neg']} | {_mci(v['mean_ci'])} | {tp} | {fp} | {tn} | {fn} |")
        out.append("\n**Reading.** With 72 positive patches per scale, a network trained from scratch for "
                   f"{next(iter(an['scales'].values()))['epochs']} epochs on the CPU ranks abnormal tissue only "
                   "slightly above chance (fold AUCs vary widely) and, at the fixed 0.5 threshold, calls nothing "
                   "abnormal (TP = 0): the counts show an under-trained classifier, not An et al.'s Table 2 "
                   "(their data and training budget were far larger). A longer/GPU run of the same "
                   "command is needed before comparing magnifications.")
        out.append(_footer(an))
    else:
        out.append(_missing("an_patches", "python scripts/reproduce_results.py run an_patches --folds 3 --epochs 8"))
    if mg:
        out.append(f"Lesion classifier (box crops, benign vs malignant): pooled OOF AUC {sum(mg['repeat_pooled_auc']) / len(mg['repeat_pooled_auc']):.3f} "
                   "(mean over 5 repeats; see §1).\n")

    # 4. Habib synthetic --------------------------------------------------------------------
    out.append("## 4. Habib 2020 fusion on the **SYNTHETIC** paired MG+US set\n")
    hb = _load("habib_synthetic")
    if hb:
        out.append(f"**SYNTHETIC data** (`engine.data.synthetic.synthetic_paired_lesion`: margin irregularity drives "
                   f"malignancy in both modalities, independent per-modality noise). n = {hb['n']} lesions, "
                   f"{hb['patch']}² patches, basic CNN (Fig. 3) per modality, {hb['folds']}-fold CV, {hb['epochs']} epochs.\n")
        out.append("| training | loss | MG alone | US alone | fused (MG+US) |")
        out.append("|---|---|---|---|---|")
        for k, v in hb["configs"].items():
            mode, loss = k.split("/")
            out.append(f"| {mode.replace('_', '-')} | {loss.upper()} | {_mci(v['mg']['mean_ci'])} | "
                       f"{_mci(v['us']['mean_ci'])} | {_mci(v['fused']['mean_ci'])} |")
        out.append("\n**Reading.** At this budget the from-scratch basic CNN learns little: US alone reaches "
                   "≈ 0.56–0.62, MG alone stays at chance, and fusion does not help (its CIs span chance). The "
                   "signal exists in the geometry — the mask's margin-irregularity feature (1 − solidity) "
                   "separates the classes with AUC ≈ 0.9 (`tests/engine/test_synthetic.py`) — but at 48 px "
                   "the mammographic rendering (edge blur, power-law parenchyma) hides the margin from a small "
                   "CNN trained for 8 epochs on 600 lesions. No conclusion on two-step vs end-to-end or BCE "
                   "vs LMCL can be drawn from these numbers; a larger patch, more epochs or a GPU budget are "
                   "needed.")
        out.append(_footer(hb))
    else:
        out.append(_missing("habib_synthetic", "python scripts/reproduce_results.py run habib_synthetic --folds 3 --epochs 10"))
    out.extend(_paper_protocols())
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(out), encoding="utf-8")
    print(f"wrote {doc}")
    return doc


if __name__ == "__main__":
    render()
