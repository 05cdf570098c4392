#!/usr/bin/env bash
# The published GraCo training runs, as torchrun commands (one process per GPU). Edit the paths first:
# the SimpleClick base weights (weights/README.md) and the proposals written by any_granularity_generator.py.
# Several nodes: add --nnodes N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT to torchrun.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh

# GraCo with MMT + FMG (two signals), ViT-B, 4 GPUs, global batch 32
torchrun --nproc_per_node 4 train.py configs/train/graco_vit_base448_mmt_fmg.yaml --enable_lora \
  --weights weights/simpleclick/sbd_vit_base.pth --part_path proposals/pascalpart_fmg.pkl \
  --clip-weights weights/clip/ViT-B-32.pt --gpus 0,1,2,3 --bf16

# GraCo with MMT + FMG (two signals), ViT-L, 8 GPUs
# torchrun --nproc_per_node 8 train.py configs/train/graco_vit_large448_mmt_fmg.yaml --enable_lora \
#   --weights weights/simpleclick/sbd_vit_large.pth --part_path proposals/pascalpart_fmg.pkl \
#   --clip-weights weights/clip/ViT-B-32.pt --gpus 0,1,2,3,4,5,6,7 --bf16

# GraCo slider only (CVPR 2024) on SBD with any-granularity proposals, ViT-B
# torchrun --nproc_per_node 4 train.py configs/train/graco_vit_base448_sbd.yaml --enable_lora \
#   --weights weights/simpleclick/sbd_vit_base.pth --part_path proposals/sbd_agg.pkl --gpus 0,1,2,3 --bf16
