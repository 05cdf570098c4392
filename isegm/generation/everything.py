"""Segment everything at a chosen granularity: whole-image masks from grids of single positive clicks.

For one image and one or more *layers* (a granularity such as 0.3, or a part name such as ``"head"``):

1. **coarse to fine**: clicks at the cell centres of grids ``levels`` deep, each twice as dense as the one before,
   the finest ``points_per_side`` x ``points_per_side`` (16: grids of 4, 8 and 16 per side). A click of a finer
   grid is skipped where the layer's earlier answers already reach: inside the raw mask of any earlier click
   (kept or not), since it would ask the same question again. Each click is one positive click of a fresh
   session of the given predictor (zoom-in, precision; the test-time flip is off here, see
   :class:`EverythingGenerator`), up to ``points_per_batch`` sessions per model forward;
2. **the model's own scale**: a map is read as logits, relative to the model's scale on this image and layer (the
   90th percentile of the coarsest grid's peak logits, :func:`model_scale`), so that a soft model (peak
   probabilities of 0.6-0.75) and a confident one give masks alike. The mask is ``probs > pred_thresh``; it must
   contain its click, its peak logit must reach ``min_confidence`` x the scale, and it must be *stable*: the IoU
   of the masks at logit +/- ``stability_delta`` x the scale must reach ``stability_thresh``. A mask that reaches
   an inner edge of its zoom-in crop was cut there and is dropped; fragments and holes below ``min_area`` (a share
   of the image) are removed;
3. **re-click at the interior** (``recenter``, off by default: on the quick start's model it gave the same recalls
   with a fifth fewer masks and a tenth more model work): a first answer that passes is asked again with one click
   at its most interior pixel (the peak of its distance transform), unless that pixel lies in a mask already kept
   for the layer (dropped without a forward) or the grid click was already within half that depth of it. The
   second answer replaces the first; their IoU is the *agreement* of two clicks on one region (1 without one);
4. **score and NMS**: a mask's score is its *confidence*, the mean over the mask of its logits relative to the
   scale (capped at 1), times its agreement. Masks are taken best score first; one is dropped when its IoU with a
   kept mask exceeds ``nms_iou_thresh`` or when more than ``containment_thresh`` of the smaller of the two lies
   inside the other, so that one layer is close to a partition of what it finds.

``plain=True`` gives the baseline "plain grid": one ``points_per_side`` grid at the absolute threshold
``pred_thresh``, every non-empty mask kept (after the ``min_area`` clean-up): no stability or click check, no
re-click, no NMS.

``batched=False`` predicts one click at a time with :meth:`BasePredictor.get_prediction` (the interactive path):
the masks are the same (checked by the tests and ``scripts/benchmark_everything.py``).
"""
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..inference.clicker import Click, Clicker
from ..inference.metrics import get_iou
from ..inference.predictors import BasePredictor
from ..signals import check_granularity

if TYPE_CHECKING:
    from ..interactive.model_lock import ModelLock

logger = logging.getLogger(__name__)

MIN_GRANULARITY = 0.1  # the model's lowest trained level; a grid below it asks for nothing it learned
MIN_SCALE = 0.5  # the least logit scale of a model (module docstring, step 2): below it, nothing is confident
LOGIT_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit


@dataclass(frozen=True)
class Layer:
    """What one layer asks for: a granularity (``gra``) or a part name (``phrase``)."""
    gra: Optional[float] = None
    phrase: Optional[str] = None

    def __post_init__(self):
        if (self.gra is None) == (self.phrase is None):
            raise ValueError("a layer has a granularity or a phrase (exactly one)")
        if self.gra is not None:
            gra = check_granularity(self.gra)
            if gra < MIN_GRANULARITY:
                raise ValueError(f"granularity must be in [{MIN_GRANULARITY}, 1], got {gra}")
            object.__setattr__(self, "gra", gra)
        elif not self.phrase.strip():
            raise ValueError("the phrase is empty")

    @property
    def name(self) -> str:
        """``gra0.3`` or ``phrase-left_leg`` (used in file names)."""
        if self.gra is not None:
            return f"gra{self.gra:g}"
        return "phrase-" + "".join(c if c.isalnum() else "_" for c in self.phrase.strip())


@dataclass(frozen=True)
class EverythingSettings:
    """Options of :class:`EverythingGenerator` (see the module docstring for what each step does).

    ``points_per_side``: the finest grid; ``levels``: how many grids, coarse to fine (1: the finest alone);
    ``points_per_batch``: click sessions per model forward (a CPU predictor runs the model 2 images at a time, see
    :data:`isegm.inference.predictors.base.CPU_IMAGES_PER_FORWARD`); ``pred_thresh``: the mask threshold (a
    probability); ``min_confidence``, ``stability_delta``: shares of the model's logit scale (:func:`model_scale`);
    ``stability_thresh``: the least stability; ``min_area``: fragments, holes and masks below this share of the
    image are removed; ``recenter``: re-click at the interior of each first answer; ``nms_iou_thresh`` and
    ``containment_thresh``: duplicates and near-contained masks; ``plain``: the baseline grid without any of this.
    """
    points_per_side: int = 16
    levels: int = 3
    points_per_batch: int = 32
    pred_thresh: float = 0.5
    stability_delta: float = 0.1
    stability_thresh: float = 0.5
    min_confidence: float = 0.5
    min_area: float = 0.001
    recenter: bool = False
    nms_iou_thresh: float = 0.7
    containment_thresh: float = 0.8
    plain: bool = False

    def __post_init__(self):
        if self.points_per_side < 1 or self.points_per_batch < 1 or self.levels < 1:
            raise ValueError("points_per_side, points_per_batch and levels must be at least 1")
        if not 0 < self.stability_delta < self.pred_thresh < 1:
            raise ValueError("need 0 < stability_delta < pred_thresh < 1")
        if not 0 <= self.min_area < 1:
            raise ValueError(f"min_area is a share of the image in [0, 1), got {self.min_area}")
        if not (0 < self.nms_iou_thresh <= 1 and 0 < self.containment_thresh <= 1):
            raise ValueError("nms_iou_thresh and containment_thresh must be in (0, 1]")

    def grid_sides(self) -> List[int]:
        """The grids' points per side, coarse to fine (each at least 1, none twice): 16 with 3 levels -> 4, 8, 16."""
        if self.plain:
            return [self.points_per_side]
        sides = [max(1, self.points_per_side >> (self.levels - 1 - level)) for level in range(self.levels)]
        return sorted(set(sides))

    @property
    def threshold_logit(self) -> float:
        """``pred_thresh`` as a logit (0 for 0.5)."""
        return float(np.log(self.pred_thresh / (1 - self.pred_thresh)))

    def min_pixels(self, height: int, width: int) -> int:
        """``min_area`` in pixels of an H x W image."""
        return int(np.ceil(self.min_area * height * width))


@dataclass
class EverythingMask:
    """One kept mask: ``segmentation`` H x W bool, the ``click`` (y, x) that made it (the re-click, when there was
    one), its scores and the grid ``level`` (1: coarsest) of its first click."""
    segmentation: np.ndarray
    layer: Layer
    click: Tuple[float, float]
    stability: float
    confidence: float
    agreement: float = 1.0
    level: int = 1
    area: int = field(init=False)

    def __post_init__(self):
        self.area = int(np.count_nonzero(self.segmentation))

    @property
    def score(self) -> float:
        """The NMS order: confidence x agreement."""
        return self.confidence * self.agreement


@dataclass
class EverythingTimings:
    """Seconds in the model (forwards and inverse transforms) and in all (``total``), model forwards (calls), images
    through the model (batched mode: one per click, two with the flip, more where zoom-in recalculates on a crop),
    clicks predicted and grid clicks skipped (inside an earlier answer, or a re-click inside a kept mask), summed
    over calls."""
    model: float = 0.0
    total: float = 0.0
    forwards: int = 0
    images: int = 0
    clicks: int = 0
    skipped: int = 0


# ----- pure functions ------------------------------------------------------------------------------------------

def grid_points(points_per_side: int, height: int, width: int) -> List[Tuple[float, float]]:
    """(y, x) cell centres of a ``points_per_side`` x ``points_per_side`` grid over an H x W image, row-major,
    rounded to whole pixels (a click is a pixel)."""
    ys = [int((i + 0.5) * height / points_per_side) for i in range(points_per_side)]
    xs = [int((j + 0.5) * width / points_per_side) for j in range(points_per_side)]
    return [(float(y), float(x)) for y in ys for x in xs]


def stability_score(values: np.ndarray, thresh: float, delta: float) -> float:
    """IoU of the masks ``values > thresh + delta`` and ``values > thresh - delta`` (the first lies inside the
    second, so it is their area ratio); 0 when both are empty."""
    low = int(np.count_nonzero(values > thresh - delta))
    if low == 0:
        return 0.0
    return int(np.count_nonzero(values > thresh + delta)) / low


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` (H x W bool) without its 8-connected fragments and its 4-connected holes smaller than
    ``min_area`` pixels (a hole is a background region not touching the image border)."""
    if min_area <= 0:
        return mask
    mask = mask.astype(bool)
    holes = ~mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    height, width = mask.shape
    filled = mask.copy()
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        touches_border = x == 0 or y == 0 or x + w == width or y + h == height
        if area < min_area and not touches_border:
            filled[labels == label] = True
    count, labels, stats, _ = cv2.connectedComponentsWithStats(filled.astype(np.uint8), connectivity=8)
    small = [label for label in range(1, count) if stats[label, cv2.CC_STAT_AREA] < min_area]
    if small:
        filled[np.isin(labels, small)] = False
    return filled


def interior_point(mask: np.ndarray) -> Tuple[Tuple[int, int], float]:
    """((y, x), distance) of the pixel of ``mask`` farthest from its edge (the image border counts as an edge);
    the first in row-major order on ties."""
    distance = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    index = int(np.argmax(distance))
    return (index // mask.shape[1], index % mask.shape[1]), float(distance.flat[index])


def mask_nms(masks: Sequence[np.ndarray], scores: Sequence[float], iou_thresh: float,
             containment_thresh: float = 1.0) -> List[int]:
    """Indices of the masks kept by greedy non-maximum suppression, best score first (ties: lower index first): a
    mask is dropped when its IoU with a kept one exceeds ``iou_thresh``, or when more than ``containment_thresh`` of
    the smaller of the two lies in the other (1: no containment rule)."""
    if not masks:
        return []
    order = sorted(range(len(masks)), key=lambda i: (-scores[i], i))
    rles = [mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8))) for i in order]
    ious = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles))).reshape(len(rles), len(rles))
    areas = np.asarray(mask_utils.area(rles), np.float64)
    inter = ious * (areas[:, None] + areas[None, :]) / (1 + ious)  # from IoU = I / (a + b - I)
    contained = inter / np.maximum(np.minimum(areas[:, None], areas[None, :]), 1)
    kept: List[int] = []
    for rank in range(len(order)):
        if all(ious[rank, other] <= iou_thresh
               and (containment_thresh >= 1 or contained[rank, other] <= containment_thresh) for other in kept):
            kept.append(rank)
    return [order[rank] for rank in kept]


# ----- the generator -------------------------------------------------------------------------------------------

@dataclass
class _Job:
    """One click of one layer: its session (own zoom-in state), its clicker and, once predicted, its map as logits
    (H x W float32) and their peak."""
    layer: Layer
    click: Tuple[float, float]
    session: BasePredictor
    clicker: Clicker
    logits: Optional[np.ndarray] = None
    peak: float = 0.0

    def set_probs(self, probs: np.ndarray) -> None:
        clipped = np.clip(probs, LOGIT_EPS, 1 - LOGIT_EPS)
        self.logits = np.log(clipped / (1 - clipped)).astype(np.float32)
        self.peak = float(self.logits.max())


@dataclass
class _Answer:
    """A filtered answer to one click: its mask, stability and confidence."""
    mask: np.ndarray
    stability: float
    confidence: float


class EverythingGenerator:
    """Whole-image masks at one or more granularities (or a phrase) through a predictor.

    Usage::

        generator = EverythingGenerator(predictor, EverythingSettings(points_per_side=16))
        layers = generator.generate(rgb_uint8, [Layer(gra=0.3), Layer(gra=1.0)])   # {Layer: [EverythingMask]}

    The predictor (for example ``SharedModel.make_predictor()`` or ``PredictorSettings().make_predictor(model,
    device)``) is not changed: each click runs in a session spawned from it, with its zoom-in and precision but
    without the test-time flip unless ``flip=True`` (on the quick start's model the flip changed the recalls by
    0.01 and doubled the model's work; see README). ``lock`` (:attr:`isegm.interactive.SharedModel.lock`) is held
    around every model forward as a background holder, so that a click of an interactive session on the same model
    runs before the next forward of a long generation.
    """

    def __init__(self, predictor: BasePredictor, settings: EverythingSettings = EverythingSettings(),
                 batched: bool = True, lock: Optional["ModelLock"] = None, flip: bool = False):
        self.predictor = predictor
        self.settings = settings
        self.batched = batched
        self.flip = flip
        self._hold = lock.background if lock is not None else contextlib.nullcontext
        self.timings = EverythingTimings()

    def generate(self, image: np.ndarray, layers: Sequence[Layer],
                 progress: Optional[Callable[[int], None]] = None) -> Dict[Layer, List[EverythingMask]]:
        """The kept masks of each layer of an H x W x 3 uint8 RGB image, best score first. ``progress(n)`` is
        called after every ``n`` clicks predicted."""
        started = time.perf_counter()
        if not layers:
            raise ValueError("give at least one layer (granularity or phrase)")
        if len(set(layers)) != len(layers):
            raise ValueError("a layer is given twice")
        template = self._template(image)
        height, width = image.shape[:2]
        settings = self.settings
        reached = {layer: np.zeros((height, width), bool) for layer in layers}  # raw masks of the layer's clicks
        clicked = {layer: set() for layer in layers}
        peaks: Dict[Layer, List[float]] = {layer: [] for layer in layers}  # the peak logits of the layer's answers
        kept: Dict[Layer, List[EverythingMask]] = {layer: [] for layer in layers}
        sides = settings.grid_sides()
        for level, side in enumerate(sides, 1):
            jobs = []
            for layer in layers:
                for point in grid_points(side, height, width):
                    if point in clicked[layer]:
                        continue
                    clicked[layer].add(point)
                    if reached[layer][int(point[0]), int(point[1])]:
                        self.timings.skipped += 1
                    else:
                        jobs.append((layer, point))
            predicted = self._predict(template, jobs, progress)
            if level == 1:  # the first grid's answers set the model's scale: hold them (the coarsest grid)
                predicted = list(predicted)
                for job in predicted:
                    peaks[job.layer].append(job.peak)
            scales = {layer: model_scale(peaks[layer]) for layer in layers}
            found: List[EverythingMask] = []
            again: List[Tuple[Layer, Tuple[float, float], _Answer, int]] = []
            for job in predicted:
                if level > 1:
                    peaks[job.layer].append(job.peak)
                answer = self._answer(job, scales[job.layer])
                if level < len(sides):  # only a finer grid asks where the answers reach
                    reached[job.layer] |= job.logits > settings.threshold_logit
                job.logits = None
                if answer is None:
                    continue
                if settings.plain or not settings.recenter:
                    found.append(self._mask(job.layer, job.click, answer, 1.0, level))
                    continue
                (y, x), depth = interior_point(answer.mask)
                if np.hypot(y - job.click[0], x - job.click[1]) <= depth / 2:
                    found.append(self._mask(job.layer, job.click, answer, 1.0, level))
                elif not any(m.segmentation[y, x] for m in kept[job.layer]):
                    again.append((job.layer, (float(y), float(x)), answer, level))
                else:
                    self.timings.skipped += 1
            reclicked = self._predict(template, [(layer, click) for layer, click, _, _ in again], progress)
            for job, (layer, _, first, level) in zip(reclicked, again):
                answer = self._answer(job, scales[layer])
                job.logits = None
                if answer is not None:
                    found.append(self._mask(layer, job.click, answer, get_iou(first.mask, answer.mask), level))
            for layer in layers:
                mine = [m for m in found if m.layer == layer]
                kept[layer] = kept[layer] + mine if settings.plain else self._nms(kept[layer] + mine)
        self.timings.total += time.perf_counter() - started
        return kept

    def candidates_at(self, image: np.ndarray, layer: Layer, points: Sequence[Tuple[float, float]]
                      ) -> List[EverythingMask]:
        """The answers to the given (y, x) clicks that pass this generator's filters, in click order (no re-click,
        no NMS): for timing and checking the prediction path on part of a grid."""
        started = time.perf_counter()
        template = self._template(image)
        jobs = list(self._predict(template, [(layer, p) for p in points], None))
        scale = model_scale([job.peak for job in jobs])
        out = []
        for job in jobs:
            answer = self._answer(job, scale)
            job.logits = None
            if answer is not None:
                out.append(self._mask(layer, job.click, answer, 1.0, 1))
        self.timings.total += time.perf_counter() - started
        return out

    def _template(self, image: np.ndarray) -> BasePredictor:
        template = self.predictor.spawn(with_flip=self.flip)
        template.set_input_image(image)
        return template

    def _nms(self, masks: List[EverythingMask]) -> List[EverythingMask]:
        keep = mask_nms([m.segmentation for m in masks], [m.score for m in masks], self.settings.nms_iou_thresh,
                        self.settings.containment_thresh)
        return [masks[i] for i in keep]

    @staticmethod
    def _mask(layer: Layer, click, answer: _Answer, agreement: float, level: int) -> EverythingMask:
        return EverythingMask(answer.mask, layer, click, answer.stability, answer.confidence, agreement, level)

    # ----- prediction --------------------------------------------------------------------------------------------
    def _predict(self, template: BasePredictor, jobs: Sequence[Tuple[Layer, Tuple[float, float]]], progress):
        """Yield the jobs of the given (layer, click) pairs with their maps, predicted in chunks of
        ``points_per_batch`` (so that the maps of one chunk at most are held at a time)."""
        size = self.settings.points_per_batch if self.batched else 1
        for start in range(0, len(jobs), size):
            chunk = [self._job(template, layer, click) for layer, click in jobs[start:start + size]]
            if self.batched:
                self._predict_batched(chunk)
            else:
                self._predict_single(chunk[0])
            self.timings.clicks += len(chunk)
            if progress is not None:
                progress(len(chunk))
            yield from chunk

    @staticmethod
    def _job(template: BasePredictor, layer: Layer, click: Tuple[float, float]) -> _Job:
        session = template.spawn()
        session.original_image = template.original_image  # shared, read-only: one tensor per image
        session.prev_prediction = template.prev_prediction
        clicker = Clicker()
        clicker.add_click(Click(True, click))
        return _Job(layer, click, session, clicker)

    def _predict_single(self, job: _Job) -> None:
        start = time.perf_counter()
        with self._hold():
            job.set_probs(job.session.get_prediction(job.clicker, gra=job.layer.gra, phrase=job.layer.phrase))
        self.timings.model += time.perf_counter() - start
        self.timings.forwards += 1

    def _predict_batched(self, jobs: List[_Job]) -> None:
        """As :meth:`BasePredictor.get_prediction` for every job, with the forwards shared: all whole-image
        forwards together, then the crop forwards of the jobs whose zoom-in asks for a recalculation."""
        previous = [job.session.prev_prediction for job in jobs]
        self._forward(jobs)
        again = []
        for job, prev in zip(jobs, previous):
            zoom_in = job.session.zoom_in
            if zoom_in is not None and zoom_in.check_possible_recalculation():
                job.session.prev_prediction = prev  # the whole-image prediction is discarded, as published
                again.append(job)
        if again:
            self._forward(again)

    def _forward(self, jobs: List[_Job]) -> None:
        """One model forward per group of requests that can share a batch (same input size, same signal kind)."""
        start = time.perf_counter()
        requests = [job.session.prepare(job.clicker, gra=job.layer.gra, phrase=job.layer.phrase) for job in jobs]
        groups: Dict[tuple, List[int]] = {}
        for i, request in enumerate(requests):
            kind = ("phrase", jobs[i].layer.phrase) if jobs[i].layer.phrase is not None else ("gra",)
            groups.setdefault((tuple(request.image.shape), kind), []).append(i)
        for indices in groups.values():
            logits = []
            for piece in self._lock_pieces(indices, requests):
                with self._hold():
                    logits += self.predictor.forward([requests[i] for i in piece])
            self.timings.forwards += 1
            self.timings.images += sum(requests[i].image.shape[0] for i in indices)
            for i, part in zip(indices, logits):
                jobs[i].set_probs(jobs[i].session.finish(part))
        self.timings.model += time.perf_counter() - start

    def _lock_pieces(self, indices: List[int], requests: list) -> List[List[int]]:
        """``indices`` split into the pieces run under one hold of the lock: as many requests as the predictor gives
        the model in one call (on a CPU 2 images, so the results are the same), so that an interactive click waits
        for one such call at most; on a GPU, all of them."""
        per_call = self.predictor.images_per_call
        if per_call is None:
            return [indices]
        pieces, piece, images = [], [], 0
        for i in indices:
            piece.append(i)
            images += requests[i].image.shape[0]
            if images >= per_call:
                pieces.append(piece)
                piece, images = [], 0
        return pieces + ([piece] if piece else [])

    # ----- filters -----------------------------------------------------------------------------------------------
    def _answer(self, job: _Job, scale: float) -> Optional[_Answer]:
        """The job's mask if it passes the filters (module docstring, step 2), with its stability and confidence;
        ``scale``: the model's logit scale on this image and layer (:func:`model_scale`)."""
        settings, logits = self.settings, job.logits
        y, x = int(job.click[0]), int(job.click[1])
        threshold, band = settings.threshold_logit, settings.stability_delta * scale
        mask = logits > threshold
        stability = stability_score(logits, threshold, band)
        if not settings.plain:
            if job.peak - threshold < settings.min_confidence * scale or not mask[y, x]:
                return None
            if stability < settings.stability_thresh or _cut_by_crop(mask, job.session):
                return None
        mask = remove_small_regions(mask, settings.min_pixels(*logits.shape))
        area = int(np.count_nonzero(mask))
        if area == 0 or area < settings.min_pixels(*logits.shape) or (not settings.plain and not mask[y, x]):
            return None
        confidence = float(np.clip((logits[mask] - threshold) / scale, 0, 1).mean())
        return _Answer(mask, float(stability), confidence)


def model_scale(peaks: Sequence[float]) -> float:
    """The model's logit scale on one image and layer: the 90th percentile of its answers' peak logits, at least
    :data:`MIN_SCALE` (a confident model: about 6 to 10; the quick start's soft model: about 1)."""
    if not len(peaks):
        return MIN_SCALE
    return max(float(np.percentile(peaks, 90)), MIN_SCALE)


def _cut_by_crop(mask: np.ndarray, session: BasePredictor) -> bool:
    """Whether ``mask`` reaches an edge of the zoom-in crop it was predicted on that is not an edge of the image (it
    was cut there: the crop's answer is pasted into zeros)."""
    roi = session.zoom_in.roi if session.zoom_in is not None else None
    if roi is None:
        return False
    rmin, rmax, cmin, cmax = roi
    height, width = mask.shape
    return bool((rmin > 0 and mask[rmin].any()) or (rmax < height - 1 and mask[rmax].any())
                or (cmin > 0 and mask[:, cmin].any()) or (cmax < width - 1 and mask[:, cmax].any()))


def make_layers(granularities: Sequence[float] = (), phrase: Optional[str] = None) -> List[Layer]:
    """The layers of a run: one per granularity, plus one for the phrase."""
    layers = [Layer(gra=float(g)) for g in granularities]
    if phrase is not None:
        layers.append(Layer(phrase=phrase))
    return layers


__all__ = ["EverythingGenerator", "EverythingMask", "EverythingSettings", "EverythingTimings", "Layer",
           "grid_points", "interior_point", "make_layers", "mask_nms", "model_scale", "remove_small_regions",
           "stability_score"]
