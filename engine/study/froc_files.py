"""FROC study files: MARKS, LESIONS and CASES CSVs (the already-matched form RJafroc uses).

* ``MARKS.csv``: ``treatment,reader,case,truth,mark_type,lesion_id,rating``; one row per mark;
  ``mark_type`` NL (non-lesion localisation; ``lesion_id`` empty) or LL (a mark on lesion
  ``lesion_id`` of that case). A lesion marked twice by the same reader in the same treatment
  keeps its highest rating (a lesion counts once).
* ``LESIONS.csv``: ``case,lesion_id,weight``; every lesion of every abnormal case; weight empty
  or 0 for all lesions of a case = equal weights; otherwise the case's weights must sum to 1.
* ``CASES.csv``: ``case,truth`` for every case (0 normal, 1 abnormal), marked or not.

Treatments and readers are those that occur in MARKS (a reader with no mark at all in any
treatment cannot be told apart from an absent reader, so is not in the analysis); a reader
without marks in one treatment has every lesion unlocalised and no NL there.

Problems raise :class:`engine.errors.CaseFormatError` naming the file, the row and the fix.
"""

from __future__ import annotations

import csv
import io
from os import PathLike
from pathlib import Path

import numpy as np

from engine.errors import CaseFormatError
from engine.io.atomic import atomic_open
from engine.stats.froc import FrocData

__all__ = ["MARKS_COLUMNS", "load_froc", "parse_froc", "write_froc"]

MARKS_COLUMNS = ("treatment", "reader", "case", "truth", "mark_type", "lesion_id", "rating")
LESIONS_COLUMNS = ("case", "lesion_id", "weight")
CASES_COLUMNS = ("case", "truth")


def _rows(text: str, path: str, need: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    rd = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (rd.fieldnames or [])]
    missing = [c for c in need if c not in header]
    if missing:
        raise CaseFormatError(path, f"missing column(s) {', '.join(missing)}; the header must contain "
                              f"{','.join(need)} (found: {','.join(header)})", row=1)
    rd.fieldnames = header
    return [(n, {k: (v or "").strip() for k, v in row.items() if k is not None})
            for n, row in enumerate(rd, start=2)]


def _truth(path: str, row: int, v: str) -> bool:
    if v in ("0", "1"):
        return v == "1"
    raise CaseFormatError(path, f"truth {v!r} is not 0/1 (0 = normal, 1 = abnormal)", row=row)


def _read(path: str | PathLike[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CaseFormatError(path, f"cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CaseFormatError(path, "not a UTF-8 text (CSV) file") from None


def parse_froc(marks_text: str, lesions_text: str, cases_text: str, marks_path: str = "<marks>",
               lesions_path: str = "<lesions>", cases_path: str = "<cases>") -> FrocData:
    """Build :class:`FrocData` from the three CSV texts (see the module docstring)."""
    # cases
    case_idx: dict[str, int] = {}
    truth: list[bool] = []
    for n, row in _rows(cases_text, cases_path, CASES_COLUMNS):
        c = row["case"]
        if not c:
            raise CaseFormatError(cases_path, "empty case id", row=n)
        if c in case_idx:
            raise CaseFormatError(cases_path, f"case {c!r} is listed twice", row=n)
        case_idx[c] = len(truth)
        truth.append(_truth(cases_path, n, row["truth"]))
    if not truth:
        raise CaseFormatError(cases_path, "no cases; list every case as case,truth")
    # lesions
    les_idx: dict[tuple[str, str], int] = {}
    les_case: list[int] = []
    les_ids: list[str] = []
    raw_w: list[float] = []
    for n, row in _rows(lesions_text, lesions_path, LESIONS_COLUMNS):
        c, lid = row["case"], row["lesion_id"]
        if c not in case_idx:
            raise CaseFormatError(lesions_path, f"case {c!r} is not in {cases_path}", row=n)
        if not truth[case_idx[c]]:
            raise CaseFormatError(lesions_path, f"case {c!r} has truth 0 in {cases_path} but a lesion here", row=n)
        if not lid:
            raise CaseFormatError(lesions_path, "empty lesion_id", row=n)
        if (c, lid) in les_idx:
            raise CaseFormatError(lesions_path, f"lesion {lid!r} of case {c!r} is listed twice", row=n)
        try:
            w = float(row["weight"]) if row["weight"] else 0.0
        except ValueError:
            raise CaseFormatError(lesions_path, f"weight {row['weight']!r} is not a number", row=n) from None
        if not np.isfinite(w) or w < 0:
            raise CaseFormatError(lesions_path, f"weight {w} must be >= 0", row=n)
        les_idx[(c, lid)] = len(les_ids)
        les_case.append(case_idx[c])
        les_ids.append(lid)
        raw_w.append(w)
    lc = np.asarray(les_case, dtype=np.int64)
    tr_arr = np.asarray(truth, dtype=bool)
    no_les = [c for c, i in case_idx.items() if tr_arr[i] and i not in set(les_case)]
    if no_les:
        raise CaseFormatError(lesions_path, f"abnormal case(s) {no_les[:5]} have no lesion; list each lesion")
    weights = np.asarray(raw_w, dtype=float)
    for ci in np.unique(lc):
        sel = lc == ci
        s = weights[sel].sum()
        if s == 0:
            weights[sel] = 1.0 / sel.sum()
        elif abs(s - 1.0) > 1e-6:
            name = list(case_idx)[int(ci)]
            raise CaseFormatError(lesions_path, f"the weights of case {name!r} sum to {s:g}; they must sum to 1 "
                                  "(or leave them all empty for equal weights)")
    # marks
    t_idx: dict[str, int] = {}
    r_idx: dict[str, int] = {}
    ll: dict[tuple[int, int, int], float] = {}
    nl: list[tuple[int, int, int, float]] = []
    for n, row in _rows(marks_text, marks_path, MARKS_COLUMNS):
        c = row["case"]
        if c not in case_idx:
            raise CaseFormatError(marks_path, f"case {c!r} is not in {cases_path}", row=n)
        k = case_idx[c]
        if _truth(marks_path, n, row["truth"]) != truth[k]:
            raise CaseFormatError(marks_path, f"truth of case {c!r} differs from {cases_path}", row=n)
        if not row["treatment"] or not row["reader"]:
            raise CaseFormatError(marks_path, "empty treatment or reader", row=n)
        i = t_idx.setdefault(row["treatment"], len(t_idx))
        j = r_idx.setdefault(row["reader"], len(r_idx))
        try:
            rating = float(row["rating"])
        except ValueError:
            raise CaseFormatError(marks_path, f"rating {row['rating']!r} is not a number", row=n) from None
        if not np.isfinite(rating):
            raise CaseFormatError(marks_path, "rating must be finite", row=n)
        mt = row["mark_type"].upper()
        if mt == "NL":
            nl.append((i, j, k, rating))
        elif mt == "LL":
            key = (c, row["lesion_id"])
            if key not in les_idx:
                raise CaseFormatError(marks_path, f"LL mark on lesion {row['lesion_id']!r} of case {c!r}, which is "
                                      f"not in {lesions_path}", row=n)
            lk = (i, j, les_idx[key])
            ll[lk] = max(rating, ll.get(lk, -np.inf))
        else:
            raise CaseFormatError(marks_path, f"mark_type {row['mark_type']!r} must be NL or LL", row=n)
    if not t_idx:
        raise CaseFormatError(marks_path, "no marks; add rows treatment,reader,case,truth,mark_type,lesion_id,rating")
    ll_arr = np.full((len(t_idx), len(r_idx), len(les_ids)), -np.inf)
    for (i, j, li), v in ll.items():
        ll_arr[i, j, li] = v
    nl_arr = np.asarray(nl, dtype=float).reshape(-1, 4)
    try:
        return FrocData(
            treatments=list(t_idx), readers=list(r_idx), cases=list(case_idx), truth=tr_arr,
            lesion_case=lc, lesion_ids=les_ids, weights=weights, ll=ll_arr,
            nl_treatment=nl_arr[:, 0].astype(np.int64), nl_reader=nl_arr[:, 1].astype(np.int64),
            nl_case=nl_arr[:, 2].astype(np.int64), nl_rating=nl_arr[:, 3].copy(),
        )
    except ValueError as exc:
        raise CaseFormatError(cases_path, str(exc)) from None


def load_froc(marks: str | PathLike[str], lesions: str | PathLike[str], cases: str | PathLike[str]) -> FrocData:
    """Read the three FROC CSV files."""
    return parse_froc(_read(marks), _read(lesions), _read(cases), str(marks), str(lesions), str(cases))


def write_froc(data: FrocData, out_dir: str | PathLike[str], names: dict[str, str] | None = None) -> dict[str, Path]:
    """Write MARKS.csv, LESIONS.csv and CASES.csv (``names`` maps case ids to pseudonyms)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nm = names or {c: c for c in data.cases}
    tr = data.truth.astype(int)
    paths = {"marks": out / "MARKS.csv", "lesions": out / "LESIONS.csv", "cases": out / "CASES.csv"}
    with atomic_open(paths["cases"], newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CASES_COLUMNS)
        for k, c in enumerate(data.cases):
            w.writerow([nm[c], tr[k]])
    with atomic_open(paths["lesions"], newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LESIONS_COLUMNS)
        for li, lid in enumerate(data.lesion_ids):
            w.writerow([nm[data.cases[data.lesion_case[li]]], lid, f"{data.weights[li]:.10g}"])
    with atomic_open(paths["marks"], newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MARKS_COLUMNS)
        for i, t in enumerate(data.treatments):
            for j, r in enumerate(data.readers):
                for lq in np.nonzero(np.isfinite(data.ll[i, j]))[0]:
                    kc = int(data.lesion_case[lq])
                    w.writerow([t, r, nm[data.cases[kc]], tr[kc], "LL", data.lesion_ids[lq], f"{data.ll[i, j, lq]:g}"])
                sel = np.nonzero((data.nl_treatment == i) & (data.nl_reader == j))[0]
                for m in sel:
                    kc = int(data.nl_case[m])
                    w.writerow([t, r, nm[data.cases[kc]], tr[kc], "NL", "", f"{data.nl_rating[m]:g}"])
    return paths
