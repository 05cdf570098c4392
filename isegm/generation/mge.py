"""MGE, the mask granularity estimator: the two granularity signals of a proposal inside its object.

* scale granularity: the area of the proposal over the area of its object, rounded to 0.1;
* semantic granularity: the spread (max - min) of a one-click prediction's probabilities inside the proposal over
  that spread inside the whole object, rounded to 0.1 and capped at 1.0. The click is drawn inside the eroded
  proposal and the prediction is made from that click alone (fresh session, no previous mask).

The model-free parts (ratios, rounding, the click region) are plain functions; :func:`one_click_probabilities`
runs the one-click predictions of many proposals in one batched forward.

Published facts followed here (``any_granularity_generator.py`` of the GraCo release): ratios are rounded with
numpy's ``round`` (``np.round(ratio, 1)`` on a float64), the carved part gets a floor of 0.1 while the residual
keeps its plain rounded ratio (and is dropped unless it is above 0.1), the click region is the proposal eroded
``ceil(0.1 * sqrt(area))`` times with a 3 x 3 kernel (the proposal itself when that leaves nothing).

Deliberate difference: when the object's probability spread is zero the published ratio is 0/0 (NaN) or x/0;
here the semantic granularity is then 1.0.
"""
import math
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from ..inference.clicker import Click, Clicker
from ..inference.predictors import BasePredictor
from ..signals import GRANULARITY_LEVELS, round_granularity

MIN_PART_GRANULARITY = GRANULARITY_LEVELS[0]


def area_ratio(part_mask: np.ndarray, object_mask: np.ndarray) -> float:
    """area(part) / area(object) for two H x W masks (non-zero = inside); the part may reach outside the object."""
    object_area = int(np.count_nonzero(object_mask))
    if object_area == 0:
        raise ValueError("the object mask is empty")
    return float(np.float64(np.count_nonzero(part_mask)) / np.float64(object_area))


def scale_granularity(part_mask: np.ndarray, object_mask: np.ndarray, floor: float = MIN_PART_GRANULARITY) -> float:
    """max(round(area(part) / area(object), 1), ``floor``): the published scale granularity of a carved part.

    May exceed 1.0 when the part leaks out of the object (the generator then replaces it by the object).
    ``floor=0`` gives the residual's rule (plain rounded ratio).
    """
    return max(floor, round_granularity(area_ratio(part_mask, object_mask)))


def semantic_granularity(probs: np.ndarray, part_mask: np.ndarray, object_mask: np.ndarray) -> float:
    """min(round(ptp(probs[part]) / ptp(probs[object]), 1), 1.0) for an H x W probability map of a one-click
    prediction (click inside the part). An empty part gives 0.0; a flat object (zero spread) gives 1.0."""
    part = np.asarray(part_mask).astype(bool)
    obj = np.asarray(object_mask).astype(bool)
    if not part.any():
        return 0.0
    object_spread = np.ptp(probs[obj]) if obj.any() else 0.0
    if not object_spread > 0.0:
        return 1.0
    # as published: the ratio in the maps' own precision, then Python's round (the scale uses round_granularity)
    return min(round(float(np.ptp(probs[part]) / object_spread), 1), 1.0)


def semantic_click_region(part_mask: np.ndarray) -> np.ndarray:
    """H x W bool: the part eroded ``ceil(0.1 * sqrt(area))`` times (3 x 3 kernel), or the part itself when the
    erosion leaves nothing."""
    part = np.asarray(part_mask).astype(np.uint8)
    radius = int(math.ceil(0.1 * math.sqrt(int(part.sum()))))
    eroded = cv2.erode(part, None, iterations=radius) if radius > 0 else part
    return (eroded if eroded.any() else part).astype(bool)


def sample_pixel(mask: np.ndarray, rng: np.random.Generator) -> Tuple[int, int]:
    """A uniformly drawn (y, x) pixel of a non-empty H x W mask (row-major candidates, one ``rng.integers``)."""
    candidates = np.argwhere(mask)
    if len(candidates) == 0:
        raise ValueError("cannot draw a click in an empty mask")
    y, x = candidates[int(rng.integers(0, len(candidates)))]
    return int(y), int(x)


def sample_semantic_click(part_mask: np.ndarray, rng: np.random.Generator) -> Tuple[int, int]:
    """The (y, x) click of the semantic-granularity prediction, drawn in :func:`semantic_click_region`."""
    return sample_pixel(semantic_click_region(part_mask), rng)


def one_click_probabilities(predictor: BasePredictor, images: Sequence[np.ndarray],
                            clicks: Sequence[Tuple[int, int]], max_batch: int = 0) -> List[np.ndarray]:
    """One positive click per request, each in a fresh session (zero previous mask, whole-image zoom-in);
    ``images[i]`` is H x W x 3 uint8 and ``clicks[i]`` its (y, x). Returns the H x W float32 probability maps.

    All requests go through the model together (``max_batch`` > 0 splits them into forwards of at most that
    many requests; each request is 2 images with the test-time flip)."""
    sessions, requests = [], []
    for image, (y, x) in zip(images, clicks):
        session = predictor.spawn()
        session.set_input_image(image)
        clicker = Clicker()
        clicker.add_click(Click(True, (y, x)))
        sessions.append(session)
        requests.append(session.prepare(clicker))
    logits = forward_in_chunks(predictor, requests, max_batch)
    return [session.finish(part) for session, part in zip(sessions, logits)]


def forward_in_chunks(predictor: BasePredictor, requests: list, max_batch: int = 0) -> list:
    """``predictor.forward`` over ``requests`` in chunks of at most ``max_batch`` (0: one forward)."""
    if not requests:
        return []
    size = len(requests) if max_batch <= 0 else max_batch
    out = []
    for start in range(0, len(requests), size):
        out.extend(predictor.forward(requests[start:start + size]))
    return out
