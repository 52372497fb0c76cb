"""Models of the five seed papers. Importing this package registers every family.

Each family lives in its own module and registers keyword-only builders with
:func:`engine.models.registry.register_model`. Add new family modules to ``_FAMILIES``.
"""

from __future__ import annotations

import importlib

from engine import _torchvision_shim

_torchvision_shim.ensure()

from engine.models.registry import get_model, list_models, model_info, register_model  # noqa: E402

_FAMILIES: tuple[str, ...] = ("efficientnet_lite", "hijab", "habib", "qi", "an", "mri_attention", "us_lesion", "mg_lesion")

for _mod in _FAMILIES:
    importlib.import_module(f"engine.models.{_mod}")

__all__ = ["get_model", "list_models", "model_info", "register_model"]
