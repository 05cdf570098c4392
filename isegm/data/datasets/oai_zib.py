"""OAI-ZIB knee MRI slices (SimpleClick's medical evaluation layout)."""
from pathlib import Path

import numpy as np

from .base import PathLike
from .paired import Encoded, PairedFolderDataset, unique_nonzero


class OAIZIBDataset(PairedFolderDataset):
    """``<root>/<split>/image/<name>.png`` images and ``<root>/<split>/annotations/<name>.png`` masks: every
    non-zero value of channel 0 (femoral and tibial cartilage) is one object."""

    name = "OAIZIB"
    image_suffixes = frozenset({".png"})
    mask_suffixes = frozenset({".png"})

    def __init__(self, dataset_path: PathLike, split: str = "test", images_dir_name: str = "image",
                 masks_dir_name: str = "annotations") -> None:
        super().__init__(dataset_path, Path(split) / images_dir_name, Path(split) / masks_dir_name)

    def _encode(self, mask: np.ndarray) -> Encoded:
        labels = mask[:, :, 0].astype(np.int32)
        return labels, unique_nonzero(labels), []
