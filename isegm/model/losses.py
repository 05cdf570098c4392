"""Training loss: the normalized focal loss of RITM/SimpleClick/GraCo."""
import torch
from torch import nn


class NormalizedFocalLoss(nn.Module):
    """Focal loss whose per-image focal weights are rescaled to sum to the number of valid pixels.

    ``forward(logits, target)`` takes B x 1 x H x W logits and a target of the same shape with 1 (object), 0
    (background) or -1 (ignored) and returns the B per-image losses (mean over valid pixels). Matches the published
    ``NormalizedFocalLossSigmoid`` with its defaults (normaliser detached, no clamp, eps 1e-12).
    """

    def __init__(self, alpha: float = 0.5, gamma: float = 2.0, eps: float = 1e-12, ignore_label: int = -1):
        super().__init__()
        self.alpha, self.gamma, self.eps, self.ignore_label = alpha, gamma, eps, ignore_label

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(logits.float())
        target = target.float()
        positive = target > 0.5
        valid = (target != self.ignore_label).float()
        alpha = torch.where(positive, self.alpha * valid, (1 - self.alpha) * valid)
        pt = torch.where(valid > 0, 1.0 - (target - prob).abs(), torch.ones_like(prob))
        beta = (1 - pt) ** self.gamma
        norm = valid.sum(dim=(-2, -1), keepdim=True) / (beta.sum(dim=(-2, -1), keepdim=True) + self.eps)
        beta = beta * norm.detach()
        loss = -alpha * beta * torch.log(torch.clamp(pt + self.eps, max=1.0)) * valid
        dims = tuple(range(1, loss.dim()))
        return loss.sum(dim=dims) / (valid.sum(dim=dims) + self.eps)
