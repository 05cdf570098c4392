"""The prediction options of the interactive tools, with their published defaults (the one source of them)."""
from dataclasses import dataclass
from typing import Optional

import torch

from ..inference.predictors import BasePredictor, get_predictor
from ..inference.transforms.zoom_in import min_crop_size_for


def model_side(model: torch.nn.Module) -> Optional[int]:
    """The longer side of the images ``model`` was trained at (None when it does not say)."""
    cfg = getattr(model, "cfg", None)
    return max(cfg.img_size) if cfg is not None and hasattr(cfg, "img_size") else None


@dataclass(frozen=True)
class PredictorSettings:
    """The published demo's prediction options (defaults as published)."""
    use_zoom_in: bool = True
    fixed_crop: bool = True
    skip_clicks: int = -1
    target_size: int = 448
    expansion_ratio: float = 1.4
    max_size: Optional[int] = 800
    with_flip: bool = True
    precision: str = "fp32"  # fp32 | bf16 | auto (see isegm.inference.precision)

    def zoom_in_params(self, model_size: Optional[int] = None) -> Optional[dict]:
        """The zoom-in options; the crop is resized to ``target_size``, or to ``model_size`` (the side the model
        was trained at) when that is smaller, with the crop floor scaled to it as well, so that a small model (the
        quick start's, 128 px) sees objects at its own scale."""
        if not self.use_zoom_in:
            return None
        params = {"skip_clicks": self.skip_clicks, "expansion_ratio": self.expansion_ratio}
        target = self.target_size
        if model_size and model_size < target:
            target = model_size
            params["min_crop_size"] = min_crop_size_for(model_size)
        params["target_size"] = (target, target) if self.fixed_crop else target
        return params

    def make_predictor(self, model: torch.nn.Module, device: torch.device, prob_thresh: float = 0.5,
                       with_flip: Optional[bool] = None) -> BasePredictor:
        """A predictor with these options (``with_flip`` overrides the setting, e.g. for the strip)."""
        return get_predictor(model, "NoBRS", device, prob_thresh=prob_thresh,
                             with_flip=self.with_flip if with_flip is None else with_flip,
                             zoom_in_params=self.zoom_in_params(model_side(model)),
                             predictor_params={"max_size": self.max_size, "precision": self.precision})
