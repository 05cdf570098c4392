"""PASCAL-Part part masks, one sample per object part."""
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..io import read_pascalpart_anno
from ..sample import DSample
from .base import PathLike, SampleError, SubsetDataset

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
SUBSET_DIVISOR = 10  # without filters the published evaluation keeps int(parts / 10) parts
ID_FORM = "<image id>:<object index>:<part index>"


class PascalPartEvaluationDataset(SubsetDataset):
    """``<root>/ImageSets/Main/part_<split>.txt`` lists image ids; ``<root>/JPEGImages/<id>.jpg`` images and
    ``<root>/Annotations_Part/<id>.mat`` (``anno.objects[k].{class, mask, parts[j].{part_name, mask}}``). One
    sample ``<id>:<k>:<j>`` per part j of object k; its mask is the part mask.

    ``class_name`` keeps the parts of objects of that class, ``part_name`` the parts whose name before any
    ``_<number>`` suffix is ``part_name`` (for example ``lear``, ``wheel``). Without either filter a seeded random
    tenth of the parts is kept (``numpy.random.default_rng(seed)``, in split-file order), as the published
    evaluation does without a seed; ``subset_file`` instead lists the exact sample ids to use, in order.
    """

    name = "PascalPart"
    layout = ("<root>/ImageSets/Main/part_<split>.txt (image ids), <root>/JPEGImages/<id>.jpg, "
              "<root>/Annotations_Part/<id>.mat (PASCAL-Part anno struct)")

    def __init__(self, dataset_path: PathLike, split: str = "val", class_name: Optional[str] = None,
                 part_name: Optional[str] = None, seed: int = 0, subset_file: Optional[PathLike] = None) -> None:
        super().__init__()
        if split not in ("train", "val"):
            raise ValueError(f"PascalPart split must be 'train' or 'val', not {split!r}")
        if class_name is not None and class_name not in CLASSES:
            raise ValueError(f"PascalPart class_name {class_name!r} is not one of: {', '.join(CLASSES)}")
        if subset_file is not None and (class_name is not None or part_name is not None):
            raise ValueError("PascalPart: subset_file lists exact samples; it cannot be combined with "
                             "class_name or part_name")
        root = self._require_dir(Path(dataset_path))
        self._images_dir = self._require_dir(root / "JPEGImages")
        self._anno_dir = self._require_dir(root / "Annotations_Part")
        if subset_file is not None:
            self._entries = self._subset_keys(subset_file, ID_FORM)
            self._finish(Path(subset_file))
            return
        split_file = root / "ImageSets" / "Main" / f"part_{split}.txt"
        parts = self._list_parts(self._read_list(split_file), class_name, part_name)
        if class_name is None and part_name is None:
            chosen = np.random.default_rng(seed).choice(len(parts), len(parts) // SUBSET_DIVISOR, replace=False)
            parts = [parts[i] for i in np.sort(chosen)]
        self._entries = parts
        self._finish(split_file)

    def _list_parts(self, image_ids: List[str], class_name: Optional[str],
                    part_name: Optional[str]) -> List[Tuple[str, Tuple[str, int, int]]]:
        parts = []
        for image_id in image_ids:
            try:
                objects = read_pascalpart_anno(self._anno_dir / f"{image_id}.mat", self.name)
            except SampleError as error:
                raise self._layout_error(str(error)) from error
            for k in range(objects.shape[1]):
                if class_name is not None and str(objects["class"][0, k][0]) != class_name:
                    continue
                object_parts = objects["parts"][0, k]
                for j in range(object_parts.shape[1]):
                    if part_name is not None and str(object_parts["part_name"][0, j][0]).split("_")[0] != part_name:
                        continue
                    parts.append((f"{image_id}:{k}:{j}", (image_id, k, j)))
        return parts

    def _load(self, sample_id: str, key: Tuple[str, int, int]) -> DSample:
        image_id, k, j = key
        image_path = self._images_dir / f"{image_id}.jpg"
        mask_path = self._anno_dir / f"{image_id}.mat"
        objects = read_pascalpart_anno(mask_path, self.name)
        try:
            part_mask = objects["parts"][0, k]["mask"][0, j]
        except (KeyError, ValueError, IndexError) as error:
            raise SampleError(f"{self.name}: {mask_path} has no part {j} of object {k}") from error
        image = self._read_image(image_path)
        labels = (np.asarray(part_mask) != 0).astype(np.int32)
        return self._make_sample(image, image_path, labels, mask_path, [1], [], sample_id)
