"""Keep truth out of what a reader sees: dataset file names often carry the label.

BUSI names its files ``benign (12).png`` / ``malignant_105``; other sets use ``M_``/``B_``
prefixes or "Mass-Test_P_00173" ids. The reading UI shows :func:`reading_safe` text only;
provenance stays in the case files and the exports.
"""

from __future__ import annotations

import re

_TRUTH_WORDS = r"(?:benign|malignant|malign|normal|cancer|carcinoma)"
# a truth word glued to an id/number ("malignant_105", "benign (12)", "sfm-malign-0") or standing alone
_TRUTH_NAME = re.compile(
    rf"[\w.-]*{_TRUTH_WORDS}[\w.-]*(?:\s*\(\d+\))?",
    re.IGNORECASE,
)


def reading_safe(text: str | None) -> str:
    """``text`` with every truth-bearing word or file name replaced by "[name hidden]"."""
    if not text:
        return ""
    return _TRUTH_NAME.sub("[name hidden]", text)
