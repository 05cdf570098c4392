"""ssTEM (Drosophila serial-section TEM, mitochondria; SimpleClick's medical evaluation layout)."""
import cv2
import numpy as np

from .base import PathLike
from .paired import Encoded, PairedFolderDataset


class ssTEMDataset(PairedFolderDataset):  # noqa: N801 (published name)
    """``<root>/raw/<name>.tif`` images and ``<root>/mitochondria/<name>.png`` masks: every 4-connected component
    of non-zero channel 0 is one object."""

    name = "ssTEM"
    image_suffixes = frozenset({".tif"})
    mask_suffixes = frozenset({".png"})

    def __init__(self, dataset_path: PathLike, images_dir_name: str = "raw",
                 masks_dir_name: str = "mitochondria") -> None:
        super().__init__(dataset_path, images_dir_name, masks_dir_name)

    def _encode(self, mask: np.ndarray) -> Encoded:
        count, labels = cv2.connectedComponents(np.ascontiguousarray(mask[:, :, 0]), connectivity=4)
        return labels.astype(np.int32), list(range(1, count)), []
