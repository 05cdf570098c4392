"""NoC protocol metrics: IoU with ignore pixels, number of clicks to reach a target IoU, timing."""
from typing import List, Sequence, Tuple

import numpy as np


def get_iou(gt_mask: np.ndarray, pred_mask: np.ndarray, ignore_label: int = -1) -> float:
    """IoU of a boolean prediction with the object pixels (``gt == 1``), pixels labelled ``ignore_label`` excluded.
    An empty union gives 0 (an empty mask is never evaluated; see the datasets' checks)."""
    valid = gt_mask != ignore_label
    obj = gt_mask == 1
    intersection = np.logical_and(np.logical_and(pred_mask, obj), valid).sum()
    union = np.logical_and(np.logical_or(pred_mask, obj), valid).sum()
    return float(intersection / union) if union else 0.0


def noc(ious: Sequence[float], iou_thr: float, max_clicks: int = 20) -> int:
    """Clicks needed to first reach ``iou_thr``; ``max_clicks`` when never reached."""
    reached = np.asarray(ious) >= iou_thr
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def compute_noc_metric(all_ious: List[np.ndarray], iou_thrs: Sequence[float], max_clicks: int = 20
                       ) -> Tuple[List[float], List[float], List[int]]:
    """Mean NoC, its standard deviation and the number of samples needing ``max_clicks`` (or more), per threshold."""
    noc_list, noc_std, over_max = [], [], []
    for thr in iou_thrs:
        scores = np.array([noc(ious, thr, max_clicks) for ious in all_ious], dtype=np.int64)
        noc_list.append(float(scores.mean()) if len(scores) else float("nan"))
        noc_std.append(float(scores.std()) if len(scores) else float("nan"))
        over_max.append(int((scores == max_clicks).sum()))
    return noc_list, noc_std, over_max


def get_time_metrics(all_ious: List[np.ndarray], elapsed_time: float) -> Tuple[float, float]:
    """Seconds per click and seconds per sample."""
    n_clicks = sum(map(len, all_ious))
    return elapsed_time / max(n_clicks, 1), elapsed_time / max(len(all_ious), 1)
