"""Drawing one whole instance as the target."""
from typing import Sequence, Tuple

import numpy as np

from ..datasets.base import SampleError
from .proposals import is_buggy_mask


def choose_instance(instance_masks: Sequence[np.ndarray], rng: np.random.Generator, buggy_mask_thresh: float,
                    where: str) -> Tuple[int, np.ndarray]:
    """Draw one instance uniformly among those that pass the published buggy-mask filter
    (:func:`.proposals.is_buggy_mask`): ``(its index in instance_masks, H x W uint8 mask)``. ``instance_masks``
    are H x W (nonzero = inside); SampleError (prefixed with ``where``) when none passes."""
    usable = [i for i, mask in enumerate(instance_masks) if not is_buggy_mask(mask, buggy_mask_thresh)]
    if not usable:
        raise SampleError(f"{where}: no usable instance ({len(instance_masks)} annotated, all empty or "
                          f"covering < {buggy_mask_thresh:g} of their bounding box)")
    index = usable[int(rng.integers(len(usable)))]
    return index, (np.asarray(instance_masks[index]) != 0).astype(np.uint8)
