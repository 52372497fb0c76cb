"""Qt-free state of the MRI reading window: hanging, linked slices, phases, MIP, kinetics.

:class:`MriSession` holds an :class:`engine.mri.series.MrStudy` and the viewports of its
default hanging protocol (:func:`engine.mri.hanging.default_protocol`). Everything the window
shows is derived from it, so the behaviour is testable without a display:

- scrolling one viewport moves the others to the slice nearest the same patient point
  (:func:`engine.mri.geometry.link_slice`), whatever their spacing or orientation;
- phase stepping switches the subtraction/post-contrast viewports to the next phase
  (scanner subtraction when the study has it, computed post − pre otherwise);
- the MIP toggle replaces the subtraction viewport by its maximum intensity projection;
- a box or contour on a viewport on the dynamic's grid gives the time–intensity curve and its
  BI-RADS classes (:mod:`engine.mri.kinetics`) and the kinetic colour map of that slice.

Heavy work (decoding volumes, computing subtractions) happens in :meth:`MriSession.prepare`,
which the window runs on a worker thread.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BreastReaderError
from engine.mri.geometry import SliceLink, edge_labels, link_slice
from engine.mri.hanging import computed_mip, computed_subtraction, default_protocol
from engine.mri.kinetics import SOURCE, KineticCurve, kinetic_map, roi_mask, time_intensity_curve
from engine.mri.series import MrStudy, MrVolume, scan_study
from engine.mri.subtraction import same_grid
from engine.progress import CancelToken, ProgressCallback, check, report
from reader_app.state import Event

#: Warning shown wherever the synthetic-trained MRI model meets a real MRI.
MRI_AI_WARNING = ("The MRI malignancy model was trained on SYNTHETIC images only; on real scanner MRI "
                  "its score is not validated (on real DCE-MRI it ranked every benign lesion above "
                  "every malignant one). No MRI malignancy score is shown here.")


@dataclass
class Viewport:
    """One viewport: the volume shown, the slice, and its role in the protocol."""

    role: str
    key: str
    title: str
    slice: int = 0
    link: SliceLink | None = None


@dataclass
class RoiKinetics:
    """A kinetics measurement: the ROI, where it was drawn, and its curve."""

    viewport: int
    kind: str
    points: list[list[float]]
    slice: int
    slice_position_mm: float
    curve: KineticCurve
    series: list[str] = field(default_factory=list)


class MriSession:
    """State of one MRI study in the reading window (see module docstring).

    Events:
        changed(): anything shown changed (slices, volumes, kinetics, overlays).
    """

    def __init__(self, study: MrStudy, *, source_note: str = "") -> None:
        self.study = study
        self.source_note = source_note
        self.derived: dict[str, MrVolume] = {}
        self.problems: dict[str, str] = {}  # volume key -> why it could not be read
        self.viewports = [Viewport(s.role, s.key, s.title) for s in default_protocol(study)]
        if not self.viewports:
            raise BreastReaderError("the study has no MR volume to show")
        self.linked = True
        self.show_mip = False
        self.show_map = False
        self.map_threshold = 50.0
        self.point: tuple[float, float] | None = None  # (row, col) of the cursor on the active viewport
        self.active = 0
        self.kinetics: RoiKinetics | None = None
        dyn = study.main_dynamic
        self.post_phases = sorted({p for p in (dyn.phase_indices if dyn else []) if p > 0}
                                  | set(dyn.subtractions if dyn else []))
        first = next((vp for vp in self.viewports if vp.role in ("subtraction", "post")), None)
        self.phase = self._phase_of(first.key) if first is not None else None
        self.changed = Event()
        for vp in self.viewports:
            vol = self.volume(vp.key) if not vp.key.startswith("computed:") else None
            n = vol.n_slices if vol is not None else self._dce_slices()
            vp.slice = max(0, (n - 1) // 2)
        self._follow(0)

    # ------------------------------------------------------------------ volumes
    @classmethod
    def open(cls, paths: Any, *, source_note: str = "", progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None) -> MriSession:
        """Scan ``paths`` and prepare a session (worker-thread job)."""
        s = cls(scan_study(paths, progress=progress, cancel=cancel), source_note=source_note)
        s.prepare(progress=progress, cancel=cancel)
        return s

    def _dce_slices(self) -> int:
        dyn = self.study.main_dynamic
        if dyn and dyn.phases:
            return next(iter(dyn.phases.values())).n_slices
        return 1

    def _phase_of(self, key: str) -> int | None:
        if key.startswith("computed:sub:"):
            return int(key.rsplit(":", 1)[1])
        try:
            return self.study.volume(key).phase
        except KeyError:
            return None

    def volume(self, key: str) -> MrVolume:
        """A study volume, or a derived one (``computed:sub:<phase>``, ``computed:mip:<key>``)."""
        if key in self.derived:
            return self.derived[key]
        if key.startswith("computed:sub:"):
            dyn = self.study.main_dynamic
            if dyn is None:
                raise BreastReaderError("no dynamic series to subtract")
            v = computed_subtraction(dyn, int(key.rsplit(":", 1)[1]))
            self.derived[key] = v
            return v
        if key.startswith("computed:mip:"):
            v = computed_mip(self.volume(key[len("computed:mip:"):]))
            self.derived[key] = v
            return v
        return self.study.volume(key)

    def prepare(self, *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Decode every volume a viewport can show (protocol volumes, every DCE phase and
        subtraction) and compute the missing subtractions. Run it off the GUI thread."""
        dyn = self.study.main_dynamic
        keys = [vp.key for vp in self.viewports]
        if dyn is not None:
            keys += [v.key for v in dyn.phases.values()] + [v.key for v in dyn.subtractions.values()]
            keys += [self._sub_key(p) for p in self.post_phases]
        todo = [k for k in dict.fromkeys(k for k in keys if k)]
        for i, k in enumerate(todo):
            check(cancel)
            try:
                self.volume(k).load(cancel=cancel)
                if k.startswith("computed:sub:") or self.volume(k).kind == "subtraction":
                    self.volume(f"computed:mip:{k}")  # MIPs ready before the reader asks
            except BreastReaderError as exc:  # one bad series must not close the study
                self.problems[k] = str(exc)
            report(progress, i + 1, len(todo), f"loading {k if k in self.problems else self.volume(k).label}")
        bad = {i for i, vp in enumerate(self.viewports) if vp.key in self.problems}
        if bad and len(bad) == len(self.viewports):
            raise BreastReaderError("no MR series could be read: " + "; ".join(self.problems.values()))
        if bad:
            self.viewports = [vp for i, vp in enumerate(self.viewports) if i not in bad]
            self.active = 0

    def _sub_key(self, phase: int) -> str:
        dyn = self.study.main_dynamic
        if dyn is not None and phase in dyn.subtractions:
            return dyn.subtractions[phase].key
        if dyn is not None and dyn.has_pre and phase in dyn.phases:
            return f"computed:sub:{phase}"
        return ""

    def shown_key(self, i: int) -> str:
        """Key of the volume viewport ``i`` shows (its MIP when the MIP toggle is on)."""
        vp = self.viewports[i]
        if self.show_mip and vp.role == "subtraction":
            return f"computed:mip:{vp.key}"
        return vp.key

    def shown(self, i: int) -> MrVolume:
        """The volume viewport ``i`` shows."""
        return self.volume(self.shown_key(i))

    def image(self, i: int) -> np.ndarray:
        """The 2-D slice viewport ``i`` shows."""
        vol = self.shown(i)
        arr = vol.load()
        k = min(self.viewports[i].slice, arr.shape[0] - 1) if not (self.show_mip and self.viewports[i].role == "subtraction") else 0
        return np.asarray(arr[k])

    def labels(self, i: int) -> dict[str, str]:
        """Orientation letters of viewport ``i``'s edges (empty without geometry)."""
        g = self.shown(i).geometry
        return edge_labels(g) if g is not None else {}

    def slice_text(self, i: int) -> str:
        """E.g. "slice 5/24 · z −12.3 mm" (or "MIP", or the link's distance when off-slab)."""
        vol = self.shown(i)
        vp = self.viewports[i]
        if vol.kind == "mip" and vol.n_slices == 1 or (self.show_mip and vp.role == "subtraction"):
            return f"{vol.description or vol.label} · projection"
        text = f"slice {vp.slice + 1}/{vol.n_slices}"
        if vol.geometry is not None:
            text += f" · {float(vol.geometry.offsets[vp.slice]):+.1f} mm"
        if i != self.active and self.linked and vp.link is not None and not vp.link.inside:
            text += f" · outside this series ({vp.link.distance_mm:.1f} mm)"
        return text

    def choices(self) -> list[tuple[str, str]]:
        """(key, label) of every volume a viewport can show: the study's volumes and the
        subtractions that can be computed."""
        out = [(v.key, f"{v.label} · {v.description}" if v.kind in ("dce", "subtraction", "dwi") else v.label)
               for v in self.study.volumes]
        have = {k for k, _ in out}
        for p in self.post_phases:
            k = self._sub_key(p)
            if k and k not in have:
                out.append((k, f"SUB post {p} − pre (computed)"))
        return out

    def set_volume(self, i: int, key: str) -> None:
        """Show volume ``key`` in viewport ``i`` (load it first, off the GUI thread)."""
        vol = self.volume(key)
        role = {"subtraction": "subtraction", "dce": "pre" if vol.phase == 0 else "post"}.get(vol.kind, vol.kind)
        label = dict(self.choices()).get(key, vol.label)
        self.viewports[i] = Viewport(role, key, label, slice=max(0, (vol.n_slices - 1) // 2))
        if vol.kind in ("subtraction", "dce") and vol.phase:
            self.phase = vol.phase
        src = self.active if self.active != i else next((j for j in range(len(self.viewports)) if j != i), i)
        self._follow(src)
        self.changed.emit()

    # ------------------------------------------------------------------ navigation
    def scroll(self, i: int, step: int) -> None:
        """Move viewport ``i`` by ``step`` slices; linked viewports follow."""
        vol = self.shown(i)
        vp = self.viewports[i]
        vp.slice = int(np.clip(vp.slice + step, 0, vol.n_slices - 1))
        self.active = i
        self._follow(i)
        self.changed.emit()

    def set_point(self, i: int, row: float, col: float) -> None:
        """Put the cursor at (row, col) of viewport ``i``: linked viewports go to the slice
        through that patient point."""
        self.active = i
        self.point = (row, col)
        self._follow(i)
        self.changed.emit()

    def set_linked(self, on: bool) -> None:
        """Turn slice linking on or off."""
        self.linked = on
        if on:
            self._follow(self.active)
        self.changed.emit()

    def _follow(self, i: int) -> None:
        if not self.linked:
            return
        src = self.shown(i)
        if not src.linkable or src.geometry is None:
            return
        k = self.viewports[i].slice
        for j, vp in enumerate(self.viewports):
            if j == i:
                continue
            tgt = self.shown(j)
            if not tgt.linkable or tgt.geometry is None:
                vp.link = None
                continue
            vp.link = link_slice(src.geometry, k, tgt.geometry, self.point)
            vp.slice = vp.link.index

    def step_phase(self, delta: int) -> None:
        """Show the next (``delta`` > 0) or previous post-contrast phase in the subtraction /
        post-contrast viewports."""
        if self.phase is None or not self.post_phases:
            return
        idx = self.post_phases.index(self.phase) if self.phase in self.post_phases else 0
        new = self.post_phases[int(np.clip(idx + delta, 0, len(self.post_phases) - 1))]
        dyn = self.study.main_dynamic
        for vp in self.viewports:
            if vp.role == "subtraction" and self._sub_key(new):
                vp.key = self._sub_key(new)
                vp.title = f"SUB post {new} − pre ({'computed' if vp.key.startswith('computed') else 'scanner'})"
            elif vp.role == "post" and dyn is not None and new in dyn.phases and vp is self.viewports[0]:
                vp.key = dyn.phases[new].key
                vp.title = f"DCE post {new}"
        self.phase = new
        self.changed.emit()

    def toggle_mip(self) -> None:
        """Show the MIP of the subtraction viewport instead of its slices (and back)."""
        if any(vp.role == "subtraction" for vp in self.viewports):
            self.show_mip = not self.show_mip
            self._follow(self.active)
            self.changed.emit()

    def toggle_map(self) -> None:
        """Colour kinetic map overlay on / off."""
        self.show_map = not self.show_map
        self.changed.emit()

    # ------------------------------------------------------------------ kinetics
    def _dce_series(self) -> tuple[list[MrVolume], list[int]]:
        dyn = self.study.main_dynamic
        if dyn is None or not dyn.has_pre or len(dyn.phases) < 2:
            have = dyn.phase_indices if dyn else []
            raise BreastReaderError(f"kinetics need the pre-contrast and a post-contrast phase; this study has "
                                    f"phases {have or 'none'}")
        idx = dyn.phase_indices
        return [dyn.phases[p] for p in idx], idx

    def on_dce_grid(self, i: int) -> bool:
        """Whether viewport ``i`` shows slices on the dynamic's grid (kinetics can be drawn there)."""
        try:
            vols, _ = self._dce_series()
        except BreastReaderError:
            return False
        vol = self.shown(i)
        g, ref = vol.geometry, vols[0].geometry
        return (g is not None and ref is not None and vol.kind != "mip" and g.rows == ref.rows and g.cols == ref.cols
                and same_grid(g.offsets, ref.offsets))

    def measure(self, i: int, kind: str, points: list[list[float]]) -> RoiKinetics:
        """Time–intensity curve of a box/contour drawn on viewport ``i`` (its current slice).

        Raises:
            BreastReaderError: No pre + post phases, or the viewport is not on the dynamic's grid.
        """
        vols, idx = self._dce_series()
        if not self.on_dce_grid(i):
            raise BreastReaderError("draw the kinetics region on a DCE or subtraction viewport (same slices as "
                                    "the dynamic series)")
        k = self.viewports[i].slice
        ref = vols[0]
        mask = roi_mask((ref.geometry.rows, ref.geometry.cols), kind, points)  # type: ignore[union-attr]
        dyn = self.study.main_dynamic
        times = dyn.phase_times() if dyn is not None else None
        curve = time_intensity_curve([v.load()[k] for v in vols], mask, times=times, phase_indices=idx)
        self.kinetics = RoiKinetics(i, kind, [list(map(float, p)) for p in points], k,
                                    float(ref.geometry.offsets[k]), curve,  # type: ignore[union-attr]
                                    [v.label for v in vols])
        self.changed.emit()
        return self.kinetics

    def map_overlay(self, i: int) -> np.ndarray | None:
        """Kinetic class codes of viewport ``i``'s slice (None when not computable there)."""
        if not self.show_map or not self.on_dce_grid(i):
            return None
        vols, _ = self._dce_series()
        if len(vols) < 3:
            return None
        k = self.viewports[i].slice
        dyn = self.study.main_dynamic
        times = dyn.phase_times() if dyn is not None else None
        return kinetic_map([v.load()[k] for v in vols], threshold_pct=self.map_threshold, times=times)["codes"]

    def export_kinetics(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write the current kinetics measurement as ``kinetics.json`` and ``kinetics.csv``.

        Raises:
            BreastReaderError: Nothing measured yet.
        """
        if self.kinetics is None:
            raise BreastReaderError("no kinetics measured yet: draw a box or contour on a DCE/subtraction viewport")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        m = self.kinetics
        doc: dict[str, Any] = {
            "format": "breast-reader-mri-kinetics", "version": 1,
            "roi": {"kind": m.kind, "points_xy": m.points, "slice_index": m.slice,
                    "slice_position_mm": m.slice_position_mm, "viewport": self.viewports[m.viewport].title},
            "series": m.series, "curve": m.curve.to_json(), "thresholds_source": SOURCE,
            "note": "Decision support: a measured curve class, not a diagnosis.",
            "data_note": self.source_note,
        }
        paths = [out / "kinetics.json", out / "kinetics.csv"]
        from engine.io.atomic import atomic_open, atomic_write_text

        atomic_write_text(paths[0], json.dumps(doc, indent=2))  # temp + fsync + rename, no .tmp left behind
        with atomic_open(paths[1], newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["phase", f"x_{m.curve.x_unit}", "mean_signal", "enhancement_pct", "initial", "delayed"])
            for p, x, s, e in zip(m.curve.phases, m.curve.x, m.curve.signal, m.curve.enhancement_pct, strict=True):
                w.writerow([p, x, f"{s:.3f}", f"{e:.2f}", m.curve.initial, m.curve.delayed or ""])
        return paths
