"""Granularity: the index of the learned embedding of a slider value g in [0, 1] (values are checked by the
predictor, :func:`isegm.signals.check_granularity`)."""
import torch

from ..signals import NUM_GRANULARITY_LEVELS


def granularity_index(gra: torch.Tensor) -> torch.Tensor:
    """Map granularities to embedding indices: ``trunc(clamp(float32(g) * 10 - 1, 0, 9))``.

    The arithmetic is done in float32, as in the published model, so values such as 0.3 (3.0000001 after the
    multiplication) land in the same bin as there.

    Args:
        gra: granularities, any shape, values in [0, 1].
    Returns:
        int64 tensor of the same shape with values in 0..9.
    """
    scaled = gra.to(torch.float32) * NUM_GRANULARITY_LEVELS - 1
    return torch.clamp(scaled, 0, NUM_GRANULARITY_LEVELS - 1).long()
