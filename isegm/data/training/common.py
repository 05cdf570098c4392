"""Helpers shared by the training datasets: the split-list choice, proposal loading and the checks every target
goes through (file reading is :mod:`isegm.data.io`)."""
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from ..io import DatasetError, PathLike, SampleError
from ..targets import TrainTarget
from .proposals import Proposals, choose_proposal, read_proposals, scale_weight_table

logger = logging.getLogger(__name__)


def require_list_file(candidates: Sequence[Path], what: str) -> Path:
    """The first existing file of ``candidates``; raises DatasetError naming them all otherwise."""
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(f"{what}: none of {', '.join(str(p) for p in candidates)} exists")


class ProposalSource:
    """Proposals of a dataset (or none when ``part_path`` is None): all held in memory as the published datasets
    do, with the inverse-frequency table to draw them (:func:`.proposals.scale_weight_table`)."""

    def __init__(self, part_path: Optional[PathLike]) -> None:
        self.path = None if part_path is None else Path(part_path)
        self.proposals: Proposals = read_proposals(self.path) if self.path is not None else {}
        self.table = scale_weight_table(self.proposals) if self.proposals else {}

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.proposals

    def get(self, image_id: str) -> Optional[Dict[str, np.ndarray]]:
        """``{'mask': N x H x W, 'gra': N x 2}`` of the image, or None."""
        return self.proposals.get(image_id)

    def target(self, image_id: str, image: np.ndarray, rng: np.random.Generator, buggy_mask_thresh: float,
               dataset: str) -> Optional[TrainTarget]:
        """A slider target drawn among the image's usable proposals (rare scales first), or None without any."""
        if image_id not in self.proposals:
            return None
        chosen = choose_proposal(self.proposals[image_id], self.table, rng, buggy_mask_thresh)
        if chosen is None:
            logger.debug("%s: image %s has no usable proposal", dataset, image_id)
            return None
        proposal_index, mask, gra = chosen
        return check_target(TrainTarget(image, mask, gra=gra, sample_id=f"{image_id}:proposal:{proposal_index}"),
                            dataset)


def check_target(target: TrainTarget, dataset: str) -> TrainTarget:
    """Refuse a target whose mask does not fit its image or is empty (SampleError)."""
    height, width = target.image.shape[:2]
    if target.mask.shape != (height, width):
        raise SampleError(f"{dataset}: {target.sample_id}: mask is {target.mask.shape[0]}x{target.mask.shape[1]} "
                          f"but the image is {height}x{width}")
    if target.ignore is not None and target.ignore.shape != (height, width):
        raise SampleError(f"{dataset}: {target.sample_id}: ignore mask does not match the image")
    if not target.mask.any():
        raise SampleError(f"{dataset}: {target.sample_id}: the target mask is empty")
    return target


def unknown_signal(dataset: str, signal: str, signals: Sequence[str]) -> ValueError:
    return ValueError(f"{dataset} serves the signals {', '.join(signals)}, not {signal!r}")
