"""SBD (Semantic Boundaries Dataset) instance masks, one sample per instance."""
from pathlib import Path
from typing import Tuple

import numpy as np

from ..io import read_sbd_instances
from ..sample import DSample
from .base import EvaluationDataset, PathLike, SampleError
from .paired import unique_nonzero


class SBDEvaluationDataset(EvaluationDataset):
    """``<root>/<split>.txt`` lists image names; ``<root>/img/<name>.jpg`` images and ``<root>/inst/<name>.mat``
    (``GTinst.Segmentation``: 0 background, k = instance k). One sample ``<name>:<k>`` per instance."""

    name = "SBD"
    layout = ("<root>/{train,val}.txt (image names), <root>/img/<name>.jpg, "
              "<root>/inst/<name>.mat with GTinst.Segmentation")

    def __init__(self, dataset_path: PathLike, split: str = "val") -> None:
        super().__init__()
        if split not in ("train", "val"):
            raise ValueError(f"SBD split must be 'train' or 'val', not {split!r}")
        root = self._require_dir(Path(dataset_path))
        self._images_dir = self._require_dir(root / "img")
        self._insts_dir = self._require_dir(root / "inst")
        split_file = root / f"{split}.txt"
        for image_name in self._read_list(split_file):
            try:
                instances = read_sbd_instances(self._insts_dir / f"{image_name}.mat", self.name)
            except SampleError as error:
                raise self._layout_error(str(error)) from error
            for instance_id in unique_nonzero(instances):
                self._add(f"{image_name}:{instance_id}", (image_name, instance_id))
        self._finish(split_file)

    def _load(self, sample_id: str, key: Tuple[str, int]) -> DSample:
        image_name, instance_id = key
        image_path = self._images_dir / f"{image_name}.jpg"
        mask_path = self._insts_dir / f"{image_name}.mat"
        image = self._read_image(image_path)
        labels = (read_sbd_instances(mask_path, self.name) == instance_id).astype(np.int32)
        return self._make_sample(image, image_path, labels, mask_path, [1], [], sample_id)

