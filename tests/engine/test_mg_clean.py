"""Film-label / marker / border cleaning of digitised mammograms, on real mini-MIAS films.

The films named here were looked at (thumbnails before/after): mdb004, mdb042, mdb063, mdb095
carry a lead-letter label ("R ML" / "L ML") and digits to the side of the breast; mdb009,
mdb068, mdb148 a bright film-edge strip along a vertical border. mini-MIAS: research use only
(Suckling et al. 1994).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.imaging.breast import breast_mask, clean_film, film_artefacts

MIAS_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "mias-dev"
pytestmark = pytest.mark.skipif(not MIAS_DEV.is_dir(), reason="mias-dev not available")

LABELLED = ("mdb004", "mdb042", "mdb063", "mdb095")
EDGE_STRIP = {"mdb009": "left", "mdb068": "right", "mdb148": "right"}


def _read(ref: str) -> np.ndarray:
    import cv2

    a = cv2.imread(str(MIAS_DEV / "images" / f"{ref}.png"), cv2.IMREAD_UNCHANGED)
    assert a is not None
    return np.asarray(a)


def _bg(a: np.ndarray) -> float:
    flat = np.sort(a.ravel().astype(np.float32))
    return float(np.median(flat[: flat.size // 10]))


@pytest.mark.parametrize("ref", LABELLED)
def test_film_label_is_masked_and_breast_untouched(ref: str) -> None:
    import cv2

    a = _read(ref)
    keep, art = film_artefacts(a)
    c = clean_film(a)
    # the label: the largest artefact, a bright compact blob (>= 1500 px at 1024^2)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(art.astype(np.uint8), connectivity=8)
    assert n > 1, f"{ref}: no artefact found"
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    w, h = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
    region = lab == k
    assert int(region.sum()) >= 1500 and max(w, h) < 200  # label-sized, compact
    assert float(a[region].mean()) > _bg(a) + 60  # it was bright on the film
    assert np.all(c[region] == c[region][0]) and abs(float(c[region][0]) - _bg(a)) <= 1  # now background
    assert not keep[region].any()
    # the breast itself is not altered
    b = breast_mask(a)
    assert np.array_equal(c[b], a[b])
    assert c.dtype == a.dtype and c.shape == a.shape


@pytest.mark.parametrize("ref,side", sorted(EDGE_STRIP.items()))
def test_film_edge_strip_is_masked(ref: str, side: str) -> None:
    """The film's edge (a bright straight strip beside the breast; mini-MIAS pads each film, so it
    lies anywhere in the frame) is gone; the breast's own columns stay bright."""
    a = _read(ref)
    keep, _ = film_artefacts(a)
    c = clean_film(a)
    f_before = (a > _bg(a) + 40).mean(axis=0)
    f_after = (c > _bg(a) + 40).mean(axis=0)
    removed = np.flatnonzero((f_before > 0.4) & (f_after < 0.05)).tolist()  # bright columns now empty
    after = np.flatnonzero(f_after > 0.4)
    assert len(removed) >= 3, f"{ref}: no film-edge strip removed"
    kept_cols = np.flatnonzero(keep.any(axis=0))
    if side == "left":
        assert max(removed) < kept_cols.min()
    else:
        assert min(removed) > kept_cols.max()
    assert after.size > 100  # the breast is still there


def test_no_lesion_is_touched_by_cleaning() -> None:
    """Every located mini-MIAS abnormality (72): its circle's box is bit-identical after cleaning."""
    from engine.data.mias import load_mias

    n = 0
    for im in load_mias(MIAS_DEV):
        circles = [ab for ab in im.abnormalities if ab.centre is not None]
        if not circles:
            continue
        a = _read(im.refnum)
        c = clean_film(a)
        for ab in circles:
            assert ab.centre is not None
            r, col, rad = int(ab.centre[0]), int(ab.centre[1]), int(ab.radius or 1)
            sl = (slice(max(0, r - rad), r + rad), slice(max(0, col - rad), col + rad))
            assert np.array_equal(c[sl], a[sl]), f"{im.refnum}: cleaning altered the abnormality at {ab.centre}"
            n += 1
    assert n == 72


def test_clean_preprocess_changes_a_labelled_film_only_outside_the_breast() -> None:
    """``preprocess.clean = "film"`` in the one transform: the whole-image input loses the label."""
    from engine.io.reader import read_image
    from engine.transforms import EvalTransform, Preprocess

    img = read_image(str(MIAS_DEV / "images" / "mdb042.png"), modality_hint="MG")
    base = Preprocess(size=(256, 256), in_chans=1, mean=(0.5,), std=(0.5,), crop="whole", box="ignored")
    raw = EvalTransform(base, default_modality="MG")(img, modality="MG").tensor
    clean = EvalTransform(base.with_(clean="film"), default_modality="MG")(img, modality="MG").tensor
    diff = (raw - clean).abs()[0]
    assert float(diff.max()) > 0.5  # the label was bright, now background
    assert float((diff > 0.05).float().mean()) < 0.05  # a small part of the image changes
    assert Preprocess.from_json(base.with_(clean="film").to_json()).clean == "film"
    with pytest.raises(ValueError, match="clean"):
        Preprocess(clean="inpaint")  # type: ignore[arg-type]


def test_clean_film_on_flat_and_synthetic_inputs() -> None:
    flat = np.zeros((64, 64), np.uint16)
    assert np.array_equal(clean_film(flat), flat)
    # a synthetic breast-like blob plus a bright square "label" far from it
    a = np.zeros((256, 256), np.uint8)
    yy, xx = np.mgrid[:256, :256]
    a[(yy - 128) ** 2 + (xx) ** 2 < 110**2] = 150
    a[20:50, 200:230] = 250
    c = clean_film(a)
    assert c[35, 215] == 0 and c[128, 50] == 150
