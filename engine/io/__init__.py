"""Image I/O: DICOM (MG/US/MR, compressed syntaxes), PNG/JPEG/TIFF/PGM/PPM, with safe failure.

``read_image(path)`` is the one entry point (a folder of slices -> a sorted stack);
``probe(path)`` reads headers only; ``write_dicom`` writes valid DICOM; errors are the
:mod:`engine.io.errors` subclasses of :class:`engine.errors.ImageReadError`.
"""

from engine.io.reader import MAX_DECODED_BYTES, MAX_PIXELS, probe, read_image, read_series
from engine.io.types import Identifiers, ImageMeta, LoadedImage, Modality
from engine.io.writer import write_dicom, write_dicom_series

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_PIXELS",
    "Identifiers",
    "ImageMeta",
    "LoadedImage",
    "Modality",
    "probe",
    "read_image",
    "read_series",
    "write_dicom",
    "write_dicom_series",
]
