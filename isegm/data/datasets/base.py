"""Base class of the evaluation dataset loaders (the file readers are :mod:`isegm.data.io`).

A dataset lists its samples at construction (``sample_ids``) and reads one sample per ``get_sample`` call.
Problems with the dataset as a whole (a missing folder, split list or annotation file needed to list the samples)
raise :class:`DatasetError` at construction; problems with one sample (unreadable image, image without a mask,
mask of another size than the image, empty mask) raise :class:`SampleError` from ``get_sample``, so that
evaluation can skip and count that sample.
"""
import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .. import io
from ..io import DatasetError, PathLike, SampleError
from ..sample import DSample

__all__ = ["DatasetError", "EvaluationDataset", "PathLike", "SampleError", "SubsetDataset"]

logger = logging.getLogger(__name__)


class EvaluationDataset:
    """A fixed, ordered list of samples, each read on demand.

    Subclasses set ``name`` and ``layout`` (the expected folder layout, quoted in errors), fill the list with
    ``_add(sample_id, key)`` while listing the dataset and implement ``_load(sample_id, key)``.
    """

    name = "dataset"
    layout = ""

    def __init__(self) -> None:
        self._entries: List[Tuple[str, Any]] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def sample_ids(self) -> List[str]:
        return [sample_id for sample_id, _ in self._entries]

    def get_sample(self, index: int) -> DSample:
        sample_id, key = self._entries[index]
        return self._load(sample_id, key)

    def _load(self, sample_id: str, key: Any) -> DSample:
        raise NotImplementedError

    def _add(self, sample_id: str, key: Any) -> None:
        self._entries.append((sample_id, key))

    # --- construction-time checks (DatasetError) ---

    def _layout_error(self, what: str) -> DatasetError:
        return DatasetError(f"{self.name}: {what}; expected layout: {self.layout}")

    def _require_dir(self, path: Path) -> Path:
        return io.require_dir(path, self.name, self.layout)

    def _require_file(self, path: Path) -> Path:
        return io.require_file(path, self.name, self.layout)

    def _read_list(self, path: PathLike) -> List[str]:
        """Non-empty stripped lines of a list file (split list or subset file)."""
        return io.read_list_file(path, self.name, self.layout)

    def _finish(self, source: Path) -> None:
        """Refuse an empty dataset and log its size."""
        if not self._entries:
            raise self._layout_error(f"no samples found in {source}")
        logger.info("%s: %d samples from %s", self.name, len(self._entries), source)

    # --- per-sample reading (SampleError) ---

    def _read_image(self, path: Path) -> np.ndarray:
        """H x W x 3 uint8 RGB."""
        return io.read_rgb_image(path, self.name)

    def _read_mask(self, path: Path) -> np.ndarray:
        """H x W x 3 uint8 as the published loaders read masks (``cv2.imread``, BGR order)."""
        return io.read_bgr_mask(path, self.name)

    def _load_mat(self, path: Path) -> Dict[str, Any]:
        return io.read_mat(path, self.name)

    def _make_sample(self, image: np.ndarray, image_path: Path, labels: np.ndarray, mask_path: Path,
                     object_values: Sequence[int], ignore_values: Sequence[int], sample_id: str) -> DSample:
        """Check the mask against the image and build the sample."""
        if labels.shape != image.shape[:2]:
            raise SampleError(f"{self.name}: mask {mask_path} is {labels.shape[0]}x{labels.shape[1]} but image "
                              f"{image_path} is {image.shape[0]}x{image.shape[1]}")
        if not object_values or not np.isin(labels, object_values).any():
            raise SampleError(f"{self.name}: mask {mask_path} is empty (no object pixels) for sample {sample_id}")
        return DSample(image, labels, object_values, ignore_values, sample_id=sample_id)


class SubsetDataset(EvaluationDataset):
    """A dataset whose samples are a seeded random choice or the exact list of a subset file."""

    def write_subset(self, path: PathLike) -> None:
        """Write the sample ids, one per line (readable back through ``subset_file``)."""
        Path(path).write_text("".join(f"{sample_id}\n" for sample_id in self.sample_ids))

    def _subset_keys(self, path: PathLike, form: str) -> List[Tuple[str, Tuple[Any, ...]]]:
        """The ids of a subset file with their keys: ``form`` such as ``<id>:<object>:<part>`` says how many
        non-negative integers follow the name."""
        ids = self._read_list(path)
        if len(set(ids)) != len(ids):
            raise DatasetError(f"{self.name}: subset file {path} lists a sample id more than once")
        entries = []
        for sample_id in ids:
            name, *numbers = sample_id.rsplit(":", form.count(":"))
            if not name or len(numbers) != form.count(":") or not all(n.isdigit() for n in numbers):
                raise DatasetError(f"{self.name}: subset file {path}: {sample_id!r} is not a sample id {form}")
            entries.append((sample_id, (name, *map(int, numbers))))
        return entries
