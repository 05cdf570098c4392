"""Boxes as inclusive (rmin, rmax, cmin, cmax) tuples."""
from typing import Tuple

import numpy as np

Box = Tuple[int, int, int, int]


def bbox_from_mask(mask: np.ndarray) -> Box:
    """Tight box of the non-zero pixels of a 2-D mask (which must have some)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_bbox(bbox: Box, ratio: float, min_size: float = None) -> Box:
    """Scale a box about its centre by ``ratio``, to at least ``min_size`` per side (Python rounding)."""
    rmin, rmax, cmin, cmax = bbox
    rcenter, ccenter = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    height, width = ratio * (rmax - rmin + 1), ratio * (cmax - cmin + 1)
    if min_size is not None:
        height, width = max(height, min_size), max(width, min_size)
    return (int(round(rcenter - 0.5 * height)), int(round(rcenter + 0.5 * height)),
            int(round(ccenter - 0.5 * width)), int(round(ccenter + 0.5 * width)))


def clamp_bbox(bbox: Box, rmin: int, rmax: int, cmin: int, cmax: int) -> Box:
    return max(rmin, bbox[0]), min(rmax, bbox[1]), max(cmin, bbox[2]), min(cmax, bbox[3])


def _segment_iou(a: Tuple[int, int], b: Tuple[int, int]) -> float:
    intersection = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    union = max(1e-6, max(a[1], b[1]) - min(a[0], b[0]) + 1)
    return intersection / union


def bbox_iou(b1: Box, b2: Box) -> float:
    """Product of the row-interval and column-interval IoUs (the zoom-in's recompute criterion)."""
    return _segment_iou(b1[:2], b2[:2]) * _segment_iou(b1[2:4], b2[2:4])
