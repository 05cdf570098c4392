"""Images per second of the FMG+MGE generator: all objects batched per click step against one object at a time.

Both runs carve the same images with the same generators, on a seeded ViT-B (448 zoom-in, flip) or, with
``--tiny``, the small test model; the proposals (masks and granularities) are compared and must be equal.
Images are synthetic (random textured images with ``--objects`` ellipses each) unless ``--sbd`` gives an
SBD-layout folder, whose first ``--images`` training images are used.

    python scripts/benchmark_generator.py --device cuda --images 16 --objects 4
    python scripts/benchmark_generator.py --tiny --device cpu --images 4
"""
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from isegm.generation.fmg import CarveJob, FMGSettings, carve_many, make_predictor
from isegm.model import ModelConfig
from isegm.toy.seeded import build_seeded_model

TINY = dict(img_size=(224, 224), embed_dim=64, depth=4, num_heads=2, neck_out_dims=(16, 32, 64, 128),
            head_channels=32)


def synthetic_images(count: int, objects: int, height: int, width: int, seed: int):
    """``count`` (H x W x 3 uint8 image, K x H x W bool objects) pairs: smooth noise with coloured ellipses."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
        masks = []
        for _ in range(objects):
            mask = np.zeros((height, width), np.uint8)
            center = (int(rng.integers(width // 5, 4 * width // 5)), int(rng.integers(height // 5, 4 * height // 5)))
            axes = (int(rng.integers(width // 10, width // 4)), int(rng.integers(height // 10, height // 4)))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            image[mask > 0] = (0.5 * image[mask > 0] + 0.5 * rng.integers(0, 255, 3)).astype(np.uint8)
            masks.append(mask > 0)
        out.append((image, np.stack(masks)))
    return out


def sbd_images(path: Path, count: int):
    from any_granularity_generator import SBDImages
    source = SBDImages(path, "train")
    return [source.load(i) for i in range(min(count, len(source.image_ids)))]


def run(predictor, data, settings, batched: bool, images_per_call: int, seed: int, device):
    jobs = [CarveJob(image, objects, np.random.default_rng([seed, i])) for i, (image, objects) in enumerate(data)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    results = []
    for first in range(0, len(jobs), images_per_call):
        results.extend(carve_many(predictor, jobs[first:first + images_per_call], settings, batched=batched))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="small test model (224 input) instead of ViT-B 448")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--objects", type=int, default=3, help="objects per synthetic image")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--batch-images", type=int, default=1, help="images per carve call (batched run)")
    parser.add_argument("--sbd", type=Path, default=None, help="SBD-layout folder to take images from")
    parser.add_argument("--bias", type=float, default=-2.5, help="offset of the seeded head bias (off saturation)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = ModelConfig(**TINY) if args.tiny else ModelConfig()
    torch.manual_seed(args.seed)
    model = build_seeded_model(cfg, overrides={"head.conv_seg.bias": args.bias}).to(device)
    settings = FMGSettings(input_size=tuple(cfg.img_size))
    predictor = make_predictor(model, settings, device)
    data = sbd_images(args.sbd, args.images) if args.sbd else \
        synthetic_images(args.images, args.objects, args.height, args.width, args.seed)
    run(predictor, data[:1], settings, True, 1, args.seed, device)  # warm-up
    t_batched, batched = run(predictor, data, settings, True, args.batch_images, args.seed, device)
    t_single, single = run(predictor, data, settings, False, 1, args.seed, device)

    same = all(len(a) == len(b) and all(p.gra == q.gra and np.array_equal(p.mask, q.mask) for p, q in zip(a, b))
               for img_a, img_b in zip(batched, single) for a, b in zip(img_a, img_b))
    objects = sum(len(o) for _, o in data)
    proposals = sum(len(p) for per_image in batched for p in per_image)
    name = "tiny" if args.tiny else "ViT-B"
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"model {name} {cfg.img_size[0]}, device {device}{gpu}; {len(data)} images, {objects} objects, "
          f"{proposals} proposals")
    print(f"batched (all objects per forward, {args.batch_images} image(s) per call): "
          f"{len(data) / t_batched:.2f} images/s")
    print(f"one object at a time:                        {len(data) / t_single:.2f} images/s")
    print(f"speed-up {t_single / t_batched:.2f}x; outputs {'equal' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
