"""Small studies for the GUI tests (and for looking at the window before the demo study exists)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from engine.cases import Case, CaseImage, Truth, create_study, save_case


def mammogram(rows: int = 240, cols: int = 180, side: str = "left", seed: int = 0) -> np.ndarray:
    """A 12-bit synthetic breast touching the ``side`` edge (chest wall) with a bright mass."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x = xx if side == "left" else (cols - 1 - xx)
    inside = (x / (0.8 * cols)) ** 2 + ((yy - rows / 2) / (0.45 * rows)) ** 2 < 1
    img = np.where(inside, 1800 + 600 * np.exp(-x / cols), 60).astype(np.float32)
    img += rng.normal(0, 40, img.shape)
    mass = ((x - 0.35 * cols) ** 2 + (yy - 0.45 * rows) ** 2) < (0.07 * cols) ** 2
    img[mass & inside] += 900
    return np.clip(img, 0, 4095).astype(np.uint16)


def ultrasound(rows: int = 120, cols: int = 160, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.gamma(2.0, 40.0, (rows, cols)).clip(0, 255)
    yy, xx = np.mgrid[0:rows, 0:cols]
    img[((xx - cols / 2) / 25) ** 2 + ((yy - rows / 2) / 15) ** 2 < 1] *= 0.25
    return img.astype(np.uint8)


def mri(frames: int = 6, rows: int = 64, cols: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    vol = np.stack([((xx - 20 - 3 * k) ** 2 + (yy - 32) ** 2 < 120) * (400 + 50 * k) + 100 for k in range(frames)])
    return vol.astype(np.uint16)


def add_bilateral_case(root: Path) -> None:
    """Case B001: R and L, CC and MLO (chest walls: R image on the left, L image on the right)."""
    from engine.io.writer import write_dicom

    c = root / "cases" / "B001"
    c.mkdir(parents=True)
    imgs = []
    for lat, side in (("R", "left"), ("L", "right")):
        for view in ("CC", "MLO"):
            f = c / f"{lat}{view}.dcm"
            write_dicom(f, mammogram(side=side), modality="MG", laterality=lat, view=view, pixel_spacing=(0.2, 0.2))
            imgs.append(CaseImage(f"{lat}{view}".lower(), f, "MG", view, lat))
    save_case(Case("B001", c, images=imgs, description="both breasts"))


def build_study(root: Path, *, bad_image: bool = True, bad_case: bool = True) -> Path:
    """A study with a paired MG+US case, an MR case, a US case with one unreadable file, and
    (optionally) a malformed case folder."""
    from engine.io.writer import write_dicom, write_dicom_series

    study = create_study(root, "gui-test", synthetic_note="synthetic test images")
    c1 = root / "cases" / "P001"
    c1.mkdir(parents=True)
    write_dicom(c1 / "rcc.dcm", mammogram(side="left"), modality="MG", laterality="R", view="CC",
                pixel_spacing=(0.2, 0.2), window=(2000, 2400))
    write_dicom(c1 / "rmlo.dcm", mammogram(side="left", seed=3), modality="MG", laterality="R", view="MLO",
                pixel_spacing=(0.2, 0.2), window=(2000, 2400))
    cv2.imwrite(str(c1 / "us1.png"), ultrasound())
    cv2.imwrite(str(c1 / "us2.png"), ultrasound(seed=5))
    save_case(Case("P001", c1, images=[
        CaseImage("mg_cc", c1 / "rcc.dcm", "MG", "CC", "R", synthetic=True),
        CaseImage("mg_mlo", c1 / "rmlo.dcm", "MG", "MLO", "R", synthetic=True),
        CaseImage("us_1", c1 / "us1.png", "US", "radial", "R", synthetic=True),
        CaseImage("us_2", c1 / "us2.png", "US", "anti-radial", "R", synthetic=True),
    ], truth=Truth("malignant"), synthetic=True, description="paired MG+US"))
    c2 = root / "cases" / "M001"
    (c2 / "t1c").mkdir(parents=True)
    write_dicom_series(c2 / "t1c", mri(), modality="MR", pixel_spacing=(0.7, 0.7), slice_thickness=2.0)
    save_case(Case("M001", c2, images=[CaseImage("mr_t1c", c2 / "t1c", "MR", "T1C", "L", synthetic=True)],
                   truth=Truth("benign"), synthetic=True, description="MRI stack"))
    c3 = root / "cases" / "U001"
    c3.mkdir(parents=True)
    cv2.imwrite(str(c3 / "ok.png"), ultrasound(seed=9))
    imgs = [CaseImage("us_ok", c3 / "ok.png", "US", "1")]
    if bad_image:
        (c3 / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        imgs.append(CaseImage("us_bad", c3 / "broken.png", "US", "2"))
    save_case(Case("U001", c3, images=imgs, truth=Truth("benign"), description="ultrasound only"))
    if bad_case:
        c4 = root / "cases" / "X-bad"
        c4.mkdir(parents=True)
        (c4 / "case.json").write_text("{ this is not json", encoding="utf-8")
    return root


class FakePredictor:
    """Deterministic stand-in for an engine predictor (keeps GUI tests fast).

    It implements :class:`engine.inference.case.ImageModel` (``name``, ``spec``, ``run``), the
    same surface the engine's :class:`~engine.inference.case.CaseScorer` drives on a real
    :class:`~engine.inference.Predictor`, so every case policy under test is the engine's own.
    """

    def __init__(self, modality: str, work_s: float = 0.0) -> None:
        self.name = f"fake-{modality.lower()}"
        self.modality = modality
        self.device = "cpu"
        self.synthetic = modality == "MR"
        self.spec = None
        self.work_s = work_s
        self.calls = 0
        self.boxes: list = []

    def _work(self) -> None:
        end = time.perf_counter() + self.work_s
        while time.perf_counter() < end:  # CPU work that holds the GIL in short slices
            np.sort(np.random.default_rng(0).random(20000))

    def score(self, image, box=None) -> float:
        return 0.25 if self.modality == "US" else 0.75

    def saliency_methods(self) -> tuple[str, ...]:
        return ("gradcam", "cam")

    def run(self, items, methods=()):
        from engine.inference import ImageOutput
        from engine.saliency import SaliencyMap

        outs = []
        for it in items:
            self.calls += 1
            self.boxes.append(it.box)
            self._work()
            out = ImageOutput(self.score(it.image, it.box), it.frame)
            for m in methods:
                if m not in ("gradcam", "cam"):
                    out.errors[m] = f"{m} not supported"
                    continue
                yy, xx = np.mgrid[0:32, 0:32]  # low-res, off-centre
                out.saliency[m] = SaliencyMap(np.exp(-((xx - 8) ** 2 + (yy - 16) ** 2) / 20.0).astype(np.float32),
                                              m, "fake")
            outs.append(out)
        return outs


class FakeScorer:
    """A GUI test double of the whole :class:`engine.inference.case.Scorer` Protocol."""

    def __init__(self, per_modality: dict[str, float]) -> None:
        self.per_modality = per_modality
        self.calls = 0

    def score_case(self, case, methods=(), *, progress=None, cancel=None):
        from engine.inference.case import CaseScores, ModelInfo

        self.calls += 1
        res = CaseScores(case.case_id)
        for ci in case.images:
            if ci.modality in self.per_modality:
                res.per_image[ci.image_id] = self.per_modality[ci.modality]
                res.models[ci.modality] = ModelInfo(ci.modality, f"fake-scorer-{ci.modality.lower()}")
        for m, p in self.per_modality.items():
            if any(ci.modality == m for ci in case.images):
                res.per_modality[m] = p
        return res


def fake_loader(work_s: float = 0.0, installed: tuple[str, ...] = ("MG", "US", "MR")):
    from engine.errors import ModelNotFoundError

    made: dict[str, FakePredictor] = {}

    def load(modality: str, model: str | None = None) -> FakePredictor:
        if modality not in installed:
            raise ModelNotFoundError(f"no default {modality} model")
        return made.setdefault(modality, FakePredictor(modality, work_s))

    load.made = made  # type: ignore[attr-defined]
    return load


def add_prior_pair(root: Path) -> None:
    """TEST CONSTRUCTION: cases E2025 (current 4-view exam) and E2023 (its 'prior', CC views
    only) of one synthetic patient, linked by patient_ref and exam_date. Both exams are
    synthetic; no real prior exists in the demo data."""
    from engine.io.writer import write_dicom

    for case_id, date, views, seed in (("E2025", "2025-03-04", ("CC", "MLO"), 10), ("E2023", "2023-03-01", ("CC",), 20)):
        c = root / "cases" / case_id
        c.mkdir(parents=True)
        imgs = []
        for lat, side in (("R", "left"), ("L", "right")):
            for view in views:
                f = c / f"{lat}{view}.dcm"
                write_dicom(f, mammogram(side=side, seed=seed + len(imgs)), modality="MG", laterality=lat, view=view,
                            pixel_spacing=(0.2, 0.2))
                imgs.append(CaseImage(f"{lat}{view}".lower(), f, "MG", view, lat))
        save_case(Case(case_id, c, images=imgs, patient_ref="PT-PRIOR-TEST", exam_date=date, synthetic=True,
                       description="TEST CONSTRUCTION: synthetic exam of a synthetic patient with a prior"))
