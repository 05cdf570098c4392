"""PASCAL VOC object (instance) masks, one sample per instance."""
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image

from ..sample import DSample
from .base import EvaluationDataset, PathLike, SampleError

VOID = 255


class PascalVocDataset(EvaluationDataset):
    """``<root>/ImageSets/Segmentation/<split>.txt`` lists image ids; ``<root>/JPEGImages/<id>.jpg`` images and
    ``<root>/SegmentationObject/<id>.png`` palette masks (index 0 background, k = instance k, 255 void = ignored).
    One sample ``<id>:<k>`` per instance."""

    name = "PascalVOC"
    layout = ("<root>/ImageSets/Segmentation/<split>.txt (image ids), <root>/JPEGImages/<id>.jpg, "
              "<root>/SegmentationObject/<id>.png (palette indices: 0 background, k instance, 255 void)")

    def __init__(self, dataset_path: PathLike, split: str = "val") -> None:
        super().__init__()
        if split not in ("train", "val", "trainval"):
            raise ValueError(f"PascalVOC split must be 'train', 'val' or 'trainval', not {split!r}")
        root = self._require_dir(Path(dataset_path))
        self._images_dir = self._require_dir(root / "JPEGImages")
        self._masks_dir = self._require_dir(root / "SegmentationObject")
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        for image_id in self._read_list(split_file):
            try:
                indices = self._read_indices(self._masks_dir / f"{image_id}.png")
            except SampleError as error:
                raise self._layout_error(str(error)) from error
            for instance_id in np.unique(indices):
                if instance_id not in (0, VOID):
                    self._add(f"{image_id}:{instance_id}", (image_id, int(instance_id)))
        self._finish(split_file)

    def _read_indices(self, path: Path) -> np.ndarray:
        """Palette indices of a VOC mask (the published loader converts the colours to gray levels instead)."""
        try:
            with Image.open(path) as mask:
                if mask.mode not in ("P", "L"):
                    raise SampleError(f"{self.name}: mask {path} is a {mask.mode} image, not palette indices")
                return np.asarray(mask, dtype=np.int32)
        except OSError as error:
            raise SampleError(f"{self.name}: cannot read mask {path}") from error

    def _load(self, sample_id: str, key: Tuple[str, int]) -> DSample:
        image_id, instance_id = key
        image_path = self._images_dir / f"{image_id}.jpg"
        mask_path = self._masks_dir / f"{image_id}.png"
        image = self._read_image(image_path)
        indices = self._read_indices(mask_path)
        labels = np.where(indices == instance_id, 1, np.where(indices == VOID, -1, 0)).astype(np.int32)
        return self._make_sample(image, image_path, labels, mask_path, [1], [-1], sample_id)
