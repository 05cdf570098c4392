"""The ML-backend protocol of Label Studio (``/health``, ``/setup``, ``/predict``) on top of the session pool.

Requests and answers are plain dicts (parsed JSON); :mod:`isegm.labelstudio.server` carries them over HTTP.
An interactive ``/predict`` request carries the annotator's keypoints in ``params.context.result`` (x and y in percent
of the image; ``is_positive: false``, an Alt+click on Label Studio's page, or a ``Negative`` label makes a negative
click). The keypoints' label carries the signal (its ``gra`` or ``phrase`` attribute in the labeling config); for
labels without one, a ``textarea`` result is a part name and a ``number`` or ``choices`` result the granularity (API
clients). The answer is one ``brushlabels`` result in Label Studio's RLE with the mean probability inside the mask as
its score. Pre-annotation requests (no context) get no prediction, unless the backend pre-annotates: then each
task gets the masks of segment everything, computed in the background and written to Label Studio through its API
(:mod:`isegm.labelstudio.batch`).
"""
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..generation.everything import EverythingGenerator, EverythingSettings, Layer
from ..inference.clicker import Click
from ..model.phrase_encoder import PhraseEncoderUnavailable
from .batch import BatchJob, PreAnnotationQueue
from .images import ImageError, ImageSource
from .labeling_config import GRANULARITY_RANGE, LabelingConfig, LabelingConfigError
from .results import brush_result, prediction
from .sessions import SessionPool

logger = logging.getLogger(__name__)
MAX_CLICKS = 100


class RequestError(ValueError):
    """A request the backend cannot answer; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PreAnnotation:
    """Answer requests without clicks (Label Studio's pre-annotation, "Retrieve predictions") with the masks of
    segment everything at ``gra`` (one brush result per mask)."""
    gra: float
    settings: EverythingSettings = EverythingSettings()


@dataclass(frozen=True)
class Signal:
    """The control signal of a request: a granularity or a part name."""
    gra: Optional[float]
    phrase: Optional[str]


class GraCoBackend:
    """Answer Label Studio's ML-backend requests with GraCo predictions.

    Args:
        pool: the sessions (and through them the shared model).
        images: where task images are read from; ``/setup`` fills in Label Studio's URL and token when not set.
        model_version: the name Label Studio shows for the predictions.
        negative_label: keypoint label of negative clicks.
        prob_thresh: probability above which a pixel is in the mask.
        pre_annotation: answer requests without clicks with whole-image masks (None: with no prediction).
    """

    def __init__(self, pool: SessionPool, images: ImageSource, model_version: str = "GraCo",
                 negative_label: str = "Negative", prob_thresh: float = 0.5,
                 pre_annotation: Optional[PreAnnotation] = None):
        self.pool = pool
        self.pre_annotation = pre_annotation
        self.queue = PreAnnotationQueue()
        self.images = images
        self.model_version = model_version
        self.negative_label = negative_label
        self.prob_thresh = prob_thresh

    # ----- endpoints -------------------------------------------------------------------------------------------
    def health(self) -> Dict[str, Any]:
        return {"status": "UP", "model_class": "GraCo", "model_version": self.model_version,
                "sessions": len(self.pool)}

    def setup(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Check the project's labeling config; take Label Studio's URL and token, as one pair, when the server was
        given neither (a URL sent here never gets a token given to the server, nor a token a configured URL)."""
        schema = request.get("schema")
        if schema:
            self._config(schema)
        if self.images.connect(request.get("hostname"), request.get("access_token")):
            logger.info("reading Label Studio images from %s (sent by /setup)", self.images.label_studio_url)
        return {"model_version": self.model_version}

    def predict(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Label Studio's ``/predict``: interactive (keypoints in the context) or pre-annotation (no context)."""
        tasks = request.get("tasks")
        if not isinstance(tasks, list) or not tasks or not isinstance(tasks[0], dict):
            raise RequestError("the request has no tasks")
        params = request.get("params") if isinstance(request.get("params"), dict) else {}
        context = params.get("context") or request.get("context")
        if not context:
            return self.pre_annotate(request)
        if not isinstance(context, dict) or not isinstance(context.get("result", []), list):
            raise RequestError("the context must be an object with a list 'result'")
        return self.interactive(request, tasks[0], context)

    def pre_annotate(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """A request without the annotator's clicks (a task opened, "Retrieve predictions" on a batch): with
        ``pre_annotation`` set, each task whose masks are ready gets them and every other task is queued for the
        background worker, which writes its prediction to Label Studio; the answer comes at once. Without
        ``pre_annotation``, nothing (GraCo predicts from clicks)."""
        if self.pre_annotation is None:
            return {"results": []}
        config = self._config(request.get("label_config"))
        results = []
        for task in request["tasks"]:
            job = self._batch_job(request, config, task)
            ready = self.queue.ready(job.key)
            if ready is None:
                self.queue.submit(job)
            results.append([ready] if ready is not None else [])
        logger.info("pre-annotation request for %d task(s): %d ready, %d queued or running", len(results),
                    sum(bool(r) for r in results), len(self.queue))
        return {"results": results}

    def interactive(self, request: Dict[str, Any], task: Dict[str, Any], context: Dict[str, Any]) -> Dict[str, Any]:
        """One prediction for ``task`` from the keypoints in ``context``; no keypoints, no prediction."""
        logger.debug("context results: %s", context.get("result"))
        config = self._config(request.get("label_config"))
        data, task_id = task.get("data"), task.get("id")
        if not isinstance(data, dict):
            raise RequestError("the task's data must be an object")
        if not isinstance(task_id, (int, str, type(None))):
            raise RequestError("the task's id must be a number or a string")
        url = data.get(config.image_value)
        if not isinstance(url, str) or not url:
            raise RequestError(f"the task has no image in data.{config.image_value}")

        points, signal = self._read_context(context.get("result", []), config)
        if not points:
            return {"results": []}
        if signal.phrase is not None:
            self._check_phrase()
        key = (str(request.get("project", "")), task_id, url)

        def read_image():
            try:
                return self.images.read(url)
            except ImageError as error:
                raise RequestError(str(error), status=422) from None

        session = self.pool.get(key, read_image)
        height, width = session.image_shape
        clicks = [Click(positive, (_to_pixel(y, height), _to_pixel(x, width))) for positive, x, y in points]
        try:
            probs = session.predict(clicks, gra=signal.gra, phrase=signal.phrase)
        except PhraseEncoderUnavailable as error:
            raise RequestError(f"the part name needs the CLIP weights: {error}") from None
        mask = probs > self.prob_thresh
        score = float(probs[mask].mean()) if mask.any() else 0.0
        what = f"phrase={signal.phrase!r}" if signal.phrase is not None else f"gra={signal.gra:.2f}"
        signs = "".join("+" if positive else "-" for positive, _, _ in points)
        logger.info("task %s: %d click(s) %s %s -> %d px, score %.3f", task.get("id"), len(clicks), signs, what,
                    int(mask.sum()), score)
        return {"results": [self._prediction(config, mask, score)]}

    def _batch_job(self, request: Dict[str, Any], config: LabelingConfig, task: Any) -> BatchJob:
        """The background job of one task: segment everything at the set granularity, one brush result per mask,
        written to Label Studio as a prediction of the task."""
        data = task.get("data") if isinstance(task, dict) else None
        url = data.get(config.image_value) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise RequestError(f"the task has no image in data.{config.image_value}")
        task_id = task.get("id")
        if not isinstance(task_id, (int, str, type(None))):
            raise RequestError("the task's id must be a number or a string")
        layer = Layer(gra=self.pre_annotation.gra)

        def compute() -> Dict[str, Any]:
            image = self.images.read(url)
            shared = self.pool.shared
            generator = EverythingGenerator(shared.make_predictor(), self.pre_annotation.settings, lock=shared.lock)
            masks = generator.generate(image, [layer])[layer]
            logger.info("task %s: pre-annotation at gra=%.2f -> %d masks (%.1f s)", task_id, layer.gra, len(masks),
                        generator.timings.total)
            return prediction(config, [(m.segmentation, m.score) for m in masks], self.model_version)

        def deliver(result: Dict[str, Any], claim) -> None:
            if not isinstance(task_id, int) or self.images.label_studio_url is None:
                return  # not a Label Studio task: the prediction waits for the task's next request
            # anyone who reaches the port can name a task: write only to a task whose image is the one segmented
            # (reading a task without predictions makes Label Studio ask for one: the answer may carry it)
            stored = self.images.label_studio_api(f"/api/tasks/{task_id}")
            stored_data = stored.get("data") if isinstance(stored, dict) else None
            if not isinstance(stored_data, dict) or stored_data.get(config.image_value) != url:
                raise ImageError(f"task {task_id} in Label Studio has another image than the request's")
            if not claim():
                logger.info("task %s: prediction sent in an answer", task_id)
                return
            self.images.label_studio_api("/api/predictions/", {"task": task_id, **result})
            logger.info("task %s: prediction written to Label Studio", task_id)

        return BatchJob((str(request.get("project", "")), task_id, url), task_id, compute, deliver)

    # ----- helpers ---------------------------------------------------------------------------------------------
    def _config(self, xml: Any) -> LabelingConfig:
        if not isinstance(xml, str) or not xml.strip():
            raise RequestError("the request has no label_config")
        try:
            return _parse_config(xml, self.negative_label)
        except LabelingConfigError as error:
            raise RequestError(str(error)) from None

    def _read_context(self, results: List[Any], config: LabelingConfig) -> Tuple[List[Tuple[bool, float, float]], Signal]:
        """The clicks (positive, x %, y %) and the signal of the context results.

        The signal is the keypoints' label's (``gra`` / ``phrase`` attribute); for labels without one, a TextArea
        part name, else the Number (or Choices) granularity, else the Number's default."""
        points, labels, gra, phrase = [], set(), None, None
        for item in results:
            if not isinstance(item, dict):
                raise RequestError("each context result must be an object")
            kind, value = str(item.get("type", "")).lower(), item.get("value")
            if not isinstance(value, dict):
                raise RequestError(f"the context result of type {kind!r} has no value object")
            if kind == "keypointlabels":
                label, point = self._point(value, item, config)
                points.append(point)
                labels.add(config.label_signal(label))
            elif kind in ("number", "choices") and item.get("from_name") == config.granularity_name:
                gra = _granularity(value.get("number") if kind == "number" else (value.get("choices") or [None])[0])
            elif kind == "textarea" and item.get("from_name") == config.phrase_name:
                text = value.get("text")
                text = text[-1] if isinstance(text, list) and text else text
                if not isinstance(text, str):
                    raise RequestError("the part name must be text")
                phrase = text.strip() or None
        if len(points) > MAX_CLICKS:
            raise RequestError(f"{len(points)} keypoints: at most {MAX_CLICKS} per object")
        carried = {signal for signal in labels if signal.gra is not None or signal.phrase is not None}
        if len(carried) > 1:
            raise RequestError("the keypoints of one object carry different granularities or part names: "
                               "use one label per object")
        if carried:
            label = carried.pop()
            return points, Signal(label.gra, label.phrase)
        if phrase is not None:
            return points, Signal(None, phrase)
        return points, Signal(config.default_granularity if gra is None else gra, None)

    def _point(self, value: dict, item: dict, config: LabelingConfig) -> Tuple[str, Tuple[bool, float, float]]:
        labels = value.get("keypointlabels") or []
        if not isinstance(labels, list) or len(labels) != 1:
            raise RequestError("each keypoint needs exactly one label")
        label = labels[0]
        if label not in config.keypoint_labels:
            raise RequestError(f"unknown keypoint label {label!r}; the config has "
                               f"{', '.join(repr(x) for x in config.keypoint_labels)}")
        positive = label not in config.negative_labels and item.get("is_positive", True) is not False
        try:
            x, y = float(value["x"]), float(value["y"])
        except (KeyError, TypeError, ValueError):
            raise RequestError("a keypoint needs numeric x and y (percent of the image)") from None
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= 100 and 0 <= y <= 100):
            raise RequestError(f"keypoint at x={x}%, y={y}% is outside the image (0..100%)")
        return label, (positive, x, y)

    def _check_phrase(self) -> None:
        encoder = getattr(self.pool.shared.model, "phrase_encoder", None)
        if encoder is None:
            raise RequestError("this model has no part-name input: clear the part name and use the granularity")
        with self.pool.shared.lock:
            try:
                encoder.ensure_loaded()
            except PhraseEncoderUnavailable as error:
                raise RequestError(f"the part name needs the CLIP weights: {error}") from None

    def _prediction(self, config: LabelingConfig, mask: np.ndarray, score: float) -> Dict[str, Any]:
        return {"result": [brush_result(config, mask, score)], "score": score, "model_version": self.model_version}


@functools.lru_cache(maxsize=32)
def _parse_config(xml: str, negative_label: str) -> LabelingConfig:
    return LabelingConfig.parse(xml, negative_label)


def _granularity(value: Any) -> float:
    low, high = GRANULARITY_RANGE
    try:
        gra = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"granularity must be a number in [{low}, {high}], got {value!r}") from None
    if not math.isfinite(gra) or not low <= gra <= high:
        raise RequestError(f"granularity must be a number in [{low}, {high}], got {gra}")
    return gra


def _to_pixel(percent: float, size: int) -> float:
    """Pixel coordinate of a percentage, inside 0..size-1 (100 % is the last pixel)."""
    return min(percent * size / 100.0, size - 1.0)


__all__ = ["GraCoBackend", "PreAnnotation", "RequestError", "Signal"]
