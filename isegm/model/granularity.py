"""Granularity: the slider value g in [0, 1] and the index of its learned embedding."""
import math

import torch

NUM_GRANULARITY_LEVELS = 10


def check_granularity(value: float) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` when it is not a number in [0, 1]."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"granularity must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"granularity must be a number in [0, 1], got {value}")
    return value


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
