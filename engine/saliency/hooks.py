"""Forward/backward hooks in one place, always removed by a context manager.

Mirrors pytorch-grad-cam ``activations_and_gradients.py`` and MONAI ``class_activation_maps.py``:
hooks record a module's output (and the gradient flowing into it) and are removed when the
``with`` block ends, even on error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class Recorded:
    """What a :func:`record` block captured (last call wins)."""

    activation: torch.Tensor | None = None
    gradient: torch.Tensor | None = None
    _tensor_hooks: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)


@contextmanager
def record(module: nn.Module, *, gradients: bool = False) -> Iterator[Recorded]:
    """Record ``module``'s output (and its gradient when ``gradients``) during the block.

    Yields:
        A :class:`Recorded` filled by the forward (and backward) passes run inside the block.
    """
    rec = Recorded()

    def _fwd(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        rec.activation = out
        if gradients and isinstance(out, torch.Tensor) and out.requires_grad:

            def _grad(g: torch.Tensor) -> None:
                rec.gradient = g

            rec._tensor_hooks.append(out.register_hook(_grad))

    handle = module.register_forward_hook(_fwd)
    try:
        yield rec
    finally:
        handle.remove()
        for h in rec._tensor_hooks:
            h.remove()
        rec._tensor_hooks.clear()


def count_hooks(model: nn.Module) -> int:
    """Number of forward / pre-forward / backward hooks registered anywhere in ``model``."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_full_backward_hooks", {}) or {})
        n += len(getattr(m, "_full_backward_pre_hooks", {}) or {})
    return n
