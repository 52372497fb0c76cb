"""Qt-free state of one case in the blinded reading session (napari "components" style).

The reading window only shows this state and calls its setters; keyboard handling is a pure
function of (state, key) here, so "two presses of Down never change a rating" is testable
without a display. Nothing here sees truth.

Rating targets: digits rate the *case* unless a lesion mark was just placed (or selected),
in which case they set that mark's confidence; the target is always shown on screen.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AI_DISPLAY_MODES = ("after_rating", "on_demand", "always")
AI_DISPLAY_LABELS = {
    "after_rating": "AI hidden until you have rated the case",
    "on_demand": "AI shown when you ask for it (A)",
    "always": "AI shown with the images",
}


@dataclass
class Mark:
    """A lesion mark for localisation (FROC) analysis.

    Attributes:
        mark_id: "M1", "M2", ... within the case.
        image_id: Image the mark is on.
        kind: "point" (points = [[x, y]]), "box" (two corners) or "polygon" (a polygon or
            freehand contour's vertices), image pixel coordinates.
        frame: Slice of a stack (None for 2-D images).
        confidence: Reader's confidence that this is a malignant lesion (rating scale), None = not given.
    """

    mark_id: str
    image_id: str
    kind: str
    points: list[list[float]]
    frame: int | None = None
    confidence: int | None = None

    def centre(self) -> tuple[float, float]:
        """Centre of the mark in image pixels."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return (sum(xs) / len(xs), sum(ys) / len(ys))


class CaseReading:
    """The reader's answers for the case on screen: score, BI-RADS, marks, AI reveal.

    Args:
        rating_min: Lowest value of the rating scale.
        rating_max: Highest value.
        ai_mode: One of :data:`AI_DISPLAY_MODES`.
        ai_allowed: Whether this arm shows AI at all (never in the unaided arm).
    """

    def __init__(self, rating_min: int = 0, rating_max: int = 10, ai_mode: str = "after_rating",
                 ai_allowed: bool = False) -> None:
        if ai_mode not in AI_DISPLAY_MODES:
            raise ValueError(f"unknown AI display mode {ai_mode!r}; use one of {', '.join(AI_DISPLAY_MODES)}")
        self.rating_min = rating_min
        self.rating_max = rating_max
        self.ai_mode = ai_mode
        self.ai_allowed = ai_allowed
        self.score: int | None = None
        self.initial_score: int | None = None  # the score given before the AI was shown
        self.birads: str | None = None
        self.marks: list[Mark] = []
        self.target: str = "case"  # "case" or a mark id
        self.ai_revealed = ai_allowed and ai_mode == "always"
        self.ai_revealed_at: float | None = time.time() if self.ai_revealed else None
        self._last_digit: tuple[int, float] | None = None
        self._mark_hold: tuple[str, float] | None = None
        self._birads_seq: str | None = None  # None = not entering; "" after C; "4" after C 4
        self.changed = _Event()  # (what)

    # ---------------------------------------------------------------- rating
    def set_score(self, value: int) -> None:
        """Rate the case (clamped to the scale). In "after_rating" mode this reveals the AI."""
        v = max(self.rating_min, min(int(value), self.rating_max))
        self.score = v
        if not self.ai_revealed:
            self.initial_score = v
        self.changed.emit("score")
        if self.ai_allowed and self.ai_mode == "after_rating" and not self.ai_revealed:
            self.reveal_ai()

    def set_birads(self, category: str | None) -> None:
        """The BI-RADS assessment category of the case."""
        self.birads = category
        self.changed.emit("birads")

    def reveal_ai(self) -> bool:
        """Show the AI (aided arms only; in "after_rating" mode only once the case is rated)."""
        if not self.ai_allowed or self.ai_revealed:
            return False
        if self.ai_mode == "after_rating" and self.score is None:
            return False
        self.ai_revealed = True
        self.ai_revealed_at = time.time()
        self.changed.emit("ai")
        return True

    # ---------------------------------------------------------------- marks
    def add_mark(self, image_id: str, kind: str, points: list[list[float]], frame: int | None = None) -> Mark:
        """Add a point, box or contour mark; it becomes the target of the next digit (its confidence).

        A freehand trace is stored as a polygon (its simplified vertices): the study store and
        the FROC analysis know point, box and polygon marks.
        """
        if kind == "freehand":
            kind = "polygon"
        if kind not in ("point", "box", "polygon"):
            raise ValueError(f"a mark is a point, a box or a contour, not {kind!r}")
        if kind == "polygon" and len(points) < 3:
            raise ValueError("a contour mark needs at least 3 vertices")
        n = 1
        used = {m.mark_id for m in self.marks}
        while f"M{n}" in used:
            n += 1
        m = Mark(f"M{n}", image_id, kind, [[float(x), float(y)] for x, y in points], frame)
        self.marks.append(m)
        self.target = m.mark_id
        self.changed.emit("marks")
        return m

    def remove_mark(self, mark_id: str) -> None:
        """Delete a mark."""
        self.marks = [m for m in self.marks if m.mark_id != mark_id]
        if self.target == mark_id:
            self.target = "case"
        self.changed.emit("marks")

    def mark(self, mark_id: str) -> Mark | None:
        return next((m for m in self.marks if m.mark_id == mark_id), None)

    def set_target(self, target: str) -> None:
        """Digits rate the case ("case") or a mark (its id)."""
        if target != "case" and self.mark(target) is None:
            raise KeyError(target)
        self.target = target
        self.changed.emit("target")

    # ---------------------------------------------------------------- keys
    def digit(self, d: int, now: float | None = None) -> str:
        """A number key: BI-RADS sequence if one is being typed, else a rating of the target.

        "1" then "0" within 0.8 s rates 10 (when the scale reaches 10). Returns what changed:
        "score", "confidence:<mark>", "birads" or "".
        """
        now = time.monotonic() if now is None else now
        if self._birads_seq is not None:
            return self._birads_digit(d)
        if self._mark_hold is not None and (self._mark_hold[0] != self.target or now - self._mark_hold[1] >= 0.8):
            if self._mark_hold[0] == self.target:
                self.target = "case"  # the "1" given to the mark was not the start of "10"
            self._mark_hold = None
        value = d
        if (d == 0 and self._last_digit is not None and self._last_digit[0] == 1
                and now - self._last_digit[1] < 0.8 and self.rating_max >= 10):
            value = 10
        self._last_digit = (d, now)
        if self.target != "case":
            m = self.mark(self.target)
            if m is not None:
                m.confidence = max(self.rating_min, min(value, self.rating_max))
                self.changed.emit("marks")
                if value == 1 and self.rating_max >= 10:  # may be the start of "10": hold 0.8 s
                    self._mark_hold = (m.mark_id, now)
                else:
                    self._mark_hold = None
                    self.target = "case"
                    self.changed.emit("target")
                return f"confidence:{m.mark_id}"
        self.set_score(value)
        return "score"

    def start_birads(self) -> None:
        """The BI-RADS key ("C"): the next digit (and A/B/C after a 4) is the category."""
        self._birads_seq = ""
        self.changed.emit("birads_seq")

    @property
    def birads_pending(self) -> str | None:
        """What has been typed of a BI-RADS sequence (None = not typing one)."""
        return self._birads_seq

    def _birads_digit(self, d: int) -> str:
        if d == 4:
            self._birads_seq = "4"  # wait for A/B/C
            self.changed.emit("birads_seq")
            return ""
        if d in (0, 1, 2, 3, 5, 6):
            self._birads_seq = None
            self.set_birads(str(d))
            return "birads"
        return ""

    def letter(self, ch: str) -> str:
        """A/B/C after "C 4" completes 4A/4B/4C. Returns "birads" when it did."""
        if self._birads_seq == "4" and ch.upper() in ("A", "B", "C"):
            self._birads_seq = None
            self.set_birads("4" + ch.upper())
            return "birads"
        return ""

    def cancel_sequence(self) -> bool:
        """Esc: abandon a BI-RADS sequence (True if one was pending)."""
        if self._birads_seq is None:
            return False
        self._birads_seq = None
        self.changed.emit("birads_seq")
        return True

    def ready(self, birads_required: bool, allowed: tuple[str, ...] | None = None) -> str | None:
        """None when the case can be submitted, else the reason it cannot."""
        if self.score is None:
            return f"rate the case first ({self.rating_min}-{self.rating_max}: number keys)"
        if birads_required and self.birads is None:
            return "give a BI-RADS category (C then 0-5, 4 then A/B/C)"
        if allowed is not None and self.birads is not None and self.birads not in allowed:
            return f"BI-RADS {self.birads} is not offered in this study ({', '.join(allowed)})"
        return None

    def to_record(self) -> dict[str, Any]:
        """What is stored beside the rating: marks, the pre-AI score, AI reveal time."""
        return {
            "score": self.score,
            "initial_score": self.initial_score,
            "birads": self.birads,
            "ai_mode": self.ai_mode if self.ai_allowed else "none",
            "ai_revealed_at": self.ai_revealed_at,
            "marks": [asdict(m) for m in self.marks],
        }


class _Event:
    def __init__(self) -> None:
        self._subs: list[Callable[..., Any]] = []

    def connect(self, cb: Callable[..., Any]) -> None:
        if cb not in self._subs:
            self._subs.append(cb)

    def emit(self, *args: Any) -> None:
        for cb in list(self._subs):
            cb(*args)


class JsonMarksStore:
    """Lesion marks + pre-AI scores per (reader, arm, case) in ``<definition>.marks.json``.

    Written atomically on every submit, so a crash never loses a submitted case's marks. The
    reader-study store (engine.study) takes these over once it has a marks table.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, reader_id: str, arm_id: str, case_id: str, record: dict[str, Any]) -> None:
        """Store one case's record (replacing an earlier one)."""
        data = self._load()
        data.setdefault(reader_id, {}).setdefault(arm_id, {})[case_id] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".marks.", suffix=".tmp", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.path)

    def load(self, reader_id: str, arm_id: str, case_id: str) -> dict[str, Any] | None:
        rec = self._load().get(reader_id, {}).get(arm_id, {}).get(case_id)
        return rec if isinstance(rec, dict) else None


def ai_display_mode(definition: str | os.PathLike[str]) -> str:
    """``[study] ai_display`` of a reader-study definition (default "after_rating")."""
    import tomllib

    try:
        raw = tomllib.loads(Path(definition).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "after_rating"
    mode = str(raw.get("study", {}).get("ai_display", "after_rating"))
    return mode if mode in AI_DISPLAY_MODES else "after_rating"


def ai_calibration_note(definition: str | os.PathLike[str]) -> str:
    """``[study] ai_calibration`` (what the AI probability is calibrated on), or an honest default."""
    import tomllib

    try:
        raw = tomllib.loads(Path(definition).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    note = raw.get("study", {}).get("ai_calibration")
    return str(note) if note else "calibration not stated for these scores: read them as a ranking, not a risk"
