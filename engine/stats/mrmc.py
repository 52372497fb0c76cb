"""Obuchowski-Rockette multi-reader multi-case (MRMC) analysis of empirical AUCs.

Model (Obuchowski & Rockette 1995, Commun Stat Simul 24:285-308): the AUC of treatment i and
reader j is theta_ij = mu + tau_i + R_j + (tau R)_ij + e_ij, with error covariances Cov1
(same reader, different treatment), Cov2 (different reader, same treatment) and Cov3
(different reader and treatment) estimated from case resampling (DeLong et al. 1988, or the
jackknife, Efron 1982). Inference follows Hillis (2007, Stat Med 26:596-619: denominator
degrees of freedom) and Hillis, Obuchowski & Berbaum (2008, Acad Radiol 15:647-661), with
the fixed-reader and fixed-case variants of Hillis (2014, Stat Med 33:330-360). The
arithmetic reproduces the MRMCaov R package (Smith & Hillis 2020, Proc SPIE 11316) to
printed precision on its VanDyke example (tests/engine/test_mrmc_reference.py).

The "standalone AI versus a reader panel" analysis is the single-treatment method of
Chakraborty's RJafroc (``StSignificanceTestingCadVsRadiologists``, "1T-RRRC"; Hillis 2007
section 5.3; Hupse et al. 2013): the model is a fixed reader, the reader-minus-model AUC
differences are analysed as a one-treatment random-reader random-case OR study.

All functions are pure (numpy in, dataclasses out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from engine.stats.delong import Placements, covariance_from_placements, placements

__all__ = [
    "AiVsReadersResult",
    "MrmcResult",
    "PairwiseResult",
    "TreatmentResult",
    "ai_vs_readers",
    "auc_covariance",
    "format_text",
    "jackknife_covariance",
    "mrmc_analysis",
    "or_analysis",
    "or_components",
]

CovMethod = Literal["delong", "jackknife"]
Design = Literal["rrrc", "frrc", "rrfc"]


def _placements_flat(truth: NDArray[np.bool_], ratings: NDArray[np.float64]) -> Placements:
    t, r, c = ratings.shape
    return placements(truth, ratings.reshape(t * r, c))


def jackknife_covariance_from_placements(p: Placements) -> NDArray[np.float64]:
    """Leave-one-case-out jackknife covariance of AUCs, in O(k N) from placements.

    Removing positive i gives AUC_(i) = (m AUC - V10_i) / (m - 1); removing negative j gives
    (n AUC - V01_j) / (n - 1). The jackknife covariance is (N - 1)/N times the sum of
    cross-products of the centred pseudo-AUCs (Efron 1982; as MRMCaov ``jackknife()``).

    Args:
        p: Structural components of k AUCs on N = m + n cases.

    Returns:
        (k, k) covariance matrix.
    """
    m = p.v10.shape[1]
    n = p.v01.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"a jackknife variance needs at least 2 positive and 2 negative cases (got {m} and {n})")
    a = p.aucs[:, None]
    loo = np.concatenate([(m * a - p.v10) / (m - 1), (n * a - p.v01) / (n - 1)], axis=1)
    big_n = m + n
    centred = loo - loo.mean(axis=1, keepdims=True)
    return np.asarray((big_n - 1) / big_n * centred @ centred.T, dtype=np.float64)


def jackknife_covariance(loo: ArrayLike) -> NDArray[np.float64]:
    """Jackknife covariance of k statistics from their leave-one-case-out values.

    Cov = (N - 1)/N sum_k (theta_(k) - mean)(theta_(k) - mean)^T (Efron 1982, eq. 3.9); the
    same estimator RJafroc uses for any FOM (``FOMijk2VarCov``) and MRMCaov's ``jackknife``.

    Args:
        loo: (k, N) statistics recomputed with each of the N cases (or clusters) left out.

    Returns:
        (k, k) covariance.
    """
    a = np.asarray(loo, dtype=float)
    n = a.shape[1]
    if n < 2:
        raise ValueError("a jackknife needs at least 2 cases")
    centred = a - a.mean(axis=1, keepdims=True)
    return np.asarray((n - 1) / n * centred @ centred.T, dtype=np.float64)


def auc_covariance(
    truth: ArrayLike, ratings: ArrayLike, cov: CovMethod = "delong"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Empirical AUCs of every treatment x reader and their covariance over cases.

    Args:
        truth: (c,) 0/1 case truth (1 = positive).
        ratings: (t, r, c) ratings of t treatments x r readers on the same c cases.
        cov: "delong" (DeLong et al. 1988, via Sun & Xu 2014) or "jackknife".

    Returns:
        ``(aucs, covariance)``: (t, r) AUCs and (t r, t r) covariance, treatment-major
        (index i * r + j).
    """
    s = np.asarray(ratings, dtype=float)
    if s.ndim != 3:
        raise ValueError(f"ratings must have shape (treatments, readers, cases), got {s.shape}")
    t_arr = np.asarray(truth)
    p = placements(t_arr, s.reshape(s.shape[0] * s.shape[1], s.shape[2]))
    if cov == "delong":
        c = covariance_from_placements(p)
    elif cov == "jackknife":
        c = jackknife_covariance_from_placements(p)
    else:
        raise ValueError(f"unknown covariance method {cov!r} (use 'delong' or 'jackknife')")
    return p.aucs.reshape(s.shape[0], s.shape[1]), c


@dataclass(frozen=True)
class OrComponents:
    """Obuchowski-Rockette error variance and covariances plus ANOVA mean squares.

    Attributes:
        var_error: Mean of the diagonal of the AUC covariance.
        cov1: Mean covariance, same reader / different treatment.
        cov2: Mean covariance, different reader / same treatment.
        cov3: Mean covariance, different reader / different treatment.
        ms_t: Treatment mean square.
        ms_r: Reader mean square.
        ms_tr: Treatment-by-reader mean square.
    """

    var_error: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_r: float
    ms_tr: float


def or_components(aucs: ArrayLike, cov: ArrayLike) -> OrComponents:
    """Average the AUC covariance into OR error terms and compute the ANOVA mean squares.

    Obuchowski & Rockette (1995); Hillis (2007) eqs. 2-4; MRMCaov ``vcov_comps``.

    Args:
        aucs: (t, r) AUCs.
        cov: (t r, t r) covariance, treatment-major.

    Returns:
        :class:`OrComponents` (covariances with no contributing pairs are 0).
    """
    a = np.asarray(aucs, dtype=float)
    c = np.asarray(cov, dtype=float)
    t, r = a.shape
    tests = np.repeat(np.arange(t), r)
    readers = np.tile(np.arange(r), t)
    same_t = tests[:, None] == tests[None, :]
    same_r = readers[:, None] == readers[None, :]

    def _mean(mask: NDArray[np.bool_]) -> float:
        return float(c[mask].mean()) if mask.any() else 0.0

    grand = a.mean()
    ms_t = r * float(((a.mean(axis=1) - grand) ** 2).sum()) / (t - 1) if t > 1 else 0.0
    ms_r = t * float(((a.mean(axis=0) - grand) ** 2).sum()) / (r - 1) if r > 1 else 0.0
    inter = a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + grand
    ms_tr = float((inter**2).sum()) / ((t - 1) * (r - 1)) if t > 1 and r > 1 else 0.0
    return OrComponents(
        var_error=float(np.mean(np.diag(c))),
        cov1=_mean(~same_t & same_r),
        cov2=_mean(same_t & ~same_r),
        cov3=_mean(~same_t & ~same_r),
        ms_t=ms_t,
        ms_r=ms_r,
        ms_tr=ms_tr,
    )


@dataclass(frozen=True)
class TreatmentResult:
    """Mean AUC of one treatment over readers with its CI (that treatment's data only).

    Attributes:
        auc: Reader-averaged AUC.
        se: Standard error.
        df: Degrees of freedom (``inf`` for normal-based fixed-reader intervals).
        ci: (lo, hi) clipped to [0, 1].
    """

    auc: float
    se: float
    df: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class PairwiseResult:
    """Difference of two treatments' reader-averaged AUCs.

    Attributes:
        comparison: "A - B".
        estimate: AUC(A) - AUC(B).
        se: Standard error.
        df: Degrees of freedom (``inf`` = normal reference).
        ci: (lo, hi).
        t: Test statistic (t, or z when df is inf).
        p: Two-sided p-value.
        reader: Reader id for reader-specific comparisons (fixed readers), else None.
    """

    comparison: str
    estimate: float
    se: float
    df: float
    ci: tuple[float, float]
    t: float
    p: float
    reader: str | None = None


@dataclass(frozen=True)
class MrmcResult:
    """Result of :func:`mrmc_analysis`.

    Attributes:
        design: "rrrc", "frrc" or "rrfc".
        cov_method: "delong" or "jackknife".
        treatments: Treatment names, in order.
        readers: Reader names, in order.
        aucs: (t, r) AUCs.
        cov: (t r, t r) AUC covariance.
        components: :class:`OrComponents`.
        variance_components: var_R, var_TR, var_error, cov1..cov3 (MRMCaov naming).
        global_test: F (or chi-square X2 for fixed readers), df1, df2, p, denominator.
        treatment_results: Per-treatment mean AUC and CI.
        pairwise: Pairwise treatment comparisons.
        reader_pairwise: Reader-specific comparisons (fixed readers only).
        alpha: 1 - confidence level.
    """

    design: str
    cov_method: str
    treatments: list[str]
    readers: list[str]
    aucs: NDArray[np.float64]
    cov: NDArray[np.float64]
    components: OrComponents
    variance_components: dict[str, float]
    global_test: dict[str, float]
    treatment_results: dict[str, TreatmentResult]
    pairwise: list[PairwiseResult]
    reader_pairwise: list[PairwiseResult] = field(default_factory=list)
    alpha: float = 0.05
    fom: str = "auc"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with the ``breast-engine mrmc --json`` keys."""

        def _pw(p: PairwiseResult) -> dict[str, object]:
            d: dict[str, object] = {
                "comparison": p.comparison,
                "estimate": p.estimate,
                "se": p.se,
                "df": _num(p.df),
                "ci": list(p.ci),
                "t": p.t,
                "p": p.p,
            }
            if p.reader is not None:
                d["reader"] = p.reader
            return d

        key = "auc" if self.fom == "auc" else "fom"
        out: dict[str, object] = {
            "design": self.design,
            "cov": self.cov_method,
            "alpha": self.alpha,
            "treatments": {
                k: {key: v.auc, "se": v.se, "df": _num(v.df), "ci": list(v.ci)}
                for k, v in self.treatment_results.items()
            },
            "global_test": {k: _num(v) for k, v in self.global_test.items()},
            "pairwise": [_pw(p) for p in self.pairwise],
            "variance_components": dict(self.variance_components),
            "per_reader": {
                rd: {tr: float(self.aucs[i, j]) for i, tr in enumerate(self.treatments)}
                for j, rd in enumerate(self.readers)
            },
        }
        if self.fom != "auc":
            out["fom"] = self.fom
        if self.reader_pairwise:
            out["reader_pairwise"] = [_pw(p) for p in self.reader_pairwise]
        return out


def format_text(res: MrmcResult) -> str:
    """Human-readable summary of an MRMC result."""
    lvl = int(round((1 - res.alpha) * 100))
    label = "AUC" if res.fom == "auc" else res.fom
    lines = [f"MRMC ({res.design.upper()}, {res.cov_method} covariance, FOM {label}), "
             f"{len(res.readers)} readers x {len(res.treatments)} treatments"]
    for name, tr in res.treatment_results.items():
        lines.append(f"  {name}: {label} {tr.auc:.4f}  SE {tr.se:.4f}  df {tr.df:.2f}  "
                     f"{lvl}% CI [{tr.ci[0]:.4f}, {tr.ci[1]:.4f}]")
    if res.global_test:
        g = res.global_test
        lines.append(f"  global test: F {g['F']:.4f}  df ({g['df1']:.0f}, {g['df2']:.2f})  p {g['p']:.4g}")
    for p in res.pairwise:
        lines.append(f"  {p.comparison}: {p.estimate:+.4f}  SE {p.se:.4f}  "
                     f"{lvl}% CI [{p.ci[0]:.4f}, {p.ci[1]:.4f}]  p {p.p:.4g}")
    vc = ", ".join(f"{k} {v:.3g}" for k, v in res.variance_components.items())
    lines.append(f"  variance components: {vc}")
    return "\n".join(lines)


def _num(x: float) -> float | None:
    """JSON has no inf/nan: map them to None."""
    return float(x) if np.isfinite(x) else None


def _ci(est: float, se: float, df: float, alpha: float, clip: bool) -> tuple[float, float]:
    q = float(sps.norm.ppf(1 - alpha / 2)) if not np.isfinite(df) else float(sps.t.ppf(1 - alpha / 2, df))
    lo, hi = est - q * se, est + q * se
    if clip:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return float(lo), float(hi)


def _p_two_sided(stat: float, df: float) -> float:
    if not np.isfinite(stat):
        return 0.0 if np.isinf(stat) else float("nan")
    if np.isfinite(df):
        return float(2 * sps.t.sf(abs(stat), df))
    return float(2 * sps.norm.sf(abs(stat)))


def _safe_div(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return float("nan") if a == 0 else float(np.sign(a) * np.inf)


def _single_treatment(
    aucs_i: NDArray[np.float64], cov_i: NDArray[np.float64], design: str, alpha: float, clip: bool = True
) -> TreatmentResult:
    """One treatment's mean AUC and CI from its own data (Hillis 2007 sec. 5; MRMCaov)."""
    r = aucs_i.size
    est = float(aucs_i.mean())
    ms_r = float(aucs_i.var(ddof=1)) if r > 1 else 0.0
    off = ~np.eye(r, dtype=bool)
    cov2 = float(cov_i[off].mean()) if r > 1 else 0.0
    var_e = float(np.mean(np.diag(cov_i)))
    if design == "rrrc":
        se = float(np.sqrt(ms_r / r + max(cov2, 0.0)))
        num = ms_r + r * max(cov2, 0.0)
        df = num**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else float("inf")
    elif design == "frrc":
        se = float(np.sqrt((var_e + (r - 1) * max(cov2, 0.0)) / r))
        df = float("inf")
    else:  # rrfc
        se = float(np.sqrt(ms_r / r))
        df = float(r - 1)
    return TreatmentResult(auc=est, se=se, df=float(df), ci=_ci(est, se, df, alpha, clip=clip))


def mrmc_analysis(
    truth: ArrayLike,
    ratings: ArrayLike,
    *,
    treatments: list[str] | None = None,
    readers: list[str] | None = None,
    cov: CovMethod = "delong",
    design: Design = "rrrc",
    alpha: float = 0.05,
) -> MrmcResult:
    """Obuchowski-Rockette MRMC analysis of empirical AUCs with Hillis' df.

    Random readers and cases ("rrrc"): F = MS(T) / [MS(T:R) + r max(Cov2 - Cov3, 0)] on
    (t - 1, ddf_H) with ddf_H = den^2 / (MS(T:R)^2 / ((t-1)(r-1))) (Hillis 2007 eq. 6;
    Hillis et al. 2008). Fixed readers ("frrc"): chi-square (t-1) MS(T) / [Var - Cov1 +
    (r-1)(Cov2 - Cov3)] on t-1 df, plus reader-specific comparisons with SE
    sqrt(2 (Var_j - Cov1_j)). Fixed cases ("rrfc"): F = MS(T) / MS(T:R) on (t-1, (t-1)(r-1))
    (conventional ANOVA). Per-treatment CIs use only that treatment's data (Hillis 2007
    sec. 5.2). Pairwise SE = sqrt(2 den / r). Variance components as in MRMCaov:
    var_R = (MS(R) - MS(T:R)) / t - Cov1 + Cov3; var_TR = MS(T:R) - Var + Cov1 + Cov2 - Cov3.

    Args:
        truth: (c,) 0/1 case truth.
        ratings: (t, r, c) ratings (treatments x readers x cases), fully crossed.
        treatments: Treatment names (default "1".."t").
        readers: Reader names (default "1".."r").
        cov: "delong" or "jackknife" covariance of the AUCs over cases.
        design: "rrrc", "frrc" or "rrfc".
        alpha: 1 - confidence level.

    Returns:
        :class:`MrmcResult`.

    Raises:
        ValueError: Bad shapes, fewer than 2 readers (rrrc/rrfc), one truth class.
    """
    s = np.asarray(ratings, dtype=float)
    if s.ndim != 3:
        raise ValueError(f"ratings must have shape (treatments, readers, cases), got {s.shape}")
    t, r, _ = s.shape
    tnames, rnames = _design_names(t, r, design, treatments, readers)
    aucs, c = auc_covariance(truth, s, cov)
    return or_analysis(aucs, c, treatments=tnames, readers=rnames, design=design, alpha=alpha, cov_method=cov)


def _design_names(t: int, r: int, design: str, treatments: list[str] | None,
                  readers: list[str] | None) -> tuple[list[str], list[str]]:
    """Check the design and the reader count; the treatment and reader names (default "1"..).

    Raises:
        ValueError: Unknown design, fewer than 2 readers for a random-reader design, or names
            that do not match ``t`` treatments x ``r`` readers.
    """
    if design not in ("rrrc", "frrc", "rrfc"):
        raise ValueError(f"unknown design {design!r} (use rrrc, frrc or rrfc)")
    if design in ("rrrc", "rrfc") and r < 2:
        raise ValueError("random-reader analysis needs at least 2 readers")
    tnames = treatments or [str(i + 1) for i in range(t)]
    rnames = readers or [str(j + 1) for j in range(r)]
    if len(tnames) != t or len(rnames) != r:
        raise ValueError(f"treatments/readers names ({len(tnames)}, {len(rnames)}) do not match the "
                         f"{t} treatments x {r} readers")
    return tnames, rnames


def or_analysis(
    foms: ArrayLike,
    cov: ArrayLike,
    *,
    treatments: list[str] | None = None,
    readers: list[str] | None = None,
    design: Design = "rrrc",
    alpha: float = 0.05,
    cov_method: str = "jackknife",
    fom: str = "auc",
    clip: bool = True,
) -> MrmcResult:
    """Obuchowski-Rockette analysis of any figure of merit from its error covariance.

    The OR model and Hillis' inference (see :func:`mrmc_analysis`) need only the (t, r)
    figures of merit and their (t r, t r) covariance over cases, however it was estimated:
    DeLong structural components, the case jackknife (ROC, FROC/wAFROC, sensitivity), the
    clustered (patient-level) covariance of Obuchowski 1997, or a block-diagonal split-plot
    covariance (Hillis 2014; RJafroc ``ORAnalysisSplitPlot``). Chakraborty (2017, ch. 9-10)
    applies the same ORH analysis to FROC figures of merit with jackknife covariance.

    Args:
        foms: (t, r) figures of merit.
        cov: (t r, t r) covariance, treatment-major (index i * r + j).
        treatments: Treatment names.
        readers: Reader names.
        design: "rrrc", "frrc" or "rrfc".
        alpha: 1 - confidence level.
        cov_method: Label of the covariance method (reported).
        fom: Name of the figure of merit (reported).
        clip: Clip per-treatment CIs to [0, 1] (FOMs that are probabilities).

    Returns:
        :class:`MrmcResult`.
    """
    aucs = np.asarray(foms, dtype=float)
    c = np.asarray(cov, dtype=float)
    if aucs.ndim != 2 or c.shape != (aucs.size, aucs.size):
        raise ValueError(f"foms must be (t, r) and cov (t r, t r); got {aucs.shape} and {c.shape}")
    t, r = aucs.shape
    tnames, rnames = _design_names(t, r, design, treatments, readers)
    comp = or_components(aucs, c)

    vc = {
        "var_R": (comp.ms_r - comp.ms_tr) / t - comp.cov1 + comp.cov3 if t > 1 else comp.ms_r - comp.cov2,
        "var_TR": comp.ms_tr - comp.var_error + comp.cov1 + (comp.cov2 - comp.cov3) if t > 1 else 0.0,
        "var_error": comp.var_error,
        "cov1": comp.cov1,
        "cov2": comp.cov2,
        "cov3": comp.cov3,
    }
    if design == "rrfc":
        # cases fixed: only reader variation is random; OR error terms do not apply
        vc = {"var_R": (comp.ms_r - comp.ms_tr) / t if t > 1 else comp.ms_r, "var_TR": comp.ms_tr}

    global_test: dict[str, float] = {}
    pair_se = float("nan")
    pair_df = float("nan")
    if t > 1:
        if design == "rrrc":
            den = comp.ms_tr + r * max(comp.cov2 - comp.cov3, 0.0)
            df2 = den**2 / (comp.ms_tr**2 / ((t - 1) * (r - 1))) if comp.ms_tr > 0 else float("inf")
            f = _safe_div(comp.ms_t, den)
            p = float(sps.f.sf(f, t - 1, df2)) if np.isfinite(f) and np.isfinite(df2) else (
                float(sps.chi2.sf(f * (t - 1), t - 1)) if np.isfinite(f) else 0.0
            )
            global_test = {"F": f, "df1": float(t - 1), "df2": float(df2), "p": p, "denominator": den,
                           "MS_T": comp.ms_t, "MS_TR": comp.ms_tr}
            pair_se, pair_df = float(np.sqrt(2.0 / r * den)), float(df2)
        elif design == "frrc":
            den = comp.var_error - comp.cov1 + (r - 1) * (comp.cov2 - comp.cov3)
            x2 = _safe_div((t - 1) * comp.ms_t, den)
            p = float(sps.chi2.sf(x2, t - 1)) if np.isfinite(x2) else 0.0
            # reported under the same keys: F is the chi-square statistic here, df2 = inf
            global_test = {"F": x2, "X2": x2, "df1": float(t - 1), "df2": float("inf"), "p": p,
                           "denominator": den, "MS_T": comp.ms_t}
            pair_se, pair_df = float(np.sqrt(max(2.0 / r * den, 0.0))), float("inf")
        else:
            df2 = float((t - 1) * (r - 1))
            f = _safe_div(comp.ms_t, comp.ms_tr)
            p = float(sps.f.sf(f, t - 1, df2)) if np.isfinite(f) else 0.0
            global_test = {"F": f, "df1": float(t - 1), "df2": df2, "p": p, "denominator": comp.ms_tr,
                           "MS_T": comp.ms_t, "MS_TR": comp.ms_tr}
            pair_se, pair_df = float(np.sqrt(2.0 / r * comp.ms_tr)), df2

    tres: dict[str, TreatmentResult] = {}
    for i, name in enumerate(tnames):
        block = c[i * r : (i + 1) * r, i * r : (i + 1) * r]
        tres[name] = _single_treatment(aucs[i], block, design, alpha, clip)

    pairwise: list[PairwiseResult] = []
    for a, b in combinations(range(t), 2):
        est = float(aucs[a].mean() - aucs[b].mean())
        stat = _safe_div(est, pair_se)
        pairwise.append(
            PairwiseResult(
                comparison=f"{tnames[a]} - {tnames[b]}",
                estimate=est,
                se=pair_se,
                df=pair_df,
                ci=_ci(est, pair_se, pair_df, alpha, clip=False),
                t=stat,
                p=_p_two_sided(stat, pair_df),
            )
        )

    reader_pw: list[PairwiseResult] = []
    if design == "frrc" and t > 1:
        for j, rname in enumerate(rnames):
            idx = np.arange(t) * r + j
            blk = c[np.ix_(idx, idx)]
            var_j = float(np.mean(np.diag(blk)))
            cov1_j = float(blk[~np.eye(t, dtype=bool)].mean())
            se_j = float(np.sqrt(max(2.0 * (var_j - cov1_j), 0.0)))
            for a, b in combinations(range(t), 2):
                est = float(aucs[a, j] - aucs[b, j])
                z = _safe_div(est, se_j)
                reader_pw.append(
                    PairwiseResult(
                        comparison=f"{tnames[a]} - {tnames[b]}",
                        estimate=est,
                        se=se_j,
                        df=float("inf"),
                        ci=_ci(est, se_j, float("inf"), alpha, clip=False),
                        t=z,
                        p=_p_two_sided(z, float("inf")),
                        reader=rname,
                    )
                )

    return MrmcResult(
        design=design,
        cov_method=cov_method,
        fom=fom,
        treatments=list(tnames),
        readers=list(rnames),
        aucs=aucs,
        cov=c,
        components=comp,
        variance_components={k: float(v) for k, v in vc.items()},
        global_test={k: float(v) for k, v in global_test.items()},
        treatment_results=tres,
        pairwise=pairwise,
        reader_pairwise=reader_pw,
        alpha=alpha,
    )


@dataclass(frozen=True)
class AiVsReadersResult:
    """Standalone model vs a random reader panel (single treatment, 1T-RRRC).

    Attributes:
        model_auc: AUC of the model (a fixed reader).
        reader_aucs: AUC of each human reader.
        mean_reader_auc: Mean reader AUC.
        estimate: mean(reader AUC) - model AUC.
        se: Standard error of ``estimate`` (readers and cases random).
        df: Hillis denominator df.
        ci: CI of ``estimate``.
        reader_ci: CI of the mean reader AUC (= ci + model AUC).
        t: t statistic.
        p: Two-sided p-value.
        var_error: Mean variance of the reader-minus-model differences.
        cov2: Mean covariance between different readers' differences.
        ms_r: Reader mean square of the differences.
        cov_method: "delong" or "jackknife".
    """

    model_auc: float
    reader_aucs: dict[str, float]
    mean_reader_auc: float
    estimate: float
    se: float
    df: float
    ci: tuple[float, float]
    reader_ci: tuple[float, float]
    t: float
    p: float
    var_error: float
    cov2: float
    ms_r: float
    cov_method: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "model_auc": self.model_auc,
            "reader_aucs": dict(self.reader_aucs),
            "mean_reader_auc": self.mean_reader_auc,
            "estimate": self.estimate,
            "se": self.se,
            "df": _num(self.df),
            "ci": list(self.ci),
            "reader_ci": list(self.reader_ci),
            "t": self.t,
            "p": self.p,
            "var_error": self.var_error,
            "cov2": self.cov2,
            "ms_r": self.ms_r,
            "cov": self.cov_method,
            "method": "1T-RRRC (Hillis 2007 sec 5.3; RJafroc StSignificanceTestingCadVsRadiologists)",
        }


def ai_vs_readers(
    truth: ArrayLike,
    reader_ratings: ArrayLike,
    model_scores: ArrayLike,
    *,
    readers: list[str] | None = None,
    cov: CovMethod = "jackknife",
    alpha: float = 0.05,
) -> AiVsReadersResult:
    """Compare a standalone model with a random panel of readers (RJafroc 1T-RRRC).

    psi_j = AUC(reader j) - AUC(model). With MS(R) the sample variance of psi_j and Cov2
    the mean covariance of psi_j, psi_j' (j != j') over cases: SE^2 = [MS(R) + r max(Cov2,
    0)] / r, df = [MS(R) + r max(Cov2, 0)]^2 / (MS(R)^2 / (r - 1)) (Hillis 2007 sec. 5.3;
    Chakraborty 2017 ch. 22; RJafroc ``DiffFomAnal2007Hillis53``, whose default covariance is
    the jackknife).

    Args:
        truth: (c,) 0/1 truth.
        reader_ratings: (r, c) human ratings.
        model_scores: (c,) model scores.
        readers: Reader names.
        cov: "jackknife" (RJafroc default) or "delong".
        alpha: 1 - confidence level.

    Returns:
        :class:`AiVsReadersResult`.
    """
    rr = np.asarray(reader_ratings, dtype=float)
    ms = np.asarray(model_scores, dtype=float)
    if rr.ndim != 2 or ms.ndim != 1 or rr.shape[1] != ms.size:
        raise ValueError("reader_ratings must be (readers, cases) and model_scores (cases,)")
    r = rr.shape[0]
    if r < 2:
        raise ValueError("a reader panel needs at least 2 readers")
    names = readers or [str(j + 1) for j in range(r)]
    aucs, c = auc_covariance(truth, np.vstack([ms[None, :], rr])[None, :, :], cov)
    a = aucs[0]
    # covariance of differences D_j = A_j - A_0 :  C_jk - C_j0 - C_0k + C_00
    cd = c[1:, 1:] - c[1:, :1] - c[:1, 1:] + c[0, 0]
    psi = a[1:] - a[0]
    est = float(psi.mean())
    ms_r = float(psi.var(ddof=1))
    cov2 = float(cd[~np.eye(r, dtype=bool)].mean())
    var_e = float(np.mean(np.diag(cd)))
    den = ms_r + r * max(cov2, 0.0)
    se = float(np.sqrt(den / r))
    df = den**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else float("inf")
    tstat = _safe_div(est, se)
    ci = _ci(est, se, df, alpha, clip=False)
    return AiVsReadersResult(
        model_auc=float(a[0]),
        reader_aucs={n: float(v) for n, v in zip(names, a[1:], strict=True)},
        mean_reader_auc=float(a[1:].mean()),
        estimate=est,
        se=se,
        df=float(df),
        ci=ci,
        reader_ci=(ci[0] + float(a[0]), ci[1] + float(a[0])),
        t=tstat,
        p=_p_two_sided(tstat, df),
        var_error=var_e,
        cov2=cov2,
        ms_r=ms_r,
        cov_method=cov,
    )
