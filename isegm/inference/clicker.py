"""Clicks and the click simulator used by NoC evaluation."""
from copy import deepcopy
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np


class Click:
    """One click: ``is_positive``, ``coords`` as (y, x), and ``indx``, its order in the sequence."""

    def __init__(self, is_positive: bool, coords: Tuple[float, float], indx: Optional[int] = None):
        self.is_positive = is_positive
        self.coords = coords
        self.indx = indx

    @property
    def coords_and_indx(self) -> Tuple[float, float, Optional[int]]:
        return (*self.coords, self.indx)

    def copy(self, **kwargs) -> "Click":
        clone = deepcopy(self)
        for key, value in kwargs.items():
            setattr(clone, key, value)
        return clone

    def __repr__(self) -> str:
        return f"Click(is_positive={self.is_positive}, coords={self.coords}, indx={self.indx})"


class Clicker:
    """A click sequence, and, given a ground-truth mask, the simulated user of the NoC protocol.

    The next click goes to the interior-most pixel of the larger error region: the error masks are padded by one
    pixel, an exact Euclidean distance transform is taken, already-clicked pixels are zeroed, the click is positive
    only if the false-negative peak is strictly larger, and the first pixel in row-major order wins ties.
    """

    def __init__(self, gt_mask: Optional[np.ndarray] = None, init_clicks: Optional[Sequence[Click]] = None,
                 ignore_label: int = -1, click_indx_offset: int = 0):
        self.click_indx_offset = click_indx_offset
        if gt_mask is not None:
            self.gt_mask = gt_mask == 1
            self.not_ignore_mask = gt_mask != ignore_label
        else:
            self.gt_mask = None
        self.reset_clicks()
        for click in init_clicks or ():
            self.add_click(click)

    def make_next_click(self, pred_mask: np.ndarray) -> None:
        if self.gt_mask is None:
            raise ValueError("the click simulator needs a ground-truth mask: Clicker(gt_mask=...)")
        self.add_click(self._get_next_click(pred_mask))

    def get_clicks(self, clicks_limit: Optional[int] = None) -> List[Click]:
        return self.clicks_list[:clicks_limit]

    def _get_next_click(self, pred_mask: np.ndarray, padding: bool = True) -> Click:
        pred_mask = np.asarray(pred_mask, dtype=bool)
        if pred_mask.shape != self.gt_mask.shape:
            raise ValueError(f"prediction of shape {pred_mask.shape} does not match the mask {self.gt_mask.shape}")
        fn_mask = self.gt_mask & ~pred_mask & self.not_ignore_mask
        fp_mask = ~self.gt_mask & pred_mask & self.not_ignore_mask
        fn_dt = _interior_distance(fn_mask, padding) * self.not_clicked_map
        fp_dt = _interior_distance(fp_mask, padding) * self.not_clicked_map
        fn_max, fp_max = fn_dt.max(), fp_dt.max()
        is_positive = bool(fn_max > fp_max)
        ys, xs = np.where(fn_dt == fn_max) if is_positive else np.where(fp_dt == fp_max)
        return Click(is_positive=is_positive, coords=(int(ys[0]), int(xs[0])))

    def add_click(self, click: Click) -> None:
        click.indx = self.click_indx_offset + self.num_pos_clicks + self.num_neg_clicks
        if click.is_positive:
            self.num_pos_clicks += 1
        else:
            self.num_neg_clicks += 1
        self.clicks_list.append(click)
        if self.gt_mask is not None:
            self.not_clicked_map[int(click.coords[0]), int(click.coords[1])] = False

    def _remove_last_click(self) -> None:
        click = self.clicks_list.pop()
        if click.is_positive:
            self.num_pos_clicks -= 1
        else:
            self.num_neg_clicks -= 1
        if self.gt_mask is not None:
            self.not_clicked_map[int(click.coords[0]), int(click.coords[1])] = True

    def reset_clicks(self) -> None:
        if self.gt_mask is not None:
            self.not_clicked_map = np.ones_like(self.gt_mask, dtype=bool)
        self.num_pos_clicks = 0
        self.num_neg_clicks = 0
        self.clicks_list = []

    def get_state(self) -> List[Click]:
        return deepcopy(self.clicks_list)

    def set_state(self, state: Sequence[Click]) -> None:
        self.reset_clicks()
        for click in state:
            self.add_click(click)

    def __len__(self) -> int:
        return len(self.clicks_list)


def _interior_distance(mask: np.ndarray, padding: bool) -> np.ndarray:
    """Exact Euclidean distance of each mask pixel to the nearest non-mask pixel (image border counts as
    non-mask when ``padding``)."""
    if padding:
        mask = np.pad(mask, 1, mode="constant")
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1] if padding else dist
