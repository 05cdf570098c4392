"""Transforms applied around the model call: ``transform`` on the input, ``inv_transform`` on the output."""
from typing import List, Tuple

import torch

from ..clicker import Click


class BaseTransform:
    def __init__(self):
        self.image_changed = False

    def transform(self, image_nd: torch.Tensor, clicks_lists: List[List[Click]]
                  ) -> Tuple[torch.Tensor, List[List[Click]]]:
        raise NotImplementedError

    def inv_transform(self, prob_map: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget per-image state."""

    def get_state(self):
        return None

    def set_state(self, state) -> None:
        """Restore what :meth:`get_state` returned."""


class SigmoidForPred(BaseTransform):
    """Logits -> probabilities on the way back."""

    def transform(self, image_nd, clicks_lists):
        return image_nd, clicks_lists

    def inv_transform(self, prob_map):
        return torch.sigmoid(prob_map)
