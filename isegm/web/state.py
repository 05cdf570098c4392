"""Per-browser state: one image, its finished objects (:class:`~isegm.interactive.Annotation`) and the object being
annotated (:class:`~isegm.interactive.ObjectSession` on the shared model). Problems are :class:`InputError`."""
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..interactive import Annotation, ObjectSession, SharedModel, palette
from ..interactive.export import save_annotation
from ..signals import GRANULARITY_LEVELS
from .images import ImageInputError, read_upload
from .render import render_canvas, render_thumbnail

logger = logging.getLogger(__name__)

STRIP_COLOUR = (255, 200, 0)
#: clicks per object: each keeps the probabilities after it (for undo), H x W float32
MAX_CLICKS = 100


class InputError(ValueError):
    """A request that cannot be done now (no image yet, phrase without CLIP weights ...); shown in the page."""


class SessionLimit:
    """At most ``max_sessions`` tabs hold an image (and its clicks' probabilities) at once: when one more opens an
    image, the tab used least recently drops its work and is asked to open its image again."""

    def __init__(self, max_sessions: int):
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._live: "OrderedDict[WebSession, None]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def touch(self, ws: "WebSession") -> None:
        with self._lock:
            self._live[ws] = None
            self._live.move_to_end(ws)
            evicted = [self._live.popitem(last=False)[0] for _ in range(len(self._live) - self.max_sessions)]
        for old in evicted:
            logger.info("a tab's image was dropped (at most %d tabs hold one)", self.max_sessions)
            old.drop(f"this tab's image was dropped to make room for other users (at most {self.max_sessions} "
                     f"at once): open the image again")

    def forget(self, ws: "WebSession") -> None:
        with self._lock:
            self._live.pop(ws, None)


class WebSession:
    """What one browser tab annotates; made by the tab's first request, dropped when Gradio expires it.

    Args:
        shared: the model, shared by all tabs.
        max_image_side: uploads are resized to this longest side.
        limit: the tabs that may hold an image at once (None: no limit).
    """

    def __init__(self, shared: SharedModel, max_image_side: int, limit: Optional[SessionLimit] = None):
        self.shared = shared
        self.limit = limit
        self.max_image_side = max_image_side
        self.image: Optional[np.ndarray] = None
        self.image_name = "image"
        self.annotation: Optional[Annotation] = None
        self.session: Optional[ObjectSession] = None
        self.prob_thresh = 0.5
        self.opacity = 0.5
        self.granularity = 1.0
        self.phrase: Optional[str] = None
        self.strip: Optional[List[np.ndarray]] = None
        self.seconds_per_click: Optional[float] = None
        self.notes: List[str] = []
        self._export_dir: Optional[str] = None
        self._dropped: Optional[str] = None

    # ----- requests ------------------------------------------------------------------------------------------
    def open_image(self, path: str) -> None:
        """Start on the image file at ``path`` (an upload or an example); the previous image's work is dropped."""
        try:
            image, notes = read_upload(path, self.max_image_side)
        except ImageInputError as error:
            raise InputError(str(error)) from None
        self.image, self.image_name, self.notes = image, Path(path).stem or "image", notes
        self._dropped = None
        self.annotation = Annotation(tuple(image.shape[:2]))
        self._new_object()
        if self.limit is not None:
            self.limit.touch(self)
        logger.info("image %s (%d x %d)%s", Path(path).name, image.shape[1], image.shape[0],
                    "".join(f"; {note}" for note in notes))

    def add_click(self, x: float, y: float, positive: bool) -> None:
        """A click at image pixel (x, y) on the current object."""
        session = self._session()
        if len(session.clicks) >= MAX_CLICKS:
            raise InputError(f"at most {MAX_CLICKS} clicks per object: finish it, or undo / reset it")
        height, width = self.image.shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"the click ({x:.0f}, {y:.0f}) is outside the {width} x {height} image")
        self._timed(lambda: session.add_click(x, y, positive), new_clicks=True)

    def set_granularity(self, value: float) -> None:
        """Use the slider at ``value`` (0.1 part ... 1.0 whole); re-predicts the current clicks."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"granularity must be a number in [0.1, 1.0], got {value!r}") from None
        if not GRANULARITY_LEVELS[0] <= value <= GRANULARITY_LEVELS[-1]:
            raise InputError(f"granularity must be in [0.1, 1.0], got {value}")
        self.granularity, self.phrase = value, None
        if self.session is not None:
            self._timed(lambda: self.session.set_granularity(value))

    def set_phrase(self, phrase: Optional[str]) -> None:
        """Use the part name ``phrase`` (empty: back to the slider); re-predicts the current clicks."""
        phrase = (phrase or "").strip() or None
        if phrase:
            reason = self.shared.phrase_unavailable_reason
            if reason:
                raise InputError(f"part names are unavailable: {reason}")
        self.phrase = phrase
        if self.session is not None:
            self._timed(lambda: self.session.set_phrase(phrase))

    def choose_strip(self, index: int) -> float:
        """Use the strip's ``index``-th granularity (0 -> 0.1 ... 9 -> 1.0); returns it."""
        if not 0 <= index < len(GRANULARITY_LEVELS):
            raise InputError(f"the strip has {len(GRANULARITY_LEVELS)} granularities, not {index + 1}")
        self.set_granularity(GRANULARITY_LEVELS[index])
        return GRANULARITY_LEVELS[index]

    def undo(self) -> None:
        """Take back the last click of the current object."""
        session = self._session()
        if session.clicks:
            session.undo()  # usually no forward (the previous clicks' probabilities are kept): not a click's time
            self.strip = None

    def reset_object(self) -> None:
        """Drop the current object's clicks."""
        self._session()
        self._new_object()

    def finish_object(self) -> int:
        """Add the current object (probabilities above the threshold) with the next id and colour; its id."""
        session = self._session()
        mask = session.mask(self.prob_thresh)
        if mask is None or not mask.any():
            raise InputError("nothing to finish: click on an object first (or lower the threshold)")
        obj = self.annotation.finish_object(mask, self.annotation.default_name(self.phrase))
        logger.info("finished object %d (%d px)", obj.object_id, int(mask.sum()))
        self._new_object()
        return obj.object_id

    def compute_strip(self) -> None:
        """The ten granularities of the current clicks (one batched forward), or none without clicks."""
        session = self._session()
        self.strip = session.strip() if session.clicks else None

    def set_threshold(self, value: float) -> None:
        self.prob_thresh = _fraction(value, "threshold", low=0.0)

    def set_opacity(self, value: float) -> None:
        self.opacity = _fraction(value, "opacity", low=0.0)

    def _session(self) -> ObjectSession:
        session = self.session
        if session is None:
            raise InputError(self._dropped or "open an image first (upload one or pick an example)")
        if self.limit is not None:
            self.limit.touch(self)
        return session

    def drop(self, reason: str) -> None:
        """Let go of the image and its work (:class:`SessionLimit`); the next request says ``reason``."""
        self.image, self.annotation, self.session, self.strip = None, None, None, None
        self._dropped = reason
        self.close()

    def _new_object(self) -> None:
        self.session = self.shared.session(self.image, granularity=self.granularity, phrase=self.phrase)
        self.strip = None

    def _timed(self, action, new_clicks: bool = False) -> None:
        start = time.perf_counter()
        action()
        self.seconds_per_click = time.perf_counter() - start
        if new_clicks:  # the strip belongs to the clicks, not to the signal
            self.strip = None

    # ----- what the page shows -------------------------------------------------------------------------------
    def instances(self) -> np.ndarray:
        """H x W int32: the finished objects, then the current one (above the threshold) as id n+1."""
        return self.annotation.instance_mask(self.session.mask(self.prob_thresh))

    def canvas(self) -> Optional[np.ndarray]:
        """The image with the objects in their colours, the current object's outline and its clicks."""
        if self.session is None:
            return None
        instances = self.instances()
        clicks = [(c.is_positive, c.coords[0], c.coords[1]) for c in self.session.clicks]
        return render_canvas(self.image, instances, palette(max(int(instances.max()), 1)), self.opacity, clicks,
                             self.session.mask(self.prob_thresh))

    def strip_thumbnails(self) -> List[tuple]:
        """(thumbnail, caption) of the strip's granularities; empty without a strip."""
        if self.strip is None:
            return []
        return [(render_thumbnail(self.image, probs > self.prob_thresh, STRIP_COLOUR), f"{gra:.1f}")
                for gra, probs in zip(GRANULARITY_LEVELS, self.strip)]

    def status(self) -> str:
        if self.session is None:
            return self._dropped or "open an image: upload one or pick an example"
        height, width = self.image.shape[:2]
        signal = f"part '{self.phrase}'" if self.phrase else f"granularity {self.granularity:.1f}"
        speed = f"{self.seconds_per_click:.3f} s per click" if self.seconds_per_click is not None else "no click yet"
        return " · ".join([f"{self.image_name} ({width} x {height})", f"{len(self.session.clicks)} clicks", signal,
                           f"{len(self.annotation.objects)} objects finished", speed,
                           f"precision {self.session.predictor.precision}"])

    def export(self) -> Dict[str, Path]:
        """The Tk tool's files of this image (the current object included as the last id): instance PNG,
        coloured preview and COCO JSON (RLE)."""
        self._session()
        instances = self.instances()
        if not instances.any():
            raise InputError("nothing to download yet: click on an object first")
        names = self.annotation.names(self.annotation.default_name(self.phrase)
                                      if self.session.clicks else None)
        self.close()
        self._export_dir = tempfile.mkdtemp(prefix="graco-web-")
        return save_annotation(self.image, instances, f"{self.image_name}.png", self._export_dir, names)

    def close(self) -> None:
        """Remove this session's downloads (also when Gradio expires the session)."""
        if self._export_dir is not None:
            shutil.rmtree(self._export_dir, ignore_errors=True)
            self._export_dir = None

    def expire(self) -> None:
        """Gradio dropped this tab's state: remove its downloads and its place in the limit."""
        self.close()
        if self.limit is not None:
            self.limit.forget(self)


def _fraction(value, what: str, low: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in [0, 1], got {value!r}") from None
    if not low <= value <= 1.0:
        raise InputError(f"{what} must be in [0, 1], got {value}")
    return value
