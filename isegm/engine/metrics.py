"""Training metrics: the published adaptive-threshold IoU (``AdaptiveIoU``)."""
import numpy as np
import torch


def batch_ious(pred: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor) -> np.ndarray:
    """IoU of each sample with a non-empty union: B x 1 x H x W bool prediction, ground truth and ignored pixels
    (ignored pixels count as not predicted, as published)."""
    pred = pred & ~ignore
    dims = tuple(range(1, gt.dim()))
    union = (pred | gt).float().mean(dim=dims).cpu().numpy()
    inter = (pred & gt).float().mean(dim=dims).cpu().numpy()
    nonzero = union > 0
    return inter[nonzero] / union[nonzero]


class AdaptiveIoU:
    """The published training/validation metric: the mean IoU of the batch at a threshold that follows the best of
    (t - step, t, t + step) with momentum ``thresh_beta``; the epoch value is the mean of the batch IoUs.
    Batches whose targets are all empty are not counted. Inputs are logits and B x 1 x H x W targets
    (1 object, 0 background, -1 ignored)."""

    def __init__(self, init_thresh: float = 0.4, thresh_step: float = 0.025, thresh_beta: float = 0.99,
                 iou_beta: float = 0.9, ignore_label: int = -1):
        self.iou_thresh = init_thresh
        self.thresh_step = thresh_step
        self.thresh_beta = thresh_beta
        self.iou_beta = iou_beta
        self.ignore_label = ignore_label
        self.ema_iou = 0.0
        self.iou_sum = 0.0
        self.batches = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        gt = target > 0.5
        if not gt.any():
            return
        prob = torch.sigmoid(logits.float())
        ignore = target == self.ignore_label
        best_thresh = self.iou_thresh
        best_iou = float(batch_ious(prob > best_thresh, gt, ignore).mean())
        for thresh in (self.iou_thresh - self.thresh_step, self.iou_thresh + self.thresh_step):
            iou = float(batch_ious(prob > thresh, gt, ignore).mean())
            if iou > best_iou:
                best_iou, best_thresh = iou, thresh
        self.iou_thresh = self.thresh_beta * self.iou_thresh + (1 - self.thresh_beta) * best_thresh
        self.ema_iou = self.iou_beta * self.ema_iou + (1 - self.iou_beta) * best_iou
        self.iou_sum += best_iou
        self.batches += 1

    def epoch_value(self) -> float:
        return self.iou_sum / self.batches if self.batches else 0.0
