"""SAM and SAM 2 as click predictors for the NoC loop, under GraCo's evaluation protocol.

The clicks so far go to the package's own image predictor (``segment_anything.SamPredictor`` or
``sam2.sam2_image_predictor.SAM2ImagePredictor``) as point prompts: (x, y), label 1 for positive and 0 for
negative, positive clicks first. No previous mask, no zoom-in, no flip. The image embedding is computed once per
image and reused for every click and every object of that image.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...utils.extras import require_extra
from ..clicker import Click, Clicker
from ..metrics import get_iou
from .base import check_rgb_image


def point_prompts(clicks: Sequence[Click]) -> Tuple[np.ndarray, np.ndarray]:
    """N x 2 (x, y) float coordinates and N labels (1 positive, 0 negative), positive clicks first, as the
    published evaluation orders them."""
    ordered = [c for c in clicks if c.is_positive] + [c for c in clicks if not c.is_positive]
    coords = np.array([[c.coords[1], c.coords[0]] for c in ordered], dtype=np.float32).reshape(-1, 2)
    labels = np.array([int(c.is_positive) for c in ordered], dtype=np.int64)
    return coords, labels


class SamClickPredictor:
    """One session of SAM or SAM 2 on one image at a time.

    :meth:`get_prediction` returns the mask *logits* (H x W float32); the mask is ``logits > mask_threshold``
    (the NoC loop is given ``pred_thr=mask_threshold``). With ``oracle=False`` SAM predicts a single mask
    (``multimask_output=False``). With ``oracle=True`` it predicts three, and the simulated user, the clicker,
    which holds the ground truth, takes the one with the best IoU (the first on ties); the next click is simulated
    from that mask.
    """

    def __init__(self, model: torch.nn.Module, oracle: bool = False):
        if hasattr(model, "sam_prompt_encoder"):
            self.predictor = require_extra("baselines", "sam2.sam2_image_predictor", "SAM 2").SAM2ImagePredictor(model)
            self.mask_threshold = float(self.predictor.mask_threshold)
        else:
            self.predictor = require_extra("baselines", "segment_anything", "SAM").SamPredictor(model)
            self.mask_threshold = float(model.mask_threshold)
        self.model = model
        self.oracle = oracle
        self._image: Optional[np.ndarray] = None

    def set_input_image(self, image: np.ndarray) -> None:
        """Embed an H x W x 3 uint8 RGB image, unless it is the image already embedded."""
        image = check_rgb_image(image)
        if self._image is not None and self._image.shape == image.shape and np.array_equal(self._image, image):
            return
        self._image = None
        self.predictor.set_image(image)
        self._image = image.copy()

    def get_prediction(self, clicker: Clicker, gra: Optional[float] = None, phrase: Optional[str] = None
                       ) -> np.ndarray:
        """Mask logits (H x W float32) for the clicks of ``clicker``; see the class docstring."""
        if gra is not None or phrase is not None:
            raise ValueError("SAM has no granularity or phrase input")
        if self._image is None:
            raise ValueError("call set_input_image before get_prediction")
        clicks = clicker.get_clicks()
        if not clicks:
            raise ValueError("SAM needs at least one click")
        self._check_clicks(clicks)
        coords, labels = point_prompts(clicks)
        logits, _, _ = self.predictor.predict(point_coords=coords, point_labels=labels,
                                              multimask_output=self.oracle, return_logits=True)
        if not self.oracle:
            return logits[0].astype(np.float32)
        if clicker.gt_mask is None:
            raise ValueError("the oracle needs the ground truth: Clicker(gt_mask=...)")
        gt = np.where(clicker.not_ignore_mask, clicker.gt_mask.astype(np.int32), -1)
        ious: List[float] = [get_iou(gt, mask > self.mask_threshold) for mask in logits]
        return logits[int(np.argmax(ious))].astype(np.float32)

    def _check_clicks(self, clicks: Sequence[Click]) -> None:
        height, width = self._image.shape[:2]
        for click in clicks:
            y, x = click.coords
            if not (0 <= y < height and 0 <= x < width):
                raise ValueError(f"click {click.indx} at (y={y}, x={x}) is outside the {height} x {width} image")
