"""Study sizing for MRMC reader studies: Hillis-Obuchowski power from pilot OR variance components.

Hillis, Obuchowski & Berbaum (2011), "Power estimation for multireader ROC methods: an updated
and unified approach", Acad Radiol 18:129-142, with the OR form of Hillis & Schartz (2018),
"Multireader sample size program for diagnostic studies: demonstration and methodology",
J Med Imaging 5:045503. The pilot's OR components (Var, Cov1, Cov2, Cov3 estimated on K*
pilot cases, and var_TR) are scaled to the planned K cases by K*/K (the error (co)variances
of an FOM are inversely proportional to the number of cases) and J readers:

* RRRC: den = max(var_TR, 0) + K*/K (Var - Cov1 + (J - 1) max(Cov2 - Cov3, 0));
  ddf = den^2 / [(max(var_TR, 0) + K*/K (Var - Cov1 - max(Cov2 - Cov3, 0)))^2 / (J - 1)];
  F on (1, ddf) with non-centrality lambda = J d^2 / (2 den);
* FRRC: den = K*/K (Var - Cov1 + (J - 1) max(Cov2 - Cov3, 0)); chi-square on 1 df, same lambda;
* RRFC: den = max(var_TR, 0) + K*/K (Var - Cov1 - max(Cov2 - Cov3, 0)); F on (1, J - 1).

Power = P(noncentral F(1, ddf; lambda) > F_{1-alpha}(1, ddf)) (or the chi-square analogue).
This reproduces RJafroc's ``SsPowerGivenJK(dataset02, FOM = "Wilcoxon", method = "OR")``
documented test values on the VanDyke data (tests/engine/test_power.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scipy import stats as sps

from engine.stats.mrmc import OrComponents

__all__ = ["PilotComponents", "PowerResult", "cases_for_power", "or_power", "pilot_components"]

Design = Literal["rrrc", "frrc", "rrfc"]


@dataclass(frozen=True)
class PilotComponents:
    """OR variance components of a pilot study (treatment comparison of interest).

    Attributes:
        var_tr: Treatment-by-reader variance, MS(T:R) - Var + Cov1 + max(Cov2 - Cov3, 0).
        var_error: Var (mean error variance of one reader-treatment FOM).
        cov1, cov2, cov3: OR error covariances.
        cases: K*, the number of pilot cases the (co)variances were estimated on.
        effect: The pilot's observed difference of the first two treatments' mean FOMs.
    """

    var_tr: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    cases: int
    effect: float


def pilot_components(comp: OrComponents, cases: int, effect: float = float("nan")) -> PilotComponents:
    """Pilot components from an OR analysis (var_TR with the max(Cov2 - Cov3, 0) constraint, as RJafroc)."""
    var_tr = comp.ms_tr - comp.var_error + comp.cov1 + max(comp.cov2 - comp.cov3, 0.0)
    return PilotComponents(var_tr, comp.var_error, comp.cov1, comp.cov2, comp.cov3, int(cases), float(effect))


@dataclass(frozen=True)
class PowerResult:
    """Power of a planned two-treatment study.

    Attributes:
        design: "rrrc", "frrc" or "rrfc".
        readers: J.
        cases: K.
        effect_size: d (difference of mean FOMs).
        power: Probability of rejecting H0 at level alpha.
        ncp: Non-centrality lambda.
        df2: Denominator df (``inf`` for the FRRC chi-square).
        alpha: Test size.
    """

    design: str
    readers: int
    cases: int
    effect_size: float
    power: float
    ncp: float
    df2: float
    alpha: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (infinite df as None)."""
        return {"design": self.design, "readers": self.readers, "cases": self.cases,
                "effect_size": self.effect_size, "power": self.power, "ncp": self.ncp,
                "df2": self.df2 if self.df2 != float("inf") else None, "alpha": self.alpha}


def or_power(
    pilot: PilotComponents, readers: int, cases: int, effect_size: float, design: Design = "rrrc",
    alpha: float = 0.05,
) -> PowerResult:
    """Hillis-Obuchowski-Berbaum (2011) power for J readers and K cases (see the module docstring).

    Args:
        pilot: Pilot components.
        readers: J (>= 2 for random readers).
        cases: K (>= 2).
        effect_size: d.
        design: "rrrc", "frrc" or "rrfc".
        alpha: Test size.

    Returns:
        :class:`PowerResult`.
    """
    j, k = int(readers), int(cases)
    if k < 2 or j < 1 or (design != "frrc" and j < 2):
        raise ValueError(f"need K >= 2 cases and J >= 2 readers (J >= 1 for fixed readers); got J={j}, K={k}")
    s = pilot.cases / k
    vtr = max(pilot.var_tr, 0.0)
    dc = max(pilot.cov2 - pilot.cov3, 0.0)
    if design == "rrrc":
        den = vtr + s * (pilot.var_error - pilot.cov1 + (j - 1) * dc)
        df2 = den**2 / ((vtr + s * (pilot.var_error - pilot.cov1 - dc)) ** 2 / (j - 1))
    elif design == "frrc":
        den = s * (pilot.var_error - pilot.cov1 + (j - 1) * dc)
        df2 = float("inf")
    elif design == "rrfc":
        den = vtr + s * (pilot.var_error - pilot.cov1 - dc)
        df2 = float(j - 1)
    else:
        raise ValueError(f"unknown design {design!r} (use rrrc, frrc or rrfc)")
    if den <= 0:
        raise ValueError("the pilot's variance components give a non-positive variance; the pilot is too small")
    ncp = effect_size**2 * j / (2.0 * den)
    # (scipy's noncentral distributions are wrong at ncp = 0: use the central ones there)
    if df2 == float("inf"):
        crit = float(sps.chi2.ppf(1 - alpha, 1))
        power = float(sps.ncx2.sf(crit, 1, ncp)) if ncp > 0 else alpha
    else:
        crit = float(sps.f.ppf(1 - alpha, 1, df2))
        power = float(sps.ncf.sf(crit, 1, df2, ncp)) if ncp > 0 else alpha
    return PowerResult(design, j, k, float(effect_size), power, float(ncp), float(df2), alpha)


def cases_for_power(
    pilot: PilotComponents, readers: int, effect_size: float, target: float = 0.8, design: Design = "rrrc",
    alpha: float = 0.05, max_cases: int = 100_000,
) -> PowerResult:
    """Smallest K with power >= target for J readers (as RJafroc ``SsSampleSizeKGivenJ``).

    Power increases with K; the answer is found by doubling then bisection (O(log K) power
    evaluations). For random readers power is bounded by the reader variance as K grows.

    Raises:
        ValueError: The target is unreachable with these readers (even with ``max_cases``).
    """
    if not 0 < target < 1:
        raise ValueError("target power must be between 0 and 1")

    def pw(k: int) -> float:
        return or_power(pilot, readers, k, effect_size, design, alpha).power

    if pw(max_cases) < target:
        raise ValueError(f"power {target} is not reachable with {readers} readers (power with {max_cases} cases is "
                         f"{pw(max_cases):.3f}); add readers or plan a larger effect")
    lo, hi = 2, 2
    while pw(hi) < target:
        lo, hi = hi, min(hi * 2, max_cases)
    while lo < hi:
        mid = (lo + hi) // 2
        if pw(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return or_power(pilot, readers, hi, effect_size, design, alpha)
