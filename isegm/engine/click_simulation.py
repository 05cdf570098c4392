"""Correction clicks simulated during training (without gradient), as in RITM/SimpleClick/GraCo training."""
from typing import Sequence

import cv2
import numpy as np
import torch


def add_correction_clicks(prob: torch.Tensor, target: torch.Tensor, points: torch.Tensor, click_index: int,
                          rngs: Sequence[np.random.Generator], threshold: float = 0.49) -> torch.Tensor:
    """One more click per sample on the larger error region.

    prob: B x 1 x H x W probabilities; target: B x 1 x H x W (1 object, 0 background, -1 ignored);
    points: B x 2N x 3. The click goes to a random pixel whose distance to the error region's border exceeds half
    the largest such distance, positive when the false-negative region is deeper (strictly), negative otherwise.
    Click ``k`` (1-based) fills slot N - k of the positives or 2N - k of the negatives with order ``k``, as
    published; a sample with no error gets no click. Sample b's pixel is drawn from ``rngs[b]``. Returns new
    B x 2N x 3 clicks.
    """
    pred = prob[:, 0].detach().float().cpu().numpy()
    gt = target[:, 0].detach().cpu().numpy() > 0.5
    false_neg = np.pad(gt & (pred < threshold), ((0, 0), (1, 1), (1, 1))).astype(np.uint8)
    false_pos = np.pad(~gt & (pred > threshold), ((0, 0), (1, 1), (1, 1))).astype(np.uint8)
    num_points = points.shape[1] // 2
    points = points.clone()
    for b in range(pred.shape[0]):
        fn_dt = cv2.distanceTransform(false_neg[b], cv2.DIST_L2, 5)[1:-1, 1:-1]
        fp_dt = cv2.distanceTransform(false_pos[b], cv2.DIST_L2, 5)[1:-1, 1:-1]
        fn_max, fp_max = fn_dt.max(), fp_dt.max()
        positive = fn_max > fp_max
        dt = fn_dt if positive else fp_dt
        candidates = np.argwhere(dt > max(fn_max, fp_max) / 2.0)
        if len(candidates) == 0:
            continue
        y, x = candidates[rngs[b].integers(len(candidates))]
        slot = num_points - click_index if positive else 2 * num_points - click_index
        points[b, slot] = torch.tensor([float(y), float(x), float(click_index)], dtype=points.dtype)
    return points
