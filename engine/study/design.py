"""Reader-study definition (TOML): cases, readers, arms, randomisation, washout, blinding.

Example ``reader_study.toml``::

    [study]
    name = "Aided vs unaided reading of breast ultrasound"
    cases_study = "../demo"       # case study folder (study.json), relative to this file
    cases = []                    # optional subset of case ids; default: every case with truth
    seed = 20261121               # case-order randomisation seed (recorded in the store)
    washout_days = 28             # minimum days between a reader's arms (enforced)
    arm_order = "counterbalanced" # or "fixed": everyone reads arms in the listed order
    rating_min = 0
    rating_max = 10
    birads = true                 # also ask for a BI-RADS category
    thresholds = [5]              # operating points for sensitivity/specificity
    ai_scores = "ai_scores.csv"   # optional: case_id,score of the standalone model
    ai_threshold = 0.5            # the model's operating point
    note = "..."                  # free text printed on the report (e.g. 'simulated readers')

    [hide]                        # truth is always hidden; this cannot be turned off
    other_readers = true

    [[readers]]
    id = "R1"
    name = "Reader 1"

    [[arms]]
    id = "unaided"
    show_ai = false

    [[arms]]
    id = "aided"
    show_ai = true                # AI score panel and saliency overlay shown

Optional, for other designs and paradigms::

    [study]
    design = "split-plot"         # default "crossed"; split-plot: each reader group reads its own
                                  # block of cases in every arm (Obuchowski et al. 2012)
    paradigm = "froc"             # default "roc"; froc: readers also mark lesions (export writes the
                                  # FROC files and the wAFROC analysis)

    [[readers]]
    id = "R1"
    block = "A"                   # split-plot: the reader's group (cases are split across groups,
                                  # stratified by truth, from the study seed)

    [froc]                        # acceptance rule for marks (engine.stats.froc.AcceptanceRule)
    acceptance = "outline"        # "outline" (inside the truth outline), "radius" or "iou"
    radius_px = 50
    iou_min = 0.5
    duplicates = "drop"           # a second mark on a localised lesion: "drop" or "nl"

Case order is a permutation drawn per (reader, arm) from ``numpy.random.default_rng`` seeded
with ``SeedSequence([seed, crc32(reader), crc32(arm)])``: reproducible from the recorded
seed, different for every reader and arm (reading-order effects average out; Obuchowski
2004, "How many observers are needed in clinical studies of medical imaging?").
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
import zlib
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError

__all__ = ["Arm", "Reader", "StudyDesign", "case_order", "load_design", "split_plot_assignment", "BIRADS_CATEGORIES"]

BIRADS_CATEGORIES = ("0", "1", "2", "3", "4A", "4B", "4C", "5")


@dataclass(frozen=True)
class Reader:
    """A study reader (a study pseudonym, not a patient identifier)."""

    reader_id: str
    name: str
    block: str | None = None


@dataclass(frozen=True)
class Arm:
    """A reading condition.

    Attributes:
        arm_id: e.g. "unaided", "aided".
        show_ai: Whether the AI panel and saliency are shown in this arm.
    """

    arm_id: str
    show_ai: bool


@dataclass
class StudyDesign:
    """A parsed and validated reader-study definition."""

    name: str
    path: Path
    cases_study: Path
    readers: list[Reader]
    arms: list[Arm]
    seed: int
    washout_days: float = 28.0
    arm_order: str = "counterbalanced"
    rating_min: int = 0
    rating_max: int = 10
    birads: bool = False
    thresholds: list[float] = field(default_factory=lambda: [5.0])
    case_ids: list[str] = field(default_factory=list)
    ai_threshold: float = 0.5
    ai_scores_path: Path | None = None
    hide_other_readers: bool = True
    hide_truth: bool = True
    note: str = ""
    design: str = "crossed"
    paradigm: str = "roc"
    froc: dict[str, Any] = field(default_factory=dict)

    @property
    def split_plot(self) -> bool:
        """True for a split-plot design (reader groups read disjoint case blocks)."""
        return self.design == "split-plot"

    def groups(self) -> list[str]:
        """Reader group labels in reader order (each reader its own group when blocks are not set)."""
        return [r.block or r.reader_id for r in self.readers]

    def acceptance_rule(self) -> Any:
        """The FROC acceptance rule of ``[froc]`` (engine.stats.froc.AcceptanceRule)."""
        from engine.stats.froc import AcceptanceRule

        f = self.froc
        return AcceptanceRule(kind=f.get("acceptance", "outline"), radius=float(f.get("radius_px", 50.0)),
                              iou_min=float(f.get("iou_min", 0.5)), duplicates=f.get("duplicates", "drop"))

    def reader(self, reader_id: str) -> Reader:
        """The reader with this id (ConfigError if unknown)."""
        for r in self.readers:
            if r.reader_id == reader_id:
                return r
        raise ConfigError(f"unknown reader {reader_id!r}; readers are {', '.join(r.reader_id for r in self.readers)}")

    def arm(self, arm_id: str) -> Arm:
        """The arm with this id (ConfigError if unknown)."""
        for a in self.arms:
            if a.arm_id == arm_id:
                return a
        raise ConfigError(f"unknown arm {arm_id!r}")

    def arms_for(self, reader_id: str) -> list[Arm]:
        """Arm sequence of a reader: listed order, or rotated by reader index (counterbalanced)."""
        idx = [r.reader_id for r in self.readers].index(self.reader(reader_id).reader_id)
        if self.arm_order == "counterbalanced":
            k = idx % len(self.arms)
            return self.arms[k:] + self.arms[:k]
        return list(self.arms)

    def fingerprint(self) -> str:
        """sha256 of the definition file (recorded with the ratings)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.exists() else ""

    def load_ai_scores(self) -> dict[str, float]:
        """The standalone model's scores per case id ({} when none are configured)."""
        if self.ai_scores_path is None:
            return {}
        out: dict[str, float] = {}
        try:
            with open(self.ai_scores_path, newline="") as fh:
                for n, row in enumerate(csv.DictReader(fh), start=2):
                    try:
                        out[row["case_id"].strip()] = float(row["score"])
                    except (KeyError, ValueError, AttributeError):
                        raise ConfigError(
                            f"{self.ai_scores_path}, row {n}: need columns case_id,score with a numeric score"
                        ) from None
        except OSError as exc:
            raise ConfigError(f"{self.ai_scores_path}: cannot read AI scores ({exc.strerror})") from None
        return out


def case_order(seed: int, reader_id: str, arm_id: str, case_ids: list[str]) -> list[str]:
    """Reproducible random reading order of ``case_ids`` for one reader and arm.

    Args:
        seed: Study seed.
        reader_id: Reader.
        arm_id: Arm.
        case_ids: Cases (sorted first, so the order does not depend on listing order).

    Returns:
        The permuted case ids.
    """
    ss = np.random.SeedSequence([seed, zlib.crc32(reader_id.encode()), zlib.crc32(arm_id.encode())])
    ids = sorted(case_ids)
    perm = np.random.default_rng(ss).permutation(len(ids))
    return [ids[i] for i in perm]


def split_plot_assignment(seed: int, truth: dict[str, int], groups: list[str]) -> dict[str, list[str]]:
    """Split the cases into one block per reader group, stratified by truth, reproducibly.

    Within each truth class the cases are permuted (seeded by the study seed) and dealt to the
    groups in turn, so every block holds about the same number of malignant and benign cases.

    Args:
        seed: Study seed.
        truth: case_id -> 0/1.
        groups: Group labels (duplicates ignored, first-appearance order).

    Returns:
        group -> its case ids.
    """
    labels = list(dict.fromkeys(groups))
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(b"split-plot")]))
    out: dict[str, list[str]] = {g: [] for g in labels}
    offset = 0
    for cls in (1, 0):
        ids = sorted(c for c, t in truth.items() if t == cls)
        for n, i in enumerate(rng.permutation(len(ids))):
            out[labels[(n + offset) % len(labels)]].append(ids[i])
        offset += len(ids)
    return {g: sorted(v) for g, v in out.items()}


def _req(d: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"{where}: missing '{key}'")
    v = d[key]
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise ConfigError(f"{where}: '{key}' must be {typ.__name__}, got {v!r}")
    return v


def load_design(path: str | PathLike[str]) -> StudyDesign:
    """Read and validate a reader-study TOML file.

    Args:
        path: The ``.toml`` file.

    Returns:
        :class:`StudyDesign`.

    Raises:
        ConfigError: Unreadable file or invalid content (the message names the key and the fix).
    """
    p = Path(path).resolve()
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read study definition ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    where = str(path)
    st = raw.get("study")
    if not isinstance(st, dict):
        raise ConfigError(f"{where}: missing [study] table")
    name = _req(st, "name", str, f"{where} [study]")
    cases_study = (p.parent / _req(st, "cases_study", str, f"{where} [study]")).resolve()
    seed = _req(st, "seed", int, f"{where} [study]")
    washout = float(st.get("washout_days", 28))
    if washout < 0:
        raise ConfigError(f"{where} [study]: washout_days must be >= 0")
    arm_order = st.get("arm_order", "counterbalanced")
    if arm_order not in ("counterbalanced", "fixed"):
        raise ConfigError(f"{where} [study]: arm_order must be 'counterbalanced' or 'fixed'")
    rmin = int(st.get("rating_min", 0))
    rmax = int(st.get("rating_max", 10))
    if rmax <= rmin:
        raise ConfigError(f"{where} [study]: rating_max must be > rating_min")
    hide = raw.get("hide", {})
    if hide.get("truth", True) is not True:
        raise ConfigError(f"{where} [hide]: truth is always hidden from readers; remove 'truth = false'")
    readers_raw = raw.get("readers", [])
    arms_raw = raw.get("arms", [])
    if not readers_raw:
        raise ConfigError(f"{where}: add at least one [[readers]] entry with an id")
    if not arms_raw:
        raise ConfigError(f"{where}: add at least one [[arms]] entry with an id")
    readers = [Reader(_req(r, "id", str, f"{where} [[readers]] #{i + 1}"), str(r.get("name", r.get("id"))),
                      None if r.get("block") is None else str(r.get("block")))
               for i, r in enumerate(readers_raw)]
    design = str(st.get("design", "crossed"))
    if design not in ("crossed", "split-plot"):
        raise ConfigError(f"{where} [study]: design must be 'crossed' or 'split-plot', got {design!r}")
    paradigm = str(st.get("paradigm", "roc"))
    if paradigm not in ("roc", "froc"):
        raise ConfigError(f"{where} [study]: paradigm must be 'roc' or 'froc', got {paradigm!r}")
    froc = raw.get("froc", {})
    if not isinstance(froc, dict) or froc.get("acceptance", "outline") not in ("outline", "radius", "iou") or \
            froc.get("duplicates", "drop") not in ("drop", "nl"):
        raise ConfigError(f"{where} [froc]: acceptance must be outline, radius or iou; duplicates drop or nl")
    if design == "split-plot":
        blocks = [r.block or r.reader_id for r in readers]
        if len(set(blocks)) < 2:
            raise ConfigError(f"{where}: a split-plot design needs at least 2 reader groups (set block = ... "
                              "per [[readers]])")
    arms = [Arm(_req(a, "id", str, f"{where} [[arms]] #{i + 1}"), bool(a.get("show_ai", False)))
            for i, a in enumerate(arms_raw)]
    for kind, ids in (("reader", [r.reader_id for r in readers]), ("arm", [a.arm_id for a in arms])):
        dup = {x for x in ids if ids.count(x) > 1}
        if dup:
            raise ConfigError(f"{where}: duplicate {kind} id(s) {sorted(dup)}")
    ai = st.get("ai_scores")
    return StudyDesign(
        name=name,
        path=p,
        cases_study=cases_study,
        readers=readers,
        arms=arms,
        seed=seed,
        washout_days=washout,
        arm_order=arm_order,
        rating_min=rmin,
        rating_max=rmax,
        birads=bool(st.get("birads", False)),
        thresholds=[float(x) for x in st.get("thresholds", [(rmin + rmax) / 2])],
        case_ids=[str(c) for c in st.get("cases", [])],
        ai_threshold=float(st.get("ai_threshold", 0.5)),
        ai_scores_path=(p.parent / ai).resolve() if isinstance(ai, str) else None,
        hide_other_readers=bool(hide.get("other_readers", True)),
        note=str(st.get("note", "")),
        design=design,
        paradigm=paradigm,
        froc=dict(froc),
    )
