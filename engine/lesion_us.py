"""Lesion-centred ultrasound scoring: clean input, find the lesion, score its region, calibrate, OOD.

Used for weights whose ``spec.extra["pipeline"]`` is ``"us_lesion"`` (architecture
``lite0_lesion_attention``, :mod:`engine.models.us_lesion`). For one B-mode image:

1. :func:`engine.imaging.ultrasound.clean_ultrasound` keeps the scan area and inpaints calipers,
   markers and text;
2. without a reader's box the **finder** runs on the whole cleaned area (resized to
   ``WHOLE_SIZE`` square) and proposes the lesion: the largest connected region of the lesion
   probability map above 0.5 (else above half its maximum), as a box and an outline;
3. the lesion box (reader's, else the finder's) plus a context margin
   (``spec.extra["box_margin"]``) is cropped and resized to ``CROP_SIZE`` square and scored by
   the lesion-attention classifier, averaged with its mirror image; when the spec names a
   whole-image ``context_model`` its logit is averaged in (``context_weight``);
4. the Mahalanobis distance of the whole cleaned image's encoder features (blocks 4/10/15
   averages) from the training images is the OOD measure;
5. the probability is calibrated by the Platt parameters fitted out of fold
   (``spec.extra["platt"]`` for a reader's box, ``spec.extra["platt_finder"]`` for the finder's);
   the OOD distance is returned with the warning threshold (``spec.extra["ood_threshold"]``).

Scores are research decision support, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.imaging.ultrasound import clean_ultrasound
from engine.io.types import LoadedImage
from engine.results import LesionAssessment, SaliencyMap
from engine.saliency.base import normalise

WHOLE_SIZE = 160
CROP_SIZE = 128
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0

Box = tuple[float, float, float, float]


def to_tensor(gray_u8: np.ndarray, size: int) -> torch.Tensor:
    """Grey uint8 image → ``(1, size, size)`` normalised tensor (bilinear, antialiased, squashed)."""
    t = torch.from_numpy(np.ascontiguousarray(gray_u8, dtype=np.float32) / 255.0)[None, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return (t - LITE_MEAN) / LITE_STD


def whole_tensor(gray_u8: np.ndarray) -> torch.Tensor:
    """The finder's input: the whole cleaned scan area at ``WHOLE_SIZE`` square."""
    return to_tensor(gray_u8, WHOLE_SIZE)


def crop_box(box: Box, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` of its size per side (at least 24 px), clipped to ``shape``."""
    from engine.imaging.geometry import expand_box

    return expand_box(box, shape, margin, min_side=24)


def box_from_prob(prob: np.ndarray, threshold: float = 0.5) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Lesion box ``(x0, y0, x1, y1)`` (exclusive) and region mask from a probability map.

    The connected region above ``threshold`` with the largest probability mass; when nothing
    exceeds it, the region above half the map's maximum (the finder's best guess).
    """
    p = np.asarray(prob, np.float32)
    m = p > threshold
    if not m.any():
        m = p >= 0.5 * float(p.max()) if float(p.max()) > 0 else np.ones_like(p, bool)
    n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    if n > 2:
        mass = np.bincount(lab.ravel(), weights=p.ravel(), minlength=n)
        mass[0] = -1
        m = lab == int(np.argmax(mass))
    ys, xs = np.nonzero(m)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), m


def candidate_boxes(prob: np.ndarray, threshold: float = 0.5, keep: float = 0.25,
                    most: int = 3) -> list[tuple[tuple[int, int, int, int], float]]:
    """The finder's candidate regions: ``(box, probability mass)``, largest mass first.

    The regions of :func:`box_from_prob` (connected, above ``threshold``, else above half the
    maximum) whose mass is at least ``keep`` times the largest one's, at most ``most``; the first
    is :func:`box_from_prob`'s box.
    """
    p = np.asarray(prob, np.float32)
    m = p > threshold
    if not m.any():
        m = p >= 0.5 * float(p.max()) if float(p.max()) > 0 else np.ones_like(p, bool)
    n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    mass = np.bincount(lab.ravel(), weights=p.ravel(), minlength=n)
    mass[0] = -1
    order = [int(j) for j in np.argsort(-mass, kind="stable") if j != 0]
    best = float(mass[order[0]]) if order else 0.0
    out: list[tuple[tuple[int, int, int, int], float]] = []
    for j in order[:max(1, most)]:
        if out and float(mass[j]) < keep * best:
            break
        ys, xs = np.nonzero(lab == j)
        out.append(((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), float(mass[j])))
    return out or [(box_from_prob(p, threshold)[0], 1.0)]


def _plane(image: LoadedImage | np.ndarray) -> np.ndarray:
    if isinstance(image, LoadedImage):
        px = image.pixels
        if px.ndim == 3 and not image.is_rgb:
            return np.asarray(px[px.shape[0] // 2])
        return np.asarray(px)
    return np.asarray(image)


class LesionUSScorer:
    """The lesion pipeline around a loaded ``lite0_lesion_attention`` model and its spec."""

    def __init__(self, model: Any, spec: Any, device: torch.device,
                 load_context: Callable[[str, torch.device], Any] | None = None) -> None:
        """``load_context(name, device)`` loads the context model named by the spec (the caller's
        :class:`~engine.inference.Predictor`: passed in, so this module stays below inference)."""
        self.model = model
        self.spec = spec
        self.device = device
        ex = spec.extra
        self.margin = float(ex.get("box_margin", 0.3))
        platt = ex.get("platt") or [1.0, 0.0]
        self.platt = (float(platt[0]), float(platt[1]))
        # a finder box is less exact than a reader's: its scores get their own out-of-fold fit
        pf = ex.get("platt_finder") or platt
        self.platt_finder = (float(pf[0]), float(pf[1]))
        self.ood_threshold = float(ex.get("ood_threshold", float("inf")))
        # finder options (recipe: ship.finder_tta / ship.finder_margins): the finder's map averaged
        # with its mirror image's; the finder's box scored at several context margins (mean logit)
        self.finder_tta = bool(ex.get("finder_tta", False))
        self.finder_margins = [float(v) for v in ex.get("finder_margins") or []] or [self.margin]
        # several finder regions scored, their logits weighted by probability mass (ship.finder_candidates)
        self.finder_candidates = int(ex.get("finder_candidates", 1))
        self.finder_candidate_mass = float(ex.get("finder_candidate_mass", 0.25))
        # Whole-image context: another installed weights folder whose malignancy logit is
        # averaged with the lesion crop's (spec.extra["context_model"], weight "context_weight").
        self.context_name = ex.get("context_model")
        self.context_weight = float(ex.get("context_weight", 0.5)) if self.context_name else 0.0
        # a finder box is less exact than a reader's: the context may weigh more (chosen by CV)
        self.context_weight_finder = (float(ex.get("context_weight_finder", self.context_weight))
                                      if self.context_name else 0.0)
        self._context: Any = None
        self._load_context = load_context

    def context(self) -> Any:
        """The whole-image context :class:`~engine.inference.Predictor` (loaded once), or None.

        Raises:
            ModelNotFoundError: the spec names a context model that is not installed.
        """
        if not self.context_name:
            return None
        if self._context is None:
            if self._load_context is None:
                raise ValueError(f"{self.spec.name}: names context model {self.context_name} but no loader was given")
            self._context = self._load_context(str(self.context_name), self.device)
        return self._context

    @torch.no_grad()
    def find(self, image: LoadedImage | np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        """Finder: ``(box, region mask, probability map)`` in input-image pixels."""
        plane = _plane(image)
        c = clean_ultrasound(plane)
        return self._find_clean(c.image, c.area, plane.shape[:2])

    @torch.no_grad()
    def _whole_maps(self, g: np.ndarray) -> dict[int, torch.Tensor]:
        maps: dict[int, torch.Tensor] = self.model.encode(whole_tensor(g)[None].to(self.device))
        return maps

    @torch.no_grad()
    def _find_clean(self, g: np.ndarray, area: tuple[int, int, int, int], shape: tuple[int, ...],
                    maps: dict[int, torch.Tensor] | None = None) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        maps = self._whole_maps(g) if maps is None else maps
        logits = self.model.decode(maps)
        prob = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
        if self.finder_tta:
            mirrored = self.model.decode(self._whole_maps(np.ascontiguousarray(g[:, ::-1])))
            prob = 0.5 * (prob + torch.sigmoid(mirrored.float())[0, 0].cpu().numpy()[:, ::-1])
        pr = cv2.resize(prob, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_LINEAR)
        (x0, y0, x1, y1), m = box_from_prob(pr)
        ax, ay = area[0], area[1]
        full_p = np.zeros(shape[:2], np.float32)
        full_m = np.zeros(shape[:2], bool)
        full_p[ay:ay + g.shape[0], ax:ax + g.shape[1]] = pr
        full_m[ay:ay + g.shape[0], ax:ax + g.shape[1]] = m
        return (x0 + ax, y0 + ay, x1 + ax, y1 + ay), full_m, full_p

    @torch.no_grad()
    def assess(self, image: LoadedImage | np.ndarray, box: Box | None = None, *,
               saliency: str | None = None) -> LesionAssessment:
        """Score one image (the reader's ``box`` when given, else the finder's) — see module docstring.

        Args:
            image: The decoded ultrasound image.
            box: Reader's lesion box in image pixels, or None.
            saliency: ``"cam"`` / ``"attention"`` to also return a map, or None.
        """
        from engine.stats.calibration import apply_platt

        plane = _plane(image)
        rows, cols = plane.shape[:2]
        c = clean_ultrasound(plane)
        ax, ay, ax1, ay1 = c.area
        g = c.image
        contour: list[list[int]] = []
        whole = self._whole_maps(g)  # the finder's input; also the OOD feature space
        ood = float(self.model.ood_distance(whole)[0])
        extra_boxes: list[tuple[tuple[int, int, int, int], float]] = []
        if box is None:
            fbox, fmask, fprob = self._find_clean(g, c.area, plane.shape, whole)
            if self.finder_candidates > 1:  # the other regions, in cleaned-area pixels
                cands = candidate_boxes(fprob[ay:ay + g.shape[0], ax:ax + g.shape[1]],
                                        keep=self.finder_candidate_mass, most=self.finder_candidates)
                extra_boxes = cands[1:]
                best_mass = cands[0][1]
            lb = fbox
            source = "finder"
            cs, _ = cv2.findContours(fmask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if cs:
                big = max(cs, key=cv2.contourArea)
                contour = [[int(p[0][0]), int(p[0][1])] for p in big]
        else:
            from engine.imaging.geometry import expand_box

            lb = expand_box(box, (rows, cols), 0.0, min_side=4)
            source = "reader"
        # the box in cleaned-area coordinates (a box outside the scan area is clipped to it)
        bx = (min(max(lb[0] - ax, 0), g.shape[1] - 1), min(max(lb[1] - ay, 0), g.shape[0] - 1),
              min(max(lb[2] - ax, 1), g.shape[1]), min(max(lb[3] - ay, 1), g.shape[0]))
        # the scored crop(s): box + margin and its mirror; a finder box at each finder margin (the
        # first one's crop is the region and the overlay), logits averaged
        margins = self.finder_margins if source == "finder" else [self.margin]
        crops = [crop_box(cb, g.shape, mg) for cb in [bx] + [e[0] for e in extra_boxes] for mg in margins]
        tensors = []
        for cx0, cy0, cx1, cy1 in crops:
            crop = np.ascontiguousarray(g[cy0:cy1, cx0:cx1])
            tensors += [to_tensor(crop, CROP_SIZE), to_tensor(np.ascontiguousarray(crop[:, ::-1]), CROP_SIZE)]
        x0, y0, x1, y1 = crops[0]
        maps = self.model.encode(torch.stack(tensors).to(self.device))
        att = torch.sigmoid(self.model.decode(maps))
        logits = self.model.head(self.model.pooled(maps, att)).float()
        margin_logits = (logits[:, self.model.malignant_index] - logits[:, 0]).view(1 + len(extra_boxes), -1)
        lesion_logit = float(margin_logits[0].mean())
        if extra_boxes:  # mass-weighted mean over the candidate regions (the best one is shown)
            masses = [best_mass] + [e[1] for e in extra_boxes]
            lesion_logit = float(sum(mw * float(v.mean()) for mw, v in zip(masses, margin_logits)) / sum(masses))
        margin_logit = lesion_logit
        ctx = self.context()
        if ctx is not None:
            from engine.stats.calibration import logit

            p_ctx = float(ctx.predict(image))
            ctx_logit = float(logit(np.array([p_ctx]))[0])
            cw = self.context_weight_finder if source == "finder" else self.context_weight
            margin_logit = (1 - cw) * lesion_logit + cw * ctx_logit
        raw = float(1.0 / (1.0 + np.exp(-margin_logit)))
        ab = self.platt_finder if source == "finder" else self.platt
        cal = float(apply_platt(np.array([float(margin_logit)]), *ab, from_probability=False)[0])
        region = (x0 + ax, y0 + ay, x1 + ax, y1 + ay)
        sal = None
        if saliency is not None:
            if saliency == "attention":
                m0, m1 = att[0, 0].float().cpu().numpy(), att[1, 0].float().cpu().numpy()[:, ::-1]
                layer = "lesion attention (decoder trained on BUSI masks)"
            elif saliency == "cam":
                ev = self.model.evidence(maps, att, (CROP_SIZE, CROP_SIZE)).float().cpu().numpy()
                m0, m1 = ev[0], ev[1][:, ::-1]
                layer = "attention-pooled CAM (exact decomposition of the logit margin)"
            else:
                raise ValueError(f"saliency method {saliency!r} not offered by {self.spec.name} (cam, attention)")
            m = cv2.resize(np.ascontiguousarray(0.5 * (m0 + m1), dtype=np.float32), (x1 - x0, y1 - y0),
                           interpolation=cv2.INTER_LINEAR)
            full = np.zeros((rows, cols), np.float32)
            full[region[1]:region[3], region[0]:region[2]] = normalise(m)
            sal = SaliencyMap(full, saliency, layer, model=self.spec.name, box=region,
                              extra={"architecture": self.spec.model, "box_source": source})
        return LesionAssessment(cal, raw, (int(lb[0]), int(lb[1]), int(lb[2]), int(lb[3])), source, region,
                                contour, ood, self.ood_threshold, sal)


def is_lesion_pipeline(spec: Any) -> bool:
    """Whether weights use this pipeline (``spec.extra["pipeline"] == "us_lesion"``)."""
    return bool(getattr(spec, "extra", {}).get("pipeline") == "us_lesion")


def assess_many(scorer: LesionUSScorer, images: Sequence[LoadedImage | np.ndarray],
                boxes: Sequence[Box | None]) -> list[LesionAssessment]:
    """:meth:`LesionUSScorer.assess` of several images, in order."""
    return [scorer.assess(im, b) for im, b in zip(images, boxes)]


__all__ = ["CROP_SIZE", "WHOLE_SIZE", "LesionAssessment", "LesionUSScorer", "assess_many", "box_from_prob",
           "candidate_boxes",
           "crop_box", "is_lesion_pipeline", "to_tensor", "whole_tensor"]
