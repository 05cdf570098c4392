"""SA-1B (Segment Anything 1-Billion): a seeded subset of non-overlapping masks per image."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..sample import DSample
from ..io import list_files
from .base import PathLike, SampleError, SubsetDataset

MASKS_PER_IMAGE = 5
ID_FORM = "<image id>:<annotation index>"


def _mask_utils() -> Any:
    """``pycocotools.mask``, imported on first use so that the other loaders do not need pycocotools."""
    from pycocotools import mask

    return mask


def _to_rle(segmentation: Any, height: int, width: int) -> Dict[str, Any]:
    """COCO segmentation (polygons, uncompressed or compressed RLE) as compressed RLE."""
    if isinstance(segmentation, list):
        return _mask_utils().merge(_mask_utils().frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return _mask_utils().frPyObjects(segmentation, height, width)
    return segmentation


class SA1BDataset(SubsetDataset):
    """``<root>/annotations/<id>.json`` (SA-1B: ``image.{height, width}``, ``annotations[i].segmentation`` as
    RLE) and ``<root>/images/<id>.jpg``. One sample ``<id>:<i>`` per chosen annotation.

    The first ``num_images`` annotation files sorted by name are used (the published loader takes directory
    order). From each, up to five non-overlapping masks of at least ``min_object`` pixels are drawn at random as
    the published loader does, with ``numpy.random.default_rng(seed)``; ``subset_file`` instead lists the exact
    sample ids to use, in order.
    """

    name = "SA1B"

    def __init__(self, dataset_path: PathLike, annotation_dir: str = "annotations", image_dir: str = "images",
                 min_object: int = 1, num_images: int = 1000, seed: int = 0,
                 subset_file: Optional[PathLike] = None) -> None:
        super().__init__()
        self.layout = f"<root>/{annotation_dir}/<id>.json (SA-1B annotations) and <root>/{image_dir}/<id>.jpg"
        root = self._require_dir(Path(dataset_path))
        self._annotations_dir = self._require_dir(root / annotation_dir)
        self._images_dir = self._require_dir(root / image_dir)
        self._cached: Optional[Tuple[Path, Dict[str, Any]]] = None
        if subset_file is not None:
            self._entries = self._subset_keys(subset_file, ID_FORM)
            self._finish(Path(subset_file))
            return
        rng = np.random.default_rng(seed)
        for path in list_files(self._annotations_dir, {".json"})[:num_images]:
            try:
                chosen = self._choose_masks(self._read_annotations(path), min_object, rng)
            except SampleError as error:
                raise self._layout_error(str(error)) from error
            except (KeyError, TypeError, ValueError) as error:
                raise self._layout_error(f"{path} has a malformed segmentation ({error!r})") from error
            for index in chosen:
                self._add(f"{path.stem}:{index}", (path.stem, index))
        self._finish(self._annotations_dir)

    @staticmethod
    def _choose_masks(info: Dict[str, Any], min_object: int, rng: np.random.Generator) -> List[int]:
        """Indices of up to five masks that do not overlap one another: as published, random draws among the
        masks of at least ``min_object`` pixels, at most twice as many draws as there are such masks, a drawn
        mask kept when it overlaps none of those kept before."""
        height, width = info["image"]["height"], info["image"]["width"]
        rles = [_to_rle(a["segmentation"], height, width) for a in info["annotations"]]
        candidates = [i for i, rle in enumerate(rles) if _mask_utils().area(rle) >= min_object]
        wanted = min(len(candidates), MASKS_PER_IMAGE)
        chosen: List[int] = []
        covered = np.zeros((height, width), bool)
        for _ in range(2 * len(candidates)):
            if len(chosen) == wanted:
                break
            position = int(rng.integers(len(candidates)))
            mask = _mask_utils().decode(rles[candidates[position]]).astype(bool)
            if not (mask & covered).any():
                chosen.append(candidates.pop(position))
                covered |= mask
        return sorted(chosen)

    def _read_annotations(self, path: Path) -> Dict[str, Any]:
        """The parsed annotation file (the last one read is kept: an image's samples are consecutive)."""
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1]
        try:
            info = json.loads(path.read_text())
            if not isinstance(info["annotations"], list) or min(info["image"]["height"], info["image"]["width"]) < 1:
                raise ValueError("no annotation list or no image size")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SampleError(f"{self.name}: cannot read SA-1B annotations from {path} ({error})") from error
        self._cached = (path, info)
        return info

    def _load(self, sample_id: str, key: Tuple[str, int]) -> DSample:
        image_id, index = key
        image_path = self._images_dir / f"{image_id}.jpg"
        mask_path = self._annotations_dir / f"{image_id}.json"
        info = self._read_annotations(mask_path)
        height, width = info["image"]["height"], info["image"]["width"]
        try:
            segmentation = info["annotations"][index]["segmentation"]
            labels = _mask_utils().decode(_to_rle(segmentation, height, width)).astype(np.int32)
        except (IndexError, KeyError, TypeError, ValueError) as error:
            raise SampleError(f"{self.name}: {mask_path} has no readable annotation {index} ({error!r})") from error
        image = self._read_image(image_path)
        return self._make_sample(image, image_path, labels, mask_path, [1], [], sample_id)
