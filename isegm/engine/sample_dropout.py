"""Channel dropout whose mask for each sample comes from that sample's own seed, so a sample's mask does not
depend on which other samples share its batch (or its rank)."""
from typing import List, Optional, Sequence

import torch
from torch import nn


class SampleDropout2d(nn.Module):
    """``nn.Dropout2d`` (each channel of each sample zeroed with probability ``p``, the rest scaled by
    1 / (1 - p); ``p = 1`` zeroes everything), with sample b's channel mask drawn from ``seeds[b]`` by a local
    generator when :meth:`set_seeds` gave seeds for this forward (else from torch's global generator). Seeds serve
    one training-mode forward only, so a later forward never reuses their masks. Input: B x C x H x W."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.seeds: Optional[List[int]] = None

    def set_seeds(self, seeds: Optional[Sequence[int]]) -> None:
        """Seeds of the next training-mode forward's masks, one per sample (None: the global generator)."""
        self.seeds = None if seeds is None else [int(s) for s in seeds]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        seeds, self.seeds = self.seeds, None  # used by this forward only
        if seeds is None:
            return nn.functional.dropout2d(x, self.p, True)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} dropout seeds for a batch of {x.shape[0]}")
        if self.p >= 1:
            return x * 0.0
        keep = torch.stack([torch.rand(x.shape[1], generator=torch.Generator().manual_seed(s)) >= self.p
                            for s in seeds])
        return x * keep.to(x.device, x.dtype)[:, :, None, None] / (1.0 - self.p)


def use_sample_dropout(model: nn.Module) -> List[SampleDropout2d]:
    """Replace every ``nn.Dropout2d`` of ``model`` by a :class:`SampleDropout2d` of the same probability; returns
    them (no parameters change, so checkpoints are unaffected)."""
    replaced = []
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Dropout2d):
                new = SampleDropout2d(child.p)
                new.train(child.training)
                setattr(module, child_name, new)
                replaced.append(new)
    return replaced
