"""FMG, the fine-grained mask generator: carve part proposals out of object masks with a pretrained IS model.

For every object (published ``any_granularity_generator.py``, ``PartPredictor.solve``):

1. one positive click drawn uniformly inside the object; the first prediction gets the object mask itself as
   the previous mask;
2. a total number of clicks drawn uniformly from 3..5, i.e. 2..4 negative clicks (published
   ``np.random.randint(3, 6)`` with the positive click counted); before each further prediction a negative click
   is drawn uniformly inside the current prediction (probability > 0.5), unless it covers fewer than 400 pixels,
   in which case the model runs again without a new click; later predictions get the previous prediction as
   previous mask;
3. the last prediction (> 0.5) is the part: if it has several 8-connected components one is kept, drawn among
   those larger than 1500 pixels, else the largest;
4. its scale granularity is max(round(area ratio, 1), 0.1); above 1.0 the part becomes the whole object with
   granularities (1.0, 1.0);
5. the residual (object minus part) is reduced to one component the same way and kept as a second proposal when
   its rounded area ratio is above 0.1;
6. each kept proposal gets the semantic granularity of :mod:`.mge` (one-click prediction from a click in the
   eroded proposal).

The predictor is the published one: zoom-in with the whole image on the first click, crops of 448 x 448 (the
model's input size), horizontal-flip averaging, fp32.

Batching: all objects of all given images advance together, one model forward per click step (objects whose
click budget is spent drop out), then one forward for all semantic predictions. Every object draws from its
own generator (``rng.spawn``), so the proposals do not depend on batching or on the order of objects;
``batched=False`` runs the same computation one object at a time (benchmark and equality checks).

Deliberate differences from the published code:

* an empty carved part is dropped (published: kept as an empty mask with granularity (0.0, 0.0), which the
  published training then never samples); its residual (the object's largest/drawn component) is still kept;
* each object's zoom-in state is its own (published batching shares one zoom-in state across a batch, which is
  only correct for one object per call, the way the published script calls it);
* random draws come from per-object ``numpy.random.Generator`` objects, not the global numpy state.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..inference.clicker import Click, Clicker
from ..inference.predictors import BasePredictor
from ..inference.transforms import ZoomIn
from .mge import (area_ratio, forward_in_chunks, one_click_probabilities, round_granularity,
                  sample_pixel, sample_semantic_click, scale_granularity, semantic_granularity)


@dataclass(frozen=True)
class FMGSettings:
    """The published constants of the generator.

    ``min_clicks``/``max_clicks``: total clicks per object (the first positive); ``min_component_area``: a part
    or residual with several components keeps one larger than this (pixels); ``min_negative_area``: no negative
    click when the prediction is smaller; ``min_residual_granularity``: the residual is kept when its rounded area
    ratio is above this; ``input_size``: the zoom-in crop size fed to the model; ``max_batch``: at most this many
    objects per forward (0: no limit); ``precision``: the predictor's (see :mod:`isegm.inference.precision`).
    """
    min_clicks: int = 3
    max_clicks: int = 5
    min_component_area: int = 1500
    min_negative_area: int = 400
    pred_thresh: float = 0.5
    min_residual_granularity: float = 0.1
    input_size: Tuple[int, int] = (448, 448)
    with_flip: bool = True
    max_batch: int = 0
    precision: str = "fp32"


@dataclass
class Proposal:
    """One mask-granularity pair: ``mask`` H x W uint8 (0/1); ``kind`` is ``'part'``, ``'residual'`` or
    ``'object'`` (a part that covered more than the object, replaced by the object)."""
    mask: np.ndarray
    semantic: float
    scale: float
    kind: str

    @property
    def gra(self) -> Tuple[float, float]:
        """(semantic, scale): the published column order of ``'gra'``."""
        return self.semantic, self.scale


@dataclass
class CarveJob:
    """One image and its objects: ``image`` H x W x 3 uint8 RGB, ``object_masks`` K x H x W (non-zero inside),
    ``rng`` the image's generator (one child per object is spawned from it)."""
    image: np.ndarray
    object_masks: Union[np.ndarray, Sequence[np.ndarray]]
    rng: np.random.Generator


def make_predictor(model: torch.nn.Module, settings: FMGSettings = FMGSettings(),
                   device: Optional[Union[str, torch.device]] = None) -> BasePredictor:
    """The published generator's predictor: zoom-in (whole image first, ``input_size`` crops), flip, in
    ``settings.precision`` (published: fp32)."""
    if device is None:
        device = next(model.parameters()).device
    zoom_in = ZoomIn(target_size=tuple(settings.input_size), skip_clicks=-1)
    return BasePredictor(model, device, with_flip=settings.with_flip, zoom_in=zoom_in, precision=settings.precision)


def keep_one_component(mask: np.ndarray, rng: np.random.Generator, min_area: int) -> np.ndarray:
    """H x W uint8: ``mask`` itself when it has at most one 8-connected component, else one component drawn
    uniformly among those larger than ``min_area`` pixels, or the largest when none is."""
    mask = np.asarray(mask).astype(np.uint8)
    num_labels, labels = cv2.connectedComponents(mask)
    if num_labels <= 2:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    candidates = np.flatnonzero(sizes > min_area)
    if len(candidates):
        chosen = int(candidates[int(rng.integers(0, len(candidates)))])
    else:
        chosen = int(np.argmax(sizes))
    return (labels == chosen + 1).astype(np.uint8)


class _ObjectCarving:
    """The click session of one object: its clicks, its zoom-in state and its last probability map."""

    def __init__(self, predictor: BasePredictor, image: np.ndarray, object_mask: np.ndarray,
                 rng: np.random.Generator, settings: FMGSettings):
        self.image = image
        self.object_mask = np.asarray(object_mask).astype(bool)
        if not self.object_mask.any():
            raise ValueError("an object mask is empty")
        self.rng = rng
        self.settings = settings
        self.session = predictor.spawn()
        self.session.set_input_image(image)
        self.clicker = Clicker()
        self.clicker.add_click(Click(True, sample_pixel(self.object_mask, rng)))
        self.num_clicks = int(rng.integers(settings.min_clicks, settings.max_clicks + 1))
        self.steps_done = 0
        self.probs: Optional[np.ndarray] = None

    @property
    def done(self) -> bool:
        return self.steps_done >= self.num_clicks

    def next_request(self):
        """The model input of the next step (drawing the negative click of steps after the first)."""
        if self.steps_done == 0:
            prev_mask = torch.from_numpy(self.object_mask.astype(np.float32))[None, None].to(self.session.device)
            return self.session.prepare(self.clicker, prev_mask=prev_mask)
        prediction = self.probs > self.settings.pred_thresh
        if np.count_nonzero(prediction) >= self.settings.min_negative_area:
            self.clicker.add_click(Click(False, sample_pixel(prediction, self.rng)))
        return self.session.prepare(self.clicker)

    def take(self, logits: torch.Tensor) -> None:
        self.probs = self.session.finish(logits)
        self.steps_done += 1

    def candidates(self) -> List[Tuple[np.ndarray, float, Optional[float], str]]:
        """(mask, scale, semantic or None when it needs a prediction, kind) of the part and the residual."""
        settings, obj = self.settings, self.object_mask
        part = keep_one_component(self.probs > settings.pred_thresh, self.rng, settings.min_component_area)
        out = []
        if part.any():
            scale = scale_granularity(part, obj)
            if scale > 1.0:
                part = obj.astype(np.uint8)
                out.append((part, 1.0, 1.0, "object"))
            else:
                out.append((part, scale, None, "part"))
        residual = np.logical_and(obj, np.logical_not(part)).astype(np.uint8)
        residual = keep_one_component(residual, self.rng, settings.min_component_area)
        if residual.any():
            scale = round_granularity(area_ratio(residual, obj))
            if scale > settings.min_residual_granularity:
                out.append((residual, scale, None, "residual"))
        return out


def carve_many(predictor: BasePredictor, jobs: Sequence[CarveJob], settings: FMGSettings = FMGSettings(),
               batched: bool = True) -> List[List[List[Proposal]]]:
    """Proposals of several images: ``result[i][k]`` lists the proposals of object ``k`` of ``jobs[i]`` (part
    first, then residual; zero, one or two of them)."""
    carvings: List[List[_ObjectCarving]] = []
    for job in jobs:
        masks = list(job.object_masks)
        children = job.rng.spawn(len(masks)) if masks else []
        carvings.append([_ObjectCarving(predictor, job.image, mask, child, settings)
                         for mask, child in zip(masks, children)])
    flat = [c for per_image in carvings for c in per_image]
    if batched:
        active = flat
        while active:
            requests = [c.next_request() for c in active]
            for carving, logits in zip(active, forward_in_chunks(predictor, requests, settings.max_batch)):
                carving.take(logits)
            active = [c for c in active if not c.done]
    else:
        for carving in flat:
            while not carving.done:
                carving.take(predictor.forward([carving.next_request()])[0])

    candidates = [carving.candidates() for carving in flat]
    pending = [(i, j) for i, cands in enumerate(candidates) for j, cand in enumerate(cands) if cand[2] is None]
    clicks = [sample_semantic_click(candidates[i][j][0], flat[i].rng) for i, j in pending]
    images = [flat[i].image for i, _ in pending]
    if batched:
        probs = one_click_probabilities(predictor, images, clicks, settings.max_batch)
    else:
        probs = [one_click_probabilities(predictor, [image], [click])[0] for image, click in zip(images, clicks)]
    semantic = {(i, j): semantic_granularity(p, candidates[i][j][0], flat[i].object_mask)
                for (i, j), p in zip(pending, probs)}

    proposals = [[Proposal(mask, semantic.get((i, j), sem), scale, kind)
                  for j, (mask, scale, sem, kind) in enumerate(candidates[i])] for i in range(len(flat))]
    out, start = [], 0
    for per_image in carvings:
        out.append(proposals[start:start + len(per_image)])
        start += len(per_image)
    return out


def carve_proposals(model: Union[torch.nn.Module, BasePredictor], image: np.ndarray,
                    object_masks: Union[np.ndarray, Sequence[np.ndarray]], rng: np.random.Generator,
                    settings: FMGSettings = FMGSettings(), batched: bool = True) -> List[List[Proposal]]:
    """Proposals of one image (H x W x 3 uint8) for its K objects (K x H x W masks): one list per object.

    ``model`` is an IS model (a predictor is built with :func:`make_predictor`) or a ready predictor.
    """
    predictor = model if isinstance(model, BasePredictor) else make_predictor(model, settings)
    return carve_many(predictor, [CarveJob(image, object_masks, rng)], settings, batched)[0]


def pack_proposals(per_object: Sequence[Sequence[Proposal]], shape: Tuple[int, int]) -> dict:
    """The published per-image record: ``{'mask': N x H x W uint8, 'gra': N x 2 float64 (semantic, scale)}``,
    objects in order, each object's part before its residual."""
    flat = [p for proposals in per_object for p in proposals]
    if not flat:
        return {"mask": np.zeros((0, *shape), np.uint8), "gra": np.zeros((0, 2), np.float64)}
    return {"mask": np.stack([p.mask.astype(np.uint8) for p in flat]),
            "gra": np.array([p.gra for p in flat], dtype=np.float64)}
