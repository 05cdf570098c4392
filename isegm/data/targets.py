"""Training targets: what a training dataset hands the trainer for one image.

A training dataset picks, for image ``index``, one target mask to learn and the control signal that asks for it.
Which signal is trained is decided by the trainer per epoch (``signal``), never by state inside the dataset, so
that data-loader worker processes always agree with the trainer. All randomness comes from the ``rng`` the
trainer passes, derived from (seed, epoch, position), so a resumed run draws the same targets.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ..signals import NO_SIGNAL


@dataclass
class TrainTarget:
    """One training target.

    * image: H x W x 3 uint8 RGB;
    * mask: H x W uint8, 1 inside the target, 0 outside;
    * ignore: H x W bool of pixels that count neither way (or None);
    * gra: scale granularity in {0.1, ..., 1.0} for the slider signal (None otherwise);
    * phrase: the part name for the phrase signal (None otherwise);
    * sample_id: a name for logs;
    * instances: for a sample of several whole objects (SBD, COCO instances), H x W uint8 labels 1..K of every
      usable object (0 background); the click training set then picks the target after augmentation (one
      object, or with the sampler's ``merge_objects_prob`` several merged) and the others take negative clicks.
      ``mask`` is then their union. None for a single target.
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: Optional[np.ndarray] = None
    gra: Optional[float] = None
    phrase: Optional[str] = None
    sample_id: str = ""
    instances: Optional[np.ndarray] = None


class TargetDataset(torch.utils.data.Dataset):
    """Base of the training datasets. Subclasses set ``signals`` (the signals they can serve) and implement
    ``__len__`` (number of images) and ``target``. An unreadable image or an annotation that does not fit raises
    :class:`isegm.data.datasets.SampleError`; the trainer skips, logs and counts it."""

    signals: Sequence[str] = (NO_SIGNAL,)

    def target(self, index: int, rng: np.random.Generator, signal: str) -> TrainTarget:
        raise NotImplementedError

    def __getitem__(self, index: int) -> TrainTarget:
        return self.target(index, np.random.default_rng(index), self.signals[0])


def rare_first_weights(gras: Sequence[float], frequency: Optional[Dict[float, float]] = None) -> np.ndarray:
    """Sampling probabilities over candidate targets that favour rare granularities.

    Each distinct granularity gets weight ``1 / frequency[g]`` (``frequency`` defaults to the counts among
    ``gras``), shared equally among the candidates that have it; the result sums to 1.
    """
    gras = [round(float(g), 1) for g in gras]
    if not gras:
        raise ValueError("no candidate targets")
    counts: Dict[float, int] = {}
    for g in gras:
        counts[g] = counts.get(g, 0) + 1
    freq = frequency if frequency is not None else counts
    weights = np.array([1.0 / max(freq.get(g, 1e-12), 1e-12) / counts[g] for g in gras], dtype=np.float64)
    return weights / weights.sum()


def table_weights(gras: Sequence[float], table: Dict[float, float]) -> np.ndarray:
    """Sampling probabilities over candidate targets from a per-granularity weight table, as the published
    datasets draw them: a candidate with granularity ``g`` weighs ``table[g]`` divided by the number of candidates
    with ``g`` (so each granularity present gets its table share); the result sums to 1. Granularities are
    rounded to 0.1 before look-up; a granularity missing from the table weighs 0. Raises ValueError when every
    candidate weighs 0 (or there is none)."""
    rounded = [round(float(g), 1) for g in gras]
    counts: Dict[float, int] = {}
    for g in rounded:
        counts[g] = counts.get(g, 0) + 1
    weights = np.array([table.get(g, 0.0) / counts[g] for g in rounded], dtype=np.float64)
    total = weights.sum()
    if not rounded or not total > 0:
        raise ValueError("no candidate target has a positive sampling weight")
    return weights / total
