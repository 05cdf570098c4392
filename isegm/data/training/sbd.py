"""SBD training targets: whole instances, or FMG proposals for the granularity slider."""
import logging
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..datasets.paired import unique_nonzero
from ..io import PathLike, read_list_file, read_rgb_image, read_sbd_instances, require_dir
from ...signals import NO_SIGNAL, SLIDER
from ..targets import TargetDataset, TrainTarget
from .common import ProposalSource, check_target, require_list_file, unknown_signal
from .sample_weights import read_sample_weights
from .instances import instance_labels
from .proposals import BUGGY_MASK_THRESH

logger = logging.getLogger(__name__)


class SBDTrainingDataset(TargetDataset):
    """SBD for training, one item per image.

    Layout: ``<root>/<split>.txt`` lists image names; ``<root>/img/<name>.jpg`` and ``<root>/inst/<name>.mat``
    (``GTinst.Segmentation``). ``part_path`` is an optional proposal pickle keyed by the image name.

    * ``none``: the instances that pass the published buggy-mask filter (``TrainTarget.instances``); the click
      training set picks one as the target (or merges two) after augmentation;
    * ``slider``: as the published SBD dataset, a proposal of the image whenever the pickle has a usable one
      (inverse-frequency table over the scale column), otherwise the whole instances with ``gra`` 1.0.

    ``samples_scores_path`` (the published ``assets/sbd_samples_weights.pkl``: a pickle list of ``(index, image
    name, score)``) and ``samples_scores_gamma`` make images be drawn with probability proportional to
    ``(1 - score) ** gamma`` instead of once each per epoch, as the published SBD runs do (gamma 1.25).

    Compatibility: the published SBD dataset blends the two proposal columns as ``round(0.1 * semantic + 0.9 *
    scale, 1)`` when they differ by less than 0.1 and takes the scale otherwise; both are multiples of 0.1, so
    the blend always equals the scale column, which is what is used here.
    """

    name = "SBD"
    signals = (NO_SIGNAL, SLIDER)
    layout = ("<root>/<split>.txt (image names), <root>/img/<name>.jpg, "
              "<root>/inst/<name>.mat with GTinst.Segmentation")

    def __init__(self, dataset_path: PathLike, split: str = "train", part_path: Optional[PathLike] = None,
                 buggy_mask_thresh: float = BUGGY_MASK_THRESH, samples_scores_path: Optional[PathLike] = None,
                 samples_scores_gamma: float = 1.0) -> None:
        root = Path(dataset_path)
        self._images_dir = root / "img"
        self._insts_dir = root / "inst"
        for folder in (root, self._images_dir, self._insts_dir):
            require_dir(folder, self.name, self.layout)
        split_file = require_list_file([root / f"{split}.txt"], self.name)
        self.image_ids: List[str] = read_list_file(split_file, self.name)
        self._proposals = ProposalSource(part_path)
        self._buggy_mask_thresh = buggy_mask_thresh
        self.sample_weights = (None if samples_scores_path is None else
                               read_sample_weights(samples_scores_path, samples_scores_gamma, self.image_ids))
        logger.info("%s training: %d images from %s", self.name, len(self.image_ids), split_file)

    def __len__(self) -> int:
        return len(self.image_ids)

    def target(self, index: int, rng: np.random.Generator, signal: str) -> TrainTarget:
        if signal not in self.signals:
            raise unknown_signal(self.name, signal, self.signals)
        image_id = self.image_ids[index]
        image = read_rgb_image(self._images_dir / f"{image_id}.jpg", self.name)

        if signal == SLIDER:
            proposal = self._proposals.target(image_id, image, rng, self._buggy_mask_thresh, self.name)
            if proposal is not None:
                return proposal

        labels = read_sbd_instances(self._insts_dir / f"{image_id}.mat", self.name)
        values = unique_nonzero(labels)
        instances, kept = instance_labels([labels == value for value in values], self._buggy_mask_thresh,
                                          f"{self.name}: {image_id}")
        gra = 1.0 if signal == SLIDER else None
        ids = ",".join(str(values[i]) for i in kept)
        return check_target(TrainTarget(image, (instances > 0).astype(np.uint8), gra=gra, instances=instances,
                                        sample_id=f"{image_id}:{ids}"), self.name)
