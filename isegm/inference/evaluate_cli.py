"""NoC evaluation of SimpleClick / GraCo models on interactive-segmentation benchmarks.

    python evaluate.py NoBRS --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --lora_checkpoint weights/graco/GraCo_base_lora.pth --datasets GrabCut,Berkeley --graco --cpu

    # baselines: SAM (vit_b|vit_l|vit_h) and SAM 2 (hiera_t|hiera_s|hiera_b+|hiera_l), best of 3 masks with --oracle
    python evaluate.py NoBRS --checkpoint weights/sam/sam_vit_b_01ec64.pth --sam-type SAM --sam-model vit_b \\
        --datasets GrabCut,Berkeley --oracle --cpu

Prints the results table (NoC@80/85/90, IoU@1, >=20@85/90, seconds per click) and writes it, per dataset as soon
as the dataset is done, to LOGS/<checkpoint>/<eval-mode>_NoBRS_<n-clicks>.txt with a JSON summary beside it.

Several processes (GPUs, nodes): ``torchrun --nproc_per_node N evaluate.py ... --gpus 0,1,...`` (``--cpu``: gloo);
rank r evaluates samples r, r + N, ...; rank 0 writes the same files as one process. Every finished sample goes to
a journal beside the table (``<eval-mode>_NoBRS_<n-clicks>.journal/``); running the same command again continues
where a killed run stopped.
"""
import argparse
import hashlib
import json
import logging
import os
import pickle
import sys
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.datasets import DatasetError, get_dataset
from ..engine.distributed import DistInfo, barrier, broadcast_from_main, init_distributed, shutdown
from ..model.checkpoint import CheckpointError
from ..model.phrase_encoder import PhraseEncoderUnavailable, resolve_clip_weights
from ..model.vit import window_grid
from ..signals import GRANULARITY_LEVELS, check_granularity
from ..utils.code_identity import code_identity, describe
from ..utils.config_file import ConfigError, read_paths_config
from ..utils.extras import ExtraMissing
from ..utils.vis import draw_probmap, draw_with_blend_and_clicks, miou_curve, plot_miou_curves
from .checkpoint_lookup import find_checkpoint
from .evaluation import DatasetResult, Protocol, Signal, format_row, noc_thresholds, summarize, table_header
from .journal import Journal, JournalMismatch, unit_name
from .metrics import compute_noc_metric
from .precision import TOOL_PRECISIONS, resolve_precision
from .predictors import get_predictor
from .predictors.sam import SamClickPredictor
from .sam_models import VARIANTS as SAM_VARIANTS, get_variant, load_sam_model, sam_package
from .sharding import agree_on_error, evaluate_shard
from .utils import load_is_model

logger = logging.getLogger("evaluate")
PART_DATASETS = ("PascalPart", "PartImageNet")
MODES = ("NoBRS",)
COLLECTIVE_TIMEOUT = timedelta(hours=48)  # ranks that finish early wait for the slowest one
PROGRAM = "evaluate.py"


class UsageError(ValueError):
    """A command-line or config problem, reported in one line."""


@dataclass(frozen=True)
class EvalSettings:
    """The checked command line: what :func:`run` evaluates (``device``: set once the process group is up)."""
    mode: str
    checkpoint: str
    exp_path: str
    lora_checkpoint: Optional[str]
    clip_weights: Optional[str]
    datasets: Tuple[str, ...]
    cpu: bool
    gpu_ids: Tuple[int, ...]
    target_iou: float
    iou_analysis: bool
    n_clicks: int
    min_n_clicks: int
    thresh: float
    clicks_limit: Optional[int]
    eval_mode: str
    save_ious: bool
    print_ious: bool
    vis_preds: bool
    class_name: Optional[str]
    part_name: Optional[str]
    graco: bool
    gra: Optional[float]
    phrase: Optional[str]
    clean_oracle: bool
    sam_type: Optional[str]
    sam_model: Optional[str]
    oracle: bool
    seed: int
    subset_file: Optional[str]
    model_name: Optional[str]
    precision: str
    paths_config: str
    logs_path: Path
    device: torch.device = torch.device("cpu")


def build_parser() -> argparse.ArgumentParser:
    """The published command line of ``evaluate.py``."""
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["NoBRS", "RGB-BRS", "DistMap-BRS", "f-BRS-A", "f-BRS-B", "f-BRS-C"],
                        help="prediction mode (only NoBRS is provided)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--checkpoint", default="", help="base checkpoint: a path, or a name under "
                                                        "INTERACTIVE_MODELS_PATH (extension optional)")
    group.add_argument("--exp-path", default="", help="experiment folder under EXPS_PATH (optionally "
                                                      "EXP:CHECKPOINT_PREFIX); evaluates its checkpoints")
    parser.add_argument("--lora_checkpoint", default=None, help="GraCo LoRA checkpoint")
    parser.add_argument("--clip-weights", default=None, help="CLIP ViT-B/32 weights for --phrase")
    parser.add_argument("--datasets", default="GrabCut,Berkeley,SBD,DAVIS", help="comma-separated: GrabCut, "
                        "Berkeley, DAVIS, SBD, SBD_Train, PascalVOC, PascalPart, PartImageNet, SA1B, BraTS, ssTEM, OAIZIB")
    device = parser.add_mutually_exclusive_group()
    device.add_argument("--gpus", default="0", help="GPU id(s), comma-separated; under torchrun the process with "
                        "local rank r uses the r-th")
    device.add_argument("--cpu", action="store_true", help="run on the CPU")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-iou", type=float, default=0.90, help="target IoU of the NoC loop (>= 0.8)")
    target.add_argument("--iou-analysis", action="store_true", help="run all clicks and plot mIoU per click")
    parser.add_argument("--n-clicks", type=int, default=20, help="maximum clicks per sample")
    parser.add_argument("--min-n-clicks", type=int, default=1, help="minimum clicks per sample")
    parser.add_argument("--thresh", type=float, default=None, help="probability threshold of the masks (0.5; "
                        "SAM: logits > the model's mask_threshold)")
    parser.add_argument("--clicks-limit", type=int, default=None, help="clicks given to the network (-1: n-clicks)")
    parser.add_argument("--eval-mode", default="cvpr", help="cvpr (448, DAVIS 672), fixed<h> or fixed<h>,<w>")
    parser.add_argument("--save-ious", action="store_true", help="pickle the per-sample IoU lists")
    parser.add_argument("--print-ious", action="store_true", help="print mIoU after each click")
    parser.add_argument("--vis-preds", action="store_true", help="save a picture of every prediction")
    parser.add_argument("--class-name", default=None, help="PascalPart/PartImageNet: only this object class")
    parser.add_argument("--part-name", default=None, help="PascalPart/PartImageNet: only this part")
    signal = parser.add_mutually_exclusive_group()
    signal.add_argument("--graco", action="store_true", help="oracle granularity (best of 0.1..1.0 per sample)")
    signal.add_argument("--gra", type=float, default=None, help="fixed granularity (slider) in [0, 1]")
    signal.add_argument("--phrase", default=None, help="fixed phrase (needs CLIP weights)")
    parser.add_argument("--clean-oracle", action="store_true",
                        help="with --graco: fresh zoom-in state per granularity; on a GPU all running "
                             "granularities go through the model as one batch (default: the published carry-over)")
    parser.add_argument("--sam-type", default=None, help="evaluate a SAM baseline instead: SAM or SAM2 "
                        "(--checkpoint is the official file)")
    parser.add_argument("--sam-model", default=None, help="SAM: vit_b, vit_l, vit_h; SAM2: hiera_t, hiera_s, "
                        "hiera_b+, hiera_l")
    parser.add_argument("--oracle", action="store_true", help="with --sam-type: three masks per click, the best "
                        "IoU is kept (default: a single mask)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the PascalPart / SA-1B subsets")
    parser.add_argument("--subset-file", default=None, help="read the PascalPart / SA-1B sample ids from this file")
    parser.add_argument("--model-name", default=None, help="name used in plots")
    parser.add_argument("--precision", default="fp32", choices=TOOL_PRECISIONS,
                        help="GraCo models: fp32 (default: the published numbers), bf16 (bfloat16 products) or auto "
                             "(bf16 where the device multiplies bfloat16 natively and faster); written into the "
                             "table header and the JSON summary")
    parser.add_argument("--paths-config", "--config-path", "--cfg", dest="paths_config", default="./config.yml",
                        help="paths file (YAML): dataset folders, INTERACTIVE_MODELS_PATH, EXPS_PATH")
    parser.add_argument("--logs-path", default="", help="default: EXPS_PATH/evaluation_logs")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None):
    """(checked settings, paths config) of a command line; :class:`UsageError` (one line) for bad input."""
    args = build_parser().parse_args(argv)
    if args.mode not in MODES:
        raise UsageError(f"mode {args.mode} is not provided: use NoBRS (a plain forward per click)")
    if args.n_clicks < 1 or args.min_n_clicks < 1:
        raise UsageError("--n-clicks and --min-n-clicks must be at least 1")
    if args.clicks_limit is not None and args.clicks_limit < 1 and args.clicks_limit != -1:
        raise UsageError("--clicks-limit must be at least 1, or -1 for --n-clicks")
    if args.gra is not None:
        try:
            check_granularity(args.gra)
        except ValueError as error:
            raise UsageError(f"--gra: {error}") from None
    if args.clean_oracle and not args.graco:
        raise UsageError("--clean-oracle only applies to --graco")
    check_sam_args(args)
    if args.sam_type and args.precision != "fp32":
        raise UsageError("--precision applies to GraCo models, not to --sam-type")
    try:
        gpu_ids = tuple(int(g) for g in args.gpus.split(",") if g.strip())
    except ValueError:
        raise UsageError(f"--gpus {args.gpus}: expected GPU ids such as 0 or 0,1,2,3") from None
    if not args.cpu and not torch.cuda.is_available():
        raise UsageError("no CUDA device is available: pass --cpu")
    if (args.iou_analysis or args.print_ious) and args.min_n_clicks <= 1:
        target_iou = 1.01
    else:
        target_iou = max(0.8, args.target_iou)

    config_path = Path(args.paths_config)
    if not config_path.is_file():
        raise UsageError(f"config file {config_path} not found")
    cfg = read_paths_config(config_path)
    cfg.EXPS_PATH = Path(cfg.get("EXPS_PATH", "./experiments"))
    given = vars(args)
    settings = EvalSettings(**{f.name: given[f.name] for f in fields(EvalSettings) if f.name in given
                               and f.name not in ("datasets", "thresh", "gpu_ids", "target_iou", "logs_path")},
                            datasets=tuple(n.strip() for n in args.datasets.split(",") if n.strip()),
                            thresh=0.5 if args.thresh is None else args.thresh, gpu_ids=gpu_ids, target_iou=target_iou,
                            logs_path=Path(args.logs_path) if args.logs_path else cfg.EXPS_PATH / "evaluation_logs")
    return settings, cfg


def check_sam_args(args) -> None:
    """--sam-type needs a --sam-model of its family and none of the options that only GraCo models have."""
    if args.sam_type is None:
        if args.oracle:
            raise UsageError("--oracle (best of SAM's three masks) needs --sam-type; for GraCo use --graco")
        if args.sam_model is not None:
            raise UsageError("--sam-model needs --sam-type SAM or SAM2")
        return
    if args.sam_type not in SAM_VARIANTS:
        raise UsageError(f"--sam-type {args.sam_type}: choose {' or '.join(SAM_VARIANTS)}")
    if args.sam_model is None:
        raise UsageError(f"--sam-type {args.sam_type} needs --sam-model "
                         f"({'|'.join(SAM_VARIANTS[args.sam_type])})")
    try:
        get_variant(args.sam_type, args.sam_model)
    except ValueError as error:
        raise UsageError(f"--sam-model: {error}") from None
    sam_package(args.sam_type)  # the [baselines] extra, named in one line when missing
    refused = [flag for flag, given in (("--graco", args.graco), ("--gra", args.gra is not None),
                                        ("--phrase", args.phrase is not None),
                                        ("--lora_checkpoint", args.lora_checkpoint is not None),
                                        ("--clip-weights", args.clip_weights is not None),
                                        ("--exp-path", bool(args.exp_path)),
                                        ("--clicks-limit", args.clicks_limit is not None),
                                        ("--thresh", args.thresh is not None),
                                        ("--eval-mode", args.eval_mode != "cvpr")) if given]
    if refused:
        raise UsageError(f"--sam-type {args.sam_type} cannot be combined with {', '.join(refused)} (SAM has no "
                         f"granularity or phrase input, no LoRA, no zoom-in, and thresholds its own logits)")


def zoom_in_params(eval_mode: str, dataset_name: str) -> dict:
    """cvpr: 448 x 448 crops (672 x 672 for DAVIS); fixed<h>[,<w>]: that size. The first click sees the whole image."""
    if eval_mode == "cvpr":
        size = (672, 672) if dataset_name == "DAVIS" else (448, 448)
    elif eval_mode.startswith("fixed"):
        try:
            parts = [int(v) for v in eval_mode[5:].split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2) or min(parts) < 16 or any(v % 16 for v in parts):
            raise UsageError(f"--eval-mode {eval_mode}: expected fixed<h> or fixed<h>,<w> with sizes that are "
                             f"multiples of 16 (e.g. fixed448, fixed672)")
        size = (parts[0], parts[-1])
        try:
            window_grid((size[0] // 16, size[1] // 16), (16, 16))
        except ValueError as error:
            raise UsageError(f"--eval-mode {eval_mode}: {error}") from None
    else:
        raise UsageError(f"--eval-mode {eval_mode}: expected cvpr, fixed<h> or fixed<h>,<w>")
    return {"skip_clicks": -1, "target_size": size}


def checkpoints_to_evaluate(settings: EvalSettings, cfg) -> Tuple[List[Path], Path, str]:
    """The checkpoints, their logs folder and the prefix of the log names."""
    if settings.exp_path:
        rel, _, prefix = settings.exp_path.partition(":")
        exp = cfg.EXPS_PATH / rel
        if not exp.is_dir():
            raise UsageError(f"experiment folder {exp} not found")
        found = sorted([*exp.glob(f"checkpoints/{prefix}*.pth"), *exp.glob(f"checkpoints/{prefix}*.safetensors")],
                       reverse=True)
        if not found:
            raise UsageError(f"no checkpoints matching {prefix}* in {exp / 'checkpoints'}")
        logs_prefix = found[0].stem if prefix and len(found) == 1 else (f"all_{prefix}" if prefix else "all_checkpoints")
        return found, settings.logs_path / rel, logs_prefix
    base = cfg.get("INTERACTIVE_MODELS_PATH", "./weights")
    path = find_checkpoint(settings.checkpoint, base)
    if path is None:
        hint = f": {get_variant(settings.sam_type, settings.sam_model).where_to_get()}" if settings.sam_type else ""
        raise UsageError(f"checkpoint {settings.checkpoint} not found (nor under {base}){hint}")
    return [path], settings.logs_path / "others" / path.stem, ""


def checkpoint_names(checkpoints: Sequence[Path]) -> Dict[Path, str]:
    """The row name of each checkpoint of a several-checkpoint table: its stem (``010``), or its file name
    (``010.pth``, ``010.safetensors``) where two files share a stem, so that two files never share a row, a JSON
    summary or journal lines."""
    stems = [Path(p).stem for p in checkpoints]
    return {Path(p): Path(p).stem if stems.count(Path(p).stem) == 1 else Path(p).name for p in checkpoints}


def vis_callback(folder: Path, thresh: float, logits: bool = False):
    """Save image + mask + clicks beside the probability map; ``logits``: the predictor returns logits (SAM)."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)

    def callback(image, gt_mask, probs, sample_id, click_indx, clicks_list):
        probmap = 1.0 / (1.0 + np.exp(-probs.astype(np.float64))) if logits else probs
        picture = np.concatenate([draw_with_blend_and_clicks(image, probs > thresh, clicks_list),
                                  draw_probmap(probmap)], axis=1)
        name = str(sample_id).replace("/", "_").replace(":", "_")
        cv2.imwrite(str(folder / f"{name}_{click_indx}.jpg"), picture[:, :, ::-1])
    return callback


def signal_of(settings: EvalSettings) -> Signal:
    return Signal(gra=settings.gra, phrase=settings.phrase, oracle=settings.graco, clean=settings.clean_oracle,
                  batched=settings.clean_oracle and settings.device.type == "cuda")


def signal_name(settings: EvalSettings) -> str:
    """The JSON summaries' ``signal``: SAM's ``oracle-of-3-masks`` or ``single-mask``, else the GraCo signal."""
    if settings.sam_type:
        return "oracle-of-3-masks" if settings.oracle else "single-mask"
    return signal_of(settings).describe()




def write_results(settings: EvalSettings, dataset_name, target_iou, result: DatasetResult, logs_path: Path, logs_prefix: str,
                  row_name: str, model_name: str, print_header: bool, single_model: bool,
                  subset_file: Optional[Path]) -> None:
    """Print the dataset's row and write its files. The row is appended to the table unless the table holds it
    already (a finished dataset of a resumed or repeated run); the other files are written again, with the same
    content."""
    all_ious, gra_indices, skipped = result.all_ious, result.gra_indices, result.skipped
    summary = summarize(result, settings.n_clicks, noc_thresholds(target_iou))
    row = format_row(row_name, dataset_name, summary, result.seconds)
    if settings.print_ious and all_ious:
        shortest = min(len(x) for x in all_ious)
        mean_ious = np.array([x[:shortest] for x in all_ious]).mean(axis=0)
        row += "; " + " ".join(f"mIoU@{k}={mean_ious[k - 1]:.2%};" for k in range(1, min(shortest, 20) + 1))
    elif int(round(target_iou * 100)) not in (80, 85, 90) and target_iou <= 1.0:
        extra, _, extra_over = compute_noc_metric(all_ious, [target_iou], settings.n_clicks)
        row += f" NoC@{target_iou:.1%} = {extra[0]:.2f}; >={settings.n_clicks}@{target_iou:.1%} = {extra_over[0]}"
    footer = f"  {dataset_name}: {len(all_ious)} samples evaluated, {len(skipped)} skipped"
    if print_header:
        print(table_header(settings.n_clicks, model_name, settings.precision))
    print(row)
    print(footer)

    name_prefix = f"{logs_prefix}_" if logs_prefix else ""
    if logs_prefix and not single_model:
        name_prefix += f"{dataset_name}_"
    stem = f"{settings.eval_mode}_{settings.mode}_{settings.n_clicks}"
    table, entry = logs_path / f"{name_prefix}{stem}.txt", row + "\n" + footer + "\n"
    if not (table.is_file() and entry in table.read_text()):  # a resumed or repeated run does not add it twice
        with open(table, "a") as handle:
            if handle.tell() == 0:
                handle.write(table_header(settings.n_clicks, model_name, settings.precision) + "\n")
            handle.write(entry)
    record = {"dataset": dataset_name, "model": model_name, "precision": settings.precision, "target_iou": target_iou,
              "noc_thresholds": [round(t, 4) for t in summary.thresholds],
              "noc": summary.noc, "over_max": summary.over_max, "iou_first": summary.iou_first,
              "seconds_per_click": summary.seconds_per_click, "samples": summary.samples, "skipped": skipped,
              "subset_file": str(subset_file) if subset_file else None, "signal": signal_name(settings),
              "sam_type": settings.sam_type, "sam_model": settings.sam_model,
              "lora_checkpoint": str(settings.lora_checkpoint) if settings.lora_checkpoint else None,
              "oracle_granularity": [GRANULARITY_LEVELS[i] for i in gra_indices]}
    checkpoint_tag = "" if single_model else f"{row_name}_"
    (logs_path / f"{name_prefix}{checkpoint_tag}{dataset_name}_{stem}.json").write_text(json.dumps(record, indent=2))
    if settings.save_ious and single_model:
        ious_dir = logs_path / "ious" / logs_prefix
        ious_dir.mkdir(parents=True, exist_ok=True)
        with open(ious_dir / f"{dataset_name}_{stem}.pkl", "wb") as handle:
            pickle.dump(all_ious, handle)
    if settings.iou_analysis:
        plots = logs_path / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        with open(plots / f"{name_prefix}{dataset_name}_{stem}.pickle", "wb") as handle:
            pickle.dump({"dataset_name": dataset_name, "model_name": f"{model_name}_{settings.mode}",
                         "all_ious": all_ious}, handle)
        plot_miou_curves({model_name: miou_curve(all_ious, settings.n_clicks)},
                         plots / f"{name_prefix}{dataset_name}_{stem}.png", f"{dataset_name}: mIoU per click")


def clip_weights_of(settings: EvalSettings, cfg) -> Optional[Path]:
    """The CLIP weights a --phrase run reads: --clip-weights, else the paths file's CLIP_WEIGHTS, else the default
    (``$GRACO_CLIP_WEIGHTS`` or ``weights/clip/ViT-B-32.pt``); None without --phrase."""
    if not settings.phrase:
        return None
    chosen = settings.clip_weights or cfg.get("CLIP_WEIGHTS")
    return Path(chosen) if chosen else resolve_clip_weights()


def load_model(path: Path, settings: EvalSettings, cfg):
    """Load one checkpoint and check that it can give the signal asked for."""
    if settings.sam_type:
        return load_sam_model(path, settings.sam_type, settings.sam_model, settings.device)
    model = load_is_model(path, settings.device, False, lora_checkpoint=settings.lora_checkpoint,
                          clip_weights=clip_weights_of(settings, cfg))
    if settings.phrase:
        if model.phrase_encoder is None:
            raise UsageError(f"--phrase needs a two-signal GraCo model: {path} has no phrase input")
        try:
            model.phrase_encoder.ensure_loaded()
        except PhraseEncoderUnavailable as error:
            raise UsageError(f"--phrase: {error}") from None
    if (settings.graco or settings.gra is not None) and model.backbone.gra_embed is None:
        raise UsageError(f"--graco/--gra need a GraCo model: {path} has no granularity input")
    return model


def file_digest(path) -> Optional[str]:
    """SHA-256 of a file's content (None for no file), so that a moved file is the same and a changed one is not."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def shared_file_digests(paths: Sequence[Optional[Path]], rank: int, world_size: int) -> List[Optional[str]]:
    """:func:`file_digest` of each path, computed by rank 0 alone and given to every rank (every rank must call
    it): a checkpoint of gigabytes is read once, not once per process. A file rank 0 cannot read is a
    :class:`UsageError` on every rank."""
    result = None
    if rank == 0:
        try:
            result = ([file_digest(p) for p in paths], None)
        except OSError as error:
            result = (None, str(error))
    digests, error = broadcast_from_main(result, world_size)
    if error is not None:
        raise UsageError(error)
    return digests


def journal_command(settings: EvalSettings, checkpoints: List[Path], datasets: dict,
                    digests: Sequence[Optional[str]], code: Dict[str, str]) -> dict:
    """Everything that shapes the results (not where they go, not how many processes compute them): the
    checkpoints' and other files' ``digests`` (``checkpoints``, then the LoRA, CLIP and subset files), the
    settings, and ``code`` (the identity of the code that computes them)."""
    ids = {name: hashlib.sha256("\n".join(map(str, d.sample_ids)).encode()).hexdigest()[:16]
           for name, d in datasets.items()}
    lora, clip, subset = digests[len(checkpoints):]
    return {"mode": settings.mode, "checkpoints": list(digests[:len(checkpoints)]), "lora_checkpoint": lora,
            "clip_weights": clip, "signal": signal_name(settings), "sam": [settings.sam_type, settings.sam_model],
            "datasets": {n: [len(d), ids[n]] for n, d in datasets.items()},
            "class_name": settings.class_name, "part_name": settings.part_name, "seed": settings.seed,
            "subset_file": subset, "target_iou": settings.target_iou, "thresh": settings.thresh,
            "n_clicks": settings.n_clicks, "min_n_clicks": settings.min_n_clicks,
            "clicks_limit": settings.clicks_limit, "eval_mode": settings.eval_mode, "precision": settings.precision,
            "device": settings.device.type, "code": code}


@dataclass
class Setup:
    """What :func:`prepare` checked and loaded."""
    checkpoints: List[Path]
    logs_path: Path
    logs_prefix: str
    datasets: dict
    model: torch.nn.Module


def prepare(settings: EvalSettings, cfg) -> Setup:
    """Check everything on this rank before any evaluation starts: checkpoints, datasets, the first model."""
    checkpoints, logs_path, logs_prefix = checkpoints_to_evaluate(settings, cfg)
    if settings.iou_analysis and len(checkpoints) > 1:
        raise UsageError("--iou-analysis needs a single checkpoint")
    datasets = {}
    for name in settings.datasets:
        zoom_in_params(settings.eval_mode, name)
        try:
            datasets[name] = get_dataset(name, cfg, class_name=settings.class_name, part_name=settings.part_name,
                                         seed=settings.seed, subset_file=settings.subset_file)
        except DatasetError:
            raise
        except ValueError as error:
            raise UsageError(f"{name}: {error}") from None
    model = load_model(checkpoints[0], settings, cfg)
    logs_path.mkdir(parents=True, exist_ok=True)
    return Setup(checkpoints, logs_path, logs_prefix, datasets, model)


def open_journal(settings: EvalSettings, cfg, setup: Setup, dist: DistInfo) -> Journal:
    """The journal of this command (the files hashed on rank 0 only; every rank must call it)."""
    files = [*setup.checkpoints, settings.lora_checkpoint, clip_weights_of(settings, cfg), settings.subset_file]
    digests = shared_file_digests(files, dist.rank, dist.world_size)
    code = broadcast_from_main(code_identity(), dist.world_size)
    stem = f"{settings.eval_mode}_{settings.mode}_{settings.n_clicks}"
    prefix = f"{setup.logs_prefix}_" if setup.logs_prefix else ""
    journal = Journal(setup.logs_path / f"{prefix}{stem}.journal",
                      journal_command(settings, setup.checkpoints, setup.datasets, digests, code), dist.rank)
    if dist.is_main:
        logger.info("journal %s (code: %s)", journal.folder, describe(code))
    journal.open()
    return journal


def agreed(step, world_size: int):
    """``step()``, or :class:`UsageError` on every rank when it failed on any rank (every rank must call it)."""
    error, value = None, None
    try:
        value = step()
    except HANDLED_ERRORS as caught:
        error = str(caught)
    error = agree_on_error(error, world_size)  # every rank stops, or none
    if error is not None:
        raise UsageError(error)
    return value


def run(settings: EvalSettings, cfg, dist: DistInfo) -> None:
    setup = agreed(lambda: prepare(settings, cfg), dist.world_size)
    journal = agreed(lambda: open_journal(settings, cfg, setup, dist), dist.world_size)
    checkpoints, logs_path, logs_prefix = setup.checkpoints, setup.logs_path, setup.logs_prefix
    if journal.complete and dist.is_main:
        logger.info("this command already finished (%s): printing its results; remove that folder to evaluate "
                    "again", journal.folder)
    single_model = len(checkpoints) == 1
    names = checkpoint_names(checkpoints)
    loaded = {checkpoints[0]: setup.model}
    print_header = single_model
    sam_predictor = None
    for name, dataset in setup.datasets.items():
        subset_file = None
        if hasattr(dataset, "write_subset"):
            subset_file = logs_path / f"{name}_subset_seed{settings.seed}.txt"
            if dist.is_main:
                dataset.write_subset(subset_file)
        # as published: part-level datasets are evaluated at 0.85 whatever the target
        target_iou = 0.85 if name in PART_DATASETS else settings.target_iou
        for path in checkpoints:
            unit = unit_name(name, "" if single_model else Path(path).name)
            if path not in loaded:  # one model in memory at a time
                loaded = {path: load_model(path, settings, cfg)}
            if settings.sam_type:  # one predictor per model: it keeps the last image's embedding
                if sam_predictor is None or sam_predictor.model is not loaded[path]:
                    sam_predictor = SamClickPredictor(loaded[path], oracle=settings.oracle)
                predictor, thresh = sam_predictor, sam_predictor.mask_threshold  # mask = logits > threshold
            else:
                predictor_params = {"precision": settings.precision}
                if settings.clicks_limit is not None:
                    predictor_params["net_clicks_limit"] = (settings.n_clicks if settings.clicks_limit == -1
                                                            else settings.clicks_limit)
                predictor = get_predictor(loaded[path], settings.mode, settings.device, prob_thresh=settings.thresh,
                                          zoom_in_params=zoom_in_params(settings.eval_mode, name),
                                          predictor_params=predictor_params)
                thresh = settings.thresh
            callback = (vis_callback(logs_path / "predictions_vis" / name, thresh, logits=bool(settings.sam_type))
                        if settings.vis_preds else None)
            protocol = Protocol(max_iou_thr=target_iou, pred_thr=thresh, min_clicks=settings.min_n_clicks,
                                max_clicks=settings.n_clicks)
            results = evaluate_shard(dataset, predictor, protocol, signal_of(settings), journal, unit, dist.rank,
                                     dist.world_size, name=name, callback=callback)
            if dist.is_main:
                model_name = settings.model_name or (f"{logs_path.relative_to(settings.logs_path)}:{logs_prefix}"
                                                     if logs_prefix else logs_path.stem)
                row_name = settings.mode if single_model else names[Path(path)]
                write_results(settings, name, target_iou, results, logs_path, logs_prefix, row_name, model_name,
                              print_header, single_model, subset_file)
            print_header = False
    barrier()
    if dist.local_rank == 0:  # one marker per node: the logs folder may be a node's own disk
        journal.mark_complete()


HANDLED_ERRORS = (UsageError, ConfigError, CheckpointError, DatasetError, PhraseEncoderUnavailable, JournalMismatch,
                  ExtraMissing, FileNotFoundError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``evaluate.py``: 0, or 2 after a one-line error (printed by rank 0 under torchrun)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rank = int(os.environ.get("RANK", "0"))
    try:  # under torchrun every rank meets the same errors (they are agreed on): rank 0 reports them
        settings, cfg = parse_args(argv)
        try:
            dist = init_distributed(settings.cpu, settings.gpu_ids, COLLECTIVE_TIMEOUT)
        except ValueError as error:
            raise UsageError(str(error)) from None
        precision = broadcast_from_main(resolve_precision(settings.precision, dist.device), dist.world_size)
        settings = replace(settings, device=dist.device, precision=precision)
        try:
            run(settings, cfg, dist)
        finally:
            shutdown()
    except HANDLED_ERRORS as error:
        if rank == 0:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    return 0
