"""The annotation tool's state between the Tk window and the interactive core: the UI thread's clicks, undo history
and partial finishes over :class:`~isegm.interactive.ObjectSession` predictions run on a worker thread.

All model work runs on a :class:`~isegm.demo.worker.Worker` thread; every public method is meant for the UI thread and
returns at once. ``on_change()`` is called (on the UI thread, from :meth:`DemoController.poll`) whenever what should
be drawn changed.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..inference.clicker import Click
from ..generation.everything import MIN_GRANULARITY, EverythingGenerator, EverythingSettings, Layer
from ..interactive import AnnotatedObject, Annotation, ObjectSession, PredictorSettings, SharedModel, click_key
from ..signals import check_granularity
from .worker import Worker

logger = logging.getLogger(__name__)


@dataclass
class _Snapshot:
    session: Optional[ObjectSession]
    clicks: List[Click]
    base_prob: Optional[np.ndarray]
    probs: Optional[np.ndarray]


@dataclass
class DemoState:
    """What the status bar shows."""
    message: str = ""
    error: str = ""
    seconds_per_click: Optional[float] = None
    precision: str = ""  # the mode the predictions run in (auto resolved)
    busy: bool = False
    extra: Dict[str, str] = field(default_factory=dict)


class DemoController:
    """Clicks, objects and predictions for one image at a time."""

    def __init__(self, worker: Worker, device, settings: PredictorSettings = PredictorSettings(),
                 on_change: Callable[[], None] = lambda: None, strip_enabled: bool = True):
        self.worker = worker
        self.device = torch.device(device)
        self.settings = settings
        self.on_change = on_change
        self.strip_enabled = strip_enabled
        self.shared: Optional[SharedModel] = None
        self.model_error: Optional[str] = None
        self.image: Optional[np.ndarray] = None
        self.image_path: Optional[Path] = None
        self.annotation: Optional[Annotation] = None
        self.prob_thresh = 0.5
        self.granularity: float = 1.0
        self.phrase: Optional[str] = None
        self.status = DemoState(message="loading the model ...")
        self.strip: Optional[List[np.ndarray]] = None
        self.dirty = False
        self._session: Optional[ObjectSession] = None
        self._clicks: List[Click] = []
        self._base_prob: Optional[np.ndarray] = None
        self._probs: Optional[np.ndarray] = None
        self._history: List[_Snapshot] = []
        self._strip_key = None

    # ----- model and image -------------------------------------------------------------------------------------
    def load_model(self, loader: Callable[[], object]) -> None:
        """Build the model on the worker thread with ``loader()``; errors are shown, the window stays usable."""
        def done(model, error, seconds):
            if error is not None:
                self.model_error = f"cannot load the model: {_one_line(error)}"
                self.status.error = self.model_error
                self.status.message = ""
                logger.error("%s", self.model_error)
            else:
                self.shared = SharedModel(model, self.device, self.settings)
                self.model_error = None
                self.status.message = f"model loaded in {seconds:.1f} s"
                logger.info("model ready (%.1f s)", seconds)
                self._new_session()
            self.on_change()
        self.worker.submit(loader, done)

    @property
    def model(self) -> Optional[torch.nn.Module]:
        """The loaded model, or None (still loading, or failed)."""
        return None if self.shared is None else self.shared.model

    @property
    def objects(self) -> List[AnnotatedObject]:
        """The finished objects of the current image."""
        return [] if self.annotation is None else self.annotation.objects

    @property
    def phrase_unavailable_reason(self) -> Optional[str]:
        """Why the phrase signal cannot be used, or None when it can (or the model is not loaded yet)."""
        if self.shared is None:
            return self.model_error
        return self.shared.phrase_unavailable_reason

    def set_image(self, image: np.ndarray, path: Optional[Path] = None,
                  objects: Optional[List[AnnotatedObject]] = None) -> None:
        """Start on a new image (with already annotated ``objects``, if any)."""
        self.image = image
        self.image_path = Path(path) if path is not None else None
        self.annotation = Annotation(tuple(image.shape[:2]), list(objects or []))
        self.dirty = False
        self.status.error = ""
        self._new_session()
        self.on_change()

    def set_settings(self, settings: PredictorSettings) -> None:
        """New prediction options; they apply from the next click sequence (the current object is re-started)."""
        if settings != self.settings:
            self.settings = settings
            if not self._clicks:
                self._new_session(keep_base=True)

    def _new_session(self, init_mask: Optional[np.ndarray] = None, keep_base: bool = False) -> None:
        self.worker.cancel("main")
        self.worker.cancel("background")
        self._clicks = []
        self._probs = None
        self.strip = None
        if not keep_base:
            self._base_prob = None
            self._history = []
        self._session = None
        if self.shared is None or self.image is None:
            return
        self._session = self.shared.session(self.image, init_mask=init_mask, settings=self.settings)
        self.status.precision = self._session.predictor.precision

    # ----- clicks ----------------------------------------------------------------------------------------------
    @property
    def clicks(self) -> List[Click]:
        return list(self._clicks)

    def add_click(self, x: float, y: float, is_positive: bool) -> bool:
        """Add a click at image pixel (x, y) and queue a prediction; False (and a message) when not possible."""
        if self.image is None:
            self.status.error = "open an image first"
        elif self.model is None:
            self.status.error = self.model_error or "the model is still loading"
        elif not (0 <= y < self.image.shape[0] and 0 <= x < self.image.shape[1]):
            return False
        else:
            self._push_history()
            self._clicks.append(Click(is_positive, (float(y), float(x))))
            self.dirty = True
            self._predict()
            self.on_change()
            return True
        self.on_change()
        return False

    def set_granularity(self, value: float) -> None:
        """Use the granularity signal at ``value`` and re-predict the current clicks."""
        value = check_granularity(float(value))
        if value == self.granularity and self.phrase is None:
            return
        self.granularity, self.phrase = value, None
        if self._clicks:
            self._predict(strip=False)
        self.on_change()

    def set_phrase(self, phrase: str) -> None:
        """Use the phrase signal (an empty phrase goes back to the slider) and re-predict the current clicks."""
        phrase = phrase.strip()
        if phrase:
            reason = self.phrase_unavailable_reason
            if reason:
                self.status.error = f"phrase unavailable: {reason}"
                self.on_change()
                return
        self.phrase = phrase or None
        if self._clicks:
            self._predict(strip=False)
        self.on_change()

    def set_prob_thresh(self, value: float) -> None:
        self.prob_thresh = float(value)
        self.on_change()

    def _signal(self) -> Tuple[Optional[float], Optional[str]]:
        return (None, self.phrase) if self.phrase else (self.granularity, None)

    def _predict(self, strip: bool = True) -> None:
        session, clicks = self._session, list(self._clicks)
        gra, phrase = self._signal()
        self.status.busy = True
        self.status.error = ""

        def done(probs, error, seconds):
            if session is not self._session:
                return
            self.status.busy = not self.worker.idle
            if error is not None:
                self.status.error = f"prediction failed: {_one_line(error)}"
                logger.error("%s", self.status.error)
            elif click_key(clicks) == click_key(self._clicks[:len(clicks)]):
                self._probs = probs
                self.status.seconds_per_click = seconds
                area = int((self.current_prob > self.prob_thresh).sum())
                signal = f"phrase={phrase!r}" if phrase else f"gra={gra:.2f}"
                logger.info("prediction: clicks=%d %s area=%d time=%.3f s precision=%s", len(clicks), signal, area,
                            seconds, session.predictor.precision)
                if len(clicks) == len(self._clicks) and self.strip_enabled and self._strip_key != click_key(clicks):
                    self._predict_strip()
            self.on_change()

        self.worker.submit(lambda: session.predict(clicks, gra=gra, phrase=phrase), done)

    def _predict_strip(self) -> None:
        session, clicks = self._session, list(self._clicks)
        key = click_key(clicks)

        def done(maps, error, seconds):
            if session is not self._session or key != click_key(self._clicks):
                return
            if error is not None:
                logger.warning("granularity strip failed: %s", _one_line(error))
                return
            self.strip, self._strip_key = maps, key
            logger.info("granularity strip: %d maps in %.3f s", len(maps), seconds)
            self.on_change()

        self.worker.submit(lambda: session.strip(clicks), done, slot="background")

    def _push_history(self) -> None:
        self._history.append(_Snapshot(self._session, list(self._clicks), self._base_prob, self._probs))

    def undo(self) -> None:
        """Take back the last click (or the last partial finish)."""
        if not self._history:
            return
        snapshot = self._history.pop()
        self.worker.cancel("main")
        self.worker.cancel("background")
        self._session, self._clicks = snapshot.session, snapshot.clicks
        self._base_prob, self._probs = snapshot.base_prob, snapshot.probs
        self.strip = None
        cached = self._session.cached(self._clicks) if self._session is not None and self._clicks else None
        if cached is not None or not self._clicks:
            self._probs = cached
        else:
            self._predict()
        self.on_change()

    def reset_object(self) -> None:
        """Drop the current object's clicks and prediction."""
        self._new_session()
        self.on_change()

    def partially_finish_object(self) -> None:
        """Keep the current prediction as part of the object and start new clicks for its next part."""
        prob = self.current_prob
        if prob is None or not self._clicks:
            return
        self._push_history()
        self._new_session(keep_base=True)
        self._base_prob = prob
        self.on_change()

    def finish_object(self) -> Optional[AnnotatedObject]:
        """Add the current object (probabilities above the threshold) with the next id; None when it is empty."""
        prob = self.current_prob
        if prob is None:
            return None
        try:
            obj = self.annotation.finish_object(prob > self.prob_thresh, self.annotation.default_name(self.phrase))
        except ValueError as error:
            self.status.error = str(error)
            self.on_change()
            return None
        self.dirty = True
        logger.info("finished object %d (%d px)", obj.object_id, int(obj.mask.sum()))
        self._new_session()
        self.status.message = f"object {obj.object_id} finished"
        self.on_change()
        return obj

    def segment_all(self, settings: Optional[EverythingSettings] = None) -> bool:
        """Segment everything at the current granularity (or phrase) on the worker thread; each mask becomes a
        finished object (larger ones first, so smaller ones are drawn on top) to correct. False (and a message) when
        the model or the image is missing."""
        if self.image is None or self.shared is None:
            self.status.error = "open an image first" if self.image is None else (self.model_error or
                                                                                  "the model is still loading")
            self.on_change()
            return False
        gra, phrase = self._signal()
        layer = Layer(gra=max(gra, MIN_GRANULARITY)) if phrase is None else Layer(phrase=phrase)
        generator = EverythingGenerator(self.shared.make_predictor(self.settings), settings or EverythingSettings(),
                                        lock=self.shared.lock)
        image, annotation = self.image, self.annotation
        self.status.busy = True
        self.status.message = f"segmenting everything at {layer.name} ..."

        def done(masks, error, seconds):
            self.status.busy = not self.worker.idle
            if annotation is not self.annotation:
                return  # another image meanwhile
            if error is not None:
                self.status.error = f"segment all failed: {_one_line(error)}"
            else:
                for mask in sorted(masks, key=lambda m: -m.area):
                    annotation.finish_object(mask.segmentation, annotation.default_name(phrase))
                self.dirty = self.dirty or bool(masks)
                self.status.message = f"segment all at {layer.name} ({seconds:.1f} s): {len(masks)} masks"
                logger.info("%s", self.status.message)
            self.on_change()

        self.worker.submit(lambda: generator.generate(image, [layer])[layer], done, slot="everything")
        self.on_change()
        return True

    def load_mask(self, mask: np.ndarray) -> None:
        """Continue from a saved mask: a binary mask becomes the current object's starting prediction (the model's
        previous mask); an instance mask (ids 1..n) becomes the finished objects."""
        if self.image is None or mask.shape[:2] != self.image.shape[:2]:
            raise ValueError("a mask must have the size of the current image")
        values = [int(v) for v in np.unique(mask) if v > 0]
        if len(values) == 1 and values[0] in (1, 255):
            init = (mask > 0).astype(np.float32)
            self._new_session(init_mask=init)
            self._base_prob = init
            self._history = []
        else:
            self.annotation = Annotation.from_instances(mask)
            self._new_session()
        self.dirty = True
        self.on_change()

    # ----- results ---------------------------------------------------------------------------------------------
    @property
    def current_prob(self) -> Optional[np.ndarray]:
        """The current object's probability map (partial parts included), or None."""
        if self._probs is None:
            return self._base_prob
        if self._base_prob is None:
            return self._probs
        return np.maximum(self._base_prob, self._probs)

    @property
    def has_current_object(self) -> bool:
        return bool(self._clicks) or self._base_prob is not None

    def instance_mask(self, include_current: bool = True) -> np.ndarray:
        """H x W int32: finished objects by id, then the current object as id n+1 (later objects on top)."""
        if self.image is None:
            raise ValueError("no image")
        prob = self.current_prob if include_current else None
        return self.annotation.instance_mask(None if prob is None else prob > self.prob_thresh)

    def object_names(self) -> Dict[int, str]:
        current = self.annotation.default_name(self.phrase) if self.current_prob is not None else None
        return self.annotation.names(current)

    def poll(self) -> None:
        """Deliver finished model work (UI thread)."""
        self.worker.poll()
        busy = not self.worker.idle
        if busy != self.status.busy:
            self.status.busy = busy
            self.on_change()

    def wait(self, timeout: float = 120.0) -> None:
        """Block until all queued model work is done and delivered (scripts and tests)."""
        self.worker.wait(timeout)
        self.status.busy = False


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


__all__ = ["DemoController"]
