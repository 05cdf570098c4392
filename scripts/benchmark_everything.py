"""Segment everything: quality (recall of known parts and objects, masks per image) and speed.

quality: on PASCAL-Part-layout images (the quick start's held-out toy scenes, or ../shared/data/PascalPart), the
recall of the ground-truth parts (a mask with IoU >= 0.5) at a part granularity, of the objects at 1.0, and the
masks per image, for the generator (stability, click check, NMS, second pass) and for a plain grid (every
first-pass mask kept). Cross rows (parts at 1.0, objects at the part granularity) show what the slider changes.

    python scripts/benchmark_everything.py quality --pascalpart outputs/quickstart/data/PascalPart --split val \\
        --checkpoint BASE.safetensors --lora_checkpoint GRACO.safetensors --target-size 128 --images 20
    python scripts/benchmark_everything.py quality --pascalpart ../shared/data/PascalPart \\
        --lora_checkpoint ../shared/weights/GraCo_base_lora.pth --seeded-base --points-per-side 4 --no-flip

speed: seconds per image for one granularity on a seeded model of the released LoRA's architecture (ViT-B, 448)
or the toy architecture, in fp32 and bf16, the share spent in the model, and batched against one click at a time
(the masks must be identical). ``--clicks N`` times only the first N clicks of the grid and scales to the whole
grid (seconds per click x clicks per image), for CPUs where a whole ViT-B grid takes too long.

    python scripts/benchmark_everything.py speed --lora_checkpoint ../shared/weights/GraCo_base_lora.pth --clicks 32
"""
import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from isegm.data.io import read_rgb_image
from isegm.data.training import read_pascalpart_objects
from isegm.interactive import PredictorSettings
from isegm.generation.everything import EverythingGenerator, EverythingSettings, Layer, grid_points
from isegm.utils.machine import cpu_name

logger = logging.getLogger("benchmark_everything")


def load_model(args):
    from isegm.inference.utils import load_is_model
    from isegm.model.checkpoint import read_checkpoint
    from isegm.toy.seeded import build_seeded_model
    if args.seeded_base:
        cfg = read_checkpoint(args.lora_checkpoint)[1]
        return build_seeded_model(cfg, lora_checkpoint=args.lora_checkpoint)
    return load_is_model(args.checkpoint, "cpu", lora_checkpoint=args.lora_checkpoint)


def predictor_for(model, args, precision: str):
    settings = PredictorSettings(target_size=args.target_size, max_size=args.limit_longest_size,
                                 with_flip=not args.no_flip, precision=precision)
    return settings.make_predictor(model, "cpu")


def recall(truth: List[np.ndarray], masks: List[np.ndarray], thresh: float = 0.5) -> int:
    found = 0
    for target in truth:
        for mask in masks:
            union = np.count_nonzero(target | mask)
            if union and np.count_nonzero(target & mask) / union >= thresh:
                found += 1
                break
    return found


def quality(args) -> None:
    root = Path(args.pascalpart)
    ids_file = root / "ImageSets" / "Main" / f"{args.split}.txt"
    if ids_file.is_file():
        ids = ids_file.read_text().split()
    else:
        ids = sorted(p.stem for p in (root / "Annotations_Part").glob("*.mat"))
    ids = ids[:args.images]
    model = load_model(args)
    predictor = predictor_for(model, args, args.precision)
    part, whole = Layer(gra=args.part_gra), Layer(gra=1.0)
    base = EverythingSettings(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                              min_area=args.min_area, stability_thresh=args.stability_thresh,
                              stability_delta=args.stability_delta)
    methods = {"generator": base, "plain grid": replace(base, plain=True)}
    totals: Dict[str, Dict[str, float]] = {m: dict(parts_at_part=0, objects_at_whole=0, parts_at_whole=0,
                                                   objects_at_part=0, masks_part=0, masks_whole=0, seconds=0.0)
                                           for m in methods}
    n_parts = n_objects = 0
    for number, image_id in enumerate(ids, 1):
        image = read_rgb_image(root / "JPEGImages" / f"{image_id}.jpg")
        objects = read_pascalpart_objects(root / "Annotations_Part" / f"{image_id}.mat")
        object_masks = [o.mask for o in objects]
        part_masks = [np.asarray(m) != 0 for o in objects for _, m in o.parts]
        n_parts += len(part_masks)
        n_objects += len(object_masks)
        for name, settings in methods.items():
            generator = EverythingGenerator(predictor, settings)
            start = time.perf_counter()
            result = generator.generate(image, [part, whole])
            row = totals[name]
            row["seconds"] += time.perf_counter() - start
            at_part = [m.segmentation for m in result[part]]
            at_whole = [m.segmentation for m in result[whole]]
            row["parts_at_part"] += recall(part_masks, at_part)
            row["objects_at_whole"] += recall(object_masks, at_whole)
            row["parts_at_whole"] += recall(part_masks, at_whole)
            row["objects_at_part"] += recall(object_masks, at_part)
            row["masks_part"] += len(at_part)
            row["masks_whole"] += len(at_whole)
        logger.info("%d/%d %s (%d parts, %d objects so far): %s", number, len(ids), image_id, n_parts, n_objects,
                    {m: {k: round(v, 1) for k, v in t.items()} for m, t in totals.items()})
    n = len(ids)
    print(f"CPU: {cpu_name()}; {n} images, {n_objects} objects, {n_parts} parts; grid {args.points_per_side}x"
          f"{args.points_per_side}, part granularity {args.part_gra}, min area {args.min_area}, stability >= "
          f"{args.stability_thresh} at 0.5 +/- {args.stability_delta}, precision "
          f"{predictor.precision}, flip {not args.no_flip}")
    print(f"| method | part recall @ {args.part_gra} | object recall @ 1.0 | part recall @ 1.0 | object recall @ "
          f"{args.part_gra} | masks/img @ {args.part_gra} | masks/img @ 1.0 | s/img |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, t in totals.items():
        print(f"| {name} | {t['parts_at_part'] / max(n_parts, 1):.2f} | {t['objects_at_whole'] / max(n_objects, 1):.2f}"
              f" | {t['parts_at_whole'] / max(n_parts, 1):.2f} | {t['objects_at_part'] / max(n_objects, 1):.2f} | "
              f"{t['masks_part'] / n:.1f} | {t['masks_whole'] / n:.1f} | {t['seconds'] / n:.1f} |")


def speed(args) -> None:
    from isegm.model.checkpoint import read_checkpoint
    from isegm.toy.seeded import build_seeded_model
    cfg = read_checkpoint(args.lora_checkpoint)[1] if args.lora_checkpoint else None
    if cfg is None:
        from isegm.model import ModelConfig
        cfg = ModelConfig(img_size=(128, 128), embed_dim=128, depth=4, num_heads=4, neck_out_dims=(32, 64, 128, 256),
                          head_channels=64)
    model = build_seeded_model(cfg, lora_checkpoint=args.lora_checkpoint)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    layer = Layer(gra=0.5)
    total_clicks = args.points_per_side ** 2
    clicks = min(args.clicks or total_clicks, total_clicks)
    settings = EverythingSettings(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                                  plain=True, min_area=0)
    rows = []
    masks_by_mode = {}
    for precision in args.precisions.split(","):
        predictor = predictor_for(model, args, precision)
        for batched in ((True, False) if args.compare_single else (True,)):
            generator = EverythingGenerator(predictor, settings, batched=batched)
            generator.candidates_at(image, layer, [(10.0, 10.0)] * 2)  # warm-up (weights converted)
            generator = EverythingGenerator(predictor, settings, batched=batched)
            points = grid_points(args.points_per_side, args.height, args.width)[:clicks]
            start = time.perf_counter()
            masks = [m.segmentation for m in generator.candidates_at(image, layer, points)]
            seconds = time.perf_counter() - start
            masks_by_mode[(precision, batched)] = masks
            per_image = seconds / clicks * total_clicks
            rows.append((precision, "batched" if batched else "one at a time", per_image,
                         generator.timings.model / max(generator.timings.total, 1e-9)))
            logger.info("%s %s: %.2f s for %d clicks", precision, rows[-1][1], seconds, clicks)
        if args.compare_single:
            same = all(np.array_equal(a, b) for a, b in zip(masks_by_mode[(precision, True)],
                                                            masks_by_mode[(precision, False)]))
            assert same, f"{precision}: batched and one-at-a-time masks differ"
    print(f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}; model {cfg.embed_dim}-dim x {cfg.depth} "
          f"blocks, input {args.target_size}; image {args.width}x{args.height}; {args.points_per_side}x"
          f"{args.points_per_side} clicks, one granularity, flip {not args.no_flip}; timed {clicks} clicks, scaled "
          f"to {total_clicks}; {args.points_per_batch} clicks per forward")
    print("| precision | mode | s/image | share in model | vs fp32 batched |")
    print("| --- | --- | --- | --- | --- |")
    reference = next((r[2] for r in rows if r[0] == "fp32" and r[1] == "batched"), rows[0][2])
    for precision, mode, per_image, share in rows:
        print(f"| {precision} | {mode} | {per_image:.1f} | {100 * share:.0f}% | {reference / per_image:.2f}x |")
    if args.compare_single:
        print("batched and one-at-a-time masks identical: yes")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("quality", "speed"))
    parser.add_argument("--checkpoint", help="base checkpoint (quality, unless --seeded-base)")
    parser.add_argument("--lora_checkpoint", help="LoRA checkpoint (its config gives the architecture)")
    parser.add_argument("--seeded-base", action="store_true", help="quality: seeded base under the LoRA")
    parser.add_argument("--pascalpart", help="quality: PASCAL-Part-layout folder")
    parser.add_argument("--split", default="val", help="quality: ImageSets/Main/<split>.txt (all files without it)")
    parser.add_argument("--images", type=int, default=20, help="quality: first N images")
    parser.add_argument("--part-gra", type=float, default=0.3)
    parser.add_argument("--points-per-side", type=int, default=16)
    parser.add_argument("--points-per-batch", type=int, default=32)
    parser.add_argument("--min-area", type=int, default=20)
    parser.add_argument("--stability-thresh", type=float, default=EverythingSettings.stability_thresh,
                        help="quality: the generator's stability filter (as segment_everything.py)")
    parser.add_argument("--stability-delta", type=float, default=EverythingSettings.stability_delta)
    parser.add_argument("--precision", default="fp32", help="quality: fp32 or bf16")
    parser.add_argument("--precisions", default="fp32,bf16", help="speed: modes to time")
    parser.add_argument("--clicks", type=int, default=0, help="speed: time only this many clicks (0: all)")
    parser.add_argument("--compare-single", action="store_true", help="speed: also one click at a time")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--target-size", type=int, default=448)
    parser.add_argument("--limit-longest-size", type=int, default=800)
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quality(args) if args.mode == "quality" else speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
