"""PartImageNet part masks, one sample per part category present in an image."""
import ast
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..sample import DSample
from ..io import IMAGE_SUFFIXES, list_files
from .base import EvaluationDataset, PathLike, SampleError

BACKGROUND = 40
UNEVALUATED_CATEGORY = 0  # the published loader lists labels with a helper that drops 0


class PartINEvaluationDataset(EvaluationDataset):
    """``<root>/class_names.json`` (``{"categories": [{"id": 0, "name": "Quadruped Head"}, ...]}``),
    ``<root>/images/<split>/<name>.<ext>`` images and ``<root>/annotations/<split>/<name>.png`` masks whose channel
    0 holds the part category id (40 = background). One sample ``<name>:<id>`` per category present, category 0
    excepted, as in the published evaluation.

    A category name is ``<class> <part>``: ``class_name`` keeps the categories of that class (first word, lower
    case), ``part_name`` those of that part (the remaining words, lower case, e.g. ``head``, ``side mirror``).
    """

    name = "PartImageNet"

    def __init__(self, dataset_path: PathLike, split: str = "val", images_dir_name: str = "images",
                 masks_dir_name: str = "annotations", class_name: Optional[str] = None,
                 part_name: Optional[str] = None) -> None:
        super().__init__()
        self.layout = (f"<root>/class_names.json, <root>/{images_dir_name}/{split}/<name>.<ext> images, "
                       f"<root>/{masks_dir_name}/{split}/<name>.png masks (category id per pixel, 40 background)")
        root = self._require_dir(Path(dataset_path))
        categories = self._read_categories(self._require_file(root / "class_names.json"))
        for value, allowed, what in ((class_name, {c for c, _ in categories.values()}, "class_name"),
                                     (part_name, {p for _, p in categories.values()}, "part_name")):
            if value is not None and value not in allowed:
                raise ValueError(f"PartImageNet {what} {value!r} is not one of: {', '.join(sorted(allowed))}")
        images_dir = self._require_dir(root / images_dir_name / split)
        self._masks_dir = self._require_dir(root / masks_dir_name / split)
        masks = {p.stem: p for p in list_files(self._masks_dir, {".png"})}
        for image_path in list_files(images_dir, IMAGE_SUFFIXES):
            mask_path = masks.get(image_path.stem)
            if mask_path is None:  # get_sample reports it
                self._add(image_path.stem, (image_path, None, BACKGROUND))
                continue
            try:
                present = np.unique(self._read_mask(mask_path)[:, :, 0])
            except SampleError as error:
                raise self._layout_error(str(error)) from error
            # as published (so that NoC tables stay comparable): category 0 is never evaluated
            for category_id in (int(v) for v in present if v not in (BACKGROUND, UNEVALUATED_CATEGORY)):
                category_class, category_part = categories.get(category_id, ("", ""))
                if class_name not in (None, category_class) or part_name not in (None, category_part):
                    continue
                self._add(f"{image_path.stem}:{category_id}", (image_path, mask_path, category_id))
        self._finish(images_dir)

    def _read_categories(self, path: Path) -> Dict[int, Tuple[str, str]]:
        """Category id -> (class, part), lower case. The published loader ``eval``s this file; it is parsed here
        as JSON or, failing that, as a Python literal."""
        text = path.read_text()
        try:
            try:
                content = json.loads(text)
            except ValueError:
                content = ast.literal_eval(text)
            categories = {}
            for item in content["categories"]:
                words = str(item["name"]).lower().split()
                categories[int(item["id"])] = (words[0], " ".join(words[1:]))
            return categories
        except (ValueError, SyntaxError, KeyError, TypeError, IndexError) as error:
            raise self._layout_error(f"{path} is not a category list ({error})") from error

    def _load(self, sample_id: str, key: Tuple[Path, Optional[Path], int]) -> DSample:
        image_path, mask_path, category_id = key
        if mask_path is None:
            raise SampleError(f"{self.name}: image {image_path} has no mask {self._masks_dir}/{sample_id}.png")
        image = self._read_image(image_path)
        labels = (self._read_mask(mask_path)[:, :, 0] == category_id).astype(np.int32)
        return self._make_sample(image, image_path, labels, mask_path, [1], [], sample_id)
