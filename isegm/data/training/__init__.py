"""Training datasets (:class:`isegm.data.targets.TargetDataset`) and the proposal pickle reader/writer."""
from typing import Any, Callable, Dict

from ..targets import TargetDataset
from .coco import CocoInstanceDataset, decode_segmentation
from .pascalpart import (PascalPartFMGDataset, PascalPartObject, PascalPartPartsDataset, PascalPartTrainingDataset,
                         read_pascalpart_objects)
from .proposals import (BUGGY_MASK_THRESH, SCALE_COLUMN, SEMANTIC_COLUMN, ProposalError, UnsafePickleError,
                        choose_proposal, is_buggy_mask, read_proposals, scale_weight_table, write_proposals)
from .sbd import SBDTrainingDataset

__all__ = ["BUGGY_MASK_THRESH", "CocoInstanceDataset", "PascalPartFMGDataset", "PascalPartObject",
           "PascalPartPartsDataset", "PascalPartTrainingDataset",
           "ProposalError", "SBDTrainingDataset", "SCALE_COLUMN", "SEMANTIC_COLUMN", "TRAINING_DATASETS",
           "UnsafePickleError", "build_training_dataset", "choose_proposal", "decode_segmentation",
           "is_buggy_mask", "read_pascalpart_objects", "read_proposals", "scale_weight_table", "write_proposals"]

# kind -> constructor; the keyword arguments of build_training_dataset go to it unchanged
TRAINING_DATASETS: Dict[str, Callable[..., TargetDataset]] = {
    "pascalpart": PascalPartTrainingDataset,          # published PascalPartMMTFMGDataset
    "pascalpart_fmg": PascalPartFMGDataset,           # ablation: proposals, no trie
    "pascalpart_parts": PascalPartPartsDataset,       # ablation: parts only
    "sbd": SBDTrainingDataset,
    "coco": CocoInstanceDataset,
}


def build_training_dataset(kind: str, **kwargs: Any) -> TargetDataset:
    """The training dataset of ``kind`` (``pascalpart``, ``pascalpart_fmg``, ``pascalpart_parts``: dataset_path,
    split, part_path; ``sbd``: dataset_path, split, part_path, samples_scores_path, samples_scores_gamma; ``coco``: annotation_file, images_dir, part_path; all also take buggy_mask_thresh)."""
    try:
        constructor = TRAINING_DATASETS[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown training dataset {kind!r}; known: {', '.join(TRAINING_DATASETS)}") from None
    return constructor(**kwargs)
