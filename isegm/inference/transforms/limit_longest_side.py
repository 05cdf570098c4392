"""Downscale images whose longer side exceeds ``max_size``."""
from .zoom_in import ZoomIn, crop_and_resize


class LimitLongestSide(ZoomIn):
    def __init__(self, max_size: int = 800):
        super().__init__(target_size=max_size, skip_clicks=0)

    def transform(self, image_nd, clicks_lists):
        self.image_changed = False
        if max(image_nd.shape[2:4]) <= self.target_size:
            return image_nd, clicks_lists
        self._object_roi = (0, image_nd.shape[2] - 1, 0, image_nd.shape[3] - 1)
        self._roi_image = crop_and_resize(image_nd, self._object_roi, self.target_size)
        self.image_changed = True
        return self._roi_image, [self._transform_clicks(clicks_lists[0])]
