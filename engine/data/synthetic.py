"""Synthetic breast images: MRI slices, paired mammography/ultrasound lesions, full-field mammograms.

EVERYTHING IN THIS MODULE IS SYNTHETIC. The images are procedurally generated from a seed; they
contain no patient data and carry no diagnostic meaning. They exist because no public data set
covers two of the seed methods:

* the supervised-attention MRI model (JFR 2018 challenge data, "Supervised attention for breast
  MRI lesion characterisation", 2019) — the challenge images are not public;
* Habib et al. 2020 ("Fusion of mammography and ultrasound descriptors") — no public set pairs
  the mammogram and the ultrasound of the same lesion.

Design (what drives the label, so a reader can judge what a model trained on it learns):

* A lesion is a star-shaped region whose radius ``r(θ) = R·(1 + lobulation(θ) + spiculation(θ))``.
  Its *margin irregularity* (a latent in [0, 1]) scales the low-frequency lobulation and the
  high-frequency spicules. Malignant lesions draw the latent from a higher distribution than
  benign ones, and the two distributions overlap on purpose, so no feature separates the classes
  perfectly (BI-RADS: irregular / spiculated / not-circumscribed margins raise suspicion).
* Modalities see the same lesion through independent noise: mammograms have a power-law
  (1/f^β, β≈3) parenchymal texture and quantum noise; ultrasound has Rayleigh speckle, a
  hypoechoic lesion, posterior acoustic shadowing (more likely when malignant) or enhancement
  (more likely when benign) and non-parallel ("taller than wide") orientation more often when
  malignant.
* MRI: a prone axial T1 fat-suppressed post-contrast slab — breast outline, fibroglandular
  tissue, pectoral muscle/chest wall, an enhancing lesion (malignant: irregular, rim/heterogeneous
  enhancement, brighter; benign: smooth, homogeneous, sometimes dark septations), multiplicative
  bias field and Rician noise (magnitude of complex Gaussian noise).

All generators are deterministic in ``seed`` (``numpy.random.default_rng``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "MRI_TASKS",
    "lesion_radius_profile",
    "margin_irregularity",
    "star_mask",
    "synthetic_mammogram",
    "synthetic_mri_case",
    "synthetic_paired_lesion",
    "synthetic_dce_study",
    "write_dce_study_dicom",
    "enhancement_curve",
]

#: The five outputs of the MRI supervised-attention model, in the paper's order
#: (malignancy, mammary gland/normal tissue, other benign, IDC, other malignant).
MRI_TASKS: tuple[str, ...] = ("malignancy", "mammary_gland", "other_benign", "idc", "other_malignant")


# --------------------------------------------------------------------------------------------
# Shared building blocks
# --------------------------------------------------------------------------------------------


def _draw_irregularity(rng: np.random.Generator, malignant: bool) -> float:
    """Draw the latent margin irregularity in [0, 1].

    Benign ~ Beta(2, 5) (mean 0.29), malignant ~ Beta(5, 2.5) (mean 0.67): they overlap, so the
    Bayes AUC of the latent alone is about 0.9, not 1.

    Args:
        rng: Random generator.
        malignant: Class of the lesion.

    Returns:
        The irregularity latent.
    """
    return float(rng.beta(5.0, 2.5) if malignant else rng.beta(2.0, 5.0))


def lesion_radius_profile(
    rng: np.random.Generator, irregularity: float, n_angles: int = 360
) -> np.ndarray:
    """Relative radius r(θ)/R of a star-shaped lesion on ``n_angles`` equally spaced angles.

    Lobulation: 2-5 low harmonics with amplitude ∝ irregularity. Spiculation: narrow spikes whose
    number and length grow with irregularity (only above 0.45, as spiculation is a malignant sign).

    Args:
        rng: Random generator.
        irregularity: Latent in [0, 1].
        n_angles: Angular resolution.

    Returns:
        Array of shape (n_angles,) with values around 1 (> 0.3 everywhere).
    """
    theta = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    r = np.ones(n_angles)
    for k in range(2, 6):
        amp = 0.18 * irregularity * rng.uniform(0.3, 1.0) / (k - 1) ** 0.5
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    # Fine roughness: a microlobulated / indistinct margin.
    fine = ndimage.gaussian_filter1d(rng.normal(0, 1, n_angles), 2.0, mode="wrap")
    r += 0.06 * irregularity * fine / (fine.std() + 1e-9)
    if irregularity > 0.45:
        n_spic = int(rng.integers(3, 4 + int(10 * (irregularity - 0.45) / 0.55)))
        for _ in range(n_spic):
            c = rng.uniform(0, 2 * np.pi)
            width = rng.uniform(0.04, 0.09)
            length = rng.uniform(0.3, 1.1) * (irregularity - 0.35)
            d = np.angle(np.exp(1j * (theta - c)))
            r += length * np.exp(-0.5 * (d / width) ** 2)
    return np.clip(r, 0.3, None)


def star_mask(
    shape: tuple[int, int],
    centre: tuple[float, float],
    radius: float,
    profile: np.ndarray,
    *,
    aspect: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Rasterise a star-shaped region.

    Args:
        shape: (rows, cols) of the output.
        centre: (row, col) of the lesion centre.
        radius: Base radius R in pixels.
        profile: r(θ)/R from :func:`lesion_radius_profile`.
        aspect: Ratio of the axis along ``angle`` to the perpendicular axis (elongation).
        angle: Orientation of the long axis in radians (0 = horizontal, "parallel" to the skin).

    Returns:
        Boolean mask.
    """
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy, dx = rows - centre[0], cols - centre[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u = (dx * ca + dy * sa) / np.sqrt(aspect)
    v = (-dx * sa + dy * ca) * np.sqrt(aspect)
    rho = np.hypot(u, v)
    th = np.mod(np.arctan2(v, u), 2 * np.pi)
    n = profile.shape[0]
    pos = th / (2 * np.pi) * n
    i0 = np.floor(pos).astype(int) % n
    i1 = (i0 + 1) % n
    w = pos - np.floor(pos)
    rr = radius * ((1 - w) * profile[i0] + w * profile[i1])
    inside: np.ndarray = rho <= rr
    return inside


def margin_irregularity(mask: np.ndarray) -> float:
    """A simple margin-irregularity feature of a binary mask: 1 − solidity (area / convex area).

    Smooth oval lesions score ≈ 0; lobulated and spiculated ones score higher. Used in the tests
    to check that the generators encode malignancy in the margin (and by readers as a baseline).

    Args:
        mask: 2-D boolean lesion mask with at least 3 pixels.

    Returns:
        1 − solidity, in [0, 1).
    """
    from scipy.spatial import ConvexHull

    pts = np.argwhere(mask)
    if pts.shape[0] < 3:
        return 0.0
    # Pixel corners make the hull honest for thin spicules.
    offs = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    corners = (pts[:, None, :] + offs[None]).reshape(-1, 2)
    hull = ConvexHull(corners)
    return float(1.0 - mask.sum() / hull.volume)


def _power_law_noise(rng: np.random.Generator, shape: tuple[int, ...], beta: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian noise with power spectrum ∝ 1/f^beta.

    Mammographic parenchyma has a power-law spectrum with β ≈ 3 (Burgess et al., 2001).

    Args:
        rng: Random generator.
        shape: Output shape (2-D or 3-D).
        beta: Spectral exponent.

    Returns:
        Float array of ``shape``.
    """
    white = rng.normal(0, 1, shape)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    f = np.sqrt(sum(g**2 for g in freqs))
    f[(0,) * len(shape)] = 1.0
    spec = np.fft.fftn(white) / f ** (beta / 2)
    spec[(0,) * len(shape)] = 0
    out = np.real(np.fft.ifftn(spec))
    field: np.ndarray = (out - out.mean()) / (out.std() + 1e-12)
    return field


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a generated lesion's mask (never empty), x = column, y = row,
    end-exclusive (:func:`engine.imaging.geometry.mask_box`)."""
    from engine.imaging.geometry import mask_box

    box = mask_box(mask)
    if box is None:
        raise ValueError("a generated lesion mask is empty")
    return box


# --------------------------------------------------------------------------------------------
# Paired MG + US lesion patches (Habib et al. 2020 fusion experiments)
# --------------------------------------------------------------------------------------------


def synthetic_paired_lesion(seed: int, *, malignant: bool, size: int = 128) -> dict[str, Any]:
    """One SYNTHETIC lesion seen by mammography and by ultrasound.

    The same lesion shape (margin irregularity drives malignancy) is rendered into a 12-bit
    mammographic patch and an 8-bit B-mode ultrasound patch with independent noise, as in the
    paired-descriptor setting of Habib et al. 2020.

    Args:
        seed: Random seed (deterministic).
        malignant: Class of the lesion.
        size: Side of both square patches in pixels.

    Returns:
        dict with ``mg`` (uint16 (size, size), 12-bit), ``us`` (uint8 (size, size)),
        ``masks`` {"mg", "us"} boolean, ``box`` (x0, y0, x1, y1) of the lesion in the MG patch,
        ``boxes`` {"mg", "us"}, ``label`` (1 malignant / 0 benign), ``irregularity`` (latent),
        ``synthetic`` True.
    """
    rng = np.random.default_rng(seed)
    irr = _draw_irregularity(rng, malignant)
    profile = lesion_radius_profile(rng, irr)
    radius = size * rng.uniform(0.13, 0.22)
    centre = (size / 2 + rng.uniform(-0.06, 0.06) * size, size / 2 + rng.uniform(-0.06, 0.06) * size)

    # --- mammography: projection of dense tissue + lesion, 12-bit, brighter = denser.
    aspect_mg = rng.uniform(1.0, 1.5)
    mask_mg = star_mask((size, size), centre, radius, profile, aspect=aspect_mg, angle=rng.uniform(0, np.pi))
    tissue = _power_law_noise(rng, (size, size), 3.0)
    density = rng.uniform(0.25, 0.6)
    mg = 1500 + 700 * density + 200 * tissue
    lesion = ndimage.gaussian_filter(mask_mg.astype(float), rng.uniform(0.8, 2.0) + 1.5 * (1 - irr))
    # A mass is denser in its centre (thicker along the ray).
    dist = ndimage.distance_transform_edt(mask_mg)
    core = np.sqrt(dist / (dist.max() + 1e-9))
    contrast = rng.uniform(350, 600)
    mg += contrast * (0.6 * lesion + 0.4 * ndimage.gaussian_filter(core, 1.0))
    mg += rng.normal(0, 25, mg.shape)  # quantum + electronic noise
    mg = np.clip(mg, 0, 4095).astype(np.uint16)

    # --- ultrasound: same lesion, its own orientation/compression, speckle, posterior features.
    nonparallel = rng.random() < (0.2 + 0.5 * irr)  # "taller than wide" more often when irregular
    angle_us = np.pi / 2 + rng.normal(0, 0.2) if nonparallel else rng.normal(0, 0.2)
    aspect_us = rng.uniform(1.2, 1.8)
    mask_us = star_mask((size, size), centre, radius, profile, aspect=aspect_us, angle=angle_us)
    rows = np.arange(size, dtype=float)[:, None]
    echo = 0.55 + 0.15 * _power_law_noise(rng, (size, size), 2.0)  # tissue echogenicity
    echo *= 1.0 - 0.25 * np.exp(-rows / (0.15 * size))  # near-field
    echo = np.where(mask_us, rng.uniform(0.08, 0.2) + 0.05 * irr, echo)
    # Posterior features: shadow (attenuating, malignant-leaning) or enhancement (cyst/benign-leaning).
    p_shadow = 0.1 + 0.6 * irr
    post = np.zeros((size, size))
    lr, lc = np.nonzero(mask_us)
    c0, c1, bottom = lc.min(), lc.max(), lr.max()
    col_w = np.zeros(size)
    col_w[c0 : c1 + 1] = 1.0
    col_w = ndimage.gaussian_filter1d(col_w, 2.0)
    below = np.clip((rows - bottom) / 6.0, 0, 1)
    post = ndimage.gaussian_filter(below * col_w[None, :], 1.5)
    u = rng.random()
    if u < p_shadow:
        echo *= 1.0 - rng.uniform(0.4, 0.75) * post
    elif u < p_shadow + 0.3:
        echo *= 1.0 + rng.uniform(0.2, 0.5) * post
    echo = ndimage.gaussian_filter(echo, 0.7)
    speckle = rng.rayleigh(1.0, (size, size))
    speckle = ndimage.gaussian_filter(speckle, (0.6, 1.2))  # anisotropic PSF (lateral blur)
    us = 255 * echo * speckle / 1.25
    us = np.clip(us, 0, 255).astype(np.uint8)

    return {
        "mg": mg,
        "us": us,
        "masks": {"mg": mask_mg, "us": mask_us},
        "box": _box_of(mask_mg),
        "boxes": {"mg": _box_of(mask_mg), "us": _box_of(mask_us)},
        "label": int(malignant),
        "irregularity": irr,
        "synthetic": True,
    }


# --------------------------------------------------------------------------------------------
# Full-field mammogram
# --------------------------------------------------------------------------------------------


def synthetic_mammogram(
    seed: int,
    *,
    malignant: bool = True,
    rows: int = 512,
    cols: int = 416,
    laterality: str = "L",
    view: str = "MLO",
    lesion: bool = True,
) -> dict[str, Any]:
    """A SYNTHETIC full-field mammogram (12-bit, uint16) with one lesion, for tests and demos.

    The breast is a half-ellipse against the chest wall (left side of the image for a left breast
    in the usual hanging: nipple pointing to the image centre), with a skin line, a fatty rim, a
    power-law fibroglandular texture and, for MLO, a pectoral-muscle triangle at the top of the
    chest-wall side. The lesion comes from :func:`synthetic_paired_lesion` (same margin model).

    Args:
        seed: Random seed (deterministic).
        malignant: Class of the lesion.
        rows: Image height.
        cols: Image width.
        laterality: "L" (chest wall on the left of the image) or "R" (on the right).
        view: "CC" or "MLO" (MLO adds the pectoral muscle).
        lesion: Whether to insert a lesion.

    Returns:
        dict with ``image`` uint16 (rows, cols), ``breast_mask``, ``mask`` (lesion, bool),
        ``box`` (x0, y0, x1, y1) or None, ``label`` (1/0, or None without lesion), ``laterality``,
        ``view``, ``synthetic`` True.
    """
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
    # Breast outline: chest wall at x=0 in "L" orientation; flip at the end for "R".
    a = cols * rng.uniform(0.62, 0.8)  # depth to the nipple
    b = rows * rng.uniform(0.40, 0.47)  # half height
    cy = rows * rng.uniform(0.47, 0.55)
    ell = (cc / a) ** 2 + ((rr - cy) / b) ** 2
    breast = ell <= 1.0
    # Thickness falls towards the skin (compressed breast edge) -> less attenuation.
    thick = np.sqrt(np.clip(1.0 - ell, 0, 1))
    texture = _power_law_noise(rng, (rows, cols), 3.0)
    gland_frac = np.clip(0.35 + 0.35 * texture - 0.4 * (cc / a), 0, 1)  # glandular towards chest
    img = np.where(breast, 900 + 900 * thick + 900 * gland_frac * thick, 60.0)
    if view.upper() == "MLO":
        pect = cc < (cols * rng.uniform(0.22, 0.32)) * (1 - rr / (rows * rng.uniform(0.45, 0.6)))
        img = np.where(pect & breast, img + 700, img)
    mask = np.zeros((rows, cols), bool)
    box = None
    label = None
    if lesion:
        patch_size = 128
        les = synthetic_paired_lesion(int(rng.integers(0, 2**31)), malignant=malignant, size=patch_size)
        # Place the lesion well inside the breast.
        for _ in range(200):
            yc = int(rng.uniform(cy - 0.6 * b, cy + 0.6 * b))
            xc = int(rng.uniform(0.25 * a, 0.75 * a))
            y0, x0 = yc - patch_size // 2, xc - patch_size // 2
            if 0 <= y0 and y0 + patch_size <= rows and 0 <= x0 and x0 + patch_size <= cols:
                if breast[y0 : y0 + patch_size, x0 : x0 + patch_size].mean() > 0.98:
                    break
        m = les["masks"]["mg"]
        soft = ndimage.gaussian_filter(m.astype(float), 1.5)
        img[y0 : y0 + patch_size, x0 : x0 + patch_size] += rng.uniform(250, 400) * soft
        mask[y0 : y0 + patch_size, x0 : x0 + patch_size] = m
        box = _box_of(mask)
        label = int(malignant)
    img += rng.normal(0, 20, img.shape)
    img = np.clip(img, 0, 4095).astype(np.uint16)
    if laterality.upper() == "R":
        img, breast, mask = img[:, ::-1].copy(), breast[:, ::-1].copy(), mask[:, ::-1].copy()
        if box is not None:
            box = (cols - box[2], box[1], cols - box[0], box[3])
    return {
        "image": img,
        "breast_mask": breast,
        "mask": mask,
        "box": box,
        "label": label,
        "laterality": laterality.upper(),
        "view": view.upper(),
        "synthetic": True,
    }


# --------------------------------------------------------------------------------------------
# Breast MRI (supervised-attention model)
# --------------------------------------------------------------------------------------------


def synthetic_mri_case(
    seed: int, *, malignant: bool, n_slices: int = 24, size: int = 256
) -> dict[str, Any]:
    """A SYNTHETIC axial T1 fat-suppressed post-contrast breast MRI volume with one lesion.

    Prone axial slab of one breast: breast outline hanging towards the top of the image
    (anterior), fibroglandular tissue (intermediate signal) in suppressed fat (low signal),
    pectoral muscle and chest wall at the bottom, a contrast-enhancing lesion, a multiplicative
    bias field (coil sensitivity) and Rician noise.

    Class cues (overlapping distributions, see module docstring): malignant lesions are more
    irregular/spiculated, enhance more and heterogeneously (rim enhancement); benign lesions are
    smooth ovals with homogeneous enhancement and sometimes dark internal septations.
    Subtypes follow the challenge's grouping: malignant -> IDC (70 %) or other malignant;
    benign -> mammary gland (focal glandular enhancement; 45 %) or other benign lesion.

    Args:
        seed: Random seed (deterministic).
        malignant: Class of the lesion.
        n_slices: Number of axial slices.
        size: Rows and columns of each slice.

    Returns:
        dict with ``volume`` uint16 (n_slices, size, size), ``lesion_box``
        (slice0, slice1, x0, y0, x1, y1) end-exclusive, ``lesion_mask`` bool volume,
        ``spacing_mm`` (row, col, slice), ``labels`` {task: 0/1 for task in MRI_TASKS},
        ``subtype``, ``irregularity``, ``synthetic`` True.
    """
    rng = np.random.default_rng(seed)
    S, N = n_slices, size
    pix_mm = 180.0 / N  # ~180 mm field of view for one breast
    slice_mm = 3.0
    zz, rr, cc = np.mgrid[0:S, 0:N, 0:N].astype(np.float64)
    zc = (S - 1) / 2
    zrel = (zz - zc) / (S / 2)  # -1..1 along the slab

    # Breast: half-ellipse hanging anteriorly (top of the image), shrinking towards the slab ends.
    chest_row = N * rng.uniform(0.66, 0.74)
    depth = (chest_row - N * rng.uniform(0.08, 0.15)) * np.sqrt(np.clip(1 - 0.6 * zrel**2, 0.05, 1))
    half_w = N * rng.uniform(0.36, 0.44) * np.sqrt(np.clip(1 - 0.5 * zrel**2, 0.05, 1))
    ccx = N / 2 + rng.uniform(-0.03, 0.03) * N
    ell = ((cc - ccx) / half_w) ** 2 + ((chest_row - rr) / depth) ** 2
    breast = (ell <= 1.0) & (rr <= chest_row)
    # Chest wall: pectoral muscle band then thorax, with a gently curved front.
    curve = chest_row + 0.06 * N * ((cc - ccx) / (N / 2)) ** 2
    muscle = (rr > curve) & (rr <= curve + N * rng.uniform(0.04, 0.06))
    thorax = rr > curve + N * 0.05

    # Fibroglandular tissue: thresholded correlated 3-D noise, concentrated behind the nipple.
    tex = _power_law_noise(rng, (S, N, N), 3.2)
    tex = ndimage.gaussian_filter(tex, (1.0, 1.0, 1.0))
    tex /= tex.std() + 1e-9
    central = np.exp(-(((cc - ccx) / (0.6 * half_w)) ** 2)) * np.clip(1 - ell, 0, 1)
    gland_frac = rng.uniform(0.2, 0.5)
    glandular = breast & (tex + 1.6 * central > np.quantile(tex, 1 - gland_frac) + 0.5)

    sig = np.zeros((S, N, N))
    sig[breast] = rng.uniform(120, 180)  # suppressed fat
    sig[glandular] = rng.uniform(380, 460) * (1 + rng.uniform(0.05, 0.25) * tex[glandular].clip(-1, 2))
    # Background parenchymal enhancement is mild, patchy.
    sig[muscle] = rng.uniform(300, 360)
    sig[thorax] = 220 + 120 * np.clip(tex[thorax], -1.5, 1.5)
    # Skin: thin bright rim.
    skin = breast & ~ndimage.binary_erosion(breast, iterations=2)
    sig[skin] = 420

    # Lesion.
    irr = _draw_irregularity(rng, malignant)
    profile = lesion_radius_profile(rng, irr)
    radius = N * rng.uniform(0.04, 0.08)
    half_depth = max(1.5, radius * pix_mm / slice_mm * rng.uniform(0.6, 1.0))
    for _ in range(200):
        lr = rng.uniform(chest_row - 0.75 * depth[int(zc), 0, 0], chest_row - 0.2 * depth[int(zc), 0, 0])
        lc = ccx + rng.uniform(-0.5, 0.5) * half_w[int(zc), 0, 0]
        lz = zc + rng.uniform(-0.25, 0.25) * S
        if breast[int(lz), int(lr), int(lc)]:
            break
    aspect = rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, np.pi)
    lesion = np.zeros((S, N, N), bool)
    for z in range(S):
        t = (z - lz) / half_depth
        if abs(t) >= 1:
            continue
        lesion[z] = star_mask((N, N), (lr, lc), radius * np.sqrt(1 - t**2), profile, aspect=aspect, angle=angle)
    lesion &= breast
    if not lesion.any():  # tiny breast at the slab end: force a minimal lesion at the centre slice
        lz = int(zc)
        lesion[lz] = star_mask((N, N), (lr, lc), radius, profile) & breast[lz]

    subtype: str
    if malignant:
        subtype = "idc" if rng.random() < 0.7 else "other_malignant"
        peak = rng.uniform(900, 1500)
        dist_in = ndimage.distance_transform_edt(lesion, sampling=(slice_mm / pix_mm, 1, 1))
        rim = np.exp(-dist_in / rng.uniform(1.5, 3.5))
        heter = 0.6 + 0.4 * rim if rng.random() < 0.65 else 0.85 + 0.15 * np.clip(tex, -1, 1)
        les_sig = peak * heter
    else:
        subtype = "mammary_gland" if rng.random() < 0.45 else "other_benign"
        peak = rng.uniform(650, 1150)
        les_sig = peak * (0.92 + 0.06 * np.clip(tex, -1, 1))
        if subtype == "other_benign" and rng.random() < 0.4:
            # Dark internal septations (fibroadenoma sign).
            ang = rng.uniform(0, np.pi)
            band = np.abs(np.sin(((cc - lc) * np.cos(ang) + (rr - lr) * np.sin(ang)) / (0.35 * radius)))
            les_sig = np.where(band < 0.2, 0.55 * les_sig, les_sig)
    edge = ndimage.gaussian_filter(lesion.astype(float), (0.5, 0.8 + 1.2 * (1 - irr), 0.8 + 1.2 * (1 - irr)))
    sig = sig * (1 - edge) + les_sig * edge

    # Bias field: smooth, low-order, stronger near the coil (anterior).
    a = rng.normal(0, 0.12, 4)
    x = (cc - N / 2) / N
    y = (rr - N / 2) / N
    bias = np.exp(a[0] * x + a[1] * y + a[2] * x * y + a[3] * (x**2 - y**2) - 0.25 * y)
    sig *= bias
    # Rician noise: |signal + complex Gaussian|.
    sigma = rng.uniform(12, 25)
    sig = np.sqrt((sig + rng.normal(0, sigma, sig.shape)) ** 2 + rng.normal(0, sigma, sig.shape) ** 2)
    volume = np.clip(sig, 0, 65535).astype(np.uint16)

    zs = np.flatnonzero(lesion.any(axis=(1, 2)))
    x0, y0, x1, y1 = _box_of(np.asarray(lesion.any(axis=0)))
    labels = {t: 0 for t in MRI_TASKS}
    labels["malignancy"] = int(malignant)
    labels[subtype] = 1
    return {
        "volume": volume,
        "lesion_box": (int(zs[0]), int(zs[-1]) + 1, x0, y0, x1, y1),
        "lesion_mask": lesion,
        "spacing_mm": (pix_mm, pix_mm, slice_mm),
        "labels": labels,
        "subtype": subtype,
        "irregularity": irr,
        "synthetic": True,
    }


# --------------------------------------------------------------------------------------------
# Bilateral axial DCE breast MRI with known kinetics (engine.mri tests)
# --------------------------------------------------------------------------------------------

#: Initial-phase percent enhancement the generator gives each BI-RADS initial class, and the
#: delayed-phase signal change (percent of the initial signal) of each delayed class: well inside
#: the classes of :mod:`engine.mri.kinetics` so that noise and partial volume do not move a
#: lesion core across a boundary.
DCE_INITIAL_PCT: dict[str, float] = {"slow": 30.0, "medium": 75.0, "fast": 160.0}
DCE_DELAYED_PCT: dict[str, float] = {"persistent": 30.0, "plateau": 0.0, "washout": -25.0}


def enhancement_curve(initial: str, delayed: str, n_post: int) -> np.ndarray:
    """Relative signal ``S_k / S_pre`` of the pre phase and ``n_post`` post-contrast phases for a
    curve of BI-RADS classes ``initial`` / ``delayed``: the first post-contrast phase reaches the
    initial enhancement, the later ones move linearly to the delayed change."""
    s1 = 1.0 + DCE_INITIAL_PCT[initial] / 100.0
    last = s1 * (1.0 + DCE_DELAYED_PCT[delayed] / 100.0)
    post = [s1] if n_post == 1 else list(np.linspace(s1, last, n_post))
    return np.asarray([1.0] + post)


def synthetic_dce_study(
    seed: int,
    *,
    lesions: tuple[tuple[str, str], ...] = (("fast", "washout"), ("medium", "persistent")),
    n_post: int = 5,
    n_slices: int = 20,
    rows: int = 128,
    cols: int = 192,
    phase_interval_s: float = 90.0,
) -> dict[str, Any]:
    """A SYNTHETIC bilateral prone axial DCE breast MRI with lesions of known kinetic classes.

    Geometry (DICOM LPS, as a Siemens prone axial acquisition): rows run anterior → posterior
    (the breasts hang towards the top of the image), columns patient right → left, slices
    feet → head. Both breasts (half-ellipses of suppressed fat with power-law fibroglandular
    texture and skin), the pectoral muscle / chest wall and the thorax (with a bright heart
    that enhances fast like blood) fill the slab. Lesion ``i`` sits in the right breast for even
    ``i`` and the left for odd ``i``; its signal follows :func:`enhancement_curve` of its
    (initial, delayed) classes. Parenchyma enhances slowly and persistently (background
    parenchymal enhancement), fat barely. Rician noise is added to every phase independently.

    A T2-weighted volume of the same slab with twice the slice spacing (shifted by a quarter of
    its spacing) is returned for slice-linking tests.

    Args:
        seed: Random seed (deterministic).
        lesions: (initial class, delayed class) per lesion; classes as in
            :data:`DCE_INITIAL_PCT` / :data:`DCE_DELAYED_PCT`.
        n_post: Post-contrast phases.
        n_slices: Axial slices.
        rows: Rows per slice (anterior-posterior).
        cols: Columns per slice (right-left, both breasts).
        phase_interval_s: Seconds between phases (``times_s``).

    Returns:
        dict with ``phases`` (list of uint16 (n_slices, rows, cols): pre then posts),
        ``times_s``, ``lesions`` (list of dicts: ``mask`` bool volume, ``initial``, ``delayed``,
        ``side`` "R"/"L", ``centre`` (slice, row, col)), ``breast_mask``,
        ``spacing_mm`` (row, col, slice), ``origin`` (LPS of voxel (0,0,0)),
        ``orientation`` (row cosine + column cosine), ``t2`` (uint16 volume),
        ``t2_origin``, ``t2_slice_mm``, ``synthetic`` True.
    """
    rng = np.random.default_rng(seed)
    S, R, C = n_slices, rows, cols
    pix = 340.0 / C  # ~340 mm field of view across both breasts
    slice_mm = 1.5
    zz, rr, cc = np.mgrid[0:S, 0:R, 0:C].astype(np.float64)
    zrel = (zz - (S - 1) / 2) / (S / 2)
    chest = R * rng.uniform(0.58, 0.64) + 0.10 * R * ((cc - C / 2) / (C / 2)) ** 2
    breast = np.zeros((S, R, C), bool)
    ell_all = np.full((S, R, C), 9.0)
    for centre in (0.27, 0.73):
        cx = C * (centre + rng.uniform(-0.02, 0.02))
        half_w = C * rng.uniform(0.17, 0.2) * np.sqrt(np.clip(1 - 0.5 * zrel**2, 0.1, 1))
        depth = R * rng.uniform(0.42, 0.5) * np.sqrt(np.clip(1 - 0.6 * zrel**2, 0.1, 1))
        ell = ((cc - cx) / half_w) ** 2 + ((chest - rr) / depth) ** 2
        breast |= (ell <= 1.0) & (rr <= chest)
        ell_all = np.minimum(ell_all, ell)
    muscle = (rr > chest) & (rr <= chest + R * 0.06)
    thorax = rr > chest + R * 0.06
    heart = thorax & (((cc - C / 2) / (0.2 * C)) ** 2 + ((rr - (chest + 0.25 * R)) / (0.14 * R)) ** 2 <= 1)

    tex = ndimage.gaussian_filter(_power_law_noise(rng, (S, R, C), 3.0), 1.0)
    tex /= tex.std() + 1e-9
    glandular = breast & (tex + 1.4 * np.clip(1 - ell_all, 0, 1) > 1.2)
    skin = breast & ~ndimage.binary_erosion(breast, iterations=2)

    pre = np.zeros((S, R, C))
    rel = np.ones((S, R, C, n_post + 1))  # relative signal per phase
    pre[breast] = rng.uniform(90, 120)
    rel[breast] = 1.0 + np.r_[0.0, np.linspace(0.03, 0.06, n_post)]
    pre[glandular] = rng.uniform(260, 320) * (1 + 0.1 * tex[glandular].clip(-1, 2))
    rel[glandular] = 1.0 + np.r_[0.0, np.linspace(0.12, 0.35, n_post)]  # slow, persistent BPE
    pre[skin] = 300
    pre[muscle] = rng.uniform(240, 280)
    rel[muscle] = 1.0 + np.r_[0.0, np.linspace(0.2, 0.3, n_post)]
    pre[thorax] = 150 + 60 * np.clip(tex[thorax], -1.5, 1.5)
    pre[heart] = 220
    rel[heart] = enhancement_curve("fast", "washout", n_post)

    out_lesions: list[dict[str, Any]] = []
    for i, (ini, dly) in enumerate(lesions):
        cx = C * (0.27 if i % 2 == 0 else 0.73) + rng.uniform(-0.05, 0.05) * C
        lr = float(np.min(chest[0])) - R * rng.uniform(0.12, 0.2) - R * 0.06 * (i // 2)
        lz = (S - 1) / 2 + rng.uniform(-0.15, 0.15) * S
        radius = rng.uniform(6.0, 9.0) / pix * 1.0  # 6–9 mm
        half_depth = max(2.0, radius * pix / slice_mm * 0.8)
        dist = np.sqrt(((cc - cx) / radius) ** 2 + ((rr - lr) / radius) ** 2 + ((zz - lz) / half_depth) ** 2)
        mask = (dist <= 1.0) & breast
        pre[mask] = rng.uniform(260, 320)
        rel[mask] = enhancement_curve(ini, dly, n_post)
        out_lesions.append({"mask": mask, "initial": ini, "delayed": dly, "side": "R" if i % 2 == 0 else "L",
                            "centre": (float(lz), float(lr), float(cx))})

    sigma = 6.0
    phases = []
    for k in range(n_post + 1):
        sig = ndimage.gaussian_filter(pre * rel[..., k], (0.3, 0.6, 0.6))
        noisy = np.sqrt((sig + rng.normal(0, sigma, sig.shape)) ** 2 + rng.normal(0, sigma, sig.shape) ** 2)
        phases.append(np.clip(noisy, 0, 4095).astype(np.uint16))

    # T2: fluid-bright lesions, fat intermediate, muscle dark; half the slices (2x spacing).
    t2_sig = np.where(breast, 180.0, 0.0) + np.where(glandular, -60.0, 0.0) + np.where(muscle, 70.0, 0.0)
    t2_sig += np.where(thorax, 90.0, 0.0)
    for les in out_lesions:
        t2_sig[les["mask"]] = 420.0
    t2_z = np.arange(0.5, S - 1, 2.0)  # slice positions in DCE slice units: shifted, 2x spacing
    t2 = ndimage.map_coordinates(t2_sig, np.stack(np.meshgrid(t2_z, np.arange(R), np.arange(C), indexing="ij")),
                                 order=1)
    t2 = np.sqrt((t2 + rng.normal(0, 5, t2.shape)) ** 2 + rng.normal(0, 5, t2.shape) ** 2)
    origin = (-(C - 1) / 2 * pix, -60.0, -(S - 1) / 2 * slice_mm)
    return {
        "phases": phases,
        "times_s": [k * phase_interval_s for k in range(n_post + 1)],
        "lesions": out_lesions,
        "breast_mask": breast,
        "spacing_mm": (pix, pix, slice_mm),
        "origin": origin,
        "orientation": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        "t2": np.clip(t2, 0, 4095).astype(np.uint16),
        "t2_origin": (origin[0], origin[1], origin[2] + 0.5 * slice_mm),
        "t2_slice_mm": 2 * slice_mm,
        "synthetic": True,
    }


def write_dce_study_dicom(study: dict[str, Any], folder: Any, *, subtractions: bool = True,
                          times: bool = False, patient_id: str = "SYNTHETIC-DCE") -> dict[str, Any]:
    """Write a :func:`synthetic_dce_study` as the DICOM a Siemens scanner would send (SYNTHETIC).

    One series per DCE phase (TemporalPositionIdentifier / AcquisitionNumber = phase + 1,
    series description ``t1_fl3d_tra_dynaVIEWS_spair_1+5``), optional scanner subtractions
    (ImageType ``...\\SUB``, ``max(post − pre + 100, 0)``), the T2 series (``t2_tse_tra``), and
    one DWI series holding b = 50 and 800 (``DiffusionBValue``) plus its ADC. Files are written
    in shuffled order with uninformative names, so the series model must sort them itself.

    Args:
        study: Output of :func:`synthetic_dce_study`.
        folder: Output folder.
        subtractions: Write the scanner subtractions.
        times: Write TriggerTime (ms) per phase from ``study["times_s"]``.
        patient_id: PatientID written.

    Returns:
        {"series": {name: SeriesInstanceUID}, "files": number of files}.
    """
    import pydicom.uid

    from engine.io.writer import write_dicom

    out = __import__("pathlib").Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pix, _, slice_mm = study["spacing_mm"]
    orient = study["orientation"]
    study_uid, frame_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    jobs: list[tuple[str, np.ndarray, tuple[float, float, float], float, dict[str, Any], int]] = []
    ox, oy, oz = study["origin"]
    for k, vol in enumerate(study["phases"]):
        tags: dict[str, Any] = {"TemporalPositionIdentifier": k + 1, "NumberOfTemporalPositions": len(study["phases"]),
                                "AcquisitionNumber": k + 1, "ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM"],
                                "RepetitionTime": 4.3, "EchoTime": 1.7, "ScanningSequence": "GR"}
        if times:
            tags["TriggerTime"] = float(study["times_s"][k]) * 1000.0
        jobs.append(("t1_fl3d_tra_dynaVIEWS_spair_1+5", vol, (ox, oy, oz), slice_mm, tags, 10 + 2 * k))
        if subtractions and k > 0:
            sub = np.maximum(vol.astype(np.int32) - study["phases"][0].astype(np.int32) + 100, 0).astype(np.uint16)
            st = dict(tags, ImageType=["DERIVED", "SECONDARY", "M", "NORM", "SUB"])
            jobs.append(("t1_fl3d_tra_dynaVIEWS_spair_1+5_SUB", sub, (ox, oy, oz), slice_mm, st, 11 + 2 * k))
    tx, ty, tz = study["t2_origin"]
    t2_tags = {"RepetitionTime": 5800.0, "EchoTime": 101.0, "ScanningSequence": "SE", "ImageType": ["ORIGINAL", "PRIMARY"]}
    jobs.append(("t2_tse_tra", study["t2"], (tx, ty, tz), study["t2_slice_mm"], t2_tags, 3))
    base = study["t2"].astype(np.float64)
    for b in (50.0, 800.0):
        dwi = (base * np.exp(-b * 0.0012)).clip(0, 4095).astype(np.uint16)
        jobs.append(("ep2d_diff_tra", dwi, (tx, ty, tz), study["t2_slice_mm"],
                     {"DiffusionBValue": b, "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"],
                      "ScanningSequence": "EP", "SequenceName": f"*ep_b{b:g}t"}, 6))
    adc = np.full(study["t2"].shape, 1200, np.uint16)
    jobs.append(("ep2d_diff_tra_ADC", adc, (tx, ty, tz), study["t2_slice_mm"],
                 {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"], "ScanningSequence": "EP"}, 7))
    uids: dict[str, str] = {}
    files: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for desc, vol, (x0, y0, z0), dz, tags, number in jobs:
        is_dwi = desc == "ep2d_diff_tra"  # every b-value in one series, as Siemens sends it
        uid = uids.setdefault("dwi" if is_dwi else f"{desc}#{tags.get('TemporalPositionIdentifier', '')}",
                              pydicom.uid.generate_uid())
        for z in range(vol.shape[0]):
            inst = z + 1 + (int(tags.get("DiffusionBValue", 0)) if is_dwi else 0)
            files.append((desc, vol[z], dict(
                tags, _series=uid, _number=number, _pos=(x0, y0, z0 + z * dz), _thick=dz, _inst=inst)))
    n = 0
    for j in rng.permutation(len(files)):
        desc, img, t = files[int(j)]
        t = dict(t)
        uid, number, pos, thick, inst = (t.pop("_series"), t.pop("_number"), t.pop("_pos"), t.pop("_thick"),
                                         t.pop("_inst"))
        write_dicom(out / f"IMG{n:05d}.dcm", img, modality="MR", pixel_spacing=(pix, pix), patient_id=patient_id,
                    frame_of_reference_uid=frame_uid,
                    instance_number=inst, series_number=number, image_position=pos, image_orientation=orient,
                    slice_thickness=thick, series_uid=uid, study_uid=study_uid, description=desc,
                    study_description="SYNTHETIC breast DCE-MRI", extra_tags=t)
        n += 1
    return {"series": uids, "files": n}
