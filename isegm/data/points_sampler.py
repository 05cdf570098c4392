"""Training clicks: the multi-point sampler of RITM/SimpleClick/GraCo for one target mask."""
from functools import lru_cache
from typing import List, Optional, Sequence

import cv2
import numpy as np

CLICK_ORDER = 100  # the published sampler gives every sampled click the order 100
PADDING = (-1.0, -1.0, -1.0)


@lru_cache(maxsize=None)
def geometric_probs(count: int, gamma: float) -> np.ndarray:
    """Probabilities 1, gamma, gamma^2, ... of ``count`` outcomes, normalised."""
    probs = gamma ** np.arange(count, dtype=np.float64)
    return probs / probs.sum()


class MultiPointSampler:
    """Chooses the target among the objects of a sample and samples up to ``max_num_points`` clicks for it.

    Target (:meth:`choose_objects`): with probability ``merge_objects_prob`` and at least two objects, 2 to
    ``max_num_merged_objects`` objects drawn without replacement are merged into one target; otherwise one object
    drawn uniformly. The objects left out are the "other objects" of the negative clicks.

    Clicks (:meth:`sample`): the number of positive clicks is 1 + k and of negative clicks k', with P(k)
    proportional to ``prob_gamma ** k``. Positive clicks fall uniformly in the target, eroded 3 times with
    probability 0.9 when more than 10 pixels survive; a merged target gets one click in each of its objects (each
    eroded on its own), then k' more (as for negatives) each in a uniformly drawn one of its objects. Each negative
    click first draws a region: background (0.1), other objects (0.4; the background when there are none) or a
    border ring around the target as wide as 10% of the square root of its area (0.5), then a pixel in it. An
    empty target (no object large enough) gets no positive click and negatives in the background. Ignored pixels
    never receive clicks. These are the published sampler's rules and defaults (the published runs set
    ``merge_objects_prob`` 0.15 and ``max_num_merged_objects`` 2).

    ``sample`` returns ``2 * max_num_points x 3`` float32 clicks (y, x, order): positives first, negatives second,
    each padded with (-1, -1, -1), as the model expects.
    """

    def __init__(self, max_num_points: int = 24, prob_gamma: float = 0.8, expand_ratio: float = 0.1,
                 positive_erode_prob: float = 0.9, positive_erode_iters: int = 3,
                 negative_bg_prob: float = 0.1, negative_other_prob: float = 0.4,
                 negative_border_prob: float = 0.5, merge_objects_prob: float = 0.15,
                 max_num_merged_objects: int = 2):
        if max_num_points < 1:
            raise ValueError("max_num_points must be at least 1")
        strategy_probs = np.array([negative_bg_prob, negative_other_prob, negative_border_prob], np.float64)
        if not np.isclose(strategy_probs.sum(), 1.0):
            raise ValueError("the negative click strategy probabilities must sum to 1")
        if not 0.0 <= merge_objects_prob <= 1.0 or max_num_merged_objects < 1:
            raise ValueError("merge_objects_prob must be in [0, 1] and max_num_merged_objects at least 1")
        self.max_num_points = max_num_points
        self.prob_gamma = prob_gamma
        self.expand_ratio = expand_ratio
        self.positive_erode_prob = positive_erode_prob
        self.positive_erode_iters = positive_erode_iters
        self.strategy_probs = strategy_probs
        self.merge_objects_prob = merge_objects_prob
        self.max_num_merged_objects = max_num_merged_objects

    def choose_objects(self, num_objects: int, rng: np.random.Generator) -> List[int]:
        """Indices of the objects (of ``num_objects``) that form the target: one, or several merged."""
        if num_objects == 0:
            return []
        if num_objects > 1 and rng.random() < self.merge_objects_prob:
            most = min(num_objects, self.max_num_merged_objects)
            if most >= 2:
                count = int(rng.integers(2, most + 1))
                return sorted(int(i) for i in rng.choice(num_objects, size=count, replace=False))
        return [int(rng.integers(num_objects))]

    def sample(self, target: np.ndarray, rng: np.random.Generator, ignore: Optional[np.ndarray] = None,
               others: Optional[np.ndarray] = None, pieces: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """Clicks for ``target`` (H x W bool); ``others`` marks other objects' pixels, ``ignore`` unusable ones;
        ``pieces`` are the objects of a merged target (H x W bool each)."""
        target = target.astype(bool)
        usable = np.ones_like(target) if ignore is None else ~ignore.astype(bool)
        background = ~target & usable
        other = background if others is None or not (others & background).any() else others & background
        regions = (background, other, self._border(target) & usable) if target.any() else (background,) * 3

        n = self.max_num_points
        num_positive = 1 + rng.choice(n, p=geometric_probs(n, self.prob_gamma))
        num_negative = rng.choice(n + 1, p=geometric_probs(n + 1, self.prob_gamma))
        if pieces is not None and len(pieces) > 1:
            positives = self._merged_positives([p.astype(bool) & usable for p in pieces], rng)
        else:
            positives = self._pixels(rng, [self._maybe_erode(target, rng) & usable] * num_positive)
        strategies = rng.choice(3, size=num_negative, p=self.strategy_probs)
        negatives = self._pixels(rng, [regions[s] for s in strategies])

        clicks = np.full((2 * n, 3), PADDING, np.float32)
        clicks[:len(positives)] = positives[:n]
        clicks[n:n + len(negatives)] = negatives
        return clicks

    def _merged_positives(self, pieces: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """One click in each object of a merged target, then k' clicks each in a uniformly drawn object."""
        n = self.max_num_points
        regions = [self._maybe_erode(piece, rng) for piece in pieces]
        first = self._pixels(rng, regions)
        extra = rng.choice(n + 1, p=geometric_probs(n + 1, self.prob_gamma))
        more = self._pixels(rng, [regions[i] for i in rng.integers(len(regions), size=extra)])
        if len(first) + len(more) > n:
            more = more[np.sort(rng.choice(len(more), size=max(0, n - len(first)), replace=False))]
        return np.concatenate([first, more])[:n]

    @staticmethod
    def _pixels(rng: np.random.Generator, regions) -> np.ndarray:
        """One uniform pixel (y, x, order) of each non-empty region."""
        clicks = []
        cache = {}
        for region in regions:
            key = id(region)
            if key not in cache:
                cache[key] = np.argwhere(region)
            candidates = cache[key]
            if len(candidates):
                y, x = candidates[rng.integers(len(candidates))]
                clicks.append((y, x, CLICK_ORDER))
        return np.array(clicks, np.float32).reshape(-1, 3)

    def _maybe_erode(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() > self.positive_erode_prob:
            return mask
        eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8),
                           iterations=self.positive_erode_iters).astype(bool)
        return eroded if eroded.sum() > 10 else mask

    def _border(self, mask: np.ndarray) -> np.ndarray:
        radius = int(np.ceil(self.expand_ratio * np.sqrt(mask.sum())))
        dilated = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=radius).astype(bool)
        return dilated & ~mask
