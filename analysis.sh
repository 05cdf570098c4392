#!/usr/bin/env bash
# bash analysis.sh [complementarity|baselines|all]   (default: complementarity)
#
# complementarity: the two control signals of GraCo ViT-B: for the parts of the published study, the slider at
#   fixed granularities 0.2..0.7 against the phrase naming the part. Writes outputs/analysis/complementarity.md
#   (one table) and complementarity.png (one plot). DEVICE="--cpu" bash analysis.sh to run on the CPU.
# baselines: no evaluation, only the table of GraCo (oracle granularity), the SimpleClick base, SAM (oracle of 3
#   masks, single mask) and SAM 2 on the part datasets, from the JSON summaries that eval.sh wrote under LOGS
#   (default EXPS_PATH/evaluation_logs). Writes outputs/analysis/baselines.md.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
WHAT=${1:-complementarity}
DEVICE=${DEVICE:---gpus 0}
CONFIG=${CONFIG:-config.yml}
OUT=${OUT:-outputs/analysis}
case "$WHAT" in
  complementarity|baselines|all) ;;
  *) echo "analysis.sh: unknown analysis '$WHAT': use complementarity, baselines or all" >&2; exit 2 ;;
esac
if [ "$WHAT" = baselines ] || [ "$WHAT" = all ]; then
  EXPS=$(python scripts/check_paths.py --paths-config "$CONFIG" --print EXPS_PATH)
  LOGS=${LOGS:-${EXPS:-./experiments}/evaluation_logs}
  python scripts/compare_baselines.py "$LOGS" --out "$OUT/baselines.md"
  [ "$WHAT" = baselines ] && exit 0
fi
BASE=weights/simpleclick/sbd_vit_base.pth; LORA=weights/graco/GraCo_base_lora.pth
CLIP=$(python scripts/check_paths.py --paths-config "$CONFIG" --print CLIP_WEIGHTS)
python scripts/check_paths.py --paths-config "$CONFIG" --datasets PascalPart,PartImageNet \
  --weights "$BASE,$LORA,${CLIP:-weights/clip/ViT-B-32.pt}"
run() { python evaluate.py NoBRS --paths-config "$CONFIG" $DEVICE --checkpoint "$BASE" --lora_checkpoint "$LORA" "$@"; }

declare -A PARTS=([PascalPart]="head wheel torso" [PartImageNet]="head body foot")
for dataset in PascalPart PartImageNet; do
  for part in ${PARTS[$dataset]}; do
    for gra in 0.2 0.3 0.4 0.5 0.6 0.7; do
      run --datasets "$dataset" --part-name "$part" --gra "$gra" --logs-path "$OUT/$dataset/$part/gra$gra"
    done
    run --datasets "$dataset" --part-name "$part" --phrase "$part" --logs-path "$OUT/$dataset/$part/phrase"
  done
done
python scripts/complementarity.py "$OUT"
