"""Regenerate the saliency figures of docs/saliency/ on REAL images.

Figures (PNG, < 300 KB each):

* ``mg_gradcam_mias.png``: the shipped MG default (``resources/models/defaults.json``) scores
  the mini-MIAS dataset lesion box of a few abnormalities; Grad-CAM of its malignancy output,
  mapped back to image pixels by :meth:`engine.inference.Predictor.analyse`, over the box
  crop, the dataset circle drawn on top.
* ``us_gradcam_busi.png``: the shipped US default on BUSI images (whole image, as it was
  trained), the dataset lesion mask outlined.
* ``an_entropy_mias.png``: An et al. 2019 entropy-gradient saliency ``|dH/dx|`` of the VGG-style
  tissue classifier (:class:`engine.models.an.AnPatchClassifier`), which is NOT shipped: it is
  trained here for the figure on mini-MIAS tissue patches (An's sampling), patient-disjoint from
  the shown images, and its held-out patch AUC is printed and written to ``figures.json``.

Usage::

    python tools/make_saliency_figures.py [--out docs/saliency] [--mias ../shared/data/mias-dev]
        [--busi ../shared/data/busi-dev] [--an-epochs 6] [--threads 1]

Everything is deterministic (seeds fixed); the An classifier is cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

MG_CASES = ("mdb023", "mdb028", "mdb005")  # malignant mass, malignant mass, benign mass (two circles)
US_CASES = ("malignant_10", "benign_4")


def _save(fig: Any, path: Path, dpi: int = 90) -> None:
    """Save as PNG, lowering the resolution until the file is < 300 KB."""
    while True:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        kb = path.stat().st_size / 1024
        if kb < 300 or dpi <= 40:
            break
        dpi -= 10
    plt.close(fig)
    print(f"wrote {path} ({kb:.0f} KB, {dpi} dpi)")


def _peak(m: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(r), int(c)


# -- MG: shipped default, Grad-CAM in the lesion box ------------------------------------------------
def mg_figure(mias: Path, out: Path, info: dict[str, Any]) -> None:
    """Grad-CAM of the shipped MG default inside the mini-MIAS lesion boxes."""
    from engine.data.mias import circle_box, load_mias
    from engine.inference import load_predictor
    from engine.io.reader import read_image

    pred = load_predictor("MG")
    spec = pred.spec
    by_ref = {m.refnum: m for m in load_mias(mias)}
    rows = []
    for ref in MG_CASES:
        m = by_ref[ref]
        img = read_image(m.path)
        for ab in m.abnormalities:
            if ab.centre is None or ab.radius is None:
                continue
            box = circle_box(ab.centre, ab.radius, img.pixels.shape[:2])
            score, smap = pred.analyse(img, "gradcam", box=box)
            rows.append((ref, ab, img, box, score, smap))
            break  # one abnormality per image
    fig, axes = plt.subplots(len(rows), 2, figsize=(7.2, 3.5 * len(rows)))
    stats = []
    for k, (ref, ab, img, box, score, smap) in enumerate(rows):
        px = img.pixels
        x0, y0, x1, y1 = smap.box or (0, 0, px.shape[1], px.shape[0])
        sal = smap.map[y0:y1, x0:x1]
        crop = px[y0:y1, x0:x1]
        (cr, cc), rad = ab.centre, ab.radius
        pr, pc = _peak(sal)
        dist = float(np.hypot(pr + y0 - cr, pc + x0 - cc))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = (yy - cr) ** 2 + (xx - cc) ** 2 <= rad ** 2
        frac = float(sal[inside].sum() / max(sal.sum(), 1e-9))
        edge = min(pr, pc, sal.shape[0] - 1 - pr, sal.shape[1] - 1 - pc)
        stats.append({"image": ref, "kind": ab.kind, "severity": ab.severity, "score": round(score, 3),
                      "region": [x0, y0, x1, y1], "peak_to_centre_px": round(dist, 1), "radius_px": rad,
                      "saliency_mass_inside_circle": round(frac, 3), "circle_area_frac_of_region":
                      round(float(inside.mean()), 3), "peak_distance_to_region_edge_px": int(edge)})
        ax = axes[k, 0]
        ax.imshow(px, cmap="gray")
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1))
        ax.set_title(f"{ref}: {ab.kind} {'malignant' if ab.severity == 'M' else 'benign'}", fontsize=9)
        ax.axis("off")
        ax = axes[k, 1]
        ax.imshow(crop, cmap="gray", extent=(x0, x1, y1, y0))
        ax.imshow(sal, cmap="jet", alpha=0.4, extent=(x0, x1, y1, y0), vmin=0, vmax=1)
        ax.add_patch(plt.Circle((cc, cr), rad, fill=False, ec="white", lw=1.2, ls="--"))
        ax.plot([pc + x0], [pr + y0], "w+", ms=10, mew=2)
        ax.set_title(f"Grad-CAM, p(malignant)={score:.2f} (thr {spec.threshold:.2f})", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"MG default {spec.name}: Grad-CAM ({rows[0][5].layer}) in the dataset box + 15% margin\n"
                 "dashed = mini-MIAS circle, + = saliency peak", fontsize=9)
    _save(fig, out / "mg_gradcam_mias.png")
    info["mg"] = {"model": spec.name, "cv_auc_mean_over_repeats": spec.metrics.get("cv_auc_mean_over_repeats"),
                  "layer": rows[0][5].layer, "cases": stats}


# -- US: shipped default on BUSI ----------------------------------------------------------------------
def us_figure(busi: Path, out: Path, info: dict[str, Any]) -> None:
    """Grad-CAM of the shipped US default on BUSI images (whole image, as trained)."""
    import cv2

    from engine.inference import load_predictor
    from engine.io.reader import read_image
    from engine.models.weights import default_weights

    if default_weights("US") is None:
        print("no US default shipped: skipping the BUSI figure")
        return
    pred = load_predictor("US")
    spec = pred.spec
    fig, axes = plt.subplots(1, len(US_CASES), figsize=(4.2 * len(US_CASES), 3.6))
    stats = []
    for ax, name in zip(np.atleast_1d(axes), US_CASES):
        img = read_image(busi / "images" / f"{name}.png")
        mask = cv2.imread(str(busi / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) > 0
        score, smap = pred.analyse(img, "gradcam")
        sal = smap.map
        pr, pc = _peak(sal)
        frac = float(sal[mask].sum() / max(sal.sum(), 1e-9))
        stats.append({"image": name, "score": round(score, 3), "peak_in_mask": bool(mask[pr, pc]),
                      "saliency_mass_inside_mask": round(frac, 3), "mask_area_frac": round(float(mask.mean()), 3)})
        px = img.pixels if img.pixels.ndim == 2 else img.pixels[..., 0]
        ax.imshow(px, cmap="gray")
        ax.imshow(sal, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.contour(mask, levels=[0.5], colors="white", linewidths=1, linestyles="--")
        ax.plot([pc], [pr], "w+", ms=10, mew=2)
        ax.set_title(f"BUSI {name}: p(malignant)={score:.2f} (thr {spec.threshold:.2f})", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"US default {spec.name}: Grad-CAM, whole image; dashed = BUSI lesion mask, + = peak", fontsize=9)
    _save(fig, out / "us_gradcam_busi.png")
    info["us"] = {"model": spec.name, "cv_auc_mean": spec.metrics.get("auc_mean"),
                  "cv_pooled_auc": spec.metrics.get("pooled_auc"), "cases": stats}


# -- An: entropy-gradient saliency of the tissue classifier ---------------------------------------
def _an_data(mias: Path, refs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """An 2019 tissue patches (256 px, MIAS native = x0.5 of a 2048 crop): positives at lesion
    centres (very large annotations ignored), negatives on a stride-32 grid off the annotations."""
    import cv2

    from engine.models.an import sample_patches

    xs, ys = [], []
    rng = np.random.default_rng(0)
    for m in refs:
        img = cv2.imread(str(m.path), cv2.IMREAD_GRAYSCALE)
        les = [(a.centre[1], a.centre[0], float(a.radius or 0.0)) for a in m.abnormalities if a.centre is not None]
        # breast-only negatives (>= 70 % breast): the full-image map below reads the breast only
        p, lab, _ = sample_patches(img, les, scale=1.0, patch=256, stride=32, min_breast=0.7)
        neg = np.nonzero(lab == 0)[0]
        keep = np.concatenate([np.nonzero(lab == 1)[0], rng.choice(neg, min(len(neg), 12), replace=False)])
        xs.append(p[keep])
        ys.append(lab[keep])
    return np.concatenate(xs), np.concatenate(ys)


def _augment(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """An's training augmentation: flips, 90-degree rotations, brightness, small offsets."""
    if rng.random() < 0.5:
        x = x.flip(-1)
    x = torch.rot90(x, rng.randrange(4), (-2, -1))
    x = x * (0.85 + 0.3 * rng.random())
    dy, dx = rng.randrange(-16, 17), rng.randrange(-16, 17)
    return torch.roll(x, (dy, dx), (-2, -1))


def train_an(mias: Path, cache: Path, epochs: int, info: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Train (or load) the An tissue classifier; returns it and the held-out images."""
    from engine.data.mias import load_mias
    from engine.models import get_model

    images = load_mias(mias)
    patients = sorted({m.patient for m in images})
    rng = random.Random(0)
    rng.shuffle(patients)
    held = set(patients[: len(patients) // 5])
    train_refs = [m for m in images if m.patient not in held]
    test_refs = [m for m in images if m.patient in held]
    torch.manual_seed(0)
    model = get_model("an_patch_classifier")
    ck = cache / f"an_patch_classifier_e{epochs}.pt"
    xte, yte = _an_data(mias, test_refs)
    if ck.is_file():
        model.load_state_dict(torch.load(ck, weights_only=True))
    else:
        xtr, ytr = _an_data(mias, train_refs)
        pos, neg = np.nonzero(ytr == 1)[0], np.nonzero(ytr == 0)[0]
        print(f"An patches: train {len(pos)} positives / {len(neg)} negatives; held-out {int(yte.sum())} / {int((yte == 0).sum())}")
        # PyTorch's default init leaves this 10-conv plain VGG (no batch norm) with a vanishing
        # signal (p = 0.5 +- 1e-6, loss stuck at log 2): LSUV-rescale it on training patches first.
        from engine.bench.patch_map import lsuv_rescale

        sel = np.concatenate([pos[:16], neg[:16]])
        lsuv_rescale(model, torch.from_numpy(xtr[sel]).float()[:, None] / 255.0, final_std=1.0)
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        t0 = time.time()
        for ep in range(epochs):
            model.train()
            # balanced epoch: every positive 4x (augmented) + as many negatives
            idx = np.concatenate([np.repeat(pos, 4), np.random.default_rng(ep).choice(neg, 4 * len(pos), replace=False)])
            np.random.default_rng(100 + ep).shuffle(idx)
            tot = 0.0
            for b in range(0, len(idx), 16):
                j = idx[b:b + 16]
                xb = torch.stack([_augment(torch.from_numpy(xtr[i]).float()[None] / 255.0, rng) for i in j])
                yb = torch.from_numpy(ytr[j])
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(j)
            print(f"epoch {ep + 1}/{epochs} loss {tot / len(idx):.3f} ({time.time() - t0:.0f} s)")
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), ck)
    model.eval()
    with torch.inference_mode():
        p = torch.cat([torch.softmax(model(torch.from_numpy(xte[i:i + 32]).float()[:, None] / 255.0), 1)[:, 1]
                       for i in range(0, len(xte), 32)]).numpy()
    from engine.stats.roc import empirical_auc

    auc = float(empirical_auc(yte, p))  # the one AUC
    info["an"] = {"model": "an_patch_classifier (trained here, not shipped)", "epochs": epochs,
                  "held_out_patients": len(held), "held_out_patch_auc": round(auc, 3),
                  "held_out_positives": int(yte.sum()), "held_out_negatives": int((yte == 0).sum())}
    print(f"An tissue classifier: held-out patch AUC {auc:.3f} ({int(yte.sum())} lesion / {int((yte == 0).sum())} normal patches)")
    return model, test_refs


def an_figure(mias: Path, out: Path, cache: Path, epochs: int, info: dict[str, Any]) -> None:
    """Patch-level |dH/dx| on held-out lesions and the full-image aggregation (An Sec. 4.2)."""
    import cv2

    from engine.imaging.breast import breast_mask as an_breast_mask
    from engine.models.an import entropy_gradient, local_map_dense, pixel_saliency

    model, test_refs = train_an(mias, cache, epochs, info)
    cands = [(m, a) for m in test_refs for a in m.abnormalities
             if a.centre is not None and a.radius is not None and 2 * a.radius <= 0.9 * 256]
    cands = cands[:3]
    fig, axes = plt.subplots(len(cands), 3, figsize=(10.5, 3.5 * len(cands)))
    axes = np.atleast_2d(axes)
    stats = []
    for k, (m, a) in enumerate(cands):
        img = cv2.imread(str(m.path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        (cr, cc), rad = a.centre, a.radius
        r0 = int(np.clip(round(cr) - 128, 0, img.shape[0] - 256))
        c0 = int(np.clip(round(cc) - 128, 0, img.shape[1] - 256))
        patch = torch.from_numpy(np.ascontiguousarray(img[r0:r0 + 256, c0:c0 + 256]))[None, None]
        sal, prob = entropy_gradient(model, patch)
        s = sal[0].numpy()
        s_vis = cv2.GaussianBlur(s, (0, 0), 2.0)
        # An evaluate the breast region: windows centred outside the breast mask (background,
        # never seen in training -- negatives were >= 70 % breast) are left out of the map.
        breast = an_breast_mask(img)
        local = local_map_dense(model, img)
        nr, nc = local.shape
        centres = breast[np.arange(nr)[:, None] * 64 + 128, np.arange(nc)[None, :] * 64 + 128]
        local = np.where(centres, local, 0.0).astype(np.float32)
        full = pixel_saliency(model, img, local) * breast
        pr, pc = _peak(s_vis)
        yy, xx = np.mgrid[0:256, 0:256]
        inside = (yy + r0 - cr) ** 2 + (xx + c0 - cc) ** 2 <= rad ** 2
        stats.append({"image": m.refnum, "kind": a.kind, "severity": a.severity, "patch_p_finding": round(float(prob[0]), 3),
                      "patch_saliency_mass_inside_circle": round(float(s[inside].sum() / max(s.sum(), 1e-12)), 3),
                      "circle_area_frac_of_patch": round(float(inside.mean()), 3),
                      "peak_to_centre_px": round(float(np.hypot(pr + r0 - cr, pc + c0 - cc)), 1),
                      "local_map_max_in_breast": round(float(local.max()), 3),
                      "local_map_at_lesion": round(float(local[int(np.clip((cr - 128) // 64, 0, nr - 1)),
                                                             int(np.clip((cc - 128) // 64, 0, nc - 1))]), 3),
                      "full_saliency_nonzero": bool(full.max() > 0)})
        ax = axes[k, 0]
        ax.imshow(img, cmap="gray")
        ax.imshow(np.ma.masked_where(~centres, local), cmap="jet", alpha=0.4, vmin=0, vmax=1,
                  extent=(96, 96 + 64 * nc, 96 + 64 * nr, 96))
        ax.add_patch(plt.Circle((cc, cr), rad, fill=False, ec="white", lw=1, ls="--"))
        ax.set_title(f"{m.refnum} {a.kind} {a.severity}: stride-64 local map\np(finding), windows centred in the breast", fontsize=8)
        ax.axis("off")
        ax = axes[k, 1]
        ax.imshow(patch[0, 0].numpy(), cmap="gray", extent=(c0, c0 + 256, r0 + 256, r0))
        ax.imshow(s_vis / max(float(s_vis.max()), 1e-12), cmap="hot", alpha=0.5, extent=(c0, c0 + 256, r0 + 256, r0))
        ax.add_patch(plt.Circle((cc, cr), rad, fill=False, ec="cyan", lw=1, ls="--"))
        ax.set_title(f"patch |dH/dx| (blur 2 px), p(finding)={float(prob[0]):.2f}", fontsize=8)
        ax.axis("off")
        ax = axes[k, 2]
        ax.imshow(img, cmap="gray")
        if full.max() > 0:
            f = cv2.GaussianBlur(full, (0, 0), 3.0)
            ax.imshow(np.ma.masked_less_equal(f, 0.15 * f.max()), cmap="hot", alpha=0.6)
        ax.add_patch(plt.Circle((cc, cr), rad, fill=False, ec="cyan", lw=1, ls="--"))
        ax.set_title("aggregated |dH/dx| of positive patches\ninside the local map (>= 0.5 max)", fontsize=8)
        ax.axis("off")
    fig.suptitle("An 2019 entropy-gradient saliency, tissue classifier trained here on mini-MIAS "
                 f"(held-out patch AUC {info['an']['held_out_patch_auc']:.2f}); held-out patients, dashed = dataset circle",
                 fontsize=9)
    _save(fig, out / "an_entropy_mias.png", dpi=80)
    info["an"]["cases"] = stats


def main(argv: list[str] | None = None) -> int:
    """Make every figure; prints where they went."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "saliency"))
    ap.add_argument("--mias", default=str(ROOT.parent / "shared" / "data" / "mias-dev"))
    ap.add_argument("--busi", default=str(ROOT.parent / "shared" / "data" / "busi-dev"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "breast-reader" / "saliency-figures"))
    ap.add_argument("--an-epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="mg,us,an")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "figures.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.is_file() else {}
    only = set(args.only.split(","))
    if "mg" in only:
        mg_figure(Path(args.mias), out, info)
    if "us" in only:
        us_figure(Path(args.busi), out, info)
    if "an" in only:
        an_figure(Path(args.mias), out, Path(args.cache), args.an_epochs, info)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
