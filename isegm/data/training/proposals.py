"""Granularity proposals (FMG output): reading and writing the pickle, and drawing one proposal per image.

File layout (compatible with the published proposal pickle)::

    {image_id: {'mask': N x H x W uint8 array (0/1; bool or other numbers read too, nonzero = inside),
                'gra': N x 2 float array}}

``image_id`` is the dataset's image id (SBD / PASCAL-Part image name, COCO ``file_name`` stem).
``gra[:, SEMANTIC_COLUMN]`` is the semantic granularity (ratio of one-click probability ranges, part vs object)
and ``gra[:, SCALE_COLUMN]`` the scale granularity (area ratio rounded to 0.1; 0.0 for an empty proposal): the
published generator writes ``[semantic, scale]`` and the published training datasets use column 1, the scale.
Files of the published generator are read as the published training reads them: a NaN semantic value (written
when a prediction has no probability spread) is kept and counted, and a 1-D ``gra`` of N values (the older
published layout) is the scale column (the semantic column is then NaN).

Writing stores every array as ``numpy.ndarray(shape, dtype string, bytearray)``, which numpy 1.x and 2.x both
unpickle (a plain ``pickle.dump`` under numpy 2 names ``numpy._core``, which numpy before 1.26 cannot import).

Reading never runs code from the file: a restricted unpickler accepts numpy arrays, numpy dtypes/scalars and
plain builtin containers only, and refuses anything else with :class:`UnsafePickleError`.
"""
import io
import logging
import pickle
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ...signals import GRANULARITY_LEVELS
from ...utils.files import atomic_write
from .. import targets

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
Proposals = Dict[str, Dict[str, np.ndarray]]
SEMANTIC_COLUMN = 0
SCALE_COLUMN = 1
BUGGY_MASK_THRESH = 0.08  # published: a mask filling less than 8% of its bounding box is dropped

# (module, name) pairs the unpickler may resolve; numpy.core.* is mapped to numpy._core.* first (numpy < 2 files)
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles store bytes as _codecs.encode(text, 'latin1')
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "bytearray"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "complex"), ("builtins", "bool"),
    ("builtins", "slice"), ("builtins", "range"),
})
_NUMPY_DTYPE_CLASSES = "numpy.dtypes"  # numpy >= 1.25 pickles dtypes of some kinds as numpy.dtypes.<Kind>DType


class ProposalError(ValueError):
    """A proposal file is missing, unreadable or not in the proposal layout."""


class UnsafePickleError(ProposalError):
    """A proposal pickle refers to something other than numpy arrays and plain builtins."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "numpy.core" or module.startswith("numpy.core."):
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) in _ALLOWED_GLOBALS or (module == _NUMPY_DTYPE_CLASSES and name.endswith("DType")):
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name}: a proposal pickle may only hold numpy arrays "
                                f"and plain builtin values")


def _rebuild_array_args(array: np.ndarray) -> tuple:
    """Arguments of ``numpy.ndarray(shape, dtype, buffer)`` that rebuild ``array`` (a writable copy)."""
    array = np.ascontiguousarray(array)
    return array.shape, array.dtype.str, bytearray(array.tobytes())


class _PortablePickler(pickle.Pickler):
    """Pickles numpy arrays through ``numpy.ndarray`` itself, a name numpy 1.x and 2.x share."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and obj.dtype.kind in "biuf":
            return np.ndarray, _rebuild_array_args(obj)
        return NotImplemented


def safe_load_pickle(data: bytes, source: str = "<bytes>"):
    """Unpickle ``data`` with the restricted unpickler (numpy arrays, dtypes, scalars and builtin containers)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{source}: {error}") from None
    except Exception as error:  # any malformed stream: EOFError, UnpicklingError, TypeError, ...
        raise ProposalError(f"{source}: not a readable pickle ({type(error).__name__}: {error})") from error


def _check_entry(image_id: object, entry: object, source: str) -> Tuple[str, Dict[str, np.ndarray]]:
    if not isinstance(image_id, str):
        raise ProposalError(f"{source}: image id {image_id!r} is not a string")
    if not isinstance(entry, Mapping) or "mask" not in entry or "gra" not in entry:
        raise ProposalError(f"{source}: entry {image_id!r} must be a dict with 'mask' and 'gra'")
    masks, gras = entry["mask"], entry["gra"]
    if not isinstance(masks, np.ndarray) or not isinstance(gras, np.ndarray):
        raise ProposalError(f"{source}: entry {image_id!r}: 'mask' and 'gra' must be numpy arrays")
    if masks.size == 0 and gras.size == 0:  # an image without proposals
        return image_id, {"mask": np.zeros((0, 0, 0), np.uint8), "gra": np.zeros((0, 2), np.float64)}
    if masks.ndim != 3 or masks.dtype.kind not in "buif":
        raise ProposalError(f"{source}: entry {image_id!r}: 'mask' must be an N x H x W number array, got "
                            f"shape {masks.shape} dtype {masks.dtype}")
    if gras.dtype.kind in "fiu" and gras.shape == (masks.shape[0],):  # older published layout: the scale only
        gras = np.stack([np.full(gras.shape, np.nan), gras.astype(np.float64)], axis=1)
    if gras.ndim != 2 or gras.shape != (masks.shape[0], 2) or gras.dtype.kind not in "fiu":
        raise ProposalError(f"{source}: entry {image_id!r}: 'gra' must be an N x 2 (semantic, scale) or N-long "
                            f"(scale) number array with N = {masks.shape[0]} (the masks), got shape {gras.shape} "
                            f"dtype {gras.dtype}")
    if not np.isfinite(gras[:, SCALE_COLUMN]).all():
        raise ProposalError(f"{source}: entry {image_id!r}: the scale granularity (column {SCALE_COLUMN}) has "
                            f"non-finite values")
    if np.isinf(gras[:, SEMANTIC_COLUMN]).any():
        raise ProposalError(f"{source}: entry {image_id!r}: the semantic granularity (column {SEMANTIC_COLUMN}) "
                            f"is infinite")
    return image_id, {"mask": masks, "gra": gras.astype(np.float64, copy=False)}


def read_proposals(path: PathLike) -> Proposals:
    """Read a proposal pickle safely and check its layout: ``{image_id: {'mask': N x H x W, 'gra': N x 2}}``.

    Raises :class:`UnsafePickleError` (before anything in the file runs) when the pickle refers to anything but
    numpy arrays and builtins, and :class:`ProposalError` for a missing/unreadable file or another layout."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ProposalError(f"cannot read proposal file {path} ({error})") from error
    loaded = safe_load_pickle(data, str(path))
    if not isinstance(loaded, Mapping):
        raise ProposalError(f"{path}: a proposal file holds a dict {{image_id: {{'mask', 'gra'}}}}, "
                            f"not {type(loaded).__name__}")
    proposals = dict(_check_entry(image_id, entry, str(path)) for image_id, entry in loaded.items())
    no_semantic = sum(int(np.isnan(e["gra"][:, SEMANTIC_COLUMN]).sum()) for e in proposals.values())
    if no_semantic:
        logger.info("%s: %d proposals have no semantic granularity (NaN or the 1-D scale-only layout); kept, "
                    "training reads the scale column", path, no_semantic)
    logger.info("read proposals of %d images (%d masks) from %s", len(proposals),
                sum(e["mask"].shape[0] for e in proposals.values()), path)
    return proposals


def write_proposals(path: PathLike, proposals: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write proposals in the published layout, atomically (a temporary file in the same folder, then rename).
    Masks are stored as uint8 0/1 (nonzero = inside), granularities as float64; the layout is checked first
    (:class:`ProposalError`)."""
    path = Path(path)
    checked = {}
    for image_id, entry in proposals.items():
        image_id, entry = _check_entry(image_id, {k: np.asarray(v) for k, v in dict(entry).items()}, str(path))
        checked[image_id] = {"mask": (entry["mask"] != 0).astype(np.uint8), "gra": entry["gra"].astype(np.float64)}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as stream:
            _PortablePickler(stream, protocol=4).dump(checked)

    atomic_write(path, write)
    logger.info("wrote proposals of %d images to %s", len(checked), path)


def is_buggy_mask(mask: np.ndarray, thresh: float = BUGGY_MASK_THRESH) -> bool:
    """Published filter: True when the mask is empty or covers less than ``thresh`` of its bounding box
    (``thresh`` <= 0 only rejects empty masks). ``mask``: H x W, nonzero = inside."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return True
    if thresh <= 0:
        return False
    bbox_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    return rows.size / bbox_area < thresh


def scale_weight_table(proposals: Proposals) -> Dict[float, float]:
    """Published proposal sampling table: over all proposals of the file, scale granularity ``g`` weighs
    ``n / count(g)`` (n = number of proposals with a nonzero scale); scale 0.0 (empty proposal) weighs 0."""
    counts: Dict[float, int] = {}
    for entry in proposals.values():
        for g in entry["gra"][:, SCALE_COLUMN]:
            g = round(float(g), 1)
            counts[g] = counts.get(g, 0) + 1
    total = sum(count for g, count in counts.items() if g != 0.0)
    table = {g: total / count for g, count in counts.items() if g != 0.0}
    table[0.0] = 0.0
    return table


def choose_proposal(entry: Mapping[str, np.ndarray], table: Mapping[float, float], rng: np.random.Generator,
                    buggy_mask_thresh: float = BUGGY_MASK_THRESH) -> Optional[Tuple[int, np.ndarray, float]]:
    """Draw one proposal of an image: ``(index, H x W uint8 mask, scale granularity)``, or None when none is
    usable. Candidates are the proposals with a scale granularity in {0.1, ..., 1.0} and a mask that passes
    :func:`is_buggy_mask`; they are drawn with :func:`targets.table_weights` over ``table``
    (:func:`scale_weight_table`).

    Deliberate difference: the published datasets draw first and blank a buggy mask afterwards (leaving an empty
    target), and fail on an image whose proposals all weigh 0; here such proposals are never candidates."""
    scales = [round(float(g), 1) for g in entry["gra"][:, SCALE_COLUMN]]
    candidates = [i for i, g in enumerate(scales)
                  if g in GRANULARITY_LEVELS and table.get(g, 0.0) > 0
                  and not is_buggy_mask(entry["mask"][i], buggy_mask_thresh)]
    if not candidates:
        return None
    probs = targets.table_weights([scales[i] for i in candidates], dict(table))
    index = candidates[int(rng.choice(len(candidates), p=probs))]
    return index, (entry["mask"][index] != 0).astype(np.uint8), scales[index]
