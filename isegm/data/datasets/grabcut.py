"""GrabCut (RITM layout)."""
import numpy as np

from .base import PathLike
from .paired import Encoded, PairedFolderDataset


class GrabCutDataset(PairedFolderDataset):
    """``<root>/data_GT/<name>.<ext>`` images and ``<root>/boundary_GT/<name>.<ext>`` masks, read from channel 0:
    values above 128 are the object, 128 the ignored boundary band, the rest background. One object per image."""

    name = "GrabCut"

    def __init__(self, dataset_path: PathLike, images_dir_name: str = "data_GT",
                 masks_dir_name: str = "boundary_GT") -> None:
        super().__init__(dataset_path, images_dir_name, masks_dir_name)

    def _encode(self, mask: np.ndarray) -> Encoded:
        raw = mask[:, :, 0]
        labels = np.where(raw > 128, 1, np.where(raw == 128, -1, 0)).astype(np.int32)
        return labels, [1], [-1]
