"""Building a training run from its YAML config and the run's choices: model, data and trainer options."""
import dataclasses
import logging
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import torch
from easydict import EasyDict

from ..data.click_training_set import ClickTrainingSet
from ..data.points_sampler import MultiPointSampler
from ..data.training import build_training_dataset
from ..data.transforms import train_augmentation, val_augmentation
from ..model import GraCoModel, ModelConfig, load_model_config
from ..model.checkpoint import CheckpointError, assign_weights, convert_published_state, read_checkpoint
from .experiment import resolve_data_path
from .sampler import derive_seed
from .trainer import TrainOptions, branch_of

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]
MODEL_INIT_TAG = 1  # seeds the initial weights: derive_seed(--seed, MODEL_INIT_TAG)


class SetupError(ValueError):
    """The run cannot be built from its config and options (one-line message)."""


def model_config(config: EasyDict, upsample: Optional[str] = None, random_split: bool = False) -> ModelConfig:
    """The MODEL entry (a preset name or a mapping of ModelConfig fields) with ``upsample`` (x1, x2, x4) applied."""
    spec = config.get("MODEL", "graco_vit_base448")
    try:
        cfg = load_model_config(spec) if isinstance(spec, str) else ModelConfig.from_dict(dict(spec))
    except (FileNotFoundError, TypeError, ValueError) as error:
        raise SetupError(f"MODEL: {error}") from None
    if upsample:
        cfg = dataclasses.replace(cfg, upsample=upsample)
    if random_split:
        cfg = dataclasses.replace(cfg, random_split=True)
    crop = config.get("DATA", {}).get("crop_size")
    if crop:
        cfg = dataclasses.replace(cfg, img_size=tuple(int(v) for v in crop))
    return cfg


def build_model(config: EasyDict, weights: Optional[PathLike] = None, enable_lora: bool = False,
                clip_weights: Optional[PathLike] = None, upsample: Optional[str] = None,
                random_split: bool = False, seed: Optional[int] = None) -> GraCoModel:
    """The model of the config with ``weights`` loaded (every base weight required with ``enable_lora``) and,
    for the phrase branch, the CLIP text encoder's ``clip_weights``. With ``seed`` (the run's ``--seed``), the
    weights that train start from the same draw in every run of that seed."""
    if seed is not None:
        torch.manual_seed(derive_seed(seed, MODEL_INIT_TAG))
    model = GraCoModel(model_config(config, upsample, random_split))
    if weights:
        load_weights_checkpoint(model, weights, base_only=enable_lora)
    elif enable_lora:
        raise SetupError("--enable_lora trains on top of a frozen base: give its weights with --weights")
    if clip_weights and model.phrase_encoder is not None:
        try:
            model.phrase_encoder.load_clip_weights(clip_weights)
        except (FileNotFoundError, ValueError) as error:
            raise SetupError(str(error)) from None
    return model


def load_weights_checkpoint(model: GraCoModel, path: PathLike, base_only: bool = False,
                            required: Optional[Callable[[str], bool]] = None) -> None:
    """Copy a checkpoint's weights into ``model``. With ``base_only`` every base weight must be there (the LoRA
    branches, granularity embedding and phrase projection may be missing: they are what will be trained);
    ``required`` names the weights that must be there otherwise (default: none)."""
    if not Path(path).is_file():
        raise SetupError(f"weights not found: {path}")
    state, _ = read_checkpoint(path)
    state = convert_published_state(state, model.state_dict().keys(), model.cfg)

    def base_required(name: str) -> bool:
        return base_only and branch_of(name) == "base" and not name.startswith("phrase_encoder.text.")

    try:
        assign_weights(model, [(path, state)], required=required or base_required)
    except CheckpointError as error:
        raise SetupError(str(error)) from None
    logger.info("loaded %d tensors from %s", len(state), path)


def build_train_set(config: EasyDict, paths: Mapping[str, str], part_path: Optional[PathLike] = None,
                    validation: bool = False) -> Tuple[ClickTrainingSet, Sequence[str]]:
    """The training set of the DATA entry (folders from ``paths``, the paths config) with the FMG proposals of
    ``part_path``, and the signals it can serve. With ``validation``: the published validation set instead, the
    ``val_split`` (default ``val``) of the same dataset with the validation augmentation, no image weighting."""
    data = config.get("DATA", {})
    kind = data.get("dataset", "pascalpart")
    # DATA key -> dataset argument: folder layouts (pascalpart, sbd) or a COCO annotation file + image folder
    arguments = {"path": "dataset_path", "annotations": "annotation_file", "images": "images_dir"}
    location = {arguments[key]: resolve_data_path(data[key], EasyDict(paths), f"DATA.{key}")
                for key in arguments if key in data}
    if "dataset_path" in location:
        location["split"] = data.get("val_split", "val") if validation else data.get("split", "train")
    if "samples_scores_path" in data and not validation:
        if kind != "sbd":
            raise SetupError(f"DATA.samples_scores_path: only the sbd dataset takes image weights, not {kind}")
        location["samples_scores_path"] = resolve_data_path(data.samples_scores_path, EasyDict(paths),
                                                            "DATA.samples_scores_path")
        location["samples_scores_gamma"] = float(data.get("samples_scores_gamma", 1.0))
    part_path = Path(part_path) if part_path else None
    if part_path is not None and not part_path.is_file():
        raise SetupError(f"--part_path: no proposals file at {part_path}")
    if validation and kind == "sbd":
        part_path = None  # the published SBD validation set has no proposals
    try:
        targets = build_training_dataset(kind, part_path=part_path, **location)
    except TypeError as error:
        raise SetupError(f"DATA: the {kind} dataset needs other keys ({error})") from None
    crop = tuple(int(v) for v in data.get("crop_size", (448, 448)))
    points = config.get("POINTS", {})
    sampler = MultiPointSampler(int(points.get("max_num_points", 24)), float(points.get("prob_gamma", 0.8)),
                                merge_objects_prob=float(points.get("merge_objects_prob", 0.15)),
                                max_num_merged_objects=int(points.get("max_num_merged_objects", 2)))
    augmentation = val_augmentation(crop) if validation else train_augmentation(crop)
    train_set = ClickTrainingSet(targets, augmentation, sampler,
                                 min_object_area=int(data.get("min_object_area", 80)),
                                 keep_background_prob=0.0 if validation else float(data.get("keep_background_prob",
                                                                                            0.01)),
                                 reaugment_small=bool(data.get("reaugment_small", False)))
    return train_set, tuple(targets.signals)


def trainer_options(config: EasyDict, workers: int = 4, seed: int = 0, bf16: bool = False, max_iterations: int = -1,
                    layerwise_decay: bool = False, batch_size: Optional[int] = None,
                    validation: Optional[bool] = None) -> TrainOptions:
    """The TRAIN entry's trainer options with the run's choices; ``batch_size`` (global) overrides the config's,
    ``layerwise_decay`` turns on the published decay of 0.75 (with weight decay 0.02), ``validation`` (when not
    None) overrides the config's ``validation``; DATA ``val_epoch_len`` (default 500) sizes the validation."""
    train = config.get("TRAIN", {})
    defaults = TrainOptions()
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in train.items() if k in fields}
    values["checkpoint_interval"] = tuple(tuple(x) for x in train.get("checkpoint_interval",
                                                                      defaults.checkpoint_interval))
    values["betas"] = tuple(train.get("betas", defaults.betas))
    values.update(workers=workers, seed=seed, bf16=bf16, max_iterations=max_iterations,
                  layerwise_decay=0.75 if layerwise_decay else 0.0)
    if "freeze_list" in values:
        values["freeze_list"] = tuple(values["freeze_list"])
    if validation is not None:
        values["validation"] = validation
    values["val_epoch_len"] = int(config.get("DATA", {}).get("val_epoch_len", defaults.val_epoch_len))
    if batch_size is not None and batch_size > 0:
        values["batch_size"] = batch_size
    return TrainOptions(**values)
