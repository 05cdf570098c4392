"""Seconds per click of the SAM baseline against GraCo ViT-B, measured in one run on the same image and clicks.

SAM computes its image embedding once per image (1024 x 1024 encoder) and then runs only the prompt encoder and
mask decoder per click; GraCo runs its whole ViT-B on a 448 x 448 zoom-in crop (with flip) at every click. Printed:
the embedding time, SAM's time per click without it, SAM's time per click with the embedding spread over an
N-click sequence, GraCo's time per click, and their ratios. Seeded weights (timing does not depend on them).

    python scripts/benchmark_sam.py [--data ../shared/data/GrabCut] [--n-clicks 5] [--sam2 hiera_t] [--device cuda]
"""
import argparse
import statistics
import time

import numpy as np
import torch

from isegm.inference.clicker import Clicker
from isegm.inference.predictors import get_predictor
from isegm.inference.predictors.sam import SamClickPredictor
from isegm.inference.sam_models import build_sam_model, get_variant
from isegm.model import load_model_config
from isegm.toy.seeded import build_seeded_model
from isegm.utils.machine import cpu_name


def sample(data: str):
    if data:
        from isegm.data.datasets import GrabCutDataset
        item = GrabCutDataset(data).get_sample(0)
        return item.image, item.gt_mask(item.objects_ids[0])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    gt = np.zeros((480, 640), np.int32)
    gt[120:360, 160:480] = 1
    image[gt == 1] = (200, 80, 40)
    return image, gt


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class ClickSequence:
    """One predictor's simulated click sequence on one image, advanced one timed click at a time."""

    def __init__(self, name: str, predictor, gt: np.ndarray, threshold: float, device: str, **signal):
        self.name, self.predictor, self.gt, self.threshold, self.device, self.signal = (name, predictor, gt, threshold,
                                                                                         device, signal)
        self.times, self.embeddings = [], []

    def start(self, image: np.ndarray, record: bool = True) -> None:
        synchronize(self.device)
        begin = time.perf_counter()
        self.predictor.set_input_image(image)
        synchronize(self.device)
        if record:
            self.embeddings.append(time.perf_counter() - begin)
        self.clicker, self.pred = Clicker(gt_mask=self.gt), np.zeros(self.gt.shape, bool)

    def click(self) -> None:
        self.clicker.make_next_click(self.pred)
        begin = time.perf_counter()
        output = self.predictor.get_prediction(self.clicker, **self.signal)
        synchronize(self.device)
        self.times.append(time.perf_counter() - begin)
        self.pred = output > self.threshold


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="a GrabCut folder (default: a synthetic 480 x 640 scene)")
    parser.add_argument("--n-clicks", type=int, default=5)
    parser.add_argument("--sam-model", default="vit_b", help="SAM model (vit_b, vit_l, vit_h)")
    parser.add_argument("--sam2", default=None, help="also time this SAM 2 model (hiera_t, ... hiera_l)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image, gt = sample(args.data)
    device = args.device
    print(f"{cpu_name() if device == 'cpu' else torch.cuda.get_device_name(device)}, {args.threads} threads, "
          f"torch {torch.__version__}; image {image.shape[1]} x {image.shape[0]}, {args.n_clicks} clicks; "
          f"the models' clicks are interleaved so that they share the machine's load", flush=True)

    graco = build_seeded_model(load_model_config("graco_vit_base448")).to(device)
    graco_predictor = get_predictor(graco, "NoBRS", device, zoom_in_params={"skip_clicks": -1,
                                                                            "target_size": (448, 448)})
    sequences = [ClickSequence("GraCo ViT-B", graco_predictor, gt, 0.5, device, gra=0.5)]
    models = [("SAM", args.sam_model)] + ([("SAM2", args.sam2)] if args.sam2 else [])
    for sam_type, sam_model in models:
        predictor = SamClickPredictor(build_sam_model(get_variant(sam_type, sam_model)).to(device))
        sequences.append(ClickSequence(f"{sam_type} {sam_model}", predictor, gt, predictor.mask_threshold, device))
    for sequence in sequences:  # warm-up: a first image and click (SAM: a first embedding)
        sequence.start(image[::-1].copy(), record=False)
        sequence.click()
        sequence.times.clear()
    graco_seq = sequences[0]
    for sequence in sequences[1:]:  # each embedding between two GraCo clicks
        graco_seq.start(image)
        graco_seq.click()
        sequence.start(image)
        graco_seq.click()
    for sequence in sequences:
        sequence.start(image)
    for _ in range(args.n_clicks):
        for sequence in sequences:
            sequence.click()

    graco_spc = statistics.median(graco_seq.times)
    print(f"{graco_seq.name:<12} per click (448 zoom-in + flip): {graco_spc:.3f} s (median of {len(graco_seq.times)})")
    for sequence in sequences[1:]:
        spc, embed = statistics.median(sequence.times), sequence.embeddings[0]
        amortized = (embed + args.n_clicks * spc) / args.n_clicks
        print(f"{sequence.name:<12} image embedding (once per image): {embed:.3f} s = {embed / graco_spc:.2f} GraCo clicks")
        print(f"{sequence.name:<12} per click, prompt encoder + mask decoder: {spc:.4f} s (median), "
              f"ratio to GraCo {spc / graco_spc:.3f}")
        print(f"{sequence.name:<12} per click with the embedding spread over {args.n_clicks} clicks: {amortized:.3f} s, "
              f"ratio to GraCo {amortized / graco_spc:.2f}")


if __name__ == "__main__":
    main()
