"""A tiny SYNTHETIC BUSI-layout study, shared by the ship tests (fixture ``tiny_busi`` in conftest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

TinyBusi = Callable[..., Path]


def write_tiny_busi(root: Path, *, n: int = 14, normals: int = 0, shape: tuple[int, int] = (96, 128)) -> Path:
    """A tiny SYNTHETIC BUSI-layout study (``labels.csv``, ``images/``, ``masks/``).

    B-mode-like speckle with one dark ellipse per lesion image and its mask; malignant lesions
    are larger and darker; the last ``normals`` images are "normal" with empty masks. Labels
    alternate benign / malignant, so any two images hold both classes.
    """
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["image,mask,label"]
    rng = np.random.default_rng(0)
    for i in range(n):
        lab = "normal" if i >= n - normals else ("malignant" if i % 2 else "benign")
        img = np.clip(rng.normal(120, 25, shape), 0, 255).astype(np.uint8)
        m = np.zeros_like(img)
        if lab != "normal":
            cx, cy = 40 + 4 * (i % 8), 40 + 2 * (i % 5)
            ax = (14, 9) if lab == "malignant" else (10, 7)
            cv2.ellipse(m, (cx, cy), ax, 15 * i, 0, 360, 255, -1)
            img[m > 0] = (30 if lab == "malignant" else 70)
        cv2.imwrite(str(root / "images" / f"{lab}_{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{lab}_{i}.png"), m)
        rows.append(f"images/{lab}_{i}.png,masks/{lab}_{i}.png,{lab}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root
