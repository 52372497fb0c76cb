"""Image I/O: DICOM (MG/US/MR, compressed syntaxes), PNG/JPEG/TIFF/PGM/PPM, with safe failure."""

from engine.io.types import Identifiers, ImageMeta, LoadedImage, Modality

__all__ = ["Identifiers", "ImageMeta", "LoadedImage", "Modality"]
