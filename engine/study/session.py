"""Qt-free reading-session logic: sign in, next case only, submit, resume, washout.

A :class:`ReadingSession` is what the GUI (``reader_app.study``) and scripted readers drive.
It never exposes truth or other readers' answers; the AI score is exposed only in arms with
``show_ai``. All state lives in the :class:`~engine.study.store.RatingStore`, so closing
the app or a crash resumes at the first unrated case of the current arm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.cases import Case, load_study
from engine.errors import ConfigError
from engine.study.design import BIRADS_CATEGORIES, Arm, StudyDesign, case_order, load_design, split_plot_assignment
from engine.study.store import RatingStore

__all__ = ["CaseToRead", "PriorToRead", "ReaderStatus", "ReadingSession", "SaveFailedError", "StudyRun",
           "WashoutError", "open_study_run"]

DAY_S = 86400.0


class SaveFailedError(ConfigError):
    """A rating could not be stored; the answer was journalled and stays on screen for a retry."""


class WashoutError(ConfigError):
    """The reader's next arm is not open yet (washout period)."""

    def __init__(self, reader_id: str, arm_id: str, available_at: float, now: float) -> None:
        self.reader_id = reader_id
        self.arm_id = arm_id
        self.available_at = available_at
        days = (available_at - now) / DAY_S
        super().__init__(
            f"reader {reader_id}: arm '{arm_id}' opens after the washout period, in {days:.1f} day(s) "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(available_at))})"
        )


@dataclass(frozen=True)
class CaseToRead:
    """What a reader may see of the next case: no truth, no other readers' answers.

    Attributes:
        case: The case (its ``truth`` is withheld: always None here).
        arm: Current arm.
        position: 1-based position in this reader's order for the arm.
        total: Cases in the arm.
        show_ai: Whether the AI panel/saliency may be shown.
        ai_score: The model's score when ``show_ai`` and a score is configured, else None.
        label: Neutral display label ("Case 3 of 20"): case ids may carry hints.
    """

    case: Case
    arm: Arm
    position: int
    total: int
    show_ai: bool
    ai_score: float | None
    label: str


@dataclass(frozen=True)
class PriorToRead:
    """What a reader may see of the current case's prior exam: images only.

    Attributes:
        case: A blinded copy of the patient's latest earlier exam (no truth, no annotations,
            no description, no patient reference or dates: its ids are never shown).
        months_earlier: Whole months between the two exams (None when a date is unusable).
        label: Neutral display label ("PRIOR, 24 months earlier").
    """

    case: Case
    months_earlier: int | None
    label: str


@dataclass(frozen=True)
class ReaderStatus:
    """Progress of one reader."""

    reader_id: str
    done: dict[str, int]
    total: int
    current_arm: str | None
    finished: bool
    washout_until: float | None


class StudyRun:
    """A reader study opened for reading: design + cases + store.

    Args:
        design: The parsed definition.
        store_path: SQLite file, or a ``postgresql://user@host:port/db`` URL for a multi-site
            study on PostgreSQL (default: ``$BREAST_READER_DB`` when set, else
            ``<definition>.ratings.sqlite`` next to the TOML).
        clock: Time source (tests/demos inject a fake clock to pass the washout).
    """

    def __init__(
        self, design: StudyDesign, store_path: Path | str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.design = design
        self.clock = clock
        study = load_study(design.cases_study)
        by_id = {c.case_id: c for c in study.cases}
        wanted = design.case_ids or [c.case_id for c in study.cases if c.truth is not None]
        missing = [c for c in wanted if c not in by_id]
        if missing:
            raise ConfigError(f"{design.path}: case(s) {missing[:5]} not found in {design.cases_study}")
        no_truth = [c for c in wanted if by_id[c].truth is None]
        if no_truth:
            raise ConfigError(f"{design.path}: case(s) {no_truth[:5]} have no truth; ROC analysis needs it")
        if not wanted:
            raise ConfigError(f"{design.path}: no cases with truth in {design.cases_study}")
        self.cases: dict[str, Case] = {c: by_id[c] for c in wanted}
        self.study_cases: list[Case] = list(study.cases)  # priors may be exams no reader rates
        self.ai_scores = design.load_ai_scores()
        path: Path | str = (store_path or os.environ.get("BREAST_READER_DB")
                            or design.path.with_suffix(".ratings.sqlite"))
        # split-plot: each reader group reads its own block of cases (design.split_plot_assignment)
        self.blocks: dict[str, list[str]] = {}
        if design.split_plot:
            truth01 = {cid: int(bool(c.truth and c.truth.malignant)) for cid, c in self.cases.items()}
            by_group = split_plot_assignment(design.seed, truth01, design.groups())
            self.blocks = {r.reader_id: by_group[g] for r, g in zip(design.readers, design.groups(), strict=True)}
        self.store = RatingStore(path, clock=clock)
        seed_recorded = self.store.get_meta("seed")
        if seed_recorded is not None and int(seed_recorded) != design.seed:
            raise ConfigError(
                f"{path}: ratings were collected with seed {seed_recorded}, the definition now says "
                f"{design.seed}; restore the seed or start a new ratings file"
            )
        self.store.initialise(
            meta={"seed": str(design.seed), "study_name": design.name, "definition_sha256": design.fingerprint(),
                  "created_at": str(clock())},
            readers=[(r.reader_id, r.name) for r in design.readers],
            arms=[(a.arm_id, a.show_ai) for a in design.arms],
            cases=[(cid, int(c.truth.malignant) if c.truth else None) for cid, c in self.cases.items()],
            orders={
                (r.reader_id, a.arm_id): case_order(design.seed, r.reader_id, a.arm_id, self.cases_for(r.reader_id))
                for r in design.readers
                for a in design.arms
            },
        )

    def cases_for(self, reader_id: str) -> list[str]:
        """The cases this reader reads (all, or the reader's block in a split-plot design)."""
        return list(self.blocks.get(reader_id, list(self.cases)))

    def sign_in(self, reader_id: str) -> ReadingSession:
        """Start (or resume) a reader's session (answers left in the recovery journal are stored first)."""
        self.design.reader(reader_id)
        if not self.store.read_only:
            from engine.study import journal
            from engine.study.store import StoreWriteError

            try:
                journal.replay(self.store)
            except StoreWriteError:
                pass
        return ReadingSession(self, reader_id)

    def status(self) -> list[ReaderStatus]:
        """Progress of every reader."""
        out = []
        for r in self.design.readers:
            s = ReadingSession(self, r.reader_id)
            out.append(s.status())
        return out

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def open_study_run(definition: str | Path, clock: Callable[[], float] = time.time, db: str | None = None) -> StudyRun:
    """Load a study definition TOML and open its ratings store.

    Args:
        db: Ratings database: a ``postgresql://`` URL (multi-site) or an SQLite path; default
            ``$BREAST_READER_DB`` if set, else ``<definition>.ratings.sqlite``.
    """
    return StudyRun(load_design(definition), store_path=db or None, clock=clock)


class ReadingSession:
    """One signed-in reader. Shows only the next case; submit moves on."""

    def __init__(self, run: StudyRun, reader_id: str) -> None:
        self.run = run
        self.reader_id = reader_id
        self.arms = run.design.arms_for(reader_id)

    def _arm_state(self) -> tuple[Arm | None, float | None]:
        """The arm to read now (None when finished) and the washout end if it is locked."""
        store = self.run.store
        prev_end: float | None = None
        for arm in self.arms:
            order = store.order(self.reader_id, arm.arm_id)
            done = store.rated_cases(self.reader_id, arm.arm_id)
            if len(done) < len(order):
                if prev_end is not None and not done:
                    opens = prev_end + self.run.design.washout_days * DAY_S
                    if self.run.clock() < opens:
                        return arm, opens
                return arm, None
            prev_end = store.last_submit(self.reader_id, arm.arm_id)
        return None, None

    def status(self) -> ReaderStatus:
        """Progress of this reader."""
        arm, locked = self._arm_state()
        done = {a.arm_id: len(self.run.store.rated_cases(self.reader_id, a.arm_id)) for a in self.arms}
        return ReaderStatus(self.reader_id, done, len(self.run.cases_for(self.reader_id)),
                            None if arm is None else arm.arm_id,
                            arm is None, locked)

    def next_case(self) -> CaseToRead | None:
        """The next unrated case of the current arm (None when the reader has finished).

        Raises:
            WashoutError: The next arm is still in its washout period.
        """
        arm, locked = self._arm_state()
        if arm is None:
            return None
        if locked is not None:
            raise WashoutError(self.reader_id, arm.arm_id, locked, self.run.clock())
        order = self.run.store.order(self.reader_id, arm.arm_id)
        done = self.run.store.rated_cases(self.reader_id, arm.arm_id)
        pos, cid = next((i, c) for i, c in enumerate(order) if c not in done)
        self.run.store.mark_opened(self.reader_id, arm.arm_id, cid)
        case = self.run.cases[cid]
        # a blinded copy: truth withheld, other readers' annotations dropped
        blind = Case(case_id=case.case_id, folder=case.folder, images=list(case.images), truth=None,
                     annotations=[], description="", synthetic=case.synthetic)
        ai = self.run.ai_scores.get(cid) if arm.show_ai else None
        return CaseToRead(blind, arm, pos + 1, len(order), arm.show_ai, ai, f"Case {pos + 1} of {len(order)}")

    def prior_of(self, case_id: str) -> PriorToRead | None:
        """The prior exam of a case the reader is shown (same patient, earlier exam date, any
        case of the study, rated or not), blinded like the case itself; None when it has none."""
        from engine.cases.model import find_prior, months_between

        case = self.run.cases.get(case_id)
        prior = find_prior(self.run.study_cases, case) if case is not None else None
        if case is None or prior is None or not case.exam_date or not prior.exam_date:
            return None
        blind = Case(case_id=prior.case_id, folder=prior.folder, images=list(prior.images), truth=None,
                     annotations=[], description="", synthetic=prior.synthetic)
        months = months_between(prior.exam_date, case.exam_date)
        when = f"{months} months earlier" if months is not None else "earlier exam"
        return PriorToRead(blind, months, f"PRIOR, {when}")

    def submit(self, case_id: str, score: float, birads: str | None = None, comment: str | None = None,
               marks: Any = None) -> None:
        """Submit the rating of the current case (only the case shown by :meth:`next_case`).

        ``marks``: the reader's lesion marks on this case (objects or dicts with image_id, kind
        "point"/"box", points, frame, confidence), stored with the rating in one transaction
        and locked with it (FROC analysis). Mark confidences must lie on the rating scale.

        Raises:
            ConfigError: Out-of-scale score, unknown BI-RADS, or not the current case.
        """
        d = self.run.design
        if not d.rating_min <= score <= d.rating_max:
            raise ConfigError(f"rating {score} is outside the scale {d.rating_min}-{d.rating_max}")
        if birads is not None and birads not in BIRADS_CATEGORIES:
            raise ConfigError(f"BI-RADS {birads!r} is not one of {', '.join(BIRADS_CATEGORIES)}")
        if d.birads and birads is None:
            raise ConfigError("this study asks for a BI-RADS category with every rating")
        arm, locked = self._arm_state()
        if arm is None or locked is not None:
            raise ConfigError(f"reader {self.reader_id} has no open case to submit")
        order = self.run.store.order(self.reader_id, arm.arm_id)
        done = self.run.store.rated_cases(self.reader_id, arm.arm_id)
        current = next(c for c in order if c not in done)
        if case_id != current:
            raise ConfigError(f"case {case_id} is not the current case; cases are read in the recorded order")
        for m in marks or []:
            conf = m.get("confidence") if isinstance(m, dict) else getattr(m, "confidence", None)
            if conf is not None and not d.rating_min <= float(conf) <= d.rating_max:
                raise ConfigError(f"mark confidence {conf} is outside the scale {d.rating_min}-{d.rating_max}")
        from engine.study import journal
        from engine.study.store import StoreWriteError, _mark_fields

        try:
            self.run.store.submit(self.reader_id, arm.arm_id, case_id, score, birads, comment=comment, marks=marks)
        except StoreWriteError as exc:
            where = journal.record(self.run.store.path, {
                "reader_id": self.reader_id, "arm_id": arm.arm_id, "case_id": case_id, "score": float(score),
                "birads": birads, "comment": comment, "marks": [_mark_fields(m) for m in marks or []]})
            kept = f"; your answer was written to the recovery journal {where}" if where else ""
            raise SaveFailedError(f"{exc}{kept}. Your answer is still on screen: press Submit to retry.") from None
        journal.replay(self.run.store)

    def amend(self, arm_id: str, case_id: str, new_score: float, reason: str, new_birads: str | None = None) -> None:
        """Change one of this reader's submitted ratings, with a reason (audited)."""
        d = self.run.design
        if not d.rating_min <= new_score <= d.rating_max:
            raise ConfigError(f"rating {new_score} is outside the scale {d.rating_min}-{d.rating_max}")
        self.run.store.amend(self.reader_id, arm_id, case_id, new_score, reason, who=self.reader_id,
                             new_birads=new_birads)
