"""Qt-free state of the reading workstation.

Widgets subscribe to these plain objects (``Event.connect``) and call their setters; nothing here
imports Qt, so the reading logic (worklist status, annotation undo/redo, ratings, AI visibility)
is testable without a display (napari ``components/viewer_model.py`` style).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.cases import Annotation, Case, Study, save_annotations

LAYOUTS = ("1x1", "1x2", "2x2")
TOOLS = ("navigate", "box", "polygon", "freehand", "ruler")
SALIENCY_METHODS = ("own", "gradcam", "cam", "attention", "entropy")
SALIENCY_LABELS = {
    "own": "Model's own",
    "gradcam": "Grad-CAM",
    "cam": "CAM",
    "attention": "Attention",
    "entropy": "Entropy gradient",
}
COLORMAPS = ("turbo", "inferno", "viridis", "CET-L3")
STATUSES = ("unread", "annotated", "rated")
BIRADS = ("", "0", "1", "2", "3", "4A", "4B", "4C", "5", "6")


class Event:
    """A minimal callback list: ``connect(cb)``, ``disconnect(cb)``, ``emit(*args)``."""

    def __init__(self) -> None:
        self._subs: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        """Subscribe ``callback`` (called synchronously by :meth:`emit`)."""
        if callback not in self._subs:
            self._subs.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Unsubscribe ``callback`` if it is subscribed."""
        if callback in self._subs:
            self._subs.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every subscriber with ``args``."""
        for cb in list(self._subs):
            cb(*args)


# --------------------------------------------------------------------------- view
@dataclass
class ViewState:
    """Display settings of one view (one image slot of the hanging).

    ``window`` is (center, width) in stored pixel values; ``None`` means "automatic".
    """

    window: tuple[float, float] | None = None
    invert: bool = False
    overlay_on: bool = True
    opacity: float = 0.45
    colormap: str = "turbo"
    method: str = "own"  # each model's own method (engine.inference.case.OWN_METHOD)
    frame: int = 0
    n_frames: int = 1

    def __post_init__(self) -> None:
        self.changed = Event()  # (attribute name, new value)

    def set(self, name: str, value: Any) -> None:
        """Set an attribute and emit ``changed`` if it differs."""
        if name == "frame":
            value = max(0, min(int(value), self.n_frames - 1))
        if name == "opacity":
            value = max(0.0, min(float(value), 1.0))
        if getattr(self, name) == value:
            return
        setattr(self, name, value)
        self.changed.emit(name, value)

    def scroll(self, step: int) -> None:
        """Move ``step`` slices through an MR stack (clamped)."""
        self.set("frame", self.frame + step)


# --------------------------------------------------------------------------- annotations
class Command(Protocol):
    """An undoable edit of a case's annotations."""

    def do(self, case: Case) -> None: ...

    def undo(self, case: Case) -> None: ...


@dataclass
class AddAnnotation:
    """Add one annotation."""

    ann: Annotation

    def do(self, case: Case) -> None:
        case.annotations.append(self.ann)

    def undo(self, case: Case) -> None:
        case.annotations[:] = [a for a in case.annotations if a.ann_id != self.ann.ann_id]


@dataclass
class RemoveAnnotation:
    """Remove one annotation (remembering its position for undo)."""

    ann: Annotation
    index: int = -1

    def do(self, case: Case) -> None:
        for i, a in enumerate(case.annotations):
            if a.ann_id == self.ann.ann_id:
                self.index = i
                del case.annotations[i]
                return

    def undo(self, case: Case) -> None:
        case.annotations.insert(self.index if self.index >= 0 else len(case.annotations), self.ann)


@dataclass
class EditAnnotation:
    """Change fields (points, lesion_id, label) of one annotation."""

    ann_id: str
    new: dict[str, Any]
    old: dict[str, Any] = field(default_factory=dict)

    def _find(self, case: Case) -> Annotation:
        for a in case.annotations:
            if a.ann_id == self.ann_id:
                return a
        raise KeyError(self.ann_id)

    def do(self, case: Case) -> None:
        a = self._find(case)
        self.old = {k: copy.deepcopy(getattr(a, k)) for k in self.new}
        for k, v in self.new.items():
            setattr(a, k, copy.deepcopy(v))

    def undo(self, case: Case) -> None:
        a = self._find(case)
        for k, v in self.old.items():
            setattr(a, k, copy.deepcopy(v))


# --------------------------------------------------------------------------- ratings
@dataclass
class Rating:
    """A reader's answer for one case.

    Attributes:
        score: Malignancy rating 0-10 (None = not rated yet).
        birads: Optional BI-RADS category ("" = none given).
        comment: Free text.
        seconds: Time spent on the case (accumulated over visits).
        updated: Unix time of the last change.
    """

    score: int | None = None
    birads: str = ""
    comment: str = ""
    seconds: float = 0.0
    updated: float = 0.0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Rating:
        """Build from a stored dict, ignoring unknown keys."""
        known = {k: raw[k] for k in ("score", "birads", "comment", "seconds", "updated") if k in raw}
        return cls(**known)


class RatingSink(Protocol):
    """Where ratings go. Ordinary reading uses :class:`JsonRatingStore`; a blinded reader
    study can plug its own store (``AppState.rating_sink = ...``)."""

    def load(self, study_key: str, case_id: str) -> Rating | None: ...

    def save(self, study_key: str, case_id: str, rating: Rating) -> None: ...


class RatingSaveError(Exception):
    """A rating could not be written; it stays in memory (on screen) and, where possible, in the
    recovery journal. ``str()`` is the one line shown to the reader."""

    def __init__(self, path: Path, exc: OSError, journal: Path | None) -> None:
        self.path, self.reason, self.journal = path, exc.strerror or str(exc), journal
        kept = (f"it is kept on screen and in the recovery journal {journal}" if journal is not None
                else "it is kept on screen only (the recovery journal could not be written either)")
        super().__init__(f"Rating NOT saved to {path}: {self.reason}; {kept}; retrying")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Temp file + fsync + ``os.replace``: the file is the old one or the complete new one."""
    from engine.io.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1))


class JsonRatingStore:
    """Per-user ratings in ``<data_dir>/ratings/<study_key>.json``, rewritten atomically on every change.

    A failed write (disk full, read-only folder, permissions) raises :class:`RatingSaveError`
    after the answer is appended to the recovery journal (``engine.study.journal``: beside the
    file, else in the user's config folder). The answer stays in memory; the next successful
    write (any save, or :meth:`retry`) stores every unsaved answer and settles the journal, and
    answers journalled by a session that ended before the disk came back are loaded when the
    study is opened again.
    """

    JOURNAL_KEY = ("study_key", "case_id")

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir) / "ratings"
        self._cache: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[str, set[str]] = {}  # study_key -> case ids not on disk yet
        self._journalled: dict[str, set[str]] = {}  # study_key -> case ids with a pending journal line

    @staticmethod
    def key_for(study: Study) -> str:
        """A file-name-safe key for a study folder (name + short hash of the path)."""
        import hashlib

        h = hashlib.sha1(str(Path(study.folder).resolve()).encode()).hexdigest()[:8]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study.name)[:40]
        return f"{safe}-{h}"

    def _path(self, study_key: str) -> Path:
        return self.dir / f"{study_key}.json"

    def _all(self, study_key: str) -> dict[str, Any]:
        if study_key not in self._cache:
            p = self._path(study_key)
            data: dict[str, Any] = {}
            if p.exists():
                try:
                    data = json.loads(p.read_text(encoding="utf-8")).get("ratings", {})
                except (OSError, ValueError, AttributeError):
                    data = {}  # an unreadable file must not stop reading; it is rewritten on save
            self._cache[study_key] = data
            self._load_journal(study_key, data)
        return self._cache[study_key]

    def _load_journal(self, study_key: str, data: dict[str, Any]) -> None:
        """Answers an earlier session could not store: newer ones win, then try to store them."""
        from engine.study import journal

        for d in journal.pending(self._path(study_key), self.JOURNAL_KEY):
            cid, raw = d.get("case_id"), d.get("rating")
            if d.get("study_key") != study_key or not isinstance(cid, str) or not isinstance(raw, dict):
                continue
            self._journalled.setdefault(study_key, set()).add(cid)
            old = data.get(cid)
            if not isinstance(old, dict) or float(raw.get("updated") or 0) >= float(old.get("updated") or 0):
                data[cid] = asdict(Rating.from_json(raw))
                self._unsaved.setdefault(study_key, set()).add(cid)
        if self._unsaved.get(study_key):
            with contextlib.suppress(RatingSaveError):
                self._flush(study_key)

    def load(self, study_key: str, case_id: str) -> Rating | None:
        raw = self._all(study_key).get(case_id)
        return Rating.from_json(raw) if isinstance(raw, dict) else None

    def save(self, study_key: str, case_id: str, rating: Rating) -> None:
        """Store ``rating`` (and every answer still unsaved in this study).

        Raises:
            RatingSaveError: the file could not be written; the answer was journalled if possible.
        """
        data = self._all(study_key)
        data[case_id] = asdict(rating)
        self._unsaved.setdefault(study_key, set()).add(case_id)
        self._flush(study_key, journal_case=case_id)

    @property
    def unsaved(self) -> int:
        """How many answers are in memory but not on disk."""
        return sum(len(v) for v in self._unsaved.values())

    def retry(self) -> None:
        """Write every study with unsaved answers again.

        Raises:
            RatingSaveError: still failing (nothing new is journalled: the answers already are).
        """
        for key in [k for k, v in self._unsaved.items() if v]:
            self._flush(key)

    def _flush(self, study_key: str, journal_case: str | None = None) -> None:
        from engine.study import journal

        path = self._path(study_key)
        data = self._cache[study_key]
        try:
            _write_json(path, {"study_key": study_key, "ratings": data})
        except OSError as exc:
            where = None
            if journal_case is not None:
                where = journal.record(path, {"study_key": study_key, "case_id": journal_case,
                                              "rating": data[journal_case]})
                if where is not None:
                    self._journalled.setdefault(study_key, set()).add(journal_case)
            elif self._journalled.get(study_key):
                where = next((p for p in journal.journal_paths(path) if p.is_file()), None)
            raise RatingSaveError(path, exc, where) from None
        self._unsaved.pop(study_key, None)
        for cid in sorted(self._journalled.pop(study_key, set())):  # on disk now: settle the journal
            journal.record(path, {"study_key": study_key, "case_id": cid, "done": True})


# --------------------------------------------------------------------------- case
class CaseState:
    """A case being read: annotations with undo/redo, the rating, the time spent."""

    def __init__(self, case: Case, rating: Rating | None = None) -> None:
        self.case = case
        self.rating = rating or Rating()
        self._undo: list[Command] = []
        self._redo: list[Command] = []
        self._opened_at: float | None = None
        self.annotations_changed = Event()  # ()
        self.rating_changed = Event()  # (Rating)
        self.save_annotations: Callable[[Case], None] = save_annotations
        self.save_error: Exception | None = None

    # annotations -------------------------------------------------------
    @property
    def status(self) -> str:
        """Worklist status: 'rated' when scored, else 'annotated' when drawn on, else 'unread'."""
        if self.rating.score is not None:
            return "rated"
        if self.case.annotations:
            return "annotated"
        return "unread"

    def _commit(self) -> None:
        try:
            self.save_annotations(self.case)
            self.save_error = None
        except OSError as exc:  # read-only study folder: keep working, tell the user
            self.save_error = exc
        self.annotations_changed.emit()

    def execute(self, cmd: Command) -> None:
        """Apply ``cmd``, make it undoable, clear redo and save the annotations."""
        cmd.do(self.case)
        self._undo.append(cmd)
        self._redo.clear()
        self._commit()

    def add_annotation(self, ann: Annotation) -> Annotation:
        """Add an annotation (undoable)."""
        self.execute(AddAnnotation(ann))
        return ann

    def remove_annotation(self, ann_id: str) -> None:
        """Delete an annotation (undoable)."""
        for a in self.case.annotations:
            if a.ann_id == ann_id:
                self.execute(RemoveAnnotation(a))
                return

    def edit_annotation(self, ann_id: str, **fields: Any) -> None:
        """Change points/lesion_id/label of an annotation (undoable)."""
        self.execute(EditAnnotation(ann_id, fields))

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Undo the last edit; returns False when there is nothing to undo."""
        if not self._undo:
            return False
        cmd = self._undo.pop()
        cmd.undo(self.case)
        self._redo.append(cmd)
        self._commit()
        return True

    def redo(self) -> bool:
        """Redo the last undone edit; returns False when there is nothing to redo."""
        if not self._redo:
            return False
        cmd = self._redo.pop()
        cmd.do(self.case)
        self._undo.append(cmd)
        self._commit()
        return True

    def lesion_ids(self) -> list[str]:
        """Lesion ids used in this case, sorted naturally (L1, L2, ..., L10)."""
        ids = {a.lesion_id for a in self.case.annotations}
        return sorted(ids, key=lambda s: (len(s), s))

    def next_lesion_id(self) -> str:
        """A lesion id not used yet in this case."""
        used = set(self.lesion_ids())
        n = 1
        while f"L{n}" in used:
            n += 1
        return f"L{n}"

    # timing -----------------------------------------------------------------
    def start_timer(self, now: float | None = None) -> None:
        """The case became current."""
        self._opened_at = time.monotonic() if now is None else now

    def stop_timer(self, now: float | None = None) -> float:
        """The case stopped being current; adds the elapsed time to the rating. Returns it."""
        if self._opened_at is None:
            return 0.0
        t = time.monotonic() if now is None else now
        dt = max(0.0, t - self._opened_at)
        self._opened_at = None
        self.rating.seconds += dt
        return dt

    def elapsed(self, now: float | None = None) -> float:
        """Total time spent so far including the current visit."""
        if self._opened_at is None:
            return self.rating.seconds
        t = time.monotonic() if now is None else now
        return self.rating.seconds + max(0.0, t - self._opened_at)


# --------------------------------------------------------------------------- app
class AppState:
    """Everything the main window shows, without Qt.

    Events: ``study_changed()``, ``case_changed(CaseState | None)``, ``layout_changed(str)``,
    ``tool_changed(str)``, ``ai_visible_changed(bool)``, ``worklist_changed()``,
    ``lesion_changed(str)``, ``save_failed(str)`` (a rating could not be stored: the message to
    show; the rating stays in memory) and ``save_recovered()`` (a later write stored it).
    """

    def __init__(self, rating_sink: RatingSink | None = None, author: str | None = None) -> None:
        self.study: Study | None = None
        self.study_key: str = ""
        self.rating_sink = rating_sink
        self.author = author or os.environ.get("USER") or "reader"
        self.cases: dict[str, CaseState] = {}
        self.current: CaseState | None = None
        self.layout = "2x2"
        self.tool = "navigate"
        self.lesion_id = "L1"
        self.ai_visible = True
        self.filter_text = ""
        self.filter_status = ""
        self.image_problems: dict[str, str] = {}  # "case/image" -> reason
        self._statuses: dict[str, str] = {}
        self.study_changed = Event()
        self.case_changed = Event()
        self.layout_changed = Event()
        self.tool_changed = Event()
        self.ai_visible_changed = Event()
        self.worklist_changed = Event()
        self.lesion_changed = Event()
        self.save_error: str | None = None  # the last failed rating save, None once stored
        self.save_failed = Event()  # (one-line message)
        self.save_recovered = Event()  # ()

    # study -----------------------------------------------------------------
    def prepare_study(self, study: Study) -> dict[str, CaseState]:
        """The per-case states of ``study`` with their saved ratings, without making it current.

        Pure Python over the study and the rating store: the workstation calls it in the worker
        that read the study, so a 5 000-case study costs the GUI thread nothing here.
        """
        key = JsonRatingStore.key_for(study)
        out: dict[str, CaseState] = {}
        for c in study.cases:
            rating = self.rating_sink.load(key, c.case_id) if self.rating_sink else None
            out[c.case_id] = CaseState(c, rating)
        return out

    def set_study(self, study: Study, prepared: dict[str, CaseState] | None = None) -> None:
        """Make ``study`` current; loads saved ratings (or takes :meth:`prepare_study`'s); selects nothing."""
        self.leave_case()
        self.study = study
        self.study_key = JsonRatingStore.key_for(study)
        self.cases = prepared if prepared is not None else self.prepare_study(study)
        for cs in self.cases.values():
            cs.annotations_changed.connect(lambda cs=cs: self._status_maybe_changed(cs))
        self.current = None
        self.image_problems = {}
        self._statuses = {cid: cs.status for cid, cs in self.cases.items()}
        self.study_changed.emit()
        self.worklist_changed.emit()

    def case_ids(self) -> list[str]:
        """All case ids in study order."""
        return [c.case_id for c in self.study.cases] if self.study else []

    def visible_case_ids(self) -> list[str]:
        """Case ids passing the worklist filter (search text and status)."""
        out = []
        text = self.filter_text.strip().lower()
        for cid in self.case_ids():
            cs = self.cases[cid]
            if self.filter_status and cs.status != self.filter_status:
                continue
            if text:
                hay = " ".join(
                    [cid, cs.case.description, " ".join(cs.case.modalities)]
                    + [a.lesion_id for a in cs.case.annotations]
                ).lower()
                if text not in hay:
                    continue
            out.append(cid)
        return out

    def set_filter(self, text: str | None = None, status: str | None = None) -> None:
        """Change the worklist filter ('' status = all)."""
        if text is not None:
            self.filter_text = text
        if status is not None:
            if status and status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            self.filter_status = status
        self.worklist_changed.emit()

    # navigation ---------------------------------------------------------
    def leave_case(self) -> None:
        """Stop the timer of the current case and save its time."""
        if self.current is not None:
            self.current.stop_timer()
            self._save_rating(self.current)

    def select_case(self, case_id: str | None) -> CaseState | None:
        """Make a case current (None = none); records time spent on the previous one."""
        if self.current is not None and case_id == self.current.case.case_id:
            return self.current
        self.leave_case()
        self.current = self.cases.get(case_id) if case_id else None
        if self.current is not None:
            self.current.start_timer()
            ids = self.current.lesion_ids()
            self.set_lesion(ids[0] if ids else "L1")
        self.case_changed.emit(self.current)
        return self.current

    def step_case(self, step: int) -> CaseState | None:
        """Go to the next (+1) / previous (-1) case of the filtered worklist (stops at the ends)."""
        ids = self.visible_case_ids() or self.case_ids()
        if not ids:
            return None
        if self.current is None or self.current.case.case_id not in ids:
            return self.select_case(ids[0] if step >= 0 else ids[-1])
        i = ids.index(self.current.case.case_id) + step
        i = max(0, min(i, len(ids) - 1))
        return self.select_case(ids[i])

    # settings --------------------------------------------------------------
    def set_layout(self, layout: str) -> None:
        """Switch the grid layout (1x1, 1x2, 2x2)."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        if layout != self.layout:
            self.layout = layout
            self.layout_changed.emit(layout)

    def cycle_layout(self) -> None:
        """Next layout in LAYOUTS order."""
        self.set_layout(LAYOUTS[(LAYOUTS.index(self.layout) + 1) % len(LAYOUTS)])

    def set_tool(self, tool: str) -> None:
        """Select the mouse tool (navigate, box, polygon, freehand, ruler)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self.tool:
            self.tool = tool
            self.tool_changed.emit(tool)

    def set_lesion(self, lesion_id: str) -> None:
        """The lesion id given to new annotations (shared across views and modalities)."""
        lesion_id = lesion_id.strip() or "L1"
        if lesion_id != self.lesion_id:
            self.lesion_id = lesion_id
            self.lesion_changed.emit(lesion_id)

    def new_lesion(self) -> str:
        """Start a new lesion id for the next annotations."""
        lid = self.current.next_lesion_id() if self.current else "L1"
        if lid == self.lesion_id and self.current:
            lid = f"L{int(lid[1:]) + 1}" if lid[1:].isdigit() else lid + "'"
        self.set_lesion(lid)
        return lid

    def set_ai_visible(self, visible: bool) -> None:
        """Show/hide every AI output (the reader-study engineer hides it for blinded arms)."""
        if visible != self.ai_visible:
            self.ai_visible = visible
            self.ai_visible_changed.emit(visible)

    # ratings ---------------------------------------------------------------
    def _save_rating(self, cs: CaseState) -> None:
        if self.rating_sink is not None and self.study is not None:
            try:
                self.rating_sink.save(self.study_key, cs.case.case_id, cs.rating)
            except (RatingSaveError, OSError) as exc:  # the answer stays in memory, on screen
                self._save_failed(exc)
            else:
                self._save_ok()

    def _save_failed(self, exc: Exception) -> None:
        self.save_error = str(exc) if isinstance(exc, RatingSaveError) else f"Rating NOT saved: {exc}; retrying"
        self.save_failed.emit(self.save_error)

    def _save_ok(self) -> None:
        if self.save_error is not None:
            self.save_error = None
            self.save_recovered.emit()

    def retry_saves(self) -> bool:
        """Write the ratings a failed save left in memory again; True when none is left unsaved."""
        if self.save_error is None:
            return True
        retry = getattr(self.rating_sink, "retry", None)
        try:
            if retry is not None:
                retry()
            elif self.current is not None:
                self._save_rating(self.current)
                return self.save_error is None
        except (RatingSaveError, OSError) as exc:
            self._save_failed(exc)
            return False
        self._save_ok()
        return True

    def rate(self, score: int | None = None, birads: str | None = None, comment: str | None = None) -> None:
        """Update the current case's rating and save it immediately."""
        cs = self.current
        if cs is None:
            return
        if score is not None:
            if not 0 <= int(score) <= 10:
                raise ValueError("rating must be 0-10")
            cs.rating.score = int(score)
        if birads is not None:
            if birads not in BIRADS:
                raise ValueError(f"unknown BI-RADS category {birads!r}")
            cs.rating.birads = birads
        if comment is not None:
            cs.rating.comment = comment
        cs.rating.updated = time.time()
        # persist the time spent so far too, without resetting the visit timer
        saved = cs.rating.seconds
        cs.rating.seconds = cs.elapsed()
        self._save_rating(cs)
        cs.rating.seconds = saved
        cs.rating_changed.emit(cs.rating)
        self._status_maybe_changed(cs)

    def _status_maybe_changed(self, cs: CaseState) -> None:
        # the worklist only shows statuses: typing a comment must not rebuild a 1000-row list
        cid = cs.case.case_id
        if self._statuses.get(cid) != cs.status:
            self._statuses[cid] = cs.status
            self.worklist_changed.emit()

    # annotations -------------------------------------------------------------
    def new_annotation(
        self, image_id: str, kind: str, points: list[list[float]], frame: int | None = None
    ) -> Annotation | None:
        """Create an annotation on the current case with the current lesion id (undoable)."""
        if self.current is None:
            return None
        ann = Annotation(
            image_id=image_id,
            kind=kind,
            points=[[float(x), float(y)] for x, y in points],
            lesion_id=self.lesion_id,
            frame=frame,
            author=self.author,
        )
        return self.current.add_annotation(ann)
