"""DCE-MRI kinetics: time–intensity curves, BI-RADS MRI lexicon curve classes, kinetic maps.

Definitions (ACR BI-RADS Atlas, 5th edition, 2013, Magnetic Resonance Imaging, "Kinetic curve
assessment"): the *initial phase* is the enhancement within the first 2 minutes after contrast
injection (or until the curve starts to change), described as **slow**, **medium** or
**fast**; the *delayed phase* is the shape of the curve after that, described as
**persistent** (signal keeps rising), **plateau** (signal stays constant) or **washout**
(signal falls).

The Atlas describes the classes; the numerical thresholds are the ones commonly used to
operationalise them (and by commercial CAD), which we adopt:

* initial phase, percent enhancement over the pre-contrast signal
  ``PE = 100 (S_init − S_pre) / S_pre``: **slow** < 50 %, **medium** 50–100 %, **fast** > 100 %;
* delayed phase, change of the last phase's signal relative to the initial-phase signal
  ``D = 100 (S_last − S_init) / S_init``: **persistent** D > +10 %, **plateau** −10 % ≤ D ≤ +10 %,
  **washout** D < −10 % — the ±10 % band of Kuhl CK et al., *Dynamic breast MR imaging: are
  signal intensity time course data useful for differential diagnosis of enhancing lesions?*
  Radiology 211:101–110 (1999), whose curve types I/II/III these are.

*Initial signal* ``S_init``: when phase times are known (seconds after the pre-contrast
acquisition), the highest signal among the post-contrast phases acquired within 120 s, or the
first post-contrast phase when none is; when times are unknown (only the phase order, as in
mimbcd-dev), the first post-contrast phase. The delayed phase needs at least one post-contrast
phase after the initial one; otherwise it is None.

These are decision-support measurements: the class of a curve depends on the ROI, the
protocol's timing and the scanner; it is not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.errors import BreastReaderError

InitialClass = Literal["slow", "medium", "fast"]
DelayedClass = Literal["persistent", "plateau", "washout"]

#: Initial-phase percent-enhancement thresholds (slow < 50 <= medium <= 100 < fast).
INITIAL_SLOW_BELOW = 50.0
INITIAL_FAST_ABOVE = 100.0
#: Delayed-phase band (percent change vs the initial signal): |D| <= 10 is a plateau.
DELAYED_BAND = 10.0
#: The initial phase ends this many seconds after the pre-contrast acquisition.
INITIAL_PHASE_S = 120.0
#: Map codes and their colours (RGB) in :func:`kinetic_map` / :func:`kinetic_rgba`.
MAP_CODES: dict[int, str] = {0: "none", 1: "persistent", 2: "plateau", 3: "washout"}
MAP_COLOURS: dict[int, tuple[int, int, int]] = {1: (40, 90, 255), 2: (255, 220, 0), 3: (255, 30, 30)}
#: A curve source used in citations of the classes.
SOURCE = ("ACR BI-RADS Atlas 5th ed. (2013), MRI kinetic curve assessment; thresholds: initial "
          "<50 % slow, 50-100 % medium, >100 % fast; delayed +/-10 % of the initial signal "
          "(Kuhl et al., Radiology 211:101-110, 1999)")


class KineticsError(BreastReaderError):
    """Kinetics cannot be computed (no pre-contrast phase, empty ROI, mismatched phases)."""


def initial_class(pe: float) -> InitialClass:
    """BI-RADS initial-phase class of a percent enhancement (thresholds in the module docstring)."""
    if pe < INITIAL_SLOW_BELOW:
        return "slow"
    if pe > INITIAL_FAST_ABOVE:
        return "fast"
    return "medium"


def delayed_class(change_pct: float) -> DelayedClass:
    """BI-RADS delayed-phase class of the signal change after the initial phase (percent)."""
    if change_pct > DELAYED_BAND:
        return "persistent"
    if change_pct < -DELAYED_BAND:
        return "washout"
    return "plateau"


def _initial_index(times: Sequence[float] | None, n_post: int, signal_post: Sequence[float]) -> int:
    """Index (into the post-contrast phases) of the initial-phase signal."""
    if times is None:
        return 0
    early = [i for i, t in enumerate(times) if t <= INITIAL_PHASE_S]
    if not early:
        return 0
    return max(early, key=lambda i: signal_post[i])


@dataclass(frozen=True)
class KineticCurve:
    """A time–intensity curve and its classes.

    Attributes:
        phases: Phase index of each point (0 = pre-contrast).
        x: Abscissa: seconds after the pre-contrast acquisition when known, else the phase index.
        x_unit: "s" or "phase".
        signal: Mean ROI signal per phase.
        enhancement_pct: Percent enhancement over the pre-contrast signal per phase (0 for pre).
        initial_pct: Percent enhancement of the initial phase.
        initial: Initial-phase class.
        delayed_pct: Signal change of the last phase vs the initial one (percent), or None.
        delayed: Delayed-phase class, or None with fewer than two post-contrast points.
        n_voxels: ROI size.
    """

    phases: tuple[int, ...]
    x: tuple[float, ...]
    x_unit: str
    signal: tuple[float, ...]
    enhancement_pct: tuple[float, ...]
    initial_pct: float
    initial: InitialClass
    delayed_pct: float | None
    delayed: DelayedClass | None
    n_voxels: int

    @property
    def label(self) -> str:
        """E.g. "fast / washout" (or "fast / — (1 post phase)")."""
        return f"{self.initial} / {self.delayed or '— (needs 2+ post phases)'}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (for case exports), with the thresholds' source."""
        return {
            "phases": list(self.phases), "x": list(self.x), "x_unit": self.x_unit,
            "signal": [round(v, 3) for v in self.signal],
            "enhancement_pct": [round(v, 2) for v in self.enhancement_pct],
            "initial_pct": round(self.initial_pct, 2), "initial": self.initial,
            "delayed_pct": None if self.delayed_pct is None else round(self.delayed_pct, 2),
            "delayed": self.delayed, "n_voxels": self.n_voxels, "source": SOURCE,
        }


def classify_curve(signal: Sequence[float], times: Sequence[float] | None = None,
                   phases: Sequence[int] | None = None, n_voxels: int = 0) -> KineticCurve:
    """Classify a time–intensity curve whose first point is the pre-contrast signal.

    Args:
        signal: Mean signal of the pre-contrast phase then each post-contrast phase, in order.
        times: Seconds after the pre-contrast acquisition of every point (first 0), or None
            when only the order is known.
        phases: Phase index of each point (default 0, 1, 2, ...).
        n_voxels: ROI size, recorded.

    Returns:
        The :class:`KineticCurve`.

    Raises:
        KineticsError: Fewer than two points, or a non-positive pre-contrast signal.
    """
    s = [float(v) for v in signal]
    if len(s) < 2:
        raise KineticsError("a time-intensity curve needs the pre-contrast and at least one post-contrast phase")
    if times is not None and len(times) != len(s):
        raise KineticsError(f"{len(times)} phase times for {len(s)} phases")
    pre = s[0]
    if not pre > 0:
        raise KineticsError(f"pre-contrast signal is {pre:g}: percent enhancement is undefined (ROI on background?)")
    ph = tuple(int(p) for p in phases) if phases is not None else tuple(range(len(s)))
    pe = [100.0 * (v - pre) / pre for v in s]
    post = s[1:]
    post_t = [float(t) for t in times[1:]] if times is not None else None
    i0 = _initial_index(post_t, len(post), post)
    s_init = post[i0]
    initial_pct = pe[1 + i0]
    delayed_pct: float | None = None
    delayed: DelayedClass | None = None
    if len(post) - 1 > i0 and s_init > 0:
        delayed_pct = 100.0 * (post[-1] - s_init) / s_init
        delayed = delayed_class(delayed_pct)
    x = tuple(float(t) for t in times) if times is not None else tuple(float(p) for p in ph)
    return KineticCurve(ph, x, "s" if times is not None else "phase", tuple(s), tuple(pe), initial_pct,
                        initial_class(initial_pct), delayed_pct, delayed, n_voxels)


def time_intensity_curve(phases: Sequence[np.ndarray], mask: np.ndarray, *, times: Sequence[float] | None = None,
                         phase_indices: Sequence[int] | None = None) -> KineticCurve:
    """Mean signal in ``mask`` over the phases, classified (see :func:`classify_curve`).

    Args:
        phases: Pre-contrast then post-contrast arrays (slices or volumes), all one shape.
        mask: Boolean ROI of that shape (a box or contour rasterised by :func:`roi_mask`).
        times: As for :func:`classify_curve`.
        phase_indices: Phase index of each array (default 0, 1, ...).

    Raises:
        KineticsError: Empty ROI, shape mismatch, no post-contrast phase.
    """
    m = np.asarray(mask, bool)
    if not m.any():
        raise KineticsError("the region of interest is empty")
    means = []
    for i, a in enumerate(phases):
        if a.shape != m.shape:
            raise KineticsError(f"phase {i} has shape {a.shape}, the ROI {m.shape}")
        means.append(float(np.asarray(a, np.float64)[m].mean()))
    return classify_curve(means, times, phase_indices, int(m.sum()))


def roi_mask(shape: tuple[int, int], kind: str, points: Sequence[Sequence[float]]) -> np.ndarray:
    """Rasterise an annotation (``box`` from two corners, or ``polygon``/``freehand`` points in
    (x, y) = (column, row) pixel coordinates) into a boolean mask of ``shape`` (rows, cols)."""
    from PIL import Image, ImageDraw

    rows, cols = shape
    pts = [(float(p[0]), float(p[1])) for p in points]
    img = Image.new("1", (cols, rows), 0)
    draw = ImageDraw.Draw(img)
    if kind == "box":
        if len(pts) < 2:
            raise KineticsError("a box needs two corners")
        (x0, y0), (x1, y1) = pts[0], pts[-1]
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1)
    else:
        if len(pts) < 3:
            raise KineticsError("a contour needs at least three points")
        draw.polygon(pts, fill=1)
    return np.asarray(img, bool)


def kinetic_map(phases: Sequence[np.ndarray], *, threshold_pct: float = 50.0,
                times: Sequence[float] | None = None, min_pre: float | None = None,
                smooth: int = 3) -> dict[str, np.ndarray]:
    """Per-voxel kinetic classes of the voxels whose initial enhancement reaches ``threshold_pct``.

    Args:
        phases: Pre-contrast then post-contrast arrays on one grid.
        threshold_pct: Initial percent enhancement a voxel needs to be coloured (50 % by default:
            the slow/medium boundary, so slowly enhancing parenchyma stays grey).
        times: Seconds after the pre-contrast phase (first 0), or None (order only).
        min_pre: Voxels with a lower pre-contrast signal are background (default 10 % of the
            pre-contrast 99th percentile), so noise in air is not called enhancement.
        smooth: In-plane box filter (pixels) applied to every phase first, as CAD systems do,
            so single noisy voxels are not coloured; 1 disables it.

    Returns:
        ``codes`` uint8 (0 none, 1 persistent, 2 plateau, 3 washout; see :data:`MAP_CODES`),
        ``initial_pct`` float32 and ``delayed_pct`` float32 (NaN where undefined).

    Raises:
        KineticsError: Fewer than two post-contrast phases or mismatched shapes.
    """
    if len(phases) < 3:
        raise KineticsError("a kinetic map needs the pre-contrast and at least two post-contrast phases")
    shape = phases[0].shape
    if any(p.shape != shape for p in phases):
        raise KineticsError("the phases have different shapes")
    from scipy import ndimage

    size = (1,) * (len(shape) - 2) + (smooth, smooth) if smooth > 1 else None

    def prep(a: np.ndarray) -> np.ndarray:
        f = np.asarray(a, np.float32)
        return ndimage.uniform_filter(f, size) if size is not None else f

    pre = prep(phases[0])
    post = np.stack([prep(p) for p in phases[1:]])
    floor = float(min_pre) if min_pre is not None else 0.10 * float(np.percentile(pre, 99))
    valid = pre > max(floor, 1e-6)
    safe_pre = np.where(valid, pre, 1.0)
    if times is None:
        s_init = post[0]
    else:
        post_t = list(times[1:])
        early = [i for i, t in enumerate(post_t) if t <= INITIAL_PHASE_S] or [0]
        s_init = post[early].max(axis=0)
        if max(early) == len(post_t) - 1:
            raise KineticsError("every post-contrast phase is within the initial 120 s: no delayed phase")
    initial = 100.0 * (s_init - safe_pre) / safe_pre
    delayed = 100.0 * (post[-1] - s_init) / np.where(s_init > 0, s_init, 1.0)
    codes = np.zeros(shape, np.uint8)
    on = valid & (initial >= threshold_pct) & (s_init > 0)
    codes[on & (delayed > DELAYED_BAND)] = 1
    codes[on & (np.abs(delayed) <= DELAYED_BAND)] = 2
    codes[on & (delayed < -DELAYED_BAND)] = 3
    return {"codes": codes, "initial_pct": np.where(valid, initial, np.nan).astype(np.float32),
            "delayed_pct": np.where(on, delayed, np.nan).astype(np.float32)}


def kinetic_rgba(codes: np.ndarray, alpha: int = 150) -> np.ndarray:
    """An RGBA (…, 4) uint8 overlay of map codes: blue persistent, yellow plateau, red washout."""
    out = np.zeros(codes.shape + (4,), np.uint8)
    for code, rgb in MAP_COLOURS.items():
        sel = codes == code
        out[sel, :3] = rgb
        out[sel, 3] = alpha
    return out
