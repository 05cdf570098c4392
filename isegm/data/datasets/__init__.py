"""Evaluation datasets and :func:`get_dataset`, which builds one by its published name from a config."""
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from .base import DatasetError, EvaluationDataset, PathLike, SampleError, SubsetDataset
from .berkeley import BerkeleyDataset
from .brats import BraTSDataset
from .davis import DavisDataset
from .grabcut import GrabCutDataset
from .oai_zib import OAIZIBDataset
from .partimagenet import PartINEvaluationDataset
from .pascalpart import PascalPartEvaluationDataset
from .pascalvoc import PascalVocDataset
from .sa1b import SA1BDataset
from .sbd import SBDEvaluationDataset
from .sstem import ssTEMDataset

__all__ = ["BerkeleyDataset", "BraTSDataset", "CONFIG_KEYS", "DATASET_NAMES", "DatasetError", "DavisDataset",
           "EvaluationDataset", "GrabCutDataset", "OAIZIBDataset", "PartINEvaluationDataset",
           "PascalPartEvaluationDataset", "PascalVocDataset", "SA1BDataset", "SBDEvaluationDataset", "SampleError",
           "SubsetDataset", "get_dataset", "ssTEMDataset"]

# published dataset name -> config key of its folder (published config.yml)
CONFIG_KEYS: Dict[str, str] = {
    "GrabCut": "GRABCUT_PATH", "Berkeley": "BERKELEY_PATH", "DAVIS": "DAVIS_PATH", "SBD": "SBD_PATH",
    "SBD_Train": "SBD_PATH", "PascalVOC": "PASCALVOC_PATH", "PascalPart": "PASCALPART_PATH",
    "PartImageNet": "PARTIMAGENET_PATH", "SA1B": "SA1B_PATH", "BraTS": "BraTS_PATH", "ssTEM": "ssTEM_PATH",
    "OAIZIB": "OAIZIB_PATH",
}
DATASET_NAMES: Tuple[str, ...] = tuple(CONFIG_KEYS)


def get_dataset(name: str, cfg: Any, class_name: Optional[str] = None, part_name: Optional[str] = None,
                seed: int = 0, subset_file: Optional[PathLike] = None) -> EvaluationDataset:
    """The evaluation dataset ``name`` (published names, see ``DATASET_NAMES``) at the folder that ``cfg`` (a
    mapping such as an EasyDict of the published config.yml, or an object with attributes) gives for it.
    ``class_name``/``part_name`` apply to PascalPart and PartImageNet, ``seed``/``subset_file`` to PascalPart and
    SA1B; the other datasets take none of them."""
    if name not in CONFIG_KEYS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    key = CONFIG_KEYS[name]
    path = cfg.get(key) if isinstance(cfg, Mapping) else getattr(cfg, key, None)
    if path is None:
        raise DatasetError(f"the config has no {key} (the folder of the {name} dataset)")
    builders: Dict[str, Callable[[Path], EvaluationDataset]] = {
        "GrabCut": GrabCutDataset,
        "Berkeley": BerkeleyDataset,
        "DAVIS": DavisDataset,
        "SBD": SBDEvaluationDataset,
        "SBD_Train": lambda p: SBDEvaluationDataset(p, split="train"),
        "PascalVOC": lambda p: PascalVocDataset(p, split="val"),
        "PascalPart": lambda p: PascalPartEvaluationDataset(p, split="val", class_name=class_name,
                                                            part_name=part_name, seed=seed, subset_file=subset_file),
        "PartImageNet": lambda p: PartINEvaluationDataset(p, split="val", class_name=class_name,
                                                          part_name=part_name),
        "SA1B": lambda p: SA1BDataset(p, seed=seed, subset_file=subset_file),
        "BraTS": BraTSDataset,
        "ssTEM": ssTEMDataset,
        "OAIZIB": OAIZIBDataset,
    }
    return builders[name](Path(path))
