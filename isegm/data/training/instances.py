"""The whole instances of a multi-instance training sample, as one label map."""
from typing import List, Sequence, Tuple

import numpy as np

from ..datasets.base import SampleError
from .proposals import is_buggy_mask

MAX_INSTANCES = 254  # labels 1..254 of a uint8 map (255 marks ignored pixels in the click training set)


def instance_labels(instance_masks: Sequence[np.ndarray], buggy_mask_thresh: float, where: str
                    ) -> Tuple[np.ndarray, List[int]]:
    """The instances that pass the published buggy-mask filter (:func:`.proposals.is_buggy_mask`) as one
    H x W uint8 label map (1..K in input order, 0 elsewhere) and their indices in ``instance_masks``.
    ``instance_masks`` are H x W (nonzero = inside); SampleError (prefixed with ``where``) when none passes.
    As in the published datasets, every usable instance goes to the click sampler, which picks the target (or
    merges two) after augmentation; the others take negative clicks."""
    usable = [i for i, mask in enumerate(instance_masks) if not is_buggy_mask(mask, buggy_mask_thresh)]
    if not usable:
        raise SampleError(f"{where}: no usable instance ({len(instance_masks)} annotated, all empty or "
                          f"covering < {buggy_mask_thresh:g} of their bounding box)")
    if len(usable) > MAX_INSTANCES:
        raise SampleError(f"{where}: {len(usable)} instances; at most {MAX_INSTANCES} per image are supported")
    labels = np.zeros(np.asarray(instance_masks[usable[0]]).shape, np.uint8)
    for label, index in enumerate(usable, start=1):
        labels[np.asarray(instance_masks[index]) != 0] = label
    return labels, usable
