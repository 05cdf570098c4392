"""The training config file (YAML): its sections and the types of their values, checked when the file is read."""
from typing import Tuple

from easydict import EasyDict

from ..model import ModelConfig
from ..utils.config_file import PathLike, check_types, dataclass_types, read_yaml
from .schedule import CONFIG_TYPES as SCHEDULE_TYPES
from .trainer import TrainOptions

DATA_TYPES = {"dataset": str, "path": str, "annotations": str, "images": str, "split": str,
              "crop_size": Tuple[int, int], "min_object_area": int, "keep_background_prob": float,
              "reaugment_small": bool, "samples_scores_path": str, "samples_scores_gamma": float,
              "val_split": str, "val_epoch_len": int}
POINTS_TYPES = {"max_num_points": int, "prob_gamma": float, "merge_objects_prob": float,
                "max_num_merged_objects": int}


def read_training_config(path: PathLike) -> EasyDict:
    """The MODEL, DATA, POINTS and TRAIN sections of a training config, each known key checked for its type
    (a :class:`~isegm.utils.config_file.ConfigError` names the file, the key, the type and the value)."""
    config = read_yaml(path)
    model = config.get("MODEL")
    if model is not None and not isinstance(model, str):
        config.MODEL = check_types(model, dataclass_types(ModelConfig), "MODEL", path)
    for section, types in (("DATA", DATA_TYPES), ("POINTS", POINTS_TYPES),
                           ("TRAIN", {**dataclass_types(TrainOptions), **SCHEDULE_TYPES})):
        if section in config:
            config[section] = check_types(config[section], types, section, path)
    return config
