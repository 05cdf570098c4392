"""Segment everything at a chosen granularity: whole-image masks for pre-annotation.

Grids of single positive clicks, coarse to fine, each predicted at the granularity (or part name) asked for; a
finer click is skipped where an earlier answer already reaches. Answers are read on the model's own scale (soft and
confident models alike); stable, confident masks that contain their click are kept (--recenter: asked again at
their most interior pixel), fragments and holes below --min-area removed, duplicates and near-contained masks dropped
(isegm/generation/everything.py). Several granularities share the grids and give one layer each.

    python segment_everything.py --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --lora_checkpoint weights/graco/GraCo_base_lora.pth --cpu --images photos/ --gra 0.3,1.0 --output masks/

Per image ``<stem>.jpg`` the output folder gets ``<stem>.json`` (COCO: one annotation per mask with its RLE,
score, granularity or phrase and the click that made it), ``<stem>_<layer>.png`` per layer (instance ids 1..n in
the JSON's order; smaller masks drawn over larger ones) and ``<stem>_preview.png`` (the layers side by side).
The JSON is written last: an image whose JSON exists with the same settings is skipped when the command is run
again. An unreadable image in a folder is reported and skipped (exit code 1 at the end). Under
``torchrun --nproc_per_node N`` rank r takes images r, r+N, ... (``--gpus 0,1,...``: rank r uses gpus[r]).
"""
import argparse
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence
from urllib.parse import quote

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils
from tqdm import tqdm

from any_granularity_generator import barrier, choose_device, distributed_setup
from isegm.data.io import SampleError, read_rgb_image
from isegm.interactive import PredictorSettings
from isegm.interactive.export import coloured_preview, encode_rle, write_png
from isegm.engine.distributed import broadcast_from_main
from isegm.generation.everything import (MIN_GRANULARITY, EverythingGenerator, EverythingMask, EverythingSettings,
                                         Layer, make_layers)
from isegm.inference.precision import TOOL_PRECISIONS, resolve_precision
from isegm.inference.sharding import shard_indices
from isegm.model.checkpoint import CheckpointError

logger = logging.getLogger("segment_everything")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FORMAT = 2


class UsageError(ValueError):
    """Bad arguments or inputs: reported in one line, exit code 2."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="base checkpoint (SimpleClick .pth or project "
                        ".safetensors)")
    parser.add_argument("--lora_checkpoint", default=None, help="GraCo LoRA checkpoint")
    parser.add_argument("--clip-weights", default=None, help="CLIP ViT-B/32 weights for --phrase (default: "
                        "$GRACO_CLIP_WEIGHTS or weights/clip/ViT-B-32.pt)")
    device = parser.add_mutually_exclusive_group()
    device.add_argument("--gpus", default="0", help="GPU id(s), comma-separated; rank r uses gpus[local_rank]")
    device.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--precision", default="auto", choices=TOOL_PRECISIONS,
                        help="products in float32 or bfloat16; auto (default): bf16 where the device multiplies "
                             "bfloat16 natively and faster, else fp32")
    parser.add_argument("--images", required=True, help="an image file or a folder of images (not recursive)")
    parser.add_argument("--gra", default=None, help="granularities in [0.1, 1], comma-separated, one layer each "
                        "(default: 1.0, or none with --phrase)")
    parser.add_argument("--phrase", default=None, help="a part name (e.g. head): one more layer")
    parser.add_argument("--output", default="everything_output", help="output folder")
    parser.add_argument("--labelstudio", default=None, metavar="TASKS.json",
                        help="also write the images as Label Studio tasks with one prediction per layer (brush "
                             "masks), for Label Studio's import")
    parser.add_argument("--labelstudio-image-url", default=None, metavar="PREFIX",
                        help="with --labelstudio: each task's image is PREFIX + the file name, URL-quoted (where "
                             "Label Studio reads the images, e.g. http://files.example/photos/)")
    parser.add_argument("--labelstudio-config", default=None, metavar="CONFIG.xml",
                        help="with --labelstudio: the project's labeling config (default: the backend's example "
                             "config, docs in README)")
    parser.add_argument("--points-per-side", type=int, default=16, help="the finest grid (N x N clicks)")
    parser.add_argument("--levels", type=int, default=EverythingSettings.levels,
                        help="grids coarse to fine, each twice as dense, the finest --points-per-side (1: that grid "
                             "alone)")
    parser.add_argument("--points-per-batch", type=int, default=32,
                        help="clicks per model forward (a CPU runs them 2 images at a time)")
    parser.add_argument("--min-area", type=float, default=EverythingSettings.min_area,
                        help="fragments and holes below this share of the image are removed; smaller masks are "
                             "dropped")
    parser.add_argument("--stability-thresh", type=float, default=EverythingSettings.stability_thresh,
                        help="least IoU of the masks at logit 0 +/- --stability-delta x the model's logit scale")
    parser.add_argument("--stability-delta", type=float, default=EverythingSettings.stability_delta)
    parser.add_argument("--min-confidence", type=float, default=EverythingSettings.min_confidence,
                        help="least peak logit of an answer, as a share of the model's logit scale on the image")
    parser.add_argument("--nms-iou", type=float, default=EverythingSettings.nms_iou_thresh,
                        help="mask IoU above which the lower-scored mask is a duplicate")
    parser.add_argument("--recenter", action="store_true",
                        help="ask each kept answer again with a click at its most interior pixel")
    parser.add_argument("--limit-longest-size", type=int, default=800,
                        help="images whose longer side exceeds this are resized to it for the model")
    parser.add_argument("--target-size", type=int, default=448, help="model input (zoom-in crop) size")
    parser.add_argument("--flip", action="store_true",
                        help="test-time flip (twice the time; no better recall on the quick start's model)")
    args = parser.parse_args(argv)
    args.layers = parse_layers(args.gra, args.phrase)
    try:
        args.settings = EverythingSettings(points_per_side=args.points_per_side, levels=args.levels,
                                           points_per_batch=args.points_per_batch, min_area=args.min_area,
                                           stability_thresh=args.stability_thresh,
                                           stability_delta=args.stability_delta, min_confidence=args.min_confidence,
                                           nms_iou_thresh=args.nms_iou, recenter=args.recenter)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if (args.labelstudio is None) != (args.labelstudio_image_url is None):
        raise UsageError("--labelstudio and --labelstudio-image-url go together")
    if args.labelstudio_config is not None and args.labelstudio is None:
        raise UsageError("--labelstudio-config needs --labelstudio")
    if args.limit_longest_size < 16 or args.target_size < 16 or args.target_size % 16:
        raise UsageError("--limit-longest-size must be at least 16 and --target-size a multiple of 16")
    return args


def parse_layers(gra: Optional[str], phrase: Optional[str]) -> List[Layer]:
    """The layers of ``--gra 0.3,1.0`` and ``--phrase head`` (``--gra`` defaults to 1.0 without a phrase)."""
    values: List[float] = []
    if gra is None and phrase is None:
        gra = "1.0"
    for text in (gra.split(",") if gra else []):
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--gra {gra}: {text.strip()!r} is not a number") from None
        if not MIN_GRANULARITY <= value <= 1.0:
            raise UsageError(f"--gra {gra}: granularity {value:g} is outside [{MIN_GRANULARITY}, 1]")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError(f"--gra {gra}: a granularity is given twice")
    if phrase is not None and not phrase.strip():
        raise UsageError("--phrase is empty")
    return make_layers(values, phrase.strip() if phrase else None)


def list_images(path: Path) -> List[Path]:
    """The image files of ``--images``: the file itself, or the folder's image files sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"--images {path}: no such file or folder")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UsageError(f"--images {path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def run_identity(args) -> dict:
    """What shapes the output: an image already done with the same identity is skipped."""
    def identity(path):
        if path is None:
            return None
        resolved = Path(path).resolve()
        return [str(resolved), resolved.stat().st_size if resolved.is_file() else None]

    settings = {k: v for k, v in vars(args.settings).items() if k != "points_per_batch"}
    return {"format": FORMAT, "checkpoint": identity(args.checkpoint), "lora_checkpoint": identity(args.lora_checkpoint),
            "layers": [layer.name for layer in args.layers], "settings": settings,
            "predictor": {"limit_longest_size": args.limit_longest_size, "target_size": args.target_size,
                          "flip": args.flip, "precision": args.precision_used}}


def output_paths(output: Path, image: Path, layers: Sequence[Layer]) -> Dict[str, Path]:
    paths = {"json": output / f"{image.stem}.json", "preview": output / f"{image.stem}_preview.png"}
    paths.update({layer.name: output / f"{image.stem}_{layer.name}.png" for layer in layers})
    return paths


def is_done(paths: Dict[str, Path], identity: dict) -> bool:
    try:
        document = json.loads(paths["json"].read_text())
    except (OSError, ValueError):
        return False
    return document.get("info", {}).get("run") == identity and all(p.is_file() for p in paths.values())


def instance_map(masks: Sequence[EverythingMask], shape) -> np.ndarray:
    """H x W ids 1..n of ``masks`` (in order); larger masks drawn first, so smaller ones stay visible on top."""
    out = np.zeros(shape, np.uint16 if len(masks) > 255 else np.uint8)
    for index in sorted(range(len(masks)), key=lambda i: -masks[i].area):
        out[masks[index].segmentation] = index + 1
    return out


def coco_document(image_path: Path, shape, result: Dict[Layer, List[EverythingMask]], identity: dict) -> dict:
    height, width = shape
    annotations, next_id = [], 1
    for layer, masks in result.items():
        for instance_id, mask in enumerate(masks, 1):
            y, x = mask.click
            ys, xs = np.nonzero(mask.segmentation)
            annotations.append({
                "id": next_id, "image_id": 1, "category_id": 1, "segmentation": encode_rle(mask.segmentation),
                "area": mask.area, "iscrowd": 0,
                "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
                "score": round(mask.score, 6), "stability": round(mask.stability, 6),
                "confidence": round(mask.confidence, 6), "agreement": round(mask.agreement, 6),
                "granularity": layer.gra, "phrase": layer.phrase, "layer": layer.name, "instance_id": instance_id,
                "click": [x, y], "level": mask.level})
            next_id += 1
    return {"info": {"description": "segment_everything.py", "run": identity},
            "images": [{"id": 1, "file_name": image_path.name, "height": height, "width": width}],
            "annotations": annotations, "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}


def preview(image: np.ndarray, result: Dict[Layer, List[EverythingMask]]) -> np.ndarray:
    """The layers' coloured previews side by side (RGB), each labelled with its layer and mask count."""
    tiles = []
    for layer, masks in result.items():
        tile = coloured_preview(image, instance_map(masks, image.shape[:2]).astype(np.int64))
        label = f"{layer.name}: {len(masks)}"
        cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3)
        cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        tiles.append(tile)
    return np.hstack(tiles)


def write_outputs(paths: Dict[str, Path], image_path: Path, image: np.ndarray,
                  result: Dict[Layer, List[EverythingMask]], identity: dict) -> None:
    """PNGs first, the JSON last (each written to a temporary name and renamed)."""
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    for layer, masks in result.items():
        write_png(paths[layer.name], instance_map(masks, image.shape[:2]))
    write_png(paths["preview"], cv2.cvtColor(preview(image, result), cv2.COLOR_RGB2BGR))
    tmp = paths["json"].with_name(f".{paths['json'].name}.tmp")
    tmp.write_text(json.dumps(coco_document(image_path, image.shape[:2], result, identity)))
    tmp.replace(paths["json"])


def check_unique_stems(images: Sequence[Path]) -> None:
    seen: Dict[str, Path] = {}
    for path in images:
        if path.stem in seen:
            raise UsageError(f"{seen[path.stem].name} and {path.name} would write the same outputs ({path.stem}.*)")
        seen[path.stem] = path


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(argv)
        images = list_images(Path(args.images))
        check_unique_stems(images)
        if args.labelstudio is not None:
            args.labelstudio_parsed = labelstudio_config(args)  # before the long run
        if len(images) == 1 and Path(args.images).is_file():
            try:
                read_rgb_image(images[0])
            except SampleError as error:
                raise UsageError(str(error)) from None
        rank, world, local_rank = distributed_setup()
        device = choose_device(args, local_rank)
        args.precision_used = broadcast_from_main(resolve_precision(args.precision, device), world)
        identity = run_identity(args)
        output = Path(args.output)
        mine = [images[i] for i in shard_indices(len(images), rank, world)]
        pending = [p for p in mine if not is_done(output_paths(output, p, args.layers), identity)]
        if len(pending) < len(mine):
            logger.info("rank %d/%d: %d of its %d images already done with these settings, skipped", rank, world,
                        len(mine) - len(pending), len(mine))
        failed = segment_images(args, pending, output, identity, device, rank) if pending else 0
        barrier(world)
        if args.labelstudio is not None and rank == 0:
            write_labelstudio_tasks(args, images, output, identity)
        if world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()
    except (UsageError, CheckpointError) as error:
        print(f"segment_everything.py: error: {error}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def labelstudio_config(args):
    """The labeling config of ``--labelstudio-config`` (default: the backend's example); a missing [labelstudio]
    extra or a config that cannot be read is a :class:`UsageError`."""
    from isegm.utils.extras import ExtraMissing
    try:
        from isegm.labelstudio.labeling_config import EXAMPLE_CONFIG, LabelingConfig, LabelingConfigError
        importlib.import_module("isegm.labelstudio.results")  # the brush format's package
    except ExtraMissing as error:
        raise UsageError(f"--labelstudio: {error}") from None
    try:
        xml = EXAMPLE_CONFIG if args.labelstudio_config is None else Path(args.labelstudio_config).read_text()
        return LabelingConfig.parse(xml)
    except (OSError, LabelingConfigError) as error:
        raise UsageError(f"--labelstudio-config: {error}") from None


def write_labelstudio_tasks(args, images: Sequence[Path], output: Path, identity: dict) -> None:
    """``args.labelstudio``: one Label Studio task per image done with these settings, one prediction per layer (its
    masks as brush regions, the layer in the model version and in each region's meta text), read back from the
    images' COCO JSON files, so that a resumed run writes every image."""
    from isegm.labelstudio.results import import_task, prediction
    config = args.labelstudio_parsed
    tasks = []
    for path in images:
        paths = output_paths(output, path, args.layers)
        if not is_done(paths, identity):
            continue
        document = json.loads(paths["json"].read_text())
        predictions = []
        for layer in args.layers:
            masks = [(mask_utils.decode({"size": a["segmentation"]["size"],
                                         "counts": a["segmentation"]["counts"].encode()}).astype(bool), a["score"])
                     for a in document["annotations"] if a["layer"] == layer.name]
            what = f"granularity {layer.gra:g}" if layer.gra is not None else f"part {layer.phrase}"
            predictions.append(prediction(config, masks, f"GraCo segment everything, {what}", note=what))
        tasks.append(import_task(config, args.labelstudio_image_url + quote(path.name), predictions))
    target = Path(args.labelstudio)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(tasks))
    tmp.replace(target)
    logger.info("%s: %d Label Studio tasks with %d predictions", target, len(tasks), sum(len(t["predictions"])
                                                                                         for t in tasks))


def segment_images(args, images: List[Path], output: Path, identity: dict, device: torch.device, rank: int) -> int:
    """Segment ``images`` and write their outputs; returns how many could not be read."""
    from isegm.inference.utils import load_is_model
    model = load_is_model(args.checkpoint, device, lora_checkpoint=args.lora_checkpoint,
                          clip_weights=args.clip_weights)
    if any(layer.phrase for layer in args.layers):
        from isegm.model.phrase_encoder import PhraseEncoderUnavailable
        encoder = getattr(model, "phrase_encoder", None)
        if encoder is None:
            raise UsageError("--phrase: this model has no phrase input")
        try:
            encoder.ensure_loaded()
        except PhraseEncoderUnavailable as error:
            raise UsageError(f"--phrase needs the CLIP weights: {error}") from None
    settings = PredictorSettings(target_size=min(args.target_size, args.limit_longest_size),
                                 max_size=args.limit_longest_size, with_flip=args.flip,
                                 precision=args.precision_used)
    generator = EverythingGenerator(settings.make_predictor(model, device), args.settings, flip=args.flip)
    failed, masks_total, done = 0, 0, 0
    bar = tqdm(images, unit="img", desc=f"rank {rank}" if rank else "segmenting", dynamic_ncols=True)
    for path in bar:
        try:
            image = read_rgb_image(path)
        except SampleError as error:
            logger.warning("skipping %s: %s", path, error)
            failed += 1
            continue
        clicks = tqdm(total=None, unit="click", desc=path.name, leave=False, dynamic_ncols=True)
        result = generator.generate(image, args.layers, progress=clicks.update)
        clicks.close()
        write_outputs(output_paths(output, path, args.layers), path, image, result, identity)
        done += 1
        masks_total += sum(len(m) for m in result.values())
        bar.set_postfix({"masks/img": f"{masks_total / done:.1f}", "unreadable": failed})
    bar.close()
    timings = generator.timings
    if done:
        logger.info("rank %d: %d images, %.1f masks per image, %.2f s per image (%.0f%% in the model), %d unreadable",
                    rank, done, masks_total / done, timings.total / done, 100 * timings.model / max(timings.total, 1e-9),
                    failed)
    return failed


if __name__ == "__main__":
    sys.exit(main())
