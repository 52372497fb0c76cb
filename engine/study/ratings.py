"""Ratings files for MRMC analysis: long CSV (reader,treatment,case,truth,rating) and iMRMC.

Every problem is reported as :class:`engine.errors.CaseFormatError` naming the file, the row
(1-based, counting the header as row 1) and what to fix.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.errors import CaseFormatError
from engine.io.atomic import atomic_open

__all__ = ["RatingsTable", "load_ratings", "parse_imrmc", "parse_long_csv", "write_imrmc", "write_long_csv"]

REQUIRED = ("reader", "treatment", "case", "truth", "rating")


@dataclass
class RatingsTable:
    """A fully crossed ratings table.

    Attributes:
        treatments: Treatment names (order of first appearance).
        readers: Reader names.
        cases: Case ids.
        truth: (c,) 0/1 truth.
        ratings: (t, r, c) ratings.
        source: File the table was read from ("" when built in memory).
    """

    treatments: list[str]
    readers: list[str]
    cases: list[str]
    truth: NDArray[np.int64]
    ratings: NDArray[np.float64]
    source: str = ""


def _finish(
    path: str,
    records: list[tuple[int, str, str, str, int, float]],
    allow_missing: bool = False,
) -> RatingsTable:
    """Check a list of (row, reader, treatment, case, truth, rating) and build the table."""
    if not records:
        raise CaseFormatError(path, "no ratings found; add rows reader,treatment,case,truth,rating")
    # dicts keep first-appearance order with O(1) membership (60 000-case files)
    t_idx: dict[str, int] = {}
    r_idx: dict[str, int] = {}
    c_idx: dict[str, int] = {}
    truth: dict[str, tuple[int, int]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for row, rd, tr, cs, tv, _ in records:
        key = (rd, tr, cs)
        if key in seen:
            raise CaseFormatError(
                path,
                f"case {cs!r} is rated twice by reader {rd!r} in treatment {tr!r} (first at row "
                f"{seen[key]}); keep one rating per reader, treatment and case",
                row=row,
            )
        seen[key] = row
        if cs in truth and truth[cs][0] != tv:
            raise CaseFormatError(
                path,
                f"case {cs!r} has truth {tv} here but {truth[cs][0]} at row {truth[cs][1]}; "
                "a case has one truth",
                row=row,
            )
        truth.setdefault(cs, (tv, row))
        t_idx.setdefault(tr, len(t_idx))
        r_idx.setdefault(rd, len(r_idx))
        c_idx.setdefault(cs, len(c_idx))
    treatments, readers, cases = list(t_idx), list(r_idx), list(c_idx)
    tvals = {v for v, _ in truth.values()}
    if len(tvals) < 2:
        only = "positive (1)" if tvals == {1} else "negative (0)"
        raise CaseFormatError(
            path, f"all {len(cases)} cases are {only}; ROC analysis needs both benign (0) and malignant (1) cases"
        )
    n_pos = sum(v for v, _ in truth.values())
    if min(n_pos, len(truth) - n_pos) < 2:
        raise CaseFormatError(
            path, f"{n_pos} malignant and {len(truth) - n_pos} benign case(s); AUC variances need at least 2 of each"
        )
    ti, ri, ci = t_idx, r_idx, c_idx
    arr = np.full((len(treatments), len(readers), len(cases)), np.nan)
    for _, rd, tr, cs, _, rt in records:
        arr[ti[tr], ri[rd], ci[cs]] = rt
    missing = np.argwhere(np.isnan(arr))
    if missing.size and not allow_missing:
        i, j, k = missing[0]
        example = next(r for r, rd, tr, cs, _, _ in records if cs == cases[k])
        raise CaseFormatError(
            path,
            f"reader {readers[j]!r} has no rating for case {cases[k]!r} in treatment "
            f"{treatments[i]!r} ({len(missing)} missing in all; the case is rated at row {example}); "
            "every reader must rate every case in every treatment: add the rating or drop the case",
        )
    t_arr = np.array([truth[c][0] for c in cases], dtype=np.int64)
    return RatingsTable(treatments, readers, cases, t_arr, arr, source=path)


def _parse_truth(path: str, row: int, value: str) -> int:
    v = value.strip().lower()
    mapping = {"0": 0, "1": 1, "benign": 0, "malignant": 1, "0.0": 0, "1.0": 1}
    if v not in mapping:
        raise CaseFormatError(path, f"truth {value!r} is not 0/1 (or benign/malignant)", row=row)
    return mapping[v]


def _parse_rating(path: str, row: int, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise CaseFormatError(path, f"rating {value!r} is not a number", row=row) from None
    if not np.isfinite(x):
        raise CaseFormatError(path, f"rating {value!r} is not a finite number", row=row)
    return x


def parse_long_csv(text: str, path: str = "<ratings>", allow_missing: bool = False) -> RatingsTable:
    """Parse long-format CSV text with columns reader,treatment,case,truth,rating.

    Args:
        text: CSV text (extra columns are ignored).
        path: Name used in messages.

    Returns:
        :class:`RatingsTable`.

    Raises:
        CaseFormatError: Missing columns, bad values, duplicates, one class, missing ratings.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CaseFormatError(
            path,
            f"missing column(s) {', '.join(missing)}; the header must contain "
            f"{','.join(REQUIRED)} (found: {','.join(header) or 'nothing'})",
            row=1,
        )
    reader.fieldnames = header
    records: list[tuple[int, str, str, str, int, float]] = []
    for n, rec in enumerate(reader, start=2):
        if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
            continue
        vals = {k: (rec.get(k) or "").strip() for k in REQUIRED}
        empty = [k for k, v in vals.items() if not v]
        if empty:
            raise CaseFormatError(path, f"empty value in column(s) {', '.join(empty)}", row=n)
        records.append(
            (
                n,
                vals["reader"],
                vals["treatment"],
                vals["case"],
                _parse_truth(path, n, vals["truth"]),
                _parse_rating(path, n, vals["rating"]),
            )
        )
    return _finish(path, records, allow_missing)


def parse_imrmc(text: str, path: str = "<imrmc>", allow_missing: bool = False) -> RatingsTable:
    """Parse iMRMC input (free header, ``BEGIN DATA:``, rows reader,case,modality,score).

    Truth rows have reader ``-1`` (modality ``truth`` or ``0``) and score 0/1 (Gallas et al.,
    iMRMC user guide).

    Args:
        text: File text.
        path: Name used in messages.

    Returns:
        :class:`RatingsTable`.
    """
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().upper().startswith("BEGIN DATA")), None)
    if start is None:
        raise CaseFormatError(path, "no 'BEGIN DATA:' line; not an iMRMC file")
    truth: dict[str, tuple[int, int]] = {}
    rows: list[tuple[int, str, str, str, float]] = []
    for n in range(start + 1, len(lines)):
        ln = lines[n].strip()
        if not ln:
            continue
        parts = [p.strip() for p in ln.split(",")]
        if len(parts) != 4:
            raise CaseFormatError(path, f"expected 4 fields readerID,caseID,modalityID,score; got {len(parts)}", row=n + 1)
        rd, cs, md, sc = parts
        if rd == "-1":
            truth[cs] = (_parse_truth(path, n + 1, sc), n + 1)
        else:
            rows.append((n + 1, rd, md, cs, _parse_rating(path, n + 1, sc)))
    records: list[tuple[int, str, str, str, int, float]] = []
    for n, rd, md, cs, score in rows:
        if cs not in truth:
            raise CaseFormatError(path, f"case {cs!r} has no truth row (-1,{cs},truth,0|1)", row=n)
        records.append((n, rd, md, cs, truth[cs][0], score))
    return _finish(path, records, allow_missing)


def load_ratings(path: str | PathLike[str], allow_missing: bool = False) -> RatingsTable:
    """Load a ratings file, long CSV or iMRMC (detected by a ``BEGIN DATA`` line).

    Args:
        path: File path.
        allow_missing: Keep unrated reader x case cells as NaN (split-plot designs) instead of
            refusing the file.

    Returns:
        :class:`RatingsTable`.

    Raises:
        CaseFormatError: Unreadable or invalid file (message names the row and the fix).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CaseFormatError(p, f"cannot read ratings file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CaseFormatError(p, "not a UTF-8 text file") from None
    if any(ln.strip().upper().startswith("BEGIN DATA") for ln in text.splitlines()[:200]):
        return parse_imrmc(text, str(p), allow_missing)
    return parse_long_csv(text, str(p), allow_missing)


def write_long_csv(table: RatingsTable, path: str | PathLike[str]) -> None:
    """Write the table as long CSV (reader,treatment,case,truth,rating)."""
    with atomic_open(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REQUIRED)
        for i, tr in enumerate(table.treatments):
            for j, rd in enumerate(table.readers):
                for k, cs in enumerate(table.cases):
                    w.writerow([rd, tr, cs, int(table.truth[k]), _fmt(table.ratings[i, j, k])])


def write_imrmc(table: RatingsTable, path: str | PathLike[str], title: str = "breast-reader study") -> None:
    """Write the table in iMRMC input format."""
    n1 = int(table.truth.sum())
    with atomic_open(path, newline="") as fh:
        fh.write(f"{title}\nN0: {table.truth.size - n1}\nN1: {n1}\nNR: {len(table.readers)}\n")
        fh.write(f"NM: {len(table.treatments)}\nBEGIN DATA:\n")
        for k, cs in enumerate(table.cases):
            fh.write(f"-1,{cs},truth,{int(table.truth[k])}\n")
        for i, tr in enumerate(table.treatments):
            for j, rd in enumerate(table.readers):
                for k, cs in enumerate(table.cases):
                    fh.write(f"{rd},{cs},{tr},{_fmt(table.ratings[i, j, k])}\n")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
