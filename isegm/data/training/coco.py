"""COCO-format instance annotations (for training on one's own data): whole instances or FMG proposals."""
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from pycocotools import mask as mask_utils

from ..io import DatasetError, PathLike, SampleError, read_rgb_image
from ...signals import NO_SIGNAL, SLIDER
from ..targets import TargetDataset, TrainTarget
from .common import ProposalSource, check_target, unknown_signal
from .instances import instance_labels
from .proposals import BUGGY_MASK_THRESH

logger = logging.getLogger(__name__)


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """H x W bool mask of a COCO ``segmentation``: a list of polygons ``[[x1, y1, x2, y2, ...], ...]``, an
    uncompressed RLE ``{'size': [h, w], 'counts': [int, ...]}`` or a compressed RLE (``counts`` a string).
    SampleError (prefixed with ``where``) when it cannot be decoded or its size is not ``height`` x ``width``."""
    try:
        if isinstance(segmentation, list):
            polygons = [polygon for polygon in segmentation if len(polygon) >= 6]
            if not polygons:
                return np.zeros((height, width), bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            if list(segmentation["size"]) != [height, width]:
                raise SampleError(f"{where}: RLE size {segmentation['size']} is not the image size "
                                  f"{[height, width]}")
            counts = segmentation["counts"]
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
        else:
            raise SampleError(f"{where}: segmentation is neither polygons nor RLE")
        mask = mask_utils.decode(rle)
    except SampleError:
        raise
    except Exception as error:  # pycocotools raises assorted errors on malformed input
        raise SampleError(f"{where}: cannot decode segmentation ({type(error).__name__}: {error})") from error
    if mask.shape[:2] != (height, width):
        raise SampleError(f"{where}: decoded mask is {mask.shape[0]}x{mask.shape[1]}, expected {height}x{width}")
    return mask.reshape(height, width) != 0


class CocoInstanceDataset(TargetDataset):
    """COCO instances, one item per image that has at least one non-crowd annotation.

    ``annotation_file`` is a COCO instances json (``images[{id, file_name, height, width}]``,
    ``annotations[{image_id, segmentation, iscrowd}]``); images are read from ``images_dir / file_name``.
    ``part_path`` is an optional proposal pickle keyed by the ``file_name`` stem (``000123.jpg`` -> ``000123``).

    * ``none``: the non-crowd instances that pass the buggy-mask filter (``TrainTarget.instances``; the click
      training set picks the target); crowd regions (``iscrowd`` 1) outside them are returned as ``ignore``;
    * ``slider``: a proposal of the image (as for SBD), otherwise a whole instance with ``gra`` 1.0.
    """

    name = "COCO"
    signals = (NO_SIGNAL, SLIDER)

    def __init__(self, annotation_file: PathLike, images_dir: PathLike, part_path: Optional[PathLike] = None,
                 buggy_mask_thresh: float = BUGGY_MASK_THRESH) -> None:
        annotation_file, self._images_dir = Path(annotation_file), Path(images_dir)
        if not self._images_dir.is_dir():
            raise DatasetError(f"{self.name}: image folder {self._images_dir} not found")
        try:
            data = json.loads(annotation_file.read_text())
            images = {int(image["id"]): image for image in data["images"]}
            annotations: Dict[int, List[dict]] = {}
            for annotation in data["annotations"]:
                annotations.setdefault(int(annotation["image_id"]), []).append(annotation)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{self.name}: {annotation_file} is not a readable COCO instances json "
                               f"({type(error).__name__}: {error})") from error
        self._images: List[dict] = []
        self._annotations: List[List[dict]] = []
        for image_id, image in images.items():
            image_annotations = annotations.get(image_id, [])
            if any(not a.get("iscrowd", 0) for a in image_annotations):
                self._images.append(image)
                self._annotations.append(image_annotations)
        if not self._images:
            raise DatasetError(f"{self.name}: {annotation_file} has no image with a non-crowd annotation")
        self.image_ids: List[str] = [Path(image["file_name"]).stem for image in self._images]
        self._proposals = ProposalSource(part_path)
        self._buggy_mask_thresh = buggy_mask_thresh
        logger.info("%s training: %d images from %s", self.name, len(self._images), annotation_file)

    def __len__(self) -> int:
        return len(self._images)

    def target(self, index: int, rng: np.random.Generator, signal: str) -> TrainTarget:
        if signal not in self.signals:
            raise unknown_signal(self.name, signal, self.signals)
        info, image_id = self._images[index], self.image_ids[index]
        image = read_rgb_image(self._images_dir / info["file_name"], self.name)
        height, width = image.shape[:2]
        if (info.get("height", height), info.get("width", width)) != (height, width):
            raise SampleError(f"{self.name}: image {info['file_name']} is {height}x{width} but the json says "
                              f"{info.get('height')}x{info.get('width')}")

        if signal == SLIDER:
            proposal = self._proposals.target(image_id, image, rng, self._buggy_mask_thresh, self.name)
            if proposal is not None:
                return proposal

        where = f"{self.name}: {info['file_name']}"
        instances, crowd = [], np.zeros((height, width), bool)
        for annotation in self._annotations[index]:
            mask = decode_segmentation(annotation.get("segmentation"), height, width,
                                       f"{where} annotation {annotation.get('id')}")
            if annotation.get("iscrowd", 0):
                crowd |= mask
            else:
                instances.append((annotation.get("id"), mask))
        labels, kept = instance_labels([m for _, m in instances], self._buggy_mask_thresh, where)
        ignore = crowd & (labels == 0) if crowd.any() else None
        ids = ",".join(str(instances[i][0]) for i in kept)
        return check_target(TrainTarget(image, (labels > 0).astype(np.uint8), ignore=ignore, instances=labels,
                                        gra=1.0 if signal == SLIDER else None, sample_id=f"{image_id}:{ids}"),
                            self.name)
