"""What `ship` and the recipe modes it dispatches to share (kept below both: no import cycle)."""

from __future__ import annotations

from engine.errors import BreastReaderError

__all__ = ["DISCLAIMER", "ParityError"]

DISCLAIMER = (
    "**Decision support, not a diagnosis.** This model is a research tool. Its score is one input "
    "for a qualified reader, who makes every clinical decision. It has not been cleared by any "
    "regulator and must not be used on its own to diagnose, triage or exclude disease."
)


class ParityError(BreastReaderError):
    """The written weights do not reproduce the recipe's scores through the app's predictor."""
