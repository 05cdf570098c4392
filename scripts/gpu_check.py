"""The GPU check: one table of what a GPU machine must confirm, made from nothing outside (seeded weights written
in the published layout, synthetic data), in under 8 minutes on one GPU.

Rows: CUDA against CPU probabilities on the same clicks; seconds per click fp32 and bf16 (ViT-B 448 + flip) and
the bf16 error; the batched oracle's speed-up and its equality with the sequential oracle; training images per
second fp32 and bf16 (20 iterations of ViT-B 448 with LoRA); with two or more GPUs, evaluate.py and train.py in
two NCCL processes against one process. ``--tiny --device cpu`` runs every row with a tiny model on the CPU
(two gloo processes for the last rows), so that the check cannot rot.

    bash scripts/gpu_check.sh                      # on a GPU machine
    bash scripts/gpu_check.sh --tiny --device cpu  # CI
"""
import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from isegm.engine.agreement import PROPORTIONAL_ADAM, UPDATE_TOLERANCE, update_relative_differences
from isegm.engine.training_config import read_training_config
from isegm.engine.training_setup import build_model
from isegm.inference.evaluation import evaluate_sample_oracle
from isegm.inference.predictors import get_predictor
from isegm.model import ModelConfig, load_model_config
from isegm.model.checkpoint import save_published_checkpoint
from isegm.toy.seeded import build_seeded_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=(64, 64), embed_dim=64, depth=4, num_heads=2, neck_out_dims=(16, 32, 64, 128), head_channels=32)


def script(name: str):
    """Another script of this folder, as a module (the benchmarks' measuring functions are reused)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scene(size, index: int = 0):
    """A noisy image with one coloured rectangle, and its mask."""
    height, width = size
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    gt = np.zeros((height, width), np.int32)
    top, left = height // 5 + 7 * index, width // 4 + 11 * index
    gt[top:top + height // 2, left:left + width // 2] = 1
    image[gt == 1] = (200, 80 + 20 * index, 40)
    return image, gt


def click_sequence(predictor, image, clicks, gra=0.5):
    """Probabilities after each click and the seconds each click took."""
    from isegm.inference.clicker import Click, Clicker
    predictor.set_input_image(image)
    clicker, probs, seconds = Clicker(), [], []
    for positive, coords in clicks:
        clicker.add_click(Click(positive, coords))
        synchronize(predictor.device)
        start = time.perf_counter()
        probs.append(predictor.get_prediction(clicker, gra=gra))
        synchronize(predictor.device)
        seconds.append(time.perf_counter() - start)
    return probs, seconds


def max_difference(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def predictor_rows(cfg: ModelConfig, device: torch.device, zoom: int, image_size, repeats: int) -> list:
    model = build_seeded_model(cfg, overrides={"head.conv_seg.bias": -2.0})
    image, _ = scene(image_size)
    height, width = image_size
    clicks = [(True, (height // 2, width // 2)), (False, (height // 6, width // 6)),
              (True, (height // 2 + 5, width // 2 + 9)), (False, (5 * height // 6, 5 * width // 6))]
    zoom_in = {"skip_clicks": -1, "target_size": (zoom, zoom)}

    def predictor(on, precision="fp32"):
        return get_predictor(model, "NoBRS", on, with_flip=True, zoom_in_params=zoom_in,
                             predictor_params={"precision": precision})

    cpu_probs, _ = click_sequence(predictor(torch.device("cpu")), image, clicks)
    model.to(device)
    fp32 = predictor(device)
    click_sequence(fp32, image, clicks)  # warm-up
    timings = []
    for _ in range(repeats):
        probs, seconds = click_sequence(fp32, image, clicks)
        timings += seconds
    fp32_s = statistics.median(timings)
    rows = [("probabilities, device vs CPU, same clicks (max abs. difference)",
             f"{max_difference(probs, cpu_probs):.2e}" + (" (the device is the CPU)" if device.type == "cpu" else ""))]
    bf16 = predictor(device, "bf16")  # the model stays float32: the predictor converts the product weights
    click_sequence(bf16, image, clicks)
    timings = []
    for _ in range(repeats):
        bf16_probs, seconds = click_sequence(bf16, image, clicks)
        timings += seconds
    bf16_s = statistics.median(timings)
    flipped = max(float(((a > 0.5) != (b > 0.5)).mean()) for a, b in zip(probs, bf16_probs))
    rows += [("seconds per click, fp32 / bf16 (median)", f"{fp32_s:.4f} / {bf16_s:.4f} (ratio {bf16_s / fp32_s:.2f})"),
             ("bf16 error: max abs. probability difference; pixels changing side of 0.5",
              f"{max_difference(probs, bf16_probs):.2e}; {flipped:.2e}")]
    return rows


def oracle_row(cfg: ModelConfig, device: torch.device, zoom: int, image_size, samples: int, n_clicks: int) -> tuple:
    model = build_seeded_model(cfg, overrides={"head.conv_seg.bias": -2.0}).to(device)
    predictor = get_predictor(model, "NoBRS", device, zoom_in_params={"skip_clicks": -1, "target_size": (zoom, zoom)})
    kwargs = dict(max_iou_thr=0.9, pred_thr=0.5, max_clicks=n_clicks, clean=True)
    totals, equal = {False: 0.0, True: 0.0}, True
    evaluate_sample_oracle(*scene(image_size), predictor, **kwargs)  # warm-up
    for index in range(samples):
        image, gt = scene(image_size, index)
        results = {}
        for batched in (False, True):
            synchronize(device)
            start = time.perf_counter()
            results[batched] = evaluate_sample_oracle(image, gt, predictor, batched=batched, **kwargs)
            synchronize(device)
            totals[batched] += time.perf_counter() - start
        equal &= results[False][1] == results[True][1] and np.array_equal(results[False][0], results[True][0])
    return ("batched oracle: speed-up over sequential; identical IoUs and choices",
            f"{totals[False] / totals[True]:.2f}x; {'identical' if equal else 'DIFFERENT'} ({samples} samples, "
            f"{n_clicks} clicks)")


def training_row(tiny: bool, device: torch.device, root: Path, iterations: int, batch_size: int) -> tuple:
    from isegm.toy.synthetic import build_toy_dataset
    bench = script("benchmark_train")
    build_toy_dataset(root, n_train=batch_size * (iterations + 4), n_val=0, size=(160, 160), seed=0, photo_crops=0)
    cfg = ModelConfig(**TINY) if tiny else load_model_config("graco_vit_base448")
    points = 4 if tiny else 24
    rates = [bench.images_per_second(cfg, root, device, batch_size, iterations, 2, 2, bf16, points)
             for bf16 in (False, True)]
    return (f"training images/s, fp32 / bf16 ({iterations} iterations of {batch_size}, LoRA)",
            f"{rates[0]:.2f} / {rates[1]:.2f} (ratio {rates[1] / rates[0]:.2f})")


# --- several processes ------------------------------------------------------------------------------------------

def run(command, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=600, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:6]))} ... failed:\n{result.stderr[-3000:]}")
    return result


def launcher(processes: int) -> list:
    if processes == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]


TIMING = re.compile(r"\|\s*[0-9.]+\s*\|\s*\d+:\d\d:\d\d\s*\|$")


def evaluation_files(logs: Path) -> dict:
    """The files evaluate.py wrote, timing columns blanked (they are measurements)."""
    files = {}
    for path in sorted(p for p in logs.rglob("*") if p.is_file() and ".journal" not in str(p)):
        data = path.read_bytes()
        if path.suffix == ".txt":
            data = "\n".join(TIMING.sub("|TIME|", line) for line in data.decode().splitlines()).encode()
        elif path.suffix == ".json":
            data = json.dumps({**json.loads(data), "seconds_per_click": None}).encode()
        files[str(path.relative_to(logs))] = data
    return files


def evaluation_setup(cfg: ModelConfig, folder: Path, samples: int):
    """Seeded weights in the published layout (base.pth, lora.pth) and a synthetic GrabCut-layout dataset of
    ``samples`` scenes with its paths file; returns the three paths."""
    import cv2
    model = build_seeded_model(cfg, overrides={"head.conv_seg.bias": -2.0})
    state, trainable = model.state_dict(), set(model.trainable_parameters())
    base_cfg = ModelConfig.from_dict({**cfg.to_dict(), "granularity": False, "phrase": False})
    base = save_published_checkpoint({k: v for k, v in state.items() if k not in trainable}, base_cfg,
                                     folder / "base.pth")
    lora = save_published_checkpoint({k: v for k, v in state.items() if k in trainable}, cfg, folder / "lora.pth")
    grabcut = folder / "GrabCut"
    (grabcut / "data_GT").mkdir(parents=True)
    (grabcut / "boundary_GT").mkdir()
    for index in range(samples):
        image, gt = scene((96, 128), index % 5)
        cv2.imwrite(str(grabcut / "data_GT" / f"s{index}.png"), image[:, :, ::-1])
        cv2.imwrite(str(grabcut / "boundary_GT" / f"s{index}.bmp"), (gt * 255).astype(np.uint8))
    paths = folder / "paths.yml"
    paths.write_text(yaml.safe_dump({"GRABCUT_PATH": str(grabcut), "EXPS_PATH": str(folder / "exps")}))
    return base, lora, paths


def multi_process_rows(cfg: ModelConfig, folder: Path, processes: int, device_flags, zoom: int) -> list:
    """``device_flags(n)``: the device flags of a run with ``n`` processes."""
    from safetensors.torch import load_file
    from isegm.model import GraCoModel
    from isegm.toy.synthetic import build_toy_dataset

    base, lora, paths = evaluation_setup(cfg, folder, samples=5)
    evaluate = [str(ROOT / "evaluate.py"), "NoBRS", "--checkpoint", str(base), "--lora_checkpoint",
                str(lora), "--datasets", "GrabCut", "--graco", "--n-clicks", "3", "--eval-mode", f"fixed{zoom}",
                "--save-ious", "--paths-config", str(paths)]
    outputs = {}
    for n in (1, processes):
        run([*launcher(n), *evaluate, *device_flags(n), "--logs-path", str(folder / f"eval{n}")])
        outputs[n] = evaluation_files(folder / f"eval{n}")
    same = outputs[1] == outputs[processes] and any(k.endswith(".pkl") for k in outputs[1])
    rows = [(f"evaluate.py --graco, {processes} processes vs 1 (table, JSON, IoU pickle)",
             "identical" if same else "DIFFERENT")]

    # training: a small model, a few iterations; the ranks must agree, and match one process
    from isegm.model.checkpoint import save_checkpoint
    from isegm.toy.seeded import seeded_clip_text_state
    from safetensors.torch import save_file
    build_toy_dataset(folder / "toy", n_train=16, n_val=2, size=(64, 64), seed=0, photo_crops=0)
    small = ModelConfig(**TINY)
    torch.manual_seed(0)
    save_checkpoint(GraCoModel(small).state_dict(), small, folder / "small.safetensors", "full")
    save_file(seeded_clip_text_state(0), str(folder / "clip.safetensors"))
    config = {"MODEL": {k: list(v) if isinstance(v, tuple) else v for k, v in small.to_dict().items()},
              "DATA": {"dataset": "pascalpart", "path": "PASCALPART_PATH", "split": "train", "crop_size": [64, 64],
                       "min_object_area": 10},
              "POINTS": {"max_num_points": 4},
              "TRAIN": {"epochs": 2, "batch_size": 4, "lr_milestones": [100], "lora_switch_epoch": 1,
                        "max_num_next_clicks": 1, "checkpoint_interval": [[0, 1]], "image_dump_interval": 3,
                        "state_interval": 1, **PROPORTIONAL_ADAM}}
    (folder / "small.yaml").write_text(yaml.safe_dump(config))
    (folder / "train_paths.yml").write_text(yaml.safe_dump({"PASCALPART_PATH": str(folder / "toy" / "PascalPart"),
                                                            "EXPS_PATH": str(folder / "train_exps")}))
    weights, agreed = {}, False
    for n in (1, processes):
        result = run([*launcher(n), str(ROOT / "train.py"), str(folder / "small.yaml"), *device_flags(n),
                      "--workers", "0", "--enable_lora", "--weights", str(folder / "small.safetensors"),
                      "--clip-weights", str(folder / "clip.safetensors"), "--paths-config",
                      str(folder / "train_paths.yml"), "--seed", "3", "--max-iterations", "4", "--exp-name", f"p{n}"])
        if n > 1:
            agreed = f"all {n} ranks hold identical weights" in result.stderr
        (checkpoint,) = (folder / "train_exps").rglob(f"*_p{n}/checkpoints/last_checkpoint.safetensors")
        weights[n] = load_file(str(checkpoint))
    initial = build_model(read_training_config(str(folder / "small.yaml")), weights=folder / "small.safetensors",
                          enable_lora=True, clip_weights=folder / "clip.safetensors", seed=3).state_dict()
    # every draw is per sample, so only the order of the gradient sums differs (isegm.engine.agreement)
    ratio = max(update_relative_differences(weights[1], weights[processes], initial).values())
    versus_one = "identical" if ratio == 0 else "close" if ratio <= UPDATE_TOLERANCE else "DIFFERENT"
    rows.append((f"train.py, {processes} processes vs 1 (one epoch: 4 iterations of 4, tiny model)",
                 f"ranks {'identical' if agreed else 'DIFFERENT'}; LoRA weights {versus_one} to one process "
                 f"(max difference {ratio:.1e} of the update)"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and few repetitions (CI on the CPU)")
    parser.add_argument("--processes", type=int, default=None,
                        help="processes of the multi-process rows (default: the GPUs; 2 on the CPU; 1 skips them)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --tiny --device cpu to check the script itself",
              file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    started = time.perf_counter()
    cfg = ModelConfig(**TINY) if args.tiny else load_model_config("graco_vit_base448")
    zoom = 64 if args.tiny else 448
    image_size = (96, 128) if args.tiny else (480, 640)
    processes = args.processes or (torch.cuda.device_count() if device.type == "cuda" else 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = [("device", f"{name}; torch {torch.__version__}; model {'tiny' if args.tiny else 'ViT-B 448'} + flip")]
    rows += predictor_rows(cfg, device, zoom, image_size, repeats=1 if args.tiny else 3)
    rows.append(oracle_row(cfg, device, zoom, image_size, samples=2, n_clicks=3 if args.tiny else 5))
    with tempfile.TemporaryDirectory() as folder:
        rows.append(training_row(args.tiny, device, Path(folder) / "train", iterations=2 if args.tiny else 20,
                                 batch_size=2 if args.tiny else 8))
        if processes >= 2:
            def flags(n):
                return ["--cpu"] if device.type == "cpu" else ["--gpus", ",".join(map(str, range(n)))]
            rows += multi_process_rows(cfg, Path(folder) / "multi", processes, flags, zoom)
        else:
            rows.append(("several processes", "skipped: fewer than two GPUs" if device.type == "cuda" and
                         args.processes is None else f"skipped: --processes {processes}"))
    rows.append(("seconds for this check", f"{time.perf_counter() - started:.0f}"))
    print("| check | result |\n| --- | --- |")
    for what, result in rows:
        print(f"| {what} | {result} |")
    return 1 if any("DIFFERENT" in result for _, result in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
