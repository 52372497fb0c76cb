"""`breast-engine ship CONFIG --out resources/models/NAME`: rebuild a shipped model from its config."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``ship`` command."""
    p = sub.add_parser(
        "ship",
        help="train a config's recipe on all its data and write a weights folder (weights, spec, card)",
        description="Cross-validate the config's recipe (the model card's metrics), train on all the "
        "data, write weights.pt + spec.json (sha256, typed preprocessing) + MODEL_CARD.md, and check "
        "that the app's predictor reproduces the recipe's scores. Same config and seed -> same bytes.",
    )
    p.add_argument("config", help="TOML configuration with a [ship] section (see configs/)")
    p.add_argument("--out", required=True, help="weights folder to write, e.g. resources/models/NAME")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.progress import tqdm_progress
    from engine.train.config import load_config
    from engine.train.ship import ship

    cfg = load_config(args.config, args.overrides)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    with tqdm_progress("ship", disable=args.quiet or not sys.stderr.isatty()) as cb:
        res = ship(cfg, args.out, config_path=args.config, progress=cb)
    if args.json:
        print(json.dumps(res))
    else:
        m = res["metrics"]
        print(f"wrote {res['folder']} (sha256 {res['sha256'][:12]}…); "
              f"parity with the app's predictor {res['parity_max_abs_diff']:.1e}")
        if "auc_mean" in m:
            print(f"CV AUC {m['auc_mean']:.4f} {m['auc_ci95']}; pooled {m['pooled_auc']:.4f} "
                  f"{m['pooled_auc_delong_ci95']}; mean over partitions {m['auc_mean_over_partitions']:.4f}")
        elif "test_auc_delong_ci95" in m:
            print(f"test AUC per task {m['test_auc_delong_ci95']}; weighted {m['weighted_score']}")
    return 0
