"""DAVIS (RITM's 345-frame interactive-segmentation subset)."""
import numpy as np

from .base import PathLike
from .paired import Encoded, PairedFolderDataset


class DavisDataset(PairedFolderDataset):
    """``<root>/img/<name>.<ext>`` images and ``<root>/gt/<name>.<ext>`` masks: any non-zero pixel in any channel
    is the object. One object per image."""

    name = "DAVIS"

    def __init__(self, dataset_path: PathLike, images_dir_name: str = "img", masks_dir_name: str = "gt") -> None:
        super().__init__(dataset_path, images_dir_name, masks_dir_name)

    def _encode(self, mask: np.ndarray) -> Encoded:
        return (mask.max(axis=2) > 0).astype(np.int32), [1], []
