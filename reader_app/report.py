"""Qt-free structured BI-RADS report of one case: per lesion findings with the lexicon of its
modality, per breast density and assessment, and the final category.

Lexicon: ACR BI-RADS Atlas, 5th edition (D'Orsi CJ, Sickles EA, Mendelson EB, Morris EA et al.,
American College of Radiology, 2013): mammography, ultrasound and MRI sections.
Stored with the case (``<case>/birads_report.json``, atomic) and exported as JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.io.atomic import atomic_write_text

REPORT_FILE = "birads_report.json"

# finding type -> descriptor -> allowed values, per modality (BI-RADS 5th ed.)
LEXICON: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "MG": {
        "mass": {
            "shape": ("oval", "round", "irregular"),
            "margin": ("circumscribed", "obscured", "microlobulated", "indistinct", "spiculated"),
            "density": ("high density", "equal density", "low density", "fat-containing"),
        },
        "calcifications": {
            "morphology": ("typically benign", "amorphous", "coarse heterogeneous", "fine pleomorphic",
                           "fine linear / fine-linear branching"),
            "distribution": ("diffuse", "regional", "grouped", "linear", "segmental"),
        },
        "asymmetry": {"type": ("asymmetry", "global asymmetry", "focal asymmetry", "developing asymmetry")},
        "architectural distortion": {"with": ("none", "with calcifications", "with mass")},
    },
    "US": {
        "mass": {
            "shape": ("oval", "round", "irregular"),
            "orientation": ("parallel", "not parallel"),
            "margin": ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated"),
            "echo pattern": ("anechoic", "hyperechoic", "complex cystic and solid", "hypoechoic", "isoechoic",
                             "heterogeneous"),
            "posterior features": ("no posterior features", "enhancement", "shadowing", "combined pattern"),
        },
        "calcifications": {"location": ("in a mass", "outside of a mass", "intraductal")},
    },
    "MR": {
        "mass": {
            "shape": ("oval", "round", "irregular"),
            "margin": ("circumscribed", "irregular", "spiculated"),
            "internal enhancement": ("homogeneous", "heterogeneous", "rim enhancement", "dark internal septations"),
            "kinetics initial": ("slow", "medium", "fast"),
            "kinetics delayed": ("persistent", "plateau", "washout"),
        },
        "non-mass enhancement": {
            "distribution": ("focal", "linear", "segmental", "regional", "multiple regions", "diffuse"),
            "internal pattern": ("homogeneous", "heterogeneous", "clumped", "clustered ring"),
            "kinetics initial": ("slow", "medium", "fast"),
            "kinetics delayed": ("persistent", "plateau", "washout"),
        },
        "focus": {"kinetics delayed": ("persistent", "plateau", "washout")},
    },
}
DENSITY = ("A", "B", "C", "D")
DENSITY_TEXT = {"A": "almost entirely fatty", "B": "scattered fibroglandular", "C": "heterogeneously dense",
                "D": "extremely dense"}
CATEGORIES = ("0", "1", "2", "3", "4A", "4B", "4C", "5", "6")
CLOCK = tuple(f"{h} o'clock" for h in range(1, 13)) + ("subareolar", "central", "axillary tail")
DEPTH = ("anterior", "middle", "posterior")


@dataclass
class Finding:
    """One lesion of the report (lesion_id links it to the annotations on every image)."""

    lesion_id: str
    modality: str = "MG"
    finding: str = ""
    descriptors: dict[str, str] = field(default_factory=dict)
    breast: str = ""  # "R" / "L"
    clock: str = ""
    distance_from_nipple_cm: float | None = None
    depth: str = ""
    size_mm: float | None = None  # from the annotation (largest extent), None without pixel spacing
    assessment: str = ""

    def problems(self) -> list[str]:
        """What is not valid BI-RADS for this modality (empty = fine)."""
        lex = LEXICON.get(self.modality, {})
        out = []
        if self.finding and self.finding not in lex:
            out.append(f"{self.lesion_id}: '{self.finding}' is not a {self.modality} finding type")
        allowed = lex.get(self.finding, {})
        for k, v in self.descriptors.items():
            if v and v not in allowed.get(k, ()):
                out.append(f"{self.lesion_id}: {k} '{v}' is not in the {self.modality} {self.finding} lexicon")
        if self.assessment and self.assessment not in CATEGORIES:
            out.append(f"{self.lesion_id}: unknown category {self.assessment}")
        return out


@dataclass
class BreastAssessment:
    density: str = ""  # A-D
    assessment: str = ""


@dataclass
class Report:
    """The structured report of one case."""

    case_id: str
    findings: list[Finding] = field(default_factory=list)
    breasts: dict[str, BreastAssessment] = field(default_factory=lambda: {"R": BreastAssessment(),
                                                                          "L": BreastAssessment()})
    final_category: str = ""
    author: str = ""
    updated: float = 0.0

    def finding(self, lesion_id: str, modality: str = "MG") -> Finding:
        """The finding of a lesion (created on first use)."""
        for f in self.findings:
            if f.lesion_id == lesion_id:
                return f
        f = Finding(lesion_id, modality)
        self.findings.append(f)
        return f

    def suggested_final(self) -> str:
        """Highest category among breasts and lesions (BI-RADS: the most suspicious finding
        drives the overall assessment; 0 'incomplete' is kept only when nothing else is given)."""
        cats = [b.assessment for b in self.breasts.values() if b.assessment]
        cats += [f.assessment for f in self.findings if f.assessment]
        if not cats:
            return ""
        rank = {c: i for i, c in enumerate(("1", "2", "3", "0", "4A", "4B", "4C", "5", "6"))}
        return max(cats, key=lambda c: rank.get(c, -1))

    def problems(self) -> list[str]:
        out = [p for f in self.findings for p in f.problems()]
        for side, b in self.breasts.items():
            if b.density and b.density not in DENSITY:
                out.append(f"{side} breast: density must be A-D")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Report:
        r = cls(str(raw.get("case_id", "")))
        for f in raw.get("findings", []):
            known = {k: f[k] for k in Finding.__dataclass_fields__ if k in f}
            r.findings.append(Finding(**known))
        for side, b in (raw.get("breasts") or {}).items():
            r.breasts[side] = BreastAssessment(str(b.get("density", "")), str(b.get("assessment", "")))
        r.final_category = str(raw.get("final_category", ""))
        r.author = str(raw.get("author", ""))
        r.updated = float(raw.get("updated", 0.0))
        return r

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per finding (plus one per breast assessment) for a flat CSV export."""
        rows: list[dict[str, Any]] = []
        for side, b in self.breasts.items():
            rows.append({"case_id": self.case_id, "row": "breast", "breast": side, "density": b.density,
                         "assessment": b.assessment, "final_category": self.final_category})
        for f in self.findings:
            row = {"case_id": self.case_id, "row": "lesion", "lesion_id": f.lesion_id, "modality": f.modality,
                   "finding": f.finding, "breast": f.breast, "clock": f.clock,
                   "distance_from_nipple_cm": f.distance_from_nipple_cm, "depth": f.depth, "size_mm": f.size_mm,
                   "assessment": f.assessment, "final_category": self.final_category}
            for k, v in f.descriptors.items():
                row[k] = v
            rows.append(row)
        return rows


def load_report(case_folder: Path, case_id: str) -> Report:
    """The stored report of a case, or an empty one."""
    p = Path(case_folder) / REPORT_FILE
    if p.exists():
        try:
            return Report.from_json(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # unreadable: start a new one; it is rewritten on save
    return Report(case_id)


def save_report(case_folder: Path, report: Report) -> Path:
    """Write ``birads_report.json`` into the case folder atomically."""
    report.updated = time.time()
    folder = Path(case_folder)
    atomic_write_text(folder / REPORT_FILE, json.dumps(report.to_json(), indent=1))  # temp + fsync + rename
    return folder / REPORT_FILE


def reports_csv(reports: list[Report]) -> str:
    """CSV text of several reports (columns = union of the rows' keys, stable order)."""
    rows = [r for rep in reports for r in rep.csv_rows()]
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def lesion_size_mm(points: list[list[float]], spacing: tuple[float, float] | None) -> float | None:
    """Largest extent of an annotation in mm (bounding box diagonal is not BI-RADS: the
    longest side is), None without pixel spacing."""
    if not spacing or not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return round(max((max(xs) - min(xs)) * spacing[1], (max(ys) - min(ys)) * spacing[0]), 1)
