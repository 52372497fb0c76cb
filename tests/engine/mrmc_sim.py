"""SYNTHETIC Roe-Metz-style ROC reader studies for the validation simulations (tests only).

Roe & Metz (1997), Acad Radiol 4:298-303: rating = mu * truth + reader, case, reader x case,
treatment x case and pure error effects (all normal). No treatment effect: a null study.
"""

from __future__ import annotations

import numpy as np


def roe_metz(rng: np.random.Generator, treatments: int = 2, readers: int = 4, pos: int = 40, neg: int = 40,
             mu: float = 1.5, sd_case: float = 0.6, sd_rc: float = 0.4, sd_tc: float = 0.3,
             sd_reader_mu: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(truth (c,), ratings (t, r, c)) of a null MRMC ROC study."""
    c = pos + neg
    truth = np.r_[np.ones(pos, int), np.zeros(neg, int)]
    mu_j = mu + rng.normal(0, sd_reader_mu, readers)
    case = rng.normal(0, sd_case, c)
    rc = rng.normal(0, sd_rc, (readers, c))
    tc = rng.normal(0, sd_tc, (treatments, c))
    e = rng.normal(0, 1.0, (treatments, readers, c))
    ratings = truth[None, None, :] * mu_j[None, :, None] + case + rc[None] + tc[:, None, :] + e
    return truth, ratings


def clustered_units(rng: np.random.Generator, patients: int = 60, max_units: int = 4, mu: float = 1.2,
                    sd_patient: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster, truth, score) of one reader on units clustered in patients (shared patient effect).

    Half the patients are diseased; their units are positive with probability 0.8 (0.1 otherwise),
    so positive units cluster within patients as lesions do.
    """
    n = rng.integers(1, max_units + 1, patients)
    cl = np.repeat(np.arange(patients), n)
    sick = rng.random(patients) < 0.5
    truth = (rng.random(cl.size) < np.where(sick[cl], 0.8, 0.1)).astype(int)
    truth[:2], truth[2:4] = 1, 0
    score = mu * truth + rng.normal(0, sd_patient, patients)[cl] + rng.normal(0, 1, cl.size)
    return cl, truth, score
