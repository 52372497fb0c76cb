"""Breast MRI reading: series model, geometry, subtraction/MIP, kinetics (no Qt).

- :mod:`engine.mri.series` groups a study's MR images into series and volumes, classifies them
  from their DICOM tags (DCE phase n, subtraction, MIP, T1, T2, DWI b-value, ADC, parametric map),
  sorts slices by geometry and links the phases of one dynamic acquisition.
- :mod:`engine.mri.geometry` maps slices between volumes through patient coordinates
  (ImagePositionPatient / ImageOrientationPatient) and names the image edges (R/L, A/P, H/F).
- :mod:`engine.mri.subtraction` computes post − pre subtractions and MIPs.
- :mod:`engine.mri.kinetics` time–intensity curves and their BI-RADS MRI lexicon classes, and the
  per-voxel colour kinetic map.
- :mod:`engine.mri.hanging` the default MRI hanging protocol.
"""

from engine.mri.geometry import VolumeGeometry, edge_labels, link_slice, plane_of
from engine.mri.kinetics import (
    KineticCurve,
    classify_curve,
    kinetic_map,
    time_intensity_curve,
)
from engine.mri.series import MrStudy, MrVolume, SeriesKind, load_study, scan_study
from engine.mri.subtraction import mip, subtract

__all__ = [
    "KineticCurve",
    "MrStudy",
    "MrVolume",
    "SeriesKind",
    "VolumeGeometry",
    "classify_curve",
    "edge_labels",
    "kinetic_map",
    "link_slice",
    "load_study",
    "mip",
    "plane_of",
    "scan_study",
    "subtract",
    "time_intensity_curve",
]
