"""Model registry: one architecture family per module, keyword-only builders registered by name.

Mirrors torchvision ``models/_api.py``: ``register_model`` refuses duplicates, ``get_model``
builds by name with keyword configuration, ``list_models`` lists what is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch.nn as nn

from engine.errors import ModelNotFoundError

F = TypeVar("F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is, for `breast-engine models` and the GUI.

    Attributes:
        name: Registry key, e.g. ``"hijab_vgg16_finetune"``.
        family: Module/family, e.g. ``"hijab"``.
        paper: Short citation of the paper that specifies it.
        modalities: Modalities it accepts (``"US"``, ``"MG"``, ``"MR"``, ``"MG+US"``).
        task: One line saying what it predicts.
        saliency: Saliency methods it supports (``"gradcam"``, ``"cam"``, ``"attention"``, ``"entropy"``).
        builder: The keyword-only builder.
    """

    name: str
    family: str
    paper: str
    modalities: tuple[str, ...]
    task: str
    saliency: tuple[str, ...] = ("gradcam",)
    builder: Callable[..., nn.Module] = field(default=nn.Identity, repr=False, compare=False)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    modalities: tuple[str, ...],
    task: str,
    saliency: tuple[str, ...] = ("gradcam",),
) -> Callable[[F], F]:
    """Decorator registering a keyword-only model builder under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def deco(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(name, family, paper, modalities, task, saliency, fn)
        return fn

    return deco


def _ensure_loaded() -> None:
    """Nothing to do: importing this module imports its package ``engine.models`` first, whose
    ``__init__`` registers every family (so the registry never imports back up: no cycle)."""


def get_model(name: str, **cfg: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword configuration ``cfg``.

    Raises:
        ModelNotFoundError: if no model has that name.
    """
    _ensure_loaded()
    info = _REGISTRY.get(name)
    if info is None:
        raise ModelNotFoundError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY)) or 'none'}"
        )
    return info.builder(**cfg)


def model_info(name: str) -> ModelInfo:
    """Return the :class:`ModelInfo` of ``name`` (raises :class:`ModelNotFoundError`)."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(f"unknown model {name!r}") from None


def list_models() -> list[ModelInfo]:
    """All registered models, sorted by name."""
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
