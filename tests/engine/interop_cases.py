"""Realistic cases for the interop tests: a DICOM MG pair (no frame of reference), a PNG
ultrasound (wrapped as Secondary Capture), a multi-frame US cine and a DICOM MR series, with
boxes, polygons and freehand contours on several lesions. All images are SYNTHETIC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.cases import Annotation, Case, CaseImage, save_case
from engine.cases.store import create_study
from engine.io.writer import write_dicom, write_dicom_series


def build_case(root: Path, case_id: str = "interop-01") -> Case:
    """A multi-modality SYNTHETIC case with five annotations on four images."""
    rng = np.random.default_rng(7)
    study = create_study(root, "interop test (SYNTHETIC)")
    folder = study.folder / "cases" / case_id
    folder.mkdir(parents=True)
    study_uid = "1.2.826.0.1.3680043.8.498.77.1"
    mg = (rng.random((240, 200)) * 4000).astype(np.uint16)
    write_dicom(folder / "cc.dcm", mg, modality="MG", laterality="L", view="CC", pixel_spacing=(0.1, 0.1),
                bits_stored=12, patient_id="SYN-1", patient_name="Synthetic^Patient", study_uid=study_uid)
    write_dicom(folder / "mlo.dcm", mg[::-1].copy(), modality="MG", laterality="L", view="MLO",
                pixel_spacing=(0.1, 0.1), bits_stored=12, patient_id="SYN-1", patient_name="Synthetic^Patient",
                study_uid=study_uid, series_number=2)
    Image.fromarray((rng.random((120, 160)) * 255).astype(np.uint8)).save(folder / "us.png")
    cine = (rng.random((5, 64, 80)) * 255).astype(np.uint8)
    write_dicom(folder / "cine.dcm", cine, modality="US", patient_id="SYN-1", patient_name="Synthetic^Patient",
                study_uid=study_uid,
                series_number=3)
    vol = (rng.random((6, 48, 56)) * 1000).astype(np.uint16)
    write_dicom_series(folder / "mr", vol, pixel_spacing=(0.7, 0.7), slice_thickness=2.0, patient_id="SYN-1",
                       patient_name="Synthetic^Patient",
                       study_uid=study_uid, series_number=4)
    case = Case(case_id=case_id, folder=folder, synthetic=True, images=[
        CaseImage("mg_cc", folder / "cc.dcm", "MG", "CC", "L", synthetic=True),
        CaseImage("mg_mlo", folder / "mlo.dcm", "MG", "MLO", "L", synthetic=True),
        CaseImage("us_1", folder / "us.png", "US", "lesion", synthetic=True),
        CaseImage("us_cine", folder / "cine.dcm", "US", "cine", synthetic=True),
        CaseImage("mr_1", folder / "mr", "MR", "T1", synthetic=True),
    ])
    case.annotations = [
        Annotation("mg_cc", "box", [[40.0, 50.0], [90.5, 101.0]], lesion_id="L1", label="mass", author="Dr Reader"),
        Annotation("mg_cc", "polygon", [[120.0, 30.0], [160.0, 40.0], [150.0, 90.0], [118.0, 70.0]],
                   lesion_id="L2", label="SPIC (malignant), reader circle", author="Dr Reader"),
        Annotation("mg_mlo", "freehand", [[60.0 + 20 * np.cos(t), 80.0 + 15 * np.sin(t)]
                                          for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)],
                   lesion_id="L1", label="mass", author="Dr Reader"),
        Annotation("us_1", "box", [[30.0, 20.0], [70.0, 60.0]], lesion_id="L1", author="Dr Reader"),
        Annotation("us_cine", "box", [[10.0, 12.0], [30.0, 40.0]], lesion_id="L1", frame=3, author="Dr Reader"),
        Annotation("mr_1", "box", [[5.0, 6.0], [25.0, 30.0]], lesion_id="L1", frame=2, author="Dr Reader"),
        Annotation("mr_1", "box", [[6.0, 7.0], [24.0, 29.0]], lesion_id="L1", frame=3, author="Dr Reader"),
    ]
    for a in case.annotations:
        a.points = [[float(round(x, 3)), float(round(y, 3))] for x, y in a.points]
    save_case(case)
    return case
