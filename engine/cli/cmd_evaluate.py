"""`breast-engine evaluate --config FILE.toml --protocol loo|kfold|repeated-kfold|split`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

# Same as engine.train.protocols.PROTOCOLS; kept literal so `breast-engine --help` does not import torch.
PROTOCOLS = ("loo", "kfold", "repeated-kfold", "split")
# "recipe": the cross-validation of a linear_probe / supervised_attention config (engine.train.recipes),
# the figures `breast-engine ship` writes into the model card.
# "an_heatmap": An 2019's heatmap regression (MSE + pointing, engine.train.an_heatmap).
# "saliency": out-of-fold pointing game of a linear_probe config's overlay (engine.train.saliency_oof).
# "compare": a us_lesion config's shipped model vs its whole-image context model (engine.train.us_compare);
#   a config with a [compare] section: its recipe configs paired per grouped-CV partition (DeLong;
#   engine.train.compare).
# "reliability": a calibrated recipe's reliability diagram (raw vs cross-fitted Platt).
# "ood_smoke": an installed MG lesion model's OOD distances on CBIS-DDSM / mini-MIAS (engine.train.ood_smoke).
RESULT_PROTOCOLS = ("saliency", "compare", "reliability", "ood_smoke")
# "mri_localiser": the supervised-attention MRI model as a lesion localiser on real outlined
# slices (pointing + box IoU, engine.train.mri_localiser).
ALL_PROTOCOLS = (*PROTOCOLS, "recipe", "an_heatmap", *RESULT_PROTOCOLS, "mri_localiser")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``evaluate`` command."""
    p = sub.add_parser(
        "evaluate",
        help="cross-validate a model on labelled images (AUC with DeLong 95%% CI)",
        description="Run a seed paper's protocol: leave-one-out (Habib), stratified k-fold, "
        "repeated k-fold (3x3, MRI paper) or the fixed 4/6-1/6-1/6 split (Qi). Folds are grouped "
        "by lesion/patient; a lesion's score is the mean over its images. Prints per-fold and "
        "pooled AUC with DeLong 95%% CI, sensitivity/specificity/F2 at the F2-selected threshold, "
        "and writes an ROC plot. --protocol an_heatmap (data.kind mias_heatmap / synthetic_heatmap): An 2019 "
        "heatmap regression, per-image MSE and pointing with patient-bootstrap 95%% CIs, --paired for the "
        "with-vs-without local map difference. --protocol saliency (a linear_probe config on busi): out-of-fold "
        "pointing game of the model's overlay against the expert masks vs the centre guess. --protocol compare "
        "(a us_lesion config): its shipped model vs the whole-image model it averages in, leave-source-out "
        "(mimbcd-dev BI-RADS), calibration and out-of-fold pointing; --out FILE.json keeps the result. "
        "--protocol compare (a config with a [compare] section): its recipe configs paired per grouped-CV "
        "partition (DeLong), --out DIR. --protocol reliability / ood_smoke (a calibrated recipe / an MG lesion "
        "model's config): reliability diagram PNG / OOD distances on CBIS-DDSM and mini-MIAS, --out FILE. "
        "--protocol mri_localiser (data.kind mimbcd_outlines): the "
        "MRI attention model as a lesion localiser on real outlined slices, patient-grouped, pointing and box "
        "IoU with patient-bootstrap 95%% CIs.",
    )
    p.add_argument("--config", required=True, help="TOML configuration file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--protocol", required=True, choices=ALL_PROTOCOLS,
                   help="recipe = the protocol of a train.mode linear_probe / supervised_attention config "
                   "(its [ship] folds/repeats): the model card's figures")
    p.add_argument("--folds", type=int, default=5, help="k for kfold / repeated-kfold (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="repeats for repeated-kfold (default 3)")
    p.add_argument("--paired", metavar="RESULT.json",
                   help="an_heatmap: the other arm's result (same data, folds, seed): adds the paired differences")
    p.add_argument("--out", help="output folder (default: train.output_dir/eval-<model>-<protocol>-<time>); "
                   "an_heatmap / saliency / compare (us_lesion) / ood_smoke / mri_localiser: the result JSON file (or a "
                   "folder for result.json); compare ([compare] config): the folder for compare.json and arms/<name>.json; "
                   "reliability: the PNG (or a folder for reliability.png)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.progress import tqdm_progress
    from engine.train.config import load_config
    from engine.train.data import check_readable, load_dataset
    from engine.train.loop import build_model, seed_everything
    from engine.train.protocols import cross_validate, split_indices

    cfg = load_config(args.config, args.overrides)
    if args.protocol == "mri_localiser" or cfg.data.kind == "mimbcd_outlines":
        return _run_mri_localiser(args, cfg)
    if args.protocol in RESULT_PROTOCOLS:
        return _run_result(args, cfg)
    if args.protocol == "an_heatmap" or cfg.data.kind in ("mias_heatmap", "synthetic_heatmap"):
        return _run_heatmap(args, cfg)
    if args.protocol == "recipe" or cfg.train.mode != "finetune":
        return _run_recipe(args, cfg)
    # Fail fast: model name, data, labels, folds — before any training.
    seed_everything(cfg.train.seed)
    build_model(cfg)
    ds = load_dataset(cfg)
    check_readable(ds)
    split_indices(args.protocol, ds.labels, ds.groups, folds=args.folds, repeats=args.repeats,
                  seed=cfg.train.seed)
    out = Path(args.out) if args.out else (
        Path(cfg.train.output_dir) / f"eval-{cfg.model.name}-{args.protocol}-{time.strftime('%Y%m%d-%H%M%S')}")
    with tqdm_progress(f"evaluate {args.protocol}", disable=args.quiet) as cb:
        res = cross_validate(cfg, ds, protocol=args.protocol, folds=args.folds, repeats=args.repeats,
                             progress=cb, run_dir=out)
    res["command"] = _command()
    if args.json:
        from engine.cli.cmd_train import _finite

        print(json.dumps(_finite(res), allow_nan=False))
        return 0
    p = res["pooled"]
    print(f"{res['model']} | {res['protocol']} | {res['n_lesions']} lesions, {res['n_images']} images "
          f"| {res['device']} | {res['wall_s']:.1f} s")
    for f in res["per_fold"]:
        a = "  n/a" if f["auc"] is None else f"{f['auc']:.3f}"
        print(f"  repeat {f['repeat']} fold {f['fold']}: AUC {a}  sens {_f(f['sensitivity'])} "
              f"spec {_f(f['specificity'])} F2 {_f(f['f2'])} (thr {f['threshold']:.3g})")
    lo, hi = p["auc_ci"]
    print(f"pooled AUC {_f(p['auc'])} (95% CI {_f(lo)}-{_f(hi)}); calls: sens {_f(p['calls']['sensitivity'])} "
          f"spec {_f(p['calls']['specificity'])} F2 {_f(p['calls']['f2'])}")
    print(f"ROC plot: {res['roc_png']}")
    return 0


def _run_heatmap(args: argparse.Namespace, cfg: object) -> int:
    """An 2019 heatmap regression: per-image MSE and pointing with patient-bootstrap CIs."""
    from engine.errors import ConfigError
    from engine.progress import tqdm_progress
    from engine.train.an_heatmap import evaluate_an_heatmap, load_result
    from engine.train.config import TrainConfig
    from engine.train.data import load_dataset

    assert isinstance(cfg, TrainConfig)
    if args.protocol != "an_heatmap":
        raise ConfigError(f"data.kind = {cfg.data.kind} is scored by --protocol an_heatmap, not {args.protocol}")
    if cfg.data.kind not in ("mias_heatmap", "synthetic_heatmap"):
        raise ConfigError(f"--protocol an_heatmap needs data.kind = mias_heatmap or synthetic_heatmap, "
                          f"not {cfg.data.kind}")
    paired = load_result(args.paired) if args.paired else None
    ds = load_dataset(cfg)
    with tqdm_progress("evaluate an_heatmap", disable=args.quiet) as cb:
        res = evaluate_an_heatmap(cfg, ds, folds=args.folds, paired=paired, progress=cb)
    res["command"] = _command()
    if cfg.data.kind == "mias_heatmap":
        from engine.data.mias import MIAS_CITATION

        res["citation"] = MIAS_CITATION
        res["licence"] = "mini-MIAS Licence.txt (research use only) travels with the data: " + \
            str(Path(cfg.data.path) / "Licence.txt")
    if args.out:
        args.out = str(_write_result(res, args.out))
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['model']} | an_heatmap {res['folds']}-fold | {res['n_images']} images, {res['n_patients']} "
          f"patients{' | SYNTHETIC' if res['synthetic'] else ''} | {res['wall_s']:.0f} s")
    for key in ("mse", "mse_lesion", "pointing"):
        m = res.get(key)
        if m:
            print(f"  {key}: {m['mean']:.4f} (95% patient-bootstrap CI {m['ci'][0]:.4f}-{m['ci'][1]:.4f}, "
                  f"n = {m['n_images']})")
    for key, d in (res.get("paired") or {}).items():
        if isinstance(d, dict):
            print(f"  paired {key} ({res['paired']['a_minus_b']}): {d['mean']:+.4f} "
                  f"({d['ci'][0]:+.4f} to {d['ci'][1]:+.4f}), p = {d['p_two_sided']:.3f}")
    if args.out:
        print(f"result: {args.out}")
    return 0


def _run_result(args: argparse.Namespace, cfg: object) -> int:
    """``saliency`` / ``compare``: one JSON result (``--out``), reproducible from the config."""
    from engine.progress import tqdm_progress
    from engine.train.config import TrainConfig

    assert isinstance(cfg, TrainConfig)
    if args.protocol in ("reliability", "ood_smoke") or (args.protocol == "compare" and cfg.compare.reference):
        return _run_mg_result(args, cfg)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    with tqdm_progress(f"evaluate {args.protocol}", disable=args.quiet) as cb:
        if args.protocol == "saliency":
            from engine.train.saliency_oof import evaluate_saliency_oof

            res = evaluate_saliency_oof(cfg, progress=cb)
        else:
            from engine.train.us_compare import compare_us_models

            res = compare_us_models(cfg, progress=cb)
    res["command"] = _command()
    if args.out:
        out = _write_result(res, args.out)
    if args.json:
        print(json.dumps(res))
    else:
        print(json.dumps({k: v for k, v in res.items() if k not in ("peaks_xy", "leave_source_out_mimbcd")}, indent=1))
        if args.out:
            print(f"result: {out}")
    return 0


def _command() -> str:
    """The command line that made a result (written into it, so it can be re-run)."""
    return "breast-engine " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "breast-engine evaluate"


def _write_result(res: dict[str, object], out_arg: str) -> Path:
    """Write a protocol result to ``out_arg`` (a ``.json`` file, or a folder for ``result.json``)."""
    out = Path(out_arg)
    out = out if out.suffix == ".json" else out / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return out


def _run_mri_localiser(args: argparse.Namespace, cfg: object) -> int:
    """The MRI attention model as a lesion localiser: pointing and box IoU with patient-bootstrap CIs."""
    from engine.errors import ConfigError
    from engine.progress import tqdm_progress
    from engine.train.config import TrainConfig
    from engine.train.mri_localiser import evaluate_mri_localiser

    assert isinstance(cfg, TrainConfig)
    if args.protocol != "mri_localiser":
        raise ConfigError(f"data.kind = {cfg.data.kind} is scored by --protocol mri_localiser, not {args.protocol}")
    with tqdm_progress("evaluate mri_localiser", disable=args.quiet) as cb:
        res = evaluate_mri_localiser(cfg, folds=args.folds, progress=cb)
    res["command"] = _command()
    if args.out:
        args.out = str(_write_result(res, args.out))
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"mri_localiser {res['folds']}-fold | {res['n_slices']} slices, {res['n_patients']} patients | "
          f"input {res['budget']['input']} | {res['wall_s']:.0f} s | chance pointing {res['chance_pointing']:.4f}")
    for name, m in res["metrics"].items():
        h, i = m["hit"], m["iou"]
        print(f"  {name}: pointing {h['mean']:.3f} ({h['ci'][0]:.3f}-{h['ci'][1]:.3f}), "
              f"box IoU {i['mean']:.3f} ({i['ci'][0]:.3f}-{i['ci'][1]:.3f})")
    if args.out:
        print(f"result: {args.out}")
    return 0


def _run_recipe(args: argparse.Namespace, cfg: object) -> int:
    """The recipe's own cross-validation (the same function ``ship`` uses for the card)."""
    from engine.errors import ConfigError
    from engine.progress import tqdm_progress
    from engine.train.config import TrainConfig
    from engine.train.recipes import evaluate_recipe

    assert isinstance(cfg, TrainConfig)
    if cfg.train.mode == "finetune":
        raise ConfigError("--protocol recipe needs train.mode = linear_probe or supervised_attention")
    if args.protocol != "recipe":
        raise ConfigError(f"train.mode = {cfg.train.mode} is evaluated by its own protocol: use --protocol recipe")
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    with tqdm_progress("evaluate recipe", disable=args.quiet) as cb:
        if cfg.train.mode == "us_lesion":
            from engine.train.us_lesion import evaluate_us_lesion

            metrics = evaluate_us_lesion(cfg, progress=cb)
        elif cfg.train.mode == "lp_finetune":
            from engine.train.lp_finetune import evaluate_lp_finetune

            metrics = evaluate_lp_finetune(cfg, progress=cb)
        else:
            metrics, _ = evaluate_recipe(cfg, progress=cb)
    if args.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k}: {v}")
    return 0


def _run_mg_result(args: argparse.Namespace, cfg: object) -> int:
    """compare ([compare] config) / reliability / ood_smoke: one result file (``--out``, required)."""
    from engine.errors import ConfigError
    from engine.progress import tqdm_progress
    from engine.train.config import TrainConfig

    assert isinstance(cfg, TrainConfig)
    if not args.out:
        raise ConfigError(f"--protocol {args.protocol} needs --out (the result it writes)")
    out = Path(args.out)
    command = _command()
    res: dict[str, object]
    with tqdm_progress(f"evaluate {args.protocol}", disable=args.quiet) as cb:
        if args.protocol == "compare":
            from engine.train.compare import run_compare

            res = run_compare(cfg, out, progress=cb)
            written = out / "compare.json"
        elif args.protocol == "reliability":
            from engine.metrics.report import save_reliability
            from engine.train.compare import evaluate_arm

            metrics = evaluate_arm(cfg, progress=cb)
            if "calibration_raw" not in metrics:
                raise ConfigError(f"{args.config}: no calibration to draw (set ship.calibrate = 'platt')")
            written = out if out.suffix == ".png" else out / "reliability.png"
            save_reliability(metrics, written, title=f"{cfg.ship.name or cfg.model.name}: out-of-fold (partition 0)")
            res = {k: metrics[k] for k in ("calibration_raw", "calibration_platt_crossfit", "n", "n_malignant")}
        else:
            from engine.train.ood_smoke import ood_smoke

            res = {**ood_smoke(cfg, progress=cb), "command": command}
            written = _write_result(res, args.out)
    res["command"] = command
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.protocol}: {written}")
    return 0


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
