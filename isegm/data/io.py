"""Reading dataset files: RGB images, masks, ``.mat`` files, SBD instance maps, list files and folder checks.

Every reader names the file in a one-line error and, when given ``what`` (a dataset name), starts the message
with it. A problem with the dataset as a whole (a missing folder or list file) raises :class:`DatasetError`, a
problem with one file (unreadable image, bad ``.mat``) raises :class:`SampleError`, so that evaluation and
training can skip and count that sample.
"""
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Union

import cv2
import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

PathLike = Union[str, Path]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})


class DatasetError(ValueError):
    """The dataset folder does not have the expected layout (raised when a dataset is built)."""


class SampleError(ValueError):
    """One sample cannot be read; evaluation and training skip and count it."""


def _prefix(what: Optional[str]) -> str:
    return f"{what}: " if what else ""


def _layout_hint(layout: str) -> str:
    return f"; expected layout: {layout}" if layout else ""


# --- dataset layout (DatasetError) -----------------------------------------------------------------------------

def require_dir(path: PathLike, what: Optional[str] = None, layout: str = "") -> Path:
    """``path`` when it is a folder; DatasetError naming it (and the expected ``layout``) otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{_prefix(what)}folder {path} not found{_layout_hint(layout)}")
    return path


def require_file(path: PathLike, what: Optional[str] = None, layout: str = "") -> Path:
    """``path`` when it is a file; DatasetError naming it (and the expected ``layout``) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{_prefix(what)}file {path} not found{_layout_hint(layout)}")
    return path


def read_list_file(path: PathLike, what: Optional[str] = None, layout: str = "") -> List[str]:
    """Non-empty stripped lines of a list file (split list or subset file); DatasetError when it is missing or
    has none."""
    path = require_file(path, what, layout)
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise DatasetError(f"{_prefix(what)}list file {path} is empty{_layout_hint(layout)}")
    return lines


def list_files(folder: Path, suffixes: Collection[str]) -> List[Path]:
    """Visible files of ``folder`` whose suffix (any case) is in ``suffixes``, sorted by name."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes),
                  key=lambda p: p.name)


# --- one file (SampleError) -----------------------------------------------------------------------------------

def read_rgb_image(path: PathLike, what: Optional[str] = None) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError(f"{_prefix(what)}cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_bgr_mask(path: PathLike, what: Optional[str] = None) -> np.ndarray:
    """H x W x 3 uint8 as the published loaders read masks (``cv2.imread``, BGR order)."""
    mask = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if mask is None:
        raise SampleError(f"{_prefix(what)}cannot read mask {path}")
    return mask


def read_mat(path: PathLike, what: Optional[str] = None) -> Dict[str, Any]:
    """The variables of a MATLAB ``.mat`` file."""
    try:
        return loadmat(str(path))
    except (OSError, ValueError, MatReadError) as error:
        raise SampleError(f"{_prefix(what)}cannot read {path} ({error})") from error


def read_sbd_instances(path: PathLike, what: Optional[str] = "SBD") -> np.ndarray:
    """H x W int32 instance map of an SBD ``inst/<name>.mat`` (``GTinst.Segmentation``: 0 background,
    k = instance k)."""
    mat = read_mat(path, what)
    try:
        return np.asarray(mat["GTinst"]["Segmentation"][0, 0], dtype=np.int32)
    except (KeyError, ValueError, IndexError) as error:
        raise SampleError(f"{_prefix(what)}{path} has no GTinst.Segmentation") from error


def read_pascalpart_anno(path: PathLike, what: Optional[str] = "PascalPart") -> Any:
    """The 1 x K struct array ``anno.objects`` of a PASCAL-Part ``Annotations_Part/<id>.mat``."""
    mat = read_mat(path, what)
    try:
        return mat["anno"]["objects"][0, 0]
    except (KeyError, ValueError, IndexError) as error:
        raise SampleError(f"{_prefix(what)}{path} has no anno.objects") from error
