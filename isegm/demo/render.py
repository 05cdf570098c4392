"""What the annotation window shows, as pictures: the canvas view and the thumbnails of the granularity strip.

Pure functions of arrays (no Tk), so that they can be tested and reused.
"""
from typing import Optional, Sequence

import cv2
import numpy as np

from ..inference.clicker import Click
from ..utils.vis import draw_probmap
from ..interactive.annotation import Colour, palette

POSITIVE_CLICK = (0, 220, 0)
NEGATIVE_CLICK = (230, 0, 0)
CLICK_OUTLINE = (255, 255, 255)


def render_view(image: np.ndarray, instances: np.ndarray, prob: Optional[np.ndarray], prob_thresh: float,
                alpha: float, show_probs: bool, clicks: Sequence[Click], click_radius: int,
                current_colour: Colour) -> np.ndarray:
    """The canvas picture.

    Arguments:
        image: H x W x 3 uint8 RGB.
        instances: H x W integer ids of the finished objects (0 background).
        prob: H x W probabilities of the object being annotated, or None.
        prob_thresh: where ``prob`` becomes the object.
        alpha: blend weight of the overlay.
        show_probs: show ``prob`` as a heat map instead of the objects (when there is one).
        clicks: the clicks of the current object, drawn as discs (``coords`` is (y, x)).
        click_radius: disc radius in pixels (0: no discs).
        current_colour: outline colour of the current object.
    Returns:
        H x W x 3 uint8 RGB.
    """
    if show_probs and prob is not None:
        out = ((1 - alpha) * image + alpha * draw_probmap(prob)).astype(np.uint8)
    else:
        colours = palette(max(int(instances.max()), 1)).astype(np.float32)
        out = image.astype(np.float32)
        fg = instances > 0
        out[fg] = (1 - alpha) * out[fg] + alpha * colours[instances[fg]]
        out = out.astype(np.uint8)
        if prob is not None:
            current = (prob > prob_thresh).astype(np.uint8)
            contours, _ = cv2.findContours(current, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, current_colour, 2)
    if click_radius > 0:
        for click in clicks:
            y, x = (int(round(v)) for v in click.coords)
            colour = POSITIVE_CLICK if click.is_positive else NEGATIVE_CLICK
            cv2.circle(out, (x, y), click_radius, colour, -1)
            cv2.circle(out, (x, y), click_radius, CLICK_OUTLINE, 1)
    return out


def render_strip_tile(image: np.ndarray, prob: np.ndarray, prob_thresh: float, colour: Colour) -> np.ndarray:
    """One granularity of the strip: ``image`` (H x W x 3 uint8) with the pixels where ``prob`` (H x W) exceeds
    ``prob_thresh`` tinted in ``colour``; H x W x 3 uint8."""
    mask = prob > prob_thresh
    vis = image.astype(np.float32)
    vis[mask] = 0.4 * vis[mask] + 0.6 * np.array(colour, np.float32)
    return vis.astype(np.uint8)
