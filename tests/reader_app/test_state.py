"""Qt-free state, imaging and AI-bridge logic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cases import load_study
from engine.io.types import ImageMeta, LoadedImage
from reader_app.ai import AIService, qi_advice, to_ten
from engine.imaging.breast import chest_wall_side
from reader_app.imaging import coco_json, export_case, hanging_protocol, mg_needs_flip
from reader_app.state import AppState, JsonRatingStore
from studies import fake_loader, mammogram


def _state(study_dir, tmp_path):
    s = AppState(rating_sink=JsonRatingStore(tmp_path / "u"))
    s.set_study(load_study(study_dir))
    return s


def test_annotation_undo_redo_saves_file(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    s.select_case("P001")
    cs = s.current
    events = []
    cs.annotations_changed.connect(lambda: events.append(1))
    a = s.new_annotation("mg_cc", "box", [[10, 20], [40, 60]])
    f = study_dir / "cases" / "P001" / "annotations.json"
    assert json.loads(f.read_text())["annotations"][0]["points"] == [[10.0, 20.0], [40.0, 60.0]]
    assert cs.status == "annotated"
    cs.edit_annotation(a.ann_id, points=[[0, 0], [5, 5]])
    assert cs.case.annotations[0].points == [[0, 0], [5, 5]]
    assert cs.undo() and cs.case.annotations[0].points == [[10.0, 20.0], [40.0, 60.0]]
    assert cs.undo() and cs.case.annotations == []
    assert json.loads(f.read_text())["annotations"] == []
    assert not cs.undo()
    assert cs.redo() and len(cs.case.annotations) == 1
    cs.remove_annotation(a.ann_id)
    assert cs.case.annotations == [] and cs.undo() and cs.case.annotations[0].ann_id == a.ann_id
    assert len(events) == 7


def test_lesion_ids_are_shared_and_new_lesion_is_unused(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    s.select_case("P001")
    s.new_annotation("mg_cc", "box", [[1, 1], [9, 9]])
    s.new_annotation("us_1", "polygon", [[1, 1], [9, 1], [5, 8]])
    assert {a.lesion_id for a in s.current.case.annotations} == {"L1"}
    assert s.new_lesion() == "L2"
    s.new_annotation("us_2", "box", [[1, 1], [9, 9]])
    assert s.current.lesion_ids() == ["L1", "L2"]


def test_ratings_persist_with_time_and_status_filter(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    s.select_case("U001")
    s.current.start_timer(now=100.0)
    s.rate(score=8, birads="4B", comment="spiculated")
    with pytest.raises(ValueError):
        s.rate(score=11)
    s.current.stop_timer(now=130.0)
    assert s.current.rating.seconds == pytest.approx(30.0)
    assert s.visible_case_ids() == ["M001", "P001", "U001"]
    s.set_filter(status="rated")
    assert s.visible_case_ids() == ["U001"]
    s.set_filter(status="", text="mri")
    assert s.visible_case_ids() == ["M001"]
    s.select_case("M001")  # leaving U001 saves its time
    s2 = _state(study_dir, tmp_path)
    r = s2.cases["U001"].rating
    assert (r.score, r.birads, r.comment) == (8, "4B", "spiculated")
    assert r.seconds >= 30.0
    assert s2.cases["U001"].status == "rated" and s2.cases["P001"].status == "unread"


def test_step_case_stops_at_ends_and_layout_cycles(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    assert s.step_case(1).case.case_id == "M001"
    assert s.step_case(1).case.case_id == "P001"
    assert s.step_case(1).case.case_id == "U001"
    assert s.step_case(1).case.case_id == "U001"
    seen = []
    s.layout_changed.connect(seen.append)
    s.cycle_layout()
    s.cycle_layout()
    assert seen == ["1x1", "1x2"]
    with pytest.raises(ValueError):
        s.set_tool("laser")


def test_chest_wall_orientation():
    left = mammogram(side="left")
    assert chest_wall_side(left) == "left" and chest_wall_side(left[:, ::-1]) == "right"
    # right breast hangs with its chest wall on the right; left breast on the left
    assert mg_needs_flip("R", left) and not mg_needs_flip("L", left)
    assert not mg_needs_flip("R", left[:, ::-1]) and not mg_needs_flip(None, left)


def test_hanging_puts_cc_before_mlo_then_us(study_dir):
    case = load_study(study_dir).case("P001")
    case.images.reverse()
    imgs = {ci.image_id: LoadedImage(mammogram(), ImageMeta(path="x", modality="MG")) for ci in case.images}
    slots = hanging_protocol(case, imgs)
    assert [s.image_id for s in slots] == ["mg_cc", "mg_mlo", "us_2", "us_1"]
    assert slots[0].flip and slots[0].sync_group == slots[1].sync_group and slots[2].sync_group is None
    # both breasts: mirrored pairs R CC | L CC, R MLO | L MLO
    from engine.cases import CaseImage

    case.images = [CaseImage("lmlo", case.folder / "a", "MG", "MLO", "L"), CaseImage("rcc", case.folder / "b", "MG", "CC", "R"),
                   CaseImage("lcc", case.folder / "c", "MG", "CC", "L"), CaseImage("rmlo", case.folder / "d", "MG", "MLO", "R")]
    imgs = {ci.image_id: LoadedImage(mammogram(), ImageMeta(path="x", modality="MG")) for ci in case.images}
    slots = hanging_protocol(case, imgs)
    assert [s.title for s in slots] == ["R CC MG", "L CC MG", "R MLO MG", "L MLO MG"]
    assert [s.flip for s in slots] == [True, False, True, False]  # test image: chest wall on the left


def test_export_masks_and_coco(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    s.select_case("P001")
    s.new_annotation("mg_cc", "box", [[10, 20], [30, 50]])
    s.new_annotation("us_1", "polygon", [[0, 0], [10, 0], [0, 10]])
    imgs = {"mg_cc": LoadedImage(np.zeros((100, 80), np.uint16), ImageMeta(path="a", modality="MG")),
            "us_1": LoadedImage(np.zeros((40, 40), np.uint8), ImageMeta(path="b", modality="US"))}
    masks, jpath = export_case(s.current.case, imgs, tmp_path / "out")
    import cv2

    m = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (100, 80) and int((m > 0).sum()) == 20 * 30
    coco = json.loads(jpath.read_text())
    assert [a["bbox"] for a in coco["annotations"]] == [[10, 20, 20, 30], [0, 0, 10, 10]]
    assert coco["annotations"][1]["area"] == pytest.approx(50.0)
    assert coco_json(s.current.case, {})["annotations"] == []


def test_scale_and_qi_advice():
    assert to_ten(0.734) == 7.3
    assert "Further" in qi_advice(0.7, None) and "Periodic" in qi_advice(0.2, 0.1)
    assert "Further" in qi_advice(0.2, 0.8) and "Mt-Net + Sn-Net" in qi_advice(0.2, 0.8)


def test_ai_service_caches_and_never_invents_scores(study_dir):
    case = load_study(study_dir).case("P001")
    ld = fake_loader(installed=("US",))
    svc = AIService(loader=ld)
    imgs = {ci.image_id: LoadedImage(np.zeros((20, 20), np.uint8), ImageMeta(path="p", modality=ci.modality))
            for ci in case.images}
    res = svc.score_case(case, imgs, ("gradcam",))
    assert "MG" not in res.per_modality and "no model installed" in res.models["MG"].error
    assert res.per_modality["US"] == 0.25 and res.fused is None
    assert res.saliency[("us_1", "gradcam")].shape == (32, 32)
    calls = ld.made["US"].calls
    assert svc.score_case(case, imgs, ("gradcam",)) is res and ld.made["US"].calls == calls
    res2 = svc.score_case(case, imgs, ("attention",))  # unsupported method: reported, not faked
    assert ("us_1", "attention") in res2.failed and any("attention" in e for e in res2.errors)
    case.annotations.append(__import__("engine.cases", fromlist=["Annotation"]).Annotation("us_1", "box", [[1, 1], [5, 5]]))
    assert svc.cached(case) is None  # a new box means a new score


def test_worklist_event_only_when_a_status_changes(study_dir, tmp_path):
    s = _state(study_dir, tmp_path)
    s.select_case("P001")
    seen = []
    s.worklist_changed.connect(lambda: seen.append(s.current.status))
    s.rate(comment="a")
    s.rate(comment="ab")
    assert seen == []
    s.new_annotation("us_1", "box", [[1, 1], [5, 5]])
    s.new_annotation("us_1", "box", [[1, 1], [6, 6]])
    s.rate(score=4)
    s.rate(score=5)
    assert seen == ["annotated", "rated"]


def test_box_passed_only_to_models_that_score_a_box(study_dir):
    from types import SimpleNamespace

    from engine.cases import Annotation
    from studies import FakePredictor

    boxes = {}

    class Rec(FakePredictor):
        def run(self, items, methods=()):
            boxes.setdefault(self.modality, []).extend(it.box for it in items)
            return super().run(items, methods)

    def load(modality, model=None):
        p = Rec(modality)
        pre = SimpleNamespace(box="required" if modality == "MG" else "ignored", crop="lesion_box")
        p.spec = SimpleNamespace(name=p.name, model="x", synthetic=False, extra={}, preprocess=pre)
        return p

    case = load_study(study_dir).case("P001")
    imgs = {ci.image_id: LoadedImage(np.zeros((20, 20), np.uint8), ImageMeta(path="p", modality=ci.modality))
            for ci in case.images}
    res = AIService(loader=load).score_case(case, imgs, ())
    assert any("mg_cc: no lesion box drawn" in e for e in res.errors)
    case.annotations += [Annotation("mg_cc", "box", [[1, 2], [8, 9]]), Annotation("us_1", "box", [[1, 2], [8, 9]])]
    boxes.clear()
    res = AIService(loader=load).score_case(case, imgs, ())
    # images in case order: mg_cc (boxed) is scored in its box; mg_mlo has no box, so the lesion
    # model does not score it (never a whole mammogram) and the reader is told why; the
    # whole-image US model never sees a box
    assert boxes == {"MG": [(1, 2, 8, 9)], "US": [None, None]}
    assert "mg_mlo" not in res.per_image and "mg_cc" in res.per_image
    assert any("mg_mlo: no lesion box drawn" in e and "draw one" in e for e in res.errors)


def test_ai_service_schedules_any_scorer_of_the_engine_protocol(study_dir):
    """The GUI's test double implements engine.inference.case.Scorer; AIService only converts the
    case, calls it once per (case, models, boxes) and caches what it returned."""
    from engine.inference.case import CaseInput, Scorer
    from studies import FakeScorer

    fake = FakeScorer({"US": 0.4, "MG": 0.9})
    assert isinstance(fake, Scorer)
    svc = AIService(scorer=fake)
    case = load_study(study_dir).case("P001")
    imgs = {ci.image_id: LoadedImage(np.zeros((20, 20), np.uint8), ImageMeta(path="p", modality=ci.modality))
            for ci in case.images}
    res = svc.score_case(case, imgs, ())
    assert res.per_modality == {"MG": 0.9, "US": 0.4} and fake.calls == 1
    assert svc.score_case(case, imgs, ()) is res and fake.calls == 1
    assert isinstance(case_input := __import__("engine.inference.case", fromlist=["case_input"]).case_input(case, imgs),
                      CaseInput) and [c.image_id for c in case_input.images] == [ci.image_id for ci in case.images]
