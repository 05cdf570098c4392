"""Base class and file helpers shared by the evaluation dataset loaders.

A dataset lists its samples at construction (``sample_ids``) and reads one sample per ``get_sample`` call.
Problems with the dataset as a whole (a missing folder, split list or annotation file needed to list the samples)
raise :class:`DatasetError` at construction; problems with one sample (unreadable image, image without a mask,
mask of another size than the image, empty mask) raise :class:`SampleError` from ``get_sample``, so that
evaluation can skip and count that sample.
"""
import logging
from pathlib import Path
from typing import Any, Collection, Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from ..sample import DSample

PathLike = Union[str, Path]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The dataset folder does not have the expected layout (raised at construction)."""


class SampleError(ValueError):
    """One sample cannot be read (raised by ``get_sample``); evaluation skips and counts it."""


def list_files(folder: Path, suffixes: Collection[str]) -> List[Path]:
    """Visible files of ``folder`` whose suffix (any case) is in ``suffixes``, sorted by name."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes),
                  key=lambda p: p.name)


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
        if not path.is_dir():
            raise self._layout_error(f"folder {path} not found")
        return path

    def _require_file(self, path: Path) -> Path:
        if not path.is_file():
            raise self._layout_error(f"file {path} not found")
        return path

    def _read_list(self, path: PathLike) -> List[str]:
        """Non-empty stripped lines of a list file (split list or subset file)."""
        lines = [line.strip() for line in self._require_file(Path(path)).read_text().splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise self._layout_error(f"list file {path} is empty")
        return lines

    def _finish(self, source: Path) -> None:
        """Refuse an empty dataset and log its size."""
        if not self._entries:
            raise self._layout_error(f"no samples found in {source}")
        logger.info("%s: %d samples from %s", self.name, len(self._entries), source)

    # --- per-sample reading (SampleError) ---

    def _read_image(self, path: Path) -> np.ndarray:
        """H x W x 3 uint8 RGB."""
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SampleError(f"{self.name}: cannot read image {path}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _read_mask(self, path: Path) -> np.ndarray:
        """H x W x 3 uint8 as the published loaders read masks (``cv2.imread``, BGR order)."""
        mask = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if mask is None:
            raise SampleError(f"{self.name}: cannot read mask {path}")
        return mask

    def _load_mat(self, path: Path) -> Dict[str, Any]:
        try:
            return loadmat(str(path))
        except (OSError, ValueError, MatReadError) as error:
            raise SampleError(f"{self.name}: cannot read {path} ({error})") from error

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
