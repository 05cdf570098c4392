from .base import BaseTransform, SigmoidForPred
from .flip import AddHorizontalFlip
from .limit_longest_side import LimitLongestSide
from .zoom_in import ZoomIn

__all__ = ["AddHorizontalFlip", "BaseTransform", "LimitLongestSide", "SigmoidForPred", "ZoomIn"]
