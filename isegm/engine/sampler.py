"""Deterministic, resumable, rank-sharded sampling of training keys ``(index, seed, signal)``."""
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch


def derive_seed(*values: int) -> int:
    """A 63-bit seed from integers (numpy ``SeedSequence``): the same inputs give the same seed everywhere."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class GCLSampler(torch.utils.data.Sampler):
    """One epoch of training keys for one rank.

    The epoch's order is a permutation of the images seeded by (seed, epoch) (with ``epoch_len`` > 0, that many
    draws with replacement), cut to a whole number of global batches; rank r takes every world-th key starting at
    r. Each key carries a sample seed derived from (seed, epoch, position), so a sample is the same whichever
    worker, rank or restart draws it, and the epoch's signal, so that workers never hold their own notion of
    it. With ``weights`` (image sampling probabilities, e.g. the published SBD sample scores) the epoch's images
    are drawn with replacement with those probabilities. ``set_epoch(epoch, start_batch)`` skips the batches a resumed run already trained on.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int, signal_for_epoch: Callable[[int], str],
                 rank: int = 0, world_size: int = 1, epoch_len: int = -1, weights: Optional[np.ndarray] = None):
        if num_images < 1:
            raise ValueError("the training set is empty")
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = seed
        self.signal_for_epoch = signal_for_epoch
        self.rank, self.world_size = rank, world_size
        self.epoch_len = epoch_len
        self.weights = None if weights is None else np.asarray(weights, np.float64)
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch < 1:
            raise ValueError(f"{self._draws} training samples do not fill one batch of "
                             f"{batch_size * world_size}; lower --batch-size")

    @property
    def _draws(self) -> int:
        return self.epoch_len if self.epoch_len > 0 else self.num_images

    @property
    def batches_per_epoch(self) -> int:
        return self._draws // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[Tuple[int, int, str]]:
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch))
        if self.weights is not None:
            order = rng.choice(self.num_images, size=self._draws, p=self.weights)
        elif self.epoch_len > 0:
            order = rng.integers(self.num_images, size=self.epoch_len)
        else:
            order = rng.permutation(self.num_images)
        used = self.batches_per_epoch * self.batch_size * self.world_size
        signal = self.signal_for_epoch(self.epoch)
        first = self.start_batch * self.batch_size * self.world_size
        for position in range(first + self.rank, used, self.world_size):
            yield int(order[position]), derive_seed(self.seed, self.epoch, position), signal
