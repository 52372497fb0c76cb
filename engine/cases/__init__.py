"""Study/case data model stored as readable JSON next to the images (see ``model.py``)."""

from engine.cases.importers import ImportResult, import_dicom_folder, import_manifest, read_manifest
from engine.cases.model import Annotation, Case, CaseImage, Study, Truth
from engine.cases.store import (
    create_study,
    load_case,
    load_study,
    save_annotations,
    save_case,
    write_json_atomic,
)

__all__ = [
    "Annotation", "Case", "CaseImage", "ImportResult", "Study", "Truth", "create_study",
    "import_dicom_folder", "import_manifest", "load_case", "load_study", "read_manifest",
    "save_annotations", "save_case", "write_json_atomic",
]
