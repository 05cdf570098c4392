"""Seconds per click of the GraCo ViT-B predictor (448 zoom-in, flip) against an eager baseline, in one run.

The baseline computes what the published forward computes, the way it computes it: the fused qkv product plus the
LoRA update rebuilt from its two factors and applied as a second dense qkv-sized product on every call, and
attention as explicit softmax(q k^T / sqrt(d)) v; the head convolves the full-resolution concatenation of the four
maps; click disks come from a full-image distance map per click. The project merges the active LoRA branch into qkv once, uses ``scaled_dot_product_attention`` and fuses the
head's projection before upsampling. Both run on the same weights, and their outputs are compared.

    python scripts/benchmark_inference.py [--lora weights/graco/GraCo_base_lora.pth] [--threads 2] [--device cpu]
"""
import argparse
import contextlib
import os
import statistics
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.model import load_model_config
from isegm.model import graco as graco_module
from isegm.model.click_maps import click_disk_maps
from isegm.toy.seeded import build_seeded_model

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lora", default=os.environ.get("GRACO_BENCH_LORA"),
                        help="GraCo LoRA checkpoint (default: seeded LoRA weights)")
    parser.add_argument("--config", default="graco_vit_base448")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="click sequences per variant (after a warm-up)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the bf16 mode (weights in bfloat16, autocast) and report its error")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_model_config(args.config)
    model = build_seeded_model(cfg, lora_checkpoint=args.lora).to(args.device)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    image[150:350, 200:450] = (180, 60, 40)
    zoom = {"skip_clicks": -1, "target_size": (448, 448)}

    def measure(precision="fp32"):
        predictor = get_predictor(model, "NoBRS", args.device, with_flip=True, zoom_in_params=zoom,
                                  predictor_params={"precision": precision})
        run_sequence(predictor, image, 0.5)  # warm-up
        all_times, probs = [], None
        for _ in range(args.repeats):
            times, probs = run_sequence(predictor, image, 0.5)
            all_times += times
        return statistics.median(all_times), probs

    print(f"device={args.device} threads={args.threads} model={args.config} lora={args.lora or 'seeded'} "
          f"clicks/sequence={len(CLICKS)} repeats={args.repeats}")
    project_s, project_probs = measure()
    with eager_baseline(model):
        baseline_s, baseline_probs = measure()
    error = max(float(np.abs(a - b).max()) for a, b in zip(project_probs, baseline_probs))
    print(f"eager baseline : {baseline_s:.3f} s/click")
    print(f"project        : {project_s:.3f} s/click")
    print(f"ratio          : {project_s / baseline_s:.3f} (project / baseline)")
    print(f"max |prob difference| project vs baseline over {len(CLICKS)} clicks: {error:.2e}")
    if args.bf16:
        model.to(torch.bfloat16)
        bf16_s, bf16_probs = measure("bf16")
        bf16_error = max(float(np.abs(a - b).max()) for a, b in zip(project_probs, bf16_probs))
        mask_flip = max(float(((a > 0.5) != (b > 0.5)).mean()) for a, b in zip(project_probs, bf16_probs))
        print(f"project bf16   : {bf16_s:.3f} s/click, ratio to fp32 {bf16_s / project_s:.3f}, "
              f"max |prob difference| {bf16_error:.2e}, pixels changing side of 0.5: {mask_flip:.2e}")


if __name__ == "__main__":
    main()
