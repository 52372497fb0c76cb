"""Data sets for the model lab: real (BUSI, mini-MIAS) loaders and SYNTHETIC generators.

Modules:
    synthetic: deterministic synthetic MRI volumes, paired MG+US lesions, full-field mammograms.
    busi: BUSI breast-ultrasound loader (Al-Dhabyani et al. 2020).
    mias: mini-MIAS mammogram loader and An et al. 2019 multi-scale patch sampling.
"""
