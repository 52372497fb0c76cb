"""Expected sha256 of every shipped model's ``weights.pt``, in package code.

``spec.json`` sits beside the weights, so whoever can replace the weights can rewrite its
hash too (a tampered model scored a malignant image 0.000 instead of 0.989 unnoticed). This
table travels with the code: :func:`engine.models.weights.load_weights` refuses a folder of the
shipped models folder (``resources/models``, :func:`shipped_root`) whose name is listed here
unless ``weights.pt`` has exactly this digest. Folders elsewhere (``$BREAST_READER_MODELS``,
a user's own training output) are not shipped models and rely on their ``spec.json``.

Shipping: ``breast-engine ship`` into ``resources/models`` rewrites the model's line here
(:func:`update_pin`), so the commit that re-ships weights carries their pin.
``tests/engine/test_pinned_weights.py`` fails with the line to write when they disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PINNED_SHA256", "pinned_digest", "shipped_root", "update_pin"]

PINNED_SHA256: dict[str, str] = {
    "mg_lesion_lite0_mias": "4e5abc12ea8f64a69346e00c3f26c9071a03545f5c42018f3c4ea34d8d48e698",
    "mg_effnet_lite0_mias_lesion": "debc410b8377f934136bd1c4fbc7f6b336609572b901eb09422b0cfb0bf24859",
    "mri_attention_synthetic": "f978e8283958f9ed838a7b4aa2851cf345f57d9ddc12f64779fe69ba0e68b77f",
    "us_effnet_lite0_busi": "5c2cc46872ea10be73e81e69a9873377b39b7ea50dfc6bd0e03ecc80416380b1",
    "us_lesion_lite0_busi": "417c137809c70db36b9d39ee591da5327b7079072a325cb70f2b056bd9652dc0",
}


def shipped_root() -> Path:
    """The package's own models folder (``resources/models``)."""
    from engine.resources import resource

    return Path(resource("models")).resolve()


def pinned_digest(folder: Path) -> str | None:
    """The pinned sha256 for a weights folder, or None when it is not a pinned shipped model."""
    d = Path(folder).resolve()
    if d.parent != shipped_root():
        return None
    return PINNED_SHA256.get(d.name)


def update_pin(folder: Path, digest: str) -> bool:
    """After shipping into ``resources/models``: set the folder's pin here (in memory and in this
    source file). Returns whether the folder is a shipped model (False: nothing to pin)."""
    d = Path(folder).resolve()
    if d.parent != shipped_root():
        return False
    PINNED_SHA256[d.name] = digest
    src = Path(__file__)
    text = src.read_text(encoding="utf-8")
    line = f'    "{d.name}": "{digest}",\n'
    pat = re.compile(rf'^    "{re.escape(d.name)}": "[0-9a-f]*",\n', re.M)
    if pat.search(text):
        text = pat.sub(line, text)
    else:
        text = text.replace("PINNED_SHA256: dict[str, str] = {\n", "PINNED_SHA256: dict[str, str] = {\n" + line, 1)
    src.write_text(text, encoding="utf-8")
    return True
