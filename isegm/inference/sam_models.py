"""SAM and SAM 2 baselines: their variants, safe reading of the official checkpoints, and building the models
with Meta's own packages (``segment-anything`` and ``sam2`` from PyPI).

Official checkpoints: SAM files (``sam_vit_b_01ec64.pth`` ...) are plain state dicts; SAM 2 files
(``sam2.1_hiera_tiny.pt`` ...) hold ``{"model": state_dict}``. Both are read with ``torch.load(weights_only=True)``
after the pickle has been inspected; anything that is not such a file of the asked variant is a
:class:`~isegm.model.checkpoint.CheckpointError` with one line naming the file.
"""
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional, Tuple, Union

import torch

from ..model.checkpoint import CheckpointError
from ..utils.extras import require_extra

PathLike = Union[str, Path]
PACKAGES = {"SAM": "segment_anything", "SAM2": "sam2.build_sam"}  # from the [baselines] extra


@dataclass(frozen=True)
class SamVariant:
    """One model size: its family (``SAM`` or ``SAM2``), its image-encoder width and depth (the signature read
    from a state dict), the official file name and, for SAM 2, the config shipped inside the ``sam2`` package."""
    family: str
    name: str
    width: int
    depth: int
    official_file: str
    config: Optional[str] = None

    @property
    def download_url(self) -> str:
        return _DOWNLOADS[self.family] + self.official_file

    @property
    def weights_folder(self) -> str:
        """Where weights/README.md puts the file."""
        return "weights/sam" if self.family == "SAM" else "weights/sam2"

    def where_to_get(self) -> str:
        return (f"the official {LABELS[self.family]} {self.name} checkpoint is {self.official_file}: download "
                f"{self.download_url} into {self.weights_folder}/")


VARIANTS: Dict[str, Dict[str, SamVariant]] = {
    "SAM": {
        "vit_b": SamVariant("SAM", "vit_b", 768, 12, "sam_vit_b_01ec64.pth"),
        "vit_l": SamVariant("SAM", "vit_l", 1024, 24, "sam_vit_l_0b3195.pth"),
        "vit_h": SamVariant("SAM", "vit_h", 1280, 32, "sam_vit_h_4b8939.pth"),
    },
    "SAM2": {
        "hiera_t": SamVariant("SAM2", "hiera_t", 96, 12, "sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        "hiera_s": SamVariant("SAM2", "hiera_s", 96, 16, "sam2.1_hiera_small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml"),
        "hiera_b+": SamVariant("SAM2", "hiera_b+", 112, 24, "sam2.1_hiera_base_plus.pt",
                               "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        "hiera_l": SamVariant("SAM2", "hiera_l", 144, 48, "sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
    },
}
LABELS = {"SAM": "SAM", "SAM2": "SAM 2"}
_DOWNLOADS = {"SAM": "https://dl.fbaipublicfiles.com/segment_anything/",
              "SAM2": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"}
# where the patch embedding and the encoder blocks of each family live in its state dict
_ENCODER_KEYS = {"SAM": ("image_encoder.patch_embed.proj.weight", r"image_encoder\.blocks\.(\d+)\."),
                 "SAM2": ("image_encoder.trunk.patch_embed.proj.weight", r"image_encoder\.trunk\.blocks\.(\d+)\.")}


def get_variant(sam_type: str, sam_model: str) -> SamVariant:
    """The variant named by ``--sam-type`` / ``--sam-model``; ``ValueError`` naming the choices otherwise."""
    if sam_type not in VARIANTS:
        raise ValueError(f"unknown SAM type {sam_type!r}: choose {' or '.join(VARIANTS)}")
    if sam_model not in VARIANTS[sam_type]:
        raise ValueError(f"{LABELS[sam_type]} has no model {sam_model!r}: choose one of {', '.join(VARIANTS[sam_type])}")
    return VARIANTS[sam_type][sam_model]


def identify(state: Dict[str, torch.Tensor], family: str) -> Optional[Tuple[int, int]]:
    """(encoder width, number of encoder blocks) of a state dict of ``family``, or None if it has no such encoder."""
    patch_key, block_pattern = _ENCODER_KEYS[family]
    patch = state.get(patch_key)
    if not isinstance(patch, torch.Tensor) or patch.ndim != 4:
        return None
    blocks = {int(m.group(1)) for m in map(re.compile(block_pattern).match, state) if m}
    return int(patch.shape[0]), len(blocks)


def _load_pickle(path: Path, label: str):
    """``torch.load(weights_only=True)``; a zip archive's pickle is inspected first so that a GraCo file or a pickle
    that calls functions is named as such (the legacy non-zip format is left to the weights-only unpickler)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (the official {label} checkpoints: see weights/README.md)")
    archive = zipfile.is_zipfile(path)
    if archive:
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as error:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(error).splitlines()[0]})") from None
        if needed and all(name.startswith("isegm.") for name in needed):
            raise CheckpointError(f"{path}: a SimpleClick/GraCo checkpoint, not a {label} checkpoint "
                                  f"(give it without --sam-type)")
        if needed:
            raise CheckpointError(f"{path}: refused, its pickle would call {', '.join(needed)}, "
                                  f"which no {label} checkpoint needs")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        what = "could not be read safely" if archive else "not a PyTorch checkpoint that can be read safely"
        raise CheckpointError(f"{path}: {what} ({str(error).splitlines()[0]})") from None


def _is_state(content) -> bool:
    return isinstance(content, dict) and bool(content) and all(isinstance(v, torch.Tensor) for v in content.values())


def read_sam_checkpoint(path: PathLike, variant: SamVariant) -> Dict[str, torch.Tensor]:
    """The state dict of an official SAM (plain state dict) or SAM 2 (``{"model": state_dict}``) file, checked to
    hold the encoder of ``variant``.

    Raises:
        CheckpointError: one line naming the file and what is wrong (missing, not a checkpoint, unsafe pickle,
            a GraCo file, the other SAM family, another model size).
    """
    path = Path(path)
    label = LABELS[variant.family]
    content = _load_pickle(path, label)
    if isinstance(content, dict) and "state_dict" in content:
        raise CheckpointError(f"{path}: a SimpleClick/GraCo checkpoint ('state_dict' layout), not a {label} checkpoint")
    sam2_layout = isinstance(content, dict) and _is_state(content.get("model"))
    state = content["model"] if sam2_layout else content
    expected = "a plain state dict" if variant.family == "SAM" else "a dict {'model': state_dict}"
    if not _is_state(state):
        raise CheckpointError(f"{path}: not a {label} checkpoint (expected {expected})")
    other = "SAM2" if variant.family == "SAM" else "SAM"
    if identify(state, variant.family) is None and identify(state, other) is not None:
        raise CheckpointError(f"{path}: a {LABELS[other]} checkpoint, not a {label} one: pass --sam-type {other}")
    if sam2_layout != (variant.family == "SAM2"):
        raise CheckpointError(f"{path}: not in the official {label} layout (expected {expected})")
    signature = identify(state, variant.family)
    if signature is None:
        raise CheckpointError(f"{path}: not a {label} checkpoint (no {_ENCODER_KEYS[variant.family][0]})")
    if signature != (variant.width, variant.depth):
        found = [v.name for v in VARIANTS[variant.family].values() if (v.width, v.depth) == signature]
        what = (f"{label} {found[0]} weights" if found else
                f"an image encoder of width {signature[0]} and {signature[1]} blocks")
        hint = f": pass --sam-model {found[0]}" if found else ""
        raise CheckpointError(f"{path}: holds {what}, not {label} {variant.name}{hint}")
    return state


def sam_package(family: str) -> ModuleType:
    """The module that builds models of ``family`` (``segment_anything`` or ``sam2.build_sam``); raises
    :class:`~isegm.utils.extras.ExtraMissing` (one line naming the ``[baselines]`` extra) when it is missing."""
    return require_extra("baselines", PACKAGES[family], f"--sam-type {family}")


def build_sam_model(variant: SamVariant) -> torch.nn.Module:
    """An untrained model of ``variant`` built by its own package (SAM: ``sam_model_registry``; SAM 2:
    ``build_sam2`` with the config shipped in ``sam2``), in eval mode on the CPU."""
    package = sam_package(variant.family)
    if variant.family == "SAM":
        model = package.sam_model_registry[variant.name]()
    else:
        model = package.build_sam2(variant.config, ckpt_path=None, device="cpu", mode="eval")
    return model.eval()


def load_sam_model(checkpoint: PathLike, sam_type: str, sam_model: str,
                   device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """A SAM or SAM 2 model with the weights of an official ``checkpoint``, in eval mode on ``device``, frozen.

    Raises:
        ValueError: unknown type or model name.
        CheckpointError: see :func:`read_sam_checkpoint`; also weights that do not fit the model.
        ExtraMissing: the family's package (the ``[baselines]`` extra) is not installed.
    """
    variant = get_variant(sam_type, sam_model)
    state = read_sam_checkpoint(checkpoint, variant)
    model = build_sam_model(variant)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        shapes = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        detail = "; ".join(f"{what} {len(keys)} (e.g. {keys[0]})" for what, keys in
                           (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)) if keys)
        raise CheckpointError(f"{checkpoint}: weights do not fit {LABELS[sam_type]} {sam_model}: "
                              f"{detail or str(error).splitlines()[0]}") from None
    model.requires_grad_(False)
    return model.to(device)
