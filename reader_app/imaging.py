"""Qt-free image helpers: loading case images, the hanging protocol, window presets, exports."""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from engine.cases import Case, CaseImage
from engine.errors import BreastReaderError, ImageReadError
from engine.imaging.breast import chest_wall_side
from engine.io.atomic import atomic_path, atomic_write_text
from engine.io.types import ImageMeta, LoadedImage, Modality
from engine.progress import ProgressCallback


# --------------------------------------------------------------------------- loading
def _fallback_read(path: Path, modality: str) -> LoadedImage:
    """Plain PNG/JPEG/TIFF reading used only while engine.io.reader is not installed."""
    import cv2

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff", ".pgm"))
        if not files:
            raise ImageReadError(path, "folder holds no readable slices")
        stack = np.stack([_fallback_read(f, modality).pixels for f in files])
        return LoadedImage(stack, ImageMeta(path=str(path), modality=cast(Modality, modality), source_format="PNG"))
    if not path.exists():
        raise ImageReadError(path, "file not found")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "not a readable image file")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB)
        if modality in ("MG", "US", "MR") and np.array_equal(arr[..., 0], arr[..., 1]):
            arr = np.ascontiguousarray(arr[..., 0])
    return LoadedImage(arr, ImageMeta(path=str(path), modality=cast(Modality, modality),
                                      source_format=path.suffix[1:].upper()))


def read_case_image(ci: CaseImage) -> LoadedImage:
    """Decode one case image (a file, or a folder of MR slices) with the engine reader.

    Raises:
        ImageReadError: naming the file and the reason.
    """
    try:
        from engine.io.reader import read_image
    except ImportError:  # the io engineer's reader not installed yet
        return _fallback_read(Path(ci.path), ci.modality)
    try:
        return read_image(ci.path, modality_hint=cast(Modality, ci.modality))
    except BreastReaderError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageReadError(ci.path, str(exc) or type(exc).__name__) from None


class ImageCache:
    """A small thread-safe LRU of decoded images keyed by path (mammograms are ~27 MB each)."""

    def __init__(self, max_items: int = 12, reader: Callable[[CaseImage], LoadedImage] = read_case_image) -> None:
        self.max_items = max_items
        self.reader = reader
        self._items: OrderedDict[str, LoadedImage] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Event] = {}  # paths being decoded by another thread

    def get(self, ci: CaseImage) -> LoadedImage:
        """The decoded image (read on a miss; a read already under way, e.g. a prefetch, is
        waited for instead of decoding the same file twice on the same cores)."""
        key = str(ci.path)
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                busy = self._reading.get(key)
                if busy is None:
                    done = self._reading[key] = threading.Event()
                    break
            busy.wait()  # then hit, or (the other read failed) read it here
        try:
            img = self.reader(ci)
            with self._lock:
                self._items[key] = img
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        finally:
            with self._lock:
                self._reading.pop(key, None)
            done.set()
        return img

    def peek(self, ci: CaseImage) -> LoadedImage | None:
        """The cached image or None (never reads)."""
        with self._lock:
            return self._items.get(str(ci.path))


def _read_into(images: dict[str, LoadedImage], errors: dict[str, str], cache: ImageCache, ci: CaseImage) -> None:
    """Decode ``ci`` into ``images``, or put its one-line reason (file name + why) into ``errors``."""
    try:
        images[ci.image_id] = cache.get(ci)
    except ImageReadError as exc:
        errors[ci.image_id] = f"{Path(exc.path).name}: {exc.reason}"
    except BreastReaderError as exc:
        errors[ci.image_id] = f"{Path(ci.path).name}: {exc}"


def load_case_images(
    case: Case,
    cache: ImageCache,
    *,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
) -> tuple[dict[str, LoadedImage], dict[str, str]]:
    """Load every image of a case; failures are collected, not raised.

    Returns:
        (images by image_id, error message by image_id).
    """
    from engine.progress import check, report

    images: dict[str, LoadedImage] = {}
    errors: dict[str, str] = {}
    n = len(case.images)
    for i, ci in enumerate(case.images):
        check(cancel)
        report(progress, i, n, ci.image_id)
        _read_into(images, errors, cache, ci)
    report(progress, n, n, "loaded")
    return images, errors


def preview_case_images(
    case: Case,
    cache: ImageCache,
    *,
    max_side: int = 1024,
    cancel: Any = None,
) -> tuple[dict[str, LoadedImage], dict[str, str]] | None:
    """First views of a case while its JPEG 2000 images decode in full.

    Each uncached JPEG 2000 DICOM gets its reduced-resolution first view at full geometry
    (:func:`engine.io.dicom.decode_preview`, tens of ms for a mammogram); every other image is
    read as usual (through ``cache``, so the full load that follows finds it there).

    Returns:
        (images, errors) like :func:`load_case_images`, or None when no image of the case has a
        quicker first view (the full load alone is then as fast).
    """
    from engine.io.dicom import decode_preview
    from engine.progress import check

    previews: dict[str, LoadedImage] = {}
    for ci in case.images:
        check(cancel)
        path = Path(ci.path)
        if cache.peek(ci) is not None or path.is_dir() or path.suffix.lower() not in (".dcm", ".dicom", ""):
            continue
        try:
            pv = decode_preview(path, max_side=max_side, full_size=True, modality_hint=cast(Modality, ci.modality))
        except BreastReaderError:
            pv = None  # the full load reports the reason
        if pv is not None:
            previews[ci.image_id] = pv
    if not previews:
        return None
    images: dict[str, LoadedImage] = {}
    errors: dict[str, str] = {}
    for ci in case.images:
        check(cancel)
        if ci.image_id in previews:
            images[ci.image_id] = previews[ci.image_id]
            continue
        _read_into(images, errors, cache, ci)
    return images, errors


# --------------------------------------------------------------------------- hanging
@dataclass
class Slot:
    """One view of the hanging protocol.

    Attributes:
        image_id: The case image shown.
        title: Short label ("R CC", "US 1", "MR T1C").
        flip: Mirror horizontally for display (chest wall to the side expected for the laterality).
        sync_group: Views in the same group zoom together (MG CC/MLO of one breast).
    """

    image_id: str
    title: str
    modality: str
    flip: bool = False
    sync_group: str | None = None
    laterality: str | None = None
    laterality_source: str = ""  # "DICOM", "study", "inferred" or "" (unknown)


_MG_ORDER = {"CC": 0, "XCCL": 1, "MLO": 2, "ML": 3, "LM": 4, "SPOT": 5}

# Per-image analyses (chest-wall side, breast box, window presets) computed once per decoded
# array and kept while it lives: a prefetch worker computes them off the GUI thread, so hanging
# and fitting the next case costs the GUI thread nothing (0.2-0.5 s per mammography case).
_MEMO: dict[tuple[str, int], tuple[Any, Any]] = {}


def _memo(kind: str, obj: Any, compute: Callable[[], Any]) -> Any:
    key = (kind, id(obj))
    hit = _MEMO.get(key)
    if hit is not None and hit[0]() is obj:
        return hit[1]
    value = compute()

    def forget(_ref: Any) -> None:
        _MEMO.pop(key, None)

    try:
        ref = weakref.ref(obj, forget)
    except TypeError:  # not weak-referenceable: not memoised
        return value
    _MEMO[key] = (ref, value)
    return value


def _first_plane(pixels: np.ndarray) -> np.ndarray:
    """A multi-frame (frames, rows, cols) mammogram's first frame; 2-D and RGB pass through."""
    return pixels[0] if pixels.ndim == 3 and pixels.shape[-1] != 3 else pixels


def memo_chest_wall_side(pixels: np.ndarray) -> str:
    """:func:`engine.imaging.breast.chest_wall_side` of the first plane, once per decoded array."""
    return str(_memo("chest_wall", pixels, lambda: chest_wall_side(_first_plane(pixels))))


def memo_breast_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """:func:`engine.imaging.breast.breast_view_box` of the first plane (crop-to-breast fitting),
    once per decoded array."""
    from engine.imaging.breast import breast_view_box

    box: tuple[int, int, int, int] = _memo("breast_box", pixels, lambda: breast_view_box(_first_plane(pixels)))
    return box


def mg_needs_flip(laterality: str | None, pixels: np.ndarray) -> bool:
    """Whether a mammogram must be mirrored so it hangs like radiologists hang them.

    Right breast: chest wall on the right edge (it faces the left breast in the mirrored pair);
    left breast: chest wall on the left edge.
    """
    if laterality not in ("L", "R"):
        return False
    side = memo_chest_wall_side(pixels)
    want = "right" if laterality == "R" else "left"
    return side != want


def mg_laterality(stated: str | None, img: LoadedImage | None) -> tuple[str | None, str, str]:
    """(laterality, where it came from, warning) for a mammogram.

    The image's own DICOM ImageLaterality wins over the study's case file; without either the
    chest-wall side gives a guess shown as inferred (film digitisations can be mirrored, so it
    is never presented as fact).
    """
    dicom = (img.meta.laterality or "").upper() if img is not None else ""
    dicom = dicom if dicom in ("L", "R") else ""
    stated = (stated or "").upper()
    stated = stated if stated in ("L", "R") else ""
    if dicom:
        note = f"case file says {stated}; DICOM says {dicom}" if stated and stated != dicom else ""
        return dicom, "DICOM", note
    if stated:
        return stated, "study", ""
    if img is not None:
        return ("R" if memo_chest_wall_side(img.pixels) == "right" else "L"), "inferred", ""
    return None, "", ""


def hanging_protocol(case: Case, images: dict[str, LoadedImage]) -> list[Slot]:
    """Order the case's images into view slots.

    MG+US: the mammograms first, oriented chest-wall-to-the-side. One breast: CC then MLO.
    Both breasts: the mirrored pairs R CC | L CC then R MLO | L MLO, back to back as
    radiologists hang them. All mammograms zoom together (mirrored between breasts). Then the
    US views. MR: each series in its own slot.
    """
    slots: list[Slot] = []
    lat_order = {"R": 0, "L": 1}
    mg = case.images_of("MG")
    lats = {c.image_id: mg_laterality(c.laterality, images.get(c.image_id))[0] or "" for c in mg}
    views = {c.image_id: ((images[c.image_id].meta.view if c.image_id in images else None) or c.view or "").upper()
             for c in mg}
    bilateral = set(lats.values()) >= {"L", "R"}
    if bilateral:
        mg = sorted(mg, key=lambda c: (_MG_ORDER.get(views[c.image_id], 9), lat_order.get(lats[c.image_id], 2)))
    else:
        mg = sorted(mg, key=lambda c: (lat_order.get(lats[c.image_id], 2), _MG_ORDER.get(views[c.image_id], 9)))
    for ci in mg:
        img = images.get(ci.image_id)
        lat, src, note = mg_laterality(ci.laterality, img)
        flip = mg_needs_flip(lat, img.pixels) if img is not None else False
        if src == "inferred":
            title = " ".join(x for x in (f"{lat}?", (ci.view or "").upper(), "MG (laterality inferred)") if x)
        else:
            title = " ".join(x for x in (lat, (ci.view or "").upper(), "MG") if x)
        if note:
            title += f" [{note}]"
        slots.append(Slot(ci.image_id, title, "MG", flip, "MG", lat, src))
    for i, ci in enumerate(case.images_of("US"), 1):
        title = " ".join(x for x in ("US", ci.laterality, ci.view or str(i)) if x)
        slots.append(Slot(ci.image_id, title, "US"))
    for ci in case.images_of("MR"):
        title = " ".join(x for x in ("MR", ci.laterality, ci.view) if x)
        slots.append(Slot(ci.image_id, title, "MR"))
    return slots


GRID = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
LAYOUT_ORDER = ("1x1", "1x2", "2x2")
MG_CELL_ASPECT = 0.82  # width / height of a mammography cell (a film is about 8 x 10 in)


def hanging_steps(n_views: int) -> list[tuple[str, int]]:
    """The H-key steps of a mammography hanging: (layout, first view) for 4-view, CC pair,
    MLO pair, then each view alone (the workstation and the reading session step alike)."""
    if n_views <= 0:
        return []
    steps: list[tuple[str, int]] = [("2x2", 0)]
    if n_views >= 2:
        steps += [("1x2", 0)] + ([("1x2", 2)] if n_views >= 4 else [])
    steps += [("1x1", i) for i in range(n_views)]
    return steps


def grid_shape(layout: str, n_views: int) -> tuple[int, int]:
    """Rows and columns of ``layout``, shrunk when there are fewer views than cells."""
    rows, cols = GRID[layout]
    if 0 < n_views < rows * cols:
        if n_views == 1:
            return 1, 1
        if n_views == 2:
            return 1, 2
    return rows, cols


def portrait_side_margin(width: int, height: int, rows: int, cols: int, aspect: float = MG_CELL_ASPECT) -> int:
    """Left/right margin that makes each of ``cols`` columns at most ``aspect`` x its row height
    (portrait cells for mammograms; a landscape cell would shrink the breast)."""
    want = int(cols * aspect * max(1, height) / max(1, rows))
    return max(0, (max(1, width) - want) // 2)


# --------------------------------------------------------------------------- window/level
def window_presets(img: LoadedImage) -> list[tuple[str, tuple[float, float]]]:
    """Named (center, width) windows: automatic percentiles, full range, and the DICOM windows."""
    presets: list[tuple[str, tuple[float, float]]] = _memo("presets", img, lambda: _window_presets(img))
    return list(presets)


def warm_analyses(case: Case, images: dict[str, LoadedImage]) -> None:
    """Compute the hanging's and the views' per-image analyses (chest-wall side, breast box,
    window presets) now, in the calling worker thread, so showing the case does not."""
    hanging_protocol(case, images)
    for img in images.values():
        window_presets(img)
        if img.meta.modality == "MG" and img.pixels.ndim == 2:
            memo_breast_box(img.pixels)


def _window_presets(img: LoadedImage) -> list[tuple[str, tuple[float, float]]]:
    a = img.pixels
    if a.ndim == 3 and a.shape[-1] == 3 and img.meta.modality != "MR":
        a = a[..., 0]
    step = max(1, int(np.ceil((a.size / 400_000) ** (1 / a.ndim))))
    s = np.asarray(a[(slice(None, None, step),) * a.ndim], dtype=np.float32)
    lo, hi = float(s.min()), float(s.max())
    # MR: the enhancing lesion is the brightest structure; keep it below saturation
    top = 99.9 if img.meta.modality == "MR" else 99.5
    p1, p99 = (float(v) for v in np.percentile(s, [1, top]))
    nz = s[s > lo]
    q20 = float(np.percentile(nz, 20)) if nz.size else lo
    out: list[tuple[str, tuple[float, float]]] = []
    out.append((f"Auto (1-{top:g}%)", ((p1 + p99) / 2, max(p99 - p1, 1.0))))
    out.append(("Full range", ((lo + hi) / 2, max(hi - lo, 1.0))))
    out.append(("Dense tissue", ((q20 + hi) / 2, max(hi - q20, 1.0))))
    for i, (c, w) in enumerate(img.meta.windows, 1):
        out.append((f"DICOM window {i}", (float(c), max(float(w), 1.0))))
    return out


def scale_bar_mm(width_px: int, spacing_mm: float) -> float:
    """A round scale-bar length (mm) of about a fifth of the image width."""
    target = width_px * spacing_mm / 5
    for v in (1, 2, 5, 10, 20, 50, 100, 200):
        if v >= target * 0.6:
            return float(v)
    return 200.0


# --------------------------------------------------------------------------- exports
def annotation_mask(ann_points: list[list[float]], kind: str, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one annotation to a uint8 mask (255 inside) of ``shape`` = (rows, cols)."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    pts = np.asarray(ann_points, np.float64)
    if kind == "box":
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 255
    else:
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def _image_shape(img: LoadedImage) -> tuple[int, int]:
    p = img.pixels
    if p.ndim == 3 and (img.meta.modality == "MR" or p.shape[-1] != 3):
        return int(p.shape[1]), int(p.shape[2])
    return int(p.shape[0]), int(p.shape[1])


def export_masks(case: Case, images: dict[str, LoadedImage], out_dir: Path) -> list[Path]:
    """Write one PNG mask per (image, frame, lesion) that has annotations.

    File names: ``<case>_<image>[_f<frame>]_<lesion>.png`` (0 background, 255 lesion).
    """
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, int | None, str], list[Any]] = {}
    for a in case.annotations:
        groups.setdefault((a.image_id, a.frame, a.lesion_id), []).append(a)
    written = []
    for (image_id, frame, lesion), anns in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if image_id not in images:
            continue
        shape = _image_shape(images[image_id])
        mask = np.zeros(shape, np.uint8)
        for a in anns:
            mask |= annotation_mask(a.points, a.kind, shape)
        fname = f"{case.case_id}_{image_id}" + (f"_f{frame}" if frame is not None else "") + f"_{lesion}.png"
        path = out_dir / fname
        ok, png = cv2.imencode(".png", mask)
        if not ok:
            raise OSError(f"{path}: could not encode the mask")
        with atomic_path(path) as tmp:  # cv2.imwrite returns False on a full disk instead of raising
            tmp.write_bytes(png.tobytes())
        written.append(path)
    return written


def coco_json(case: Case, images: dict[str, LoadedImage]) -> dict[str, Any]:
    """The case's annotations as a COCO instance-segmentation dict (one category: lesion)."""
    coco: dict[str, Any] = {
        "info": {"description": f"breast-reader annotations of case {case.case_id}"},
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "lesion", "supercategory": "breast"}],
    }
    ids: dict[tuple[str, int | None], int] = {}
    for a in case.annotations:
        key = (a.image_id, a.frame)
        if key not in ids and a.image_id in images:
            ids[key] = len(ids) + 1
            h, w = _image_shape(images[a.image_id])
            ci = case.image(a.image_id)
            coco["images"].append({
                "id": ids[key], "file_name": Path(ci.path).name, "width": w, "height": h,
                "image_id": a.image_id, "frame": a.frame, "modality": ci.modality,
            })
        if key not in ids:
            continue
        x0, y0, x1, y1 = a.bbox()
        if a.kind == "box":
            poly = [x0, y0, x1, y0, x1, y1, x0, y1]
            area = (x1 - x0) * (y1 - y0)
        else:
            poly = [float(v) for p in a.points for v in p]
            xs = np.array([p[0] for p in a.points])
            ys = np.array([p[1] for p in a.points])
            area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
        coco["annotations"].append({
            "id": len(coco["annotations"]) + 1, "image_id": ids[key], "category_id": 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area, "segmentation": [poly], "iscrowd": 0,
            "lesion_id": a.lesion_id, "kind": a.kind, "ann_id": a.ann_id,
        })
    return coco


def export_case(case: Case, images: dict[str, LoadedImage], out_dir: Path) -> tuple[list[Path], Path]:
    """Write masks and ``<case>_coco.json`` into ``out_dir``; returns (mask paths, json path)."""
    masks = export_masks(case, images, out_dir)
    jpath = out_dir / f"{case.case_id}_coco.json"
    atomic_write_text(jpath, json.dumps(coco_json(case, images), indent=1))
    return masks, jpath
