"""Export one case's reader findings and AI results as standard DICOM objects into a folder.

Writes (each file atomically; one failing object is reported and the others are still written):

* ``source/<image_id>_sc.dcm`` — Secondary Capture wrappers of raster images (see
  :mod:`engine.interop.sources`), so the SR/SEG references resolve on a PACS;
* ``<case>_sr.dcm`` — the TID 1500 Measurement Report (:mod:`engine.interop.sr`);
* ``<case>_<image>_seg.dcm`` — a BINARY SEG of the lesions drawn on each image;
* ``<case>_<image>_saliency_seg.dcm`` — a FRACTIONAL SEG of each AI saliency map.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from engine.cases.model import Case
from engine.interop.errors import InteropError
from engine.interop.seg import build_lesion_seg, build_saliency_seg
from engine.interop.sources import SourceImage, case_sources
from engine.interop.sr import AIScore, build_report, write_report


@dataclass
class ExportResult:
    """Files written (SR first, then SEGs, then the Secondary Capture wrappers) and problems."""

    sr: Path | None = None
    segs: list[Path] = field(default_factory=list)
    wrappers: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sources: dict[str, SourceImage] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file to send to a PACS (wrappers first so references resolve on arrival)."""
        return [*self.wrappers, *([self.sr] if self.sr else []), *self.segs]


def export_case(
    case: Case,
    out_dir: Path,
    *,
    ai: list[AIScore] | None = None,
    birads: str | None = None,
    observer: str | None = None,
) -> ExportResult:
    """Write the SR, lesion SEGs and saliency SEGs of ``case`` into ``out_dir``.

    Raises:
        InteropError: Nothing at all could be exported (no annotations and no AI result).
    """
    out_dir = Path(out_dir)
    res = ExportResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # highdicom's notes on the source's PN forms
        res.sources = case_sources(case, out_dir / "source")
        res.wrappers = [p for s in res.sources.values() if s.wrapped for p in s.paths]
        if case.annotations:
            try:
                res.sr = write_report(build_report(case, res.sources, ai=ai, birads=birads, observer=observer),
                                      out_dir / f"{case.case_id}_sr.dcm")
            except InteropError as exc:
                res.problems.append(str(exc))
        for iid, src in res.sources.items():
            try:
                seg = build_lesion_seg(case, src)
                if isinstance(seg, list):
                    for f, one in seg:
                        res.segs.append(write_report(one, out_dir / f"{case.case_id}_{iid}_f{f + 1}_seg.dcm"))
                elif seg is not None:
                    res.segs.append(write_report(seg, out_dir / f"{case.case_id}_{iid}_seg.dcm"))
            except InteropError as exc:
                res.problems.append(str(exc))
        for score in ai or []:
            target = res.sources.get(score.image_id)
            if score.saliency is None:
                continue
            if target is None:
                res.problems.append(f"{score.image_id}: no DICOM instance for its saliency map")
                continue
            try:
                res.segs.append(write_report(build_saliency_seg(case, target, score),
                                             out_dir / f"{case.case_id}_{score.image_id}_saliency_seg.dcm"))
            except InteropError as exc:
                res.problems.append(str(exc))
    if res.sr is None and not res.segs:
        raise InteropError(f"case {case.case_id}: nothing to export"
                           + (f" ({'; '.join(res.problems)})" if res.problems else " (no annotations, no AI result)"))
    return res
