"""Patient-grouped cross-validation of the supervised-attention MRI model as a lesion LOCALISER
on the real mimbcd-dev outlines (boxes from outlines). No malignancy output is trained or used.

    OMP_NUM_THREADS=1 .venv/bin/python tools/mri_localiser_cv.py [--data ../shared/data] [--out docs/results]

Data: every mapped MR outline of mimbcd-dev/outlines.json (25 outlines, 12 patients; approximate
localisations described by the source as AI findings, drawn on varying phases). Each outlined
slice is a sample; its target is the outline's bounding box.

Protocol: 4-fold GroupKFold by patient (no patient in both train and test). Compared:
  * ``brightest``: the brightest point of the smoothed slice (a no-learning baseline);
  * ``synthetic_zero_shot``: the shipped ``mri_attention_synthetic`` attention map as is;
  * ``finetuned``: that model's attention fine-tuned on the training folds' boxes (class-
    balanced attention BCE, flips, Adam), evaluated on the held-out patients.
Metrics per slice: pointing hit (attention argmax inside the box) and the IoU of the box of the
attention's largest component at half its maximum. 95 % CIs: cluster bootstrap over patients
(2,000 resamples). Tiny data: the CIs are wide; this is a feasibility measurement, not a
validation, and nothing is shipped from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

SIZE = 128


def load_samples(data: Path) -> list[dict]:
    from engine.io import read_image

    doc = json.loads((data / "mimbcd-dev/outlines.json").read_text())
    out = []
    for o in doc["outlines"]:
        if o["modality"] != "MR":
            continue
        img = read_image(data / "mimbcd-dev" / o["path"]).pixels.astype(np.float32)
        lo, hi = np.percentile(img, [0.5, 99.5])
        x = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
        rows, cols = x.shape
        t = F.interpolate(torch.from_numpy(x)[None, None], size=(SIZE, SIZE), mode="bilinear", antialias=True,
                          align_corners=False)[0, 0].numpy()
        x0, y0, x1, y1 = o["bbox"]
        box = np.array([x0 * SIZE / cols, y0 * SIZE / rows, x1 * SIZE / cols, y1 * SIZE / rows])
        out.append({"id": o["id"], "patient": o["patient_id"], "x": t, "box": box})
    return out


def box_of_map(m: np.ndarray) -> np.ndarray:
    """Box (x0, y0, x1, y1) of the largest component of ``m >= max/2``."""
    lab, n = ndimage.label(m >= 0.5 * m.max())
    if n == 0:
        return np.array([0, 0, 1, 1], float)
    sizes = ndimage.sum(np.ones_like(m), lab, range(1, n + 1))
    ys, xs = np.nonzero(lab == 1 + int(np.argmax(sizes)))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def score(m: np.ndarray, box: np.ndarray) -> tuple[int, float]:
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    hit = int(box[0] <= c + 0.5 <= box[2] + 1 and box[1] <= r + 0.5 <= box[3] + 1)
    return hit, iou(box_of_map(m), box)


def attention(model: torch.nn.Module, x: np.ndarray, mean: float, std: float) -> np.ndarray:
    with torch.no_grad():
        t = (torch.from_numpy(x)[None, None] - mean) / std
        _, a = model.forward_with_attention(t)
        return F.interpolate(a, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].numpy()


def finetune(train: list[dict], mean: float, std: float, epochs: int, seed: int) -> torch.nn.Module:
    from engine.models.mri_attention import balanced_attention_loss, box_masks
    from engine.models.weights import load_weights

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, _ = load_weights("mri_attention_synthetic")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    for _ in range(epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), 8):
            xs, bs = [], []
            for j in order[i:i + 8]:
                x, b = train[j]["x"], train[j]["box"].copy()
                if rng.random() < 0.5:  # left-right mirror (both breasts are in the slice)
                    x = x[:, ::-1]
                    b = np.array([SIZE - b[2], b[1], SIZE - b[0], b[3]])
                xs.append(np.ascontiguousarray(x))
                bs.append(b)
            t = (torch.from_numpy(np.stack(xs))[:, None] - mean) / std
            _, a = model.forward_with_attention(t)
            masks = box_masks(torch.tensor(np.stack(bs), dtype=torch.float32), (SIZE, SIZE), (a.shape[-2], a.shape[-1]))
            loss = balanced_attention_loss(a, masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def cluster_ci(values: dict[str, list[float]], n_boot: int = 2000, seed: int = 0) -> list[float]:
    """Mean over slices and its 95 % cluster-bootstrap CI (patients resampled)."""
    rng = np.random.default_rng(seed)
    pats = sorted(values)
    allv = [v for p in pats for v in values[p]]
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(len(pats), len(pats), replace=True)
        vs = [v for k in pick for v in values[pats[k]]]
        boots.append(float(np.mean(vs)))
    return [round(float(np.mean(allv)), 4), round(float(np.percentile(boots, 2.5)), 4),
            round(float(np.percentile(boots, 97.5)), 4)]


def main() -> None:
    global SIZE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/results")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--size", type=int, default=128, help="input side (attention grid = size / 32)")
    a = p.parse_args()
    SIZE = a.size
    torch.set_num_threads(1)
    from sklearn.model_selection import GroupKFold

    from engine.models.weights import load_weights

    samples = load_samples(a.data)
    zero, spec = load_weights("mri_attention_synthetic")
    mean, std = float(spec.mean[0]), float(spec.std[0])
    groups = [s["patient"] for s in samples]
    res: dict[str, dict[str, dict[str, list[float]]]] = {m: {"hit": {}, "iou": {}} for m in
                                                         ("brightest", "synthetic_zero_shot", "finetuned")}
    per_slice = []
    for fold, (tr, te) in enumerate(GroupKFold(a.folds).split(samples, groups=groups)):
        model = finetune([samples[i] for i in tr], mean, std, a.epochs, seed=fold)
        for i in te:
            s = samples[i]
            maps = {"brightest": ndimage.gaussian_filter(s["x"], 3), "synthetic_zero_shot": attention(zero, s["x"], mean, std),
                    "finetuned": attention(model, s["x"], mean, std)}
            row = {"id": s["id"], "patient": s["patient"], "fold": fold}
            for name, m in maps.items():
                hit, ov = score(m, s["box"])
                res[name]["hit"].setdefault(s["patient"], []).append(hit)
                res[name]["iou"].setdefault(s["patient"], []).append(ov)
                row[name] = {"hit": hit, "iou": round(ov, 4)}
            per_slice.append(row)
        print(f"fold {fold}: {len(te)} test slices of {len(set(groups[i] for i in te))} patients", flush=True)
    box_frac = float(np.mean([(s["box"][2] - s["box"][0]) * (s["box"][3] - s["box"][1]) / SIZE**2 for s in samples]))
    summary = {
        "data": "mimbcd-dev MR outlines (CC BY-SA 4.0): "
                f"{len(samples)} outlined slices of {len(set(groups))} patients; boxes from outlines",
        "protocol": f"{a.folds}-fold GroupKFold by patient; fine-tune {a.epochs} epochs from mri_attention_synthetic "
                    f"(attention loss only, class-balanced BCE, mirror augmentation, Adam 3e-4); input {SIZE}x{SIZE}",
        "chance_pointing": round(box_frac, 4),
        "metrics_mean_ci95_cluster_bootstrap": {m: {k: cluster_ci(v) for k, v in d.items()} for m, d in res.items()},
        "per_slice": per_slice,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    summary["input_size"] = SIZE
    name = "mri_localiser_cv.json" if SIZE == 128 else f"mri_localiser_cv_{SIZE}.json"
    (a.out / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["metrics_mean_ci95_cluster_bootstrap"], indent=2), "chance", box_frac)


if __name__ == "__main__":
    main()
