"""Paper-specific pieces: An patch map / sampling / crop, Habib losses, Qi helpers, MRI attention."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.models import get_model

torch.set_num_threads(1)


# -- An 2019 ------------------------------------------------------------------------------------
def test_dense_patch_map_equals_per_patch_loop() -> None:
    from engine.models.an import local_map_dense, local_map_loop

    torch.manual_seed(0)
    model = get_model("an_patch_classifier", patch=64, widths=(4, 8, 8), hidden=8)
    img = np.random.default_rng(0).random((200, 330)).astype(np.float32)
    loop = local_map_loop(model, img, stride=32)
    for tile, cl in ((64, True), (1024, True), (1024, False)):  # tiling / memory format change nothing
        dense = local_map_dense(model, img, stride=32, tile=tile, channels_last=cl)
        assert dense.shape == loop.shape == ((200 - 64) // 32 + 1, (330 - 64) // 32 + 1)
        assert np.abs(dense - loop).max() <= 1e-5
    assert loop.std() > 0  # not a constant map
    assert np.abs(local_map_loop(model, img, stride=32, channels_last=True) - loop).max() <= 1e-5


def test_dense_map_refuses_misaligned_stride() -> None:
    from engine.models.an import local_map_dense

    model = get_model("an_patch_classifier", patch=64, widths=(4, 8, 8), hidden=8)
    with pytest.raises(ValueError, match="multiple of the network stride"):
        local_map_dense(model, np.zeros((128, 128), np.float32), stride=20)


def test_orient_and_crop_right_aligns_nipple() -> None:
    from engine.models.an import orient_and_crop

    img = np.zeros((300, 400), np.float32)
    yy, xx = np.mgrid[0:300, 0:400]
    breast = ((xx - 399) / 250.0) ** 2 + ((yy - 150) / 120.0) ** 2 <= 1  # chest wall on the right
    img[breast] = 1.0
    crop = orient_and_crop(img, size=256)
    assert crop.flipped
    assert crop.image.shape == (256, 256)
    # nipple (farthest tissue from the chest wall, at source x = 149) lands on the last column
    assert crop.image[128, 255] == 1.0 and crop.image[:, 255].sum() > 0
    x, y = crop.to_crop(149, 150)
    assert x == pytest.approx(255) and 0 <= y < 256
    assert crop.to_source(*crop.to_crop(200.0, 100.0)) == pytest.approx((200.0, 100.0))


def test_sample_patches_positive_centres_and_negative_stride() -> None:
    from engine.models.an import multiscale_patches, sample_patches

    img = np.zeros((512, 512), np.float32)
    img[240:272, 240:272] = 1.0
    lesions = [(256.0, 256.0, 16.0)]
    patches, labels, _ = sample_patches(img, lesions, scale=0.5, patch=64, stride=32)
    assert labels[0] == 1 and labels.sum() == 1
    pos = patches[0]
    assert pos[24:40, 24:40].mean() > 0.9  # lesion centred
    assert all(p.max() == 0 for p in patches[labels == 0])  # negatives do not touch the lesion
    assert len(labels) > 10
    few = sample_patches(img, lesions, scale=0.5, patch=64, max_negatives=3, rng=random.Random(0))
    assert (few.labels == 0).sum() == 3
    ms = multiscale_patches(img, lesions, patch=64)
    assert set(ms) == {0.5, 0.33, 0.25}
    assert ms[0.25].patches.shape[1:] == (64, 64) and len(ms[0.25].labels) < len(ms[0.5].labels)
    huge = sample_patches(img, [(256.0, 256.0, 200.0)], scale=0.5, patch=64)[1]
    assert huge.sum() == 0  # very large annotations ignored


def _an_breast_and_disc() -> np.ndarray:
    """512^2: tissue (0.5) in the left half, a disc of radius 40 at (224, 224) (1.0), air (0) right."""
    img = np.zeros((512, 512), np.float32)
    img[:, :256] = 0.5
    yy, xx = np.mgrid[0:512, 0:512]
    img[(xx - 224) ** 2 + (yy - 224) ** 2 <= 40**2] = 1.0
    return img


def test_sample_patches_follows_an_rules_worked_by_hand() -> None:
    """x0.5 -> 256^2, 64 px samples, stride 32: 7 x 7 = 49 candidate squares; the disc (112, 112)
    r 20 meets the 16 squares with top/left in {32, 64, 96, 128} but the four corner ones
    (nearest point 16 px off in x and y: 22.6 > 20), so 49 - 12 = 37 negatives (a bounding-box
    test would leave 33); the paper keeps empty space too, so some negatives are all air."""
    from engine.models.an import sample_patches

    tp = sample_patches(_an_breast_and_disc(), [(224.0, 224.0, 40.0)], scale=0.5, patch=64, stride=32)
    assert tp.labels.tolist() == [1] + [0] * 37
    assert tp.centres[0] == (112, 112) and tp.patches[0][32, 32] == 1.0
    neg = tp.patches[1:]
    assert all(p.max() < 1.0 for p in neg)  # no negative holds the finding
    assert {(r - 32) % 32 for r, c in tp.centres[1:]} == {0} == {(c - 32) % 32 for r, c in tp.centres[1:]}
    assert (32 + 32, 32 + 32) in tp.centres[1:]  # the corner square off the disc is a negative
    # left >= 128: all air (the paper's "empty space"), 21 squares less the 2 that meet the disc
    assert sum(p.max() == 0 for p in neg) == 21 - 2
    assert tp.patches.dtype == np.float32 and tp.labels.dtype == np.int64


def test_sample_patches_breast_only_negatives() -> None:
    """min_breast = 0.7: negatives centred in the tissue with >= 70 % of it: columns left in
    {0, 32, 64} (at 96 only half is tissue), 21 squares less the 6 that meet the disc = 15."""
    from engine.models.an import sample_patches

    tp = sample_patches(_an_breast_and_disc(), [(224.0, 224.0, 40.0)], scale=0.5, patch=64, stride=32,
                        min_breast=0.7)
    assert int((tp.labels == 0).sum()) == 15 and tp.labels[0] == 1
    assert all(c < 128 for r, c in tp.centres[1:]) and all(p.min() > 0 for p in tp.patches[1:])


def test_heatmap_target_and_fcn_shapes() -> None:
    from engine.models.an import heatmap_loss, heatmap_target

    t = heatmap_target([(64.0, 192.0, 10.0)], (256, 256))
    assert t.shape == (32, 32) and t.max() == pytest.approx(1.0)
    r, c = np.unravel_index(np.argmax(t), t.shape)
    assert abs(r - 24) <= 1 and abs(c - 8) <= 1
    base = get_model("an_heatmap_fcn")
    local = get_model("an_heatmap_fcn_local")
    x = torch.rand(1, 1, 256, 256)
    assert base(x).shape == (1, 1, 32, 32)
    assert local(x, torch.rand(1, 1, 13, 13)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="local map"):
        local(x)
    assert float(heatmap_loss(base(x), torch.from_numpy(t)[None, None]).detach()) > 0


# -- Habib 2020 ---------------------------------------------------------------------------------
def test_lmcl_margin_and_lesion_mean() -> None:
    from engine.models.habib import CosFaceHead, lesion_mean_scores, lmcl_loss

    logits = torch.tensor([[5.0, 5.0]])
    y = torch.tensor([1])
    plain = torch.nn.functional.cross_entropy(logits, y)
    assert float(lmcl_loss(logits, y, s=10.0, m=0.2)) > float(plain)  # margin makes it harder
    head = CosFaceHead(8, 2, s=30.0)
    out = head(torch.randn(4, 8))
    assert out.abs().max() <= 30.0 + 1e-4
    assert lesion_mean_scores([0.2, 0.4, 0.9], ["a", "a", "b"]) == pytest.approx({"a": 0.3, "b": 0.9})


@pytest.mark.parametrize("loss", ["bce", "lmcl"])
def test_habib_end_to_end_sum_of_three_losses(loss: str) -> None:
    from engine.models.habib import end_to_end_loss

    torch.manual_seed(0)
    joint = get_model("habib_joint", arch="basic", loss=loss).eval()  # no dropout: two passes agree
    mg, us = joint.example_inputs(batch=4, size=32)
    y = torch.tensor([0, 1, 0, 1])
    lm, lu, lf = joint.forward_all(mg, us)
    total = end_to_end_loss(joint, mg, us, y)
    expect = joint.mg.loss(lm, y) + joint.us.loss(lu, y) + joint.fusion.loss(lf, y)
    assert float(total) == pytest.approx(float(expect), rel=1e-5)
    total.backward()
    assert joint.mg.body.body[0].weight.grad is not None and joint.fusion.body[0].weight.grad is not None
    layers = [m for m in joint.fusion.modules() if isinstance(m, torch.nn.Linear)]
    n_head = 0 if loss == "bce" else 1  # the LMCL head is a CosFace layer, not nn.Linear
    assert len(layers) + n_head == 7
    assert joint.mg.descriptor(mg).shape == (4, 512)


def test_habib_lesion_patch_from_contour() -> None:
    from engine.models.habib import lesion_patch

    img = np.zeros((100, 120), np.float32)
    img[40:60, 50:80] = 1.0
    patch = lesion_patch(img, [[50, 40], [79, 40], [79, 59], [50, 59]], margin=0.0, size=32)
    assert patch.shape == (32, 32) and patch.mean() > 0.9
    wide = lesion_patch(img, [[50, 40], [79, 59]], margin=0.5, size=32)
    assert 0.2 < wide.mean() < 0.6  # context around the lesion


def test_hijab_freezing_and_sgd() -> None:
    from engine.models.hijab import hijab_sgd

    torch.manual_seed(0)
    ft = get_model("hijab_vgg16_finetune", pretrained=False)
    trainable = {n.split(".")[1] for n, p in ft.named_parameters() if p.requires_grad and n.startswith("features")}
    assert trainable == {"24", "26", "28"}  # conv5_1..conv5_3 only
    fr = get_model("hijab_vgg16_frozen", pretrained=False)
    assert not any(p.requires_grad for p in fr.features.parameters())
    opt = hijab_sgd(ft)
    assert isinstance(opt, torch.optim.SGD)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) < sum(p.numel() for p in ft.parameters())


# -- Qi 2019 ------------------------------------------------------------------------------------
def test_five_crops_and_random_crop() -> None:
    from engine.models.qi import five_crops, random_crop

    img = torch.arange(100 * 200, dtype=torch.float32).reshape(1, 100, 200)
    crops = five_crops(img, size=50)
    assert crops.shape == (5, 1, 50, 50)
    # uniformly spaced along the long side: first at the left edge, last at the right edge
    assert torch.allclose(crops[0, 0, :, 0], torch.nn.functional.interpolate(img[None], size=(50, 100),
                          mode="bilinear", align_corners=False, antialias=True)[0, 0, :, 0])
    # ... and the last crop is flush with the far (right) edge: its last column is the image's
    rs = torch.nn.functional.interpolate(img[None], size=(50, 100), mode="bilinear", align_corners=False,
                                         antialias=True)[0, 0]
    assert torch.allclose(crops[4, 0, :, -1], rs[:, -1]) and torch.allclose(crops[2, 0], rs[:, 25:75])
    assert random_crop(img, 50, random.Random(0)).shape == (1, 50, 50)


def test_cascade_advice() -> None:
    from engine.models.qi import ADVICE_FOLLOW_UP, ADVICE_FURTHER, cascade_advice

    assert cascade_advice(0.9, 0.1) == ADVICE_FURTHER == "further examination advised"
    assert cascade_advice(0.1, 0.7) == ADVICE_FURTHER
    assert cascade_advice(0.1, 0.2) == ADVICE_FOLLOW_UP == "periodic follow-up"


# -- MRI supervised attention -------------------------------------------------------------------
def test_attention_pool_eq2() -> None:
    from engine.models.mri_attention import attention_pool

    f = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(1, 2, 2, 3)
    uniform = torch.ones(1, 1, 2, 3)
    assert torch.allclose(attention_pool(f, uniform), f.mean(dim=(2, 3)), atol=1e-5)  # Eq. 1
    one = torch.zeros(1, 1, 2, 3)
    one[0, 0, 1, 2] = 1.0
    assert torch.allclose(attention_pool(f, one), f[:, :, 1, 2], atol=1e-4)


def test_boxes_to_mask_and_multitask_loss() -> None:
    from engine.models.mri_attention import MRI_OUTPUTS, boxes_to_mask, mri_multitask_loss

    m = boxes_to_mask([(0, 0, 100, 60)], (240, 345), (8, 11))
    assert m.shape == (1, 8, 11)
    assert m[0, 0, 0] == 1 and m[0, 7, 10] == 0 and m[0, :2, :3].all()
    assert len(MRI_OUTPUTS) == 5 and MRI_OUTPUTS[0] == "malignant"
    torch.manual_seed(0)
    net = get_model("mri_attention_resnet50", pretrained=False)
    x = torch.rand(2, 1, 96, 128)
    logits, att = net.forward_with_attention(x)
    assert logits.shape == (2, 5) and att.shape == (2, 1, 3, 4)
    masks = torch.stack([boxes_to_mask([(10, 10, 50, 40)], (96, 128), (3, 4))] * 2)
    loss = mri_multitask_loss(logits, torch.zeros(2, 5), att, masks)
    loss.backward()
    assert net.attention.weight.grad is not None and float(net.attention.weight.grad.abs().sum()) > 0


def test_mri_backbone_option_resnet18_34_and_50_unchanged() -> None:
    """``backbone`` picks the trunk; the attention/Eq. 2/5-output head follows its channel count."""
    from engine.models.mri_attention import MRIAttentionNet, attention_pool

    torch.manual_seed(0)
    r18 = get_model("mri_attention_resnet18", pretrained=False).eval()
    assert r18.backbone == "resnet18" and r18.attention.in_channels == 512 and r18.fc.in_features == 512
    r50 = get_model("mri_attention_resnet50", pretrained=False)
    assert r50.backbone == "resnet50" and tuple(r50.attention.weight.shape) == (1, 2048, 1, 1)
    assert sum(p.numel() for p in r18.parameters()) < 0.5 * sum(p.numel() for p in r50.parameters())
    r34 = get_model("mri_attention_resnet18", pretrained=False, backbone="resnet34")
    assert r34.backbone == "resnet34" and len(r34.trunk[-1]) == 3  # layer4 of ResNet-34: 3 blocks
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        f = r18.forward_features(x)
        logits, att = r18.forward_with_attention(x)
        assert f.shape == (2, 512, 2, 3) and att.shape == (2, 1, 2, 3)
        assert torch.allclose(logits, r18.fc(attention_pool(f, r18.attention_map(f))), atol=1e-5)
        assert torch.allclose(r18.forward_head(f), logits, atol=1e-5)
    with pytest.raises(ValueError, match="backbone"):
        MRIAttentionNet(pretrained=False, backbone="vgg16")


def test_challenge_score_reproduces_table3_and_best_per_task() -> None:
    from engine.models.mri_attention import BestPerTask, challenge_score

    table3 = {"malignant": 0.869, "mammary_gland": 0.728, "other_benign": 0.659, "idc": 0.805,
              "other_malignant": 0.761}
    assert round(challenge_score(table3), 3) == 0.817
    with pytest.raises(ValueError, match="idc"):
        challenge_score({k: v for k, v in table3.items() if k != "idc"})
    net = torch.nn.Linear(2, 1)
    keep = BestPerTask()
    assert keep.update(0, {"detection": 0.6, "malignancy": 0.7, "classification": 0.5}, net) == [
        "detection", "malignancy", "classification"]
    with torch.no_grad():
        net.weight.fill_(3.0)
    assert keep.update(1, {"detection": 0.8, "malignancy": 0.65, "classification": 0.5}, net) == ["detection"]
    assert float(keep.states["detection"]["weight"][0, 0]) == 3.0
    assert float(keep.states["malignancy"]["weight"][0, 0]) != 3.0 and keep.epochs["malignancy"] == 0


def test_grayscale_adapt_equals_replicate() -> None:
    """Summing first-conv kernels (adapt) equals replicating the gray channel three times."""
    torch.manual_seed(0)
    rep = get_model("efficientnet_lite0", in_chans=1, gray="replicate").eval()
    ada = get_model("efficientnet_lite0", in_chans=1, gray="adapt").eval()
    ada.head.load_state_dict(rep.head.state_dict())
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rep(x), ada(x), atol=1e-4)
    assert "ImageNet" in rep.init_description
