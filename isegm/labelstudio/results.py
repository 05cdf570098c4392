"""Label Studio's side of a mask: a brush result as Label Studio stores it, a prediction of several, and a task for
Label Studio's JSON import (the backend answers with predictions; ``segment_everything.py --labelstudio`` writes
tasks)."""
import uuid
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..utils.extras import require_extra
from .labeling_config import LabelingConfig

mask2rle = require_extra("labelstudio", "label_studio_converter.brush", "Label Studio's brush masks").mask2rle


def brush_result(config: LabelingConfig, mask: np.ndarray, score: float, note: Optional[str] = None
                 ) -> Dict[str, Any]:
    """One brush region of ``mask`` (H x W bool) under the config's brush label; ``note`` becomes the region's meta
    text (shown in Label Studio's region panel)."""
    height, width = mask.shape
    rle = mask2rle(mask.astype(np.uint8) * 255)
    result = {"id": uuid.uuid4().hex[:10], "from_name": config.brush_name, "to_name": config.image_name,
              "type": "brushlabels", "original_width": width, "original_height": height, "image_rotation": 0,
              "value": {"format": "rle", "rle": [int(b) for b in rle], "brushlabels": [config.brush_label]},
              "score": score, "readonly": False}
    if note:
        result["meta"] = {"text": [note]}
    return result


def prediction(config: LabelingConfig, masks: Sequence[Tuple[np.ndarray, float]], model_version: str,
               note: Optional[str] = None) -> Dict[str, Any]:
    """A prediction of one brush region per (mask, score); its score is their mean (0 without masks)."""
    results = [brush_result(config, mask, score, note) for mask, score in masks]
    score = float(np.mean([s for _, s in masks])) if masks else 0.0
    return {"result": results, "score": score, "model_version": model_version}


def import_task(config: LabelingConfig, image_url: str, predictions: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """A task in Label Studio's JSON import format: the image under the config's image variable, with predictions."""
    return {"data": {config.image_value: image_url}, "predictions": list(predictions)}
