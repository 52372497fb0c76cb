"""Specific image-reading errors (all :class:`engine.errors.ImageReadError` subclasses).

Each names the file and says why in words a user can act on; the CLI prints them as one line
and the GUI as one dialog. Callers that only care that "the image could not be read" catch
:class:`~engine.errors.ImageReadError`.
"""

from __future__ import annotations

from engine.errors import ImageReadError, ImageTooLargeError, UnsupportedImageError


class EmptyFileError(ImageReadError):
    """The file has zero bytes."""


class TruncatedImageError(ImageReadError):
    """The file ends before the data its header announces (partial copy / download)."""


class CorruptImageError(ImageReadError):
    """The bytes do not decode (bad header fields, broken compressed stream)."""


class HeaderMismatchError(CorruptImageError):
    """Header sizes lie: rows x columns x frames x samples x bytes disagrees with the data."""


class InvalidDimensionsError(CorruptImageError):
    """The header claims zero (or negative) rows, columns, frames or samples."""


class UnknownFormatError(UnsupportedImageError):
    """The content is not a recognised image format (whatever its extension says)."""


class MissingPixelDataError(UnsupportedImageError):
    """A DICOM object without image pixels (structured report, RT plan, waveform...)."""


class UnsupportedPhotometricError(UnsupportedImageError):
    """A photometric interpretation / sample layout breast-reader cannot display."""


class UnsupportedTransferSyntaxError(UnsupportedImageError):
    """No installed decoder handles this compressed transfer syntax."""


__all__ = [
    "CorruptImageError",
    "EmptyFileError",
    "HeaderMismatchError",
    "ImageReadError",
    "ImageTooLargeError",
    "InvalidDimensionsError",
    "MissingPixelDataError",
    "TruncatedImageError",
    "UnknownFormatError",
    "UnsupportedImageError",
    "UnsupportedPhotometricError",
    "UnsupportedTransferSyntaxError",
]
