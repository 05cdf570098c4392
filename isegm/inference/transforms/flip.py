"""Test-time horizontal flip: the batch is doubled and the two logit maps are averaged."""
import torch

from .base import BaseTransform


class AddHorizontalFlip(BaseTransform):
    def transform(self, image_nd, clicks_lists):
        width = image_nd.shape[3]
        flipped = [[click.copy(coords=(click.coords[0], width - click.coords[1] - 1)) for click in clicks]
                   for clicks in clicks_lists]
        return torch.cat([image_nd, torch.flip(image_nd, dims=[3])], dim=0), clicks_lists + flipped

    def inv_transform(self, prob_map):
        half = prob_map.shape[0] // 2
        return 0.5 * (prob_map[:half] + torch.flip(prob_map[half:], dims=[3]))
