"""Exceptions that reach users as one clear line (CLI) or one dialog (GUI), never a traceback."""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class BreastReaderError(Exception):
    """Base class of every error the engine reports to a user."""


class ImageReadError(BreastReaderError):
    """An image file could not be read; names the file and the reason.

    Attributes:
        path: The file that failed.
        reason: A short human-readable reason (no traceback, no PHI).
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedImageError(ImageReadError):
    """The file is readable but not something breast-reader can display or score."""


class ImageTooLargeError(ImageReadError):
    """The header claims a size beyond the configured limits (refused before allocating)."""


class CaseFormatError(BreastReaderError):
    """A study/case file or manifest is malformed; names the file (and row) and what to fix."""

    def __init__(self, path: str | PathLike[str], reason: str, row: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.row = row
        where = f"{self.path}, row {row}" if row is not None else self.path
        super().__init__(f"{where}: {reason}")


class ConfigError(BreastReaderError):
    """A training/evaluation/study configuration is invalid; says what to fix."""


class ModelNotFoundError(BreastReaderError):
    """No model or weights of that name are registered/installed."""


class PretrainedWeightsMissingError(ModelNotFoundError):
    """``pretrained=True`` but the ImageNet checkpoint file is not on this machine (never downloaded)."""


class WeightsMismatchError(BreastReaderError):
    """Weights do not fit the model they are loaded into (architecture, classes, checksum)."""


class BoxRequiredError(BreastReaderError):
    """A lesion-region model was asked to score an image without a reader's box."""


class Cancelled(BreastReaderError):
    """A long job was cancelled through its :class:`engine.progress.CancelToken`."""


def display_path(path: str | PathLike[str]) -> str:
    """Return a short path for messages (relative to the cwd when inside it)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
