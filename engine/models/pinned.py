"""Expected sha256 of every shipped model's ``weights.pt``, in package code.

``spec.json`` sits beside the weights, so whoever can replace the weights can rewrite its
hash too (a tampered model scored a malignant image 0.000 instead of 0.989 unnoticed). This
table travels with the code: :func:`engine.models.weights.load_weights` refuses a weights folder
whose *name* is listed here unless ``weights.pt`` has exactly this digest, wherever the folder
is (bundled resources or ``$BREAST_READER_MODELS``).

Shipping new weights under a listed name: update this table in the same commit (one line per
model; ``sha256sum resources/models/<name>/weights.pt``). ``tests/engine/test_pinned_weights.py``
fails with the line to write when the table and the shipped ``spec.json`` disagree.
"""

from __future__ import annotations

PINNED_SHA256: dict[str, str] = {
    "mg_effnet_lite0_mias_lesion": "980bef8ee4234eac645c6aebb367a69ecdd71a30d682656c684eaa273facd128",
    "mri_attention_synthetic": "c58e952c2926e70f6d0261d8c0d1333da9f1fe045266252f7fdf312bec020a54",
    "us_effnet_lite0_busi": "cf36720e83a30eb86692548ade195efa0833703e12065340b1791a8d1456ace6",
}
