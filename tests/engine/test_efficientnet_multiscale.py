"""The shipped US architecture: EfficientNet-Lite0 read at several blocks and two scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models import get_model
from engine.saliency import GradCAMSaliency
from engine.saliency.hooks import count_hooks

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = get_model("efficientnet_lite0_multiscale", pretrained=True).eval()
    with torch.no_grad():  # heads are zero-initialised by no one: give them distinct random weights
        for h in m.heads:
            h.weight.normal_(0, 0.05)
            h.bias.normal_(0, 0.05)
    return m


def test_trunk_walk_equals_the_package_forward(model: torch.nn.Module) -> None:
    """Our block-by-block pass gives the package's own head-conv features (last 1280 values)."""
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        ours = model.scale_features(x)[0][:, -1280:]
        ref = model.net.extract_features(x).mean(dim=(2, 3))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_output_is_mean_of_the_scale_heads(model: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        feats = model.scale_features(x)
        logits = model(x)
    assert [f.shape for f in feats] == [(2, 112 + 192 + 320 + 1280)] * 2
    # the 112 px view really is a different input, not a copy of the 128 px one
    assert not torch.allclose(feats[0], feats[1], atol=1e-3)
    expect = torch.stack([h(f) for h, f in zip(model.heads, feats)]).mean(0)
    assert torch.allclose(logits, expect, atol=1e-6)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="taps"):
        get_model("efficientnet_lite0_multiscale", pretrained=False, taps=(3,))
    with pytest.raises(ValueError, match="scales"):
        get_model("efficientnet_lite0_multiscale", pretrained=False, scales=())


def test_gradcam_at_stride_16_tap(model: torch.nn.Module) -> None:
    """Grad-CAM hooks the full-scale block-10 output once: an 8x8 grid for a 128 px crop, hooks removed."""
    x = torch.zeros(1, 3, 128, 128)
    x[..., 20:60, 70:110] = 1.0  # structure off-centre so the map is not flat
    before = count_hooks(model)
    sm = GradCAMSaliency(model)
    assert sm.layer == "cam_tap"
    seen: list[tuple[int, ...]] = []
    h = model.cam_tap.register_forward_hook(lambda _m, _i, o: seen.append(tuple(o.shape)))
    try:
        out = sm(x, out_shape=(128, 128))
    finally:
        h.remove()
    assert seen == [(1, 112, 8, 8)]  # one call per forward: the 112 px pass does not hit the tap
    assert out.map.shape == (128, 128) and np.isfinite(out.map).all() and out.map.max() > out.map.min()
    assert count_hooks(model) == before


def test_cam_is_an_exact_decomposition_of_the_logit_margin(model: torch.nn.Module) -> None:
    """Summed over pixels, the evidence map gives back the malignant-minus-benign logit less the bias."""
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        logits = model(x)
        ev = model.evidence_map(x)
    bias = torch.stack([h.bias[1] - h.bias[0] for h in model.heads]).mean()
    margin = logits[0, 1] - logits[0, 0] - bias
    # bilinear up-sampling preserves the mean of each cell's term up to edge effects (< 2 %)
    assert torch.isclose(ev.sum(), margin, rtol=0.02, atol=1e-3), (float(ev.sum()), float(margin))
