#!/usr/bin/env bash
# The published NoC benchmarks of GraCo ViT-B and ViT-L (oracle granularity; phrases on part-level data).
# DEVICE="--cpu" bash eval.sh to run on the CPU; CONFIG=path/to/config.yml for other dataset paths.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
DEVICE=${DEVICE:---gpus 0}
CONFIG=${CONFIG:-config.yml}
B_BASE=weights/simpleclick/sbd_vit_base.pth;  B_LORA=weights/graco/GraCo_base_lora.pth
L_BASE=weights/simpleclick/sbd_vit_large.pth; L_LORA=weights/graco/GraCo_large_lora.pth
INSTANCE=GrabCut,Berkeley,SBD,DAVIS,PascalVOC
PART=PascalPart,PartImageNet,SA1B
OOD=ssTEM,BraTS,OAIZIB
CLIP=$(python scripts/check_paths.py --paths-config "$CONFIG" --print CLIP_WEIGHTS)
python scripts/check_paths.py --paths-config "$CONFIG" --datasets "$INSTANCE,$PART,$OOD" \
  --weights "$B_BASE,$B_LORA,$L_BASE,$L_LORA,${CLIP:-weights/clip/ViT-B-32.pt}"
run() { python evaluate.py NoBRS --paths-config "$CONFIG" $DEVICE "$@"; }

for size in B L; do
  base_var=${size}_BASE; lora_var=${size}_LORA
  base=${!base_var}; lora=${!lora_var}
  # instance-level
  run --datasets "$INSTANCE" --checkpoint "$base" --lora_checkpoint "$lora" --graco
  # part-level: oracle granularity, then phrases
  run --datasets "$PART" --checkpoint "$base" --lora_checkpoint "$lora" --graco
  for part in head wheel torso; do
    run --datasets PascalPart --checkpoint "$base" --lora_checkpoint "$lora" --phrase "$part" --part-name "$part"
  done
  for part in head body foot; do
    run --datasets PartImageNet --checkpoint "$base" --lora_checkpoint "$lora" --phrase "$part" --part-name "$part"
  done
  # out-of-domain
  run --datasets "$OOD" --checkpoint "$base" --lora_checkpoint "$lora" --graco
done
