"""Berkeley (RITM layout)."""
from .base import PathLike
from .grabcut import GrabCutDataset


class BerkeleyDataset(GrabCutDataset):
    """GrabCut's mask encoding with ``<root>/images/<name>.<ext>`` images and ``<root>/masks/<name>.<ext>``
    masks."""

    name = "Berkeley"

    def __init__(self, dataset_path: PathLike) -> None:
        super().__init__(dataset_path, images_dir_name="images", masks_dir_name="masks")
