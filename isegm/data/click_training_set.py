"""Turns training targets into network inputs: augmentation, clicks and phrase tokens for one sample."""
import logging
import random
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .datasets.base import SampleError
from .points_sampler import MultiPointSampler
from .targets import TargetDataset, TrainTarget
from ..signals import CLIP_CONTEXT_LENGTH, tokenize_phrases

logger = logging.getLogger(__name__)
SampleKey = Tuple[int, int, str]  # (image index, sample seed, signal)
MAX_AUGMENT_TRIES = 10
IGNORE_VALUE = 2  # value of ignored pixels in the augmented mask (0 background, 1 target)


class ClickTrainingSet(torch.utils.data.Dataset):
    """Indexed by ``(index, seed, signal)`` keys (see :class:`isegm.engine.sampler.GCLSampler`).

    Each item is a dict of ``images`` (3 x H x W float32 in [0, 1]), ``points`` (2N x 3 float32), ``instances``
    (1 x H x W float32: 1 target, 0 background, -1 ignored), ``gra`` (float32, NaN without a granularity),
    ``text`` (77 int64 CLIP tokens, zeros without a phrase) and ``skipped`` (how many unreadable samples were
    replaced by the next image to give this one). Everything random comes from ``seed``.
    """

    def __init__(self, targets: TargetDataset, augmentation, points_sampler: MultiPointSampler,
                 min_object_area: int = 80, keep_background_prob: float = 0.01):
        self.targets = targets
        self.augmentation = augmentation
        self.points_sampler = points_sampler
        self.min_object_area = min_object_area
        self.keep_background_prob = keep_background_prob

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: SampleKey) -> Dict[str, object]:
        index, seed, signal = key
        rng = np.random.default_rng(seed)
        target, skipped = self._read_target(int(index), rng, signal)
        image, mask = self._augment(target, rng)
        ignore = mask == IGNORE_VALUE
        objects = mask == 1
        points = self.points_sampler.sample(objects, rng, ignore=ignore)
        instances = objects.astype(np.float32)
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
        """Augmented image (H x W x 3 uint8) and mask (0, 1, IGNORE_VALUE); retried while the target is smaller
        than ``min_object_area`` pixels, unless kept as a background sample (``keep_background_prob``)."""
        mask = (target.mask > 0).astype(np.uint8)
        if target.ignore is not None:
            mask[target.ignore.astype(bool)] = IGNORE_VALUE
        if self.augmentation is None:
            return target.image, mask
        for _ in range(MAX_AUGMENT_TRIES):
            seed = int(rng.integers(2**31))  # one stream for the whole pipeline: transforms draw independently
            self.augmentation.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out = self.augmentation(image=target.image, mask=mask)
            if (out["mask"] == 1).sum() >= self.min_object_area or rng.random() < self.keep_background_prob:
                break
        return out["image"], out["mask"]

    @staticmethod
    def _tokens(phrase: Optional[str]) -> torch.Tensor:
        if phrase is None:
            return torch.zeros(CLIP_CONTEXT_LENGTH, dtype=torch.long)
        return tokenize_phrases(phrase)[0]
