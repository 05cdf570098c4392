"""Oracle granularity: all running granularities batched per click step, against the sequential loop.

Both run the clean oracle (fresh zoom-in state per granularity) on the same samples; the per-sample IoUs and chosen
granularities are asserted identical, and the time per sample of each and their ratio are printed.

    python scripts/benchmark_eval.py [--data ../shared/data/GrabCut] [--samples 3] [--n-clicks 5] [--device cuda]
"""
import argparse
import os
import time

import numpy as np
import torch

from isegm.inference.evaluation import GRANULARITY_LEVELS, evaluate_sample_oracle
from isegm.inference.predictors import get_predictor
from isegm.model import load_model_config
from isegm.toy.seeded import build_seeded_model


def samples(data: str, count: int):
    """GrabCut samples from ``data`` when given, else synthetic scenes."""
    if data:
        from isegm.data.datasets import GrabCutDataset
        dataset = GrabCutDataset(data)
        for index in range(min(count, len(dataset))):
            sample = dataset.get_sample(index)
            yield sample.sample_id, sample.image, sample.gt_mask(sample.objects_ids[0])
        return
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
        gt = np.zeros((360, 480), np.int32)
        top, left = 60 + 20 * index, 100 + 30 * index
        gt[top:top + 180, left:left + 200] = 1
        image[gt == 1] = (200, 80, 40)
        yield f"synthetic{index}", image, gt


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="a GrabCut folder (default: synthetic scenes)")
    parser.add_argument("--lora", default=os.environ.get("GRACO_BENCH_LORA"), help="GraCo LoRA (default: seeded)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--n-clicks", type=int, default=5)
    parser.add_argument("--target-iou", type=float, default=0.9)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_seeded_model(load_model_config("graco_vit_base448"), lora_checkpoint=args.lora).to(args.device)
    predictor = get_predictor(model, "NoBRS", args.device, zoom_in_params={"skip_clicks": -1, "target_size": (448, 448)})
    kwargs = dict(max_iou_thr=args.target_iou, pred_thr=0.5, max_clicks=args.n_clicks, clean=True)

    def timed(**extra):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = evaluate_sample_oracle(image, gt, predictor, **kwargs, **extra)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    print(f"device={args.device} samples={args.samples} n_clicks={args.n_clicks} target={args.target_iou}")
    totals = {"sequential": 0.0, "batched": 0.0}
    for sample_id, image, gt in samples(args.data, args.samples):
        (seq_ious, seq_index), seq_s = timed()
        (bat_ious, bat_index), bat_s = timed(batched=True)
        assert seq_index == bat_index and np.array_equal(seq_ious, bat_ious), f"{sample_id}: results differ"
        totals["sequential"] += seq_s
        totals["batched"] += bat_s
        print(f"{sample_id}: oracle g={GRANULARITY_LEVELS[seq_index]} clicks={len(seq_ious)} "
              f"sequential {seq_s:.2f} s, batched {bat_s:.2f} s (identical IoUs)")
    print(f"sequential : {totals['sequential'] / args.samples:.2f} s/sample")
    print(f"batched    : {totals['batched'] / args.samples:.2f} s/sample")
    print(f"speed-up   : {totals['sequential'] / totals['batched']:.2f}x")


if __name__ == "__main__":
    main()
