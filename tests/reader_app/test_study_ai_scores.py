"""Issue 17: a reader study's AI score of a case is the workstation's score of the same case.

The bundled demo (real BUSI/mini-MIAS images, real shipped weights): `breast-engine ai-scores`
and :func:`engine.study.ai_scores.study_ai_scores` give, case for case, what the workstation's
AI service (the AI panel's numbers) gives; a MG+US pairing of different patients gets no fused
score (the panel offers none either); dataset truth boxes are never the AI's lesion box.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from engine.cases import load_study
from engine.cases.model import same_patient
from engine.study.ai_scores import case_ai_score, study_ai_scores

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def demo_cases():
    from reader_app.main import demo_study_dir

    folder = demo_study_dir()
    if not (folder / "study.json").exists():
        pytest.skip("no bundled demo study")
    return folder, {c.case_id: c for c in load_study(folder).cases}


def test_study_scores_are_the_workstation_panel_scores(demo_cases, tmp_path: Path) -> None:
    from engine.cli.main import main
    from reader_app.ai import AIService
    from reader_app.imaging import read_case_image

    folder, cases = demo_cases
    us_only, pair = cases["demo-04"], cases["demo-01"]
    assert not same_patient(pair)  # the demo's pairings say so in their paired_note
    svc = AIService()
    panel = {}
    for case in (us_only, pair):
        images = {ci.image_id: read_case_image(ci) for ci in case.images}
        panel[case.case_id] = svc.score_case(case, images, ())
    want = panel["demo-04"].per_modality["US"]
    assert 0.0 < want < 1.0

    got = study_ai_scores([us_only, pair])
    # demo-01's film carries only the mini-MIAS truth circle, which is never the AI's lesion box:
    # the MG model (reader's box required) does not score it, so the case's one score is its US
    # image's (finder box), the same in the panel and in the study, and no fused score is made
    assert any("mg_mlo: no lesion box drawn" in e for e in panel["demo-01"].errors)
    pair_score, source = case_ai_score(panel["demo-01"], pair)
    assert source == "US model" and panel["demo-01"].fused is None
    assert got.scores == {"demo-04": pytest.approx(want, abs=1e-6), "demo-01": pytest.approx(pair_score, abs=1e-6)}
    assert got.models["US"] == panel["demo-04"].models["US"].name

    out = tmp_path / "ai_scores.csv"
    assert main(["ai-scores", str(folder), "--out", str(out), "--case", "demo-04", "--case", "demo-01"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["case_id"]: float(r["score"]) for r in rows} == {
        "demo-04": pytest.approx(want, abs=1e-6), "demo-01": pytest.approx(pair_score, abs=1e-6)}


def test_fused_score_is_the_case_score_for_one_patient(demo_cases) -> None:
    """A one-patient MG+US case gets the fused probability; a real MRI scored only by the
    synthetic-trained model gets none (the workstation shows it no score either)."""
    from engine.inference.case import CaseScores, ModelInfo

    _, cases = demo_cases
    pair = cases["demo-01"]
    one = dataclasses.replace(pair, paired_note=None)
    res = CaseScores("demo-01", per_modality={"MG": 0.2, "US": 0.6}, fused=0.4, fused_source="mean")
    assert case_ai_score(res, one) == (0.4, "fused MG+US (mean)")
    assert case_ai_score(res, pair)[0] is None
    mri = cases["demo-10-mri-p14"]
    res = CaseScores("p14", per_modality={"MR": 0.7, "US": 0.3},
                     models={"MR": ModelInfo("MR", "mri_attention_synthetic", synthetic=True)})
    assert case_ai_score(res, mri) == (0.3, "US model")
