"""Training clicks: the multi-point sampler of RITM/SimpleClick/GraCo for one target mask."""
from functools import lru_cache
from typing import Optional

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
    """Samples up to ``max_num_points`` positive and negative clicks for a target mask.

    The number of positive clicks is 1 + k and of negative clicks k', with P(k) proportional to
    ``prob_gamma ** k``. Positive clicks fall uniformly in the target, eroded 3 times with probability 0.9 when
    more than 10 pixels survive. Each negative click first draws a region: background (0.1), other objects (0.4;
    the background when no other objects are given) or a border ring around the target as wide as 10% of the
    square root of its area (0.5), then a pixel in it. Ignored pixels never receive clicks.

    ``sample`` returns ``2 * max_num_points x 3`` float32 clicks (y, x, order): positives first, negatives second,
    each padded with (-1, -1, -1), as the model expects.
    """

    def __init__(self, max_num_points: int = 24, prob_gamma: float = 0.8, expand_ratio: float = 0.1,
                 positive_erode_prob: float = 0.9, positive_erode_iters: int = 3,
                 negative_bg_prob: float = 0.1, negative_other_prob: float = 0.4,
                 negative_border_prob: float = 0.5):
        if max_num_points < 1:
            raise ValueError("max_num_points must be at least 1")
        strategy_probs = np.array([negative_bg_prob, negative_other_prob, negative_border_prob], np.float64)
        if not np.isclose(strategy_probs.sum(), 1.0):
            raise ValueError("the negative click strategy probabilities must sum to 1")
        self.max_num_points = max_num_points
        self.prob_gamma = prob_gamma
        self.expand_ratio = expand_ratio
        self.positive_erode_prob = positive_erode_prob
        self.positive_erode_iters = positive_erode_iters
        self.strategy_probs = strategy_probs

    def sample(self, target: np.ndarray, rng: np.random.Generator, ignore: Optional[np.ndarray] = None,
               others: Optional[np.ndarray] = None) -> np.ndarray:
        """Clicks for ``target`` (H x W bool); ``others`` marks other objects' pixels, ``ignore`` unusable ones."""
        target = target.astype(bool)
        usable = np.ones_like(target) if ignore is None else ~ignore.astype(bool)
        positive_region = self._maybe_erode(target, rng) & usable
        background = ~target & usable
        other = background if others is None or not (others & background).any() else others & background
        regions = (background, other, self._border(target) & usable)

        n = self.max_num_points
        num_positive = 1 + rng.choice(n, p=geometric_probs(n, self.prob_gamma))
        num_negative = rng.choice(n + 1, p=geometric_probs(n + 1, self.prob_gamma))
        positives = self._pixels(rng, [positive_region] * num_positive)
        strategies = rng.choice(3, size=num_negative, p=self.strategy_probs)
        negatives = self._pixels(rng, [regions[s] for s in strategies])

        clicks = np.full((2 * n, 3), PADDING, np.float32)
        clicks[:len(positives)] = positives
        clicks[n:n + len(negatives)] = negatives
        return clicks

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
