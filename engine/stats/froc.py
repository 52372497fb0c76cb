"""Free-response (FROC) reader studies: mark-to-lesion matching, FOMs, jackknife ORH analysis.

Paradigm (Chakraborty 2017, *Observer Performance Methods for Diagnostic Imaging*, CRC
Press, ch. 12-17; Chakraborty & Berbaum 2004, Med Phys 31:2313-2330): on each case a reader
makes zero or more *marks*, each with a location and a rating. Truth is a set of lesions per
case, each with a location/outline and a weight (weights of a case sum to 1). A mark that
satisfies the acceptance rule for a lesion is a lesion localisation (LL); a lesion counts
once, with the highest rating among its marks; every other mark is a non-lesion
localisation (NL). An unmarked lesion, and a normal case without marks, carry the rating
-inf (RJafroc's ``UNINITIALIZED``), so they tie with each other (1/2) and lose to any mark.

Figures of merit (K1 normal cases, K2 abnormal cases, L lesions in all; FP_k = the highest
NL rating on normal case k; psi(x, y) = 1 if y > x, 1/2 if y = x, else 0):

* AFROC (Chakraborty & Berbaum 2004): theta = 1/(K1 L) sum_k sum_l psi(FP_k, LL_l);
* wAFROC (Chakraborty & Zhai 2016, Med Phys 43:2342; RJafroc ``wAFROC``):
  theta = 1/(K1 K2) sum_k sum_{k2} sum_{l in k2} W_l psi(FP_k, LL_l);
* inferred ROC AUC (RJafroc ``HrAuc``): the Wilcoxon AUC of the highest rating per case
  (any mark, -inf when unmarked).

Each FOM is a weighted sum over lesions of the empirical distribution function of the
normal cases' FP ratings, so it and all K leave-one-case-out values are computed from two
sorted arrays in O(K log K) per reader and treatment (instead of the O(K1 L) double sum).
Inference: the jackknife covariance of the FOMs over cases goes into the Obuchowski-
Rockette / Hillis analysis (:func:`engine.stats.mrmc.or_analysis`), RRRC, FRRC or RRFC,
exactly as RJafroc ``StSignificanceTesting(method = "OR", covEstMethod = "jackknife")``;
the inferred-ROC AUC may also use DeLong's covariance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from engine.stats.mrmc import (
    CovMethod,
    Design,
    MrmcResult,
    auc_covariance,
    jackknife_covariance,
    or_analysis,
)

__all__ = [
    "AcceptanceRule",
    "FrocCurve",
    "FrocData",
    "Lesion",
    "Mark",
    "MatchResult",
    "afroc_points",
    "froc_analysis",
    "froc_fom_jackknife",
    "froc_foms",
    "froc_points",
    "inferred_roc_ratings",
    "match_marks",
    "simulate_froc",
    "wafroc_points",
]

Fom = Literal["wafroc", "afroc", "roc"]
FOMS: tuple[str, ...] = ("wafroc", "afroc", "roc")
NEG_INF = float("-inf")


# ------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class Lesion:
    """A true lesion of one case.

    Attributes:
        lesion_id: Id unique within the case.
        x, y: Centre (pixels of the image the marks are made on).
        radius: Acceptance radius around the centre (pixels); None = the rule's radius.
        outline: Polygon vertices (x, y); a mark inside it is accepted.
        box: (x0, y0, x1, y1) bounding box, for the IoU rule.
        weight: Clinical weight; 0 = equal share of the case (weights sum to 1 per case).
    """

    lesion_id: str
    x: float
    y: float
    radius: float | None = None
    outline: tuple[tuple[float, float], ...] | None = None
    box: tuple[float, float, float, float] | None = None
    weight: float = 0.0


@dataclass(frozen=True)
class Mark:
    """A reader's mark: location, rating, optionally a box (for the IoU rule)."""

    x: float
    y: float
    rating: float
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class AcceptanceRule:
    """When a mark localises a lesion (Chakraborty 2017 sec. 12.4, "proximity criterion").

    Attributes:
        kind: "outline": inside the lesion outline, or - for a lesion without outline -
            within ``radius`` of its centre; "radius": within the radius of the centre
            (the lesion's own radius when set); "iou": intersection over union of the mark's
            box and the lesion's box >= ``iou_min``.
        radius: Acceptance radius in pixels (e.g. the lesion radius or a fixed 50 px).
        iou_min: IoU threshold for "iou".
        duplicates: A second mark on an already localised lesion: "drop" (only the highest
            rating counts; the convention of Chakraborty 2017 and RJafroc's data format) or
            "nl" (it becomes a non-lesion localisation).
    """

    kind: Literal["outline", "radius", "iou"] = "outline"
    radius: float = 50.0
    iou_min: float = 0.5
    duplicates: Literal["drop", "nl"] = "drop"


@dataclass(frozen=True)
class MatchResult:
    """Matched marks of one reader on one case.

    Attributes:
        ll: lesion_id -> rating of its highest-rated accepted mark (localised lesions only).
        nl: Ratings of the non-lesion localisations.
        dropped: Lower-rated duplicate marks on an already localised lesion (rule "drop").
    """

    ll: dict[str, float]
    nl: list[float]
    dropped: int


def _inside(x: float, y: float, poly: tuple[tuple[float, float], ...]) -> bool:
    """Even-odd point-in-polygon test (ray casting)."""
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xc:
                inside = not inside
    return inside


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when both are empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _accepts(rule: AcceptanceRule, m: Mark, les: Lesion) -> bool:
    if rule.kind == "iou":
        return m.box is not None and les.box is not None and box_iou(m.box, les.box) >= rule.iou_min
    if rule.kind == "outline" and les.outline:
        return _inside(m.x, m.y, les.outline)
    r = les.radius if les.radius is not None else rule.radius
    return (m.x - les.x) ** 2 + (m.y - les.y) ** 2 <= r * r


def match_marks(marks: list[Mark], lesions: list[Lesion], rule: AcceptanceRule | None = None) -> MatchResult:
    """Classify one reader's marks on one case as LL or NL.

    Each mark goes to the accepting lesion whose centre is nearest; a lesion keeps its
    highest rating; marks accepted by no lesion are NLs. Duplicates follow ``rule.duplicates``.

    Args:
        marks: The marks.
        lesions: The case's lesions (empty for a normal case).
        rule: Acceptance rule (default :class:`AcceptanceRule`).

    Returns:
        :class:`MatchResult`.
    """
    rule = rule or AcceptanceRule()
    ll: dict[str, float] = {}
    nl: list[float] = []
    dropped = 0
    for m in sorted(marks, key=lambda mk: -mk.rating):  # highest first: it claims the lesion
        cands = [les for les in lesions if _accepts(rule, m, les)]
        if not cands:
            nl.append(float(m.rating))
            continue
        les = min(cands, key=lambda c: (m.x - c.x) ** 2 + (m.y - c.y) ** 2)
        if les.lesion_id in ll:
            if rule.duplicates == "nl":
                nl.append(float(m.rating))
            else:
                dropped += 1
            continue
        ll[les.lesion_id] = float(m.rating)
    return MatchResult(ll=ll, nl=nl, dropped=dropped)


# ------------------------------------------------------------------------- data
@dataclass(frozen=True)
class FrocData:
    """An FROC study in the already-matched form (RJafroc's NL/LL arrays).

    Attributes:
        treatments, readers, cases: Names.
        truth: (K,) True for abnormal cases (at least one lesion).
        lesion_case: (L,) index of each lesion's case.
        lesion_ids: (L,) lesion ids.
        weights: (L,) lesion weights; they sum to 1 within each abnormal case.
        ll: (t, r, L) rating of each lesion's LL mark, -inf when not localised.
        nl_treatment, nl_reader, nl_case: (M,) indices of every NL mark.
        nl_rating: (M,) NL ratings.
    """

    treatments: list[str]
    readers: list[str]
    cases: list[str]
    truth: NDArray[np.bool_]
    lesion_case: NDArray[np.int64]
    lesion_ids: list[str]
    weights: NDArray[np.float64]
    ll: NDArray[np.float64]
    nl_treatment: NDArray[np.int64]
    nl_reader: NDArray[np.int64]
    nl_case: NDArray[np.int64]
    nl_rating: NDArray[np.float64]

    def __post_init__(self) -> None:
        t, r, k = len(self.treatments), len(self.readers), len(self.cases)
        if self.truth.shape != (k,) or self.ll.shape != (t, r, self.lesion_case.size):
            raise ValueError("FrocData arrays do not match the treatments, readers, cases and lesions")
        if self.lesion_case.size and set(np.unique(self.lesion_case).tolist()) != set(np.nonzero(self.truth)[0].tolist()):
            raise ValueError("every abnormal case needs at least one lesion and normal cases none")
        if int((~self.truth).sum()) < 2 or int(self.truth.sum()) < 2:
            raise ValueError(
                f"FROC figures of merit and their jackknife need at least 2 normal and 2 abnormal cases "
                f"(got {int((~self.truth).sum())} and {int(self.truth.sum())})"
            )
        sums = np.bincount(self.lesion_case, weights=self.weights, minlength=k)[self.truth]
        if not np.allclose(sums, 1.0, atol=1e-6):
            raise ValueError("lesion weights must sum to 1 within each abnormal case")

    @property
    def n_lesions(self) -> int:
        """Total number of lesions L."""
        return int(self.lesion_case.size)

    def max_nl(self) -> NDArray[np.float64]:
        """(t, r, K) highest NL rating per case, -inf without NL marks."""
        t, r, k = len(self.treatments), len(self.readers), len(self.cases)
        out = np.full(t * r * k, NEG_INF)
        flat = (self.nl_treatment * r + self.nl_reader) * k + self.nl_case
        np.maximum.at(out, flat, self.nl_rating)
        return out.reshape(t, r, k)


def inferred_roc_ratings(data: FrocData) -> NDArray[np.float64]:
    """(t, r, K) highest rating of any mark per case, -inf when the case has no mark."""
    h = data.max_nl()
    if data.n_lesions:
        t, r, _ = h.shape
        for i in range(t):
            for j in range(r):
                np.maximum.at(h[i, j], data.lesion_case, data.ll[i, j])
    return h


def _lesion_weights(data: FrocData, fom: str) -> NDArray[np.float64]:
    """Per-lesion weight w_l with theta = sum_l w_l F(LL_l)."""
    if fom == "wafroc":
        return data.weights / int(data.truth.sum())
    return np.full(data.n_lesions, 1.0 / data.n_lesions)


def _fom_and_loo(
    fp: NDArray[np.float64], ll: NDArray[np.float64], w: NDArray[np.float64], lesion_case: NDArray[np.int64],
    truth: NDArray[np.bool_], fom: str,
) -> tuple[float, NDArray[np.float64]]:
    """One reader-treatment's AFROC-type FOM and its K leave-one-case-out values, O(K log K).

    With F(y) = (#{FP < y} + #{FP = y}/2) / K1 over the normal cases, theta = sum_l w_l F(y_l).
    Leaving out normal case k: (K1 theta - G(FP_k)) / (K1 - 1) with G(x) = sum_l w_l psi(x, y_l);
    leaving out abnormal case c: wAFROC (theta - c_c) K2/(K2 - 1), AFROC (theta - c_c) L/(L - L_c),
    where c_c = sum_{l in c} w_l F(y_l).
    """
    normals = ~truth
    x = fp[normals]
    k1 = x.size
    xs = np.sort(x)
    f = (np.searchsorted(xs, ll, "left") + np.searchsorted(xs, ll, "right")) / (2.0 * k1)
    contrib = w * f
    theta = float(contrib.sum())
    # G(x) for every normal case from the lesions sorted by rating with cumulative weights
    order = np.argsort(ll, kind="mergesort")
    ys = ll[order]
    cw = np.r_[0.0, np.cumsum(w[order])]
    wle = cw[np.searchsorted(ys, x, "right")]
    wlt = cw[np.searchsorted(ys, x, "left")]
    g = cw[-1] - 0.5 * (wle + wlt)
    loo = np.empty(truth.size)
    loo[normals] = (k1 * theta - g) / (k1 - 1)
    per_case = np.bincount(lesion_case, weights=contrib, minlength=truth.size)[truth]
    if fom == "wafroc":
        k2 = int(truth.sum())
        loo[truth] = (theta - per_case) * k2 / (k2 - 1)
    else:
        n_l = ll.size
        l_c = np.bincount(lesion_case, minlength=truth.size)[truth]
        loo[truth] = (theta - per_case) * n_l / (n_l - l_c)
    return theta, loo


def froc_fom_jackknife(data: FrocData, fom: Fom = "wafroc") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FOMs of every treatment x reader and their leave-one-case-out values.

    Args:
        data: The study.
        fom: "wafroc", "afroc" or "roc" (inferred ROC AUC).

    Returns:
        ``(foms, loo)``: (t, r) FOMs and (t r, K) jackknife FOMs, treatment-major.
    """
    t, r, k = len(data.treatments), len(data.readers), len(data.cases)
    if fom == "roc":
        h = _finite(inferred_roc_ratings(data))
        from engine.stats.delong import placements

        p = placements(data.truth.astype(int), h.reshape(t * r, k))
        m = int(data.truth.sum())
        n = k - m
        a = p.aucs[:, None]
        loo = np.empty((t * r, k))
        loo[:, data.truth] = (m * a - p.v10) / (m - 1)
        loo[:, ~data.truth] = (n * a - p.v01) / (n - 1)
        return p.aucs.reshape(t, r), loo
    if fom not in ("wafroc", "afroc"):
        raise ValueError(f"unknown FROC figure of merit {fom!r} (use wafroc, afroc or roc)")
    fp = data.max_nl()
    w = _lesion_weights(data, fom)
    foms = np.empty((t, r))
    loo = np.empty((t * r, k))
    for i in range(t):
        for j in range(r):
            foms[i, j], loo[i * r + j] = _fom_and_loo(fp[i, j], data.ll[i, j], w, data.lesion_case, data.truth, fom)
    return foms, loo


def froc_foms(data: FrocData, fom: Fom = "wafroc") -> NDArray[np.float64]:
    """(t, r) figures of merit (see :func:`froc_fom_jackknife`)."""
    return froc_fom_jackknife(data, fom)[0]


def _finite(h: NDArray[np.float64]) -> NDArray[np.float64]:
    """Replace -inf (unmarked) by a value below every rating: ranks, hence AUCs, unchanged."""
    fin = h[np.isfinite(h)]
    low = (float(fin.min()) - 1.0) if fin.size else 0.0
    return np.where(np.isfinite(h), h, low)


def froc_analysis(
    data: FrocData,
    fom: Fom = "wafroc",
    *,
    cov: CovMethod = "jackknife",
    design: Design = "rrrc",
    alpha: float = 0.05,
) -> MrmcResult:
    """ORH analysis (Obuchowski-Rockette with Hillis df) of an FROC figure of merit.

    Jackknife covariance of the FOMs over cases (Chakraborty 2017 ch. 10; RJafroc
    ``StSignificanceTesting(dataset, FOM = "wAFROC", method = "OR")``); DeLong's covariance is
    available for the inferred-ROC AUC (``fom="roc"``), the one FOM that is a Wilcoxon statistic.

    Args:
        data: The study.
        fom: "wafroc", "afroc" or "roc".
        cov: "jackknife" (any FOM) or "delong" (``fom="roc"`` only).
        design: "rrrc", "frrc" or "rrfc".
        alpha: 1 - confidence level.

    Returns:
        :class:`~engine.stats.mrmc.MrmcResult` with ``fom`` set.

    Raises:
        ValueError: DeLong with an AFROC-type FOM, too few cases or readers.
    """
    if cov == "delong":
        if fom != "roc":
            raise ValueError("DeLong covariance applies to the inferred-ROC AUC (fom 'roc'); use the jackknife "
                             f"for {fom}")
        foms, c = auc_covariance(data.truth.astype(int), _finite(inferred_roc_ratings(data)), "delong")
    elif cov == "jackknife":
        foms, loo = froc_fom_jackknife(data, fom)
        c = jackknife_covariance(loo)
    else:
        raise ValueError(f"unknown covariance method {cov!r} (use jackknife or delong)")
    return or_analysis(foms, c, treatments=data.treatments, readers=data.readers, design=design, alpha=alpha,
                       cov_method=cov, fom=fom)


# ------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class FrocCurve:
    """Empirical operating points of one reader in one treatment.

    Attributes:
        x: NLF (FROC) or FPF (AFROC, wAFROC).
        y: LLF (FROC, AFROC) or weighted LLF (wAFROC).
        thresholds: Rating threshold of each point (``+inf`` for the origin).
        kind: "froc", "afroc" or "wafroc".
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    kind: str

    @property
    def area(self) -> float:
        """Trapezoidal area (AFROC/wAFROC: equals the FOM; FROC: not a FOM)."""
        return float(np.trapezoid(self.y, self.x))


def _steps(ratings_x: NDArray[np.float64], wx: NDArray[np.float64], ratings_y: NDArray[np.float64],
           wy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Cumulative weights of x- and y-events at every distinct finite rating, descending."""
    fin = np.concatenate([ratings_x[np.isfinite(ratings_x)], ratings_y[np.isfinite(ratings_y)]])
    z = np.unique(fin)[::-1]
    xs_order = np.argsort(-ratings_x, kind="mergesort")
    ys_order = np.argsort(-ratings_y, kind="mergesort")
    cx = np.r_[0.0, np.cumsum(wx[xs_order])]
    cy = np.r_[0.0, np.cumsum(wy[ys_order])]
    sx = -ratings_x[xs_order]
    sy = -ratings_y[ys_order]
    # events with rating >= z  <=>  -rating <= -z
    px = cx[np.searchsorted(sx, -z, "right")]
    py = cy[np.searchsorted(sy, -z, "right")]
    return np.r_[0.0, px], np.r_[0.0, py], np.r_[np.inf, z]


def froc_points(data: FrocData, i: int, j: int) -> FrocCurve:
    """FROC curve: NLF = NL marks rated >= z per case, LLF = fraction of lesions localised at >= z."""
    sel = (data.nl_treatment == i) & (data.nl_reader == j)
    nl = data.nl_rating[sel]
    k = len(data.cases)
    x, y, z = _steps(nl, np.full(nl.size, 1.0 / k), data.ll[i, j], np.full(data.n_lesions, 1.0 / data.n_lesions))
    return FrocCurve(x, y, z, "froc")


def _afroc_like(data: FrocData, i: int, j: int, kind: str) -> FrocCurve:
    fp = data.max_nl()[i, j][~data.truth]
    k1 = fp.size
    wy = data.weights / int(data.truth.sum()) if kind == "wafroc" else np.full(data.n_lesions, 1.0 / data.n_lesions)
    x, y, z = _steps(fp, np.full(k1, 1.0 / k1), data.ll[i, j], wy)
    # the unmarked remainder: straight line to (1, 1) (Chakraborty 2017 sec. 13.4)
    return FrocCurve(np.r_[x, 1.0], np.r_[y, 1.0], np.r_[z, -np.inf], kind)


def afroc_points(data: FrocData, i: int, j: int) -> FrocCurve:
    """AFROC curve: FPF (normal cases whose highest NL >= z) vs LLF; area = AFROC FOM."""
    return _afroc_like(data, i, j, "afroc")


def wafroc_points(data: FrocData, i: int, j: int) -> FrocCurve:
    """wAFROC curve: FPF vs lesion-weighted LLF averaged over abnormal cases; area = wAFROC FOM."""
    return _afroc_like(data, i, j, "wafroc")


# ------------------------------------------------------------------------- simulation
def simulate_froc(
    rng: np.random.Generator,
    *,
    treatments: int = 2,
    readers: int = 4,
    normal: int = 50,
    abnormal: int = 50,
    max_lesions: int = 3,
    mu: float = 1.5,
    effect: float = 0.0,
    nl_rate: float = 1.0,
    localise: float = 0.8,
    case_sd: float = 0.7,
) -> FrocData:
    """A SYNTHETIC FROC study (search-model-like; Chakraborty 2017 ch. 16), for tests and benchmarks.

    Each abnormal case has 1..max_lesions lesions (equal weights). A reader localises a lesion
    with probability ``localise`` and rates it N(mu + effect * i + lesion effect, 1); every
    case gets Poisson(nl_rate) NL marks rated N(case effect, 1). Lesion and case effects
    (sd ``case_sd``) are shared by all readers and treatments, which makes the FOMs correlated
    over cases as in real studies. ``effect = 0``: the treatments are equivalent (null).

    Returns:
        :class:`FrocData` (cases "N001"..., "A001"...).
    """
    k = normal + abnormal
    truth = np.r_[np.zeros(normal, bool), np.ones(abnormal, bool)]
    n_les = rng.integers(1, max_lesions + 1, size=abnormal)
    lesion_case = np.repeat(np.arange(normal, k), n_les).astype(np.int64)
    n_l = lesion_case.size
    les_eff = rng.normal(0.0, case_sd, n_l)
    case_eff = rng.normal(0.0, case_sd, k)
    ll = np.full((treatments, readers, n_l), NEG_INF)
    nt: list[NDArray[np.int64]] = []
    nr: list[NDArray[np.int64]] = []
    nc: list[NDArray[np.int64]] = []
    nv: list[NDArray[np.float64]] = []
    for i in range(treatments):
        for j in range(readers):
            hit = rng.random(n_l) < localise
            val = mu + effect * i + les_eff + rng.normal(0.0, 1.0, n_l)
            ll[i, j, hit] = np.round(val[hit], 3)
            counts = rng.poisson(nl_rate, k)
            cases = np.repeat(np.arange(k), counts).astype(np.int64)
            nt.append(np.full(cases.size, i, np.int64))
            nr.append(np.full(cases.size, j, np.int64))
            nc.append(cases)
            nv.append(np.round(case_eff[cases] + rng.normal(0.0, 1.0, cases.size), 3))
    weights = 1.0 / n_les[lesion_case - normal]
    return FrocData(
        treatments=[f"T{i + 1}" for i in range(treatments)],
        readers=[f"R{j + 1}" for j in range(readers)],
        cases=[f"N{c + 1:03d}" for c in range(normal)] + [f"A{c + 1:03d}" for c in range(abnormal)],
        truth=truth,
        lesion_case=lesion_case,
        lesion_ids=[f"L{q}" for q in (np.arange(n_l) - np.searchsorted(lesion_case, lesion_case) + 1)],
        weights=weights.astype(np.float64),
        ll=ll,
        nl_treatment=np.concatenate(nt),
        nl_reader=np.concatenate(nr),
        nl_case=np.concatenate(nc),
        nl_rating=np.concatenate(nv).astype(np.float64),
    )
