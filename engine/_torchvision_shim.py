"""Make ``import torchvision`` work on CPU-only torch builds.

Why: the only torchvision==0.28.0 wheel on PyPI is built against CUDA torch. On the local
CPU build of torch 2.13.0 its C++ extension does not load, and ``torchvision/_meta_registrations``
then fails with ``RuntimeError: operator torchvision::nms does not exist`` at import time.
Defining the two op *schemas* (no kernels) in a FRAGMENT library lets the Python package
import, so the model definitions (``torchvision.models``) work. ``torchvision.ops.nms`` and
``torchvision.io`` remain unusable on such machines; breast-reader never uses them (images are
read with pydicom/OpenCV/Pillow). On CUDA builds of torch this does nothing.

Call :func:`ensure` before the first ``import torchvision`` (``engine.models`` does).
"""

from __future__ import annotations

from typing import Any

# The Library object must stay referenced: its schemas are removed when it is collected.
# False once we decided no shim is needed (CUDA torch, or the ops already exist).
_LIB: Any = None


def ensure() -> None:
    """Register the torchvision op schemas once, only when torch has no CUDA."""
    global _LIB
    if _LIB is not None:
        return
    import torch

    if torch.version.cuda is not None:
        _LIB = False
        return
    lib: Any
    try:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:
        # Already defined (torchvision's own extension loaded, or a second shim): fine.
        lib = False
    _LIB = lib
