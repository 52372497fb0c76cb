"""The case scorer's ``"own"`` saliency method: each model's first registered method (issue 12:
the lesion-centred US default's overlay is its mask-supervised attention, not Grad-CAM)."""

from __future__ import annotations

import numpy as np

from engine.inference import ImageOutput
from engine.inference.case import OWN_METHOD, CaseImage, CaseInput, CaseScorer, own_method
from engine.io.types import ImageMeta, LoadedImage
from engine.saliency import SaliencyMap


class _Model:
    """A model offering ``methods``; each map is constant = the method's index + 1 (to tell them apart)."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.methods = methods
        self.spec = None
        self.name = "m-" + "-".join(methods or ("none",))
        self.asked: list[tuple[str, ...]] = []

    def saliency_methods(self) -> tuple[str, ...]:
        return self.methods

    def run(self, items, methods=()):  # type: ignore[no-untyped-def]
        self.asked.append(tuple(methods))
        outs = []
        for it in items:
            o = ImageOutput(0.4, it.frame)
            for m in methods:
                if m in self.methods:
                    o.saliency[m] = SaliencyMap(np.full((8, 8), self.methods.index(m) + 1, np.float32) *
                                                np.eye(8, dtype=np.float32), m, "t")
                else:
                    o.errors[m] = f"{m} not offered"
            outs.append(o)
        return outs


def _case() -> CaseInput:
    img = LoadedImage(np.zeros((8, 8), np.uint8), ImageMeta(path="x.png", modality="US"))
    return CaseInput("c", [CaseImage("i", img, "US")])


def test_own_is_the_models_first_method_and_is_computed_once() -> None:
    m = _Model(("attention", "cam"))
    res = CaseScorer(lambda mod, name=None: m).score_case(_case(), (OWN_METHOD, "cam", "attention"))
    assert own_method(m) == "attention"
    assert m.asked == [("attention", "cam")]  # "own" and "attention" are one computation
    assert float(res.saliency[("i", OWN_METHOD)].max()) == 1.0  # the attention map, not CAM's (2.0)
    assert float(res.saliency[("i", "cam")].max()) == 2.0
    assert not res.failed


def test_own_on_a_model_without_saliency_is_a_stated_failure() -> None:
    m = _Model(())
    res = CaseScorer(lambda mod, name=None: m).score_case(_case(), (OWN_METHOD,))
    assert own_method(m) is None and m.asked == [()]
    assert ("i", OWN_METHOD) in res.failed and res.per_image["i"] == 0.4
    assert any("no saliency method" in e for e in res.errors)


def test_shipped_lesion_default_owns_attention_and_whole_image_model_gradcam() -> None:
    from engine.models.registry import model_info

    assert model_info("lite0_lesion_attention").saliency[0] == "attention"
    assert model_info("efficientnet_lite0_multiscale").saliency[0] == "gradcam"
