"""BraTS 2020 slices (SimpleClick's medical evaluation layout)."""
import numpy as np

from .base import PathLike
from .paired import Encoded, PairedFolderDataset


class BraTSDataset(PairedFolderDataset):
    """``<root>/image/<name>.png`` images and ``<root>/annotation/<name>.png`` masks: non-zero channel 0 is the
    object. One object per image."""

    name = "BraTS"
    image_suffixes = frozenset({".png"})
    mask_suffixes = frozenset({".png"})

    def __init__(self, dataset_path: PathLike, images_dir_name: str = "image",
                 masks_dir_name: str = "annotation") -> None:
        super().__init__(dataset_path, images_dir_name, masks_dir_name)

    def _encode(self, mask: np.ndarray) -> Encoded:
        return (mask[:, :, 0] > 0).astype(np.int32), [1], []
