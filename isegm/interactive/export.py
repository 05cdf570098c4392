"""Saving and loading annotations: an instance PNG (ids 1..n), a coloured preview and COCO JSON with RLE masks."""
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .annotation import Annotation, palette

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]


def coloured_preview(image: np.ndarray, instances: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """RGB image with each object id blended in its palette colour and outlined."""
    n = int(instances.max()) if instances.size else 0
    colours = palette(max(n, 1)).astype(np.float32)
    out = image.astype(np.float32).copy()
    fg = instances > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[instances[fg]]
    out = out.astype(np.uint8)
    for object_id in range(1, n + 1):
        contours, _ = cv2.findContours((instances == object_id).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a boolean mask, ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_document(instances: np.ndarray, file_name: str, categories: Optional[Dict[int, str]] = None,
                  image_id: int = 1) -> dict:
    """A COCO instances document for one image: one annotation per object id present in ``instances``."""
    height, width = instances.shape
    annotations = []
    for object_id in sorted(int(v) for v in np.unique(instances) if v > 0):
        mask = instances == object_id
        rle = encode_rle(mask)
        annotations.append({
            "id": object_id, "image_id": image_id, "category_id": 1, "segmentation": rle,
            "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
            "attributes": {"name": (categories or {}).get(object_id, f"object {object_id}")},
        })
    return {"images": [{"id": image_id, "file_name": file_name, "height": height, "width": width}],
            "annotations": annotations, "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}


def save_annotation(image: np.ndarray, instances: np.ndarray, image_path: PathLike, output_dir: PathLike,
                    names: Optional[Dict[int, str]] = None) -> Dict[str, Path]:
    """Write ``<stem>.png`` (instance ids, 8- or 16-bit), ``<stem>_preview.png`` and ``<stem>.json`` (COCO, RLE)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    paths = {"instances": output_dir / f"{stem}.png", "preview": output_dir / f"{stem}_preview.png",
             "coco": output_dir / f"{stem}.json"}
    dtype = np.uint8 if instances.max(initial=0) < 256 else np.uint16
    write_png(paths["instances"], instances.astype(dtype))
    write_png(paths["preview"], cv2.cvtColor(coloured_preview(image, instances), cv2.COLOR_RGB2BGR))
    document = coco_document(instances, Path(image_path).name, names)
    tmp = paths["coco"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(paths["coco"])
    logger.info("saved %d objects to %s", len(document["annotations"]), paths["instances"])
    return paths


def export_annotation(image: np.ndarray, annotation: Annotation, image_path: PathLike, output_dir: PathLike
                      ) -> Dict[str, Path]:
    """:func:`save_annotation` of the finished objects of ``annotation`` (with their names)."""
    return save_annotation(image, annotation.instance_mask(), image_path, output_dir, annotation.names())


def write_png(path: Path, array: np.ndarray) -> None:
    """``array`` as a PNG at ``path``, written to a temporary name and renamed (no half-written file)."""
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path.name}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)


def read_coco_masks(path: PathLike) -> List[np.ndarray]:
    """The annotations' boolean masks of a COCO JSON file (in annotation order), decoded with pycocotools."""
    document = json.loads(Path(path).read_text())
    masks = []
    for annotation in document["annotations"]:
        rle = dict(annotation["segmentation"])
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        masks.append(mask_utils.decode([rle])[:, :, 0].astype(bool))
    return masks


def read_mask(path: PathLike, shape: Sequence[int]) -> np.ndarray:
    """An instance or binary mask PNG as an integer array of ``shape`` (H, W)."""
    path = Path(path)
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if mask is None:
        raise ValueError(f"{path}: not a readable mask image")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if tuple(mask.shape) != tuple(shape[:2]):
        raise ValueError(f"{path}: the mask is {mask.shape[1]} x {mask.shape[0]}, the image "
                         f"{shape[1]} x {shape[0]}; a mask must have the image's size")
    return mask.astype(np.int64)


def read_object_names(path: PathLike) -> Dict[int, str]:
    """Object id -> name (``attributes.name``, '' without one) of a COCO JSON file written by
    :func:`save_annotation`; empty when the file cannot be read or is not in that form."""
    try:
        return {annotation["id"]: annotation.get("attributes", {}).get("name", "")
                for annotation in json.loads(Path(path).read_text())["annotations"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
