"""One evaluation sample: an RGB image and the ground-truth masks of its objects."""
from typing import List, Sequence

import numpy as np


class DSample:
    """An image with objects encoded in one label map.

    Object ``i`` is the set of pixels of ``labels`` equal to ``object_values[i]``; pixels equal to any of
    ``ignore_values`` are marked -1 (ignored) in every object's mask. As in the published ``DSample``,
    ``objects_ids`` are the indices ``0..n-1`` that ``gt_mask`` takes.
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, object_values: Sequence[int],
                 ignore_values: Sequence[int] = (), sample_id: str = "") -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"sample {sample_id}: image must be H x W x 3 uint8, got {image.shape} {image.dtype}")
        if labels.shape != image.shape[:2]:
            raise ValueError(f"sample {sample_id}: label map {labels.shape} does not match image {image.shape[:2]}")
        self.image = image
        self.sample_id = sample_id
        self._labels = labels
        self._object_values = [int(v) for v in object_values]
        self._ignore_values = [int(v) for v in ignore_values]

    @property
    def objects_ids(self) -> List[int]:
        return list(range(len(self._object_values)))

    def gt_mask(self, object_id: int = 0) -> np.ndarray:
        """H x W int32: 1 object, 0 background, -1 ignore."""
        mask = (self._labels == self._object_values[object_id]).astype(np.int32)
        if self._ignore_values:
            mask[np.isin(self._labels, self._ignore_values)] = -1
        return mask
