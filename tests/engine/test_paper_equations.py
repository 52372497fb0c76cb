"""The seed papers' equations pinned by expected numbers (worked by hand in the comments).

Each test names the hand mutation of the paper-specific code it catches (issue 11, item 5); the
mutations were applied one at a time and each made its test fail.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.models import get_model

torch.set_num_threads(1)


# -- Qi 2019 Eq. 4: region enhance a = F_img(x) + lambda * F_cam(cam), at the paper's point --------
def _capture(model: nn.Module, last_lower: type, first_upper: type) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    low = [m for m in model.modules() if type(m) is last_lower][-1]
    up = [m for m in model.modules() if type(m) is first_upper][0]
    low.register_forward_hook(lambda _m, _i, o: got.__setitem__("A", o.detach().clone()))
    up.register_forward_pre_hook(lambda _m, i: got.__setitem__("a", i[0].detach().clone()))
    model.cam_path.register_forward_hook(lambda _m, _i, o: got.__setitem__("C", o.detach().clone()))
    return got


@pytest.mark.parametrize("net", ["mt", "sn"])
def test_region_enhance_adds_lambda_times_cam_features_at_the_papers_point(net: str) -> None:
    """Mt-Net: after the block(17) repeats, before reduction-B; Sn-Net: after Mixed_6a, before
    Mixed_6b (Qi 2019 Sec. 3.2). Catches: sign, lambda, additivity, a moved enhance point."""
    from engine.models.inception_resnet_v2 import Block17, Mixed7a

    torch.manual_seed(0)
    if net == "mt":
        model = get_model("qi_mtnet", repeats=(1, 1, 1), lam=0.7).eval()
        got = _capture(model, Block17, Mixed7a)
    else:
        from torchvision.models.inception import InceptionB, InceptionC

        model = get_model("qi_snnet", pretrained=False, lam=0.7).eval()
        got = _capture(model, InceptionB, InceptionC)
        assert type(model.lower_net[-1]) is InceptionB and type(model.upper_net[0]) is InceptionC
    x = torch.rand(1, 3, 96, 96)
    cam = torch.rand(1, 1, 96, 96)
    with torch.no_grad():
        model(x, cam)
    assert float(got["C"].abs().max()) > 1e-3 and float(got["A"].abs().max()) > 1e-3
    assert torch.allclose(got["a"], got["A"] + 0.7 * got["C"], atol=1e-5)
    with torch.no_grad():
        model(x)  # no CAM: the basic network
    assert torch.allclose(got["a"], got["A"], atol=1e-6)


# -- Qi 2019 Eq. 3: CAM of the arg-max class ------------------------------------------------------
def test_cam_uses_the_argmax_class_per_image() -> None:
    """W = I, channel 0 lights the top-left cell, channel 1 the bottom-right one; image 0 predicts
    class 0, image 1 class 1 -> their CAMs light different cells. Catches: a fixed class."""
    model = get_model("qi_mtnet", repeats=(1, 1, 1)).eval()
    model.class_weights = lambda: torch.eye(2)  # type: ignore[method-assign]
    f = torch.zeros(2, 2, 2, 2)
    f[:, 0, 0, 0] = 1.0
    f[:, 1, 1, 1] = 1.0
    logits = torch.tensor([[2.0, -1.0], [-1.0, 2.0]])
    cam = model.cam_from_features(f, logits, (2, 2))
    assert cam[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert cam[1, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]


# -- Qi 2019 Algorithm 1: each net is trained with the other's CAM (both code paths) ----------------
class _Draw:
    def __init__(self, p: float) -> None:
        self.p = p

    def random(self) -> float:
        return self.p


def _nets() -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mt = get_model("qi_mtnet", repeats=(1, 1, 1), dropout=0.0)
    sn = get_model("qi_snnet", pretrained=False, dropout=0.0)
    x = torch.rand(2, 3, 160, 160)  # Sn-Net's final maps must be > 1 x 1, or its CAM is constant (zero)
    return mt, sn, x, torch.tensor([0, 1]), torch.tensor([1, 0])


def _expected(mt: nn.Module, sn: nn.Module, x: torch.Tensor, y_mt: torch.Tensor, y_sn: torch.Tensor,
              with_cam: bool) -> tuple[float, float]:
    """Algorithm 1 by hand: Mt-Net(no CAM) -> CAM^Mt -> Sn-Net -> CAM^Sn -> Mt-Net loss; Sn-Net loss with CAM^Mt."""
    mt.train(), sn.train()
    with torch.no_grad():
        f = mt.forward_features(x)
        cam_mt = mt.cam_from_features(f, mt.forward_head(f), (160, 160))
        cam_sn = sn.forward_with_cam(x, cam_mt)[1]
        assert float(cam_sn.max() - cam_sn.min()) > 0.5 and float(cam_mt.max() - cam_mt.min()) > 0.5
        l_mt = F.cross_entropy(mt(x, cam_sn if with_cam else None), y_mt)
        l_sn = F.cross_entropy(sn(x, cam_mt), y_sn)
    return float(l_mt), float(l_sn)


@pytest.mark.parametrize("with_cam", [True, False])
def test_algorithm1_two_optimiser_step_exchanges_the_cams(with_cam: bool) -> None:
    """lr = 0 keeps the nets fixed, so the step's losses must equal the hand-computed ones.
    Catches: Mt-Net fed its own CAM (or none), Sn-Net fed CAM^Sn (or none), p-branch inverted."""
    from engine.models.qi import cross_training_step

    mt, sn, x, y_mt, y_sn = _nets()
    want = _expected(mt, sn, x, y_mt, y_sn, with_cam)
    opt_mt = torch.optim.SGD(mt.parameters(), lr=0.0)
    opt_sn = torch.optim.SGD(sn.parameters(), lr=0.0)
    r = cross_training_step(mt, sn, opt_mt, opt_sn, x, y_mt, y_sn, rng=_Draw(0.9 if with_cam else 0.1))  # type: ignore[arg-type]
    assert r["with_cam"] is with_cam
    assert (r["loss_mt"], r["loss_sn"]) == pytest.approx(want, rel=1e-5)
    # and the CAM input really changes the losses (so the check above has teeth)
    other = _expected(mt, sn, x, y_mt, y_sn, not with_cam)
    assert abs(other[0] - want[0]) > 1e-4


@pytest.mark.parametrize("with_cam", [True, False])
def test_algorithm1_fit_path_exchanges_the_cams(with_cam: bool) -> None:
    """QiCrossTrained.training_step (what `fit` runs): loss = Mt-Net loss (CAM^Sn when p >= 0.5)
    + Sn-Net loss (CAM^Mt). Catches the same CAM swaps in the fit path."""
    from engine.models.qi import QiCrossTrained

    mt, sn, x, y_mt, y_sn = _nets()
    unit = QiCrossTrained(mt, sn)  # type: ignore[arg-type]
    want = sum(_expected(mt, sn, x, y_mt, y_sn, with_cam))
    seed = next(s for s in range(100)
                if (float(torch.rand((), generator=torch.Generator().manual_seed(s))) >= 0.5) == with_cam)
    torch.manual_seed(seed)
    loss = unit.training_step((x, y_mt, y_sn))
    assert unit.last_losses["with_cam"] == float(with_cam)
    assert float(loss) == pytest.approx(want, rel=1e-5)


def test_rem_inference_feeds_each_net_the_others_cam() -> None:
    """QiCrossTrained.forward_both (what ``fit`` validates, ``evaluate`` and the app score): Mt-Net
    without CAM -> CAM^Mt -> Sn-Net(CAM^Mt) -> CAM^Sn -> Mt-Net(CAM^Sn) (Qi Fig. 1). Catches: the
    Mt-Net fed its own CAM or none at inference, the Sn-Net fed none."""
    from engine.models.qi import QiCrossTrained

    mt, sn, x, _, _ = _nets()
    unit = QiCrossTrained(mt, sn).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        f = mt.forward_features(x)
        cam_mt = mt.cam_from_features(f, mt.forward_head(f), (160, 160))
        sn_logits, cam_sn = sn.forward_with_cam(x, cam_mt)
        want = mt(x, cam_sn)
        got_mt, got_sn = unit.forward_both(x)
        # logits ~1e-2 at this random init: equal to 1e-7, the alternatives differ by >= 3e-4
        assert torch.allclose(got_mt, want, rtol=1e-4, atol=1e-7)
        assert torch.allclose(got_sn, sn_logits, rtol=1e-4, atol=1e-7)
        assert torch.allclose(unit(x), want, rtol=1e-4, atol=1e-7)
        assert float((want - mt(x)).abs().max()) > 1e-4 and float((want - mt(x, cam_mt)).abs().max()) > 1e-4
        assert float((sn_logits - sn(x)).abs().max()) > 1e-4


# -- Qi 2019 Sec. 3.3: five uniformly spaced crops, scores averaged -----------------------------------
def test_five_crops_are_uniformly_spaced_along_the_long_side() -> None:
    """60 x 200 image, 40 px crops: shorter side -> 40 gives 40 x 133; offsets linspace(0, 93, 5)
    = 0, 23.25, 46.5, 69.75, 93 -> rounded 0, 23, 46, 70, 93. Catches: other spacing/positions."""
    from engine.imaging.geometry import five_crop_layout, five_crops

    (rh, rw), offsets = five_crop_layout((60, 200), 40)
    assert (rh, rw) == (40, 133)
    assert offsets == [(0, 0), (0, 23), (0, 46), (0, 70), (0, 93)]
    assert five_crop_layout((200, 60), 40)[1] == [(0, 0), (23, 0), (46, 0), (70, 0), (93, 0)]
    img = torch.arange(60 * 200, dtype=torch.float32).view(1, 60, 200)
    crops = five_crops(img, 40, mode="nearest")
    assert crops.shape == (5, 1, 40, 40)
    from engine.imaging.geometry import resize_shorter_side

    rs = resize_shorter_side(img, 40, mode="nearest")
    for c, (t, left) in zip(crops, offsets):
        assert torch.equal(c, rs[:, t:t + 40, left:left + 40])


class _MeanProb(nn.Module):
    """P(malignant) = the input's mean intensity (through an identity 1x1 conv that Grad-CAM hooks)."""

    saliency_layer = "conv"
    malignant_index = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        p = self.conv(x).mean(dim=(1, 2, 3)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], 1)

    def malignancy(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, 1)[:, 1]


BANDS = (0.1, 0.3, 0.5, 0.7, 0.9)  # five crops' probabilities: mean 0.5, max 0.9, first 0.1, median 0.5


def test_five_crop_score_is_the_mean_of_the_crops_probabilities(tmp_path) -> None:
    """A model whose probability is its input's mean intensity: the image score must be the mean of
    the five crops' probabilities (here 0.1, 0.3, 0.5, 0.7, 0.9 -> 0.5), on every scoring path:
    Predictor.predict, Predictor.run with a saliency pass (its logits give the score) and
    qi.multi_input_predict. Catches: max / first / median instead of the mean."""
    from engine.inference import ImageItem, Predictor
    from engine.models.qi import multi_input_predict
    from engine.models.weights import WeightsSpec, save_weights
    from engine.transforms import Preprocess

    pre = Preprocess(size=(10, 10), in_chans=1, mean=(0.0,), std=(1.0,), box="ignored", resize="five_crop",
                     interpolation="nearest")
    spec = WeightsSpec(name="m", model="habib_basic_cnn", preprocess=pre)
    save_weights(get_model("habib_basic_cnn", in_chans=1), spec, tmp_path / "m")
    pred = Predictor(tmp_path / "m", device="cpu")
    pred.model = _MeanProb()
    px = np.repeat(np.array(BANDS), 10)[None].repeat(10, 0)  # 10 x 50, five bands
    img = (px * 255).round().astype(np.uint8)
    crops = [float(v) for v in img.reshape(10, 5, 10).transpose(1, 0, 2).reshape(5, -1).mean(1) / 255]
    assert crops == pytest.approx(list(BANDS), abs=2e-3)  # each crop is one band
    assert pred.predict(img) == pytest.approx(float(np.mean(crops)), abs=1e-5)
    assert pred.predict(img) == pytest.approx(0.5, abs=0.01)
    out = pred.run([ImageItem(img)], ["gradcam"])[0]
    assert "gradcam" in out.saliency and out.score == pytest.approx(float(np.mean(crops)), abs=1e-5)
    t = torch.from_numpy(px.astype(np.float32))[None]
    assert multi_input_predict(_MeanProb(), t, size=10) == pytest.approx(0.5, abs=1e-5)  # type: ignore[arg-type]


def test_fit_and_evaluate_average_the_five_crops_probabilities() -> None:
    """engine.train's scoring (validation in ``fit``, ``evaluate``, ``predict``) of an item with five
    crops (data.eval_crops = 5 -> (5, C, H, W)): the mean of the crops' probabilities, 0.5 here.
    Catches: max / first crop in the training path."""
    from engine.train.loop import predict

    item = torch.stack([torch.full((1, 4, 4), v) for v in BANDS])
    s = predict(_MeanProb(), [(item, 1), (item.flip(0)[:, :, :2], 0)], batch_size=1, device="cpu")  # type: ignore[arg-type]
    assert s.tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


# -- Habib 2020 / Wang 2018: LMCL --------------------------------------------------------------------
def test_lmcl_normalises_and_subtracts_the_margin_from_the_target_cosine() -> None:
    """Features (3, 3) and W rows (2, 0), (0, 5): after normalisation cos = (0.7071, 0.7071) whatever
    the lengths; s = 4 -> logits (2.8284, 2.8284). LMCL with m = 0.35, target 0:
    CE((2.8284 - 1.4, 2.8284), 0) = log(1 + e^{1.4}) = 1.6204. Catches: margin value/sign, margin
    on the wrong class, missing feature or weight normalisation."""
    from engine.models.habib import CosFaceHead, lmcl_loss

    head = CosFaceHead(2, 2, s=4.0, m=0.35)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 5.0]]))
    logits = head(torch.tensor([[3.0, 3.0]]))
    assert logits.tolist()[0] == pytest.approx([4 / math.sqrt(2)] * 2, abs=1e-5)
    loss = lmcl_loss(logits, torch.tensor([0]), s=4.0, m=0.35)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(1.4)), abs=1e-5)
    loss1 = lmcl_loss(head(torch.tensor([[1.0, 0.0]])), torch.tensor([1]), s=4.0, m=0.35)
    # cos = (1, 0): CE((4, 0 - 1.4), 1) = log(1 + e^{5.4})
    assert float(loss1) == pytest.approx(math.log(1 + math.exp(5.4)), abs=1e-5)


def test_habib_networks_train_with_the_lmcl_of_their_own_head() -> None:
    """``fit`` calls ``model.loss``: the single-modality nets and the fusion FC must use LMCL with
    their head's s and m. Logits s cos = (2.8284, 2.8284) with s = 4, m = 0.35, target 0:
    log(1 + e^{s m}) = log(1 + e^{1.4}) = 1.6204 (the default s = 30 would give 10.50, m = 0 ln 2).
    Catches: the training loss ignoring the head's margin or scale."""
    from engine.models.habib import HabibDescriptorNet, HabibFusionFC

    logits = torch.full((1, 2), 4 / math.sqrt(2))
    want = math.log(1 + math.exp(1.4))
    for net in (HabibDescriptorNet(arch="basic", loss="lmcl", pretrained=False, s=4.0, m=0.35),
                HabibFusionFC(in_features=8, widths=(4,), loss="lmcl", s=4.0, m=0.35)):
        assert float(net.loss(logits, torch.tensor([0]))) == pytest.approx(want, abs=1e-5)


# -- MRI 2019: supervised attention BCE against the box, class-balanced variant ----------------------
ATT = torch.tensor([[[[0.8, 0.2], [0.3, 0.6]]]])
BOX = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])


def test_attention_bce_targets_the_box() -> None:
    """mean(-ln 0.8, -ln 0.8, -ln 0.7, -ln 0.4) = 0.42982. Catches: inverted target (1 - mask)."""
    from engine.models.mri_attention import attention_loss

    want = -(math.log(0.8) + math.log(0.8) + math.log(0.7) + math.log(0.4)) / 4
    assert float(attention_loss(ATT, BOX)) == pytest.approx(want, abs=1e-5)


def test_balanced_attention_bce_weights_the_box_cells_by_outside_over_inside() -> None:
    """pw = 3 outside / 1 inside: (3 (-ln 0.8) - ln 0.8 - ln 0.7 - ln 0.4) / 4 / sqrt(3) = 0.31257;
    an empty mask (a lesion-free image, the paper's empty target) -> pw = 4, mean(-ln(1 - a)) / 2.
    Catches: an unbalanced (plain) BCE, an inverted target, a wrong weight."""
    from engine.models.mri_attention import balanced_attention_loss

    want = (-3 * math.log(0.8) - math.log(0.8) - math.log(0.7) - math.log(0.4)) / 4 / math.sqrt(3)
    assert float(balanced_attention_loss(ATT, BOX)) == pytest.approx(want, abs=1e-5)
    empty = -(math.log(0.2) + math.log(0.8) + math.log(0.7) + math.log(0.4)) / 4 / 2
    assert float(balanced_attention_loss(ATT, torch.zeros_like(BOX))) == pytest.approx(empty, abs=1e-5)


@pytest.mark.parametrize("balanced", [False, True])
def test_mri_training_step_adds_the_attention_bce_against_the_box(balanced: bool) -> None:
    """``MRIAttentionNet.training_step`` (the ``fit`` path): zero logits and zero targets give the
    classification BCE ln 2 = 0.69315; the 64 x 64 image's box (0, 0)-(31, 31) is the top-left cell
    of the 2 x 2 attention grid, so the attention term is the BOX value above: 0.42982 (plain) or
    0.31257 (balanced). Catches: an inverted or shifted box mask, the balanced loss not used when
    asked for (or used when not), the attention term dropped."""
    net = get_model("mri_attention_resnet18", pretrained=False)
    net.attention_balance = balanced
    net.forward_with_attention = lambda x: (torch.zeros(x.shape[0], 5), ATT.expand(x.shape[0], -1, -1, -1))
    att_term = ((-3 * math.log(0.8) - math.log(0.8) - math.log(0.7) - math.log(0.4)) / 4 / math.sqrt(3) if balanced
                else -(math.log(0.8) + math.log(0.8) + math.log(0.7) + math.log(0.4)) / 4)
    loss = net.training_step((torch.zeros(1, 1, 64, 64), torch.zeros(1, 5), torch.tensor([[0.0, 0.0, 31.0, 31.0]])))
    assert float(loss) == pytest.approx(math.log(2) + att_term, abs=1e-5)


# -- An 2019: entropy saliency, positive patches only, blurred heatmap target -----------------------
class _Linear(nn.Module):
    """logits (0, z) with z = sum w * x + b on one-channel patches; p = sigmoid(z)."""

    def __init__(self, patch: int, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.patch = patch
        self.w = nn.Parameter(w.clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, 0] * self.w).sum(dim=(1, 2)) + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def test_entropy_saliency_is_the_entropy_gradient() -> None:
    """H = -p ln p - (1-p) ln(1-p), dH/dz = -z p (1-p), so |dH/dx| = |z| p (1-p) |w|.
    x = 0.5 everywhere, w = 0.1 (2 x 2): z = 0.2, p = 0.54983 -> 0.2 * 0.24752 * 0.1 = 0.0049503.
    Catches: another gradient (of the logit, of p, of the top class score)."""
    from engine.models.an import entropy_gradient

    model = _Linear(2, torch.full((2, 2), 0.1))
    sal, p = entropy_gradient(model, torch.full((1, 1, 2, 2), 0.5))  # type: ignore[arg-type]
    pz = 1 / (1 + math.exp(-0.2))
    assert float(p[0]) == pytest.approx(pz, abs=1e-6)
    assert sal[0].numpy() == pytest.approx(np.full((2, 2), 0.2 * pz * (1 - pz) * 0.1), abs=1e-7)


def test_pixel_saliency_takes_only_positive_patches_inside_the_heatmap() -> None:
    """Two 4 x 4 patches at stride 4: the bright left one is positive (p > 0.5), the dark right one
    negative; the heatmap covers both. Only the left patch may carry saliency. Catches: negative
    patches entering the saliency; the heatmap mask being ignored."""
    from engine.models.an import pixel_saliency

    model = _Linear(4, torch.full((4, 4), 1.0), b=-8.0)  # z = sum(x) - 8: bright patch z > 0
    img = np.zeros((4, 8), np.float32)
    img[:, :4] = 0.9
    img[:, 4:] = np.array([[0.1, 0.2, 0.3, 0.2]] * 4)
    out = pixel_saliency(model, img, np.ones((4, 8)), stride=4)  # type: ignore[arg-type]
    assert float(out[:, :4].min()) > 0 and float(np.abs(out[:, 4:]).max()) == 0.0
    part = np.zeros((4, 8))
    part[:, :3] = 1.0  # the left patch's centre (column 2) is inside, its column 3 is not
    cut = pixel_saliency(model, img, part, stride=4)  # type: ignore[arg-type]
    assert float(cut[:, :3].min()) > 0 and float(np.abs(cut[:, 3:]).max()) == 0.0
    heat = np.zeros((4, 8))
    heat[:, 4:] = 1.0  # the heatmap only covers the (negative) right patch
    assert float(np.abs(pixel_saliency(model, img, heat, stride=4)).max()) == 0.0  # type: ignore[arg-type]


def test_heatmap_target_is_the_blurred_annotation() -> None:
    """A lesion filling one output cell of an 8 x 8 target (sigma 1): after the Gaussian blur and
    max-normalisation the 4-neighbours are e^{-1/2} = 0.60653 and the diagonals e^{-1} = 0.36788
    (separable sampled Gaussian). Catches: no blur, another sigma, no normalisation."""
    from engine.models.an import heatmap_target

    t = heatmap_target([(36.0, 36.0, 1.0)], (64, 64), out=8, sigma=1.0)  # centre of cell (4, 4)
    assert t[4, 4] == pytest.approx(1.0)
    assert t[4, 5] == pytest.approx(math.exp(-0.5), abs=2e-3) and t[3, 4] == pytest.approx(math.exp(-0.5), abs=2e-3)
    assert t[5, 5] == pytest.approx(math.exp(-1.0), abs=2e-3)


# -- Szegedy 2016 / Qi Table 1: Inception-ResNet residual scaling -----------------------------------
@pytest.mark.parametrize("cls, scale, ch", [("Block35", 0.17, 320), ("Block17", 0.10, 1088), ("Block8", 0.20, 2080)])
def test_inception_resnet_residual_is_scaled(cls: str, scale: float, ch: int) -> None:
    """With the projection replaced by a constant R = 1: out = ReLU(x + s * 1) = x + s for x >= 0.
    Catches: another residual scale, an unscaled residual, the ReLU moved before the sum."""
    from engine.models import inception_resnet_v2 as irv2

    block = getattr(irv2, cls)().eval()
    class Ones(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.ones(t.shape[0], ch, *t.shape[2:])

    block.proj = Ones()
    x = torch.rand(1, ch, 3, 3)
    with torch.no_grad():
        out = block(x.clone())
    assert torch.allclose(out, x + scale, atol=1e-6)
    with torch.no_grad():
        neg = block(-torch.ones(1, ch, 3, 3) * 2)  # -2 + s < 0 -> ReLU -> 0 (Block8 default has the ReLU)
    assert float(neg.abs().max()) == 0.0


def test_paper_input_sizes_give_the_papers_map_sizes() -> None:
    """Full-depth Mt-Net / Sn-Net at 299 and the MRI net at 240 x 345 (Qi Tables 1-2; MRI Fig. 4)."""
    mt = get_model("qi_mtnet").eval()
    sn = get_model("qi_snnet", pretrained=False).eval()
    mri = get_model("mri_attention_resnet50", pretrained=False).eval()
    x = torch.rand(1, 3, 299, 299)
    with torch.no_grad():
        low = mt.trunk.lower(x)
        assert low.shape == (1, 1088, 17, 17) and mt.trunk.upper(low).shape == (1, 1536, 8, 8)
        low = sn.lower_net(x)
        assert low.shape == (1, 768, 17, 17) and sn.upper_net(low).shape == (1, 2048, 8, 8)
        _, att = mri.forward_with_attention(torch.rand(1, 1, 240, 345))
        assert att.shape == (1, 1, 8, 11)
    random.seed(0)
