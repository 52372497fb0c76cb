"""The default breast MRI hanging protocol and derived (computed) volumes.

Default protocol, left to right, as many viewports as the study fills:

1. **subtraction** of the first post-contrast phase — the scanner's, else one computed as
   post1 − pre; else the first post-contrast phase itself (no pre-contrast to subtract);
2. **pre-contrast** T1 (the dynamic's phase 0);
3. **T2** (T2 TSE before TIRM/STIR; a non-dynamic T1 when there is no T2);
4. **DWI** at its highest b-value, or **ADC** when there is no DWI (the ADC is offered too).

Without a pre-contrast phase the last other post-contrast phase takes the second viewport.
Single-phase studies (one DCE phase, or one subtraction) fill one viewport.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.errors import BreastReaderError
from engine.mri.geometry import VolumeGeometry
from engine.mri.series import DynamicAcquisition, MrStudy, MrVolume
from engine.mri.subtraction import mip, same_grid, subtract
from engine.progress import CancelToken


@dataclass(frozen=True)
class Slot:
    """One viewport of the protocol.

    Attributes:
        role: "subtraction", "post", "pre", "t2", "t1", "dwi", "adc".
        key: Key of the volume to show; computed volumes have keys starting with "computed:".
        title: Viewport title.
    """

    role: str
    key: str
    title: str


def computed_subtraction(dyn: DynamicAcquisition, phase: int, *, cancel: CancelToken | None = None) -> MrVolume:
    """``post_phase − pre`` of a dynamic acquisition as a new (loaded) volume.

    The difference is stored without offset (negative where the signal fell), as float-free
    int32. Both phases must lie on the same slice grid.

    Raises:
        BreastReaderError: The phase or the pre-contrast phase is missing, or the grids differ.
    """
    if 0 not in dyn.phases or phase not in dyn.phases:
        raise BreastReaderError(f"cannot compute a subtraction of phase {phase}: "
                                f"the study has phases {dyn.phase_indices}")
    pre, post = dyn.phases[0], dyn.phases[phase]
    if pre.geometry is not None and post.geometry is not None and not same_grid(pre.geometry.offsets,
                                                                                  post.geometry.offsets):
        raise BreastReaderError(f"{post.label} and {pre.label} have different slice positions")
    pixels = subtract(post.load(cancel=cancel), pre.load(cancel=cancel))
    return replace(post, key=f"computed:sub:{phase}", kind="subtraction", description=f"computed post{phase} - pre",
                   pixels=pixels, sort_rule=post.sort_rule)


def computed_mip(volume: MrVolume, *, cancel: CancelToken | None = None) -> MrVolume:
    """The MIP along the slice normal of a (subtraction) volume, as a one-frame volume whose
    geometry is the volume's first slice (so orientation labels still apply)."""
    pixels = mip(volume.load(cancel=cancel))[None]
    geom = volume.geometry
    one: VolumeGeometry | None = replace(geom, positions=geom.positions[:1]) if geom is not None else None
    return replace(volume, key=f"computed:mip:{volume.key}", kind="mip", detail="computed",
                   description=f"MIP of {volume.label}", pixels=pixels, geometry=one)


def subtraction_for(study: MrStudy, phase: int, *, cancel: CancelToken | None = None) -> MrVolume | None:
    """The scanner's subtraction of ``phase``, else a computed one, else None."""
    dyn = study.main_dynamic
    if dyn is None:
        return None
    if phase in dyn.subtractions:
        return dyn.subtractions[phase]
    if 0 in dyn.phases and phase in dyn.phases:
        return computed_subtraction(dyn, phase, cancel=cancel)
    return None


def default_protocol(study: MrStudy) -> list[Slot]:
    """The default hanging (see module docstring) as slots; computed volumes are named
    ``computed:sub:<phase>`` (load them with :func:`subtraction_for`)."""
    slots: list[Slot] = []
    dyn = study.main_dynamic
    if dyn is not None:
        posts = [p for p in dyn.phase_indices if p > 0] + [p for p in sorted(dyn.subtractions) if p not in dyn.phases]
        first = min(posts) if posts else None
        if first is not None and first in dyn.subtractions:
            slots.append(Slot("subtraction", dyn.subtractions[first].key, f"SUB post {first} − pre (scanner)"))
        elif first is not None and dyn.has_pre and first in dyn.phases:
            slots.append(Slot("subtraction", f"computed:sub:{first}", f"SUB post {first} − pre (computed)"))
        elif first is not None and first in dyn.phases:
            slots.append(Slot("post", dyn.phases[first].key, f"DCE post {first} (no pre-contrast to subtract)"))
        if dyn.has_pre:
            slots.append(Slot("pre", dyn.phases[0].key, "DCE pre-contrast"))
        elif first is not None and len(dyn.phases) > 1:
            last = max(dyn.phases)
            slots.append(Slot("post", dyn.phases[last].key, f"DCE post {last}"))
    t2 = sorted(study.of_kind("t2"), key=lambda v: ("tirm" in v.description.lower() or "stir" in v.description.lower(),
                                                     v.series_number))
    if t2:
        slots.append(Slot("t2", t2[0].key, f"T2 {t2[0].description}"))
    elif study.of_kind("t1"):
        t1 = study.of_kind("t1")[0]
        slots.append(Slot("t1", t1.key, f"T1 {t1.description}"))
    dwi = sorted(study.of_kind("dwi"), key=lambda v: -(v.b_value or 0))
    adc = study.of_kind("adc")
    if dwi:
        slots.append(Slot("dwi", dwi[0].key, dwi[0].label))
    elif adc:
        slots.append(Slot("adc", adc[0].key, "ADC"))
    if not slots and study.volumes:
        v = study.volumes[0]
        slots.append(Slot(v.kind, v.key, v.label))
    return slots


def window_for(pixels: np.ndarray) -> tuple[float, float]:
    """A display window (centre, width) from the 1st–99.5th percentiles of a volume."""
    sample = pixels[:: max(1, pixels.shape[0] // 8)].ravel()
    if sample.size > 400_000:
        sample = sample[:: sample.size // 400_000]
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.5]))
    if hi <= lo:
        hi = lo + 1
    return (lo + hi) / 2, hi - lo
