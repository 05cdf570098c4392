"""Segment everything: quality (recall of known parts and objects, masks per image) and speed.

quality: on PASCAL-Part-layout images (the quick start's held-out toy scenes, or ../shared/data/PascalPart), the
recall of the ground-truth parts (a mask with IoU >= 0.5) at a part granularity, of the objects at 1.0, the masks
and model images per image, for the generator (its defaults unless options say otherwise) and for a plain grid
(every mask of one grid at probability 0.5, with the flip, as the generator did before), beside the reference: one
click at each item's most interior pixel. Cross columns (parts at 1.0, objects at the part granularity) show what
the slider changes.

    python scripts/benchmark_everything.py quality --pascalpart outputs/quickstart/data/PascalPart --split val \\
        --checkpoint BASE.safetensors --lora_checkpoint GRACO.safetensors --target-size 128 --images 20
    python scripts/benchmark_everything.py quality --pascalpart ../shared/data/PascalPart \\
        --lora_checkpoint ../shared/weights/GraCo_base_lora.pth --seeded-base --points-per-side 4

speed: seconds per click on a seeded model of the released LoRA's architecture (ViT-B, 448) or the toy
architecture, in fp32 and bf16, with and without the flip (``--compare-single``: batched against one click at a
time, the masks must be identical), and per image: today's full grid with the flip against the generator at the
model images per layer that a quality run measured (``--generator-images``). ``--clicks N`` times the first N clicks.

    python scripts/benchmark_everything.py speed --lora_checkpoint ../shared/weights/GraCo_base_lora.pth --clicks 16 \
        --generator-images 132.5
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
from isegm.generation.everything import EverythingGenerator, EverythingSettings, Layer, grid_points, interior_point
from isegm.inference.clicker import Click, Clicker
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
                                 precision=precision)
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


def interior_click_recall(predictor, image: np.ndarray, truth: List[np.ndarray], gra: float) -> int:
    """The reference: one positive click at each ground-truth item's most interior pixel, at ``gra``; how many of
    the answers (probability > 0.5, as in the NoC evaluation) reach IoU 0.5 with their item."""
    found = 0
    for target in truth:
        (y, x), _ = interior_point(target)
        session = predictor.spawn(with_flip=False)
        session.set_input_image(image)
        clicker = Clicker()
        clicker.add_click(Click(True, (y, x)))
        found += recall([target], [session.get_prediction(clicker, gra=gra) > 0.5])
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
    base = settings_from(args)
    methods = {"generator": (base, args.flip), "plain grid": (replace(base, plain=True), True)}
    keys = ("parts_at_part", "objects_at_whole", "parts_at_whole", "objects_at_part", "masks_part", "masks_whole",
            "seconds", "images", "clicks")
    totals: Dict[str, Dict[str, float]] = {m: dict.fromkeys(keys, 0) for m in methods}
    reference = dict(parts=0, objects=0)
    n_parts = n_objects = 0
    for number, image_id in enumerate(ids, 1):
        image = read_rgb_image(root / "JPEGImages" / f"{image_id}.jpg")
        objects = read_pascalpart_objects(root / "Annotations_Part" / f"{image_id}.mat")
        object_masks = [o.mask for o in objects]
        part_masks = [np.asarray(m) != 0 for o in objects for _, m in o.parts]
        n_parts += len(part_masks)
        n_objects += len(object_masks)
        reference["parts"] += interior_click_recall(predictor, image, part_masks, args.part_gra)
        reference["objects"] += interior_click_recall(predictor, image, object_masks, 1.0)
        for name, (settings, flip) in methods.items():
            generator = EverythingGenerator(predictor, settings, flip=flip)
            start = time.perf_counter()
            result = generator.generate(image, [part, whole])
            row = totals[name]
            row["seconds"] += time.perf_counter() - start
            row["images"] += generator.timings.images
            row["clicks"] += generator.timings.clicks
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
          f"{args.points_per_side} ({base.levels} levels), part granularity {args.part_gra}, min area "
          f"{args.min_area} of the image, precision {predictor.precision}; generator flip {args.flip}, plain grid "
          f"flip True")
    print(f"| method | part recall @ {args.part_gra} | object recall @ 1.0 | part recall @ 1.0 | object recall @ "
          f"{args.part_gra} | masks/img @ {args.part_gra} | masks/img @ 1.0 | model images/img | clicks/img | s/img |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, t in totals.items():
        print(f"| {name} | {t['parts_at_part'] / max(n_parts, 1):.2f} | {t['objects_at_whole'] / max(n_objects, 1):.2f}"
              f" | {t['parts_at_whole'] / max(n_parts, 1):.2f} | {t['objects_at_part'] / max(n_objects, 1):.2f} | "
              f"{t['masks_part'] / n:.1f} | {t['masks_whole'] / n:.1f} | {t['images'] / n:.0f} | {t['clicks'] / n:.0f}"
              f" | {t['seconds'] / n:.2f} |")
    ref_parts, ref_objects = reference["parts"] / max(n_parts, 1), reference["objects"] / max(n_objects, 1)
    print(f"| one click at each item's most interior pixel (reference) | {ref_parts:.2f} | {ref_objects:.2f} | | | | |"
          f" | | |")
    gen = totals["generator"]
    print(f"generator / reference: parts {gen['parts_at_part'] / max(n_parts, 1) / max(ref_parts, 1e-9):.2f}x, "
          f"objects {gen['objects_at_whole'] / max(n_objects, 1) / max(ref_objects, 1e-9):.2f}x")


def settings_from(args) -> EverythingSettings:
    return EverythingSettings(points_per_side=args.points_per_side, levels=args.levels,
                              points_per_batch=args.points_per_batch, min_area=args.min_area,
                              stability_thresh=args.stability_thresh, stability_delta=args.stability_delta,
                              min_confidence=args.min_confidence, recenter=args.recenter)


def speed(args) -> None:
    """Seconds per click on a seeded model (batched, the first ``--clicks`` grid clicks), with and without the flip,
    and what a whole image costs: today's grid (every click of the finest grid, with the flip, per layer) and the
    generator at ``--generator-images`` model images per layer (measured by ``quality`` on a trained model: a seeded
    model's noise says nothing about how many clicks the generator skips)."""
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
    grid = args.points_per_side ** 2
    points = grid_points(args.points_per_side, args.height, args.width)[:min(args.clicks or grid, grid)]
    settings = EverythingSettings(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                                  plain=True, min_area=0)
    rows = []
    for precision in args.precisions.split(","):
        predictor = predictor_for(model, args, precision)
        per_click = {}
        for flip in (True, False):
            masks = {}
            for batched in ((True, False) if args.compare_single else (True,)):
                EverythingGenerator(predictor, settings, flip=flip).candidates_at(image, layer, points[:2])  # warm-up
                generator = EverythingGenerator(predictor, settings, batched=batched, flip=flip)
                start = time.perf_counter()
                masks[batched] = [m.segmentation for m in generator.candidates_at(image, layer, points)]
                if batched:
                    per_click[flip] = (time.perf_counter() - start) / len(points)
                logger.info("%s flip %s batched %s: %.2f s for %d clicks", precision, flip, batched,
                            time.perf_counter() - start, len(points))
            if args.compare_single:
                assert all(np.array_equal(a, b) for a, b in zip(masks[True], masks[False])), \
                    f"{precision}: batched and one-at-a-time masks differ"
        today = grid * per_click[True]
        after = args.generator_images * per_click[False] if args.generator_images else None
        rows.append((precision, per_click[True], per_click[False], today, after))
    print(f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}; seeded model {cfg.embed_dim}-dim x "
          f"{cfg.depth} blocks, input {args.target_size}; image {args.width}x{args.height}; timed {len(points)} "
          f"clicks, {args.points_per_batch} per forward; today: {args.points_per_side}x{args.points_per_side} clicks "
          f"with the flip, one layer; generator: {args.generator_images or '-'} model images per layer (from quality)")
    print("| precision | s/click, flip | s/click, no flip | today's grid, s/layer | generator, s/layer | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for precision, flip, no_flip, today, after in rows:
        after_text = "-" if after is None else f"{after:.1f}"
        ratio = "-" if after is None else f"{after / today:.3f}"
        print(f"| {precision} | {flip:.3f} | {no_flip:.3f} | {today:.1f} | {after_text} | {ratio} |")
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
    parser.add_argument("--levels", type=int, default=EverythingSettings.levels)
    parser.add_argument("--points-per-batch", type=int, default=32)
    parser.add_argument("--min-area", type=float, default=EverythingSettings.min_area, help="share of the image")
    parser.add_argument("--stability-thresh", type=float, default=EverythingSettings.stability_thresh,
                        help="quality: the generator's filters (as segment_everything.py)")
    parser.add_argument("--stability-delta", type=float, default=EverythingSettings.stability_delta)
    parser.add_argument("--min-confidence", type=float, default=EverythingSettings.min_confidence)
    parser.add_argument("--recenter", action="store_true", help="quality: re-click at the interior")
    parser.add_argument("--flip", action="store_true", help="quality: the generator with the test-time flip")
    parser.add_argument("--precision", default="fp32", help="quality: fp32 or bf16")
    parser.add_argument("--precisions", default="fp32,bf16", help="speed: modes to time")
    parser.add_argument("--clicks", type=int, default=0, help="speed: time only this many clicks (0: all)")
    parser.add_argument("--compare-single", action="store_true", help="speed: also one click at a time")
    parser.add_argument("--generator-images", type=float, default=0,
                        help="speed: the generator's model images per layer (a quality run's model images per image "
                             "over its 2 layers; 0: no row)")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--target-size", type=int, default=448)
    parser.add_argument("--limit-longest-size", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quality(args) if args.mode == "quality" else speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
