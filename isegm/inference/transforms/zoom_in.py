"""Zoom-in: run the model on a crop around the current object, resized to a fixed size."""
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...utils.bbox import Box, bbox_from_mask, bbox_iou, clamp_bbox, expand_bbox
from ..clicker import Click
from .base import BaseTransform

PUBLISHED_MIN_CROP = 200  # px: the zoom-in floor of the published models, trained at 448 px
PUBLISHED_SIDE = 448


def min_crop_size_for(model_side: int) -> int:
    """The published zoom-in floor scaled to a model trained at ``model_side`` px: 57 px for the quick start's
    128-px model, whose crop would otherwise never be smaller than its whole image (no zoom at all)."""
    return max(1, round(PUBLISHED_MIN_CROP * model_side / PUBLISHED_SIDE))


class ZoomIn(BaseTransform):
    """Crop the image around the previous prediction (and positive clicks), expanded by ``expansion_ratio`` and at
    least ``min_crop_size``; keep the crop while it contains the positive clicks and its box IoU with the new
    candidate stays at least ``recompute_thresh_iou``. With ``skip_clicks=-1`` the first click uses the whole image.
    ``target_size``: an int (longer side) or an (H, W) tuple. The previous prediction is thresholded at
    ``prob_thresh`` (its own threshold, independent of the evaluation's).
    """

    def __init__(self, target_size: Union[int, Tuple[int, int]] = 400, skip_clicks: int = 1,
                 expansion_ratio: float = 1.4, min_crop_size: int = PUBLISHED_MIN_CROP, recompute_thresh_iou: float = 0.5,
                 prob_thresh: float = 0.50):
        super().__init__()
        self.params = dict(target_size=target_size, skip_clicks=skip_clicks, expansion_ratio=expansion_ratio,
                           min_crop_size=min_crop_size, recompute_thresh_iou=recompute_thresh_iou,
                           prob_thresh=prob_thresh)
        self.target_size = tuple(target_size) if isinstance(target_size, (list, tuple)) else target_size
        self.min_crop_size = min_crop_size
        self.skip_clicks = skip_clicks
        self.expansion_ratio = expansion_ratio
        self.recompute_thresh_iou = recompute_thresh_iou
        self.prob_thresh = prob_thresh
        self.reset()

    def reset(self) -> None:
        self._input_image_shape = None
        self._object_roi: Optional[Box] = None
        self._prev_probs: Optional[np.ndarray] = None
        self._roi_image: Optional[torch.Tensor] = None
        self.image_changed = False

    @property
    def roi(self) -> Optional[Box]:
        """The crop (rmin, rmax, cmin, cmax, inclusive) of the last prediction; None before the first crop."""
        return self._object_roi

    def get_state(self):
        roi_image = self._roi_image.cpu() if self._roi_image is not None else None
        return self._input_image_shape, self._object_roi, self._prev_probs, roi_image, self.image_changed

    def set_state(self, state) -> None:
        self._input_image_shape, self._object_roi, self._prev_probs, self._roi_image, self.image_changed = state

    def transform(self, image_nd, clicks_lists: List[List[Click]]):
        if image_nd.shape[0] != 1 or len(clicks_lists) != 1:
            raise ValueError("zoom-in handles one image and one click list at a time")
        self.image_changed = False
        clicks = clicks_lists[0]
        if len(clicks) <= self.skip_clicks:
            return image_nd, clicks_lists
        self._input_image_shape = image_nd.shape

        candidate = None
        if self._prev_probs is not None:
            mask = (self._prev_probs > self.prob_thresh)[0, 0]
            if mask.sum() > 0:
                candidate = object_roi(mask, clicks, self.expansion_ratio, self.min_crop_size)
        if candidate is None:
            if self.skip_clicks >= 0:
                return image_nd, clicks_lists
            candidate = 0, image_nd.shape[2] - 1, 0, image_nd.shape[3] - 1

        if (self._object_roi is None or not clicks_inside(self._object_roi, clicks)
                or bbox_iou(candidate, self._object_roi) < self.recompute_thresh_iou):
            self._object_roi = candidate
            self.image_changed = True
        self._roi_image = crop_and_resize(image_nd, self._object_roi, self.target_size)
        return self._roi_image, [self._transform_clicks(clicks)]

    def inv_transform(self, prob_map):
        if self._object_roi is None:
            self._prev_probs = prob_map.cpu().numpy()
            return prob_map
        rmin, rmax, cmin, cmax = self._object_roi
        prob_map = F.interpolate(prob_map, size=(rmax - rmin + 1, cmax - cmin + 1), mode="bilinear",
                                 align_corners=True)
        if self._prev_probs is not None:
            full = torch.zeros(*self._prev_probs.shape, device=prob_map.device, dtype=prob_map.dtype)
            full[:, :, rmin:rmax + 1, cmin:cmax + 1] = prob_map
            prob_map = full
        self._prev_probs = prob_map.cpu().numpy()
        return prob_map

    def check_possible_recalculation(self) -> bool:
        """Whether a prediction made on the whole image should be redone on a crop (``skip_clicks <= 0``)."""
        if self._prev_probs is None or self._object_roi is not None or self.skip_clicks > 0:
            return False
        mask = (self._prev_probs > self.prob_thresh)[0, 0]
        if mask.sum() == 0:
            return False
        roi = object_roi(mask, [], self.expansion_ratio, self.min_crop_size)
        image_roi = (0, self._input_image_shape[2] - 1, 0, self._input_image_shape[3] - 1)
        return bbox_iou(roi, image_roi) < 0.50

    def _transform_clicks(self, clicks: List[Click]) -> List[Click]:
        rmin, rmax, cmin, cmax = self._object_roi
        height, width = self._roi_image.shape[2:]
        return [click.copy(coords=(height * (click.coords[0] - rmin) / (rmax - rmin + 1),
                                   width * (click.coords[1] - cmin) / (cmax - cmin + 1))) for click in clicks]


def object_roi(pred_mask: np.ndarray, clicks: List[Click], expansion_ratio: float, min_crop_size: int) -> Box:
    """Box around the predicted mask and the positive clicks, expanded and clamped to the image."""
    pred_mask = pred_mask.copy()
    for click in clicks:
        if click.is_positive:
            pred_mask[int(click.coords[0]), int(click.coords[1])] = 1
    bbox = expand_bbox(bbox_from_mask(pred_mask), expansion_ratio, min_crop_size)
    return clamp_bbox(bbox, 0, pred_mask.shape[0] - 1, 0, pred_mask.shape[1] - 1)


def crop_and_resize(image_nd: torch.Tensor, roi: Box, target_size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """Crop ``roi`` (inclusive) and resize it bilinearly (align_corners=True) to ``target_size``."""
    rmin, rmax, cmin, cmax = roi
    height, width = rmax - rmin + 1, cmax - cmin + 1
    if isinstance(target_size, tuple):
        new_size = target_size
    else:
        scale = target_size / max(height, width)
        new_size = (int(round(height * scale)), int(round(width * scale)))
    crop = image_nd[:, :, rmin:rmax + 1, cmin:cmax + 1]
    return F.interpolate(crop, size=new_size, mode="bilinear", align_corners=True)


def clicks_inside(roi: Box, clicks: List[Click]) -> bool:
    """Whether all positive clicks lie in the box (its last row and column excluded)."""
    return all(roi[0] <= c.coords[0] < roi[1] and roi[2] <= c.coords[1] < roi[3] for c in clicks if c.is_positive)
