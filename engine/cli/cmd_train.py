"""`breast-engine train --config FILE.toml [--set key=value ...] [--resume RUN]`."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from engine.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``train`` command."""
    p = sub.add_parser(
        "train",
        help="train a registered model from a TOML config (writes a run folder)",
        description="Train a registered model. The run folder holds the resolved config, "
        "checkpoints {model, optimizer, scheduler, epoch, config}, metrics.csv, the best "
        "checkpoint per selection metric and train.log. A grouped, stratified "
        "data.val_fraction of the data is held out for model selection.",
    )
    p.add_argument("--config", help="TOML configuration file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its last checkpoint")
    p.add_argument("--run-dir", help="run folder (default: train.output_dir/<model>-<time>)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.progress import tqdm_progress
    from engine.train.config import load_config
    from engine.train.distributed import init_from_env
    from engine.train.data import check_readable, load_dataset
    from engine.train.loop import build_model, fit, seed_everything
    from engine.train.protocols import holdout_split

    # Under torchrun (WORLD_SIZE > 1) join the env:// process group; fit() then uses DDP.
    dinfo = init_from_env()
    resume = bool(args.resume)
    if resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.toml there (is it a run folder?)")
        cfg = load_config(run_dir / "config.toml", args.overrides)
    else:
        if not args.config:
            raise ConfigError("give --config FILE.toml (or --resume RUN)")
        cfg = load_config(args.config, args.overrides)
        name = cfg.train.run_name or f"{cfg.model.name or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(args.run_dir) if args.run_dir else Path(cfg.train.output_dir) / name

    # Fail fast on the model and the data before any training.
    seed_everything(cfg.train.seed)
    model = build_model(cfg)
    ds = load_dataset(cfg)
    check_readable(ds)
    tr_idx, va_idx = holdout_split(ds.labels, ds.groups, cfg.data.val_fraction, cfg.train.seed)
    train_ds = ds.subset(tr_idx, train=True)
    val_ds = ds.subset(va_idx, train=False) if va_idx.size else None
    if dinfo.world_size > 1 and not resume:
        # every rank must agree on the folder rank 0 writes (timestamps may differ)
        import torch.distributed as dist

        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    if dinfo.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "split.json").write_text(json.dumps(
            {"train": [ds.samples[i].path for i in tr_idx], "val": [ds.samples[i].path for i in va_idx]}))

    with tqdm_progress("train", disable=args.quiet or not dinfo.is_main) as cb:
        res = fit(model, train_ds, val_ds, cfg=cfg, progress=cb, run_dir=run_dir, resume=resume)
    if not dinfo.is_main:
        return 0
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "model": cfg.model.name,
        "epochs": len(res.history),
        "n_train": len(train_ds),
        "n_val": len(val_ds) if val_ds is not None else 0,
        "last": res.history[-1] if res.history else {},
        "best": {m: {"epoch": b.epoch + 1, "value": b.value, "path": b.path} for m, b in res.best.items()},
        "device": res.device,
        "wall_s": round(res.wall_s, 3),
    }
    if args.json:
        print(json.dumps(_finite(summary), allow_nan=False))
    else:
        print(f"run folder: {run_dir}")
        for m, b in summary["best"].items():
            print(f"best {m}: {b['value']:.4f} at epoch {b['epoch']} -> {b['path']}")
        print(f"{summary['epochs']} epochs on {res.device} in {res.wall_s:.1f} s")
    return 0


def _finite(x: Any) -> Any:
    """NaN/inf (e.g. an AUC on a one-class validation set) -> null, so the JSON is strict."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
