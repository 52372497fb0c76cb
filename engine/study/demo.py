"""A scripted reader study for demos and tests: tiny case studies and simulated readers.

Everything made here is SIMULATED: the readers are scripts whose ratings are drawn from a
binormal model (Metz 1998) with a per-reader skill and an AI-aided gain, and the "AI" scores
are simulated too. Use it to exercise the workflow, never as evidence about readers or models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.cases import Annotation, Case, CaseImage, Truth, create_study, save_case
from engine.study.session import StudyRun, WashoutError
from engine.study.design import load_design

__all__ = ["make_tiny_case_study", "write_demo_definition", "run_scripted_readers", "scripted_marks", "FakeClock"]


class FakeClock:
    """A settable clock (seconds since the epoch) so scripted readers can pass a washout."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def make_tiny_case_study(folder: Path, n_benign: int = 6, n_malignant: int = 6, size: int = 64) -> Path:
    """Write a small SYNTHETIC case study (grey blobs as PNG) with truth.

    Args:
        folder: Study folder to create.
        n_benign: Benign cases.
        n_malignant: Malignant cases.
        size: Image side in pixels.

    Returns:
        The study folder.
    """
    from PIL import Image

    study = create_study(folder, "tiny synthetic study", synthetic_note="SYNTHETIC images for tests")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n_benign + n_malignant):
        malignant = k >= n_benign
        cid = f"T{k + 1:03d}"
        cfolder = study.folder / "cases" / cid
        cfolder.mkdir(parents=True, exist_ok=True)
        r = size / (5 if malignant else 7)
        blob = np.exp(-(((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * r * r)))
        img = np.clip(60 + 150 * blob + rng.normal(0, 12, blob.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(cfolder / "us.png")
        case = Case(
            case_id=cid,
            folder=cfolder,
            images=[CaseImage("us_1", cfolder / "us.png", "US", view="transverse", synthetic=True,
                              source="synthetic")],
            truth=Truth("malignant" if malignant else "benign", source="synthetic"),
            # the blob's outline (about 2 sd), as a truth annotation: FROC marks are matched to it
            annotations=[Annotation("us_1", "box", [[size / 2 - 2 * r, size / 2 - 2 * r],
                                                   [size / 2 + 2 * r, size / 2 + 2 * r]], lesion_id="L1",
                                    label="mass", author="synthetic")],
            synthetic=True,
        )
        save_case(case)
    return folder


def write_demo_definition(
    out_dir: Path,
    cases_study: Path,
    *,
    case_ids: list[str] | None = None,
    n_readers: int = 3,
    washout_days: float = 28.0,
    seed: int = 20261121,
    ai_truth: dict[str, int] | None = None,
    paradigm: str = "roc",
    ai_scores: dict[str, float] | None = None,
) -> Path:
    """Write a two-arm (unaided/aided) study definition, plus simulated or model AI scores.

    Args:
        out_dir: Folder for ``reader_study.toml`` (and ``ai_scores.csv``).
        cases_study: The case study folder.
        case_ids: Cases to read (default: every case with truth).
        n_readers: Readers R1..Rn.
        washout_days: Washout between arms.
        seed: Randomisation seed.
        ai_truth: case_id -> truth used to SIMULATE the AI scores (omit for no AI scores).
        paradigm: "roc", or "froc" (the scripted readers also place lesion marks).
        ai_scores: case_id -> the MODEL's score (:func:`engine.study.ai_scores.study_ai_scores`,
            the workstation's number); used instead of simulating from ``ai_truth``.

    Returns:
        Path of the TOML file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Demo reader study: SCRIPTED (simulated) readers; AI scores "
        + ("from the installed models." if ai_scores else "SIMULATED."),
        "[study]",
        'name = "Demo: unaided vs AI-aided reading (scripted readers)"',
        f'cases_study = "{Path(cases_study).resolve().as_posix()}"',
        f"seed = {seed}",
        f"washout_days = {washout_days}",
        'arm_order = "counterbalanced"',
        'note = "SCRIPTED readers and ' + ("MODEL" if ai_scores else "SIMULATED")
        + ' AI scores: a workflow demonstration, not evidence."',
        "rating_min = 0",
        "rating_max = 10",
        "birads = true",
        "thresholds = [5]",
    ]
    if paradigm == "froc":
        lines.append('paradigm = "froc"')
    if case_ids:
        lines.append("cases = [" + ", ".join(f'"{c}"' for c in case_ids) + "]")
    if ai_scores:
        with open(out_dir / "ai_scores.csv", "w") as fh:
            fh.write("case_id,score\n")
            for cid in sorted(ai_scores):
                fh.write(f"{cid},{ai_scores[cid]:.6f}\n")
        lines.append('ai_scores = "ai_scores.csv"  # the installed models\' scores (engine case scorer)')
    elif ai_truth:
        rng = np.random.default_rng(seed + 1)
        with open(out_dir / "ai_scores.csv", "w") as fh:
            fh.write("case_id,score\n")
            for cid in sorted(ai_truth):
                z = rng.normal(1.6 * ai_truth[cid], 1.0)
                fh.write(f"{cid},{1 / (1 + np.exp(-(z - 0.8))):.4f}\n")
        lines.append('ai_scores = "ai_scores.csv"')
    lines += ["", "[hide]", "other_readers = true", ""]
    for j in range(n_readers):
        lines += ["[[readers]]", f'id = "R{j + 1}"', f'name = "Scripted reader {j + 1}"', ""]
    lines += ["[[arms]]", 'id = "unaided"', "show_ai = false", "", "[[arms]]", 'id = "aided"', "show_ai = true", ""]
    path = out_dir / "reader_study.toml"
    path.write_text("\n".join(lines))
    return path


def scripted_rating(rng: np.random.Generator, malignant: bool, skill: float, ai: float | None) -> tuple[int, str]:
    """One simulated 0-10 rating (+ BI-RADS) from a binormal reader, nudged by the AI score."""
    z = rng.normal(skill * malignant, 1.0)
    if ai is not None:
        z = 0.6 * z + 0.8 * (ai - 0.5) * 3.0 + 0.3 * skill * malignant
    score = int(np.clip(np.round(5 + 2.0 * (z - skill / 2)), 0, 10))
    birads = "2" if score <= 2 else "3" if score <= 4 else "4A" if score <= 6 else "4B" if score <= 8 else "5"
    return score, birads


def scripted_marks(rng: np.random.Generator, case: Case, skill: float, score: int) -> list[dict[str, object]]:
    """SIMULATED lesion marks of a scripted reader (the script uses the truth outlines; a human cannot).

    Each annotated lesion of a malignant case is marked near its centre with probability
    1 - exp(-skill), rated near the case score; Poisson(0.4) false marks are put in the image's
    top-left corner region, rated lower.
    """
    out: list[dict[str, object]] = []
    if case.truth and case.truth.malignant:
        for a in case.annotations:
            if rng.random() < 1 - np.exp(-skill):
                xs = [p[0] for p in a.points]
                ys = [p[1] for p in a.points]
                out.append({"image_id": a.image_id, "kind": "point", "frame": a.frame,
                            "points": [[float(np.mean(xs) + rng.normal(0, 1)), float(np.mean(ys) + rng.normal(0, 1))]],
                            "confidence": int(np.clip(score + rng.integers(-1, 2), 0, 10))})
    image_id = case.images[0].image_id if case.images else ""
    for _ in range(rng.poisson(0.4)):
        out.append({"image_id": image_id, "kind": "point", "frame": None,
                    "points": [[float(rng.uniform(0, 4)), float(rng.uniform(0, 4))]],
                    "confidence": int(np.clip(score - 2 + rng.integers(-2, 2), 0, 10))})
    return out


def run_scripted_readers(
    definition: Path,
    clock: FakeClock | None = None,
    readers: list[str] | None = None,
    stop_after: int | None = None,
    on_submit: Callable[[str, str, str], None] | None = None,
) -> StudyRun:
    """Drive every (or the listed) reader through every arm, honouring the washout.

    Args:
        definition: Study TOML.
        clock: Fake clock (advanced by the washout when a reader must wait).
        readers: Reader ids to run (default all).
        stop_after: Stop after this many submissions in total (to simulate a crash).
        on_submit: Called with (reader, arm, case) after each durable submit.

    Returns:
        The open :class:`StudyRun`.
    """
    clock = clock or FakeClock()
    run = StudyRun(load_design(definition), clock=clock)
    truth = {cid: bool(c.truth and c.truth.malignant) for cid, c in run.cases.items()}
    skills = {r.reader_id: 1.2 + 0.35 * i for i, r in enumerate(run.design.readers)}
    submitted = 0
    for r in run.design.readers:
        if readers and r.reader_id not in readers:
            continue
        rng = np.random.default_rng([run.design.seed, sum(map(ord, r.reader_id))])
        session = run.sign_in(r.reader_id)
        while True:
            try:
                item = session.next_case()
            except WashoutError as exc:
                clock.now = exc.available_at + 60.0
                continue
            if item is None:
                break
            clock.advance(20.0 + 40.0 * rng.random())  # reading time
            score, birads = scripted_rating(rng, truth[item.case.case_id], skills[r.reader_id], item.ai_score)
            marks = (scripted_marks(rng, run.cases[item.case.case_id], skills[r.reader_id], score)
                     if run.design.paradigm == "froc" else None)
            session.submit(item.case.case_id, score, birads, marks=marks)
            submitted += 1
            if on_submit is not None:
                on_submit(r.reader_id, item.arm.arm_id, item.case.case_id)
            if stop_after is not None and submitted >= stop_after:
                return run
    return run
