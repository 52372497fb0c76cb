"""Standard DICOM objects and PACS exchange for breast-reader.

* :mod:`engine.interop.sources` — the DICOM instances an annotation refers to (the case's own
  DICOM files, or Secondary Capture wrappers of PNG/JPEG images so a reference can resolve).
* :mod:`engine.interop.sr` — TID 1500 Measurement Report (Comprehensive SR) of a case's lesions:
  planar ROI, size, the reader's BI-RADS assessment, the AI score with its algorithm identification.
* :mod:`engine.interop.seg` — binary Segmentation per image (one segment per lesion) and the AI
  saliency as a FRACTIONAL Segmentation.
* :mod:`engine.interop.export` — all of the above for one case, written into a folder.
* :mod:`engine.interop.validate` — ``dciodvfy`` (Debian ``dicom3tools``) checks.
* :mod:`engine.interop.dicomweb` — QIDO-RS / WADO-RS / STOW-RS against a PACS (dicomweb-client).
* :mod:`engine.interop.orthanc` — a private, throw-away Orthanc for tests and CI.

Everything here is Qt-free; ``highdicom`` and ``dicomweb_client`` are imported lazily by the
modules that need them.
"""

from engine.interop.errors import InteropError, PacsError

__all__ = ["InteropError", "PacsError"]
