"""Split-plot reader studies: readers in groups, each group reads its own block of cases.

Obuchowski, Gallas & Hillis (2012), "Multi-reader ROC studies with split-plot designs: a
comparison of statistical methods", Acad Radiol 19:1508-1517; Hillis (2014), "A marginal-mean
ANOVA approach for analyzing multireader multicase radiological imaging data", Stat Med
33:330-360 (split-plot section); RJafroc ``ORAnalysisSplitPlotC``. Every reader reads the
cases of their group's block in every treatment; blocks do not overlap. FOMs of readers in
different groups are computed on independent cases, so their error covariance is zero; the
within-group covariances are estimated on the group's block (DeLong or jackknife on that
block, so each reader's Var and Cov1 refer to the cases that reader actually read, as in
RJafroc's split-plot-C jackknife). Cov2 and Cov3 are then the averages over *all* pairs of
different readers, zeros across groups included, which is what the expectations of the OR
mean squares contain; the usual OR/Hillis test follows. With one reader per group Cov2 =
Cov3 = 0 and the RRRC test is MS(T) / MS(T:R) on (t - 1, (t - 1)(r - 1)) df, RJafroc's
split-plot-C result; with one group it is the fully crossed analysis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.stats.mrmc import CovMethod, Design, MrmcResult, auc_covariance, or_analysis

__all__ = ["split_plot_blocks", "split_plot_covariance", "split_plot_mrmc"]


def split_plot_blocks(ratings: ArrayLike, groups: list[str]) -> dict[str, NDArray[np.int64]]:
    """Case indices of each reader group's block, checked for a valid split-plot layout.

    Args:
        ratings: (t, r, c) ratings, NaN where a reader did not read a case.
        groups: (r,) group label of each reader.

    Returns:
        group -> indices of the cases that group read.

    Raises:
        ValueError: A reader missed a case of their block, a case is read by two groups or none.
    """
    s = np.asarray(ratings, dtype=float)
    t, r, c = s.shape
    if len(groups) != r:
        raise ValueError(f"{len(groups)} group labels for {r} readers")
    read = ~np.isnan(s)
    owner = np.full(c, -1)
    labels = list(dict.fromkeys(groups))
    blocks: dict[str, NDArray[np.int64]] = {}
    for gi, g in enumerate(labels):
        members = [j for j in range(r) if groups[j] == g]
        sub = read[:, members, :]
        cases = np.nonzero(sub.any(axis=(0, 1)))[0]
        incomplete = cases[~sub[:, :, cases].all(axis=(0, 1))]
        if incomplete.size:
            raise ValueError(f"group {g!r}: case index {int(incomplete[0])} is not read by every reader of the group "
                             "in every treatment")
        clash = cases[owner[cases] >= 0]
        if clash.size:
            raise ValueError(f"case index {int(clash[0])} is read by groups {labels[owner[clash[0]]]!r} and {g!r}; "
                             "split-plot blocks must not overlap")
        owner[cases] = gi
        blocks[g] = cases.astype(np.int64)
    if (owner < 0).any():
        raise ValueError(f"case index {int(np.nonzero(owner < 0)[0][0])} is read by no group")
    return blocks


def split_plot_covariance(
    truth: ArrayLike, ratings: ArrayLike, groups: list[str], cov: CovMethod = "jackknife"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUCs and their block-diagonal (t r, t r) error covariance for a split-plot study.

    Returns:
        ``(aucs, cov)``: (t, r) AUCs on each reader's block and the covariance (zero across groups).
    """
    s = np.asarray(ratings, dtype=float)
    tr = np.asarray(truth)
    t, r, _ = s.shape
    aucs = np.zeros((t, r))
    c = np.zeros((t * r, t * r))
    for g, cases in split_plot_blocks(s, groups).items():
        members = np.array([j for j in range(r) if groups[j] == g])
        a_g, c_g = auc_covariance(tr[cases], s[:, members][:, :, cases], cov)
        aucs[:, members] = a_g
        idx = (np.arange(t)[:, None] * r + members[None, :]).ravel()  # treatment-major, as c_g
        c[np.ix_(idx, idx)] = c_g
    return aucs, c


def split_plot_mrmc(
    truth: ArrayLike,
    ratings: ArrayLike,
    groups: list[str],
    *,
    treatments: list[str] | None = None,
    readers: list[str] | None = None,
    cov: CovMethod = "jackknife",
    design: Design = "rrrc",
    alpha: float = 0.05,
) -> MrmcResult:
    """OR analysis of a split-plot study (see the module docstring).

    Args:
        truth: (c,) 0/1 truth.
        ratings: (t, r, c) ratings with NaN where not read.
        groups: Reader group labels.
        treatments, readers: Names.
        cov: "jackknife" or "delong" within each block.
        design: "rrrc", "frrc" or "rrfc".
        alpha: 1 - confidence level.
    """
    aucs, c = split_plot_covariance(truth, ratings, groups, cov)
    return or_analysis(aucs, c, treatments=treatments, readers=readers, design=design, alpha=alpha,
                       cov_method=f"split-plot-{cov}")
