"""Datasets stored as an image folder and a mask folder whose files pair up by name (file stem)."""
from pathlib import Path
from typing import Collection, List, Optional, Tuple

import numpy as np

from ..sample import DSample
from ..io import IMAGE_SUFFIXES, list_files
from .base import EvaluationDataset, PathLike, SampleError

Encoded = Tuple[np.ndarray, List[int], List[int]]


class PairedFolderDataset(EvaluationDataset):
    """One sample per image of ``<root>/<images_dir>``; its mask is the file of ``<root>/<masks_dir>`` with the
    same stem. Subclasses turn the mask (as ``cv2.imread`` gives it, H x W x 3 BGR) into a label map, the label
    values of its objects and the label values to ignore (``_encode``)."""

    image_suffixes: Collection[str] = IMAGE_SUFFIXES
    mask_suffixes: Collection[str] = IMAGE_SUFFIXES

    def __init__(self, dataset_path: PathLike, images_dir_name: PathLike, masks_dir_name: PathLike) -> None:
        super().__init__()
        root = Path(dataset_path)
        self.layout = (f"<root>/{images_dir_name}/<name>{_suffixes(self.image_suffixes)} images and "
                       f"<root>/{masks_dir_name}/<name>{_suffixes(self.mask_suffixes)} masks, paired by name")
        self._require_dir(root)
        images_dir = self._require_dir(root / images_dir_name)
        self._masks_dir = self._require_dir(root / masks_dir_name)
        masks = {p.stem: p for p in list_files(self._masks_dir, self.mask_suffixes)}
        for image_path in list_files(images_dir, self.image_suffixes):
            self._add(image_path.stem, (image_path, masks.get(image_path.stem)))
        self._finish(images_dir)

    def _load(self, sample_id: str, key: Tuple[Path, Optional[Path]]) -> DSample:
        image_path, mask_path = key
        if mask_path is None:
            raise SampleError(f"{self.name}: image {image_path} has no mask {self._masks_dir}/{sample_id}.*")
        image = self._read_image(image_path)
        labels, object_values, ignore_values = self._encode(self._read_mask(mask_path))
        return self._make_sample(image, image_path, labels, mask_path, object_values, ignore_values, sample_id)

    def _encode(self, mask: np.ndarray) -> Encoded:
        raise NotImplementedError


def _suffixes(suffixes: Collection[str]) -> str:
    """``.png`` or ``.{bmp,jpg,...}``."""
    names = sorted(s.lstrip(".") for s in suffixes)
    return f".{names[0]}" if len(names) == 1 else ".{" + ",".join(names) + "}"


def unique_nonzero(labels: np.ndarray) -> List[int]:
    """Sorted label values other than 0."""
    return [int(v) for v in np.unique(labels) if v != 0]
