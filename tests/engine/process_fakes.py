"""Fake models for the model-process tests, loaded *in the child* by ``--loader process_fakes:load``.

The weights name chosen for a modality (``ProcessScorer.model_choice``) picks the behaviour:
``None`` scores at once, ``"slow"`` takes 0.3 s per image, ``"crash"`` kills the process in
the forward pass, ``"bug"`` fails to load with a ValueError, ``"missing"`` is not installed.
No torch: the fakes return the same surface a Predictor's outputs have.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import ModelNotFoundError


@dataclass
class Out:
    score: float
    frame: int | None = None
    saliency: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    lesion: Any = None


class FakeModel:
    def __init__(self, modality: str, kind: str | None) -> None:
        self.name = f"fake-{modality.lower()}-{kind or 'fast'}"
        self.spec = None
        self.device = "cpu"
        self.kind = kind

    def saliency_methods(self) -> tuple[str, ...]:
        return ("gradcam",)

    def run(self, items: Any, methods: Any = ()) -> list[Out]:
        outs = []
        for it in items:
            if self.kind == "crash":
                os._exit(7)
            if self.kind == "slow":
                time.sleep(0.3)
            px = np.asarray(it.image.pixels, np.float32)
            out = Out(float(px.mean() / 255.0), it.frame)
            for m in methods:
                out.saliency[m] = (px / max(1.0, float(px.max()))).astype(np.float32)
            outs.append(out)
        return outs


def load(modality: str, model: str | None = None) -> FakeModel:
    if model == "missing":
        raise ModelNotFoundError(f"no {modality} model named 'missing'")
    if model == "bug":
        raise ValueError("broken weights file")
    return FakeModel(modality, model)
