"""The series model of a breast MRI study: group, classify, sort, link.

A study's MR files are grouped by SeriesInstanceUID. A series whose slices repeat a position
(a diffusion series holding every b-value, a dynamic series holding every phase, a MIP series
holding one projection per subtraction) is split into *volumes* — one sorted slice stack each —
by b-value, then temporal position, then AcquisitionNumber.

Each volume gets a kind from its DICOM tags (see :func:`classify`):

====================  ===========================================================================
kind                  evidence, first match wins
====================  ===========================================================================
``adc``               ImageType value ``ADC`` (Siemens ``DERIVED\\...\\ADC``), or "ADC" in the
                      series description
``dwi``               ImageType ``DIFFUSION``/``TRACEW``/``TRACE``, a b-value (DiffusionBValue
                      (0018,9087), Siemens (0019,100C), or ``b<N>`` in SequenceName), or
                      "diff"/"dwi" in the description
``mip``               ImageType ``MIP``/``MIP_TRA``/``MIP_SAG``…, or "MIP" in the description
``subtraction``       ImageType ``SUB``, or "_SUB"/"subtract" in the description
``map``               ImageType ``WI``/``WO``/``PEI``/``TTP``/``MTT``…, or those suffixes in the
                      description (Siemens inline wash-in, wash-out, positive enhancement integral)
``dce``               a TemporalPositionIdentifier, NumberOfTemporalPositions > 1, or a dynamic
                      protocol name ("dyn", "dynamic", "1+5", "vibrant", "thrive", "dce")
``t2``                "t2"/"tirm"/"stir" in the description, else spin echo with TE >= 60 ms
``t1``                "t1" in the description, else TR < 1000 ms
``other``             anything else
====================  ===========================================================================

Phase order: TemporalPositionIdentifier (0020,0100), else AcquisitionNumber (0020,0012). The
first temporal position is the pre-contrast acquisition (so it is for the dynamic protocols of
the main vendors: Siemens dynaVIEWS "1+5", GE VIBRANT/DISCO, Philips THRIVE), phase 0 = pre,
phase n = post-contrast n. Phase times (seconds after the pre-contrast phase) come from
TriggerTime, else AcquisitionTime / ContentTime; they are None when any phase lacks them (the
mimbcd-dev data have none: only the order is known).

Phases of one dynamic acquisition are *linked* when they share the Frame of Reference, the
protocol (series description without the vendor's derived suffixes) and the slice grid; the
scanner's subtractions are linked to the phase they were made from.

Files are parsed with :func:`engine.io.dicom.read_dataset` (headers only) and pixels decoded
by :func:`engine.io.read_series`, so every limit and error message of :mod:`engine.io` applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Literal

import numpy as np

from engine.errors import ImageReadError
from engine.io.dicom import read_dataset, sort_slices
from engine.mri.geometry import Plane, VolumeGeometry, plane_of
from engine.progress import CancelToken, ProgressCallback, check, report

SeriesKind = Literal["dce", "subtraction", "mip", "t1", "t2", "dwi", "adc", "map", "other"]

#: Most MR files one scan will look at (a whole breast protocol is a few thousand).
MAX_FILES = 20000

_DYNAMIC_WORDS = ("dyn", "1+5", "1+4", "1+6", "vibrant", "thrive", "disco", "dce", "twist", "tricks")
_MAP_TYPES = {"WI": "wash-in", "WO": "wash-out", "PEI": "positive enhancement integral", "TTP": "time to peak",
              "MTT": "mean transit time", "KTRANS": "Ktrans", "VE": "ve", "KEP": "kep", "IAUC": "iAUC"}
_DERIVED_SUFFIX = re.compile(r"(_SUB.*|_MIP.*|_PEI|_WI|_WO|_TTP|_MTT)$", re.IGNORECASE)


def _str(ds: Any, key: str) -> str:
    v = ds.get(key)
    if v is None:
        return ""
    if hasattr(v, "__iter__") and not isinstance(v, str | bytes):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _float(ds: Any, key: Any) -> float | None:
    v = ds.get(key)
    if v is None or v == "":
        return None
    if hasattr(v, "value") and not isinstance(v, str | int | float):
        v = v.value
    try:
        if isinstance(v, bytes):  # private tags read as raw bytes (Siemens IS/DS strings)
            v = v.decode("ascii", "ignore").strip("\x00 ")
        if isinstance(v, list | tuple) or (hasattr(v, "__iter__") and not isinstance(v, str)):
            v = list(v)[0]
        return float(v)
    except (TypeError, ValueError, IndexError):
        return None


def _floats(ds: Any, key: str) -> list[float]:
    v = ds.get(key)
    if v is None or v == "":
        return []
    try:
        return [float(x) for x in (v if hasattr(v, "__iter__") and not isinstance(v, str) else [v])]
    except (TypeError, ValueError):
        return []


def image_type(ds: Any) -> list[str]:
    """ImageType values, upper case."""
    return [t.strip().upper() for t in _str(ds, "ImageType").split("\\") if t.strip()]


def b_value(ds: Any) -> float | None:
    """Diffusion b-value (s/mm²): DiffusionBValue, Siemens CSA (0019,100C), or ``b<N>`` in the
    SequenceName (Siemens ``*ep_b800t``); None when absent."""
    for key in ("DiffusionBValue", (0x0019, 0x100C), (0x0043, 0x1039)):
        try:
            v = _float(ds, key)
        except Exception:  # a private element that does not parse as a number
            v = None
        if v is not None and 0 <= v < 100000:
            return v
    m = re.search(r"b(\d+)t?$", _str(ds, "SequenceName"))
    if m:
        return float(m.group(1))
    return None


def classify(ds: Any) -> tuple[SeriesKind, str | None]:
    """Kind of a series from one of its headers (rules in the module docstring).

    Returns:
        (kind, detail): the map name for ``map``, the MIP plane for ``mip``, else None.
    """
    types = image_type(ds)
    desc = _str(ds, "SeriesDescription")
    low = desc.lower()
    if "ADC" in types or re.search(r"\badc\b|_adc", low):
        return "adc", None
    if {"DIFFUSION", "TRACEW", "TRACE"} & set(types) or re.search(r"diff|dwi|\bep2d", low):
        return "dwi", None
    mips = [t for t in types if t.startswith("MIP")]
    if mips or "mip" in low:
        plane = mips[0].split("_", 1)[1].lower() if mips and "_" in mips[0] else None
        return "mip", plane
    if "SUB" in types or "_sub" in low or "subtract" in low:
        return "subtraction", None
    maps = [t for t in types if t in _MAP_TYPES]
    m = re.search(r"_(pei|wi|wo|ttp|mtt)$", low)
    if maps or m:
        key = maps[0] if maps else m.group(1).upper()  # type: ignore[union-attr]
        return "map", _MAP_TYPES.get(key, key)
    if b_value(ds) is not None and _str(ds, "ScanningSequence").startswith("EP"):
        return "dwi", None
    n_tp = _float(ds, "NumberOfTemporalPositions")
    if ds.get("TemporalPositionIdentifier") not in (None, "") or (n_tp or 0) > 1 or any(w in low for w in _DYNAMIC_WORDS):
        return "dce", None
    if re.search(r"t2|tirm|stir", low):
        return "t2", None
    if re.search(r"t1", low):
        return "t1", None
    te, tr = _float(ds, "EchoTime"), _float(ds, "RepetitionTime")
    if te is not None and te >= 60 and "SE" in _str(ds, "ScanningSequence"):
        return "t2", None
    if tr is not None and tr < 1000:
        return "t1", None
    return "other", None


def temporal_position(ds: Any) -> int | None:
    """TemporalPositionIdentifier, else AcquisitionNumber (1-based); None when neither."""
    for key in ("TemporalPositionIdentifier", "AcquisitionNumber"):
        v = _float(ds, key)
        if v is not None and v >= 1:
            return int(v)
    return None


def _time_s(ds: Any) -> float | None:
    """Acquisition time of a header in seconds (TriggerTime in ms, else the time of day)."""
    trig = _float(ds, "TriggerTime")
    if trig is not None and trig >= 0:
        return trig / 1000.0
    for key in ("AcquisitionTime", "ContentTime"):
        t = _str(ds, key)
        m = re.match(r"^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$", t)
        if m:
            return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


@dataclass
class MrVolume:
    """One sorted slice stack of an MR series (a series, or one b-value / phase of it).

    Attributes:
        key: Unique key in the study (``SeriesInstanceUID`` plus ``#b800`` / ``#t3`` when split).
        series_uid: SeriesInstanceUID.
        description: SeriesDescription.
        series_number: SeriesNumber (0 when absent).
        kind: See :data:`SeriesKind`.
        detail: Map name (``map``) or MIP plane (``mip``).
        temporal_position: 1-based phase (TemporalPositionIdentifier / AcquisitionNumber).
        phase: 0 = pre-contrast, n = post-contrast n, for ``dce`` / ``subtraction`` / ``mip``
            (the subtraction a MIP projects); None otherwise. A scanner's MIP series holding one
            projection per subtraction is split into one volume per phase.
        b_value: Diffusion b-value (s/mm²) of a ``dwi`` volume.
        files: Slice files in stack order.
        geometry: Patient geometry, None when a slice lacks position/orientation.
        frame_of_reference: FrameOfReferenceUID.
        time_s: Acquisition time (s, absolute) when every slice gives one, else None.
        sort_rule: How slices were ordered.
        pixels: Loaded (slices, rows, cols) array, or None until :meth:`load`.
    """

    key: str
    series_uid: str
    description: str
    series_number: int
    kind: SeriesKind
    detail: str | None
    temporal_position: int | None
    phase: int | None
    b_value: float | None
    files: list[str]
    geometry: VolumeGeometry | None
    frame_of_reference: str
    time_s: float | None = None
    sort_rule: str = ""
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def plane(self) -> Plane | None:
        """Acquisition plane (axial / sagittal / coronal / oblique), None without geometry."""
        return plane_of(self.geometry) if self.geometry is not None else None

    @property
    def linkable(self) -> bool:
        """Whether slices are distinct planes (a MIP's frames are projections at one position)."""
        if self.geometry is None or self.kind == "mip":
            return False
        off = self.geometry.offsets
        return len(off) == len({round(float(o), 3) for o in off})

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return len(self.files)

    @property
    def label(self) -> str:
        """Short display name ("DCE pre", "DCE post 2", "SUB post 1", "DWI b800", "T2 t2_tse_tra_p2")."""
        if self.kind == "dce":
            return "DCE pre" if self.phase == 0 else f"DCE post {self.phase}" if self.phase is not None else "DCE"
        if self.kind == "subtraction":
            return f"SUB post {self.phase}" if self.phase else "SUB"
        if self.kind == "mip":
            return f"MIP {self.detail or ''}{f' post {self.phase}' if self.phase else ''}".strip()
        if self.kind == "dwi":
            return f"DWI b{self.b_value:g}" if self.b_value is not None else "DWI"
        if self.kind == "adc":
            return "ADC"
        if self.kind == "map":
            return f"map {self.detail}"
        return f"{self.kind.upper()} {self.description}".strip()

    def load(self, *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> np.ndarray:
        """Decode the slices (cached) into a (slices, rows, cols) array in stack order.

        Raises:
            ImageReadError: A slice cannot be read (names the file and the reason).
        """
        if self.pixels is None:
            from engine.io import read_series

            where = os.path.dirname(self.files[0]) if self.files else self.key
            img = read_series(self.files, modality_hint="MR", name=where, progress=progress, cancel=cancel)
            arr = img.pixels
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3:
                raise ImageReadError(where, f"MR series decodes to shape {arr.shape}, expected slices of grey pixels")
            self.pixels = arr
        return self.pixels


@dataclass
class DynamicAcquisition:
    """The linked phases of one dynamic (DCE) acquisition.

    Attributes:
        protocol: Series description shared by the phases (without derived suffixes).
        phases: Phase index (0 = pre) -> DCE volume.
        subtractions: Phase index -> the scanner's subtraction of that phase.
        mips: MIP volumes of this acquisition.
        maps: Parametric maps (wash-in, wash-out, PEI...) of this acquisition.
    """

    protocol: str
    phases: dict[int, MrVolume] = field(default_factory=dict)
    subtractions: dict[int, MrVolume] = field(default_factory=dict)
    mips: list[MrVolume] = field(default_factory=list)
    maps: list[MrVolume] = field(default_factory=list)

    @property
    def phase_indices(self) -> list[int]:
        """Phase indices present, in order."""
        return sorted(self.phases)

    @property
    def has_pre(self) -> bool:
        """Whether the pre-contrast phase is present."""
        return 0 in self.phases

    def phase_times(self) -> list[float] | None:
        """Seconds after the pre-contrast (or first) phase, one per present phase; None when
        any phase has no acquisition time or the times do not increase with the phase (e.g.
        export times written by an anonymiser)."""
        vols = [self.phases[i] for i in self.phase_indices]
        times = [v.time_s for v in vols]
        if len(times) < 2 or any(t is None for t in times):
            return None
        t0 = float(times[0])  # type: ignore[arg-type]
        rel = [float(t) - t0 for t in times]  # type: ignore[arg-type]
        if any(b <= a for a, b in zip(rel, rel[1:], strict=False)):
            return None
        return rel


@dataclass
class MrStudy:
    """A breast MRI study: its volumes, dynamic acquisitions and files that could not be read.

    Attributes:
        volumes: Every volume, by series number then key.
        dynamics: Linked dynamic acquisitions (largest first).
        skipped: (path, reason) of files that were not MR images or could not be parsed.
    """

    volumes: list[MrVolume]
    dynamics: list[DynamicAcquisition]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def of_kind(self, kind: SeriesKind) -> list[MrVolume]:
        """Volumes of one kind, in study order."""
        return [v for v in self.volumes if v.kind == kind]

    def volume(self, key: str) -> MrVolume:
        """The volume with ``key``."""
        for v in self.volumes:
            if v.key == key:
                return v
        raise KeyError(key)

    @property
    def main_dynamic(self) -> DynamicAcquisition | None:
        """The dynamic acquisition with the most phases (None without one)."""
        return self.dynamics[0] if self.dynamics else None


def _iter_files(paths: Iterable[str | PathLike[str]]) -> list[str]:
    out: list[str] = []
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith(".") and not f.upper().startswith("DICOMDIR"):
                        out.append(os.path.join(root, f))
        else:
            out.append(p)
        if len(out) > MAX_FILES:
            raise ImageReadError(p, f"more than {MAX_FILES} files: open one study folder at a time")
    return out


def _geometry(items: Sequence[tuple[str, Any]]) -> VolumeGeometry | None:
    orients = {tuple(round(x, 4) for x in _floats(ds, "ImageOrientationPatient")) for _, ds in items}
    if len(orients) != 1:
        return None
    o = next(iter(orients))
    pos = [tuple(_floats(ds, "ImagePositionPatient")) for _, ds in items]
    sp = _floats(items[0][1], "PixelSpacing")
    if len(o) != 6 or any(len(p) != 3 for p in pos) or len(sp) != 2:
        return None
    return VolumeGeometry(
        row_cosine=(o[0], o[1], o[2]), col_cosine=(o[3], o[4], o[5]),
        positions=tuple((float(p[0]), float(p[1]), float(p[2])) for p in pos),
        pixel_spacing=(sp[0], sp[1]), rows=int(items[0][1].get("Rows") or 0),
        cols=int(items[0][1].get("Columns") or 0), slice_thickness=_float(items[0][1], "SliceThickness"),
    )


def _split(items: list[tuple[str, Any]]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Split one series into stacks without repeated positions (by b-value, phase, acquisition)."""
    def pos_key(ds: Any) -> tuple[float, ...]:
        return tuple(round(x, 2) for x in _floats(ds, "ImagePositionPatient"))

    if len({pos_key(ds) for _, ds in items}) == len(items):
        return [("", items)]
    for name, fn in (("b", b_value), ("t", lambda ds: _float(ds, "TemporalPositionIdentifier")),
                     ("a", lambda ds: _float(ds, "AcquisitionNumber"))):
        vals = [fn(ds) for _, ds in items]
        if None not in vals and len(set(vals)) > 1:
            groups: dict[float, list[tuple[str, Any]]] = {}
            for it, v in zip(items, vals, strict=True):
                groups.setdefault(float(v), []).append(it)  # type: ignore[arg-type]
            return [(f"#{name}{k:g}", g) for k, g in sorted(groups.items())]
    return [("", items)]


def _protocol(desc: str) -> str:
    return _DERIVED_SUFFIX.sub("", desc.strip())


def scan_study(paths: str | PathLike[str] | Iterable[str | PathLike[str]], *,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> MrStudy:
    """Group, classify and sort the MR images under ``paths`` (headers only; no pixels).

    Args:
        paths: Folders (searched recursively) and/or files.
        progress: Progress callback (files parsed).
        cancel: Cancellation token.

    Returns:
        The :class:`MrStudy`; non-DICOM, non-MR and unparsable files are listed in ``skipped``.

    Raises:
        ImageReadError: No MR image found (names the path).
    """
    plist = [paths] if isinstance(paths, str | PathLike) else list(paths)
    files = _iter_files(plist)
    by_series: dict[str, list[tuple[str, Any]]] = {}
    skipped: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        check(cancel)
        try:
            ds = read_dataset(f)
        except ImageReadError as exc:
            skipped.append((f, exc.reason))
            continue
        modality = _str(ds, "Modality").upper()
        if modality != "MR":
            skipped.append((f, f"modality {modality or 'unknown'}, not MR"))
            continue
        if "PixelData" not in ds:
            skipped.append((f, "no pixel data"))
            continue
        by_series.setdefault(_str(ds, "SeriesInstanceUID") or f"no-uid:{os.path.dirname(f)}", []).append((f, ds))
        report(progress, i + 1, len(files), "reading MR headers")
    if not by_series:
        where = str(plist[0]) if plist else ""
        raise ImageReadError(where, f"no MR images found ({len(skipped)} other file(s))")
    volumes: list[MrVolume] = []
    for uid, items in by_series.items():
        for suffix, group in _split(items):
            order, _positions, rule = sort_slices(group)
            sorted_items = [group[i] for i in order]
            ds0 = sorted_items[0][1]
            kind, detail = classify(ds0)
            tp = temporal_position(ds0) if kind in ("dce", "subtraction", "mip") else None
            times = [_time_s(ds) for _, ds in sorted_items]
            volumes.append(MrVolume(
                key=uid + suffix, series_uid=uid, description=_str(ds0, "SeriesDescription"),
                series_number=int(_float(ds0, "SeriesNumber") or 0), kind=kind, detail=detail,
                temporal_position=tp, phase=(tp - 1) if tp is not None else None,
                b_value=b_value(ds0) if kind == "dwi" else None,
                files=[f for f, _ in sorted_items], geometry=_geometry(sorted_items),
                frame_of_reference=_str(ds0, "FrameOfReferenceUID"),
                time_s=min(times) if times and None not in times else None,  # type: ignore[type-var]
                sort_rule=rule,
            ))
    volumes.sort(key=lambda v: (v.series_number, v.b_value or 0, v.key))
    return MrStudy(volumes=volumes, dynamics=link_dynamics(volumes), skipped=skipped)


def _grid(v: MrVolume) -> tuple[Any, ...] | None:
    g = v.geometry
    if g is None:
        return None
    return (g.rows, g.cols, tuple(round(x, 3) for x in g.row_cosine + g.col_cosine),
            tuple(round(float(o), 1) for o in g.offsets))


def link_dynamics(volumes: Sequence[MrVolume]) -> list[DynamicAcquisition]:
    """Link DCE phases (and their subtractions, MIPs and maps) of one dynamic acquisition.

    Phases are linked when they share the Frame of Reference, the protocol name and the slice
    grid; a second volume claiming an already-present phase starts a new acquisition.
    """
    dyns: list[tuple[tuple[Any, ...], DynamicAcquisition]] = []
    for v in volumes:
        if v.kind != "dce" or v.phase is None:
            continue
        key = (v.frame_of_reference, _protocol(v.description).lower(), _grid(v))
        for k, d in dyns:
            if k == key and v.phase not in d.phases:
                d.phases[v.phase] = v
                break
        else:
            d = DynamicAcquisition(protocol=_protocol(v.description))
            d.phases[v.phase] = v
            dyns.append((key, d))
    for v in volumes:
        if v.kind not in ("subtraction", "mip", "map"):
            continue
        proto = _protocol(v.description).lower()
        match = [d for k, d in dyns if k[0] == v.frame_of_reference and k[1] == proto]
        if not match:
            if v.kind == "subtraction" and v.phase is not None:
                # A subtraction without its phases (e.g. only SUB sent): its own acquisition.
                d = DynamicAcquisition(protocol=_protocol(v.description))
                d.subtractions[v.phase] = v
                dyns.append(((v.frame_of_reference, proto, _grid(v)), d))
            continue
        d = match[0]
        if v.kind == "subtraction" and v.phase is not None:
            same_grid = [m for k, m in dyns if k[0] == v.frame_of_reference and k[1] == proto and k[2] == _grid(v)]
            (same_grid[0] if same_grid else d).subtractions.setdefault(v.phase, v)
        elif v.kind == "mip":
            d.mips.append(v)
        else:
            d.maps.append(v)
    out = [d for _, d in dyns]
    out.sort(key=lambda d: -(len(d.phases) + len(d.subtractions)))
    return out


def load_study(paths: str | PathLike[str] | Iterable[str | PathLike[str]], *,
               kinds: Sequence[SeriesKind] | None = None, progress: ProgressCallback | None = None,
               cancel: CancelToken | None = None) -> MrStudy:
    """:func:`scan_study` then decode the volumes (all, or those of ``kinds``)."""
    study = scan_study(paths, cancel=cancel)
    todo = [v for v in study.volumes if kinds is None or v.kind in kinds]
    for i, v in enumerate(todo):
        check(cancel)
        v.load(cancel=cancel)
        report(progress, i + 1, len(todo), v.label)
    return study

