"""Predictor factory with the published signature."""
from typing import Optional

from ..transforms import ZoomIn
from .base import BasePredictor

__all__ = ["BasePredictor", "get_predictor"]


def get_predictor(net, brs_mode: str, device, prob_thresh: float = 0.49, with_flip: bool = True,
                  zoom_in_params: Optional[dict] = dict(), predictor_params: Optional[dict] = None,
                  **kwargs) -> BasePredictor:
    """Build a predictor. Only ``'NoBRS'`` (a plain forward per click) is provided; ``prob_thresh`` is accepted
    for compatibility (NoBRS does not use it). ``zoom_in_params=None`` disables zoom-in; the default ``dict()``
    gives ZoomIn with its defaults, as published."""
    if brs_mode != "NoBRS":
        raise ValueError(f"unsupported mode {brs_mode!r}: only 'NoBRS' is provided for plain-ViT models")
    zoom_in = ZoomIn(**zoom_in_params) if zoom_in_params is not None else None
    return BasePredictor(net, device, zoom_in=zoom_in, with_flip=with_flip, **(predictor_params or {}), **kwargs)
