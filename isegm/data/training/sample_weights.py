"""Per-image sampling weights of the published SBD runs (``samples_scores_path``, ``samples_scores_gamma``)."""
import logging
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .proposals import ProposalError, safe_load_pickle

logger = logging.getLogger(__name__)


def read_sample_weights(path: Union[str, Path], gamma: float, image_ids: Sequence[str]) -> np.ndarray:
    """Image sampling probabilities from a scores pickle: a list of ``(index, image name, score)`` (the published
    ``assets/sbd_samples_weights.pkl``), read with the restricted unpickler. Image ``name`` weighs
    ``(1 - score) ** gamma`` as published; it is matched to ``image_ids`` by name (the published code uses the
    index, which is the same for the published ``train.txt``). Images the file does not list weigh 0; names the
    dataset does not have are counted in the log. ProposalError (one line) for a missing or malformed file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ProposalError(f"samples_scores_path: cannot read {path} ({error.strerror or error}); it is "
                            f"assets/sbd_samples_weights.pkl of the published GraCo release") from None
    entries = safe_load_pickle(data, str(path))
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    weights = np.zeros(len(image_ids), np.float64)
    unknown = 0
    try:
        for index, name, score in entries:
            if str(name) not in position:
                unknown += 1
                continue
            if not 0.0 <= 1.0 - float(score) <= 1.0:
                raise ValueError(f"image {name}: score {score} is not in [0, 1]")
            weights[position[str(name)]] = (1.0 - float(score)) ** float(gamma)
    except (TypeError, ValueError) as error:
        raise ProposalError(f"{path}: not a list of (index, image name, score) ({error})") from None
    if not np.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
        raise ProposalError(f"{path}: the scores give no usable sampling weights (scores must be at most 1 and "
                            f"name images of the dataset)")
    logger.info("image sampling weights of %d images from %s (gamma %g)%s", int((weights > 0).sum()), path, gamma,
                f"; {unknown} listed images are not in the dataset" if unknown else "")
    return weights / weights.sum()
