"""Turns training targets into network inputs: augmentation, clicks and phrase tokens for one sample."""
import logging
import random
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .datasets.base import SampleError
from .points_sampler import MultiPointSampler
from .targets import TargetDataset, TrainTarget
from ..signals import CLIP_CONTEXT_LENGTH, tokenize_phrases

logger = logging.getLogger(__name__)
SampleKey = Tuple[int, int, str]  # (image index, sample seed, signal)
MAX_AUGMENT_TRIES = 10
IGNORE_LABEL = 255  # label of ignored pixels in the augmented label map (0 background, 1..254 objects)


class ClickTrainingSet(torch.utils.data.Dataset):
    """Indexed by ``(index, seed, signal)`` keys (see :class:`isegm.engine.sampler.GCLSampler`).

    Each item is a dict of ``images`` (3 x H x W float32 in [0, 1]), ``points`` (2N x 3 float32), ``instances``
    (1 x H x W float32: 1 target, 0 background, -1 ignored), ``gra`` (float32, NaN without a granularity),
    ``text`` (77 int64 CLIP tokens, zeros without a phrase) and ``skipped`` (how many unreadable samples were
    replaced by the next image to give this one). Everything random comes from ``seed``.

    As published: the sample is re-augmented while no object is left in the crop (at most ``MAX_AUGMENT_TRIES``
    times; each try keeps an empty crop with probability ``keep_background_prob``), then objects smaller than
    ``min_object_area`` pixels are dropped, so a target of 1 to ``min_object_area - 1`` pixels trains as empty
    (no positive click, all background). ``reaugment_small`` instead re-augments while every object is smaller
    than ``min_object_area`` and keeps what the last try gives, however small (this project's earlier rule).
    ``sample_weights`` (or None) are the dataset's image sampling probabilities, for the sampler.
    """

    def __init__(self, targets: TargetDataset, augmentation, points_sampler: MultiPointSampler,
                 min_object_area: int = 80, keep_background_prob: float = 0.01, reaugment_small: bool = False):
        self.targets = targets
        self.augmentation = augmentation
        self.points_sampler = points_sampler
        self.min_object_area = min_object_area
        self.keep_background_prob = keep_background_prob
        self.reaugment_small = reaugment_small

    @property
    def sample_weights(self) -> Optional[np.ndarray]:
        return getattr(self.targets, "sample_weights", None)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: SampleKey) -> Dict[str, object]:
        index, seed, signal = key
        rng = np.random.default_rng(seed)
        target, skipped = self._read_target(int(index), rng, signal)
        image, labels = self._augment(target, rng)
        ignore = labels == IGNORE_LABEL
        smallest = 1 if self.reaugment_small else self.min_object_area
        objects = [labels == value for value in object_labels(labels) if np.count_nonzero(labels == value) >= smallest]
        chosen = self.points_sampler.choose_objects(len(objects), rng)
        pieces = [objects[i] for i in chosen]
        target_mask = np.logical_or.reduce(pieces) if pieces else np.zeros(labels.shape, bool)
        rest = [objects[i] for i in range(len(objects)) if i not in chosen]
        others = np.logical_or.reduce(rest) if rest else None
        points = self.points_sampler.sample(target_mask, rng, ignore=ignore, others=others, pieces=pieces)
        instances = target_mask.astype(np.float32)
        instances[ignore] = -1
        return {
            "images": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0,
            "points": torch.from_numpy(points),
            "instances": torch.from_numpy(instances)[None],
            "gra": torch.tensor(np.nan if target.gra is None else float(target.gra), dtype=torch.float32),
            "text": self._tokens(target.phrase),
            "skipped": skipped,
        }

    def _read_target(self, index: int, rng: np.random.Generator, signal: str) -> Tuple[TrainTarget, int]:
        """The target of ``index``, or of the next readable image; how many were skipped."""
        for skipped in range(len(self.targets)):
            position = (index + skipped) % len(self.targets)
            try:
                return self.targets.target(position, rng, signal), skipped
            except SampleError as error:
                logger.warning("skipping training sample %d: %s", position, error)
        raise SampleError("no training sample could be read")

    def _augment(self, target: TrainTarget, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Augmented image (H x W x 3 uint8) and label map (0 background, 1..K objects, IGNORE_LABEL)."""
        labels = target_labels(target)
        if self.augmentation is None:
            return target.image, labels
        for _ in range(MAX_AUGMENT_TRIES):
            seed = int(rng.integers(2**31))  # one stream for the whole pipeline: transforms draw independently
            self.augmentation.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out = self.augmentation(image=target.image, mask=labels)
            areas = np.bincount(out["mask"].ravel(), minlength=IGNORE_LABEL + 1)[1:IGNORE_LABEL]
            largest = int(areas.max()) if areas.size else 0
            enough = largest >= self.min_object_area if self.reaugment_small else largest > 0
            if enough or rng.random() < self.keep_background_prob:
                break
        return out["image"], out["mask"]

    @staticmethod
    def _tokens(phrase: Optional[str]) -> torch.Tensor:
        if phrase is None:
            return torch.zeros(CLIP_CONTEXT_LENGTH, dtype=torch.long)
        return tokenize_phrases(phrase)[0]


def target_labels(target: TrainTarget) -> np.ndarray:
    """H x W uint8 label map of a target: its objects 1..K (``instances``, or the mask as object 1), 0 background,
    ``IGNORE_LABEL`` on ignored pixels."""
    if target.instances is not None:
        if int(target.instances.max(initial=0)) >= IGNORE_LABEL:
            raise SampleError(f"{target.sample_id}: more than {IGNORE_LABEL - 1} objects in one sample")
        labels = target.instances.astype(np.uint8)
    else:
        labels = (target.mask > 0).astype(np.uint8)
    if target.ignore is not None:
        labels[target.ignore.astype(bool)] = IGNORE_LABEL
    return labels


def object_labels(labels: np.ndarray) -> List[int]:
    """The object labels present in a label map (not background, not ignored), ascending."""
    return [int(v) for v in np.unique(labels) if 0 < v < IGNORE_LABEL]
