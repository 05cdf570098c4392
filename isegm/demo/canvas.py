"""A Tk canvas that shows an RGB array with zoom (mouse wheel) and pan (right or middle drag), and reports clicks in
image pixel coordinates (left: positive; right without dragging: negative)."""
import logging
import tkinter as tk
from typing import Callable, Optional, Tuple

import numpy as np
from PIL import Image, ImageTk

logger = logging.getLogger(__name__)

ClickCallback = Callable[[float, float, bool], None]
MIN_SCALE, MAX_SCALE = 0.05, 20.0
DRAG_THRESHOLD = 4  # pixels of motion after which a right press is a pan, not a negative click


class ZoomCanvas(tk.Canvas):
    """Only the visible part of the image is resized and drawn, so large images stay fast."""

    def __init__(self, master, on_click: ClickCallback, **kwargs):
        kwargs.setdefault("highlightthickness", 0)
        kwargs.setdefault("background", "#202020")
        kwargs.setdefault("cursor", "crosshair")
        super().__init__(master, **kwargs)
        self.on_click = on_click
        self.array: Optional[np.ndarray] = None
        self.scale = 1.0
        self.origin = (0.0, 0.0)  # image (x, y) at the canvas's top-left corner
        self._photo = None
        self._press: Optional[Tuple[int, int, Tuple[float, float]]] = None
        self._dragged = False
        self.bind("<Configure>", lambda event: self._on_resize())
        self.bind("<ButtonPress-1>", self._left)
        for button in ("2", "3"):
            self.bind(f"<ButtonPress-{button}>", self._press_pan)
            self.bind(f"<B{button}-Motion>", self._drag)
        self.bind("<ButtonRelease-3>", self._release_right)
        self.bind("<ButtonRelease-2>", lambda event: setattr(self, "_press", None))
        self.bind("<MouseWheel>", lambda event: self.zoom(1.25 if event.delta > 0 else 0.8, event.x, event.y))
        self.bind("<Button-4>", lambda event: self.zoom(1.25, event.x, event.y))
        self.bind("<Button-5>", lambda event: self.zoom(0.8, event.x, event.y))
        self._fitted = False

    # ----- view ------------------------------------------------------------------------------------------------
    def show(self, array: np.ndarray, reset_view: bool = False) -> None:
        """Display an H x W x 3 uint8 array; ``reset_view`` fits it to the canvas."""
        new_shape = self.array is None or self.array.shape != array.shape
        self.array = array
        if reset_view or new_shape or not self._fitted:
            self.fit()
        else:
            self._render()

    def fit(self) -> None:
        """Fit the whole image into the canvas, centred."""
        if self.array is None:
            return
        width, height = max(self.winfo_width(), 2), max(self.winfo_height(), 2)
        h, w = self.array.shape[:2]
        self.scale = min(width / w, height / h)
        self.origin = ((w - width / self.scale) / 2, (h - height / self.scale) / 2)
        self._fitted = width > 2
        self._render()

    def zoom(self, factor: float, cx: float, cy: float) -> None:
        """Zoom by ``factor`` keeping canvas point (cx, cy) fixed."""
        if self.array is None:
            return
        new_scale = min(MAX_SCALE, max(MIN_SCALE, self.scale * factor))
        x, y = self.to_image(cx, cy)
        self.scale = new_scale
        self.origin = (x - cx / new_scale, y - cy / new_scale)
        self._render()

    def to_image(self, cx: float, cy: float) -> Tuple[float, float]:
        return self.origin[0] + cx / self.scale, self.origin[1] + cy / self.scale

    def to_canvas(self, x: float, y: float) -> Tuple[float, float]:
        return (x - self.origin[0]) * self.scale, (y - self.origin[1]) * self.scale

    def _on_resize(self) -> None:
        if self.array is not None:
            self.fit()

    def _render(self) -> None:
        self.delete("image")
        if self.array is None:
            return
        width, height = self.winfo_width(), self.winfo_height()
        h, w = self.array.shape[:2]
        x0, y0 = self.origin
        x1, y1 = self.to_image(width, height)
        ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        ix1, iy1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        if ix1 <= ix0 or iy1 <= iy0:
            return
        crop = Image.fromarray(self.array[iy0:iy1, ix0:ix1])
        cx0, cy0 = self.to_canvas(ix0, iy0)
        out_w = max(1, int(round((ix1 - ix0) * self.scale)))
        out_h = max(1, int(round((iy1 - iy0) * self.scale)))
        resample = Image.NEAREST if self.scale >= 2 else Image.BILINEAR
        self._photo = ImageTk.PhotoImage(crop.resize((out_w, out_h), resample))
        self.create_image(int(round(cx0)), int(round(cy0)), anchor="nw", image=self._photo, tags="image")
        self.tag_lower("image")

    # ----- mouse -----------------------------------------------------------------------------------------------
    def _inside(self, x: float, y: float) -> bool:
        return self.array is not None and 0 <= x < self.array.shape[1] and 0 <= y < self.array.shape[0]

    def _left(self, event) -> None:
        self.focus_set()
        x, y = self.to_image(event.x, event.y)
        if self._inside(x, y):
            self.on_click(x, y, True)

    def _press_pan(self, event) -> None:
        self.focus_set()
        self._press = (event.x, event.y, self.origin)
        self._dragged = False

    def _drag(self, event) -> None:
        if self._press is None:
            return
        px, py, (ox, oy) = self._press
        if abs(event.x - px) + abs(event.y - py) > DRAG_THRESHOLD:
            self._dragged = True
        if self._dragged:
            self.origin = (ox - (event.x - px) / self.scale, oy - (event.y - py) / self.scale)
            self._render()

    def _release_right(self, event) -> None:
        dragged, self._press = self._dragged, None
        self._dragged = False
        if not dragged:
            x, y = self.to_image(event.x, event.y)
            if self._inside(x, y):
                self.on_click(x, y, False)
