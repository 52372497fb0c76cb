"""Classification metrics (pure functions) and evaluation reports.

See :mod:`engine.metrics.classification` for the conventions (truth 0/1, ``score >= threshold``
is a positive call, confusion ``[[TN, FP], [FN, TP]]``).
"""

from engine.metrics.classification import (
    accuracy,
    auc,
    best_threshold,
    confusion_matrix,
    fbeta,
    mean_ci,
    mri_weighted_score,
    per_task_auc,
    precision,
    roc_points,
    sensitivity,
    specificity,
)
from engine.metrics.report import auc_with_ci, evaluation_report, plot_roc

__all__ = [
    "accuracy",
    "auc",
    "auc_with_ci",
    "best_threshold",
    "confusion_matrix",
    "evaluation_report",
    "fbeta",
    "mean_ci",
    "mri_weighted_score",
    "per_task_auc",
    "plot_roc",
    "precision",
    "roc_points",
    "sensitivity",
    "specificity",
]
