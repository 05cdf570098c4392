"""Training throughput (images per second) of the GCL trainer, in one run.

On the CPU: the tiny configuration used by the tests (4 blocks, 64 channels, 64 px crops). With a GPU, also the
published ViT-B at 448 px in fp32 and with bf16 autocast, and the ratio between them. Data: toy part scenes written
to a temporary folder and read by the PascalPart training dataset, so the data path is the real one.

    python scripts/benchmark_train.py [--device cuda] [--iterations 20] [--batch-size 8] [--workers 2]
"""
import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from isegm.data.click_training_set import ClickTrainingSet
from isegm.data.points_sampler import MultiPointSampler
from isegm.toy.synthetic import build_toy_dataset
from isegm.data.training import PascalPartTrainingDataset
from isegm.data.transforms import train_augmentation
from isegm.engine import GCLSchedule, GCLTrainer
from isegm.engine.distributed import DistInfo
from isegm.engine.trainer import TrainOptions
from isegm.model import GraCoModel, ModelConfig, load_model_config
from isegm.toy.seeded import seeded_clip_text_state

TINY = dict(img_size=(64, 64), embed_dim=64, depth=4, num_heads=2, neck_out_dims=(16, 32, 64, 128), head_channels=32)


def images_per_second(cfg: ModelConfig, data_root: Path, device: torch.device, batch_size: int, iterations: int,
                      warmup: int, workers: int, bf16: bool, points: int) -> float:
    torch.manual_seed(0)
    model = GraCoModel(cfg)
    model.phrase_encoder.load_clip_state(seeded_clip_text_state(0), source="seeded CLIP")
    targets = PascalPartTrainingDataset(data_root / "PascalPart")
    train_set = ClickTrainingSet(targets, train_augmentation(cfg.img_size), MultiPointSampler(points))
    schedule = GCLSchedule(epochs=10 ** 6, lr=5e-4, switch_epoch=0, signals=("slider",))
    options = TrainOptions(batch_size=batch_size, workers=workers, seed=0, image_dump_interval=0,
                           state_interval=10 ** 9, log_interval=10 ** 9, bf16=bf16, max_iterations=warmup)
    with tempfile.TemporaryDirectory() as exp_dir:
        trainer = GCLTrainer(model, train_set, schedule, Path(exp_dir), DistInfo(device=device), options, True)
        trainer.fit()
        trainer.options.max_iterations = iterations
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.fit()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return iterations * batch_size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as root:
        # enough images that the timed iterations stay inside one epoch (no checkpoint writes in the window)
        n_train = args.batch_size * (args.warmup + args.iterations + 1)
        build_toy_dataset(root, n_train=n_train, n_val=0, size=(160, 160), seed=0, photo_crops=0)
        tiny = ModelConfig(**TINY)
        rate = images_per_second(tiny, Path(root), torch.device("cpu"), args.batch_size, args.iterations,
                                 args.warmup, args.workers, False, 4)
        print(f"tiny config, CPU ({args.threads} threads), fp32: {rate:.2f} images/s "
              f"(batch {args.batch_size}, {args.iterations} iterations)")
        if device.type == "cuda":
            vit_b = load_model_config("graco_vit_base448")
            fp32 = images_per_second(vit_b, Path(root), device, args.batch_size, args.iterations, args.warmup,
                                     args.workers, False, 24)
            bf16 = images_per_second(vit_b, Path(root), device, args.batch_size, args.iterations, args.warmup,
                                     args.workers, True, 24)
            name = torch.cuda.get_device_name(device)
            print(f"ViT-B 448, {name}, fp32: {fp32:.2f} images/s")
            print(f"ViT-B 448, {name}, bf16 autocast: {bf16:.2f} images/s (ratio bf16/fp32 {bf16 / fp32:.2f})")
        else:
            print("no GPU: the ViT-B 448 fp32/bf16 figures need --device cuda")
    return 0


if __name__ == "__main__":
    sys.exit(main())
