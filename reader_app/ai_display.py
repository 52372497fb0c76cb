"""Qt-free facts the AI panel states beside a score: calibration, operating point, whether
the image was in the model's development data, and whether fusion is meaningful.

Nothing here changes a score; it only says how to read one (decision support).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.cases import Case
from engine.cases.model import same_patient as same_patient  # re-exported: the engine owns the rule (engine.study.ai_scores uses it)

# dataset tokens as they appear in image provenance ("BUSI benign_10", "mini-MIAS mdb015")
DATASETS = ("BUSI", "mini-MIAS", "CBIS-DDSM", "mimbcd", "synthetic")


@dataclass
class ModelFacts:
    """What the weights' spec says about reading its output."""

    name: str
    threshold: float | None = None
    calibration: str = ""
    train_sources: list[str] = field(default_factory=list)


def _sources_from_name(name: str) -> list[str]:
    low = name.lower()
    out = []
    if "busi" in low:
        out.append("BUSI")
    if "mias" in low:
        out.append("mini-MIAS")
    if "cbis" in low or "ddsm" in low:
        out.append("CBIS-DDSM")
    if "synthetic" in low:
        out.append("synthetic")
    return out


def model_facts(name: str | None) -> ModelFacts | None:
    """Facts from ``resources/models/<name>/spec.json`` (None when the spec cannot be read).

    ``extra.train_sources`` and ``extra.calibration`` are used when the spec has them; else the
    datasets named in the weights' name (``us_effnet_lite0_busi`` -> BUSI) and an honest
    "not calibrated" note.
    """
    if not name:
        return None
    from engine.model_catalog import spec_summary  # spec.json only: the GUI process never imports torch

    summary = spec_summary(name)
    if summary is None:  # facts are a courtesy; a missing spec must not stop the panel
        return None
    threshold, extra = summary
    metrics = extra.get("metrics") if isinstance(extra.get("metrics"), dict) else {}
    cal = extra.get("calibration") or (metrics or {}).get("calibration")
    if not cal and extra.get("platt"):  # lesion-centred US model (engine.lesion_us)
        cal = ("Platt-scaled, fitted out of fold on BUSI lesions (33 % malignant; separate fits for "
               "the reader's and the finder's box): at another prevalence the probabilities shift")
    if isinstance(cal, dict):
        cal = ", ".join(f"{k} {v}" for k, v in cal.items())
    srcs = extra.get("train_sources")
    return ModelFacts(
        name=name,
        threshold=threshold,
        calibration=str(cal) if cal else "not calibrated: a model output in 0-1, read it as a ranking, not a risk",
        train_sources=[str(s) for s in srcs] if isinstance(srcs, list) else _sources_from_name(name),
    )


def dataset_of(source: str | None) -> str | None:
    """The dataset an image came from, from its provenance string."""
    if not source:
        return None
    low = source.lower()
    for d in DATASETS:
        if low.startswith(d.lower()) or f" {d.lower()}" in low:
            return d
    return None


def training_overlap(case: Case, modality: str, facts: ModelFacts | None) -> list[str]:
    """Image ids of ``modality`` that come from a dataset the model was developed on."""
    if facts is None or not facts.train_sources:
        return []
    return [ci.image_id for ci in case.images_of(modality)
            if (dataset_of(ci.source) or ("synthetic" if ci.synthetic else None)) in facts.train_sources]
