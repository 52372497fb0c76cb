"""What `ship` and the recipe modes it dispatches to share (kept below both: no import cycle)."""

from __future__ import annotations

from engine.errors import BreastReaderError

__all__ = ["DISCLAIMER", "ParityError", "card_preamble"]

DISCLAIMER = (
    "**Decision support, not a diagnosis.** This model is a research tool. Its score is one input "
    "for a qualified reader, who makes every clinical decision. It has not been cleared by any "
    "regulator and must not be used on its own to diagnose, triage or exclude disease."
)


class ParityError(BreastReaderError):
    """The written weights do not reproduce the recipe's scores through the app's predictor."""


def card_preamble(title: str, synthetic_note: str | None, rebuild: str, data: str, licence: str | None) -> list[str]:
    """A model card's opening lines, shared by every recipe's card: title, the decision-support
    disclaimer, the SYNTHETIC warning (when ``synthetic_note``), how to rebuild, data and licence."""
    lines = [title, "", DISCLAIMER, ""]
    if synthetic_note:
        lines += [synthetic_note, ""]
    lines += ["## Rebuild", rebuild, "", "## Data", data, ""]
    if licence:
        lines += ["Licence and citation: " + licence, ""]
    return lines
