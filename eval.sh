#!/usr/bin/env bash
# The published NoC benchmarks: GraCo ViT-B and ViT-L (oracle granularity; phrases on part-level data), the
# SimpleClick bases alone, and the SAM / SAM 2 baselines under the same protocol (BASELINES=0 skips them).
# DEVICE="--cpu" bash eval.sh to run on the CPU; CONFIG=path/to/config.yml for other dataset paths.
# Each run writes into its own folder, $LOGS/<run>/others/<checkpoint>/ (LOGS defaults to EXPS_PATH/evaluation_logs),
# so that no run overwrites another's JSON summary; `bash analysis.sh baselines` tabulates them.
# NPROC=4 bash eval.sh: every run as torchrun --nproc_per_node 4 on GPUs 0-3 (rank 0 writes the same files as one
# process); TORCHRUN_ARGS="--nnodes 2 --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT" for several nodes.
# A killed run continues where it stopped when eval.sh is started again (finished runs are not recomputed).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
NPROC=${NPROC:-1}
DEVICE=${DEVICE:---gpus $(seq -s, 0 $((NPROC - 1)))}
TORCHRUN_ARGS=${TORCHRUN_ARGS:-}
CONFIG=${CONFIG:-config.yml}
BASELINES=${BASELINES:-1}
B_BASE=weights/simpleclick/sbd_vit_base.pth;  B_LORA=weights/graco/GraCo_base_lora.pth
L_BASE=weights/simpleclick/sbd_vit_large.pth; L_LORA=weights/graco/GraCo_large_lora.pth
# SAM (Meta's official files, plain state dicts)
SAM_vit_b=weights/sam/sam_vit_b_01ec64.pth   # https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth
SAM_vit_l=weights/sam/sam_vit_l_0b3195.pth   # https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth
# SAM 2.1 (Meta's official files, {"model": state_dict})
SAM2_hiera_b=weights/sam2/sam2.1_hiera_base_plus.pt  # https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt
SAM2_hiera_l=weights/sam2/sam2.1_hiera_large.pt      # https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt
INSTANCE=GrabCut,Berkeley,SBD,DAVIS,PascalVOC
PART=PascalPart,PartImageNet,SA1B
OOD=ssTEM,BraTS,OAIZIB
CLIP=$(python scripts/check_paths.py --paths-config "$CONFIG" --print CLIP_WEIGHTS)
EXPS=$(python scripts/check_paths.py --paths-config "$CONFIG" --print EXPS_PATH)
LOGS=${LOGS:-${EXPS:-./experiments}/evaluation_logs}
WEIGHTS="$B_BASE,$B_LORA,$L_BASE,$L_LORA,${CLIP:-weights/clip/ViT-B-32.pt}"
if [ "$BASELINES" = 1 ]; then WEIGHTS="$WEIGHTS,$SAM_vit_b,$SAM_vit_l,$SAM2_hiera_b,$SAM2_hiera_l"; fi
python scripts/check_paths.py --paths-config "$CONFIG" --datasets "$INSTANCE,$PART,$OOD" --weights "$WEIGHTS"
if [ "$NPROC" -gt 1 ] || [ -n "$TORCHRUN_ARGS" ]; then
  LAUNCH="torchrun --nproc_per_node $NPROC $TORCHRUN_ARGS"
else
  LAUNCH=python
fi
# run NAME ARGS...: one evaluate.py run, written under $LOGS/NAME
run() { local name=$1; shift; $LAUNCH evaluate.py NoBRS --paths-config "$CONFIG" $DEVICE --logs-path "$LOGS/$name" "$@"; }

for size in B L; do
  base_var=${size}_BASE; lora_var=${size}_LORA
  base=${!base_var}; lora=${!lora_var}
  # instance-level: GraCo with the oracle granularity, and the SimpleClick base alone
  run graco_oracle --datasets "$INSTANCE" --checkpoint "$base" --lora_checkpoint "$lora" --graco
  run simpleclick --datasets "$INSTANCE" --checkpoint "$base"
  # part-level: oracle granularity, the base alone, then phrases
  run graco_oracle --datasets "$PART" --checkpoint "$base" --lora_checkpoint "$lora" --graco
  run simpleclick --datasets "$PART" --checkpoint "$base"
  for part in head wheel torso; do
    run "phrase_$part" --datasets PascalPart --checkpoint "$base" --lora_checkpoint "$lora" --phrase "$part" \
      --part-name "$part"
  done
  for part in head body foot; do
    run "phrase_$part" --datasets PartImageNet --checkpoint "$base" --lora_checkpoint "$lora" --phrase "$part" \
      --part-name "$part"
  done
  # out-of-domain
  run graco_oracle --datasets "$OOD" --checkpoint "$base" --lora_checkpoint "$lora" --graco
done

if [ "$BASELINES" = 1 ]; then
  # SAM, as published: the clicks as point prompts, no previous mask, no zoom-in; --oracle keeps the best of 3 masks
  for model in vit_b vit_l; do
    checkpoint_var=SAM_$model
    for oracle in "" --oracle; do
      for datasets in "$INSTANCE" "$PART"; do
        run "sam${oracle:+_oracle}" --datasets "$datasets" --checkpoint "${!checkpoint_var}" --sam-type SAM \
          --sam-model "$model" $oracle
      done
    done
  done
  # SAM 2.1 under the same protocol
  for model in hiera_b+ hiera_l; do
    checkpoint_var=SAM2_${model%+}
    for oracle in "" --oracle; do
      for datasets in "$INSTANCE" "$PART"; do
        run "sam2${oracle:+_oracle}" --datasets "$datasets" --checkpoint "${!checkpoint_var}" --sam-type SAM2 \
          --sam-model "$model" $oracle
      done
    done
  done
fi
