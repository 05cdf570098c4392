"""The control signals and their vocabulary, shared by the model, the training data and the predictor.

* ``none``: plain click segmentation (the whole object);
* ``slider``: a granularity in [0, 1]; trained targets and the strip use the ten levels 0.1, 0.2, ..., 1.0;
* ``phrase``: a part name, encoded as CLIP ViT-B/32 BPE tokens.
"""
import math
from functools import lru_cache
from typing import Sequence, Union

import torch

NO_SIGNAL = "none"
SLIDER = "slider"
PHRASE = "phrase"
SIGNALS = (NO_SIGNAL, SLIDER, PHRASE)

NUM_GRANULARITY_LEVELS = 10
GRANULARITY_LEVELS = tuple(round(k / NUM_GRANULARITY_LEVELS, 1) for k in range(1, NUM_GRANULARITY_LEVELS + 1))

CLIP_TOKENIZER = "ViT-B-32"
CLIP_CONTEXT_LENGTH = 77


def round_granularity(value: float) -> float:
    """Round a granularity ratio to one decimal the way the published trie and generator do: numpy's rounding of a
    float64 (``rint(10 x) / 10``, halves to even), not Python's ``round`` (which rounds the exact binary value):
    0.15, 0.35, 0.45, 0.65, 0.95 give 0.2, 0.4, 0.4, 0.6, 1.0."""
    import numpy as np

    return float(np.round(np.float64(value), 1))


def check_granularity(value: float) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` when it is not a number in [0, 1]."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"granularity must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"granularity must be a number in [0, 1], got {value}")
    return value


@lru_cache(maxsize=1)
def _tokenizer():
    import open_clip  # only where phrases are used

    return open_clip.get_tokenizer(CLIP_TOKENIZER)


def tokenize_phrases(phrases: Union[str, Sequence[str]]) -> torch.Tensor:
    """CLIP BPE tokens of one phrase or several: B x 77 int64."""
    return _tokenizer()([phrases] if isinstance(phrases, str) else list(phrases)).long()
