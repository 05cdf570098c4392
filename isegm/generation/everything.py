"""Segment everything at a chosen granularity: whole-image masks from a grid of single positive clicks.

For one image and one or more *layers* (a granularity such as 0.3, or a part name such as ``"head"``):

1. **grid**: ``points_per_side`` x ``points_per_side`` clicks at the centres of a regular grid (shared by all
   layers);
2. **prediction**: every click is one positive click of a fresh session of the given predictor (the same
   predictor as everywhere else: zoom-in with the whole image first and a crop around a small object, test-time
   flip, precision), at the layer's granularity or phrase. Clicks go through the model together, up to
   ``points_per_batch`` sessions per forward (the first, whole-image forwards of many clicks, then the crop
   forwards of the clicks whose object is small), each session with its own zoom-in state;
3. **filters** (per click): the mask (probability > 0.5) must contain its own click and be *stable*: the IoU of
   the masks at 0.5 + ``stability_delta`` and 0.5 - ``stability_delta`` must reach ``stability_thresh``; then
   fragments and holes smaller than ``min_area`` pixels are removed (the mask must still contain the click and
   keep ``min_area`` pixels);
4. **NMS**: masks are ordered by score = stability x mean probability inside the mask, and a mask whose mask IoU
   with a better one exceeds ``nms_iou_thresh`` is dropped;
5. **second pass**: where the kept masks of a layer leave uncovered area, clicks of a grid
   ``second_pass_factor`` times denser are predicted the same way: those not on the first grid, at least
   ``margin`` pixels inside an uncovered region of at least ``min_area`` pixels, and *unexplained*: outside the
   raw mask (probability > 0.5, kept or rejected) of their nearest first-grid click. A click inside that mask
   would most likely ask the same question again (a large unstable background answer, for example); one
   outside it lies on something the first grid did not click. First- and second-pass masks then go through one
   NMS together.

``plain=True`` gives the baseline "plain grid": every non-empty first-pass mask (after the ``min_area`` clean-up),
no stability or click filter, no NMS, no second pass.

``batched=False`` predicts one click at a time with :meth:`BasePredictor.get_prediction` (the interactive path):
the masks are the same (checked by ``scripts/benchmark_everything.py``).
"""
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..inference.clicker import Click, Clicker
from ..inference.predictors import BasePredictor
from ..signals import check_granularity

logger = logging.getLogger(__name__)

MIN_GRANULARITY = 0.1  # the model's lowest trained level; a grid below it asks for nothing it learned


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

    ``points_per_side``: first-pass grid; ``points_per_batch``: click sessions per model forward (each is two
    images with the flip; a CPU predictor runs the model 2 images at a time, see
    :data:`isegm.inference.predictors.base.CPU_IMAGES_PER_FORWARD`); ``stability_delta``/``stability_thresh``: the
    stability filter; ``nms_iou_thresh``: mask IoU above which the lower-scored mask is a duplicate; ``min_area``:
    fragments and holes below it are removed (pixels); ``second_pass_factor``: the second pass's grid is this many times denser (0: no second pass);
    ``margin``: second-pass clicks lie at least this many pixels inside uncovered area; ``plain``: the baseline
    without stability, click check, NMS and second pass.
    """
    points_per_side: int = 16
    points_per_batch: int = 32
    pred_thresh: float = 0.5
    stability_delta: float = 0.1
    stability_thresh: float = 0.85
    nms_iou_thresh: float = 0.7
    min_area: int = 100
    second_pass_factor: int = 2
    margin: int = 2
    plain: bool = False

    def __post_init__(self):
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise ValueError("points_per_side and points_per_batch must be at least 1")
        if not 0 < self.stability_delta < self.pred_thresh < 1:
            raise ValueError("need 0 < stability_delta < pred_thresh < 1")
        if self.min_area < 0 or self.second_pass_factor < 0 or self.margin < 0:
            raise ValueError("min_area, second_pass_factor and margin must be >= 0")


@dataclass
class EverythingMask:
    """One kept mask: ``segmentation`` H x W bool, the ``click`` (y, x) that made it, its scores and its pass."""
    segmentation: np.ndarray
    layer: Layer
    click: Tuple[float, float]
    stability: float
    mean_prob: float
    pass_index: int = 1
    area: int = field(init=False)

    def __post_init__(self):
        self.area = int(np.count_nonzero(self.segmentation))

    @property
    def score(self) -> float:
        """The NMS order: stability x mean probability inside the mask."""
        return self.stability * self.mean_prob


@dataclass
class EverythingTimings:
    """Seconds in the model (forwards and inverse transforms) and in all (``total``), forwards and clicks, summed
    over calls."""
    model: float = 0.0
    total: float = 0.0
    forwards: int = 0
    clicks: int = 0


# ----- pure functions ------------------------------------------------------------------------------------------

def grid_points(points_per_side: int, height: int, width: int) -> List[Tuple[float, float]]:
    """(y, x) cell centres of a ``points_per_side`` x ``points_per_side`` grid over an H x W image, row-major,
    rounded to whole pixels (a click is a pixel)."""
    ys = [int((i + 0.5) * height / points_per_side) for i in range(points_per_side)]
    xs = [int((j + 0.5) * width / points_per_side) for j in range(points_per_side)]
    return [(float(y), float(x)) for y in ys for x in xs]


def stability_score(probs: np.ndarray, thresh: float, delta: float) -> float:
    """IoU of the masks ``probs > thresh + delta`` and ``probs > thresh - delta`` (the first lies inside the
    second, so it is their area ratio); 0 when both are empty."""
    low = int(np.count_nonzero(probs > thresh - delta))
    if low == 0:
        return 0.0
    return int(np.count_nonzero(probs > thresh + delta)) / low


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


def mask_nms(masks: Sequence[np.ndarray], scores: Sequence[float], iou_thresh: float) -> List[int]:
    """Indices of the masks kept by greedy non-maximum suppression on mask IoU, best score first (ties: lower
    index first): a mask is dropped when its IoU with a kept one exceeds ``iou_thresh``."""
    if not masks:
        return []
    order = sorted(range(len(masks)), key=lambda i: (-scores[i], i))
    rles = [mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8))) for i in order]
    ious = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles))).reshape(len(rles), len(rles))
    kept: List[int] = []
    for rank in range(len(order)):
        if all(ious[rank, other] <= iou_thresh for other in kept):
            kept.append(rank)
    return [order[rank] for rank in kept]


def second_pass_grid(points_per_side: int, factor: int, height: int, width: int
                     ) -> Dict[Tuple[float, float], List[Tuple[float, float]]]:
    """The clicks of the ``factor`` times denser grid that are not on the first grid, listed under their nearest
    first-grid click: {first click: [dense clicks]} (empty when ``factor`` < 2)."""
    if factor < 2:
        return {}
    first = grid_points(points_per_side, height, width)
    first_ys = np.array(sorted({p[0] for p in first}))
    first_xs = np.array(sorted({p[1] for p in first}))
    cells: Dict[Tuple[float, float], List[Tuple[float, float]]] = {}
    taken = set(first)
    for y, x in grid_points(points_per_side * factor, height, width):
        if (y, x) in taken:
            continue
        nearest = (float(first_ys[np.argmin(np.abs(first_ys - y))]), float(first_xs[np.argmin(np.abs(first_xs - x))]))
        cells.setdefault(nearest, []).append((y, x))
    return cells


def second_pass_points(covered: np.ndarray, candidates: Sequence[Tuple[float, float]], min_area: int,
                       margin: int) -> List[Tuple[float, float]]:
    """The ``candidates`` (y, x) that lie at least ``margin`` pixels inside uncovered area (H x W ``covered``
    False) whose 8-connected region has at least ``max(min_area, 1)`` pixels."""
    uncovered = (~covered).astype(np.uint8)
    if margin > 0:
        distance = cv2.distanceTransform(np.pad(uncovered, 1, constant_values=1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        inside = distance >= margin
    else:
        inside = uncovered.astype(bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(uncovered, connectivity=8)
    large = np.zeros(count, bool)
    large[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(min_area, 1)
    return [(y, x) for y, x in candidates if inside[int(y), int(x)] and large[labels[int(y), int(x)]]]


# ----- the generator -------------------------------------------------------------------------------------------

@dataclass
class _Job:
    """One click of one layer: its session (own zoom-in state), its clicker and, once predicted, its map."""
    layer: Layer
    click: Tuple[float, float]
    session: BasePredictor
    clicker: Clicker
    probs: Optional[np.ndarray] = None


class EverythingGenerator:
    """Whole-image masks at one or more granularities (or a phrase) through a predictor.

    Usage::

        generator = EverythingGenerator(predictor, EverythingSettings(points_per_side=16))
        layers = generator.generate(rgb_uint8, [Layer(gra=0.3), Layer(gra=1.0)])   # {Layer: [EverythingMask]}

    The predictor (for example ``SharedModel.make_predictor()`` or ``PredictorSettings().make_predictor(model,
    device)``) is not changed: each click runs in a session spawned from it. ``lock`` (e.g.
    :attr:`isegm.interactive.SharedModel.lock`) is held around every model forward, so that interactive sessions on
    the same model can run between the forwards of a long generation.
    """

    def __init__(self, predictor: BasePredictor, settings: EverythingSettings = EverythingSettings(),
                 batched: bool = True, lock: Optional[threading.Lock] = None):
        self.predictor = predictor
        self.settings = settings
        self.batched = batched
        self.lock = lock if lock is not None else contextlib.nullcontext()
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
        template = self.predictor.spawn()
        template.set_input_image(image)
        height, width = image.shape[:2]
        settings = self.settings
        points = grid_points(settings.points_per_side, height, width)
        cells = {} if settings.plain else second_pass_grid(settings.points_per_side, settings.second_pass_factor,
                                                           height, width)
        explained: set = set()
        first = self._candidates(template, [(layer, p) for layer in layers for p in points], 1, progress,
                                 cells, explained)
        result: Dict[Layer, List[EverythingMask]] = {}
        if settings.plain:
            for layer in layers:
                result[layer] = [m for m in first if m.layer == layer]
            self.timings.total += time.perf_counter() - started
            return result
        kept = {layer: self._nms([m for m in first if m.layer == layer]) for layer in layers}
        second_jobs = []
        for layer in layers:
            covered = np.zeros((height, width), bool)
            for m in kept[layer]:
                covered |= m.segmentation
            unexplained = [d for dense in cells.values() for d in dense if (layer, d) not in explained]
            second_jobs += [(layer, p) for p in second_pass_points(covered, unexplained, settings.min_area,
                                                                   settings.margin)]
        if second_jobs:
            second = self._candidates(template, second_jobs, 2, progress)
            kept = {layer: self._nms(kept[layer] + [m for m in second if m.layer == layer]) for layer in layers}
        self.timings.total += time.perf_counter() - started
        return kept

    def candidates_at(self, image: np.ndarray, layer: Layer, points: Sequence[Tuple[float, float]]
                      ) -> List[EverythingMask]:
        """The masks of the given (y, x) clicks that pass this generator's filters, in click order (no NMS, no
        second pass): for timing and checking the prediction path on part of a grid."""
        started = time.perf_counter()
        template = self.predictor.spawn()
        template.set_input_image(image)
        out = self._candidates(template, [(layer, p) for p in points], 1, None)
        self.timings.total += time.perf_counter() - started
        return out

    def _nms(self, masks: List[EverythingMask]) -> List[EverythingMask]:
        keep = mask_nms([m.segmentation for m in masks], [m.score for m in masks], self.settings.nms_iou_thresh)
        return [masks[i] for i in keep]

    # ----- prediction --------------------------------------------------------------------------------------------
    def _candidates(self, template: BasePredictor, jobs: Sequence[Tuple[Layer, Tuple[float, float]]],
                    pass_index: int, progress, cells: Optional[dict] = None,
                    explained: Optional[set] = None) -> List[EverythingMask]:
        """Predict the clicks in chunks of ``points_per_batch`` and keep each chunk's candidates only (so that the
        probability maps of one chunk at most are held at a time). A second-pass click of ``cells`` that lies in
        the raw mask of its nearest first-pass click goes into ``explained`` as (layer, click)."""
        out: List[EverythingMask] = []
        size = self.settings.points_per_batch if self.batched else 1
        for start in range(0, len(jobs), size):
            chunk = [self._job(template, layer, click) for layer, click in jobs[start:start + size]]
            if self.batched:
                self._predict_batched(chunk)
            else:
                self._predict_single(chunk[0])
            for job in chunk:
                for y, x in (cells or {}).get(job.click, ()):
                    if job.probs[int(y), int(x)] > self.settings.pred_thresh:
                        explained.add((job.layer, (y, x)))
                candidate = self._filter(job, pass_index)
                if candidate is not None:
                    out.append(candidate)
                job.probs = None
            self.timings.clicks += len(chunk)
            if progress is not None:
                progress(len(chunk))
        return out

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
        with self.lock:
            job.probs = job.session.get_prediction(job.clicker, gra=job.layer.gra, phrase=job.layer.phrase)
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
            with self.lock:
                logits = self.predictor.forward([requests[i] for i in indices])
            self.timings.forwards += 1
            for i, part in zip(indices, logits):
                jobs[i].probs = jobs[i].session.finish(part)
        self.timings.model += time.perf_counter() - start

    # ----- filters -----------------------------------------------------------------------------------------------
    def _filter(self, job: _Job, pass_index: int) -> Optional[EverythingMask]:
        settings, probs = self.settings, job.probs
        mask = probs > settings.pred_thresh
        y, x = int(job.click[0]), int(job.click[1])
        if settings.plain:
            stability = stability_score(probs, settings.pred_thresh, settings.stability_delta)
        else:
            if not mask[y, x]:
                return None
            stability = stability_score(probs, settings.pred_thresh, settings.stability_delta)
            if stability < settings.stability_thresh:
                return None
        mask = remove_small_regions(mask, settings.min_area)
        area = int(np.count_nonzero(mask))
        if area == 0 or area < settings.min_area or (not settings.plain and not mask[y, x]):
            return None
        mean_prob = float(probs[mask].mean())
        return EverythingMask(mask, job.layer, job.click, float(stability), mean_prob, pass_index)


def make_layers(granularities: Sequence[float] = (), phrase: Optional[str] = None) -> List[Layer]:
    """The layers of a run: one per granularity, plus one for the phrase."""
    layers = [Layer(gra=float(g)) for g in granularities]
    if phrase is not None:
        layers.append(Layer(phrase=phrase))
    return layers


__all__ = ["EverythingGenerator", "EverythingMask", "EverythingSettings", "EverythingTimings", "Layer",
           "grid_points", "make_layers", "mask_nms", "remove_small_regions", "second_pass_grid", "second_pass_points",
           "stability_score"]
