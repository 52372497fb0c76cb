"""Errors of the interoperability layer: one clear line for the user, never a traceback."""

from __future__ import annotations

from engine.errors import BreastReaderError


class InteropError(BreastReaderError):
    """A DICOM object could not be written or read back (names the object and the reason)."""


class PacsError(BreastReaderError):
    """A PACS exchange failed: the server is down, refused, replied with something malformed,
    or the request went over a limit. The message names the server (never its credentials)."""
