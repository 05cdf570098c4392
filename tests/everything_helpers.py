"""A scene whose objects and parts are known, and a rule-based stand-in for the GraCo network that segments it.

The stand-in (:class:`ColourRuleNet`) has the network's interface (B x 4 x H x W input, B x 2N x 3 clicks, a
granularity per image) and answers from the image itself: at a granularity below 0.6 the clicked part (the pixels
of the clicked colour, 4-connected to the click), otherwise the clicked object (the saturated pixels 8-connected to
the click). Its logits are blurred, so masks have soft borders. One colour (orange) is "fuzzy": the answer there is
a weak blob whose probabilities stay near 0.5 (an unstable mask). On the grey noise background a click finds only
one large unstable region (the background, probabilities near 0.5). ``logit_scale`` below 1 makes a soft network
of the same answers (0.14: objects and parts at a peak probability of about 0.7, as the quick start's model);
``blob_logit`` 1.5 makes the blob's answer sharp but weak (a quarter of the objects' logits).
Everything the generator does around the network (grids, zoom-in, flip, batching, filters, re-clicks, NMS) then
runs for real.
"""
from typing import List, Tuple

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import nn

PART_TOLERANCE = 0.08  # per channel, in [0, 1] units
FUZZY = (255, 150, 0)


def known_scene(size: int = 160, seed: int = 0) -> Tuple[np.ndarray, List[np.ndarray], List[np.ndarray]]:
    """(H x W x 3 uint8 image, object masks, part masks) of a scene with three objects:

    * a "figure": a red square head on a blue torso (2 parts);
    * a "cart": a green body with two yellow wheels (3 parts);
    * a small cyan dot between the points of an 8 x 8 grid (1 part; only a denser grid clicks on it);

    plus an orange fuzzy blob that the network segments unstably (neither an object nor a part), on a grey noise
    background (also unstable)."""
    rng = np.random.default_rng(seed)
    image = np.repeat(rng.integers(70, 190, (size, size, 1)), 3, axis=2).astype(np.int64)
    image += rng.integers(-40, 40, image.shape)
    parts = []

    def paint(mask, colour):
        image[mask] = colour
        return mask

    yy, xx = np.mgrid[:size, :size]
    head = paint((yy >= 8) & (yy < 40) & (xx >= 20) & (xx < 52), (220, 30, 30))
    torso = paint((yy >= 40) & (yy < 110) & (xx >= 12) & (xx < 60), (30, 40, 220))
    body = paint((yy >= 60) & (yy < 100) & (xx >= 80) & (xx < 150), (30, 200, 40))
    wheels = [paint((yy - 106) ** 2 + (xx - c) ** 2 <= 12 ** 2, (230, 220, 20)) for c in (94, 136)]
    body &= ~(wheels[0] | wheels[1])
    dot = paint((yy - 135) ** 2 + (xx - 135) ** 2 <= 6 ** 2, (20, 220, 230))
    paint((yy - 140) ** 2 + (xx - 45) ** 2 <= 14 ** 2, FUZZY)
    parts = [head, torso, body, *wheels, dot]
    objects = [head | torso, body | wheels[0] | wheels[1], dot]
    image = np.clip(image, 0, 255).astype(np.uint8)
    flat = np.zeros(image.shape[:2], bool)
    for part in parts:
        flat |= part
    noise = rng.integers(-3, 4, image.shape)
    image = np.where(flat[..., None], np.clip(image.astype(np.int64) + noise, 0, 255), image).astype(np.uint8)
    return image, objects, parts


class ColourRuleNet(nn.Module):
    """The stand-in network (see the module docstring); ``calls`` counts forwards, ``batch_sizes`` and
    ``input_sizes`` record their shapes."""

    with_prev_mask = True
    phrase_encoder = None

    def __init__(self, part_below: float = 0.6, blur_sigma: float = 1.0, logit_scale: float = 1.0,
                 blob_logit: float = 0.3):
        super().__init__()
        self.blob_logit = blob_logit
        self.part_below = part_below
        self.blur_sigma = blur_sigma
        self.logit_scale = logit_scale
        self.calls = 0
        self.batch_sizes: List[int] = []
        self.input_sizes: List[Tuple[int, int]] = []

    def forward(self, image: torch.Tensor, points: torch.Tensor, gra=None, text=None):
        self.calls += 1
        self.batch_sizes.append(image.shape[0])
        self.input_sizes.append(tuple(image.shape[2:]))
        logits = [self._one(image[b, :3].permute(1, 2, 0).cpu().numpy(), points[b].cpu().numpy(),
                            1.0 if gra is None else float(torch.as_tensor(gra).reshape(-1)[b]))
                  for b in range(image.shape[0])]
        return {"instances": torch.from_numpy(np.stack(logits))[:, None].to(image.device), "instances_aux": None}

    def _one(self, rgb: np.ndarray, points: np.ndarray, gra: float) -> np.ndarray:
        height, width = rgb.shape[:2]
        y, x = (min(max(int(round(v)), 0), size - 1) for v, size in zip(points[0, :2], (height, width)))
        colour = rgb[y, x]
        saturated = rgb.max(axis=2) - rgb.min(axis=2) > 0.3
        if np.abs(colour - np.array(FUZZY) / 255).max() < 0.15:
            blob = np.hypot(*np.mgrid[:height, :width] - np.array([y, x])[:, None, None]) < 0.12 * height
            logits = np.where(blob, self.blob_logit, -4.0)
        elif not saturated[y, x]:
            labels, _ = ndimage.label(~saturated)
            logits = np.where(labels == labels[y, x], 0.3, -4.0)
        else:
            if gra < self.part_below:
                region = np.abs(rgb - colour).max(axis=2) < PART_TOLERANCE
                labels, _ = ndimage.label(region)
            else:
                labels, _ = ndimage.label(saturated, structure=np.ones((3, 3)))
            region = labels == labels[y, x] if labels[y, x] else np.zeros((height, width), bool)
            logits = np.where(region, 6.0, -6.0)
        return cv2.GaussianBlur(logits.astype(np.float32) * self.logit_scale, (0, 0), self.blur_sigma)


def best_iou(target: np.ndarray, masks: List[np.ndarray]) -> float:
    """The largest IoU of ``target`` with any of ``masks`` (0 without masks)."""
    best = 0.0
    for mask in masks:
        union = np.count_nonzero(target | mask)
        if union:
            best = max(best, np.count_nonzero(target & mask) / union)
    return best
