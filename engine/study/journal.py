"""Recovery journal for ratings that could not be stored (disk full, I/O error, read-only).

When :meth:`engine.study.session.ReadingSession.submit` cannot write the ratings file, the
reader's answer is appended here (one JSON line, fsynced) before the error reaches the window,
which keeps the answer on screen so Submit can be pressed again. The journal lives beside the
ratings file (``<ratings>.journal.jsonl``) or, when that folder cannot be written either, in the
user's configuration folder. Journalled answers are replayed into the store the next time the
session stores a rating or is opened (:func:`replay`), and each replayed line is marked done; a
rating already in the store is never overwritten (locked ratings stay locked).

The workstation's ordinary ratings (``reader_app.state.JsonRatingStore``) use the same journal,
keyed by ``(study_key, case_id)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["journal_paths", "pending", "record", "replay"]


def journal_paths(store_path: Path) -> list[Path]:
    """Where the journal of a ratings file may be (beside it, then the user's config folder)."""
    from engine.cases.secret import config_dir

    tag = hashlib.sha256(str(Path(store_path).resolve()).encode()).hexdigest()[:12]
    return [Path(str(store_path) + ".journal.jsonl"), config_dir() / "journals" / f"{tag}.jsonl"]


def record(store_path: Path, entry: dict[str, Any]) -> Path | None:
    """Append one unsaved answer; returns the journal written (None when nowhere could be)."""
    line = json.dumps({"done": False, **entry, "journalled_at": time.time()}) + "\n"
    for p in journal_paths(store_path):
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            return p
        except OSError:
            continue
    return None


STUDY_KEY = ("reader_id", "arm_id", "case_id")


def pending(store_path: Path, key: tuple[str, ...] = STUDY_KEY) -> list[dict[str, Any]]:
    """Journalled answers not stored yet (oldest first; one per ``key``, the latest).

    A ``done`` line settles the answers journalled before it under the same key; an answer
    journalled after it (the same case failing again later) is pending again.
    """
    lines: list[dict[str, Any]] = []
    for p in journal_paths(store_path):  # either file may hold lines: merge them in time order
        if p.is_file():
            for raw in p.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    d = json.loads(raw)
                    if isinstance(d, dict):
                        lines.append(d)
    items: dict[tuple[str, ...], dict[str, Any]] = {}
    for d in sorted(lines, key=lambda d: float(d.get("journalled_at") or 0.0)):
        k = tuple(str(d.get(f)) for f in key)
        items.pop(k, None)
        if not d.get("done"):
            items[k] = d
    return list(items.values())


def replay(store: Any) -> int:
    """Store every pending answer that has no rating yet; returns how many were stored."""
    from engine.study.store import RatingLockedError, StoreWriteError

    n = 0
    for d in pending(store.path):
        key = (d["reader_id"], d["arm_id"], d["case_id"])
        try:
            if d["case_id"] not in store.rated_cases(d["reader_id"], d["arm_id"]):
                store.submit(*key, float(d["score"]), d.get("birads"), comment=d.get("comment"),
                             marks=d.get("marks") or None)
                n += 1
        except RatingLockedError:
            pass
        except StoreWriteError:
            return n  # still cannot write: keep the journal for the next attempt
        record(store.path, {"reader_id": key[0], "arm_id": key[1], "case_id": key[2], "done": True})
    return n
