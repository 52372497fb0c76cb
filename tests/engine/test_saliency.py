"""Saliency: maps peak on a synthetic bright lesion, are in the image's pixel grid, hooks removed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.models import get_model
from engine.models.common import BreastClassifier, PooledLinearHead
from engine.saliency import AttentionSaliency, CAMSaliency, EntropySaliency, GradCAMSaliency, get_saliency
from engine.saliency.hooks import count_hooks, record

torch.set_num_threads(1)


class BrightSpotNet(BreastClassifier):
    """Malignancy logit grows with local brightness: evidence lies exactly on the bright lesion."""

    def __init__(self) -> None:
        super().__init__(in_chans=1, num_outputs=2, init_description="constructed")
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(4)
        self.head = PooledLinearHead(4, 2)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 9)
            self.conv.bias.fill_(-0.5)
            self.head.fc.weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
            self.head.fc.bias.zero_()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def _lesion_image(h: int = 96, w: int = 128, cy: int = 70, cx: int = 30) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = 0.1 + 0.9 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 8**2).float()
    return img[None, None]


@pytest.mark.parametrize("method", [GradCAMSaliency, CAMSaliency])
def test_map_peaks_on_bright_lesion_in_output_grid(method: type) -> None:
    model = BrightSpotNet().eval()
    x = _lesion_image()
    sal = method(model)(x, out_shape=(192, 256))  # the "image" is twice the network input
    assert sal.map.shape == (192, 256)
    assert sal.map.dtype == np.float32 and sal.map.min() >= 0 and sal.map.max() == pytest.approx(1.0)
    r, c = np.unravel_index(np.argmax(sal.map), sal.map.shape)
    assert abs(r - 140) <= 16 and abs(c - 60) <= 16, (r, c)
    # far from the lesion the map is low
    assert sal.map[20, 220] < 0.2
    assert sal.method == method.name and sal.layer == "features_out"
    assert count_hooks(model) == 0


def test_gradcam_hooks_removed_even_on_error() -> None:
    model = BrightSpotNet()
    with pytest.raises(ValueError):
        GradCAMSaliency(model)(torch.rand(1, 3, 32, 32))  # wrong channel count
    assert count_hooks(model) == 0


def test_record_context_manager_removes_hooks() -> None:
    model = BrightSpotNet()
    with pytest.raises(RuntimeError):
        with record(model.features_out, gradients=True) as rec:
            model(torch.rand(1, 1, 16, 16)).sum().backward()
            assert rec.activation is not None and rec.gradient is not None
            assert count_hooks(model) == 1
            raise RuntimeError("boom")
    assert count_hooks(model) == 0


def test_gradcam_on_frozen_backbone_and_real_model() -> None:
    model = get_model("hijab_vgg16_frozen", pretrained=False).eval()
    sal = GradCAMSaliency(model)(torch.rand(1, 3, 64, 64), out_shape=(50, 70))
    assert sal.map.shape == (50, 70) and np.isfinite(sal.map).all()
    assert count_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())


def _eq3_by_hand(f: torch.Tensor, w: torch.Tensor, c: int, size: tuple[int, int]) -> np.ndarray:
    """Qi 2019 Eq. 3 written out: M_c(x, y) = sum_k w_k^c f_k(x, y), min-max normalised, upsampled."""
    m = sum(float(w[c, k]) * f[0, k] for k in range(f.shape[1]))
    m = (m - m.min()) / (m.max() - m.min())
    up = torch.nn.functional.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    out: np.ndarray = up.numpy()
    return (out - out.min()) / (out.max() - out.min())


@pytest.mark.parametrize("cls", [0, 1])
def test_cam_of_qi_net_is_eq3_of_the_argmax_class(cls: int) -> None:
    """Both the model's own CAM (what Algorithm 1 passes on) and CAMSaliency(target="predicted")
    equal Eq. 3 of the arg-max class worked out from the final maps and the head weights. The
    head bias forces the arg-max to ``cls``; the two classes' CAMs differ (checked), so a fixed
    class (either), the arg-min or the other class's weights fail for one of the two cases."""
    torch.manual_seed(0)
    model = get_model("qi_mtnet", repeats=(1, 1, 1)).eval()
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([50.0, -50.0]) * (1 if cls == 0 else -1))
    x = torch.rand(1, 3, 160, 160)  # 3 x 3 final maps
    with torch.no_grad():
        f = model.forward_features(x)
        logits, cam = model.forward_with_cam(x)
    assert int(logits.argmax(1)) == cls and f.shape[-2:] == (3, 3)
    w = model.fc.weight.detach()
    want = _eq3_by_hand(f, w, cls, (160, 160))
    other = _eq3_by_hand(f, w, 1 - cls, (160, 160))
    assert float(np.abs(want - other).max()) > 0.5  # the class matters for this input
    c = cam[0, 0].numpy()
    assert float(c.min()) >= 0 and float(c.max()) <= 1 + 1e-6
    assert np.allclose((c - c.min()) / (c.max() - c.min()), want, atol=1e-4)
    sal = CAMSaliency(model, target="predicted")(x)
    assert np.allclose(sal.map, want, atol=1e-4)


def test_attention_map_is_the_models_attention() -> None:
    torch.manual_seed(0)
    model = get_model("mri_attention_resnet50", pretrained=False).eval()
    x = torch.rand(1, 1, 64, 96)
    sal = AttentionSaliency(model)(x, out_shape=(64, 96))
    with torch.no_grad():
        _, att = model.forward_with_attention(x)
    assert att.shape[-2:] == (2, 3)
    up = torch.nn.functional.interpolate(att, size=(64, 96), mode="bilinear", align_corners=False)[0, 0].numpy()
    up = (up - up.min()) / (up.max() - up.min())
    assert np.allclose(sal.map, up, atol=1e-5)
    assert count_hooks(model) == 0


def test_entropy_gradient_patch_and_heatmap_mask() -> None:
    from engine.models.an import pixel_saliency

    torch.manual_seed(0)
    model = get_model("an_patch_classifier", patch=64, widths=(4, 8, 8), hidden=8).eval()
    x = torch.rand(1, 1, 64, 64)
    sal = EntropySaliency(model)(x)
    assert sal.map.shape == (64, 64) and sal.map.max() > 0
    # full scale: only inside the heatmap
    img = np.random.default_rng(0).random((192, 192)).astype(np.float32)
    heat = np.zeros((8, 8), np.float32)
    heat[:4, :4] = 1.0
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.tensor([-5.0, 5.0]))  # every patch positive
    s = pixel_saliency(model, img, heat)
    assert s[:90, :90].sum() > 0
    assert s[100:, :].sum() == 0 and s[:, 100:].sum() == 0


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown saliency"):
        get_saliency("lime")


def _library_gradcam(model: torch.nn.Module, x: torch.Tensor, layer: torch.nn.Module) -> np.ndarray:
    """pytorch-grad-cam's own map (the reference the batched implementation must equal)."""
    from engine import _torchvision_shim

    _torchvision_shim.ensure()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    idx = 0 if getattr(model, "num_outputs", 2) == 1 else int(getattr(model, "malignant_index", 1))
    cam = GradCAM(model=model, target_layers=[layer])
    try:
        out = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(idx)] * x.shape[0])
    finally:
        cam.activations_and_grads.release()
    return out


def test_batched_gradcam_equals_pytorch_grad_cam_and_skips_weight_grads() -> None:
    """One batched pass gives each image the library's Grad-CAM, and no parameter gradient."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = get_model("habib_basic_cnn", in_chans=1).eval()
    x = torch.rand(3, 1, 64, 64)
    sm = GradCAMSaliency(model)
    raw, logits = sm.compute_maps(x)
    assert logits is not None and torch.allclose(logits, model(x), atol=1e-5)  # the score comes free
    assert all(p.grad is None for p in model.parameters()) and count_hooks(model) == 0
    assert all(p.requires_grad for p in model.parameters())  # restored
    ref = _library_gradcam(model, x, model.get_submodule(sm.layer))
    ours = F.interpolate(raw[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0].numpy()
    for k in range(3):
        r = np.corrcoef(ours[k].ravel(), ref[k].ravel())[0, 1]
        assert r > 0.98, r
    # each image's map does not depend on the others in the batch
    one, _ = sm.compute_maps(x[1:2])
    assert torch.allclose(one[0], raw[1], atol=1e-5)


def test_entropy_saliency_ignores_film_background() -> None:
    """Windows centred outside the breast do not contribute (An et al. read only the breast)."""
    import numpy as np
    import torch

    from engine.models import get_model
    from engine.saliency.entropy import EntropySaliency

    torch.manual_seed(0)
    model = get_model("an_patch_classifier")
    with torch.no_grad():  # every window "finding": without the breast mask the background would light up
        model.head[-1].bias.copy_(torch.tensor([-4.0, 4.0]))
    rng = np.random.default_rng(0)
    img = 0.05 + 0.01 * rng.standard_normal((512, 768)).astype(np.float32)  # film base with grain
    img[:, :384] = 0.5 + 0.1 * rng.standard_normal((512, 384)).astype(np.float32)  # breast: left half
    sal = EntropySaliency(model).compute_map(torch.from_numpy(img)[None, None]).numpy()
    assert sal.shape == img.shape
    assert sal[:, :384].sum() > 0
    # windows centred in the background start at column 448 (centre 576 > 384): nothing there
    assert np.abs(sal[:, 576:]).sum() == 0


@pytest.mark.slow
def test_bench_gradcam_reports_equal_maps_and_the_speedup() -> None:
    import argparse

    from engine.bench import gradcam
    from engine.models.weights import default_weights

    if default_weights("US") is None:
        pytest.skip("no shipped US default")
    out = gradcam.run(argparse.Namespace(repeats=1, threads=1))
    assert out["crops"] == 5 and out["min_map_correlation"] > 0.999 and out["score_abs_diff"] < 1e-5
    assert out["max_map_abs_diff"] < 1e-5
    assert out["batched_s"] > 0 and out["library_per_crop_s"] > 0


def test_batched_gradcam_equals_the_library_on_the_shipped_model_and_a_real_image() -> None:
    """The shipped whole-image US model's five crops of a real BUSI image (the lesion-centred
    default has no Grad-CAM): the batched pass's maps equal pytorch-grad-cam's per-crop maps
    (after the library's own resize/rescale) to 1e-5."""
    from engine.bench.gradcam import WHOLE_IMAGE_US, _installed, _library_maps, bench_image, library_postprocess
    from engine.inference import Predictor
    from engine.io.types import ImageMeta, LoadedImage

    name = WHOLE_IMAGE_US
    if not _installed(name):
        pytest.skip(f"{name} not installed")
    px, label = bench_image()
    if "SYNTHETIC" in label:
        pytest.skip("../shared/data/busi-dev is absent: no real ultrasound image")
    pred = Predictor(name, device="cpu")
    crops = pred.transform(LoadedImage(px, ImageMeta(path=label, modality="US"))).tensor
    model = pred.model
    ref, ref_score = _library_maps(model, crops, str(model.saliency_layer))
    raw, logits = GradCAMSaliency(model).compute_maps(crops)
    ours = library_postprocess(raw.numpy(), (int(crops.shape[-2]), int(crops.shape[-1])))
    assert ours.shape == ref.shape == (5, *crops.shape[-2:])
    assert float(np.abs(ours - ref).max()) < 1e-5
    assert logits is not None and abs(float(model.malignancy(logits).mean()) - ref_score) < 1e-5
    assert all(p.grad is None for p in model.parameters()) and count_hooks(model) == 0
    assert float(ref.std()) > 0.05  # a real, non-flat map: the comparison is not vacuous
