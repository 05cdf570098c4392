"""What the page shows, as pictures: the image with its objects and clicks, and the strip's thumbnails."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Colour = Tuple[int, int, int]
POSITIVE = (0, 220, 0)
NEGATIVE = (230, 0, 0)
OUTLINE = (255, 255, 255)
THUMBNAIL_SIDE = 160


def render_canvas(image: np.ndarray, instances: np.ndarray, colours: np.ndarray, opacity: float,
                  clicks: Sequence[Tuple[bool, float, float]], current: Optional[np.ndarray] = None) -> np.ndarray:
    """H x W x 3 uint8: ``image`` (H x W x 3 uint8) with each object id of ``instances`` (H x W) blended in its
    colour (``colours[id]``) at ``opacity``, the current object's outline (``current``: H x W bool) and the
    clicks as discs (``(positive, y, x)``)."""
    out = image.astype(np.float32)
    fg = instances > 0
    if fg.any():
        out[fg] = (1 - opacity) * out[fg] + opacity * colours[instances[fg]].astype(np.float32)
    out = out.astype(np.uint8)
    if current is not None and current.any():
        contours, _ = cv2.findContours(current.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, OUTLINE, max(1, round(max(image.shape[:2]) / 400)))
    radius = max(3, round(max(image.shape[:2]) / 120))
    for positive, y, x in clicks:
        centre = (int(round(x)), int(round(y)))
        cv2.circle(out, centre, radius, POSITIVE if positive else NEGATIVE, -1)
        cv2.circle(out, centre, radius, OUTLINE, 1)
    return out


def render_thumbnail(image: np.ndarray, mask: np.ndarray, colour: Colour) -> np.ndarray:
    """A small picture of ``image`` with ``mask`` (H x W bool) tinted in ``colour``; longer side THUMBNAIL_SIDE."""
    scale = THUMBNAIL_SIDE / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    small_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    small[small_mask] = 0.4 * small[small_mask] + 0.6 * np.asarray(colour, np.float32)
    return small.astype(np.uint8)
