"""Smoke test over EVERY registered model: build, forward tiny inputs, one optimiser step."""

from __future__ import annotations

import pytest
import torch

from engine.errors import PretrainedWeightsMissingError
from engine.models import get_model, list_models, model_info

torch.set_num_threads(1)

# Smallest inputs each architecture accepts (valid convolutions / Inception stems need more).
SIZES = {"an_patch_classifier": 256, "qi_mtnet": 75, "qi_snnet": 75, "qi_mtnet_snnet_rem": 75, "an_heatmap_fcn": 32,
         "an_heatmap_fcn_local": 32}
# Shallow copies of the two biggest nets keep the suite fast; the full depth is built in
# test_models_full_depth (slow).
CFG = {"qi_mtnet": {"repeats": (1, 1, 1)}, "qi_mtnet_snnet_rem": {"repeats": (1, 1, 1), "pretrained": False}}


def _output(model: torch.nn.Module, out: torch.Tensor) -> None:
    n = getattr(model, "num_outputs", None)
    if n:
        assert out.shape[0] == 2 and out.shape[1] == n


@pytest.mark.parametrize("name", [m.name for m in list_models()])
def test_every_model_forward_and_step(name: str) -> None:
    torch.manual_seed(0)
    info = model_info(name)
    assert info.paper and info.modalities
    try:
        model = get_model(name, **CFG.get(name, {}))
    except PretrainedWeightsMissingError as exc:
        # no ImageNet checkpoint on this machine: a clear error, never silently random features
        assert ".pth" in str(exc) and "pretrained=false" in str(exc)
        model = get_model(name, **{**CFG.get(name, {}), "pretrained": False})
    assert isinstance(getattr(model, "init_description", None), str) and model.init_description
    model.train()
    inputs = model.example_inputs(batch=2, size=SIZES.get(name, 32))
    out = model(*inputs)
    assert torch.isfinite(out).all()
    _output(model, out)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in params]
    loss = out.float().pow(2).mean() + out.float().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = sum(int(not torch.equal(b, p.detach())) for b, p in zip(before, params))
    assert changed > 0, "one optimiser step changed no parameter"
    if hasattr(model, "saliency_module") and info.saliency:
        assert model.saliency_module() is not None


def test_pretrained_without_its_weights_names_the_file_and_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path) -> None:
    """pretrained=True with an empty torch hub cache: one clear error, naming the file (issue 11)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for name, file in (("hijab_vgg16_finetune", "vgg16-397923af.pth"), ("qi_snnet", "inception_v3_google-0cc3c7bd.pth"),
                       ("mri_attention_resnet50", "resnet50-")):
        with pytest.raises(PretrainedWeightsMissingError) as ei:
            get_model(name, pretrained=True)
        msg = str(ei.value)
        assert str(tmp_path / "hub" / "checkpoints") in msg and file in msg
        assert "https://download.pytorch.org/models/" in msg and "pretrained=false" in msg
    assert "random" in get_model("hijab_vgg16_finetune", pretrained=False).init_description
